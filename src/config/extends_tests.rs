//! `extends`, warnings, the effective policy, and rules in files.

use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::classify::RuleInput;
use crate::classify::StatusClass::{self, *};

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap()
}

/// A fresh folder of policy files, named after the test.
fn folder(test: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rebound-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn classes(policy: &Policy, codes: &[u16]) -> Vec<StatusClass> {
    codes.iter().map(|&c| policy.classify(status(c))).collect()
}

#[test]
fn a_file_with_only_retry_keeps_the_standard_table() {
    let policy = Policy::from_toml_str("[retry]\nmax_attempts = 3\n").unwrap();
    assert_eq!(policy.max_attempts(), 3);
    assert_eq!(
        classes(&policy, &[429, 503, 202, 404]),
        [Retryable, Retryable, Pollable, Terminal]
    );
    // Over `none`, as before there were bases: 429 terminal, 202 a success.
    let policy = Policy::from_toml_str("extends = \"none\"\n[retry]\nmax_attempts = 3\n").unwrap();
    assert_eq!(
        classes(&policy, &[429, 503, 202, 404]),
        [Terminal, Retryable, Success, Terminal]
    );
}

#[test]
fn a_listed_status_leaves_the_base_class_without_an_error() {
    let policy =
        Policy::from_toml_str("extends = \"connio\"\n[classify]\nretryable = [503]\n").unwrap();
    assert_eq!(
        classes(&policy, &[503, 429, 500, 202]),
        [Retryable, Terminal, Retryable, Pollable]
    );
    // Within one file, a status in two lists is still a mistake.
    let error = Policy::from_toml_str(
        "extends = \"connio\"\n[classify]\nretryable = [503]\nterminal = [503]\n",
    )
    .unwrap_err();
    assert_eq!(
        (error.line(), error.column()),
        (Some(4), Some(13)),
        "{error}"
    );
}

#[test]
fn another_backoff_kind_over_a_preset_loads() {
    let policy = Policy::from_toml_str(
        "[retry.backoff]\nkind = \"constant\"\ndelay = \"250ms\"\njitter = \"none\"\n",
    )
    .unwrap();
    assert_eq!(
        policy.retry_settings().backoff(),
        crate::retry::Backoff::constant(
            std::time::Duration::from_millis(250),
            crate::retry::Jitter::None
        )
    );
}

#[test]
fn files_extend_files_relative_to_themselves() {
    let dir = folder(
        "relative",
        &[
            (
                "base/root.toml",
                "extends = \"connio\"\n[retry]\nmax_attempts = 2\n",
            ),
            (
                "base/mid.toml",
                "extends = \"root.toml\"\n[timeouts]\ntotal = \"9s\"\n",
            ),
            (
                "app.toml",
                "extends = \"base/mid.toml\"\n[classify]\nretryable = [503]\n",
            ),
        ],
    );
    let policy = Policy::from_path(dir.join("app.toml")).unwrap();
    assert_eq!(policy.max_attempts(), 2);
    assert_eq!(policy.timeouts().total(), std::time::Duration::from_secs(9));
    assert_eq!(
        classes(&policy, &[503, 429, 409]),
        [Retryable, Terminal, Terminal]
    );
}

#[test]
fn a_mistake_in_a_base_is_shown_in_the_base() {
    let dir = folder(
        "base-mistake",
        &[
            ("base.toml", "[retry]\n\nmax_attempts = 0\n"),
            (
                "app.toml",
                "extends = \"base.toml\"\n[timeouts]\ntotal = \"9s\"\n",
            ),
            ("typo.toml", "[retry]\nmax_atempts = 2\n"),
            ("uses-typo.toml", "extends = \"typo.toml\"\n"),
        ],
    );
    let error = Policy::from_path(dir.join("app.toml")).unwrap_err();
    assert!(error.origin().ends_with("base.toml"), "{error}");
    assert_eq!(
        (error.line(), error.column()),
        (Some(3), Some(16)),
        "{error}"
    );
    let error = Policy::from_path(dir.join("uses-typo.toml")).unwrap_err();
    assert!(error.origin().ends_with("typo.toml"), "{error}");
    assert_eq!(error.line(), Some(2), "{error}");
    assert!(error.message().contains("max_atempts"), "{error}");
}

#[test]
fn cycles_missing_files_and_deep_chains_point_at_extends() {
    let dir = folder(
        "cycle",
        &[
            ("a.toml", "# a\nextends = \"b.toml\"\n"),
            ("b.toml", "\n\n  extends = \"a.toml\"\n"),
            ("self.toml", "extends = \"self.toml\"\n"),
            (
                "missing.toml",
                "[retry]\nmax_attempts = 2\n[poll]\n\n\nextends = 1\n",
            ),
            ("gone.toml", "\nextends = \"nowhere.toml\"\n"),
        ],
    );
    let error = Policy::from_path(dir.join("a.toml")).unwrap_err();
    assert!(error.origin().ends_with("b.toml"), "{error}");
    assert_eq!(
        (error.line(), error.column()),
        (Some(3), Some(13)),
        "{error}"
    );
    assert!(error.message().contains("cycle"), "{error}");
    assert!(error.message().contains("a.toml -> "), "{error}");
    let error = Policy::from_path(dir.join("self.toml")).unwrap_err();
    assert_eq!(
        (error.line(), error.column()),
        (Some(1), Some(11)),
        "{error}"
    );
    assert!(error.message().contains("cycle"), "{error}");
    let error = Policy::from_path(dir.join("gone.toml")).unwrap_err();
    assert_eq!(
        (error.line(), error.column()),
        (Some(2), Some(11)),
        "{error}"
    );
    assert!(error.message().contains("nowhere.toml"), "{error}");
    assert!(
        error.message().contains("connio, standard, none"),
        "{error}"
    );
    // `extends` under [poll] is an unknown key of [poll].
    let error = Policy::from_path(dir.join("missing.toml")).unwrap_err();
    assert_eq!(error.line(), Some(6), "{error}");

    // Eight files extend one another; a ninth is too many.
    let mut files: Vec<(String, String)> = (1..=8)
        .map(|i| {
            (
                format!("{i}.toml"),
                format!("extends = \"{}.toml\"\n", i + 1),
            )
        })
        .collect();
    files.push(("9.toml".into(), "extends = \"connio\"\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let dir = folder("deep", &refs);
    let error = Policy::from_path(dir.join("1.toml")).unwrap_err();
    assert!(error.origin().ends_with("8.toml"), "{error}");
    assert_eq!(
        (error.line(), error.column()),
        (Some(1), Some(11)),
        "{error}"
    );
    assert!(error.message().contains("at most 8"), "{error}");
    assert!(Policy::from_path(dir.join("2.toml")).is_ok());
}

#[test]
fn serde_extends_presets_only() {
    let table: toml::Table =
        toml::from_str("extends = \"connio\"\n[retry]\nmax_attempts = 2\n").unwrap();
    let policy = Policy::try_from(table).unwrap();
    assert_eq!(classes(&policy, &[503, 200]), [Unsupported, Success]);
    let table: toml::Table = toml::from_str("extends = \"base.toml\"\n").unwrap();
    let error = Policy::try_from(table).unwrap_err();
    assert_eq!(error.key(), "extends");
    let policy: Policy =
        serde_json::from_value(serde_json::json!({"retry": {"max_attempts": 2}})).unwrap();
    assert_eq!(policy.classify(status(429)), Retryable);
}

/// `effective_toml` of the policy at `path`, loaded back.
fn round_trip(path: &std::path::Path) -> (Policy, Policy, String) {
    let loaded = Policy::load(path).unwrap();
    let text = loaded.effective_toml();
    let again = Policy::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    (loaded.into_policy(), again, text)
}

#[test]
fn the_effective_policy_loads_to_the_same_policy() {
    let dir = folder(
        "effective",
        &[
            (
                "base.toml",
                "extends = \"connio\"\n[retry.backoff]\nkind = \"constant\"\ndelay = \"2s\"\n\
                 [[routes]]\nname = \"writes\"\nmethods = [\"POST\"]\n[routes.retry]\nmax_attempts = 2\n",
            ),
            (
                "app.toml",
                "extends = \"base.toml\"\n[classify]\nretryable = [503]\n\
                 [[classify.rules]]\nname = \"throttled\"\nstatus = 400\ncode = \"Throttled\"\nclass = \"retryable\"\n\
                 [poll]\nallowed_origins = [\"https://ops.example\"]\n",
            ),
            ("empty.toml", ""),
            (
                "none.toml",
                "extends = \"none\"\n[retry.backoff]\njitter = \"proportional\"\njitter_factor = 0.25\n",
            ),
        ],
    );
    for name in ["app.toml", "empty.toml", "none.toml"] {
        let (policy, again, text) = round_trip(&dir.join(name));
        assert_eq!(
            format!("{policy:?}"),
            format!("{again:?}"),
            "{name}:\n{text}"
        );
        assert!(text.contains("extends = \"none\""), "{text}");
        for section in [
            "[classify]",
            "[retry.backoff]",
            "[circuit_breaker]",
            "[poll]",
            "[timeouts]",
        ] {
            assert!(text.contains(section), "{name} lacks {section}:\n{text}");
        }
    }
    let (policy, _, text) = round_trip(&dir.join("app.toml"));
    assert_eq!(policy.routes().len(), 1);
    assert_eq!(classes(&policy, &[503, 400]), [Retryable, Terminal]);
    assert!(text.contains("Throttled"), "{text}");
    for name in Policy::preset_names() {
        let path = format!("{}/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let (policy, again, text) = round_trip(std::path::Path::new(&path));
        assert_eq!(
            format!("{policy:?}"),
            format!("{again:?}"),
            "{name}:\n{text}"
        );
        assert_eq!(
            format!("{policy:?}"),
            format!("{:?}", Policy::preset(name).unwrap())
        );
    }
}

/// The warnings of `text` as `LINE:COL: message`.
fn warnings(test: &str, text: &str) -> Vec<String> {
    let dir = folder(test, &[("policy.toml", text)]);
    let loaded = Policy::load(dir.join("policy.toml")).unwrap();
    loaded
        .warnings()
        .iter()
        .map(|w| {
            assert!(w.to_string().contains(": warning: "), "{w}");
            format!("{}:{}: {}", w.line(), w.column(), w.message())
        })
        .collect()
}

#[test]
fn probable_mistakes_are_warned_at_their_line() {
    for name in Policy::preset_names() {
        let path = format!("{}/policies/{name}.toml", env!("CARGO_MANIFEST_DIR"));
        let loaded = Policy::load(&path).unwrap();
        // `none` is a base, not a policy to use alone: it says so.
        let expected = if name == "none" { 2 } else { 0 };
        assert_eq!(
            loaded.warnings().len(),
            expected,
            "{name}: {:?}",
            loaded.warnings()
        );
    }
    let found = warnings("w429", "[classify]\nterminal = [400, 429]\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("2:18: 429 Too Many Requests is terminal"),
        "{found:?}"
    );

    let found = warnings(
        "wpoll",
        "extends = \"none\"\n[classify]\nretryable = [429]\n\n[poll]\ninterval = \"2s\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("5:1: [poll] is set but no status is pollable"),
        "{found:?}"
    );

    let found = warnings(
        "wretry",
        "extends = \"none\"\n[classify]\nsuccess = [429]\n[classify.fallback]\n5xx = \"terminal\"\n[retry]\nmax_attempts = 3\n",
    );
    assert!(
        found.iter().any(|w| w.starts_with("3:12: 429")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|w| w.starts_with("7:16: retry.max_attempts is 3 but no status is retryable")),
        "{found:?}"
    );

    let found = warnings(
        "wstorm",
        "[retry.budget]\nenabled = false\n[circuit_breaker]\nenabled = false\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("2:11: both the retry budget and the circuit breaker are off"),
        "{found:?}"
    );

    let found = warnings("wreserve", "[retry.budget]\nmin_reserve = 0.5\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "2:15: retry.max_attempts is 4 but a new process's retry budget holds 0.5 tokens, 0 retries"
        ),
        "{found:?}"
    );
    // At the capacity the bucket is fixed, and holds the capacity: less
    // than one retry costs.
    let found = warnings(
        "wfixed",
        "[retry.budget]\ncapacity = 0.5\nmin_reserve = 0.5\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("raise retry.budget.capacity and retry.budget.min_reserve to 3"),
        "{found:?}"
    );
    let found = warnings(
        "wfixed2",
        "[retry.budget]\ncapacity = 5\nmin_reserve = 5\n[retry]\nmax_attempts = 6\n",
    );
    assert!(found.is_empty(), "{found:?}");
    let found = warnings(
        "wtimeouts",
        "[timeouts]\ntotal = \"5s\"\nattempt = \"10s\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("3:11: timeouts.attempt (10s) is longer than timeouts.total (5s)"),
        "{found:?}"
    );

    let found = warnings(
        "wwait",
        "[timeouts]\ntotal = \"3s\"\nattempt = \"1s\"\n[circuit_breaker]\nwait_for_probe = \"3s\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "5:18: circuit_breaker.wait_for_probe (3s) is not shorter than timeouts.total (3s)"
        ),
        "{found:?}"
    );

    let found = warnings(
        "wlimit",
        "[rate_limit]\nenabled = true\nper_second = 100\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0]
            .starts_with("4:11: rate_limit.fallback_per_second (100) is the whole shared limit"),
        "{found:?}"
    );
    let found = warnings(
        "wlimit2",
        "[rate_limit]\nenabled = true\nper_second = 100\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379\"\nfallback_per_second = 25\n",
    );
    assert!(found.is_empty(), "{found:?}");

    // A route that makes its own mistake is warned about once, as a route.
    let found = warnings(
        "wroute",
        "[[routes]]\nmethods = [\"POST\"]\n[routes.classify]\nsuccess = [429]\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("4:12: route 0: 429 Too Many Requests is success"),
        "{found:?}"
    );

    // A rule that retries 429s silences the first warning.
    let found = warnings(
        "wrule",
        "[classify]\nterminal = [429]\n[[classify.rules]]\nstatus = 429\nheader = \"Retry-After: 1\"\nclass = \"retryable\"\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn rules_are_read_from_the_file_and_checked() {
    let policy = Policy::from_toml_str(
        "[[classify.rules]]\nname = \"throttled\"\nstatus = [400, 409]\ncode = [\"Throttled\", \"SlowDown\"]\nclass = \"retryable\"\n\
         [[classify.rules]]\nstatus = 200\nheader = \"X-Status:   failed\"\nclass = \"terminal\"\n",
    )
    .unwrap();
    let classifier = policy.classify_settings().classifier();
    assert_eq!(classifier.rules().len(), 2);
    assert_eq!(classifier.rule_name(0), Some("throttled"));
    let mut headers = http::HeaderMap::new();
    headers.insert("x-status", "failed".parse().unwrap());
    let decide = |code: u16, headers: &http::HeaderMap, codes: Option<&[&str]>| {
        let input = RuleInput::new(status(code), headers);
        let input = match codes {
            Some(codes) => input.with_codes(codes),
            None => input,
        };
        let d = classifier.decide(&input);
        (d.class(), d.rule())
    };
    let none = http::HeaderMap::new();
    assert_eq!(decide(200, &headers, None), (Terminal, Some(1)));
    assert_eq!(decide(200, &none, None), (Success, None));
    assert_eq!(decide(400, &none, None), (Terminal, None));
    assert_eq!(
        decide(409, &none, Some(&["Other", "SlowDown"])),
        (Retryable, Some(0))
    );
    assert_eq!(decide(404, &none, Some(&["Throttled"])), (Terminal, None));

    let error_at = |text: &str| {
        let e = Policy::from_toml_str(text).unwrap_err();
        (
            e.line().unwrap(),
            e.column().unwrap(),
            e.message().to_owned(),
        )
    };
    let (line, col, message) = error_at("[[classify.rules]]\nclass = \"retryable\"\n");
    assert_eq!((line, col), (1, 1), "{message}");
    assert!(
        message.contains("at least one of status, code, message and header"),
        "{message}"
    );
    let (line, col, message) =
        error_at("[[classify.rules]]\nstatus = [400, 700]\nclass = \"retryable\"\n");
    assert_eq!((line, col), (2, 16), "{message}");
    let (line, col, message) =
        error_at("[[classify.rules]]\nheader = \"no colon\"\nclass = \"terminal\"\n");
    assert_eq!((line, col), (2, 10), "{message}");
    assert!(message.contains("Name: value"), "{message}");
    let (line, col, message) =
        error_at("[[classify.rules]]\nheader = \"Bad Name: x\"\nclass = \"terminal\"\n");
    assert_eq!((line, col), (2, 10), "{message}");
    let (line, col, message) = error_at("[[classify.rules]]\ncode = \"X\"\nclass = \"success\"\n");
    assert_eq!((line, col), (3, 9), "{message}");
    assert!(message.contains("cannot yield success"), "{message}");
    let (line, _, message) = error_at("[[classify.rules]]\ncode = \"X\"\nclass = \"great\"\n");
    assert_eq!(line, 3, "{message}");
    let (line, _, message) =
        error_at("[[classify.rules]]\ncode = \"X\"\nclass = \"terminal\"\nwhen = 1\n");
    assert_eq!(line, 4, "{message}");
    assert!(message.contains("unknown field `when`"), "{message}");
}

#[test]
fn a_default_that_follows_a_key_follows_the_file_over_a_base() {
    // Over `standard` (max_interval 10 s, max_open_for 10 s), as in a file
    // with no base: the limits follow the longer values.
    let policy = Policy::from_toml_str(
        "[poll]\ninterval = \"20s\"\n[circuit_breaker]\nopen_for = \"1m\"\n[retry.backoff]\ninitial = \"8s\"\n",
    )
    .unwrap();
    assert_eq!(
        policy.poll_settings().max_interval(),
        std::time::Duration::from_secs(20)
    );
    assert_eq!(
        policy.breaker_settings().max_open_for(),
        std::time::Duration::from_secs(60)
    );
}

#[test]
fn a_value_that_contradicts_the_base_is_shown_in_the_file() {
    let error = Policy::from_toml_str("[poll]\ninterval = \"20s\"\nmax_interval = \"30m\"\n[circuit_breaker]\nmax_open_for = \"1s\"\n").unwrap_err();
    assert_eq!(
        (error.origin(), error.line(), error.column()),
        ("<string>", Some(5), Some(16)),
        "{error}"
    );
    assert!(
        error
            .message()
            .starts_with("circuit_breaker.max_open_for is out of bounds"),
        "{error}"
    );
    let dir = folder(
        "contradicts",
        &[
            ("base.toml", "[circuit_breaker]\nopen_for = \"30s\"\n"),
            (
                "app.toml",
                "extends = \"base.toml\"\n[circuit_breaker]\nmax_open_for = \"10s\"\n",
            ),
        ],
    );
    let error = Policy::from_path(dir.join("app.toml")).unwrap_err();
    assert!(error.origin().ends_with("app.toml"), "{error}");
    assert_eq!(error.line(), Some(3), "{error}");
}

/// Whether each optional section is on: rate limit, adaptive throttle,
/// breaker, retry budget.
fn switches(policy: &Policy) -> [bool; 4] {
    [
        policy.rate_limit().enabled(),
        policy.breaker_settings().adaptive_throttle().enabled(),
        policy.breaker_settings().enabled(),
        policy.retry_settings().budget().enabled,
    ]
}

#[test]
fn a_section_a_file_writes_is_on() {
    let policy = Policy::from_toml_str("[rate_limit]\nper_second = 190\n").unwrap();
    assert!(policy.rate_limit().enabled());
    assert_eq!(policy.rate_limit().per_second(), 190.0);
    let policy = Policy::from_toml_str("[adaptive_throttle]\nk = 2\n").unwrap();
    assert!(policy.breaker_settings().adaptive_throttle().enabled());
    // Unless the file says otherwise, in the section itself.
    let policy =
        Policy::from_toml_str("[rate_limit]\nenabled = false\nper_second = 190\n").unwrap();
    assert!(!policy.rate_limit().enabled());
    // A file that does not write a section keeps its base's switch.
    assert_eq!(
        switches(&Policy::from_toml_str("").unwrap()),
        [false, false, true, true]
    );
    assert_eq!(
        switches(&Policy::preset("none").unwrap()),
        [false, false, true, true]
    );
    // Given whole, through serde, the same.
    let table: toml::Table = toml::from_str("[rate_limit]\nper_second = 5\n").unwrap();
    assert!(Policy::try_from(table).unwrap().rate_limit().enabled());

    let off = "[rate_limit]\nenabled = false\nper_second = 5\n\
               [adaptive_throttle]\nenabled = false\nk = 3\n\
               [circuit_breaker]\nenabled = false\nwindow = 40\n\
               [retry.budget]\nenabled = false\ncapacity = 40\n";
    let dir = folder(
        "written-on",
        &[
            ("off.toml", off),
            ("quiet.toml", "extends = \"off.toml\"\n"),
            (
                "loud.toml",
                "extends = \"off.toml\"\n[rate_limit]\nburst = 3\n[adaptive_throttle]\nwindow = \"1m\"\n\
                 [circuit_breaker]\nmin_calls = 5\n[retry.budget]\nmin_reserve = 4\n",
            ),
            ("on.toml", "[rate_limit]\nper_second = 5\n"),
            ("over-on.toml", "extends = \"on.toml\"\n"),
        ],
    );
    let load = |name: &str| Policy::from_path(dir.join(name)).unwrap();
    assert_eq!(switches(&load("off.toml")), [false; 4]);
    assert_eq!(switches(&load("quiet.toml")), [false; 4]);
    let loud = load("loud.toml");
    assert_eq!(switches(&loud), [true; 4]);
    // The base's values stand under the file's switch.
    assert_eq!(loud.rate_limit().per_second(), 5.0);
    assert_eq!(loud.breaker_settings().window(), 40);
    assert_eq!(loud.breaker_settings().adaptive_throttle().k(), 3.0);
    // A base's own section, written without `enabled`, is on for the file.
    assert!(load("over-on.toml").rate_limit().enabled());

    // The effective policy says so, and loads to the same.
    let loaded = Policy::load(dir.join("loud.toml")).unwrap();
    let effective = loaded.effective_toml();
    let written: toml::Table = toml::from_str(&effective).unwrap();
    for section in ["rate_limit", "adaptive_throttle", "circuit_breaker"] {
        assert_eq!(
            written[section]["enabled"].as_bool(),
            Some(true),
            "{effective}"
        );
    }
    assert_eq!(
        written["retry"]["budget"]["enabled"].as_bool(),
        Some(true),
        "{effective}"
    );
    assert_eq!(
        switches(&Policy::from_toml_str(&effective).unwrap()),
        [true; 4]
    );
}

#[test]
fn durations_in_a_file_take_fractions() {
    let policy = Policy::from_toml_str(
        "[timeouts]\nattempt = \"1.5s\"\ntotal = \"2.5m\"\n[retry.backoff]\ninitial = \"0.25s\"\n",
    )
    .unwrap();
    assert_eq!(policy.timeouts().attempt(), Duration::from_millis(1500));
    assert_eq!(policy.timeouts().total(), Duration::from_secs(150));
    let error = Policy::from_toml_str("[timeouts]\nattempt = \"1,5s\"\n").unwrap_err();
    assert_eq!(
        (error.line(), error.column()),
        (Some(2), Some(11)),
        "{error}"
    );
    assert!(
        error.message().contains("invalid duration \"1,5s\""),
        "{error}"
    );
    // Each key's bounds still hold.
    let error = Policy::from_toml_str("[timeouts]\nattempt = \"0.0001ms\"\n").unwrap_err();
    assert!(error.message().contains("timeouts.attempt"), "{error}");
}

#[test]
fn route_names_are_unique() {
    let text = "[[routes]]\nname = \"writes\"\nmethods = [\"POST\"]\n\n\
                [[routes]]\nname = \"writes\"\nmethods = [\"PUT\"]\n";
    let error = Policy::from_toml_str(text).unwrap_err();
    assert_eq!(
        (error.line(), error.column()),
        (Some(6), Some(8)),
        "{error}"
    );
    assert!(
        error
            .message()
            .starts_with("route 1 is named \"writes\" like route 0"),
        "{error}"
    );
    // Unnamed routes are told apart by their index.
    Policy::from_toml_str("[[routes]]\nmethods = [\"POST\"]\n[[routes]]\nmethods = [\"PUT\"]\n")
        .unwrap();
}

#[test]
fn max_attempts_a_new_process_cannot_reach_is_warned() {
    // More attempts than a new process's reserve reaches: at max_attempts
    // when the file leaves min_reserve alone.
    let found = warnings("wattempts", "[retry]\nmax_attempts = 6\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "2:16: retry.max_attempts is 6 but a new process's retry budget holds 3 tokens, 3 retries at retry.budget.transient_cost = 1"
        ),
        "{found:?}"
    );
    assert!(
        found[0].contains("makes 4 attempts, not 6; raise retry.budget.min_reserve to 5"),
        "{found:?}"
    );
    let found = warnings(
        "wattempts2",
        "[retry]\nmax_attempts = 6\n[retry.budget]\ncapacity = 20\nmin_reserve = 5\n",
    );
    assert!(found.is_empty(), "{found:?}");
    // A route that asks for more attempts than the policy's budget reaches.
    let found = warnings(
        "wattempts3",
        "[[routes]]\nmethods = [\"GET\"]\n[routes.retry]\nmax_attempts = 8\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("4:16: route 0: retry.max_attempts is 8"),
        "{found:?}"
    );
}

#[test]
fn a_rule_that_makes_every_429_terminal_is_warned() {
    // A rule that makes every 429 terminal, whatever the lists say.
    let found = warnings(
        "wrule429",
        "[classify]\nretryable = [429, 500]\n\n[[classify.rules]]\nname = \"no-throttle\"\nstatus = [400, 429]\nclass = \"terminal\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "6:16: rule 0 of classify.rules makes every 429 Too Many Requests terminal"
        ),
        "{found:?}"
    );
    // A rule before it that retries some 429s: no warning.
    let found = warnings(
        "wrule429b",
        "[[classify.rules]]\nstatus = 429\nheader = \"Retry-After: 1\"\nclass = \"retryable\"\n\
         [[classify.rules]]\nstatus = 429\nclass = \"terminal\"\n",
    );
    assert!(found.is_empty(), "{found:?}");
    // A rule that needs a header makes only some 429s terminal: no warning.
    let found = warnings(
        "wrule429c",
        "[[classify.rules]]\nstatus = 429\nheader = \"X-Quota: spent\"\nclass = \"terminal\"\n",
    );
    assert!(found.is_empty(), "{found:?}");
}

#[test]
fn a_breaker_that_never_trips_is_warned() {
    // A breaker with both its triggers off never trips.
    let found = warnings(
        "wbreaker",
        "[circuit_breaker]\nconsecutive_failures = 0\nfailure_rate = 0.0\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("2:24: circuit_breaker is on but both its triggers are off"),
        "{found:?}"
    );
    let found = warnings(
        "wbreaker2",
        "[circuit_breaker]\nenabled = false\nconsecutive_failures = 0\nfailure_rate = 0.0\n",
    );
    assert!(found.is_empty(), "{found:?}");
}
