//! Policies: what rebound does with each response, loaded from TOML.
//!
//! A policy is a plain collection of each layer's settings
//! ([`ClassifySettings`], [`RetrySettings`], [`BreakerSettings`],
//! [`PollSettings`], [`Timeouts`]). It is built in code from those, loaded
//! from one TOML file, or deserialized with serde (so figment or config-rs can
//! load it). Every value takes the same checks whichever way it comes: the
//! settings' builders.
//!
//! The shipped presets are the files in the repository's `policies/` folder,
//! compiled in, so the files a user copies and the built-in presets cannot
//! drift apart. `policies/README.md` documents every key, its default and its
//! bounds.
//!
//! A file says only what differs from its base (`extends`: the `standard`
//! preset when absent, another preset such as `"connio"`, `"github"` or
//! `"none"`, or another file, up to [`MAX_CHAIN`] deep), and
//! [`Policy::load`] also returns what `rebound check` shows:
//! [`PolicyWarning`]s for what is valid but probably wrong, and the policy
//! written out whole.
//!
//! Loading is strict: unknown sections and keys are errors (a typo must not
//! silently fall back to a default), every value is checked against its
//! bounds, and every error names the file, line and column.

mod error;
mod extends;
mod listeners;
mod merge;
mod routes;
mod schema;
mod warnings;

use std::path::Path;
use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;

use crate::breaker::{BreakerSettings, CircuitBreakerLayer, ThrottleSettings};
use crate::classify::{ClassifyLayer, ClassifySettings, ErrorBodySettings};
use crate::concurrency::{ConcurrencyLimitLayer, ConcurrencySettings};
use crate::deadline::Timeouts;
use crate::events::{Listener, Listeners};
use crate::poll::{PollSettings, PollingLayer};
use crate::rate_limit::{RateLimitLayer, RateLimitSettings, Store};
use crate::retry::{Backoff, Buffered, RetryLayer, RetrySettings};
use crate::route::{RouteRequest, RouteTable, Selector};
use crate::settings::SettingsError;
use crate::status::StatusClass;
use crate::trace::TraceLayer;
use extends::{Origin, Resolved, Source};
use schema::RawPolicy;

pub use crate::units::{InvalidDuration, parse_duration};
pub use error::PolicyError;
pub use extends::MAX_CHAIN;
pub use routes::Route;
pub use warnings::PolicyWarning;

/// The largest policy file [`Policy::from_path`] reads: 1 MiB.
pub const MAX_POLICY_FILE_BYTES: u64 = 1024 * 1024;

/// The presets a file can extend by name, besides `none` (the base of
/// every chain: [`extends::NONE`]).
const PRESETS: [(&str, &str); 6] = [
    ("azure", include_str!("../../policies/azure.toml")),
    ("github", include_str!("../../policies/github.toml")),
    ("google", include_str!("../../policies/google.toml")),
    ("stripe", include_str!("../../policies/stripe.toml")),
    ("connio", include_str!("../../policies/connio.toml")),
    ("standard", include_str!("../../policies/standard.toml")),
];

/// A validated policy: the settings of every layer of the stack.
///
/// A value: cloning it shares no state. The live state of a stack (its retry
/// budget, its rate limit, its breakers) is made when a stack is built from
/// the policy, and lives in the stack's [`Runtime`](crate::Runtime), which
/// stacks share only when told to ([`ResilienceLayer::with_runtime`]).
///
/// [`ResilienceLayer::with_runtime`]: crate::ResilienceLayer::with_runtime
///
/// ```
/// use http::StatusCode;
/// use tower_rebound::{classify::StatusClass, Policy};
///
/// let policy = Policy::from_toml_str(r#"
///     [classify]
///     retryable = [429, 500]
///     unsupported = [503]
/// "#)?;
/// assert_eq!(policy.classify(StatusCode::TOO_MANY_REQUESTS), StatusClass::Retryable);
/// assert_eq!(policy.classify(StatusCode::SERVICE_UNAVAILABLE), StatusClass::Unsupported);
/// // Statuses not listed take the fallback of their hundred.
/// assert_eq!(policy.classify(StatusCode::CONFLICT), StatusClass::Terminal);
/// # Ok::<_, tower_rebound::PolicyError>(())
/// ```
///
/// The same in code, with no TOML:
///
/// ```
/// use tower_rebound::classify::ClassifySettings;
/// use tower_rebound::retry::RetrySettings;
/// use tower_rebound::Policy;
///
/// let policy = Policy::default()
///     .with_classify(ClassifySettings::builder().retryable([429, 500]).unsupported([503]).build()?)
///     .with_retry(RetrySettings::builder().max_attempts(3).build()?);
/// assert_eq!(policy.max_attempts(), 3);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Clone, Deserialize)]
#[serde(try_from = "toml::Table")]
pub struct Policy {
    classify: Arc<ClassifySettings>,
    retry: Arc<RetrySettings>,
    breaker: BreakerSettings,
    poll: Arc<PollSettings>,
    timeouts: Timeouts,
    routes: Arc<[Route]>,
    selector: Option<Selector>,
    listeners: Listeners,
    rate_limit: Arc<RateLimitSettings>,
    concurrency: Arc<ConcurrencySettings>,
    /// The store of a limit shared by hand ([`Policy::with_rate_limit_store`]).
    limit_store: Option<Arc<dyn Store>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("classify", &self.classify)
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("poll", &self.poll)
            .field("timeouts", &self.timeouts)
            .field("routes", &self.routes)
            .field("selector", &self.selector.is_some())
            .field("listeners", &self.listeners)
            .field("rate_limit", &self.rate_limit)
            .field("concurrency", &self.concurrency)
            .finish()
    }
}

impl Default for Policy {
    /// The `standard` preset, the policy of a file with nothing in it: 202
    /// pollable, 408, 429 and 5xx retryable but 501 and 505, 4 attempts,
    /// breakers per host, 10 s per attempt and 60 s per call.
    fn default() -> Self {
        Policy::preset("standard").expect("the standard preset is valid")
    }
}

impl Policy {
    fn from_parts(
        classify: ClassifySettings,
        retry: RetrySettings,
        breaker: BreakerSettings,
        poll: PollSettings,
        timeouts: Timeouts,
    ) -> Policy {
        Policy {
            classify: Arc::new(classify),
            retry: Arc::new(retry),
            breaker,
            poll: Arc::new(poll),
            timeouts,
            routes: Arc::new([]),
            selector: None,
            listeners: Listeners::default(),
            rate_limit: Arc::new(RateLimitSettings::default()),
            concurrency: Arc::new(ConcurrencySettings::default()),
            limit_store: None,
        }
    }

    /// Loads a policy from TOML text. Errors name the origin `<string>`; a
    /// file it `extends` is found from the current directory.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse(
            Origin {
                name: "<string>",
                path: None,
            },
            text,
        )
    }

    /// Loads a policy from a TOML file, with the files it `extends`. Errors
    /// name the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        Ok(Policy::load(path)?.policy)
    }

    /// Loads a policy file as [`Policy::from_path`] does, keeping what
    /// `rebound check` shows of it: the warnings, and the policy written out
    /// whole.
    pub fn load(path: impl AsRef<Path>) -> Result<LoadedPolicy, PolicyError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = read_bounded(path).map_err(|e| PolicyError::new(&name, e))?;
        let origin = Origin {
            name: &name,
            path: Some(path),
        };
        let resolved = extends::resolve(origin, &text)?;
        let policy = Policy::from_resolved(&resolved)?;
        let warnings = warnings::of(&policy, &resolved);
        Ok(LoadedPolicy {
            policy,
            warnings,
            document: resolved.document,
        })
    }

    /// One of the shipped presets: `"connio"` (the seed API's status table),
    /// `"standard"` (ordinary HTTP semantics, also [`Policy::default`]),
    /// `"none"` (every layer's own defaults, no status listed), or one
    /// written over `standard` for an API: `"github"`, `"stripe"`,
    /// `"azure"` (Resource Manager) or `"google"` (Google Cloud).
    pub fn preset(name: &str) -> Result<Policy, PolicyError> {
        if name == "none" {
            return Policy::parse(
                Origin {
                    name: "preset none",
                    path: None,
                },
                extends::NONE,
            );
        }
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            PolicyError::new(
                name,
                format!(
                    "unknown preset: expected one of {}",
                    Policy::preset_names().join(", ")
                ),
            )
        })?;
        Policy::parse(
            Origin {
                name: &format!("preset {name}"),
                path: None,
            },
            text,
        )
    }

    /// The names of the shipped presets.
    pub fn preset_names() -> Vec<&'static str> {
        let mut names: Vec<&str> = PRESETS.iter().map(|(name, _)| *name).collect();
        names.push("none");
        names
    }

    /// This policy with another status table and error-body settings.
    pub fn with_classify(mut self, classify: ClassifySettings) -> Policy {
        self.classify = Arc::new(classify);
        self
    }

    /// This policy with other retry settings.
    pub fn with_retry(mut self, retry: RetrySettings) -> Policy {
        self.retry = Arc::new(retry);
        self
    }

    /// This policy with other circuit breaker settings.
    pub fn with_breaker(mut self, breaker: BreakerSettings) -> Policy {
        self.breaker = breaker;
        self
    }

    /// This policy with other polling settings.
    pub fn with_poll(mut self, poll: PollSettings) -> Policy {
        self.poll = Arc::new(poll);
        self
    }

    /// This policy with other timeouts.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Policy {
        self.timeouts = timeouts;
        self
    }

    /// This policy with another retry schedule, made in code, checked
    /// against the same bounds as a file's.
    pub fn with_backoff(&self, backoff: Backoff) -> Result<Policy, SettingsError> {
        let retry = RetrySettings::builder()
            .max_attempts(self.retry.max_attempts())
            .backoff(backoff)
            .max_retry_after(self.retry.max_retry_after())
            .non_idempotent(self.retry.non_idempotent())
            .add_idempotency_key(self.retry.add_idempotency_key())
            .buffer_max(self.retry.buffer_max())
            .budget(self.retry.budget())
            .build()?;
        Ok(self.clone().with_retry(retry))
    }

    /// This policy with one more route, after those it has. Fails when an
    /// earlier route takes every request this one would.
    pub fn with_route(mut self, route: Route) -> Result<Policy, SettingsError> {
        if let Some(earlier) = self
            .routes
            .iter()
            .position(|r| r.matcher.shadows(&route.matcher))
        {
            let index = self.routes.len();
            return Err(SettingsError::new(
                format!("routes.{index}"),
                format!(
                    "route {index} can never match: route {earlier} before it takes every request it would"
                ),
            ));
        }
        let mut routes = self.routes.to_vec();
        routes.push(route);
        self.routes = routes.into();
        Ok(self)
    }

    /// This policy choosing routes by `selector` first: it sees each request
    /// (but its body) once, before the first attempt, and answers the index
    /// of a route (0 for the first) or `None` to let the routes' matchers
    /// choose.
    pub fn with_selector(
        mut self,
        selector: impl Fn(&RouteRequest<'_>) -> Option<usize> + Send + Sync + 'static,
    ) -> Policy {
        self.selector = Some(Arc::new(selector));
        self
    }

    /// This policy telling `listener` of what its stacks do (after the
    /// listeners it has): every layer built from it, and every stack
    /// `ResilienceLayer` builds from it, calls it; see
    /// [`events`](crate::events).
    pub fn with_listener(mut self, listener: impl Listener) -> Policy {
        self.listeners = self.listeners.and(Arc::new(listener));
        self
    }

    /// The routes, in the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route a request would take (its index in [`routes`](Self::routes)),
    /// or `None` for the policy's own settings. Stacks choose once per call;
    /// this is for tools that report it.
    pub fn route_of(&self, request: &RouteRequest<'_>) -> Option<usize> {
        self.route_table()?.select(request).checked_sub(1)
    }

    /// This policy with every call bounded by `total`: its own
    /// `timeouts.total` and every route's (as `rebound request --max-time`).
    pub fn with_total_timeout(
        mut self,
        total: std::time::Duration,
    ) -> Result<Policy, SettingsError> {
        self.timeouts = self.timeouts.with_total(total)?;
        let routes: Result<Vec<Route>, SettingsError> = self
            .routes
            .iter()
            .map(|route| {
                let timeouts = route.timeouts.with_total(total)?;
                Ok(route.clone().with_timeouts(timeouts))
            })
            .collect();
        self.routes = routes?.into();
        Ok(self)
    }

    /// How calls choose their route; `None` when there are no routes.
    pub(crate) fn route_table(&self) -> Option<Arc<RouteTable>> {
        (!self.routes.is_empty()).then(|| {
            Arc::new(RouteTable::new(
                self.routes.iter().map(|r| r.matcher.clone()).collect(),
                self.selector.clone(),
            ))
        })
    }

    /// The status table and error-body settings (`[classify]`,
    /// `[error_body]`).
    pub fn classify_settings(&self) -> &Arc<ClassifySettings> {
        &self.classify
    }

    /// The retry settings (`[retry]`).
    pub fn retry_settings(&self) -> &Arc<RetrySettings> {
        &self.retry
    }

    /// The circuit breaker settings (`[circuit_breaker]`).
    pub fn breaker_settings(&self) -> &BreakerSettings {
        &self.breaker
    }

    /// The polling settings (`[poll]`).
    pub fn poll_settings(&self) -> &Arc<PollSettings> {
        &self.poll
    }

    /// The timeouts (`[timeouts]`).
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The class of `status` under this policy.
    pub fn classify(&self, status: StatusCode) -> StatusClass {
        self.classify.classify(status)
    }

    /// The most bytes of an error body that are read (`error_body.max_bytes`).
    pub fn error_body_max_bytes(&self) -> usize {
        self.classify.error_body().max_bytes()
    }

    /// Wraps a streaming request body so that it can be replayed by a
    /// retry, recording up to `retry.buffer_max` bytes of it; see
    /// [`Buffered`].
    pub fn buffer_body<B>(&self, body: B) -> Buffered<B> {
        Buffered::new(body, self.retry.buffer_max())
    }

    /// The most attempts a call makes (`retry.max_attempts`).
    pub fn max_attempts(&self) -> u32 {
        self.retry.max_attempts()
    }

    /// The classify layer of this policy, for stacks made by hand.
    pub fn classify_layer(&self) -> ClassifyLayer {
        ClassifyLayer::new(Arc::clone(&self.classify)).timeouts(self.timeouts)
    }

    /// This policy with a rate limit on every attempt (`[rate_limit]`),
    /// counted where its `backend` says.
    pub fn with_rate_limit(mut self, limit: RateLimitSettings) -> Policy {
        self.rate_limit = Arc::new(limit);
        self.limit_store = None;
        self
    }

    /// This policy with a rate limit whose turns are shared through `store`
    /// (a [`MemoryStore`](crate::rate_limit::MemoryStore) several simulated
    /// processes share, or a store of your own), whatever its `backend` says.
    pub fn with_rate_limit_store(
        mut self,
        limit: RateLimitSettings,
        store: Arc<dyn Store>,
    ) -> Policy {
        self.rate_limit = Arc::new(limit);
        self.limit_store = Some(store);
        self
    }

    /// The rate limit settings.
    pub fn rate_limit(&self) -> &RateLimitSettings {
        &self.rate_limit
    }

    /// This policy with a limit on the requests in flight (`[concurrency]`).
    pub fn with_concurrency(mut self, limit: ConcurrencySettings) -> Policy {
        self.concurrency = Arc::new(limit);
        self
    }

    /// The concurrency limit settings.
    pub fn concurrency(&self) -> &ConcurrencySettings {
        &self.concurrency
    }

    /// A concurrency limit layer of this policy, with slots of its own (its
    /// clones share them).
    pub fn concurrency_layer(&self) -> ConcurrencyLimitLayer {
        ConcurrencyLimitLayer::build((*self.concurrency).clone(), self.listeners.clone())
            .timeouts(self.timeouts)
    }

    /// A rate limit layer of this policy, with a limit of its own (its
    /// clones share it; with a store, every limit shares the store's turns).
    pub fn rate_limit_layer(&self) -> RateLimitLayer {
        RateLimitLayer::build(
            (*self.rate_limit).clone(),
            self.limit_store.clone(),
            self.listeners.clone(),
        )
    }

    /// The breaker layer of this policy, with breakers of its own.
    pub fn breaker_layer(&self) -> CircuitBreakerLayer {
        CircuitBreakerLayer::new(self.breaker).listeners_from(&self.listeners)
    }

    /// The listeners of this policy.
    pub(crate) fn listeners(&self) -> &Listeners {
        &self.listeners
    }

    /// A retry layer of this policy, with a retry budget of its own (its
    /// clones share it).
    pub fn retry_layer(&self) -> RetryLayer {
        RetryLayer::new(Arc::clone(&self.retry))
            .classifier(Arc::clone(self.classify.classifier()))
            .timeouts(self.timeouts)
            .listeners_from(&self.listeners)
    }

    /// The poll layer of this policy.
    pub fn polling_layer(&self) -> PollingLayer {
        PollingLayer::new(
            Arc::clone(&self.poll),
            Arc::clone(self.classify.classifier()),
        )
        .timeouts(self.timeouts)
        .listeners_from(&self.listeners)
    }

    /// The trace layer of this policy.
    pub fn trace_layer(&self) -> TraceLayer {
        TraceLayer::new(Arc::clone(self.classify.classifier())).listeners_from(&self.listeners)
    }

    fn parse(origin: Origin<'_>, text: &str) -> Result<Policy, PolicyError> {
        Policy::from_resolved(&extends::resolve(origin, text)?)
    }

    /// The policy of a resolved chain; a mistake is pointed at in the first
    /// text of the chain that writes its key (the file's own before its
    /// bases'), else at the nearest table the file wrote on the way.
    fn from_resolved(resolved: &Resolved) -> Result<Policy, PolicyError> {
        Policy::from_document(resolved.document.clone()).map_err(|e| locate(&resolved.sources, &e))
    }

    /// A whole document, its bases laid under it: its own sections, then
    /// its routes over them.
    fn from_document(document: toml::Table) -> Result<Policy, SettingsError> {
        let raw: RawPolicy = toml::Value::Table(document.clone())
            .try_into()
            .map_err(|e: toml::de::Error| SettingsError::new("", e.message().trim().to_owned()))?;
        let policy = Policy::try_from(raw)?;
        let routes = routes::routes_of(&document)?;
        Ok(Policy {
            routes: routes.into(),
            ..policy
        })
    }
}

/// `error` at its key in the first text of `sources` (the file itself) when
/// that text writes it. A key only a base writes is shown in the file, at
/// the nearest table it wrote on the way (the mistake is the file's: its
/// value contradicts the base's), with where the base sets it; else in the
/// base.
fn locate(sources: &[Source], error: &SettingsError) -> PolicyError {
    let first = &sources[0];
    let (key, index) = (error.key(), error.index());
    if let Some(span) = schema::exact_span_of(&first.text, key, index) {
        return PolicyError::at(&first.origin, &first.text, span, error.message());
    }
    let in_base = sources[1..].iter().find_map(|source| {
        schema::exact_span_of(&source.text, key, index).map(|span| (source, span))
    });
    match (schema::span_of(&first.text, key, index), in_base) {
        (Some(span), Some((base, base_span))) => {
            let at = PolicyError::at(&base.origin, &base.text, base_span, "");
            let message = format!(
                "{} ({key} is set by {}:{}:{})",
                error.message(),
                at.origin(),
                at.line().unwrap_or(1),
                at.column().unwrap_or(1)
            );
            PolicyError::at(&first.origin, &first.text, span, message)
        }
        (None, Some((base, span))) => {
            PolicyError::at(&base.origin, &base.text, span, error.message())
        }
        (Some(span), None) => PolicyError::at(&first.origin, &first.text, span, error.message()),
        (None, None) => PolicyError::new(&first.origin, error.message()),
    }
}

/// A policy file as loaded, with what a check of it shows; see
/// [`Policy::load`].
#[derive(Debug, Clone)]
pub struct LoadedPolicy {
    policy: Policy,
    warnings: Vec<PolicyWarning>,
    document: toml::Table,
}

impl LoadedPolicy {
    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The policy.
    pub fn into_policy(self) -> Policy {
        self.policy
    }

    /// What is valid but probably wrong in the file, each at its line and
    /// column.
    pub fn warnings(&self) -> &[PolicyWarning] {
        &self.warnings
    }

    /// The policy written out whole, its bases resolved: a TOML file
    /// (`extends = "none"`) that loads to the same policy.
    pub fn effective_toml(&self) -> String {
        let mut document = toml::Table::new();
        document.insert("extends".to_owned(), toml::Value::String("none".to_owned()));
        document.extend(self.document.clone());
        let body = toml::to_string_pretty(&document).unwrap_or_default();
        format!(
            "# The effective policy: every base laid under the file, each key at its value.\n{body}"
        )
    }
}

impl TryFrom<toml::Table> for Policy {
    type Error = SettingsError;

    /// A whole policy document, in any serde format, laid over the preset its
    /// `extends` names (`standard` when it names none).
    fn try_from(document: toml::Table) -> Result<Self, SettingsError> {
        let _: RawPolicy = toml::Value::Table(document.clone())
            .try_into()
            .map_err(|e: toml::de::Error| SettingsError::new("", e.message().trim().to_owned()))?;
        Policy::from_document(extends::resolve_document(document)?)
    }
}

impl TryFrom<RawPolicy> for Policy {
    type Error = SettingsError;

    fn try_from(raw: RawPolicy) -> Result<Self, SettingsError> {
        let timeouts = Timeouts::try_from(raw.timeouts)?;
        let error_body = ErrorBodySettings::try_from(raw.error_body)?;
        let classify = raw.classify.builder()?.error_body(error_body).build()?;
        let retry = RetrySettings::try_from(raw.retry)?;
        let mut breaker = BreakerSettings::try_from(raw.circuit_breaker)?;
        breaker.throttle = ThrottleSettings::try_from(raw.adaptive_throttle)?;
        let poll = PollSettings::try_from(raw.poll)?;
        let rate_limit = RateLimitSettings::try_from(raw.rate_limit)?;
        let concurrency = ConcurrencySettings::try_from(raw.concurrency)?;
        Ok(Policy::from_parts(classify, retry, breaker, poll, timeouts)
            .with_rate_limit(rate_limit)
            .with_concurrency(concurrency))
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;

    let file = std::fs::File::open(path).map_err(|e| format!("cannot read policy file: {e}"))?;
    let mut text = String::new();
    file.take(MAX_POLICY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read policy file: {e}"))?;
    if text.len() as u64 > MAX_POLICY_FILE_BYTES {
        return Err(format!(
            "policy file is larger than {MAX_POLICY_FILE_BYTES} bytes: expected a small TOML file"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod extends_tests;
#[cfg(test)]
mod poll_body_tests;
#[cfg(test)]
mod signals_tests;
#[cfg(test)]
mod tests;
