//! The attribute values both shipped listeners record, and the bound on
//! how many distinct hosts and routes they name.
//!
//! A metrics backend keeps one series per distinct set of attribute values,
//! so every value here comes from a small set: methods outside HTTP's own
//! are `_OTHER` (as OpenTelemetry's conventions ask), statuses are three
//! digits, and hosts, their ports and routes past a limit share one name.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use http::{Method, StatusCode};

use super::AttemptEnded;
use super::instrument::OTHER;
use crate::breaker_state::BreakerState;

pub(crate) const METHOD: &str = "http.request.method";
pub(crate) const SERVER_ADDRESS: &str = "server.address";
pub(crate) const SERVER_PORT: &str = "server.port";
pub(crate) const STATUS_CODE: &str = "http.response.status_code";
pub(crate) const ERROR_TYPE: &str = "error.type";
pub(crate) const OUTCOME: &str = "rebound.outcome";
pub(crate) const ROUTE: &str = "rebound.route";
pub(crate) const RETRY_REASON: &str = "rebound.retry.reason";
pub(crate) const REFUSAL: &str = "rebound.refusal";
pub(crate) const BREAKER_STATE: &str = "rebound.breaker.state";
pub(crate) const RATE_LIMIT_KEY: &str = "rebound.rate_limit.key";
pub(crate) const CONCURRENCY_KEY: &str = "rebound.concurrency.key";

/// Distinct route names a listener records before the rest share
/// `_other`: routes come from policies, so this is only a backstop.
pub(crate) const MAX_ROUTES: usize = 256;

/// A bounded set of names: each distinct name is kept until `max` are,
/// and every name after shares `_other`.
#[derive(Debug)]
pub(crate) struct Names {
    max: usize,
    known: RwLock<HashSet<Arc<str>>>,
    other: Arc<str>,
}

impl Names {
    pub(crate) fn new(max: usize) -> Names {
        Names {
            max,
            known: RwLock::default(),
            other: Arc::from(OTHER),
        }
    }

    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The name `name` is recorded under: itself while there is room, or
    /// `_other`.
    pub(crate) fn get(&self, name: &str) -> Arc<str> {
        {
            let known = read(&self.known);
            if let Some(kept) = known.get(name) {
                return Arc::clone(kept);
            }
            // Full: no write lock for every event of a host past the limit.
            if known.len() >= self.max {
                return Arc::clone(&self.other);
            }
        }
        let mut known = write(&self.known);
        if let Some(kept) = known.get(name) {
            return Arc::clone(kept);
        }
        if known.len() >= self.max {
            return Arc::clone(&self.other);
        }
        let kept: Arc<str> = Arc::from(name);
        known.insert(Arc::clone(&kept));
        kept
    }

    /// The name of a host, as `server.address`: lowercase, and an IPv6
    /// address without its brackets.
    pub(crate) fn host(&self, host: &str) -> Arc<str> {
        self.get(&server_address(host))
    }

    /// The name of a port, as `server.port`: its digits while there is
    /// room, or `_other`; always `_other` for a host named `_other`, whose
    /// port says nothing of a host the series does not name.
    pub(crate) fn port(&self, host: &str, port: u16) -> Arc<str> {
        if host == OTHER {
            return Arc::clone(&self.other);
        }
        // The digits on the stack: a port already named costs no allocation.
        let mut digits = [0u8; 5];
        let mut at = digits.len();
        let mut rest = port;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.get(std::str::from_utf8(&digits[at..]).unwrap_or(OTHER))
    }
}

/// A host as `server.address` names it, before any bound: lowercase, and
/// an IPv6 address without its brackets. Borrowed unless it had capitals.
pub(crate) fn server_address(host: &str) -> Cow<'_, str> {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.bytes().any(|b| b.is_ascii_uppercase()) {
        return Cow::Owned(host.to_ascii_lowercase());
    }
    Cow::Borrowed(host)
}

// A listener's sets hold names only: one a panicking thread left behind is
// still whole, so a poisoned lock is used as it is.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// `http.request.method`: one of HTTP's methods, or `_OTHER`.
pub(crate) fn method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_OTHER",
    }
}

/// The three digits of every status code, 100 to 999, one after another:
/// a status as text without allocating.
static STATUS_DIGITS: [u8; 2700] = {
    let mut digits = [0u8; 2700];
    let mut i = 0;
    while i < 900 {
        let code = i + 100;
        digits[3 * i] = b'0' + (code / 100) as u8;
        digits[3 * i + 1] = b'0' + (code / 10 % 10) as u8;
        digits[3 * i + 2] = b'0' + (code % 10) as u8;
        i += 1;
    }
    digits
};

/// A status code as text, such as `"500"`.
pub(crate) fn status(status: StatusCode) -> &'static str {
    // StatusCode holds 100 to 999 only.
    let at = (usize::from(status.as_u16()) - 100) * 3;
    std::str::from_utf8(&STATUS_DIGITS[at..at + 3]).unwrap_or("_OTHER")
}

/// `error.type` of a request: its status for an answer that failed, the
/// kind of error for a request that got none, nothing when it passed.
pub(crate) fn error_type(event: &AttemptEnded<'_>) -> Option<&'static str> {
    let kind = event.error()?;
    Some(event.status().map_or(kind.as_str(), status))
}

/// Whether a breaker in `state` holds calls back.
pub(crate) fn is_open(state: BreakerState) -> bool {
    matches!(state, BreakerState::Open | BreakerState::ForcedOpen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_as_text() {
        for code in [100, 200, 202, 404, 429, 500, 503, 599, 999] {
            let status = StatusCode::from_u16(code).unwrap();
            assert_eq!(super::status(status), code.to_string());
        }
    }

    #[test]
    fn methods_outside_http_are_other() {
        assert_eq!(method(&Method::PATCH), "PATCH");
        assert_eq!(method(&Method::from_bytes(b"PURGE").unwrap()), "_OTHER");
    }

    #[test]
    fn names_past_the_limit_share_other() {
        let names = Names::new(2);
        assert_eq!(&*names.host("API.example"), "api.example");
        assert_eq!(&*names.host("[::1]"), "::1");
        assert_eq!(&*names.host("third.example"), "_other");
        // Names kept before the limit stay theirs.
        assert_eq!(&*names.host("api.example"), "api.example");
        assert_eq!(&*names.host("::1"), "::1");
        assert_eq!(&*Names::new(0).host("api.example"), "_other");
    }

    #[test]
    fn ports_past_the_limit_share_other() {
        let ports = Names::new(2);
        assert_eq!(&*ports.port("a", 0), "0");
        assert_eq!(&*ports.port("a", 65535), "65535");
        assert_eq!(&*ports.port("a", 8080), "_other");
        assert_eq!(&*ports.port("b", 65535), "65535");
        // The port of a host that is not named is not named either.
        assert_eq!(&*Names::new(9).port("_other", 443), "_other");
    }

    #[test]
    fn open_states() {
        assert!(is_open(BreakerState::Open));
        assert!(is_open(BreakerState::ForcedOpen));
        assert!(!is_open(BreakerState::HalfOpen));
        assert!(!is_open(BreakerState::ForcedClosed));
    }
}
