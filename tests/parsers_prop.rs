//! The parsers that read the network and policy files, under proptest: no
//! input makes them panic, and what they return keeps its promises. (The same
//! parsers are fuzzed in `fuzz/`; this runs in the ordinary test suite.)
//!
//! Each property counts the cases that reached its assertions and checks the
//! count: a generator that drifted into inputs the assertions never look at
//! would otherwise pass by checking nothing.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Uri};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, RngSeed, TestCaseError, TestRunner};
use serde_json::Value;
use tower_rebound::Policy;
use tower_rebound::classify::{
    ErrorBodyFormat, ErrorBodySettings, ErrorFields, WaitSource, parse_api_errors,
    parse_error_body, parse_ratelimit, parse_reset, parse_retry_after, quota_spent, server_wait,
};
use tower_rebound::poll::{Origin, Refusal, Target, resolve_status_url};

const CASES: u32 = 2000;

/// Runs `property` on `CASES` inputs drawn from `strategy` (after the saved
/// regressions) and returns how many of them reached the assertions: the
/// property answers `Ok(true)` when they did.
///
/// The inputs come from a fixed seed, so that every run checks the same
/// cases and the reach counts are the same; `PROPTEST_RNG_SEED=N` explores
/// others.
fn check<S: Strategy>(
    strategy: S,
    property: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) -> u32 {
    let default = Config::default();
    let config = Config {
        cases: CASES,
        rng_seed: match default.rng_seed {
            RngSeed::Random => RngSeed::Fixed(0x0072_6562_6f75_6e64),
            chosen => chosen,
        },
        source_file: Some(file!()),
        // Cargo runs the test from the package's root; `SourceParallel`
        // looks for a `lib.rs` beside the tests and finds none.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/parsers_prop.proptest-regressions",
        ))),
        ..default
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

/// The formats that read more than the connio shape, each with the pointers
/// it may read: Google's envelope.
fn other_formats() -> [(ErrorBodySettings, Option<HeaderValue>); 4] {
    let fields = ErrorFields::builder()
        .errors("/error")
        .code("/code")
        .cause("/status")
        .message("/message")
        .build()
        .unwrap();
    let with = |format, fields: Option<&ErrorFields>| {
        let builder = ErrorBodySettings::builder().format(format);
        match fields {
            Some(fields) => builder.fields(fields.clone()),
            None => builder,
        }
        .build()
        .unwrap()
    };
    let problem_json = HeaderValue::from_static("application/problem+json");
    [
        (with(ErrorBodyFormat::Auto, Some(&fields)), None),
        (
            with(ErrorBodyFormat::Auto, Some(&fields)),
            Some(problem_json),
        ),
        (with(ErrorBodyFormat::Problem, None), None),
        (with(ErrorBodyFormat::Fields, Some(&fields)), None),
    ]
}

/// An error object whose members have the names every format reads, with
/// values of any type.
fn error_object() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        Just("null".to_owned()),
        Just("false".to_owned()),
        Just("[]".to_owned()),
        Just("{\"x\":[1]}".to_owned()),
        "-?[0-9]{1,5}",
        "\"[a-zA-Z:/. ]{0,12}\"",
        Just("\"https://errors.example/e\"".to_owned()),
    ];
    let name = prop_oneof![
        Just("code"),
        Just("status"),
        Just("message"),
        Just("cause"),
        Just("moreInfoUrl"),
        Just("type"),
        Just("title"),
        Just("detail"),
        Just("other"),
    ];
    proptest::collection::vec((name, value), 0..6).prop_map(|members| {
        let members: Vec<String> = members
            .iter()
            .map(|(name, value)| format!("\"{name}\":{value}"))
            .collect();
        format!("{{{}}}", members.join(","))
    })
}

/// `json_like` bodies, error objects alone (problem details) and in Google's
/// envelope, whole or cut: each format is taken past its first byte.
fn any_format_body() -> impl Strategy<Value = Vec<u8>> {
    let body = prop_oneof![
        json_like().prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        error_object(),
        error_object().prop_map(|o| format!(r#"{{"error":{o}}}"#)),
        proptest::collection::vec(error_object(), 0..4)
            .prop_map(|o| format!(r#"{{"error":[{}]}}"#, o.join(","))),
    ];
    (body, any::<prop::sample::Index>(), any::<bool>()).prop_map(|(body, cut, whole)| {
        let mut body = body.into_bytes();
        if !whole {
            body.truncate(cut.index(body.len() + 1));
        }
        body
    })
}

#[test]
fn every_format_never_panics_and_errors_carry_something() {
    let formats = other_formats();
    let reached = check(any_format_body(), |body| {
        let mut found = false;
        for (settings, content_type) in &formats {
            let errors = parse_error_body(settings, content_type.as_ref(), &body);
            for error in &errors {
                prop_assert!(
                    error.code().is_some()
                        || error.cause().is_some()
                        || error.message().is_some()
                        || error.more_info_url().is_some()
                );
                // Only a problem detail keeps its object, and it always does.
                let problem =
                    settings.format() == ErrorBodyFormat::Problem || content_type.is_some();
                prop_assert_eq!(error.members().is_some(), problem);
            }
            found |= !errors.is_empty();
        }
        Ok(found)
    });
    assert_reached(reached, 0.3);
}

/// One element of an array of errors: an error, or something to skip.
#[derive(Debug, Clone)]
enum Element {
    Error(u32),
    Number(i32),
    Nested,
    NoFields,
}

fn element() -> impl Strategy<Value = Element> {
    prop_oneof![
        6 => any::<u32>().prop_map(Element::Error),
        1 => any::<i32>().prop_map(Element::Number),
        1 => Just(Element::Nested),
        1 => Just(Element::NoFields),
    ]
}

#[test]
fn a_cut_fields_array_keeps_exactly_the_errors_before_the_cut() {
    // Keys that need `~1` and `~0` in the pointers, and an array at the end of
    // an envelope that has other members before it.
    let fields = ErrorFields::builder()
        .errors("/data/err~1list")
        .code("/c~0x/code")
        .message("/msg")
        .build()
        .unwrap();
    let settings = ErrorBodySettings::builder()
        .format(ErrorBodyFormat::Fields)
        .fields(fields)
        .build()
        .unwrap();
    let strategy = (
        proptest::collection::vec(element(), 1..16),
        any::<prop::sample::Index>(),
    );
    let reached = check(strategy, |(elements, cut)| {
        let mut body = String::from(
            r#"{"meta":{"err/list":[{"c~x":{"code":"decoy"}}]},"data":{"n":[1,[2]],"err/list":["#,
        );
        // Where each error ends, and its code.
        let mut ends: Vec<(usize, String)> = Vec::new();
        for (i, element) in elements.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            match element {
                Element::Error(n) => {
                    body.push_str(&format!(r#"{{"c~x":{{"code":{n}}},"msg":"m{n}"}}"#));
                    ends.push((body.len(), n.to_string()));
                }
                Element::Number(n) => body.push_str(&n.to_string()),
                Element::Nested => body.push_str(r#"[{"c~x":{"code":"nested"}}]"#),
                Element::NoFields => body.push_str(r#"{"code":"not here"}"#),
            }
        }
        body.push_str("]}}");
        let cut = cut.index(body.len() + 1);
        let errors = parse_error_body(&settings, None, &body.as_bytes()[..cut]);
        let expected: Vec<&str> = ends
            .iter()
            .filter(|(end, _)| *end <= cut)
            .map(|(_, code)| code.as_str())
            .collect();
        let codes: Vec<&str> = errors.iter().filter_map(|e| e.code()).collect();
        prop_assert_eq!(&codes, &expected);
        for error in &errors {
            let message = format!("m{}", error.code().unwrap());
            prop_assert_eq!(error.message(), Some(message.as_str()));
        }
        Ok(!expected.is_empty() && expected.len() < ends.len())
    });
    // Many cuts land between the first error and the last.
    assert_reached(reached, 0.3);
}

fn json_value() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("error"),
        Just("errors"),
        Just("code"),
        Just("a/b"),
        Just("m~n"),
        Just("0"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-1000i64..1000).prop_map(Value::from),
        "[a-z]{0,4}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn json_pointer(tokens: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    let token = prop_oneof![
        3 => Just("error"),
        3 => Just("errors"),
        3 => Just("code"),
        2 => Just("a~1b"),
        2 => Just("m~0n"),
        2 => Just("0"),
        2 => Just("1"),
        1 => Just("01"),
        1 => Just("-"),
    ];
    proptest::collection::vec(token, tokens)
        .prop_map(|tokens| tokens.iter().map(|t| format!("/{t}")).collect::<String>())
}

/// `value` at the pointer of `tokens` (as written, escapes and all) inside a
/// document of `noise`: objects keyed by the tokens (with `noise` beside),
/// arrays for the tokens made of digits (with `noise` before).
fn place(tokens: &[&str], value: Value, noise: &Value) -> Value {
    let Some((token, rest)) = tokens.split_first() else {
        return value;
    };
    let inner = place(rest, value, noise);
    match token.parse::<usize>() {
        // `01` too, which names no element: the walk must miss it.
        Ok(index) => {
            let mut items = vec![noise.clone(); index];
            items.push(inner);
            Value::Array(items)
        }
        _ => {
            let key = token.replace("~1", "/").replace("~0", "~");
            let mut object = serde_json::Map::new();
            object.insert("noise".to_owned(), noise.clone());
            object.insert(key, inner);
            Value::Object(object)
        }
    }
}

fn tokens(pointer: &str) -> Vec<&str> {
    pointer.split('/').skip(1).collect()
}

/// A document, the `errors` pointer and the `code` pointer: half the
/// documents are built so that both pointers lead somewhere, half are
/// random.
fn document_and_pointers() -> impl Strategy<Value = (Value, String, String)> {
    let leaf = prop_oneof![
        3 => "[a-z]{0,4}".prop_map(Value::from),
        3 => (-1000i64..1000).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
    ];
    (
        json_value(),
        json_pointer(0..4),
        json_pointer(1..4),
        proptest::collection::vec(leaf, 1..4),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(noise, errors_at, code_at, codes, array, placed)| {
            if !placed {
                return (noise, errors_at, code_at);
            }
            let errors: Vec<Value> = codes
                .into_iter()
                .map(|code| place(&tokens(&code_at), code, &noise))
                .collect();
            let errors = match (array, errors.first()) {
                (false, Some(first)) => first.clone(),
                _ => Value::Array(errors),
            };
            (
                place(&tokens(&errors_at), errors, &noise),
                errors_at,
                code_at,
            )
        })
}

#[test]
fn the_fields_walk_agrees_with_serde_json_pointers() {
    // The streaming walk against a model: the whole body parsed, then
    // serde_json's own `Value::pointer`.
    let reached = check(document_and_pointers(), |(document, errors_at, code_at)| {
        let Ok(fields) = ErrorFields::builder()
            .errors(errors_at.clone())
            .code(code_at.clone())
            .build()
        else {
            return Err(TestCaseError::fail("the generated pointers are valid"));
        };
        let settings = ErrorBodySettings::builder()
            .format(ErrorBodyFormat::Fields)
            .fields(fields)
            .build()
            .unwrap();
        let body = serde_json::to_vec(&document).unwrap();
        let codes: Vec<String> = parse_error_body(&settings, None, &body)
            .iter()
            .map(|e| e.code().unwrap().to_owned())
            .collect();
        let text = |v: &Value| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
            _ => None,
        };
        let code_of = |error: &Value| {
            error
                .is_object()
                .then(|| error.pointer(&code_at).and_then(text))
                .flatten()
        };
        let expected: Vec<String> = match document.pointer(&errors_at) {
            Some(Value::Array(items)) => items.iter().filter_map(code_of).collect(),
            Some(error) => code_of(error).into_iter().collect(),
            None => Vec::new(),
        };
        prop_assert_eq!(
            &codes,
            &expected,
            "{} at {} and {}",
            document,
            errors_at,
            code_at
        );
        Ok(!expected.is_empty())
    });
    // About 0.3 reach errors; the rest check that the walk misses where the
    // model does.
    assert_reached(reached, 0.2);
}

#[test]
fn problem_details_map_as_rfc_9457_says() {
    let member = prop_oneof![
        Just(None),
        Just(Some(Value::Null)),
        Just(Some(Value::from(42))),
        Just(Some(Value::from(vec!["x"]))),
        "[a-z]{0,6}".prop_map(|s| Some(Value::from(s))),
        prop_oneof![
            Just("https://errors.example/quota"),
            Just("http://errors.example:8080/a?b"),
            Just("urn:problem:x"),
            Just("about:blank"),
            Just("/relative/type"),
        ]
        .prop_map(|s| Some(Value::from(s))),
    ];
    let strategy = proptest::collection::vec(member, 5..=5);
    let reached = check(strategy, |members| {
        let names = ["type", "title", "detail", "code", "instance"];
        let object: serde_json::Map<String, Value> = names
            .iter()
            .zip(&members)
            .filter_map(|(name, value)| Some(((*name).to_owned(), value.clone()?)))
            .collect();
        let body = serde_json::to_vec(&object).unwrap();
        let settings = ErrorBodySettings::builder()
            .format(ErrorBodyFormat::Problem)
            .build()
            .unwrap();
        let errors = parse_error_body(&settings, None, &body);
        prop_assert_eq!(errors.len(), 1);
        let error = &errors[0];
        let string = |name: &str| object.get(name).and_then(Value::as_str);
        let kind = string("type");
        let code = match object.get("code") {
            Some(Value::String(s)) => s.clone(),
            Some(n @ Value::Number(_)) => n.to_string(),
            _ => kind.unwrap_or("about:blank").to_owned(),
        };
        prop_assert_eq!(error.code(), Some(code.as_str()));
        prop_assert_eq!(error.cause(), string("title"));
        prop_assert_eq!(error.message(), string("detail"));
        let link = kind.filter(|k| k.starts_with("http://") || k.starts_with("https://"));
        prop_assert_eq!(error.more_info_url(), link);
        prop_assert_eq!(error.members(), Some(&object));
        Ok(true)
    });
    assert_reached(reached, 1.0);
}

/// `secs` seconds after the epoch as an IMF-fixdate (RFC 9110 section
/// 5.6.7), such as `Sun, 06 Nov 1994 08:49:37 GMT`.
fn imf_fixdate(secs: u64) -> String {
    // Howard Hinnant's civil_from_days, for days after 1970-01-01.
    let days = secs / 86_400;
    let z = days as i64 + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let in_day = secs % 86_400;
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        months[(month - 1) as usize],
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60
    )
}

/// A `Retry-After` value and the delay it asks for, when it asks for one.
#[derive(Debug, Clone)]
enum RetryAfterValue {
    /// Anything: it may not ask for a delay unless it holds a digit.
    Text(String),
    /// Delta-seconds, with leading zeros, up to far past `u64::MAX`.
    Seconds(String),
    /// An HTTP-date, seconds after the epoch.
    Date(u64),
}

fn retry_after_value() -> impl Strategy<Value = (RetryAfterValue, String)> {
    let padding = prop_oneof![Just(""), Just(" "), Just("\t"), Just(" \t ")];
    let value = prop_oneof![
        1 => "\\PC{0,40}".prop_map(RetryAfterValue::Text),
        2 => prop_oneof![
            any::<u32>().prop_map(|s| s.to_string()),
            any::<u64>().prop_map(|s| format!("00{s}")),
            "[0-9]{18,30}",
        ]
        .prop_map(RetryAfterValue::Seconds),
        2 => (0u64..253_402_300_800).prop_map(RetryAfterValue::Date),
    ];
    (value, padding).prop_map(|(value, padding)| {
        let text = match &value {
            RetryAfterValue::Text(text) => text.clone(),
            RetryAfterValue::Seconds(digits) => format!("{padding}{digits}{padding}"),
            RetryAfterValue::Date(secs) => format!("{padding}{}{padding}", imf_fixdate(*secs)),
        };
        (value, text)
    })
}

#[test]
fn retry_after_never_panics_and_seconds_are_exact() {
    // Up to the year 9999, where HTTP-dates end.
    let strategy = (retry_after_value(), 0u64..253_402_300_800);
    let reached = check(strategy, |((value, text), now)| {
        let clock = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let parsed = parse_retry_after(&text, clock);
        let expected = match value {
            RetryAfterValue::Text(_) => {
                if !text.bytes().any(|b| b.is_ascii_digit()) {
                    prop_assert_eq!(parsed, None, "{:?}", text);
                }
                return Ok(false);
            }
            // Exact, and a number past u64 saturates rather than wraps.
            RetryAfterValue::Seconds(digits) => {
                let secs = digits.parse::<u128>().unwrap();
                u64::try_from(secs).unwrap_or(u64::MAX)
            }
            // Measured from `now`; a date in the past asks for no wait.
            RetryAfterValue::Date(date) => date.saturating_sub(now),
        };
        prop_assert_eq!(parsed, Some(Duration::from_secs(expected)), "{:?}", text);
        Ok(true)
    });
    // Four cases in five are seconds or dates.
    assert_reached(reached, 0.6);
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

/// A path of 0 to 4 segments, each `.`, `..`, empty or a short name, joined
/// by `/`; `first` chooses what the first segment may be.
fn segments(first: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just(".".to_owned()),
        Just("..".to_owned()),
        Just(String::new()),
        "[a-z0-9]{1,3}",
    ];
    (first, proptest::collection::vec(segment, 0..4)).prop_map(|(first, rest)| {
        std::iter::once(first)
            .chain(rest)
            .collect::<Vec<_>>()
            .join("/")
    })
}

/// A reference of every RFC 3986 form (relative path, absolute path, network
/// path, absolute URI) to the base's own origin, with `.`, `..` and empty
/// segments, a query and a fragment or not; and a base path with empty
/// segments. Only characters that WHATWG's parser (url's) leaves as they are.
fn reference_and_base() -> impl Strategy<Value = (String, String)> {
    let dots_or_name = prop_oneof![Just(".".to_owned()), Just("..".to_owned()), "[a-z0-9]{1,3}",];
    // The first segment of a relative or absolute path is never empty: that
    // would make it a network path, to another host.
    let path = prop_oneof![
        segments(dots_or_name.clone()),
        segments(dots_or_name).prop_map(|p| format!("/{p}")),
        segments(Just(String::new()))
            .prop_map(|p| format!("//api.example:8443{}", if p.is_empty() { "/" } else { &p })),
        segments(Just(String::new())).prop_map(|p| format!("https://api.example:8443{p}")),
        Just(String::new()),
    ];
    let query = proptest::option::of("[a-z0-9=&/?.]{0,6}");
    let fragment = proptest::option::of("[a-z0-9/?.]{0,4}");
    let reference = (path, query, fragment).prop_map(|(path, query, fragment)| {
        let mut reference = path;
        if let Some(query) = query {
            reference.push('?');
            reference.push_str(&query);
        }
        if let Some(fragment) = fragment {
            reference.push('#');
            reference.push_str(&fragment);
        }
        reference
    });
    let base_segment = prop_oneof![Just(String::new()), "[a-z0-9]{1,3}"];
    let base = (
        proptest::collection::vec(base_segment, 0..4),
        proptest::option::of("[a-z=&]{0,6}"),
    )
        .prop_map(|(segments, query)| {
            let mut base = format!("https://api.example:8443/{}", segments.join("/"));
            if let Some(query) = query {
                base.push('?');
                base.push_str(&query);
            }
            base
        });
    (reference, base)
}

#[test]
fn status_urls_resolve_as_url_join_does() {
    // The origin rules aside (every reference here stays on the base's
    // origin), a status URL leads where WHATWG's parser says it does.
    let reached = check(reference_and_base(), |(reference, base)| {
        let uri: Uri = base.parse().unwrap();
        let model = url::Url::parse(&base).unwrap().join(&reference).unwrap();
        let resolved = resolve_status_url(&uri, &uri, reference.as_bytes(), &[]);
        if reference.is_empty() {
            // An empty Location names nothing to poll.
            prop_assert_eq!(resolved, Err(Refusal::Malformed));
            return Ok(false);
        }
        let target = match resolved {
            Ok(Target::SameOrigin(target)) => target,
            other => {
                return Err(TestCaseError::fail(format!(
                    "{reference:?} from {base}: {other:?}, url says {model}"
                )));
            }
        };
        prop_assert_eq!(
            (target.path(), target.query()),
            (model.path(), model.query()),
            "{:?} from {}",
            reference,
            base
        );
        Ok(true)
    });
    assert_reached(reached, 0.9);
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

/// A policy of valid lines in some of its sections, with comments and blank
/// lines between them, and one bad line (an unknown key, a value out of its
/// bounds or of the wrong type, text that is not TOML) inside one of its
/// sections: the text and the number of the bad line.
fn policy_with_one_bad_line() -> impl Strategy<Value = (String, usize)> {
    // Per section: its good lines, and bad lines whose keys none of the good
    // ones uses (a key twice would be a mistake of its own).
    const SECTIONS: [(&str, &[&str], &[&str]); 4] = [
        (
            "[retry]",
            &[
                "max_retry_after = \"10s\"",
                "add_idempotency_key = false",
                "max_attempts = 3",
            ],
            &["buffer_max = \"65MiB\"", "buffer_max = -1", "backoff = 3"],
        ),
        (
            "[timeouts]",
            &["total = \"30s\""],
            &["attempt = \"0ms\"", "attempt = \"2h\"", "attempt = 5"],
        ),
        (
            "[poll]",
            &["max_polls = 5", "max_duration = \"60s\""],
            &[
                "interval = \"2h\"",
                "interval = \"1 fortnight\"",
                "max_interval = true",
            ],
        ),
        (
            "[circuit_breaker]",
            &["open_for = \"5s\"", "probe_every = 10"],
            &[
                "consecutive_failures = 1001",
                "failure_rate = 1.5",
                "failure_rate = -0.1",
            ],
        ),
    ];
    const EVERYWHERE: [&str; 3] = [
        "no_such_key = 1",
        "this is not toml",
        "max_attempts = \"unterminated",
    ];
    let sections = proptest::sample::subsequence(vec![0usize, 1, 2, 3], 1..=4);
    let goods = [0usize, 1, 2, 3]
        .map(|i| proptest::sample::subsequence(SECTIONS[i].1, 0..=SECTIONS[i].1.len()));
    let fillers =
        proptest::collection::vec(prop_oneof![Just(""), Just("# a note"), Just("  ")], 24);
    let picks = (
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
    );
    (sections, goods, fillers, picks).prop_map(|(sections, goods, fillers, picks)| {
        let (in_section, kind, bad, at) = picks;
        let bad_section = *in_section.get(&sections);
        let (_, _, own_bad) = SECTIONS[bad_section];
        let bad_line = if kind.index(3) == 0 {
            *bad.get(&EVERYWHERE)
        } else {
            *bad.get(own_bad)
        };
        let mut fillers = fillers.into_iter().cycle();
        let mut lines: Vec<&str> = Vec::new();
        let mut bad_number = 0;
        for section in sections {
            lines.push(SECTIONS[section].0);
            let good = &goods[section];
            let bad_at = (section == bad_section).then(|| at.index(good.len() + 1));
            for i in 0..=good.len() {
                if let Some(filler) = fillers.next().filter(|f| !f.is_empty() || i % 2 == 0) {
                    lines.push(filler);
                }
                if bad_at == Some(i) {
                    lines.push(bad_line);
                    bad_number = lines.len();
                }
                if let Some(line) = good.get(i) {
                    lines.push(line);
                }
            }
        }
        (lines.join("\n"), bad_number)
    })
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
                // Every mistake in a string names the origin `<string>`, and
                // a line of the text.
                prop_assert!(error.to_string().starts_with("<string>"), "{}", error);
                if let Some(line) = error.line() {
                    prop_assert!(
                        line >= 1 && line <= text.lines().count().max(1),
                        "{}",
                        error
                    );
                }
                Ok(true)
            }
        }
    });
    assert_reached(reached, 0.2);
    assert!(loaded.into_inner() >= CASES / 20, "some texts are policies");

    // Where the bad line is known, the error names exactly it.
    let reached = check(policy_with_one_bad_line(), |(text, bad)| {
        let error = match Policy::from_toml_str(&text) {
            Ok(_) => return Err(TestCaseError::fail(format!("accepted:\n{text}"))),
            Err(error) => error,
        };
        prop_assert_eq!(error.line(), Some(bad), "{}\n{}", error, text);
        let prefix = format!("<string>:{bad}:");
        prop_assert!(error.to_string().starts_with(&prefix), "{}", error);
        Ok(true)
    });
    assert_reached(reached, 1.0);
}

/// A size as `policies/README.md` defines it: an integer and one of its
/// units (and `kB`, SI's own spelling, which the parser takes as `KB`).
fn documented_size(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = text[..digits].parse().ok()?;
    let scale: u64 = match &text[digits..] {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// A duration as `policies/README.md` defines it: an integer and `ms`, `s`,
/// `m` or `h`.
fn documented_duration(text: &str) -> Option<Duration> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let number: u64 = text[..digits].parse().ok()?;
    let millis: u64 = match &text[digits..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    number.checked_mul(millis).map(Duration::from_millis)
}

#[test]
fn policy_values_are_checked_not_trusted() {
    // Values on both sides of each documented bound: `max_attempts` 1 to 10,
    // `buffer_max` up to 64 MiB, `max_retry_after` up to 1 h,
    // `failure_rate` 0 to 1.
    let strategy = (
        prop_oneof![9 => -3i64..15, 1 => any::<i64>()],
        prop_oneof![9 => -0.2f64..1.2, 1 => any::<f64>()],
        prop_oneof![
            6 => "[0-9]{1,3}(B|KiB|MiB)",
            2 => "6[0-9]MiB|6[0-9]{7}",
            // Each side of the bound, exactly.
            1 => prop_oneof![
                Just("64MiB"),
                Just("65536KiB"),
                Just("65537KiB"),
                Just("67108864"),
                Just("67108865B"),
            ]
            .prop_map(str::to_owned),
            1 => "[0-9]{1,25}[A-Za-z]{0,3}",
        ],
        prop_oneof![
            6 => "[0-9]{1,3}(ms|s)",
            2 => "[0-9]{1,2}(m|h)|3[56][0-9]{2}s",
            1 => prop_oneof![
                Just("1h"),
                Just("60m"),
                Just("61m"),
                Just("3600000ms"),
                Just("3600001ms"),
                Just("3601s"),
            ]
            .prop_map(str::to_owned),
            1 => "[0-9]{1,25}(ms|s|m|h|d|)",
        ],
    );
    let loaded = AtomicU32::new(0);
    // Refusals where one value alone was out of bounds, by key.
    let refused = [(); 4].map(|()| AtomicU32::new(0));
    let reached = check(strategy, |(attempts, rate, size, duration)| {
        let text = format!(
            "[retry]\nmax_attempts = {attempts}\nbuffer_max = \"{size}\"\nmax_retry_after = \"{duration}\"\n\
             [circuit_breaker]\nfailure_rate = {rate:?}\n"
        );
        let size_ok = documented_size(&size).filter(|&s| s <= 64 << 20);
        let duration_ok =
            documented_duration(&duration).filter(|&d| d <= Duration::from_secs(3600));
        // The line of each key, for the values out of bounds.
        let bad: Vec<(usize, usize)> = [
            (0, 2, (1..=10).contains(&attempts)),
            (1, 3, size_ok.is_some()),
            (2, 4, duration_ok.is_some()),
            (3, 6, (0.0..=1.0).contains(&rate)),
        ]
        .into_iter()
        .filter(|&(_, _, ok)| !ok)
        .map(|(key, line, _)| (key, line))
        .collect();
        match Policy::from_toml_str(&text) {
            Ok(policy) => {
                prop_assert!(bad.is_empty(), "accepted {}", text);
                loaded.fetch_add(1, Ordering::Relaxed);
                let retry = policy.retry_settings();
                prop_assert_eq!(i64::from(policy.max_attempts()), attempts);
                prop_assert_eq!(Some(retry.buffer_max() as u64), size_ok);
                prop_assert_eq!(Some(retry.max_retry_after()), duration_ok);
                prop_assert_eq!(policy.breaker_settings().failure_rate(), rate);
            }
            Err(error) => {
                prop_assert!(!bad.is_empty(), "refused {}: {}", text, error);
                let line = error.line();
                prop_assert!(
                    bad.iter().any(|&(_, bad)| line == Some(bad)),
                    "{} names none of the lines {:?}",
                    error,
                    bad
                );
                if let [(key, _)] = bad[..] {
                    refused[key].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        Ok(true)
    });
    assert_reached(reached, 1.0);
    let loaded = loaded.into_inner();
    assert!(loaded >= CASES / 10, "only {loaded} policies in bounds");
    for (key, refused) in [
        "max_attempts",
        "buffer_max",
        "max_retry_after",
        "failure_rate",
    ]
    .iter()
    .zip(refused)
    {
        let refused = refused.into_inner();
        assert!(
            refused >= CASES / 100,
            "{key} alone refused only {refused} times"
        );
    }
}

/// One quota of a `RateLimit` field: its name, `r` and `t` when it has
/// them, and whether a parameter the parser does not read comes first.
#[derive(Debug, Clone)]
struct Quota {
    name: String,
    remaining: Option<u64>,
    reset: Option<u64>,
    other: bool,
}

fn quota() -> impl Strategy<Value = Quota> {
    (
        prop_oneof![
            "[a-z][a-z0-9_-]{0,8}".prop_map(|t| t.to_string()),
            "[a-z ,;=]{0,8}".prop_map(|s| format!("{s:?}")),
        ],
        proptest::option::of(prop_oneof![Just(0u64), 0u64..1_000]),
        proptest::option::of(0u64..1_000_000_000_000_000),
        any::<bool>(),
    )
        .prop_map(|(name, remaining, reset, other)| Quota {
            name,
            remaining,
            reset,
            other,
        })
}

#[test]
fn ratelimit_fields_never_panic_and_wait_for_every_spent_quota() {
    let field = prop_oneof![
        1 => "\\PC{0,60}".prop_map(|text| (text, None)),
        3 => proptest::collection::vec(quota(), 1..5).prop_map(|quotas| {
            let text: Vec<String> = quotas
                .iter()
                .map(|q| {
                    let mut item = q.name.clone();
                    if q.other {
                        item.push_str(";q=100;pk=:cGFydA==:");
                    }
                    if let Some(r) = q.remaining {
                        item.push_str(&format!(";r={r}"));
                    }
                    if let Some(t) = q.reset {
                        item.push_str(&format!(";t={t}"));
                    }
                    item
                })
                .collect();
            (text.join(", "), Some(quotas))
        }),
    ];
    let reached = check(field, |(text, quotas)| {
        let parsed = parse_ratelimit(&text);
        let Some(quotas) = quotas else {
            return Ok(false);
        };
        // The longest reset of the quotas that are spent (or do not say).
        let expected = quotas
            .iter()
            .filter(|q| q.remaining.is_none_or(|r| r == 0))
            .filter_map(|q| q.reset)
            .max()
            .map(Duration::from_secs);
        prop_assert_eq!(parsed, expected, "{}", text);
        Ok(true)
    });
    assert_reached(reached, 0.6);
}

#[test]
fn reset_headers_never_panic_and_seconds_and_epochs_are_exact() {
    #[derive(Debug, Clone)]
    enum Reset {
        Text(String),
        Seconds(u64, String),
        Epoch(u64),
    }
    let value = prop_oneof![
        1 => "\\PC{0,30}".prop_map(Reset::Text),
        2 => (0u64..=1_000_000_000, "[0-9]{0,12}").prop_map(|(s, f)| Reset::Seconds(s, f)),
        2 => (1_000_000_001u64..100_000_000_000).prop_map(Reset::Epoch),
    ];
    let now = 1_000_000_001u64..100_000_000_000;
    let reached = check((value, now), |(value, now)| {
        let clock = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        let (text, expected) = match value {
            Reset::Text(text) => {
                let parsed = parse_reset(&text, clock);
                if !text.bytes().any(|b| b.is_ascii_digit()) {
                    prop_assert_eq!(parsed, None, "{:?}", text);
                }
                return Ok(false);
            }
            Reset::Seconds(secs, fraction) => {
                let text = if fraction.is_empty() {
                    secs.to_string()
                } else {
                    format!("{secs}.{fraction}")
                };
                let nanos: u32 = format!("{fraction:0<9}")[..9].parse().unwrap();
                (text, Duration::new(secs, nanos))
            }
            Reset::Epoch(at) => (at.to_string(), Duration::from_secs(at.saturating_sub(now))),
        };
        prop_assert_eq!(parse_reset(&text, clock), Some(expected), "{:?}", text);
        Ok(true)
    });
    assert_reached(reached, 0.6);
}

#[test]
fn duration_text_is_exact_and_garbage_is_no_wait() {
    use tower_rebound::config::parse_duration;
    let unit = prop_oneof![
        Just(("ms", 1_000_000u128)),
        Just(("s", 1_000_000_000)),
        Just(("", 1_000_000_000))
    ];
    let text = prop_oneof![
        1 => "\\PC{0,20}".prop_map(|t| (t, None)),
        3 => (0u64..10_000_000, "[0-9]{0,9}", unit).prop_map(|(whole, fraction, (unit, per))| {
            let text = if fraction.is_empty() {
                format!("{whole}{unit}")
            } else {
                format!("{whole}.{fraction}{unit}")
            };
            let scale = 10u128.pow(fraction.len() as u32);
            let digits: u128 = format!("{whole}{fraction}").parse().unwrap();
            (text, Some(digits * per / scale))
        }),
    ];
    let settings = ErrorBodySettings::builder()
        .wait_headers([])
        .retry_delay(["/error/details/*/retryDelay"])
        .build()
        .unwrap();
    let reached = check(text, |(text, nanos)| {
        let parsed = parse_duration(&text).ok();
        // In a body, the same text is the same wait.
        let body = serde_json::json!({"error": {"details": [{"x": 1}, {"retryDelay": text}]}});
        let waited = server_wait(
            &http::HeaderMap::new(),
            body.to_string().as_bytes(),
            &settings,
        );
        prop_assert_eq!(waited.map(|(d, _)| d), parsed);
        if let Some((_, source)) = waited {
            prop_assert_eq!(source, WaitSource::RetryDelay);
        }
        let Some(nanos) = nanos else {
            return Ok(false);
        };
        let expected = Duration::new(
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        );
        prop_assert_eq!(parsed, Some(expected), "{:?}", text);
        Ok(true)
    });
    assert_reached(reached, 0.6);
}

#[test]
fn any_headers_and_body_make_a_bounded_wait_or_none() {
    let header = prop_oneof![
        Just("retry-after"),
        Just("ratelimit"),
        Just("ratelimit-reset"),
        Just("ratelimit-remaining"),
        Just("x-ratelimit-reset"),
        Just("x-ratelimit-remaining"),
        Just("date"),
    ];
    let value = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        "[0-9. ;=,\"a-z-]{0,30}".prop_map(String::into_bytes),
    ];
    let headers = proptest::collection::vec((header, value), 0..6);
    let settings = ErrorBodySettings::builder()
        .retry_delay(["/error/details/*/retryDelay", "/*"])
        .build()
        .unwrap();
    let reached = check((headers, json_like()), |(pairs, body)| {
        let mut map = http::HeaderMap::new();
        for (name, value) in &pairs {
            if let Ok(value) = HeaderValue::from_bytes(value) {
                map.append(*name, value);
            }
        }
        let wait = server_wait(&map, &body, &settings);
        let named = pairs
            .iter()
            .any(|(n, _)| n.contains("reset") || *n == "ratelimit" || *n == "retry-after");
        if let Some((_, source)) = wait {
            prop_assert!(named || source == WaitSource::RetryDelay, "{:?}", wait);
        }
        Ok(wait.is_some())
    });
    // Some inputs do make a wait: the generators reach the parsers.
    assert!(reached > 0, "no input made a wait");
}

#[test]
fn a_spent_quota_is_one_that_says_r_0_and_the_longest_reset_is_the_pause() {
    let reached = check(proptest::collection::vec(quota(), 1..5), |quotas| {
        let text: Vec<String> = quotas
            .iter()
            .map(|q| {
                let mut item = q.name.clone();
                if let Some(r) = q.remaining {
                    item.push_str(&format!(";r={r}"));
                }
                if let Some(t) = q.reset {
                    item.push_str(&format!(";t={t}"));
                }
                item
            })
            .collect();
        let text = text.join(", ");
        let mut headers = http::HeaderMap::new();
        let Ok(value) = HeaderValue::from_str(&text) else {
            return Ok(false);
        };
        headers.insert("ratelimit", value);
        // Unlike a failure's wait, an item that leaves r out says nothing.
        let expected = quotas
            .iter()
            .filter(|q| q.remaining == Some(0))
            .filter_map(|q| q.reset)
            .max()
            .map(Duration::from_secs);
        prop_assert_eq!(quota_spent(&headers), expected, "{}", text);
        Ok(true)
    });
    assert_reached(reached, 0.6);
}

#[test]
fn a_reset_pauses_only_beside_a_remaining_count_of_exactly_zero() {
    let remaining = prop_oneof![
        Just(None),
        Just(Some("0".to_owned())),
        Just(Some(" 0 ".to_owned())),
        Just(Some("00".to_owned())),
        "[0-9a-z. -]{0,6}".prop_map(Some),
    ];
    let reached = check(
        (remaining, 0u64..100_000, any::<bool>()),
        |(remaining, reset, x)| {
            let (rem, res) = if x {
                ("x-ratelimit-remaining", "x-ratelimit-reset")
            } else {
                ("ratelimit-remaining", "ratelimit-reset")
            };
            let mut headers = http::HeaderMap::new();
            headers.insert(res, HeaderValue::from(reset));
            if let Some(text) = &remaining {
                let Ok(value) = HeaderValue::from_str(text) else {
                    return Ok(false);
                };
                headers.insert(rem, value);
            }
            let spent = remaining.as_deref().map(|r| r.trim()) == Some("0");
            let got = quota_spent(&headers);
            prop_assert_eq!(got.is_some(), spent, "{:?} {}", remaining, reset);
            if spent && reset <= 1_000_000_000 {
                prop_assert_eq!(got, Some(Duration::from_secs(reset)));
            }
            Ok(true)
        },
    );
    assert_reached(reached, 0.9);
}

/// A status body of an Azure-style operation: a status, maybe an error.
#[test]
fn a_status_body_is_judged_by_its_list_and_any_bytes_are_unreadable_or_a_verdict() {
    use tower_rebound::poll::{Completion, Verdict, judge};
    let list = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
    let azure = Completion::status(
        "/status",
        list(&["NotStarted", "InProgress"]),
        list(&["Succeeded"]),
        list(&["Failed"]),
        list(&["Canceled"]),
        "/error",
    )
    .unwrap();
    let status = prop_oneof![
        Just("NotStarted"),
        Just("InProgress"),
        Just("succeeded"),
        Just("Failed"),
        Just("CANCELED"),
        Just("Deleting"),
    ];
    let code = "[A-Za-z]{1,12}";
    let reached = check(
        (status, code, any::<bool>()),
        |(status, code, with_error)| {
            let body = if with_error {
                format!(r#"{{"status":"{status}","error":{{"code":"{code}","message":"m"}}}}"#)
            } else {
                format!(r#"{{"status":"{status}"}}"#)
            };
            let verdict = judge(&azure, body.as_bytes(), false);
            let expected = match status.to_ascii_lowercase().as_str() {
                "notstarted" | "inprogress" => Verdict::Running,
                "succeeded" => Verdict::Succeeded,
                // Either ends with the error object's code, when there is one.
                lower @ ("failed" | "canceled") => {
                    let (ended, errors) = match &verdict {
                        Verdict::Failed(errors) => ("failed", errors.as_slice()),
                        Verdict::Canceled(errors) => ("canceled", errors.as_slice()),
                        _ => ("neither", &[][..]),
                    };
                    prop_assert_eq!(ended, lower, "{}", body);
                    let codes: Vec<&str> = errors.iter().filter_map(|e| e.code()).collect();
                    let wanted: Vec<&str> = if with_error {
                        vec![code.as_str()]
                    } else {
                        Vec::new()
                    };
                    prop_assert_eq!(codes, wanted, "{}", body);
                    return Ok(true);
                }
                _ => {
                    prop_assert!(matches!(verdict, Verdict::Unreadable(_)), "{}", body);
                    return Ok(true);
                }
            };
            prop_assert_eq!(verdict, expected, "{}", body);
            // Cut at the cap, the same body says nothing.
            prop_assert!(matches!(
                judge(&azure, body.as_bytes(), true),
                Verdict::Unreadable(_)
            ));
            Ok(true)
        },
    );
    assert_reached(reached, 0.9);
    // Any bytes: a verdict, never a panic.
    let google = Completion::done("/done", "/error").unwrap();
    check(json_like(), |body| {
        let _ = judge(&azure, &body, false);
        let _ = judge(&google, &body, false);
        Ok(true)
    });
}

#[test]
fn a_name_from_a_body_becomes_a_status_url_only_as_a_plain_path() {
    use tower_rebound::poll::Completion;
    let google = Completion::done("/done", "/error")
        .unwrap()
        .with_status_url("{origin}/{first_segment}/{name}", "/name")
        .unwrap();
    let request: Uri = "https://api.example/v1/projects/p/things:run"
        .parse()
        .unwrap();
    let reached = check("\\PC{0,40}", |name| {
        let body = serde_json::json!({ "name": name, "done": false }).to_string();
        match google.status_url(&request, body.as_bytes()) {
            Ok(url) => {
                let path = url
                    .strip_prefix("https://api.example/v1/")
                    .expect("on the request's origin, under its first segment");
                prop_assert!(!path.contains(['?', '#', '%', ' ']), "{}", url);
                prop_assert!(!path.split('/').any(|s| s == "." || s == ".."), "{}", url);
                Ok(true)
            }
            Err(_) => Ok(false),
        }
    });
    // Some names are plain paths: the property is reached.
    assert!(reached > 0, "no name made a status url");
    let ok = google.status_url(&request, br#"{"name":"operations/op-1"}"#);
    assert_eq!(ok.as_deref(), Ok("https://api.example/v1/operations/op-1"));
    for hostile in [
        "../admin",
        "operations/../x",
        "a?b",
        "a#b",
        "http://evil/x",
        "",
    ] {
        let body = serde_json::json!({ "name": hostile }).to_string();
        let got = google.status_url(&request, body.as_bytes());
        // Refused, or a path under the request's own origin.
        match got {
            Err(_) => {}
            Ok(url) => assert!(
                url.starts_with("https://api.example/v1/") && !url.contains(".."),
                "{hostile}: {url}"
            ),
        }
    }
}
