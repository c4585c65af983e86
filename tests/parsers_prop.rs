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
use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use serde_json::Value;
use tower_rebound::Policy;
use tower_rebound::classify::{
    ErrorBodyFormat, ErrorBodySettings, ErrorFields, parse_api_errors, parse_error_body,
    parse_retry_after,
};
use tower_rebound::poll::{Origin, Refusal, Target, resolve_status_url};

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
