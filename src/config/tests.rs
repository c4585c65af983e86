use super::*;
use crate::classify::StatusClass::{self, *};
use crate::retry::{Backoff, Jitter};
use std::time::Duration;

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

/// The connio table of DESIGN.md, written out independently of the preset file.
fn connio_expected(code: u16) -> StatusClass {
    match code {
        200 => Success,
        202 => Pollable,
        400 | 401 | 403 | 404 | 406 | 409 => Terminal,
        429 | 500 => Retryable,
        503 => Unsupported,
        100..=199 => Terminal,
        201..=399 => Success,
        400..=499 => Terminal,
        _ => Retryable,
    }
}

fn standard_expected(code: u16) -> StatusClass {
    match code {
        202 => Pollable,
        408 | 429 | 500 | 502 | 503 | 504 => Retryable,
        501 | 505 => Unsupported,
        100..=199 => Terminal,
        200..=399 => Success,
        400..=499 => Terminal,
        _ => Retryable,
    }
}

#[test]
fn every_status_under_both_presets() {
    let connio = Policy::preset("connio").unwrap();
    let standard = Policy::preset("standard").unwrap();
    for code in 100..=599 {
        assert_eq!(
            connio.classify(status(code)),
            connio_expected(code),
            "connio {code}"
        );
        assert_eq!(
            standard.classify(status(code)),
            standard_expected(code),
            "standard {code}"
        );
    }
    // Beyond what HTTP defines: terminal, never retried.
    for code in [600, 799, 999] {
        assert_eq!(connio.classify(status(code)), Terminal);
        assert_eq!(standard.classify(status(code)), Terminal);
    }
}

#[test]
fn shipped_files_load_and_match_the_presets() {
    for name in Policy::preset_names() {
        let path = format!("{}/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let from_file = Policy::from_path(&path).unwrap();
        let preset = Policy::preset(name).unwrap();
        assert_eq!(from_file.classify, preset.classify, "{name}");
        assert_eq!(from_file.retry, preset.retry, "{name}");
        assert_eq!(from_file.breaker, preset.breaker, "{name}");
        assert_eq!(from_file.poll, preset.poll, "{name}");
        assert_eq!(preset.timeouts, from_file.timeouts, "{name}");
        assert_eq!(
            preset.error_body_max_bytes(),
            ErrorBodySettings::DEFAULT_MAX_BYTES
        );
    }
}

#[test]
fn an_empty_policy_is_the_standard_preset() {
    let policy = Policy::from_toml_str("").unwrap();
    let standard = Policy::preset("standard").unwrap();
    for code in 100..=599 {
        assert_eq!(
            policy.classify(status(code)),
            standard_expected(code),
            "{code}"
        );
    }
    assert_eq!(policy.classify, standard.classify);
    assert_eq!(policy.retry, standard.retry);
    assert_eq!(Policy::default().classify, standard.classify);
}

#[test]
fn an_empty_policy_over_none_takes_the_defaults() {
    let policy = Policy::from_toml_str("extends = \"none\"").unwrap();
    assert_eq!(policy.classify, Policy::preset("none").unwrap().classify);
    assert_eq!(*policy.classify, ClassifySettings::default());
    assert_eq!(policy.classify(status(202)), Success);
    assert_eq!(policy.classify(status(204)), Success);
    assert_eq!(policy.classify(status(302)), Success);
    assert_eq!(policy.classify(status(429)), Terminal);
    assert_eq!(policy.classify(status(502)), Retryable);
    assert_eq!(policy.error_body_max_bytes(), 64 * 1024);
}

#[test]
fn fallbacks_and_sizes_can_be_set() {
    let policy = Policy::from_toml_str(
        "extends = \"none\"\n[classify]\nsuccess = [404]\n[classify.fallback]\n5xx = \"terminal\"\n3xx = \"terminal\"\n\
         [error_body]\nmax_bytes = \"1MiB\"\n",
    )
    .unwrap();
    assert_eq!(policy.classify(status(404)), Success);
    assert_eq!(policy.classify(status(500)), Terminal);
    assert_eq!(policy.classify(status(301)), Terminal);
    assert_eq!(policy.error_body_max_bytes(), 1 << 20);
    let policy = Policy::from_toml_str("[error_body]\nmax_bytes = 0\n").unwrap();
    assert_eq!(policy.error_body_max_bytes(), 0);
}

/// Loads `text` expecting an error at `line`:`column` whose message contains
/// every one of `needles`.
fn assert_error(text: &str, line: usize, column: usize, needles: &[&str]) {
    let error = Policy::from_toml_str(text).expect_err(text);
    assert_eq!(
        (error.line(), error.column()),
        (Some(line), Some(column)),
        "{error}"
    );
    for needle in needles {
        assert!(error.message().contains(needle), "{error} lacks {needle:?}");
    }
    assert!(
        error
            .to_string()
            .starts_with(&format!("<string>:{line}:{column}: "))
    );
    assert!(!error.to_string().contains('\n'), "{error}");
}

#[test]
fn unknown_sections_and_keys_point_at_the_line() {
    assert_error(
        "[classify]\nsuccess = [200]\n\n[retri]\n",
        4,
        2,
        &["unknown field `retri`"],
    );
    assert_error(
        "[classify]\nsucess = [200]\n",
        2,
        1,
        &["unknown field `sucess`", "success"],
    );
    assert_error(
        "[error_body]\nmax = 1\n",
        2,
        1,
        &["unknown field `max`", "max_bytes"],
    );
    assert_error(
        "[classify.fallback]\n6xx = \"terminal\"\n",
        2,
        1,
        &["unknown field `6xx`"],
    );
}

#[test]
fn a_status_in_two_classes_is_an_error() {
    assert_error(
        "[classify]\nretryable = [429, 500]\nterminal = [400,\n  429]\n",
        4,
        3,
        &["429", "classify.retryable", "classify.terminal"],
    );
    assert_error(
        "[classify]\nterminal = [400, 400]\n",
        2,
        18,
        &["listed twice"],
    );
}

#[test]
fn out_of_range_and_wrong_types_are_errors() {
    assert_error(
        "[classify]\nsuccess = [200, 99]\n",
        2,
        17,
        &["invalid status 99", "100 to 599"],
    );
    assert_error("[classify]\nsuccess = [600]\n", 2, 12, &["600"]);
    assert_error("[classify]\nsuccess = [-1]\n", 2, 12, &["-1"]);
    assert_error(
        "[classify]\nsuccess = [\"200\"]\n",
        2,
        12,
        &["expected i64"],
    );
    assert_error(
        "[classify]\nsuccess = 200\n",
        2,
        11,
        &["expected a sequence"],
    );
    assert_error(
        "[classify.fallback]\n4xx = \"retry\"\n",
        2,
        7,
        &["unknown variant `retry`", "terminal"],
    );
}

#[test]
fn bad_sizes_are_errors() {
    assert_error(
        "[error_body]\nmax_bytes = \"64 parsecs\"\n",
        2,
        13,
        &["invalid size", "64KiB"],
    );
    assert_error(
        "[error_body]\nmax_bytes = -5\n",
        2,
        13,
        &["invalid size -5"],
    );
    assert_error(
        "[error_body]\nmax_bytes = \"17MiB\"\n",
        2,
        13,
        &["out of bounds", "16777216 bytes"],
    );
}

#[test]
fn syntax_errors_point_at_the_line() {
    assert_error("[classify]\nsuccess = [200\n", 2, 15, &[]);
    assert_error("[classify\n", 1, 10, &[]);
    assert_error(
        "[classify]\nsuccess = [200]\nsuccess = [201]\n",
        3,
        1,
        &["duplicate key"],
    );
}

#[test]
fn files_are_named_in_errors() {
    let dir = std::env::temp_dir().join(format!("rebound-policy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[classify]\n\nsuccess = [1000]\n").unwrap();
    let error = Policy::from_path(&path).unwrap_err();
    assert_eq!(error.origin(), path.display().to_string());
    assert_eq!(
        error.to_string(),
        format!(
            "{}:3:12: invalid status 1000 in classify.success: expected a status code from 100 to 599",
            path.display()
        )
    );

    let missing = Policy::from_path(dir.join("missing.toml")).unwrap_err();
    assert_eq!(missing.line(), None);
    assert!(
        missing.to_string().contains("cannot read policy file"),
        "{missing}"
    );

    let huge = dir.join("huge.toml");
    std::fs::write(&huge, "#".repeat(MAX_POLICY_FILE_BYTES as usize + 10)).unwrap();
    let error = Policy::from_path(&huge).unwrap_err();
    assert!(error.message().contains("larger than"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unknown_presets_list_the_known_ones() {
    let error = Policy::preset("aggressive").unwrap_err();
    assert!(error.message().contains("connio, standard"), "{error}");
}

#[test]
fn the_presets_spell_out_the_defaults() {
    // The `none` base writes down each layer's own defaults, and the presets
    // keep them outside [classify].
    let none = Policy::preset("none").unwrap();
    let connio = Policy::preset("connio").unwrap();
    assert_eq!(*none.retry, RetrySettings::default());
    assert_eq!(none.breaker, BreakerSettings::default());
    assert_eq!(*none.poll, PollSettings::default());
    assert_eq!(none.timeouts, Timeouts::default());
    assert_eq!(none.retry, connio.retry);
    assert_eq!(none.breaker, connio.breaker);
    assert_eq!(none.poll, connio.poll);
    assert_eq!(connio.max_attempts(), 4);
    assert_eq!(connio.timeouts.attempt(), Duration::from_secs(10));
    assert_eq!(connio.timeouts.total(), Duration::from_secs(60));
}

#[test]
fn retry_and_timeouts_are_read() {
    let policy = Policy::from_toml_str(
        r#"
[retry]
max_attempts = 2
max_retry_after = "5s"
non_idempotent = "always"
add_idempotency_key = true
buffer_max = "1MiB"
[retry.backoff]
kind = "constant"
delay = "250ms"
jitter = "none"
[retry.budget]
enabled = false
capacity = 3
success_refill = 0.5
transient_cost = 2
throttling_cost = 0.5
reserve = "10s"
min_reserve = 1.5
refund = false
[timeouts]
attempt = "2s"
total = "5m"
"#,
    )
    .unwrap();
    let r = &policy.retry;
    assert_eq!(r.max_attempts, 2);
    assert_eq!(r.max_retry_after, Duration::from_secs(5));
    assert_eq!(r.non_idempotent, crate::retry::NonIdempotent::Always);
    assert!(r.add_idempotency_key);
    assert_eq!(r.buffer_max, 1 << 20);
    assert_eq!(
        r.backoff,
        Backoff::constant(Duration::from_millis(250), Jitter::None)
    );
    assert_eq!(policy.timeouts.attempt(), Duration::from_secs(2));
    assert_eq!(policy.timeouts.total(), Duration::from_secs(300));
    // Disabled, so not scaled: the capacity.
    assert_eq!(crate::Runtime::new(&policy).budget().available(), 3.0);
    let budget = policy.retry_settings().budget();
    assert_eq!(budget.reserve, Duration::from_secs(10));
    assert_eq!(budget.min_reserve, 1.5);
    assert!(!budget.refund);
    assert_eq!(budget.capacity, 3.0);
    // The presets scale the reserve with the call rate and refund retries
    // that succeed; the defaults are the presets'.
    for name in ["connio", "standard", "none"] {
        let preset = Policy::preset(name).unwrap().retry_settings().budget();
        assert_eq!(preset, crate::retry::BudgetSettings::default(), "{name}");
        assert_eq!(preset.reserve, Duration::from_secs(3), "{name}");
        assert_eq!(preset.min_reserve, 3.0, "{name}");
        assert!(preset.refund, "{name}");
    }
}

#[test]
fn retry_mistakes_point_at_the_line() {
    assert_error(
        "[retry]\nmax_attempts = 0\n",
        2,
        16,
        &["retry.max_attempts", "1 to 10"],
    );
    assert_error("[retry]\nmax_attempts = 11\n", 2, 16, &["1 to 10"]);
    assert_error(
        "[retry]\nmax_retry_after = \"2h\"\n",
        2,
        19,
        &["\"0ms\" to \"1h\""],
    );
    assert_error(
        "[retry]\nmax_retry_after = 30\n",
        2,
        19,
        &["invalid duration 30", "with its unit"],
    );
    assert_error(
        "[retry]\nnon_idempotent = \"sometimes\"\n",
        2,
        18,
        &["unknown variant `sometimes`", "always"],
    );
    assert_error(
        "[retry]\nbuffer_max = \"1GiB\"\n",
        2,
        14,
        &["retry.buffer_max"],
    );
    assert_error(
        "[retry.backoff]\nkind = \"linear\"\n",
        2,
        8,
        &["unknown variant `linear`"],
    );
    assert_error(
        "[retry.backoff]\njitter = \"some\"\n",
        2,
        10,
        &["decorrelated"],
    );
    assert_error(
        "[retry.backoff]\njitter = \"proportional\"\njitter_factor = 1.5\n",
        3,
        17,
        &["retry.backoff.jitter_factor", "0 to 1"],
    );
    assert_error(
        "[retry.backoff]\njitter = \"full\"\njitter_factor = 0.5\n",
        3,
        17,
        &["jitter_factor is for jitter = \"proportional\""],
    );
    assert_error(
        "[retry.backoff]\nmultiplier = 0.5\n",
        2,
        14,
        &["retry.backoff.multiplier", "1 to 10"],
    );
    assert_error(
        "[retry.backoff]\ninitial = \"2s\"\nmax = \"1s\"\n",
        3,
        7,
        &["below retry.backoff.initial"],
    );
    assert_error(
        "[retry.backoff]\nkind = \"constant\"\ninitial = \"1s\"\n",
        3,
        11,
        &["takes `delay`"],
    );
    assert_error(
        "[retry.backoff]\ndelay = \"1s\"\n",
        2,
        9,
        &["for kind = \"constant\""],
    );
    assert_error(
        "[retry.budget]\ncapacity = -1\n",
        2,
        12,
        &["retry.budget.capacity"],
    );
    assert_error(
        "[retry.budget]\ntransient_cost = 0\n",
        2,
        18,
        &["retry.budget.transient_cost"],
    );
    assert_error(
        "[retry.budget]\nreserve = \"2h\"\n",
        2,
        11,
        &["retry.budget.reserve"],
    );
    assert_error(
        "[retry.budget]\nmin_reserve = -1\n",
        2,
        15,
        &["retry.budget.min_reserve"],
    );
    assert_error(
        "[retry.budget]\nreserve = 3\n",
        2,
        11,
        &["expected a duration"],
    );
    assert_error(
        "[retry.budget]\nrefill = 1\n",
        2,
        1,
        &["unknown field `refill`", "success_refill"],
    );
    assert_error(
        "[timeouts]\nattempt = \"0ms\"\n",
        2,
        11,
        &["timeouts.attempt"],
    );
    assert_error("[timeouts]\ntotal = \"25h\"\n", 2, 9, &["timeouts.total"]);
    assert_error(
        "[timeouts]\nconnect = \"1s\"\n",
        2,
        1,
        &["unknown field `connect`"],
    );
}

#[test]
fn the_breaker_is_read() {
    let policy = Policy::from_toml_str(
        r#"
[circuit_breaker]
enabled = false
scope = "global"
consecutive_failures = 0
failure_rate = 0.25
window = 50
min_calls = 40
slow_call_duration = "2s"
open_for = "1s"
max_open_for = "10s"
half_open_probes = 3
probe_every = 20
wait_for_probe = "250ms"
count_throttling = true
max_hosts = 10
"#,
    )
    .unwrap();
    let b = policy.breaker;
    assert!(!b.enabled);
    assert_eq!(b.scope, crate::breaker::Scope::Global);
    assert_eq!(b.max_hosts, 10);
    let s = b;
    assert_eq!(
        (
            s.consecutive_failures,
            s.window,
            s.min_calls,
            s.half_open_probes
        ),
        (0, 50, 40, 3)
    );
    assert_eq!(s.failure_rate, 0.25);
    assert_eq!(s.slow_call_duration, Some(Duration::from_secs(2)));
    assert_eq!(
        (s.open_for, s.max_open_for),
        (Duration::from_secs(1), Duration::from_secs(10))
    );
    assert_eq!(
        (s.probe_every, s.wait_for_probe),
        (20, Duration::from_millis(250))
    );
    assert!(s.count_throttling);
    // Today's fail-fast breaker is a setting away.
    let fail_fast =
        Policy::from_toml_str("[circuit_breaker]\nprobe_every = 0\nwait_for_probe = \"0s\"\n")
            .unwrap()
            .breaker;
    assert_eq!(
        (fail_fast.probe_every(), fail_fast.wait_for_probe()),
        (0, Duration::ZERO)
    );
    assert_eq!(
        Policy::from_toml_str("")
            .unwrap()
            .breaker
            .slow_call_duration,
        None
    );
}

#[test]
fn breaker_mistakes_point_at_the_line() {
    assert_error(
        "[circuit_breaker]\nscope = \"path\"\n",
        2,
        9,
        &["unknown variant `path`", "host"],
    );
    assert_error(
        "[circuit_breaker]\nfailure_rate = 50\n",
        2,
        16,
        &["failure_rate", "0.5 is 50%"],
    );
    assert_error(
        "[circuit_breaker]\nwindow = 0\n",
        2,
        10,
        &["circuit_breaker.window", "1 to 1000"],
    );
    assert_error(
        "[circuit_breaker]\nwindow = 10\nmin_calls = 11\n",
        3,
        13,
        &["min_calls", "1 to 10"],
    );
    assert_error(
        "[circuit_breaker]\nopen_for = \"10s\"\nmax_open_for = \"5s\"\n",
        3,
        16,
        &["max_open_for"],
    );
    assert_error(
        "[circuit_breaker]\nhalf_open_probes = 0\n",
        2,
        20,
        &["half_open_probes"],
    );
    assert_error(
        "[circuit_breaker]\nprobe_every = -1\n",
        2,
        15,
        &["circuit_breaker.probe_every", "0 to 10000"],
    );
    assert_error(
        "[circuit_breaker]\n\nwait_for_probe = \"2h\"\n",
        3,
        18,
        &["circuit_breaker.wait_for_probe", "1h"],
    );
    assert_error(
        "[circuit_breaker]\nwait_for_probe = 5\n",
        2,
        18,
        &["duration"],
    );
    assert_error(
        "[circuit_breaker]\nslow_call_duration = \"0ms\"\n",
        2,
        22,
        &["slow_call_duration"],
    );
    assert_error("[circuit_breaker]\nmax_hosts = 0\n", 2, 13, &["max_hosts"]);
    assert_error(
        "[circuit_breaker]\nthreshold = 3\n",
        2,
        1,
        &["unknown field `threshold`", "consecutive_failures"],
    );
}

#[test]
fn poll_is_read() {
    let policy = Policy::from_toml_str(
        r#"
[poll]
on_accepted = "error"
location_headers = ["X-Status"]
interval = "250ms"
multiplier = 3
max_interval = "2s"
max_polls = 5
max_duration = "10m"
allowed_origins = ["https://ops.example", "http://127.0.0.1:8080"]
forward_credentials = true
secret_headers = ["X-Api-Key"]
"#,
    )
    .unwrap();
    let p = policy.poll;
    assert_eq!(p.on_accepted, crate::poll::OnAccepted::Error);
    assert_eq!(p.location_headers, ["x-status"]);
    assert_eq!(
        (p.interval, p.max_interval),
        (Duration::from_millis(250), Duration::from_secs(2))
    );
    assert_eq!(
        (p.multiplier, p.max_polls, p.max_duration),
        (3.0, 5, Duration::from_secs(600))
    );
    assert_eq!(p.allowed_origins.len(), 2);
    assert!(p.forward_credentials);
    assert_eq!(p.secret_headers, ["x-api-key"]);
    let connio = Policy::preset("connio").unwrap();
    assert_eq!(
        connio.poll.location_headers,
        ["operation-location", "location"]
    );
    // Clones of a policy share its settings.
    assert!(Arc::ptr_eq(&connio.poll, &connio.clone().poll));
}

#[test]
fn poll_mistakes_point_at_the_line() {
    assert_error(
        "[poll]\non_accepted = \"ignore\"\n",
        2,
        15,
        &["unknown variant `ignore`", "succeed"],
    );
    assert_error(
        "[poll]\nlocation_headers = [\"Location\", \"Bad Header\"]\n",
        2,
        33,
        &["invalid header name \"Bad Header\""],
    );
    assert_error("[poll]\ninterval = \"0ms\"\n", 2, 12, &["poll.interval"]);
    assert_error(
        "[poll]\ninterval = \"5s\"\nmax_interval = \"1s\"\n",
        3,
        16,
        &["poll.max_interval"],
    );
    assert_error("[poll]\nmultiplier = 0.5\n", 2, 14, &["poll.multiplier"]);
    assert_error(
        "[poll]\nmax_polls = 0\n",
        2,
        13,
        &["poll.max_polls", "1 to 1000"],
    );
    assert_error(
        "[poll]\nmax_duration = \"2d\"\n",
        2,
        16,
        &["invalid duration"],
    );
    assert_error(
        "[poll]\nallowed_origins = [\"ops.example\"]\n",
        2,
        20,
        &["invalid origin", "scheme://host"],
    );
    assert_error(
        "[poll]\nallowed_origins = [\"https://ops.example/path\"]\n",
        2,
        20,
        &["invalid origin"],
    );
    assert_error(
        "[poll]\nsecret_headers = [\"\"]\n",
        2,
        19,
        &["invalid header name"],
    );
    assert_error(
        "[poll]\nfollow_redirects = true\n",
        2,
        1,
        &["unknown field `follow_redirects`"],
    );
}

#[test]
fn proportional_jitter_is_written_in_the_file() {
    let policy = Policy::from_toml_str(
        "[retry.backoff]\ninitial = \"1s\"\njitter = \"proportional\"\njitter_factor = 0.25\n",
    )
    .unwrap();
    assert_eq!(
        policy.retry.backoff,
        Backoff::exponential(
            Duration::from_secs(1),
            2.0,
            Duration::from_secs(5),
            Jitter::Proportional(0.25)
        )
    );
    let default = Policy::from_toml_str("[retry.backoff]\njitter = \"proportional\"\n").unwrap();
    assert_eq!(
        default.retry.backoff,
        Backoff::exponential(
            Duration::from_millis(100),
            2.0,
            Duration::from_secs(5),
            Jitter::Proportional(0.5)
        )
    );
}

#[test]
fn error_body_formats_and_pointers_load() {
    use crate::classify::ErrorBodyFormat;
    let policy = Policy::from_toml_str(
        "[error_body]\nformat = \"fields\"\n\n[error_body.fields]\nerrors = \"/error\"\n\
         code = \"/code\"\ncause = \"/status\"\nmessage = \"/message\"\nmore_info_url = \"/a~1b\"\n",
    )
    .unwrap();
    let error_body = policy.classify_settings().error_body();
    assert_eq!(error_body.format(), ErrorBodyFormat::Fields);
    let fields = error_body.fields().unwrap();
    assert_eq!(fields.errors(), "/error");
    assert_eq!(fields.code(), Some("/code"));
    assert_eq!(fields.cause(), Some("/status"));
    assert_eq!(fields.message(), Some("/message"));
    assert_eq!(fields.more_info_url(), Some("/a~1b"));
    for (name, format) in [
        ("auto", ErrorBodyFormat::Auto),
        ("connio", ErrorBodyFormat::Connio),
        ("problem", ErrorBodyFormat::Problem),
    ] {
        let policy =
            Policy::from_toml_str(&format!("[error_body]\nformat = \"{name}\"\n")).unwrap();
        assert_eq!(policy.classify_settings().error_body().format(), format);
    }
    let default = Policy::from_toml_str("").unwrap();
    assert_eq!(
        default.classify_settings().error_body().format(),
        ErrorBodyFormat::Auto
    );
    assert_eq!(default.classify_settings().error_body().fields(), None);
}

#[test]
fn error_body_format_mistakes_point_at_the_line() {
    assert_error(
        "[error_body]\nformat = \"xml\"\n",
        2,
        10,
        &[
            "unknown variant `xml`",
            "`auto`, `connio`, `problem`, `fields`",
        ],
    );
    assert_error(
        "[error_body]\nformat = \"fields\"\n[error_body.fields]\ncode = \"code\"\n",
        4,
        8,
        &[
            "invalid JSON pointer \"code\"",
            "error_body.fields.code",
            "\"/\"",
        ],
    );
    assert_error(
        "[error_body.fields]\ncode = \"/code\"\nmessage = \"/a~2\"\n",
        3,
        11,
        &["error_body.fields.message", "\"~\" must be followed by 0"],
    );
    assert_error(
        "[error_body]\nformat = \"connio\"\n\n[error_body.fields]\ncode = \"/code\"\n",
        4,
        1,
        &["error_body.fields is never read", "format = \"connio\""],
    );
    assert_error(
        "[error_body]\nformat = \"problem\"\nfields = { code = \"/code\" }\n",
        3,
        10,
        &["error_body.fields is never read", "format = \"problem\""],
    );
    assert_error(
        "[error_body]\nmax_bytes = \"8KiB\"\nformat = \"fields\"\n",
        3,
        10,
        &["format = \"fields\" needs [error_body.fields]"],
    );
    assert_error(
        "[error_body.fields]\nerrors = \"/error\"\n",
        1,
        1,
        &["error_body.fields names no field"],
    );
    assert_error(
        "[error_body.fields]\ncode = \"/code\"\nstatus = \"/status\"\n",
        3,
        1,
        &["unknown field `status`", "more_info_url"],
    );
}

#[test]
fn the_error_body_examples_of_the_policies_readme_read_their_bodies() {
    // Each TOML example of the `[error_body]` section loads, and reads errors
    // out of the JSON body the text before it shows.
    let readme = include_str!("../../policies/README.md");
    let start = readme.find("## `[error_body]`").unwrap();
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let chunks: Vec<&str> = section.split("```toml\n").collect();
    assert_eq!(chunks.len(), 5, "four examples");
    for pair in chunks.windows(2) {
        let (before, block) = (pair[0], pair[1].split("```").next().unwrap());
        let policy = Policy::from_toml_str(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
        let body_start = before.rfind("`{").unwrap() + 1;
        let body = &before[body_start..];
        let body = &body[..body.find("}`").unwrap() + 1];
        let errors = crate::classify::parse_error_body(
            policy.classify_settings().error_body(),
            None,
            body.as_bytes(),
        );
        assert_eq!(errors.len(), 1, "{body}\n{block}");
        assert!(errors[0].code().is_some(), "{body}\n{block}");
    }
}
