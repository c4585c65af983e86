//! A policy's routes: which requests take which settings.
//!
//! In a file, each `[[routes]]` table names what it matches (`host`,
//! `path_prefix`, `methods`, each optional) and overrides the file's own
//! `[classify]`, `[error_body]`, `[retry]`, `[timeouts]` and `[poll]` key by
//! key. A route's settings are the file's sections with the route's keys laid
//! over them, then checked like any policy's; a status a route lists for a
//! class leaves the file's other classes.

use std::sync::Arc;

use http::Method;
use toml::{Table, Value};

use super::Policy;
use super::merge::merge;
use crate::classify::ClassifySettings;
use crate::deadline::Timeouts;
use crate::poll::PollSettings;
use crate::retry::RetrySettings;
use crate::route::RouteMatch;
use crate::settings::SettingsError;

/// One route of a policy: which requests it takes, and their settings.
///
/// ```
/// use http::Method;
/// use tower_rebound::config::Route;
/// use tower_rebound::retry::RetrySettings;
/// use tower_rebound::route::RouteMatch;
/// use tower_rebound::Policy;
///
/// let policy = Policy::preset("connio").unwrap();
/// let writes = Route::new(RouteMatch::new().methods([Method::POST]), &policy)
///     .named("writes")
///     .with_retry(RetrySettings::builder().max_attempts(2).build()?);
/// let policy = policy.with_route(writes)?;
/// assert_eq!(policy.routes()[0].retry_settings().max_attempts(), 2);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Route {
    pub(crate) name: Option<String>,
    pub(crate) matcher: RouteMatch,
    pub(crate) classify: Arc<ClassifySettings>,
    pub(crate) retry: Arc<RetrySettings>,
    pub(crate) poll: Arc<PollSettings>,
    pub(crate) timeouts: Timeouts,
}

impl Route {
    /// A route for the requests `matcher` takes, with `policy`'s own
    /// settings until the `with_` methods change them.
    pub fn new(matcher: RouteMatch, policy: &Policy) -> Route {
        Route {
            name: None,
            matcher,
            classify: Arc::clone(policy.classify_settings()),
            retry: Arc::clone(policy.retry_settings()),
            poll: Arc::clone(policy.poll_settings()),
            timeouts: policy.timeouts(),
        }
    }

    /// The same route with a name, for spans and reports.
    pub fn named(mut self, name: &str) -> Route {
        self.name = Some(name.to_owned());
        self
    }

    /// The same route with another status table and error-body settings.
    pub fn with_classify(mut self, classify: ClassifySettings) -> Route {
        self.classify = Arc::new(classify);
        self
    }

    /// The same route with other retry settings (its budget stays the
    /// policy's: one budget for every route).
    pub fn with_retry(mut self, retry: RetrySettings) -> Route {
        self.retry = Arc::new(retry);
        self
    }

    /// The same route with other polling settings.
    pub fn with_poll(mut self, poll: PollSettings) -> Route {
        self.poll = Arc::new(poll);
        self
    }

    /// The same route with other timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Route {
        self.timeouts = timeouts;
        self
    }

    /// The route's name, when it has one.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Which requests it takes.
    pub fn matcher(&self) -> &RouteMatch {
        &self.matcher
    }

    /// Its status table and error-body settings.
    pub fn classify_settings(&self) -> &Arc<ClassifySettings> {
        &self.classify
    }

    /// Its retry settings.
    pub fn retry_settings(&self) -> &Arc<RetrySettings> {
        &self.retry
    }

    /// Its polling settings.
    pub fn poll_settings(&self) -> &Arc<PollSettings> {
        &self.poll
    }

    /// Its timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }
}

/// The sections a route may override, key by key.
const ROUTE_SECTIONS: [&str; 5] = ["classify", "error_body", "retry", "timeouts", "poll"];

/// The routes of a whole policy document.
pub(crate) fn routes_of(document: &Table) -> Result<Vec<Route>, SettingsError> {
    let Some(list) = document.get("routes") else {
        return Ok(Vec::new());
    };
    let Value::Array(list) = list else {
        return Err(SettingsError::new(
            "routes",
            "routes must be a list of tables: write [[routes]]",
        ));
    };
    let mut routes: Vec<Route> = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let key = |rest: &str| format!("routes.{i}.{rest}");
        let Value::Table(entry) = entry else {
            return Err(SettingsError::new(
                format!("routes.{i}"),
                "a route must be a table",
            ));
        };
        if entry.contains_key("circuit_breaker") {
            return Err(SettingsError::new(
                key("circuit_breaker"),
                "a route cannot set circuit_breaker: the breakers belong to the policy, one per host, whatever the route",
            ));
        }
        if entry.contains_key("rate_limit") {
            return Err(SettingsError::new(
                key("rate_limit"),
                "a route cannot set rate_limit: the limit belongs to the policy, per host or for the whole policy (rate_limit.scope)",
            ));
        }
        if entry.contains_key("concurrency") {
            return Err(SettingsError::new(
                key("concurrency"),
                "a route cannot set concurrency: the limit belongs to the policy, per host or for the whole policy (concurrency.scope)",
            ));
        }
        if let Some(Value::Table(retry)) = entry.get("retry") {
            if retry.contains_key("budget") {
                return Err(SettingsError::new(
                    key("retry.budget"),
                    "a route cannot set retry.budget: the retry budget belongs to the policy and every route draws on it",
                ));
            }
        }
        let matcher = matcher_of(entry, i)?;
        let mut merged = Table::new();
        for section in ROUTE_SECTIONS {
            if let Some(value) = document.get(section) {
                merged.insert(section.to_owned(), value.clone());
            }
        }
        for section in ROUTE_SECTIONS {
            if let Some(Value::Table(overrides)) = entry.get(section) {
                let into = merged
                    .entry(section.to_owned())
                    .or_insert_with(|| Value::Table(Table::new()));
                if let Value::Table(into) = into {
                    merge(section, into, overrides);
                }
            }
        }
        let in_route = |e: SettingsError| {
            let path = e.key().to_owned();
            let mut moved =
                SettingsError::new(format!("routes.{i}.{path}"), e.message().to_owned());
            if let Some(index) = e.index() {
                moved = moved.at_index(index);
            }
            moved
        };
        let raw: super::schema::RawPolicy =
            Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    SettingsError::new(format!("routes.{i}"), e.message().to_owned())
                })?;
        let settings = Policy::try_from(raw).map_err(in_route)?;
        let name = match entry.get("name") {
            Some(Value::String(name)) => Some(name.clone()),
            _ => None,
        };
        if let Some(earlier) = name
            .as_deref()
            .and_then(|name| routes.iter().position(|r| r.name() == Some(name)))
        {
            return Err(SettingsError::new(
                key("name"),
                format!(
                    "route {i} is named {:?} like route {earlier}: spans, metrics and reports tell routes apart by name; give each its own",
                    name.unwrap_or_default()
                ),
            ));
        }
        if let Some(earlier) = routes.iter().position(|r| r.matcher.shadows(&matcher)) {
            return Err(SettingsError::new(
                format!("routes.{i}"),
                format!(
                    "route {i} can never match: route {earlier} before it takes every request it would"
                ),
            ));
        }
        routes.push(Route {
            name,
            matcher,
            classify: Arc::clone(settings.classify_settings()),
            retry: Arc::clone(settings.retry_settings()),
            poll: Arc::clone(settings.poll_settings()),
            timeouts: settings.timeouts(),
        });
    }
    Ok(routes)
}

/// What a route's `host`, `path_prefix` and `methods` match.
fn matcher_of(entry: &Table, i: usize) -> Result<RouteMatch, SettingsError> {
    let at = |key: &str, e: SettingsError| {
        SettingsError::new(format!("routes.{i}.{key}"), e.message().to_owned())
    };
    let mut matcher = RouteMatch::new();
    if let Some(Value::String(host)) = entry.get("host") {
        matcher = matcher.host(host).map_err(|e| at("host", e))?;
    }
    if let Some(Value::String(prefix)) = entry.get("path_prefix") {
        matcher = matcher
            .path_prefix(prefix)
            .map_err(|e| at("path_prefix", e))?;
    }
    if let Some(Value::Array(methods)) = entry.get("methods") {
        let mut parsed = Vec::with_capacity(methods.len());
        for (j, method) in methods.iter().enumerate() {
            let text = method.as_str().unwrap_or_default();
            let method = Method::from_bytes(text.as_bytes())
                .ok()
                .filter(|_| !text.is_empty() && text.bytes().all(|b| b.is_ascii_uppercase()))
                .ok_or_else(|| {
                    SettingsError::new(
                        format!("routes.{i}.methods"),
                        format!("invalid method {text:?} in routes.methods: expected an upper-case method such as \"POST\""),
                    )
                    .at_index(j)
                })?;
            parsed.push(method);
        }
        matcher = matcher.methods(parsed);
    }
    Ok(matcher)
}
