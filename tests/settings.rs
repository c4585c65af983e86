//! Each layer's settings built in code, from a policy file and through serde
//! are the same settings, checked the same way.

use std::time::Duration;

use http::StatusCode;
use tower_rebound::breaker::BreakerSettings;
use tower_rebound::classify::{
    ClassifySettings, ErrorBodyFormat, ErrorBodySettings, ErrorFields, StatusClass,
};
use tower_rebound::poll::PollSettings;
use tower_rebound::retry::{Backoff, Jitter, RetrySettings};
use tower_rebound::{Policy, SettingsError, Timeouts};

/// The `connio` preset, written in code with no TOML.
fn connio_in_code() -> Result<Policy, SettingsError> {
    Ok(Policy::default()
        .with_classify(
            ClassifySettings::builder()
                .success([200])
                .pollable([202])
                .terminal([400, 401, 403, 404, 406, 409])
                .retryable([429, 500])
                .unsupported([503])
                .error_body(ErrorBodySettings::new(64 * 1024)?)
                .build()?,
        )
        .with_retry(
            RetrySettings::builder()
                .max_attempts(4)
                .backoff(Backoff::exponential(
                    Duration::from_millis(100),
                    2.0,
                    Duration::from_secs(5),
                    Jitter::Full,
                ))
                .build()?,
        )
        .with_breaker(
            BreakerSettings::builder()
                .consecutive_failures(10)
                .open_for(Duration::from_secs(5))
                .max_open_for(Duration::from_secs(10))
                .build()?,
        )
        .with_poll(
            PollSettings::builder()
                .interval(Duration::from_secs(1))
                .multiplier(1.5)
                .build()?,
        )
        .with_timeouts(Timeouts::new(
            Duration::from_secs(10),
            Duration::from_secs(60),
        )?))
}

#[test]
fn a_policy_built_in_code_equals_the_preset() {
    let code = connio_in_code().unwrap();
    let file = Policy::preset("connio").unwrap();
    for status in 100..=599 {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(code.classify(status), file.classify(status), "{status}");
    }
    assert_eq!(code.classify_settings(), file.classify_settings());
    assert_eq!(code.retry_settings(), file.retry_settings());
    assert_eq!(code.breaker_settings(), file.breaker_settings());
    assert_eq!(code.poll_settings(), file.poll_settings());
    assert_eq!(code.timeouts(), file.timeouts());
}

#[test]
fn serde_loads_the_same_policy_as_toml() {
    // Any serde format, as figment or config-rs would hand it over.
    let json = serde_json::json!({
        "classify": {"retryable": [429, 500], "pollable": [202], "unsupported": [503]},
        "error_body": {"max_bytes": "8KiB", "fields": {"errors": "/error", "code": "/code"}},
        "retry": {"max_attempts": 3, "backoff": {"initial": "200ms", "jitter": "none"}},
        "timeouts": {"attempt": "2s", "total": "30s"},
        "circuit_breaker": {"consecutive_failures": 5, "scope": "global"},
        "poll": {"interval": "500ms", "allowed_origins": ["https://ops.example"]},
    });
    let from_json: Policy = serde_json::from_value(json).unwrap();
    let from_toml = Policy::from_toml_str(
        r#"
[classify]
retryable = [429, 500]
pollable = [202]
unsupported = [503]
[error_body]
max_bytes = "8KiB"
[error_body.fields]
errors = "/error"
code = "/code"
[retry]
max_attempts = 3
[retry.backoff]
initial = "200ms"
jitter = "none"
[timeouts]
attempt = "2s"
total = "30s"
[circuit_breaker]
consecutive_failures = 5
scope = "global"
[poll]
interval = "500ms"
allowed_origins = ["https://ops.example"]
"#,
    )
    .unwrap();
    assert_eq!(from_json.classify_settings(), from_toml.classify_settings());
    let fields = from_json.classify_settings().error_body().fields().unwrap();
    assert_eq!((fields.errors(), fields.code()), ("/error", Some("/code")));
    assert_eq!(from_json.retry_settings(), from_toml.retry_settings());
    assert_eq!(from_json.breaker_settings(), from_toml.breaker_settings());
    assert_eq!(from_json.poll_settings(), from_toml.poll_settings());
    assert_eq!(from_json.timeouts(), from_toml.timeouts());
    assert_eq!(
        from_json.classify(StatusCode::SERVICE_UNAVAILABLE),
        StatusClass::Unsupported
    );

    // One section alone deserializes too.
    let retry: RetrySettings =
        serde_json::from_value(serde_json::json!({"max_attempts": 2})).unwrap();
    assert_eq!(retry.max_attempts(), 2);
}

#[test]
fn serde_errors_name_the_key() {
    let cases = [
        (
            serde_json::json!({"retry": {"max_attempts": 0}}),
            "retry.max_attempts is out of bounds: expected 1 to 10",
        ),
        (
            serde_json::json!({"classify": {"retryable": [700]}}),
            "invalid status 700 in classify.retryable",
        ),
        (
            serde_json::json!({"circuit_breaker": {"window": 10, "min_calls": 11}}),
            "circuit_breaker.min_calls is out of bounds: expected 1 to 10",
        ),
        (
            serde_json::json!({"poll": {"allowed_origins": ["ops.example"]}}),
            "invalid origin \"ops.example\" in poll.allowed_origins",
        ),
        (
            serde_json::json!({"retry": {"max_attempts": 2, "typo": 1}}),
            "unknown field `typo`",
        ),
        (
            serde_json::json!({"error_body": {"format": "problem", "fields": {"code": "/c"}}}),
            "error_body.fields is never read with format = \"problem\"",
        ),
        (
            serde_json::json!({"error_body": {"fields": {"code": "c"}}}),
            "invalid JSON pointer \"c\" in error_body.fields.code",
        ),
    ];
    for (json, needle) in cases {
        let error = serde_json::from_value::<Policy>(json.clone()).unwrap_err();
        assert!(error.to_string().contains(needle), "{json}: {error}");
    }
}

#[test]
fn code_and_files_are_checked_the_same_way() {
    // The same mistake, made in a file and in code, gives the same message.
    let cases: [(&str, Result<(), SettingsError>); 8] = [
        (
            "[retry]\nmax_attempts = 11\n",
            RetrySettings::builder().max_attempts(11).build().map(drop),
        ),
        (
            "[retry.backoff]\nmultiplier = 20\n",
            RetrySettings::builder()
                .backoff(Backoff::exponential(
                    Duration::from_millis(100),
                    20.0,
                    Duration::from_secs(5),
                    Jitter::Full,
                ))
                .build()
                .map(drop),
        ),
        (
            "[classify]\nretryable = [500]\nterminal = [500]\n",
            ClassifySettings::builder()
                .retryable([500])
                .terminal([500])
                .build()
                .map(drop),
        ),
        (
            "[circuit_breaker]\nopen_for = \"0ms\"\n",
            BreakerSettings::builder()
                .open_for(Duration::ZERO)
                .build()
                .map(drop),
        ),
        (
            "[poll]\nmax_polls = 0\n",
            PollSettings::builder().max_polls(0).build().map(drop),
        ),
        (
            "[timeouts]\ntotal = \"2h\"\n",
            Timeouts::new(Duration::from_secs(10), Duration::from_secs(7200)).map(drop),
        ),
        (
            "[error_body]\nformat = \"fields\"\n",
            ErrorBodySettings::builder()
                .format(ErrorBodyFormat::Fields)
                .build()
                .map(drop),
        ),
        (
            "[error_body.fields]\nerrors = \"/error\"\ncode = \"code\"\n",
            ErrorFields::builder()
                .errors("/error")
                .code("code")
                .build()
                .map(drop),
        ),
    ];
    for (text, in_code) in cases {
        let from_file = Policy::from_toml_str(text).unwrap_err();
        let in_code = in_code.unwrap_err();
        assert_eq!(from_file.message(), in_code.message(), "{text}");
        // The file's error points at the line of the value.
        assert!(from_file.line().is_some(), "{from_file}");
    }
}

#[test]
fn a_backoff_from_code_is_held_to_the_file_bounds() {
    let policy = Policy::preset("connio").unwrap();
    let too_long = Backoff::constant(Duration::from_secs(120), Jitter::None);
    let error = policy.with_backoff(too_long).unwrap_err();
    assert_eq!(error.key(), "retry.backoff.initial");
    let fine = Backoff::constant(Duration::from_secs(1), Jitter::None);
    assert_eq!(
        policy
            .with_backoff(fine)
            .unwrap()
            .retry_settings()
            .backoff(),
        fine
    );
}

#[test]
fn serde_loads_routes_too() {
    let json = serde_json::json!({
        "retry": {"max_attempts": 4},
        "routes": [
            {"name": "writes", "methods": ["POST"], "retry": {"max_attempts": 2}},
            {"host": "*.example.com", "timeouts": {"total": "5m"}},
        ],
    });
    let policy: Policy = serde_json::from_value(json).unwrap();
    let routes = policy.routes();
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].name(), Some("writes"));
    assert_eq!(routes[0].retry_settings().max_attempts(), 2);
    assert_eq!(routes[1].retry_settings().max_attempts(), 4);
    assert_eq!(routes[1].timeouts().total(), Duration::from_secs(300));

    let bad = serde_json::json!({"routes": [{"host": "a b"}]});
    let error = serde_json::from_value::<Policy>(bad).unwrap_err();
    assert!(
        error.to_string().contains("invalid host pattern"),
        "{error}"
    );
}

#[test]
fn every_policy_example_in_the_docs_loads() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut seen = 0;
    for doc in ["README.md", "policies/README.md"] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        let mut lines = text.lines().enumerate();
        while let Some((start, line)) = lines.next() {
            if line.trim() != "```toml" {
                continue;
            }
            let block: Vec<&str> = lines
                .by_ref()
                .map(|(_, l)| l)
                .take_while(|l| l.trim() != "```")
                .collect();
            let block = block.join("\n");
            // A Cargo manifest (how to depend on the crate) is no policy.
            if block.contains("[dependencies]") {
                continue;
            }
            if let Err(e) = Policy::from_toml_str(&block) {
                panic!(
                    "{doc}:{}: the example does not load: {e}\n{block}",
                    start + 1
                );
            }
            seen += 1;
        }
    }
    assert!(seen >= 8, "only {seen} examples found");
}
