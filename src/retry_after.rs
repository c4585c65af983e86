//! The `Retry-After` header: how long the server asks the client to wait.
//!
//! RFC 9110 allows two forms: a number of seconds (`Retry-After: 120`) and an
//! HTTP-date (`Retry-After: Fri, 31 Dec 1999 23:59:59 GMT`). A date is turned
//! into a delay against a reference time that the caller passes in (the
//! response's own `Date` header when it has one, so that a skewed client clock
//! does not distort the wait). Anything else is ignored: a garbage header is a
//! server's bug, not the caller's failure.

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
