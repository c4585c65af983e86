//! Problem details (RFC 9457, `application/problem+json`): `format = "problem"`.
//!
//! A problem detail is one JSON object per document: `type` (a URI naming
//! the kind of problem, `about:blank` when absent), `title`, `detail`,
//! `status`, `instance` and any extension members the API adds. It maps onto
//! an [`ApiError`] as: the code is a `code` extension when the API sends one
//! (many do, beside a generic `type`), else the `type`; the cause is the
//! `title`; the message is the `detail`; the documentation link is the
//! `type` when it is an absolute http(s) URI, which RFC 9457 suggests should
//! lead to documentation. The whole object stays on the error
//! ([`ApiError::members`]) for `status`, `instance` and the extensions.
//!
//! Many problem details carry more than one error in an `errors` extension,
//! as RFC 9457's own example does (`"errors": [{"detail": ..., "pointer":
//! ...}]`): each object of an `errors` array becomes one more error after
//! the problem's own, its code the object's `code` (a string or a number),
//! its cause its `title`, its message its `detail` (or `message`), the
//! object kept whole as its members. An `errors` that is not an array (a
//! map of fields to messages) adds none.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The `type` of a problem detail that does not give one (RFC 9457 4.2.1).
const ABOUT_BLANK: &str = "about:blank";

/// The problem detail in `body`, or none for anything but a whole JSON
/// object (a body cut at the read cap included).
pub(super) fn parse(body: &[u8]) -> Vec<ApiError> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    let more: Vec<ApiError> = match object.get("errors") {
        Some(Value::Array(items)) => items.iter().filter_map(extension_error).collect(),
        _ => Vec::new(),
    };
    let mut errors = Vec::with_capacity(1 + more.len());
    errors.push(problem_from(object));
    errors.extend(more);
    errors
}

/// One element of the `errors` extension, when it is an object.
fn extension_error(item: &Value) -> Option<ApiError> {
    let object = item.as_object()?;
    let string = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    let code = match object.get("code") {
        Some(Value::String(code)) => Some(code.clone()),
        Some(Value::Number(code)) => Some(code.to_string()),
        _ => None,
    };
    let message = string("detail").or_else(|| string("message"));
    Some(ApiError::new(code, string("title"), message, None).with_members(object.clone()))
}

fn problem_from(object: Map<String, Value>) -> ApiError {
    // RFC 9457 3.1: a member of the wrong type is ignored, as if absent.
    let string = |name: &str| object.get(name).and_then(Value::as_str).map(str::to_owned);
    let kind = string("type");
    let code = match object.get("code") {
        Some(Value::String(code)) => code.clone(),
        Some(Value::Number(code)) => code.to_string(),
        _ => kind.clone().unwrap_or_else(|| ABOUT_BLANK.to_owned()),
    };
    let more_info_url = kind.filter(|kind| is_web_url(kind));
    ApiError::new(Some(code), string("title"), string("detail"), more_info_url).with_members(object)
}

/// Whether `text` is an absolute http or https URI, one a browser can open.
fn is_web_url(text: &str) -> bool {
    let Ok(uri) = text.parse::<http::Uri>() else {
        return false;
    };
    let web = uri
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"));
    web && uri.host().is_some_and(|host| !host.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The example of RFC 9457 section 3.
    const OUT_OF_CREDIT: &str = r#"{
        "type": "https://example.com/probs/out-of-credit",
        "title": "You do not have enough credit.",
        "detail": "Your current balance is 30, but that costs 50.",
        "instance": "/account/12345/msgs/abc",
        "balance": 30,
        "accounts": ["/account/12345", "/account/67890"]
    }"#;

    fn one(body: &str) -> ApiError {
        let mut errors = parse(body.as_bytes());
        assert_eq!(errors.len(), 1, "{body}");
        errors.remove(0)
    }

    #[test]
    fn the_example_of_the_rfc() {
        let e = one(OUT_OF_CREDIT);
        assert_eq!(e.code(), Some("https://example.com/probs/out-of-credit"));
        assert_eq!(e.cause(), Some("You do not have enough credit."));
        assert_eq!(
            e.message(),
            Some("Your current balance is 30, but that costs 50.")
        );
        assert_eq!(
            e.more_info_url(),
            Some("https://example.com/probs/out-of-credit")
        );
        let members = e.members().expect("the object is kept");
        assert_eq!(members["instance"], "/account/12345/msgs/abc");
        assert_eq!(members["balance"], 30);
        assert_eq!(members["accounts"][1], "/account/67890");
        assert_eq!(members.len(), 6);
    }

    #[test]
    fn an_absent_type_is_about_blank() {
        let e = one(r#"{"title": "Not Found", "status": 404}"#);
        assert_eq!(e.code(), Some("about:blank"));
        assert_eq!(e.cause(), Some("Not Found"));
        assert_eq!(e.more_info_url(), None);
        assert_eq!(e.members().unwrap()["status"], 404);
        assert_eq!(one("{}").code(), Some("about:blank"));
    }

    #[test]
    fn members_of_the_wrong_type_are_ignored() {
        let e = one(r#"{"type": 7, "title": ["x"], "detail": null, "status": "404"}"#);
        assert_eq!(e.code(), Some("about:blank"));
        assert_eq!(
            (e.cause(), e.message(), e.more_info_url()),
            (None, None, None)
        );
        // Kept as received all the same.
        assert_eq!(e.members().unwrap()["type"], 7);
    }

    #[test]
    fn only_an_absolute_web_uri_is_a_link() {
        for (kind, link) in [
            ("https://errors.example/quota", true),
            ("HTTP://errors.example/quota", true),
            ("http://errors.example:8080/a?b=c", true),
            ("about:blank", false),
            ("urn:problem:quota", false),
            ("tag:example.com,2024:quota", false),
            ("/probs/quota", false),
            ("quota", false),
            ("ftp://errors.example/quota", false),
            ("https://", false),
            ("https://exa mple/", false),
        ] {
            let e = one(&json!({ "type": kind }).to_string());
            assert_eq!(e.code(), Some(kind), "{kind}");
            assert_eq!(e.more_info_url().is_some(), link, "{kind}");
        }
    }

    #[test]
    fn a_code_member_wins_over_the_type() {
        let e = one(r#"{"type": "https://errors.example/quota", "code": "QuotaExceeded"}"#);
        assert_eq!(e.code(), Some("QuotaExceeded"));
        assert_eq!(e.more_info_url(), Some("https://errors.example/quota"));
        assert_eq!(one(r#"{"code": 4041}"#).code(), Some("4041"));
        // Neither a string nor a number: the type again.
        assert_eq!(
            one(r#"{"type": "urn:x", "code": true}"#).code(),
            Some("urn:x")
        );
        assert_eq!(one(r#"{"code": null}"#).code(), Some("about:blank"));
    }

    #[test]
    fn the_errors_extension_follows_the_problem() {
        // RFC 9457 section 3's example, and an API that gives each a code.
        let body = r##"{
            "type": "https://example.net/validation-error",
            "title": "Your request is not valid.",
            "errors": [
                {"detail": "must be a positive integer", "pointer": "#/age"},
                {"code": "color.invalid", "title": "Bad color",
                 "detail": "must be 'green', 'red' or 'blue'", "pointer": "#/profile/color"},
                {"code": 4221, "message": "too long"},
                "not an object", 7, null
            ]
        }"##;
        let errors = parse(body.as_bytes());
        let codes: Vec<Option<&str>> = errors.iter().map(ApiError::code).collect();
        assert_eq!(
            codes,
            [
                Some("https://example.net/validation-error"),
                None,
                Some("color.invalid"),
                Some("4221")
            ]
        );
        assert_eq!(errors[1].message(), Some("must be a positive integer"));
        assert_eq!(errors[1].members().unwrap()["pointer"], "#/age");
        assert_eq!(errors[2].cause(), Some("Bad color"));
        assert_eq!(errors[3].message(), Some("too long"));
        // The problem keeps its whole object, the extension included.
        assert_eq!(
            errors[0].members().unwrap()["errors"][0]["pointer"],
            "#/age"
        );
        // A map of fields to messages is not a list of errors.
        let map = r#"{"title": "One or more validation errors occurred.",
            "errors": {"Name": ["The Name field is required."]}}"#;
        assert_eq!(parse(map.as_bytes()).len(), 1);
    }

    #[test]
    fn anything_but_one_whole_object_is_nothing() {
        for body in [
            "",
            "null",
            "[]",
            r#"[{"type": "urn:a"}, {"type": "urn:b"}]"#,
            r#""about:blank""#,
            r#"{"type": "urn:a", "title": "cut he"#,
            r#"{"type": "urn:a"} {"type": "urn:b"}"#,
            "<html>502</html>",
        ] {
            assert!(parse(body.as_bytes()).is_empty(), "{body}");
        }
        assert!(parse(b"{\"title\": \"\xff\xfe\"}").is_empty(), "not UTF-8");
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let depth = 100_000;
        let mut body = String::from(r#"{"type": "urn:a", "x": "#);
        body.push_str(&"[".repeat(depth));
        body.push_str(&"]".repeat(depth));
        body.push('}');
        assert!(parse(body.as_bytes()).is_empty());
    }
}
