//! Routes: which requests of a client take which settings.
//!
//! A client that calls one API sends writes, reads and long exports, and each
//! wants its own attempts, timeouts and polling. A policy's routes say so: the
//! first route whose [`RouteMatch`] matches a request gives the call its
//! settings; a request no route matches takes the policy's own. The choice is
//! made once per call, before its first attempt, and every layer of the call
//! (its retries and status requests included) uses it. The retry budget and
//! the circuit breakers belong to the policy and are shared by all routes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};

use crate::hash::{FastHash, fast_hash};
use crate::settings::SettingsError;

/// Which requests a route takes: every condition given must hold.
///
/// ```
/// use http::{Method, Uri};
/// use tower_rebound::route::RouteMatch;
///
/// let exports = RouteMatch::new()
///     .host("*.example.com")?
///     .path_prefix("/v3/exports")?
///     .methods([Method::POST]);
/// let uri: Uri = "https://api.example.com/v3/exports/7".parse().unwrap();
/// assert!(exports.matches(&Method::POST, &uri));
/// // Segment by segment: "/v3/exportsx" is another path.
/// let other: Uri = "https://api.example.com/v3/exportsx".parse().unwrap();
/// assert!(!exports.matches(&Method::POST, &other));
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMatch {
    host: Option<HostPattern>,
    path_prefix: Option<String>,
    methods: Vec<Method>,
}

/// A host, or every subdomain of one.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.example.com`, kept as `.example.com`.
    Subdomains(String),
}

impl HostPattern {
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(exact) => host.eq_ignore_ascii_case(exact),
            HostPattern::Subdomains(suffix) => {
                host.len() > suffix.len()
                    && host.is_char_boundary(host.len() - suffix.len())
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
        }
    }

    /// Whether every host `other` matches, this matches too.
    fn covers(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (_, HostPattern::Exact(host)) => self.matches(host),
            (HostPattern::Subdomains(mine), HostPattern::Subdomains(theirs)) => {
                theirs.ends_with(mine.as_str())
            }
            (HostPattern::Exact(_), HostPattern::Subdomains(_)) => false,
        }
    }
}

impl RouteMatch {
    /// A match for every request; narrow it with the other methods.
    pub fn new() -> Self {
        RouteMatch::default()
    }

    /// Requests to `pattern`: a host name (`api.example.com`, any case), or
    /// `*.example.com` for every subdomain of `example.com` (not
    /// `example.com` itself).
    pub fn host(mut self, pattern: &str) -> Result<Self, SettingsError> {
        let bad = || {
            SettingsError::new(
                "routes.host",
                format!(
                    "invalid host pattern {pattern:?}: expected a host such as \"api.example.com\" or \"*.example.com\""
                ),
            )
        };
        let (wildcard, name) = match pattern.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
            && !name.starts_with('.')
            && !name.ends_with('.');
        if !valid {
            return Err(bad());
        }
        let name = name.to_ascii_lowercase();
        self.host = Some(if wildcard {
            HostPattern::Subdomains(format!(".{name}"))
        } else {
            HostPattern::Exact(name)
        });
        Ok(self)
    }

    /// Requests whose path is `prefix` or lies under it, segment by segment:
    /// `/v3/exports` takes `/v3/exports` and `/v3/exports/7`, not
    /// `/v3/exportsx`. The prefix starts with `/`.
    pub fn path_prefix(mut self, prefix: &str) -> Result<Self, SettingsError> {
        if !prefix.starts_with('/') || prefix.contains(['?', '#']) {
            return Err(SettingsError::new(
                "routes.path_prefix",
                format!("invalid path prefix {prefix:?}: expected a path such as \"/v3/exports\""),
            ));
        }
        let trimmed = prefix.trim_end_matches('/');
        self.path_prefix = Some(trimmed.to_owned());
        Ok(self)
    }

    /// Requests with one of `methods`.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods = methods.into_iter().collect();
        self
    }

    /// Whether a request with `method` to `uri` takes this route.
    pub fn matches(&self, method: &Method, uri: &Uri) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        if let Some(host) = &self.host {
            match uri.host() {
                Some(actual) if host.matches(actual) => {}
                _ => return false,
            }
        }
        if let Some(prefix) = &self.path_prefix {
            if !under(uri.path(), prefix) {
                return false;
            }
        }
        true
    }

    /// Whether every request `later` matches, this matches too: a route with
    /// `later` after one with this could never be taken.
    pub(crate) fn shadows(&self, later: &RouteMatch) -> bool {
        let methods = self.methods.is_empty()
            || (!later.methods.is_empty()
                && later.methods.iter().all(|m| self.methods.contains(m)));
        let host = match (&self.host, &later.host) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => mine.covers(theirs),
        };
        let path = match (&self.path_prefix, &later.path_prefix) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => under(theirs, mine),
        };
        methods && host && path
    }
}

/// The host of `uri` as written (without userinfo, port or IPv6 brackets),
/// found with one pass over the authority's bytes.
fn host_of(uri: &Uri) -> Option<&[u8]> {
    let authority = uri.authority()?.as_str().as_bytes();
    let start = authority
        .iter()
        .rposition(|b| *b == b'@')
        .map_or(0, |at| at + 1);
    let host = &authority[start..];
    if let Some(rest) = host.strip_prefix(b"[") {
        let end = rest.iter().position(|b| *b == b']')?;
        return Some(&rest[..end]);
    }
    let end = host.iter().position(|b| *b == b':').unwrap_or(host.len());
    Some(&host[..end])
}

/// Whether `path` is `prefix` or under it, segment by segment.
fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// What a route selector sees of a request: everything but its body.
#[derive(Debug)]
#[non_exhaustive]
pub struct RouteRequest<'a> {
    /// The method.
    pub method: &'a Method,
    /// The URI.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The extensions.
    pub extensions: &'a Extensions,
}

impl<'a> RouteRequest<'a> {
    /// What a selector sees of `request`.
    pub fn of<B>(request: &'a http::Request<B>) -> Self {
        RouteRequest {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }
}

/// A closure that picks a route by what matchers cannot see (a header, an
/// extension): the index of a route of the policy (0 for its first route),
/// or `None` to let the routes' matchers choose.
pub type Selector = Arc<dyn Fn(&RouteRequest<'_>) -> Option<usize> + Send + Sync>;

/// How a stack picks the route of each call, once, before its first attempt.
///
/// Routes that name an exact host are indexed by it, so that a call tries
/// only the routes for its own host and those that name none (or a wildcard),
/// in order: choosing among many routes for many hosts costs a hash lookup,
/// not a scan.
#[derive(Clone)]
pub(crate) struct RouteTable {
    matchers: Vec<RouteMatch>,
    selector: Option<Selector>,
    by_host: HashMap<Box<[u8]>, Box<[usize]>, FastHash>,
    /// The routes that name no exact host.
    general: Box<[usize]>,
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("matchers", &self.matchers)
            .field("selector", &self.selector.is_some())
            .finish()
    }
}

impl Default for RouteTable {
    fn default() -> Self {
        RouteTable::new(Vec::new(), None)
    }
}

/// The longest host name DNS allows; a longer one matches no exact host.
const MAX_HOST: usize = 255;

impl RouteTable {
    pub(crate) fn new(matchers: Vec<RouteMatch>, selector: Option<Selector>) -> Self {
        let mut by_host: HashMap<Box<[u8]>, Vec<usize>, FastHash> =
            // The keys are the policy's, not the network's: a fixed seed will do.
            HashMap::with_hasher(fast_hash(0x5eed_0f7a_b1e5));
        let mut general = Vec::new();
        for (i, matcher) in matchers.iter().enumerate() {
            match &matcher.host {
                Some(HostPattern::Exact(host)) => {
                    by_host.entry(host.as_bytes().into()).or_default().push(i)
                }
                _ => general.push(i),
            }
        }
        let mut indexed =
            HashMap::with_capacity_and_hasher(by_host.len(), by_host.hasher().clone());
        indexed.extend(
            by_host
                .into_iter()
                .map(|(host, routes)| (host, routes.into_boxed_slice())),
        );
        RouteTable {
            matchers,
            selector,
            by_host: indexed,
            general: general.into_boxed_slice(),
        }
    }

    /// The route of a request: 0 for the policy's own settings, `n` for its
    /// `n`-th route (counting from 1).
    pub(crate) fn select(&self, request: &RouteRequest<'_>) -> usize {
        if let Some(selector) = &self.selector {
            if let Some(index) = selector(request) {
                if index < self.matchers.len() {
                    return index + 1;
                }
            }
        }
        let exact: &[usize] = match host_of(request.uri) {
            Some(host) if !self.by_host.is_empty() => {
                let found = if host.iter().any(u8::is_ascii_uppercase) {
                    let mut lower = [0u8; MAX_HOST];
                    lower.get_mut(..host.len()).and_then(|buffer| {
                        buffer.copy_from_slice(host);
                        buffer.make_ascii_lowercase();
                        self.by_host.get(&*buffer)
                    })
                } else {
                    self.by_host.get(host)
                };
                found.map_or(&[], |routes| routes)
            }
            _ => &[],
        };
        if self.general.is_empty() {
            return exact
                .iter()
                .find(|&&i| self.matchers[i].matches(request.method, request.uri))
                .map_or(0, |i| i + 1);
        }
        // The two lists, merged in the routes' order: the first match wins.
        let (mut e, mut g) = (exact.iter().peekable(), self.general.iter().peekable());
        loop {
            let next = match (e.peek(), g.peek()) {
                (Some(&&a), Some(&&b)) if a < b => e.next(),
                (Some(_), Some(_)) => g.next(),
                (Some(_), None) => e.next(),
                (None, Some(_)) => g.next(),
                (None, None) => return 0,
            };
            if let Some(&i) = next {
                if self.matchers[i].matches(request.method, request.uri) {
                    return i + 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(text: &str) -> Uri {
        text.parse().unwrap()
    }

    #[test]
    fn hosts_match_exactly_or_by_subdomain() {
        let exact = RouteMatch::new().host("API.example.com").unwrap();
        assert!(exact.matches(&Method::GET, &uri("http://api.EXAMPLE.com/x")));
        assert!(!exact.matches(&Method::GET, &uri("http://v2.api.example.com/x")));
        let wild = RouteMatch::new().host("*.example.com").unwrap();
        assert!(wild.matches(&Method::GET, &uri("http://api.example.com/")));
        assert!(wild.matches(&Method::GET, &uri("http://a.b.example.com/")));
        assert!(!wild.matches(&Method::GET, &uri("http://example.com/")));
        assert!(!wild.matches(&Method::GET, &uri("http://badexample.com/")));
        assert!(!wild.matches(&Method::GET, &uri("/relative")));
        for bad in ["", "*.", "a b", "*.*.x", "api.example.com/", ".x", "x."] {
            assert!(RouteMatch::new().host(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_match_segment_by_segment() {
        let m = RouteMatch::new().path_prefix("/v3/exports").unwrap();
        assert!(m.matches(&Method::GET, &uri("http://h/v3/exports")));
        assert!(m.matches(&Method::GET, &uri("http://h/v3/exports/7?x=1")));
        assert!(!m.matches(&Method::GET, &uri("http://h/v3/ex")));
        assert!(!m.matches(&Method::GET, &uri("http://h/v3/exportsx")));
        let trailing = RouteMatch::new().path_prefix("/v3/").unwrap();
        assert!(trailing.matches(&Method::GET, &uri("http://h/v3/a")));
        let root = RouteMatch::new().path_prefix("/").unwrap();
        assert!(root.matches(&Method::GET, &uri("http://h/anything")));
        assert!(RouteMatch::new().path_prefix("v3").is_err());
        assert!(RouteMatch::new().path_prefix("/a?b").is_err());
    }

    #[test]
    fn methods_and_all_conditions() {
        let m = RouteMatch::new()
            .host("api.example")
            .unwrap()
            .path_prefix("/w")
            .unwrap()
            .methods([Method::POST, Method::PUT]);
        assert!(m.matches(&Method::PUT, &uri("http://api.example/w/1")));
        assert!(!m.matches(&Method::GET, &uri("http://api.example/w/1")));
        assert!(!m.matches(&Method::PUT, &uri("http://other.example/w/1")));
        assert!(RouteMatch::new().matches(&Method::DELETE, &uri("/")));
    }

    #[test]
    fn a_broader_route_shadows_a_narrower_one() {
        let any = RouteMatch::new();
        let api = RouteMatch::new().host("api.example.com").unwrap();
        let wild = RouteMatch::new().host("*.example.com").unwrap();
        let exports = api.clone().path_prefix("/v3/exports").unwrap();
        let post_exports = exports.clone().methods([Method::POST]);
        assert!(any.shadows(&api));
        assert!(wild.shadows(&api));
        assert!(!api.shadows(&wild));
        assert!(api.shadows(&exports));
        assert!(exports.shadows(&post_exports));
        assert!(!post_exports.shadows(&exports));
        assert!(!exports.shadows(&api));
        let v3 = RouteMatch::new().path_prefix("/v3").unwrap();
        assert!(v3.shadows(&RouteMatch::new().path_prefix("/v3/exports").unwrap()));
        assert!(!v3.shadows(&RouteMatch::new().path_prefix("/v30").unwrap()));
        let deep = RouteMatch::new().host("*.api.example.com").unwrap();
        assert!(wild.shadows(&deep));
        assert!(!deep.shadows(&wild));
    }

    #[test]
    fn the_first_match_wins_and_a_selector_goes_first() {
        let table = RouteTable::new(
            vec![
                RouteMatch::new().path_prefix("/a").unwrap(),
                RouteMatch::new(),
            ],
            None,
        );
        let headers = HeaderMap::new();
        let extensions = Extensions::new();
        let select = |table: &RouteTable, u: &str| {
            let uri = uri(u);
            table.select(&RouteRequest {
                method: &Method::GET,
                uri: &uri,
                headers: &headers,
                extensions: &extensions,
            })
        };
        assert_eq!(select(&table, "http://h/a/1"), 1);
        assert_eq!(select(&table, "http://h/b"), 2);
        assert_eq!(select(&RouteTable::default(), "http://h/a"), 0);
        let chosen = RouteTable::new(
            vec![
                RouteMatch::new().path_prefix("/a").unwrap(),
                RouteMatch::new(),
            ],
            Some(Arc::new(|r: &RouteRequest<'_>| {
                r.uri.path().ends_with("x").then_some(1)
            })),
        );
        assert_eq!(select(&chosen, "http://h/a/x"), 2);
        assert_eq!(select(&chosen, "http://h/a/y"), 1);

        // Exact hosts are looked up, in any case, and keep their order with
        // the routes that name no exact host.
        let hosts = RouteTable::new(
            vec![
                RouteMatch::new()
                    .host("b.example")
                    .unwrap()
                    .path_prefix("/x")
                    .unwrap(),
                RouteMatch::new().path_prefix("/x").unwrap(),
                RouteMatch::new().host("b.example").unwrap(),
                RouteMatch::new().host("*.example").unwrap(),
            ],
            None,
        );
        assert_eq!(select(&hosts, "http://B.Example/x/1"), 1);
        assert_eq!(select(&hosts, "http://c.example/x/1"), 2);
        assert_eq!(select(&hosts, "http://b.example/y"), 3);
        assert_eq!(select(&hosts, "http://c.example/y"), 4);
        assert_eq!(select(&hosts, "http://c.other/y"), 0);
        let long = format!("http://{}.example/y", "a".repeat(300));
        assert_eq!(select(&hosts, &long), 4);
    }
}
