//! Issue 24's keys in files: where a wait is read from
//! (`error_body.wait_headers`, `error_body.retry_delay`), several pointer
//! sets (`[[error_body.fields]]`) and header conditions on rules.

use std::path::PathBuf;

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::classify::WaitSource::{self, *};
use crate::classify::{RuleInput, StatusClass};

/// Loads `text` expecting an error at `line`:`column` whose message contains
/// every one of `needles`.
fn assert_error(text: &str, line: usize, column: usize, needles: &[&str]) {
    let error = Policy::from_toml_str(text).expect_err(text);
    assert_eq!(
        (error.line(), error.column()),
        (Some(line), Some(column)),
        "{error}\n{text}"
    );
    for needle in needles {
        assert!(error.message().contains(needle), "{error} lacks {needle:?}");
    }
    assert!(
        error
            .to_string()
            .starts_with(&format!("<string>:{line}:{column}: "))
    );
}

fn sources(policy: &Policy) -> (Vec<WaitSource>, Vec<String>) {
    let body = policy.classify_settings().error_body();
    (
        body.wait_headers().to_vec(),
        body.retry_delay().map(str::to_owned).collect(),
    )
}

#[test]
fn the_presets_read_every_wait_header_and_standard_reads_google_s_delay() {
    let google = vec!["/error/details/*/retryDelay".to_owned()];
    let headers = vec![RetryAfter, RateLimit, XRateLimitReset];
    for (name, pointers) in [
        ("standard", google.clone()),
        ("connio", vec![]),
        ("none", vec![]),
    ] {
        let policy = Policy::preset(name).unwrap();
        assert_eq!(sources(&policy), (headers.clone(), pointers), "{name}");
    }
    // A file extends standard unless it says otherwise, and keeps its waits.
    let policy = Policy::from_toml_str("[retry]\nmax_attempts = 3\n").unwrap();
    assert_eq!(sources(&policy), (headers.clone(), google));
    // The code's defaults are the `none` file's.
    let defaults = crate::classify::ErrorBodySettings::default();
    assert_eq!(defaults.wait_headers(), headers);
    assert_eq!(defaults.retry_delay().count(), 0);
}

#[test]
fn the_wait_keys_are_read_in_order_and_turn_off() {
    let policy = Policy::from_toml_str(
        "[error_body]\nwait_headers = [\"X-RateLimit-Reset\", \"retry-after\"]\n\
         retry_delay = [\"/retryIn\", \"/error/details/*/retryDelay\"]\n",
    )
    .unwrap();
    assert_eq!(
        sources(&policy),
        (
            vec![XRateLimitReset, RetryAfter],
            vec!["/retryIn".into(), "/error/details/*/retryDelay".into()]
        )
    );
    let one = Policy::from_toml_str("[error_body]\nretry_delay = \"/retryIn\"\n").unwrap();
    assert_eq!(sources(&one).1, ["/retryIn"]);
    let off = Policy::from_toml_str("[error_body]\nwait_headers = []\nretry_delay = []\n").unwrap();
    assert_eq!(sources(&off), (vec![], vec![]));
    // A route reads its own.
    let routed = Policy::from_toml_str(
        "[[routes]]\npath_prefix = \"/v1\"\n[routes.error_body]\nwait_headers = [\"ratelimit\"]\n",
    )
    .unwrap();
    let route = &routed.routes()[0];
    assert_eq!(
        route.classify_settings().error_body().wait_headers(),
        [RateLimit]
    );
}

#[test]
fn wait_key_mistakes_point_at_the_line() {
    assert_error(
        "[error_body]\nwait_headers = [\"retry-after\", \"retry_after\"]\n",
        2,
        32,
        &["unknown wait source \"retry_after\"", "\"ratelimit\""],
    );
    assert_error(
        "[error_body]\nwait_headers = [\"ratelimit\", \"RateLimit\"]\n",
        2,
        30,
        &["\"ratelimit\" is listed twice"],
    );
    assert_error(
        "[error_body]\nwait_headers = [\"retry-delay\"]\n",
        2,
        17,
        &["not a header", "error_body.retry_delay"],
    );
    assert_error(
        "[error_body]\nwait_headers = \"retry-after\"\n",
        2,
        16,
        &["a sequence"],
    );
    assert_error(
        "[error_body]\nretry_delay = [\"/ok\", \"error/details\"]\n",
        2,
        23,
        &[
            "invalid JSON pointer \"error/details\"",
            "error_body.retry_delay",
        ],
    );
    assert_error(
        "[error_body]\nretry_delay = \"/a~2\"\n",
        2,
        15,
        &["error_body.retry_delay", "\"~\" must be followed by 0"],
    );
    assert_error(
        "[error_body]\nretry_delay = 2\n",
        2,
        15,
        &["a JSON pointer"],
    );
    let many = vec!["\"/a\""; 17].join(", ");
    assert_error(
        &format!("[error_body]\nretry_delay = [{many}]\n"),
        2,
        15,
        &["at most 16"],
    );
}

#[test]
fn several_pointer_sets_read_each_shape_in_order() {
    // GitHub: a message for the whole, a code for each field.
    let github = Policy::from_toml_str(
        "[error_body]\nformat = \"fields\"\n\n\
         [[error_body.fields]]\nmessage = \"/message\"\nmore_info_url = \"/documentation_url\"\n\n\
         [[error_body.fields]]\nerrors = \"/errors\"\ncode = \"/code\"\ncause = \"/field\"\nmessage = \"/message\"\n",
    )
    .unwrap();
    let settings = github.classify_settings().error_body();
    assert_eq!(settings.field_sets().len(), 2);
    assert_eq!(settings.fields().unwrap().message(), Some("/message"));
    assert_eq!(settings.field_sets()[1].errors(), "/errors");
    // The table form is still one set.
    let one = Policy::from_toml_str("[error_body.fields]\ncode = \"/code\"\n").unwrap();
    assert_eq!(one.classify_settings().error_body().field_sets().len(), 1);
    let inline = Policy::from_toml_str(
        "[error_body]\nfields = [{ errors = \"/error\", code = \"/code\" }, { errors = \"/error/details\", code = \"/code\" }]\n",
    )
    .unwrap();
    assert_eq!(
        inline.classify_settings().error_body().field_sets().len(),
        2
    );
}

#[test]
fn pointer_set_mistakes_point_at_their_set() {
    assert_error(
        "[[error_body.fields]]\ncode = \"/code\"\n\n[[error_body.fields]]\nerrors = \"/errors\"\ncode = \"code\"\n",
        6,
        8,
        &["invalid JSON pointer \"code\""],
    );
    assert_error(
        "[[error_body.fields]]\ncode = \"/code\"\n\n[[error_body.fields]]\nerrors = \"/errors\"\n",
        4,
        1,
        &["names no field"],
    );
    assert_error(
        "[[error_body.fields]]\ncode = \"/code\"\nreason = \"/r\"\n",
        3,
        1,
        &["unknown field `reason`"],
    );
    assert_error(
        "[error_body]\nformat = \"connio\"\n[[error_body.fields]]\ncode = \"/code\"\n",
        3,
        1,
        &["never read"],
    );
    assert_error(
        "[error_body]\nfields = 3\n",
        2,
        10,
        &["a table of JSON pointers, or a list of such tables"],
    );
}

fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

/// The class a one-rule policy gives a 409 with `pairs`: the rule makes it
/// retryable, the table terminal.
fn class_of(header: &str, pairs: &[(&'static str, &'static str)]) -> StatusClass {
    let text =
        format!("[[classify.rules]]\nstatus = 409\nheader = {header}\nclass = \"retryable\"\n");
    let policy = Policy::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let headers = headers(pairs);
    let input = RuleInput::new(StatusCode::CONFLICT, &headers);
    policy
        .classify_settings()
        .classifier()
        .decide(&input)
        .class()
}

#[test]
fn header_conditions_present_exact_and_one_of() {
    use StatusClass::{Retryable as R, Terminal as T};
    // header as written, response headers, class
    type Row = (
        &'static str,
        &'static [(&'static str, &'static str)],
        StatusClass,
    );
    let rows: &[Row] = &[
        (r#""retry-after""#, &[("retry-after", "3")], R),
        (r#""Retry-After""#, &[("retry-after", "")], R),
        (r#""retry-after""#, &[("x-other", "3")], T),
        (r#""retry-after""#, &[], T),
        (r#""x-status: failed""#, &[("x-status", "failed")], R),
        (r#""x-status: failed""#, &[("x-status", "Failed")], T),
        (
            r#""x-status: failed | canceled""#,
            &[("x-status", "canceled")],
            R,
        ),
        (
            r#""x-status:failed|canceled""#,
            &[("x-status", "failed")],
            R,
        ),
        (
            r#""x-status: failed | canceled""#,
            &[("x-status", "running")],
            T,
        ),
        (
            r#""x-status: failed | canceled""#,
            &[("x-status", "running"), ("x-status", "canceled")],
            R,
        ),
        (
            r#"{ name = "x-ratelimit-remaining" }"#,
            &[("x-ratelimit-remaining", "0")],
            R,
        ),
        (r#"{ name = "vary", any_of = ["*"] }"#, &[("vary", "*")], R),
        (
            r#"{ name = "vary", any_of = ["*"] }"#,
            &[("vary", "accept")],
            T,
        ),
        (
            r#"{ name = "x", any_of = ["a|b", "c"] }"#,
            &[("x", "a|b")],
            R,
        ),
        (r#"{ name = "x", any_of = ["a|b", "c"] }"#, &[("x", "a")], T),
    ];
    for (header, pairs, class) in rows {
        assert_eq!(class_of(header, pairs), *class, "{header} {pairs:?}");
    }
}

#[test]
fn header_condition_mistakes_point_at_the_line() {
    let rule = |header: &str| {
        format!("[[classify.rules]]\nstatus = 429\nheader = {header}\nclass = \"retryable\"\n")
    };
    assert_error(
        &rule(r#""retry-after: *""#),
        3,
        10,
        &[
            "\"*\" is not a wildcard",
            "header = \"retry-after\"",
            "any_of = [\"*\"]",
        ],
    );
    assert_error(&rule(r#""x: a | * ""#), 3, 10, &["not a wildcard"]);
    assert_error(&rule(r#""x: a || b""#), 3, 10, &["an empty value"]);
    assert_error(&rule(r#""x: a |""#), 3, 10, &["an empty value"]);
    assert_error(&rule(r#""""#), 3, 10, &["invalid header"]);
    assert_error(
        &rule(r#""bad name""#),
        3,
        10,
        &["invalid header \"bad name\""],
    );
    assert_error(
        &rule(r#"{ name = "x", any_of = [] }"#),
        3,
        10,
        &["empty any_of"],
    );
    assert_error(
        &rule(r#"{ name = "x", value = "y" }"#),
        3,
        24,
        &["unknown field `value`"],
    );
    assert_error(&rule("7"), 3, 10, &["\"Name: value | value\""]);
}

/// A fresh folder with one policy file, named after the test.
fn file(test: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rebound-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The warnings of a policy file of `text`, as `LINE:COL: message`.
fn warned(test: &str, text: &str) -> Vec<String> {
    Policy::load(file(test, text))
        .unwrap()
        .warnings()
        .iter()
        .map(|w| format!("{}:{}: {}", w.line(), w.column(), w.message()))
        .collect()
}

#[test]
fn waits_that_cannot_be_honoured_are_warned_at_their_line() {
    let warnings = warned;
    let found = warnings("wait-no-body", "[error_body]\nmax_bytes = 0\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("2:13: error_body.retry_delay reads the wait from the error body"),
        "{found:?}"
    );
    // No pointer, no warning.
    assert!(
        warnings(
            "wait-no-body-off",
            "[error_body]\nmax_bytes = 0\nretry_delay = []\n"
        )
        .is_empty()
    );
    let found = warnings("wait-zero", "[retry]\nmax_retry_after = \"0s\"\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("2:19: retry.max_retry_after is 0s"),
        "{found:?}"
    );
    assert!(
        warnings(
            "wait-zero-off",
            "[retry]\nmax_retry_after = \"0s\"\n[error_body]\nwait_headers = []\nretry_delay = []\n"
        )
        .is_empty()
    );
    let found = warnings(
        "wait-route",
        "[[routes]]\npath_prefix = \"/v1\"\n[routes.error_body]\nmax_bytes = 0\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("4:13: route 0: error_body.retry_delay"),
        "{found:?}"
    );
}

#[test]
fn the_effective_policy_keeps_the_new_keys() {
    let text = "[error_body]\nwait_headers = [\"ratelimit\"]\nretry_delay = \"/retryIn\"\n\
                [[error_body.fields]]\ncode = \"/code\"\n[[error_body.fields]]\nerrors = \"/errors\"\ncode = \"/code\"\n\
                [[classify.rules]]\nstatus = 403\nheader = \"x-ratelimit-remaining: 0\"\nclass = \"retryable\"\n\
                [[classify.rules]]\nstatus = 409\nheader = { name = \"vary\", any_of = [\"*\"] }\nclass = \"retryable\"\n";
    let loaded = Policy::load(file("wait-effective", text)).unwrap();
    let effective = loaded.effective_toml();
    let again = Policy::from_toml_str(&effective).unwrap_or_else(|e| panic!("{e}\n{effective}"));
    assert_eq!(&again.classify, &loaded.policy().classify, "{effective}");
}

#[test]
fn a_success_body_rule_with_no_body_read_is_warned_at_its_code() {
    let text = "[error_body]\nmax_bytes = 0\nretry_delay = []\n\
                [[classify.rules]]\nstatus = 200\ncode = \"ratelimited\"\nclass = \"retryable\"\n";
    let found = warned("success-rule-no-body", text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("6:8: rule 0 of classify.rules reads error codes from a success body"),
        "{found:?}"
    );
    // With room to read, or a rule on failures only, nothing to say.
    let read = text.replace("max_bytes = 0", "max_bytes = 1024");
    let failures = text.replace("status = 200", "status = 400");
    for text in [read, failures] {
        let policy = Policy::load(file("success-rule-ok", &text)).unwrap();
        assert!(
            policy.warnings().is_empty(),
            "{text}: {:?}",
            policy.warnings()
        );
    }
}

#[test]
fn a_list_of_tables_written_over_a_base_s_is_warned_as_replacing_it() {
    let text = "extends = \"github\"\n\n[[classify.rules]]\nstatus = 418\nclass = \"terminal\"\n";
    let found = warned("replaced-rules", text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("3:1: [[classify.rules]] here replaces the"),
        "{found:?}"
    );
    assert!(found[0].contains("github"), "{found:?}");
    // A file with no rules of its own keeps the base's, and says nothing.
    let policy = Policy::load(file("kept-rules", "extends = \"github\"\n")).unwrap();
    assert!(policy.warnings().is_empty(), "{:?}", policy.warnings());
    let routes =
        "extends = \"azure\"\n[[routes]]\nmethods = [\"GET\"]\n[routes.retry]\nmax_attempts = 2\n";
    let policy = Policy::load(file("replaced-routes", routes)).unwrap();
    let warned: Vec<&str> = policy.warnings().iter().map(|w| w.message()).collect();
    assert!(
        warned
            .iter()
            .any(|m| m.starts_with("[[routes]] here replaces the 2 routes")),
        "{warned:?}"
    );
}

#[test]
fn concurrency_keys_the_limit_never_reads_are_warned_at_their_line() {
    let found = warned(
        "idle-concurrency",
        "[concurrency]\nmax_in_flight = 8\ntolerance = 2.0\nqueue_timeout = \"2s\"\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("3:13: concurrency.tolerance shapes the adaptive limit"),
        "{found:?}"
    );
    assert!(
        found[1].starts_with("4:17: concurrency.queue_timeout bounds a wait"),
        "{found:?}"
    );
    // Read once adaptive and a queue say so.
    let read = "[concurrency]\nadaptive = true\ntolerance = 2.0\nmin_in_flight = 2\nqueue = 4\nqueue_timeout = \"2s\"\n";
    assert!(warned("read-concurrency", read).is_empty());
}
