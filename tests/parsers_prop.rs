//! The parsers that read the network and policy files, under proptest: no
//! input makes them panic, and what they return keeps its promises. (The same
//! parsers are fuzzed in `fuzz/`; this runs in the ordinary test suite.)
//!
//! Each property counts the cases that reached its assertions and checks the
//! count: a generator that drifted into inputs the assertions never look at
//! would otherwise pass by checking nothing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use http::Uri;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use rebound::Policy;
use rebound::classify::{parse_api_errors, parse_retry_after};
use rebound::poll::{Origin, Refusal, Target, resolve_status_url};

const CASES: u32 = 2000;

/// Runs `property` on `CASES` inputs drawn from `strategy` (after the saved
/// regressions) and returns how many of them reached the assertions: the
/// property answers `Ok(true)` when they did.
fn check<S: Strategy>(
    strategy: S,
    property: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) -> u32 {
    let config = Config {
        cases: CASES,
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..Config::default()
    };
    let reached = AtomicU32::new(0);
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |value| {
        if property(value)? {
            reached.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    reached.into_inner()
}

/// At least `share` of the cases reached the assertions.
fn assert_reached(reached: u32, share: f64) {
    let needed = (f64::from(CASES) * share) as u32;
    assert!(
        reached >= needed,
        "only {reached} of {CASES} cases reached the assertions (wanted {needed})"
    );
}

fn json_like() -> impl Strategy<Value = Vec<u8>> {
    // Bytes, text built from JSON's own pieces so that the parser is taken
    // deep as well as wide, and error arrays that are well formed apart from
    // their fields, so that many bodies do carry errors.
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
    let value = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("{}".to_owned()),
        "-?[0-9]{1,5}",
        "\"[a-zA-Z ]{0,8}\"",
    ];
    let field = (
        prop_oneof![
            Just("code"),
            Just("cause"),
            Just("message"),
            Just("moreInfoUrl"),
            Just("other")
        ],
        value,
    )
        .prop_map(|(name, value)| format!("\"{name}\":{value}"));
    let object =
        proptest::collection::vec(field, 0..5).prop_map(|f| format!("{{{}}}", f.join(",")));
    let array = proptest::collection::vec(object, 0..6).prop_map(|o| format!("[{}]", o.join(",")));
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        proptest::collection::vec(pieces, 0..64).prop_map(|p| p.concat().into_bytes()),
        array.prop_map(String::into_bytes),
    ]
}

#[test]
fn error_bodies_never_panic_and_errors_carry_something() {
    let reached = check(json_like(), |body| {
        let errors = parse_api_errors(&body);
        for error in &errors {
            prop_assert!(
                error.code().is_some()
                    || error.cause().is_some()
                    || error.message().is_some()
                    || error.more_info_url().is_some()
            );
        }
        Ok(!errors.is_empty())
    });
    assert_reached(reached, 0.15);
}

#[test]
fn a_cut_body_keeps_every_error_before_the_cut() {
    let reached = check((1usize..20, 0usize..2000), |(n, cut)| {
        let body: String = format!(
            "[{}]",
            (0..n)
                .map(|i| format!(r#"{{"code":"E{i}","cause":"c"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let cut = cut.min(body.len());
        let errors = parse_api_errors(&body.as_bytes()[..cut]);
        // Every object closed before the cut is complete, and kept.
        let complete = body[..cut].matches('}').count();
        prop_assert_eq!(errors.len(), complete);
        for (i, error) in errors.iter().enumerate() {
            let expected = format!("E{i}");
            prop_assert_eq!(error.code(), Some(expected.as_str()));
        }
        Ok(complete > 0)
    });
    assert_reached(reached, 0.5);
}

#[test]
fn retry_after_never_panics_and_seconds_are_exact() {
    let strategy = ("\\PC{0,40}", any::<u32>(), 0u64..4_000_000_000);
    let reached = check(strategy, |(text, secs, now)| {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let _ = parse_retry_after(&text, now);
        prop_assert_eq!(
            parse_retry_after(&secs.to_string(), now),
            Some(Duration::from_secs(u64::from(secs)))
        );
        Ok(true)
    });
    assert_reached(reached, 1.0);
}

fn location() -> impl Strategy<Value = Vec<u8>> {
    // Raw bytes, URL-ish text, and references built to land on each side of
    // the checks: same origin, other hosts and ports, userinfo, downgrades.
    let path = "(/[a-z0-9.]{0,6}){0,4}(\\?[a-z=&]{0,8})?";
    let reference = prop_oneof![
        path.prop_map(|p| p.to_string()),
        "[a-z0-9.]{1,8}(/[a-z0-9.]{0,6}){0,3}".prop_map(|p| p.to_string()),
        (
            prop_oneof![Just("http"), Just("https"), Just("ftp")],
            prop_oneof![
                Just("api.example:8443"),
                Just("API.example:8443"),
                Just("api.example"),
                Just("evil.example:8443"),
                Just("u:p@api.example:8443"),
            ],
            path,
        )
            .prop_map(|(scheme, authority, path)| format!("{scheme}://{authority}{path}")),
        ("//[a-z@.:0-9]{1,20}", path).prop_map(|(a, p)| format!("{a}{p}")),
    ];
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        "[a-zA-Z0-9:/?#@.\\[\\]%-]{0,60}".prop_map(String::into_bytes),
        reference.prop_map(String::into_bytes),
    ]
}

#[test]
fn status_urls_never_panic_and_never_leave_the_origin() {
    let request: Uri = "https://api.example:8443/v3/devices/7".parse().unwrap();
    let origin = Origin::of(&request).unwrap();
    let answered: Uri = "https://api.example:8443/v3/ops/1/status".parse().unwrap();
    let followed = AtomicU32::new(0);
    let refused = AtomicU32::new(0);
    check(location(), |location| {
        for base in [&request, &answered] {
            match resolve_status_url(&request, base, &location, &[]) {
                Ok(target) => {
                    followed.fetch_add(1, Ordering::Relaxed);
                    prop_assert!(matches!(target, Target::SameOrigin(_)));
                    prop_assert_eq!(Origin::of(target.uri()), Some(origin.clone()));
                    let authority = target.uri().authority().map(|a| a.as_str().to_owned());
                    prop_assert!(!authority.unwrap_or_default().contains('@'), "no userinfo");
                }
                Err(Refusal::OtherOrigin(_) | Refusal::Userinfo | Refusal::Downgrade) => {
                    refused.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {}
            }
        }
        Ok(true)
    });
    // Both sides of the origin check were taken many times.
    let (followed, refused) = (followed.into_inner(), refused.into_inner());
    assert!(followed >= CASES / 5, "followed {followed}");
    assert!(refused >= CASES / 20, "refused {refused}");
}

fn policy_like() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("[retry]".to_owned()),
        Just("[classify]".to_owned()),
        Just("[timeouts]".to_owned()),
        Just("[poll]".to_owned()),
        Just("[circuit_breaker]".to_owned()),
        Just("max_attempts = 3".to_owned()),
        Just("retryable = [429, 500]".to_owned()),
        Just("attempt = \"2s\"".to_owned()),
        Just("interval = \"1s\"".to_owned()),
        Just("enabled = false".to_owned()),
        "[a-z_]{1,12} = (-?[0-9]{1,4}|\"[0-9a-z]{0,5}\"|true|\\[[0-9, ]{0,12}\\])",
        "\\PC{0,20}",
    ];
    proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
}

#[test]
fn policy_text_never_panics_and_errors_name_the_line() {
    let loaded = AtomicU32::new(0);
    let reached = check(policy_like(), |text| {
        match Policy::from_toml_str(&text) {
            Ok(_) => {
                loaded.fetch_add(1, Ordering::Relaxed);
                Ok(false)
            }
            Err(error) => {
                // Every mistake in a string names the origin `<string>`.
                prop_assert!(error.to_string().starts_with("<string>"), "{}", error);
                Ok(true)
            }
        }
    });
    assert_reached(reached, 0.2);
    assert!(loaded.into_inner() >= CASES / 20, "some texts are policies");
}

#[test]
fn policy_values_are_checked_not_trusted() {
    let strategy = (
        prop_oneof![9 => -3i64..15, 1 => any::<i64>()],
        prop_oneof![9 => -0.2f64..1.2, 1 => any::<f64>()],
        prop_oneof![9 => "[0-9]{1,3}(B|KiB|MiB)", 1 => "[0-9]{1,25}[A-Za-z]{0,3}"],
        prop_oneof![9 => "[0-9]{1,3}(ms|s)", 1 => "[0-9]{1,25}(ms|s|m|h|d|)"],
    );
    let loaded = AtomicU32::new(0);
    let reached = check(strategy, |(attempts, rate, size, duration)| {
        let text = format!(
            "[retry]\nmax_attempts = {attempts}\nbuffer_max = \"{size}\"\nmax_retry_after = \"{duration}\"\n\
             [circuit_breaker]\nfailure_rate = {rate:?}\n"
        );
        let policy = Policy::from_toml_str(&text);
        if !(1..=10).contains(&attempts) || !(0.0..=1.0).contains(&rate) {
            prop_assert!(policy.is_err(), "accepted {}", text);
        }
        if let Ok(policy) = policy {
            loaded.fetch_add(1, Ordering::Relaxed);
            prop_assert_eq!(i64::from(policy.max_attempts()), attempts);
        }
        Ok(true)
    });
    assert_reached(reached, 1.0);
    let loaded = loaded.into_inner();
    assert!(loaded >= CASES / 10, "only {loaded} policies in bounds");
}
