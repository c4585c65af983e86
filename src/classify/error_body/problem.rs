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

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The `type` of a problem detail that does not give one (RFC 9457 4.2.1).
const ABOUT_BLANK: &str = "about:blank";

/// The problem detail in `body`, or none for anything but a whole JSON
/// object (a body cut at the read cap included).
pub(super) fn parse(body: &[u8]) -> Vec<ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(object)) => vec![problem_from(object)],
        _ => Vec::new(),
    }
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
