//! The parsers that read the network and policy files, under proptest: no
//! input makes them panic, and what they return keeps its promises. (The same
//! parsers are fuzzed in `fuzz/`; this runs in the ordinary test suite.)

use std::time::{Duration, SystemTime};

use http::Uri;
use proptest::prelude::*;
use rebound::Policy;
use rebound::classify::{parse_api_errors, parse_retry_after};
use rebound::poll::{Origin, Target, resolve_status_url};

fn json_like() -> impl Strategy<Value = Vec<u8>> {
    // Bytes, and text built from JSON's own pieces, so that the parser is
    // taken deep as well as wide.
    let pieces = prop_oneof![
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"code\"".to_owned()),
        Just("\"cause\"".to_owned()),
        Just("\"moreInfoUrl\"".to_owned()),
        Just("null".to_owned()),
        Just("1e999".to_owned()),
        "\"[a-zA-Z\\\\\"]{0,8}\"",
        "-?[0-9]{1,5}",
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec(pieces, 0..64).prop_map(|p| p.concat().into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn error_bodies_never_panic_and_errors_carry_something(body in json_like()) {
        for error in parse_api_errors(&body) {
            prop_assert!(error.code().is_some() || error.cause().is_some()
                || error.message().is_some() || error.more_info_url().is_some());
        }
    }

    #[test]
    fn a_cut_body_keeps_a_prefix_of_the_errors(n in 1usize..20, cut in 0usize..2000) {
        let body: String = format!(
            "[{}]",
            (0..n).map(|i| format!(r#"{{"code":"E{i}","cause":"c"}}"#)).collect::<Vec<_>>().join(",")
        );
        let cut = cut.min(body.len());
        let errors = parse_api_errors(&body.as_bytes()[..cut]);
        for (i, error) in errors.iter().enumerate() {
            let expected = format!("E{i}");
            prop_assert_eq!(error.code(), Some(expected.as_str()));
        }
    }

    #[test]
    fn retry_after_never_panics_and_seconds_are_exact(text in "\\PC{0,40}", secs in any::<u32>(), now in 0u64..4_000_000_000) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let _ = parse_retry_after(&text, now);
        prop_assert_eq!(parse_retry_after(&secs.to_string(), now), Some(Duration::from_secs(u64::from(secs))));
    }

    #[test]
    fn status_urls_never_panic_and_never_leave_the_origin(location in proptest::collection::vec(any::<u8>(), 0..80), text in "[a-zA-Z0-9:/?#@.\\[\\]%-]{0,60}") {
        let base: Uri = "https://api.example:8443/v3/devices/7".parse().unwrap();
        let origin = Origin::of(&base).unwrap();
        for candidate in [location, text.into_bytes()] {
            if let Ok(target) = resolve_status_url(&base, &base, &candidate, &[]) {
                prop_assert!(matches!(target, Target::SameOrigin(_)));
                prop_assert_eq!(Origin::of(target.uri()), Some(origin.clone()));
                let authority = target.uri().authority().map(|a| a.as_str().to_owned());
                prop_assert!(!authority.unwrap_or_default().contains('@'), "no userinfo");
            }
        }
    }

    #[test]
    fn policy_text_never_panics(text in "\\PC{0,200}") {
        let _ = Policy::from_toml_str(&text);
    }

    #[test]
    fn policy_values_are_checked_not_trusted(
        attempts in any::<i64>(),
        rate in any::<f64>(),
        size in "[0-9]{1,25}[A-Za-z]{0,3}",
        duration in "[0-9]{1,25}(ms|s|m|h|d|)",
    ) {
        let text = format!(
            "[retry]\nmax_attempts = {attempts}\nbuffer_max = \"{size}\"\nmax_retry_after = \"{duration}\"\n\
             [circuit_breaker]\nfailure_rate = {rate:?}\n"
        );
        if let Ok(policy) = Policy::from_toml_str(&text) {
            prop_assert!((1..=10).contains(&policy.max_attempts()));
        }
    }
}
