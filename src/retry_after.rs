//! The `Retry-After` header: how long the server asks the client to wait.
//!
//! RFC 9110 allows two forms: a number of seconds (`Retry-After: 120`) and an
//! HTTP-date (`Retry-After: Fri, 31 Dec 1999 23:59:59 GMT`). A date is turned
//! into a delay against a reference time that the caller passes in (the
//! response's own `Date` header when it has one, so that a skewed client clock
//! does not distort the wait). Anything else is ignored: a garbage header is a
//! server's bug, not the caller's failure.
//!
//! `Retry-After` is one of several ways a server says when to come back
//! ([`WaitSource`]); classify reads the others (`classify/wait/`), and the
//! source travels with the wait on the error.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, header};

/// Parses a `Retry-After` value into the delay it asks for.
///
/// Returns `None` for values that are neither delta-seconds nor an HTTP-date
/// (negative numbers, fractions, words, empty). A number of seconds too large
/// for a `u64` saturates: the server asked for "practically forever", and the
/// layers that wait cap every wait at their own limit. A date in the past asks
/// for no wait at all.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_rebound::classify::parse_retry_after;
///
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// // Sun, 06 Nov 1994 08:49:37 GMT is 784111777 seconds after the epoch.
/// assert_eq!(
///     parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now),
///     Some(Duration::from_secs(120)),
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(saturating_seconds(value)));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

fn saturating_seconds(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    })
}

/// The wait asked for by `Retry-After`, with an HTTP-date measured against the
/// response's own `Date` when it has one (server clock against server clock).
pub(crate) fn retry_after_of(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?;
    let now = headers
        .get(header::DATE)
        .and_then(|date| date.to_str().ok())
        .and_then(|date| httpdate::parse_http_date(date).ok())
        .unwrap_or_else(SystemTime::now);
    parse_retry_after(value, now)
}

/// Where the wait a server asked for came from.
///
/// ```
/// use tower_rebound::classify::WaitSource;
///
/// assert_eq!(WaitSource::RateLimit.as_str(), "ratelimit");
/// assert_eq!("x-ratelimit-reset".parse(), Ok(WaitSource::XRateLimitReset));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum WaitSource {
    /// `Retry-After` (RFC 9110): seconds or an HTTP-date.
    RetryAfter,
    /// The `RateLimit` field of draft-ietf-httpapi-ratelimit-headers (its
    /// `t` parameter), or the draft's earlier `RateLimit-Reset`.
    RateLimit,
    /// `X-RateLimit-Reset`: seconds, or an epoch time past 10^9.
    XRateLimitReset,
    /// A JSON pointer into the error body (`error_body.retry_delay`).
    RetryDelay,
}

impl WaitSource {
    /// The headers a policy can read waits from, in their default order.
    pub const HEADERS: [WaitSource; 3] = [
        WaitSource::RetryAfter,
        WaitSource::RateLimit,
        WaitSource::XRateLimitReset,
    ];

    /// The name a policy file gives it (`error_body.wait_headers`):
    /// `"retry-after"`, `"ratelimit"`, `"x-ratelimit-reset"`, or
    /// `"retry-delay"` for the body.
    pub const fn as_str(self) -> &'static str {
        match self {
            WaitSource::RetryAfter => "retry-after",
            WaitSource::RateLimit => "ratelimit",
            WaitSource::XRateLimitReset => "x-ratelimit-reset",
            WaitSource::RetryDelay => "retry-delay",
        }
    }
}

impl fmt::Display for WaitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`WaitSource`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWaitSource(String);

impl fmt::Display for UnknownWaitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown wait source {:?}: expected \"retry-after\", \"ratelimit\" or \"x-ratelimit-reset\"",
            self.0
        )
    }
}

impl std::error::Error for UnknownWaitSource {}

impl std::str::FromStr for WaitSource {
    type Err = UnknownWaitSource;

    /// A source by its name, in any case.
    fn from_str(name: &str) -> Result<Self, UnknownWaitSource> {
        [
            WaitSource::RetryAfter,
            WaitSource::RateLimit,
            WaitSource::XRateLimitReset,
            WaitSource::RetryDelay,
        ]
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(name))
        .ok_or_else(|| UnknownWaitSource(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sun, 06 Nov 1994 08:49:37 GMT
    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after("0", now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1", now()), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after(" \t30 ", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("007", now()),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn http_date_in_all_three_formats() {
        let two_minutes = Some(Duration::from_secs(120));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:51:37 GMT", now()),
            two_minutes
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:51:37 GMT", now()),
            two_minutes
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:51:37 1994", now()),
            two_minutes
        );
    }

    #[test]
    fn past_date_means_no_wait() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn negative_fraction_and_garbage_are_ignored() {
        for garbage in [
            "",
            " ",
            "-5",
            "+5",
            "1.5",
            "1e3",
            "soon",
            "0x10",
            "5 s",
            "٣",
            "Sun, 06 Nov 1994 25:61:99 GMT",
            "Sun, 32 Foo 1994 08:51:37 GMT",
        ] {
            assert_eq!(parse_retry_after(garbage, now()), None, "{garbage:?}");
        }
    }

    #[test]
    fn overflow_saturates_instead_of_wrapping() {
        assert_eq!(
            parse_retry_after("18446744073709551615", now()),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("99999999999999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("99999999999", now()),
            Some(Duration::from_secs(99_999_999_999))
        );
    }
}
