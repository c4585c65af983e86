//! The wait an error body asks for: `error_body.retry_delay`, JSON pointers
//! such as Google's `/error/details/*/retryDelay`.

use std::time::Duration;

use serde_json::Value;

use crate::classify::error_body::pointer::{Pointer, index_of};
use crate::units::parse_duration;

/// The token that stands for every element of an array, in order.
const EVERY: &str = "*";

/// The delay at the first of `pointers` that finds one in `body`, the error
/// body as classify read it (never more). A body that is not a whole JSON
/// object or array (cut at the read cap included) has none.
pub(super) fn retry_delay(pointers: &[Pointer], body: &[u8]) -> Option<Duration> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    // Only a container can hold a pointer's target: anything else is not
    // parsed at all.
    if !matches!(body.trim_ascii_start().first(), Some(b'{' | b'[')) {
        return None;
    }
    let value: Value = serde_json::from_slice(body).ok()?;
    pointers.iter().find_map(|p| find(p.tokens(), &value))
}

/// The first delay down `tokens` from `value`: `*` tries each element of an
/// array in turn (in an object it is the key `*`, as RFC 6901 reads it).
fn find(tokens: &[String], value: &Value) -> Option<Duration> {
    let Some((token, rest)) = tokens.split_first() else {
        return delay_of(value);
    };
    match value {
        Value::Object(object) => object.get(token).and_then(|v| find(rest, v)),
        Value::Array(items) if token == EVERY => items.iter().find_map(|v| find(rest, v)),
        Value::Array(items) => index_of(token)
            .and_then(|i| items.get(i))
            .and_then(|v| find(rest, v)),
        _ => None,
    }
}

/// A delay written as duration text (`"2s"`, `"1.5s"`, `"250ms"`: Google's
/// `google.protobuf.Duration` is decimal seconds with an `s`) or as a
/// number of seconds. Negative, non-finite and out-of-range values are none.
fn delay_of(value: &Value) -> Option<Duration> {
    match value {
        Value::String(text) => parse_duration(text).ok(),
        Value::Number(n) => n
            .as_f64()
            .filter(|s| *s >= 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(texts: &[&str]) -> Vec<Pointer> {
        texts
            .iter()
            .map(|t| Pointer::parse("error_body.retry_delay", t).unwrap())
            .collect()
    }

    /// Google's `RESOURCE_EXHAUSTED` with a `RetryInfo` detail.
    const GOOGLE: &str = r#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED",
        "message": "Quota exceeded for quota metric 'Requests'.",
        "details": [
          {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "RATE_LIMIT_EXCEEDED"},
          {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
        ]}}"#;

    #[test]
    fn delays_in_bodies() {
        let ms = |n| Some(Duration::from_millis(n));
        let google = ["/error/details/*/retryDelay"];
        // pointers, body, expected
        let rows: &[(&[&str], &str, Option<Duration>)] = &[
            (&google, GOOGLE, ms(2000)),
            (&["/error/details/1/retryDelay"], GOOGLE, ms(2000)),
            (&["/error/details/0/retryDelay"], GOOGLE, None),
            (&google, &format!("\u{feff}{GOOGLE}"), ms(2000)),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": "bad"}, {"retryDelay": "0.5s"}, {"retryDelay": "9s"}]}}"#,
                ms(500),
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": "3.000000001s"}]}}"#,
                Some(Duration::new(3, 1)),
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": "250ms"}]}}"#,
                ms(250),
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": 1.5}]}}"#,
                ms(1500),
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": 4}]}}"#,
                ms(4000),
            ),
            (
                &["/retryIn", "/error/retry"],
                r#"{"error": {"retry": "1s"}}"#,
                ms(1000),
            ),
            (
                &["/retryIn", "/error/retry"],
                r#"{"retryIn": 7, "error": {"retry": "1s"}}"#,
                ms(7000),
            ),
            (&["/*"], r#"{"*": "1s"}"#, ms(1000)),
            (&["/*"], r#"["x", "2s"]"#, ms(2000)),
            (
                &["/*/*/d"],
                r#"[[{"d": "x"}], [{"e": 1}, {"d": "3s"}]]"#,
                ms(3000),
            ),
            // Garbage is no delay.
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": "-2s"}]}}"#,
                None,
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": -2}]}}"#,
                None,
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": 1e300}]}}"#,
                None,
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": "1e3s"}]}}"#,
                None,
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": "NaN"}]}}"#,
                None,
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": null}]}}"#,
                None,
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": {"seconds": 2}}]}}"#,
                None,
            ),
            (
                &google,
                r#"{"error": {"details": {"retryDelay": "2s"}}}"#,
                None,
            ),
            (
                &google,
                r#"{"error": {"details": [{"retryDelay": "2s"}"#,
                None,
            ),
            (&google, "2s", None),
            (&google, "", None),
            (&google, "\u{ff}", None),
            (&[], GOOGLE, None),
        ];
        for (texts, body, expected) in rows {
            assert_eq!(
                retry_delay(&pointers(texts), body.as_bytes()),
                *expected,
                "{texts:?} {body}"
            );
        }
    }
}
