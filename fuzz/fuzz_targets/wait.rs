//! When to come back: the RateLimit field, the reset headers, a spent
//! quota and the body's retry delay, from any bytes and clock, no panic; a
//! wait always names a source the policy reads. The body is judged as an
//! operation's status body too.
//!
//! The input is split at its first NUL: the header value before it, the
//! body after it. The value is tried in each wait header, and in all at
//! once.
#![no_main]

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_rebound::classify::{
    ErrorBodySettings, WaitSource, parse_ratelimit, parse_reset, quota_spent, server_wait,
};
use tower_rebound::poll::{Completion, judge};

const HEADERS: [&str; 6] = [
    "retry-after",
    "ratelimit",
    "ratelimit-reset",
    "x-ratelimit-reset",
    "x-ratelimit-remaining",
    "date",
];

fuzz_target!(|input: (&[u8], u32)| {
    let (bytes, now) = input;
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(now));
    let (value, body) = match bytes.iter().position(|&b| b == 0) {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (bytes, &[][..]),
    };
    if let Ok(text) = std::str::from_utf8(value) {
        let _ = parse_ratelimit(text);
        let _ = parse_reset(text, now);
    }
    let settings = ErrorBodySettings::builder()
        .retry_delay(["/error/details/*/retryDelay", "/*/retryIn"])
        .build()
        .expect("valid pointers");
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let mut all = HeaderMap::new();
    for name in HEADERS {
        let mut one = HeaderMap::new();
        one.insert(name, value.clone());
        all.insert(name, value.clone());
        if let Some((_, source)) = server_wait(&one, body, &settings) {
            assert!(source == WaitSource::RetryDelay || name != "date");
        }
    }
    let _ = server_wait(&all, body, &settings);
    // A spent quota's pause: only where a remaining count or a field says so.
    if quota_spent(&all).is_some() {
        assert!(all.contains_key("ratelimit") || value.as_bytes().trim_ascii() == b"0");
    }
    // The body as an operation's status body, both rules.
    let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    let azure = Completion::status(
        "/status",
        list(&["InProgress"]),
        list(&["Succeeded"]),
        list(&["Failed"]),
        list(&["Canceled"]),
        "/error",
    )
    .expect("valid pointers");
    let google = Completion::done("/done", "/error").expect("valid pointers");
    let _ = judge(&azure, body, false);
    let _ = judge(&google, body, false);
});
