//! When to come back: the wait a failed answer asks for.
//!
//! Servers say it in many ways. `Retry-After` (RFC 9110) is the one HTTP
//! defines; APIs with quotas send the IETF draft's `RateLimit` field
//! (`"default";r=0;t=3`), its earlier `RateLimit-Reset`, or GitHub's
//! `X-RateLimit-Reset` (an epoch time); Google puts a `RetryInfo` with a
//! `retryDelay` in the error body. A retry that ignores them is spent
//! against a quota that is still empty.
//!
//! classify reads them once, when a failure's body has been read (so the
//! body source costs no extra read), in the order of
//! `error_body.wait_headers` and then `error_body.retry_delay`: the first
//! that gives a wait sets it. The wait travels on the error
//! ([`Error::retry_after`](crate::Error::retry_after), and
//! [`Error::retry_after_source`](crate::Error::retry_after_source) for
//! where it came from), and the retry layer caps it with
//! `retry.max_retry_after` and the call's deadline whatever its source.

mod body;
mod headers;

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, header};

use super::ErrorBodySettings;
pub use headers::{parse_ratelimit, parse_reset};

use crate::retry_after::WaitSource;

const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// The wait a failed answer asks for and where it came from: the first of
/// `settings.wait_headers()` that gives one, else the first of its
/// `retry_delay` pointers that finds one in `body` (the error body as far
/// as it was read). Reads no clock unless a header holds an epoch time
/// without a `Date` beside it. What classify attaches to each failure as
/// [`Error::retry_after`](crate::Error::retry_after) and
/// [`Error::retry_after_source`](crate::Error::retry_after_source).
///
/// ```
/// use std::time::Duration;
/// use http::{HeaderMap, HeaderValue};
/// use tower_rebound::classify::{server_wait, ErrorBodySettings, WaitSource};
///
/// let settings = ErrorBodySettings::builder()
///     .retry_delay(["/error/details/*/retryDelay"])
///     .build()?;
/// let mut headers = HeaderMap::new();
/// headers.insert("ratelimit", HeaderValue::from_static(r#""default";r=0;t=3"#));
/// assert_eq!(
///     server_wait(&headers, b"", &settings),
///     Some((Duration::from_secs(3), WaitSource::RateLimit)),
/// );
/// let body = br#"{"error": {"details": [{"retryDelay": "2s"}]}}"#;
/// assert_eq!(
///     server_wait(&HeaderMap::new(), body, &settings),
///     Some((Duration::from_secs(2), WaitSource::RetryDelay)),
/// );
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
pub fn server_wait(
    headers: &HeaderMap,
    body: &[u8],
    settings: &ErrorBodySettings,
) -> Option<(Duration, WaitSource)> {
    let from_headers = settings.wait_headers().iter().find_map(|&source| {
        let wait = match source {
            WaitSource::RetryAfter => crate::retry_after::retry_after_of(headers),
            WaitSource::RateLimit => ratelimit_of(headers),
            WaitSource::XRateLimitReset => {
                reset_of(headers, &X_RATELIMIT_RESET, &X_RATELIMIT_REMAINING)
            }
            WaitSource::RetryDelay => None,
        };
        wait.map(|wait| (wait, source))
    });
    from_headers.or_else(|| {
        let pointers = settings.retry_delay_pointers();
        if pointers.is_empty() || body.is_empty() {
            return None;
        }
        body::retry_delay(pointers, body).map(|wait| (wait, WaitSource::RetryDelay))
    })
}

/// The wait until the reset of a quota an answer says is spent, whatever
/// its status: a `RateLimit` item that says `r=0`, or a `RateLimit-Remaining`
/// or `X-RateLimit-Remaining` of exactly `0` with its reset (`None` when no
/// remaining header says so: a reset alone is no spent quota). What the
/// rate limit's `pace` pauses a key by, before the `429` it would earn.
///
/// ```
/// use std::time::Duration;
/// use http::{HeaderMap, HeaderValue};
/// use tower_rebound::classify::quota_spent;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
/// headers.insert("x-ratelimit-reset", HeaderValue::from_static("7"));
/// assert_eq!(quota_spent(&headers), Some(Duration::from_secs(7)));
/// headers.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
/// assert_eq!(quota_spent(&headers), None);
/// ```
pub fn quota_spent(headers: &HeaderMap) -> Option<Duration> {
    let spent = |remaining: &HeaderName| {
        headers
            .get(remaining)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_matches(|c| c == ' ' || c == '\t') == "0")
    };
    let field = headers
        .get_all(RATELIMIT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| headers::ratelimit_wait(v, true))
        .max();
    field
        .or_else(|| {
            spent(&RATELIMIT_REMAINING)
                .then(|| reset_of(headers, &RATELIMIT_RESET, &RATELIMIT_REMAINING))
                .flatten()
        })
        .or_else(|| {
            spent(&X_RATELIMIT_REMAINING)
                .then(|| reset_of(headers, &X_RATELIMIT_RESET, &X_RATELIMIT_REMAINING))
                .flatten()
        })
}

/// `RateLimit` (every line of it), else `RateLimit-Reset`.
fn ratelimit_of(headers: &HeaderMap) -> Option<Duration> {
    let field = headers
        .get_all(RATELIMIT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(parse_ratelimit)
        .max();
    field.or_else(|| reset_of(headers, &RATELIMIT_RESET, &RATELIMIT_REMAINING))
}

/// A reset header's wait, unless its remaining header says units are left:
/// then the quota is not why the request failed, and its reset (up to an
/// hour away on GitHub) is not a wait.
fn reset_of(headers: &HeaderMap, reset: &HeaderName, remaining: &HeaderName) -> Option<Duration> {
    let value = headers.get(reset)?.to_str().ok()?;
    let left = headers
        .get(remaining)
        .and_then(|v| v.to_str().ok())
        .is_some_and(headers::units_left);
    if left {
        return None;
    }
    parse_reset(value, server_now(headers))
}

/// The response's `Date` (server clock against server clock), else the
/// system clock.
fn server_now(headers: &HeaderMap) -> SystemTime {
    headers
        .get(header::DATE)
        .and_then(|date| date.to_str().ok())
        .and_then(|date| httpdate::parse_http_date(date).ok())
        .unwrap_or_else(SystemTime::now)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    const DATE: (&str, &str) = ("date", "Tue, 14 Nov 2023 22:13:20 GMT"); // 1700000000

    #[test]
    fn the_first_source_that_gives_a_wait_sets_it() {
        let body = r#"{"error": {"details": [{"retryDelay": "9s"}]}}"#;
        let secs = |s, source| Some((Duration::from_secs(s), source));
        use WaitSource::*;
        // name, headers, expected
        type Row = (
            &'static str,
            &'static [(&'static str, &'static str)],
            Option<(Duration, WaitSource)>,
        );
        let rows: &[Row] = &[
            (
                "retry-after first",
                &[
                    ("retry-after", "1"),
                    ("ratelimit", r#""d";r=0;t=2"#),
                    ("x-ratelimit-reset", "3"),
                ],
                secs(1, RetryAfter),
            ),
            (
                "then ratelimit",
                &[
                    ("ratelimit", r#""d";r=0;t=2"#),
                    ("ratelimit-reset", "5"),
                    ("x-ratelimit-reset", "3"),
                ],
                secs(2, RateLimit),
            ),
            (
                "ratelimit-reset",
                &[("ratelimit-reset", "5"), ("x-ratelimit-reset", "3")],
                secs(5, RateLimit),
            ),
            (
                "ratelimit-reset with units left",
                &[
                    ("ratelimit-reset", "5"),
                    ("ratelimit-remaining", "4"),
                    ("x-ratelimit-reset", "3"),
                ],
                secs(3, XRateLimitReset),
            ),
            (
                "two RateLimit lines are one list",
                &[
                    ("ratelimit", r#""a";r=0;t=2"#),
                    ("ratelimit", r#""b";r=0;t=6"#),
                ],
                secs(6, RateLimit),
            ),
            (
                "a RateLimit with units left falls to the next",
                &[("ratelimit", r#""d";r=3;t=2"#), ("x-ratelimit-reset", "3")],
                secs(3, XRateLimitReset),
            ),
            (
                "garbage retry-after falls through",
                &[("retry-after", "soon"), ("x-ratelimit-reset", "3")],
                secs(3, XRateLimitReset),
            ),
            (
                "github: epoch against the Date",
                &[
                    DATE,
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000007"),
                ],
                secs(7, XRateLimitReset),
            ),
            (
                "github: units left, the reset is no wait",
                &[
                    DATE,
                    ("x-ratelimit-remaining", "12"),
                    ("x-ratelimit-reset", "1700000007"),
                ],
                secs(9, RetryDelay),
            ),
            (
                "the body last",
                &[("x-ratelimit-reset", "-1")],
                secs(9, RetryDelay),
            ),
        ];
        let settings = ErrorBodySettings::builder()
            .retry_delay(["/error/details/*/retryDelay"])
            .build()
            .unwrap();
        for (name, pairs, expected) in rows {
            assert_eq!(
                server_wait(&headers(pairs), body.as_bytes(), &settings),
                *expected,
                "{name}"
            );
        }
    }

    #[test]
    fn the_policy_chooses_the_sources_and_their_order() {
        let all = [
            ("retry-after", "1"),
            ("ratelimit", r#""d";r=0;t=2"#),
            ("x-ratelimit-reset", "3"),
        ];
        let body = br#"{"retryIn": "4s"}"#;
        use WaitSource::*;
        // wait_headers, retry_delay, expected source
        let rows: &[(&[WaitSource], &[&str], Option<WaitSource>)] = &[
            (&WaitSource::HEADERS, &[], Some(RetryAfter)),
            (&[XRateLimitReset, RetryAfter], &[], Some(XRateLimitReset)),
            (&[RateLimit], &["/retryIn"], Some(RateLimit)),
            (&[], &["/retryIn"], Some(RetryDelay)),
            (&[], &[], None),
        ];
        for (sources, pointers, expected) in rows {
            let settings = ErrorBodySettings::builder()
                .wait_headers(sources.iter().copied())
                .retry_delay(pointers.iter().copied())
                .build()
                .unwrap();
            let got = server_wait(&headers(&all), body, &settings).map(|(_, s)| s);
            assert_eq!(got, *expected, "{sources:?} {pointers:?}");
        }
    }

    #[test]
    fn a_header_that_is_not_text_is_no_wait() {
        let mut map = HeaderMap::new();
        map.insert(
            "x-ratelimit-reset",
            HeaderValue::from_bytes(b"\xff3").unwrap(),
        );
        map.insert(
            "ratelimit",
            HeaderValue::from_bytes(b"\"d\";r=0;t=\xff").unwrap(),
        );
        assert_eq!(server_wait(&map, b"", &ErrorBodySettings::default()), None);
    }

    #[test]
    fn names_read_back() {
        for source in WaitSource::HEADERS
            .into_iter()
            .chain([WaitSource::RetryDelay])
        {
            assert_eq!(source.as_str().parse(), Ok(source));
            assert_eq!(source.as_str().to_uppercase().parse(), Ok(source));
        }
        assert!("retry_after".parse::<WaitSource>().is_err());
    }
}
