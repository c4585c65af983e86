//! The seed API's error bodies: `format = "connio"`.
//!
//! The seed API answers failures with a JSON array of
//! `{"code", "cause", "message", "moreInfoUrl"}` objects, several per response.
//! Real servers stray from that: a single object instead of an array, a number
//! where a string belongs, a proxy's HTML page, a body cut off at the read cap.
//! The parser takes what it can from each and never fails: what it cannot read
//! stays available as raw bytes on the error.

use std::fmt;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde_json::Value;

use super::text_of;
use crate::error::ApiError;

/// Parses an error body into the API errors it carries.
///
/// Accepts the API's array of error objects and a single error object. Fields
/// may be missing, extra or of the wrong type (numbers and booleans are read as
/// their text; objects, arrays and nulls as absent). Elements that are not
/// objects, or carry none of the four fields, are skipped. When the body is
/// cut short (the read cap was reached) the complete elements before the cut
/// are still returned. Any other input yields an empty list; nesting deeper
/// than serde_json's recursion limit is rejected rather than overflowing the
/// stack.
///
/// ```
/// use tower_rebound::classify::parse_api_errors;
///
/// let body = br#"[{"code": "ResourceNotFound", "cause": "Resource not found"},
///                 {"code": "InvalidField", "moreInfoUrl": "https://example.com/e"}]"#;
/// let errors = parse_api_errors(body);
/// assert_eq!(errors.len(), 2);
/// assert_eq!(errors[0].code(), Some("ResourceNotFound"));
/// assert_eq!(errors[1].more_info_url(), Some("https://example.com/e"));
/// assert!(parse_api_errors(b"<html>bad gateway</html>").is_empty());
/// ```
pub fn parse_api_errors(body: &[u8]) -> Vec<ApiError> {
    let mut errors = Vec::new();
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let start = body.iter().position(|b| !b.is_ascii_whitespace());
    match start.map(|i| body[i]) {
        Some(b'[') => {
            let mut de = serde_json::Deserializer::from_slice(body);
            // The elements read before an error (a truncated body) are kept:
            // the seed collects them as it goes, so the error only ends the scan.
            let _ = CollectErrors(&mut errors).deserialize(&mut de);
        }
        Some(b'{') => {
            if let Ok(value) = serde_json::from_slice::<Value>(body) {
                errors.extend(api_error_from(&value));
            }
        }
        _ => {}
    }
    errors
}

struct CollectErrors<'a>(&'a mut Vec<ApiError>);

impl<'de> DeserializeSeed<'de> for CollectErrors<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for CollectErrors<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of error objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(value) = seq.next_element::<Value>()? {
            self.0.extend(api_error_from(&value));
        }
        Ok(())
    }
}

fn api_error_from(value: &Value) -> Option<ApiError> {
    let object = value.as_object()?;
    let field = |name: &str| object.get(name).and_then(text_of);
    let error = ApiError::new(
        field("code"),
        field("cause"),
        field("message"),
        field("moreInfoUrl"),
    );
    (error != ApiError::default()).then_some(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED_EXAMPLE: &str = r#"
[
  {
   "code": "ResourceNotFound",
   "cause": "Resource not found",
   "message": "Requested endpoint is not valid. Make sure that there is no typo in the URL provided. See API documentation for details.",
   "moreInfoUrl": "https://docs.connio.com/v3/error/resourcenotfound"
  }
]"#;

    #[test]
    fn the_seed_example() {
        let errors = parse_api_errors(SEED_EXAMPLE.as_bytes());
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        assert_eq!(e.code(), Some("ResourceNotFound"));
        assert_eq!(e.cause(), Some("Resource not found"));
        assert!(e.message().unwrap().starts_with("Requested endpoint"));
        assert_eq!(
            e.more_info_url(),
            Some("https://docs.connio.com/v3/error/resourcenotfound")
        );
    }

    #[test]
    fn several_errors_keep_their_order() {
        let body = br#"[{"code":"A"},{"code":"B","extra":{"x":[1,2]}},{"code":"C"}]"#;
        let codes: Vec<_> = parse_api_errors(body)
            .iter()
            .map(|e| e.code().unwrap().to_owned())
            .collect();
        assert_eq!(codes, ["A", "B", "C"]);
    }

    #[test]
    fn a_single_object() {
        let errors = parse_api_errors(br#" {"code":"Conflict","cause":"exists"} "#);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].cause(), Some("exists"));
    }

    #[test]
    fn missing_extra_and_wrong_typed_fields() {
        let body = br#"[
            {"code": 42, "cause": true, "message": null, "moreInfoUrl": ["x"]},
            {"message": "only a message", "unknown": 1},
            {"unrelated": "object"},
            "a string", 7, null, []
        ]"#;
        let errors = parse_api_errors(body);
        assert_eq!(
            errors,
            vec![
                ApiError::new(Some("42".into()), Some("true".into()), None, None),
                ApiError::new(None, None, Some("only a message".into()), None),
            ]
        );
    }

    #[test]
    fn empty_and_not_json() {
        for body in [
            &b""[..],
            b"   ",
            b"[]",
            b"{}",
            b"null",
            b"\"text\"",
            b"<html><body>502 Bad Gateway</body></html>",
            b"\xff\xfe\x00garbage",
        ] {
            assert!(parse_api_errors(body).is_empty(), "{body:?}");
        }
    }

    #[test]
    fn a_truncated_body_keeps_the_complete_elements() {
        let body = br#"[{"code":"A","cause":"x"},{"code":"B"},{"code":"C","cau"#;
        let codes: Vec<_> = parse_api_errors(body)
            .iter()
            .map(|e| e.code().unwrap().to_owned())
            .collect();
        assert_eq!(codes, ["A", "B"]);
        assert!(parse_api_errors(br#"{"code":"A","cau"#).is_empty());
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let depth = 100_000;
        let mut body = "[".repeat(depth);
        body.push_str(&"]".repeat(depth));
        assert!(parse_api_errors(body.as_bytes()).is_empty());
        let mut body = String::from("[{\"code\":\"A\"},");
        body.push_str(&"{\"x\":".repeat(depth));
        assert_eq!(parse_api_errors(body.as_bytes()).len(), 1);
    }

    #[test]
    fn a_huge_body_of_many_errors() {
        let one = r#"{"code":"E","cause":"c","message":"m","moreInfoUrl":"u"},"#;
        let mut body = String::from("[");
        body.push_str(&one.repeat(20_000));
        body.push_str(r#"{"code":"Last"}]"#);
        let errors = parse_api_errors(body.as_bytes());
        assert_eq!(errors.len(), 20_001);
        assert_eq!(errors.last().unwrap().code(), Some("Last"));
    }

    #[test]
    fn a_byte_order_mark_is_skipped() {
        let body = b"\xEF\xBB\xBF[{\"code\":\"A\"}]";
        assert_eq!(parse_api_errors(body).len(), 1);
    }
}
