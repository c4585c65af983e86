//! Errors where JSON pointers say they are: `format = "fields"`.
//!
//! Most APIs wrap their errors in an envelope of their own (Azure's and
//! Google's `{"error": {...}}`), and `[error_body.fields]` names where the
//! error or the array of errors is and where each field is in one error.
//! The body is walked as it is parsed, down the `errors` pointer, skipping
//! the values beside it without building them in memory; the elements of an
//! array there are collected one by one, so that a body cut at the read cap
//! keeps the complete errors before the cut, as the connio array does.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::pointer::{Pointer, index_of};
use super::settings::ErrorFields;
use super::text_of;
use crate::error::ApiError;

/// The errors at `fields.errors` in `body`: each object of an array there,
/// or the object there. Elements that are not objects (nested arrays
/// included) are skipped, and so are errors in which no field was found.
pub(super) fn parse(fields: &ErrorFields, body: &[u8]) -> Vec<ApiError> {
    let mut errors = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    // The errors read before a syntax error or the end of a cut body are
    // kept: the seed collects them as it goes, so the error only ends the
    // walk. It also ends it on purpose once the errors are read, since
    // nothing after them matters.
    let _ = At {
        tokens: fields.errors.tokens(),
        fields,
        out: &mut errors,
    }
    .deserialize(&mut de);
    errors
}

/// Walks down `tokens`, then collects the errors found there into `out`.
struct At<'a> {
    tokens: &'a [String],
    fields: &'a ErrorFields,
    out: &'a mut Vec<ApiError>,
}

impl At<'_> {
    fn collect(&mut self, value: &Value) {
        self.out.extend(error_from(self.fields, value));
    }
}

impl<'de> DeserializeSeed<'de> for At<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for At<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or an array on the way to the errors")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        let Some((token, rest)) = self.tokens.split_first() else {
            // The error itself: kept only once it is whole.
            let value = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
            self.collect(&value);
            return Ok(());
        };
        while let Some(found) = map.next_key_seed(KeyIs(token))? {
            if found {
                // The first of duplicate keys is the one walked.
                return map.next_value_seed(At {
                    tokens: rest,
                    ..self
                });
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        let Some((token, rest)) = self.tokens.split_first() else {
            while let Some(value) = seq.next_element::<Value>()? {
                self.collect(&value);
            }
            return Ok(());
        };
        let Some(index) = index_of(token) else {
            return Ok(());
        };
        for _ in 0..index {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(At {
            tokens: rest,
            ..self
        })?;
        Ok(())
    }
}

/// Whether a key is `self.0`, read without copying it when it has no
/// escapes.
struct KeyIs<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// The error `value` carries under `fields`, if it is an object in which at
/// least one field was found.
fn error_from(fields: &ErrorFields, value: &Value) -> Option<ApiError> {
    if !value.is_object() {
        return None;
    }
    let field = |pointer: &Option<Pointer>| {
        pointer
            .as_ref()
            .and_then(|p| p.resolve(value))
            .and_then(text_of)
    };
    let error = ApiError::new(
        field(&fields.code),
        field(&fields.cause),
        field(&fields.message),
        field(&fields.more_info_url),
    );
    (error != ApiError::default()).then_some(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errors: &str) -> ErrorFields {
        ErrorFields::builder()
            .errors(errors)
            .code("/code")
            .cause("/status")
            .message("/message")
            .build()
            .unwrap()
    }

    fn codes(fields: &ErrorFields, body: &str) -> Vec<Option<String>> {
        parse(fields, body.as_bytes())
            .iter()
            .map(|e| e.code().map(str::to_owned))
            .collect()
    }

    fn some(codes: &[&str]) -> Vec<Option<String>> {
        codes.iter().map(|c| Some((*c).to_owned())).collect()
    }

    #[test]
    fn azure_and_google() {
        let azure = ErrorFields::builder()
            .errors("/error")
            .code("/code")
            .message("/message")
            .build()
            .unwrap();
        let body = r#"{"error": {"code": "ResourceGroupNotFound",
            "message": "Resource group 'rg' could not be found.", "details": []}}"#;
        let errors = parse(&azure, body.as_bytes());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code(), Some("ResourceGroupNotFound"));
        assert_eq!(
            errors[0].message(),
            Some("Resource group 'rg' could not be found.")
        );
        assert_eq!(errors[0].cause(), None);
        assert_eq!(errors[0].members(), None);

        let body = r#"{"error": {"code": 404, "message": "Requested entity was not found.",
            "status": "NOT_FOUND", "errors": [{"reason": "notFound"}]}}"#;
        let errors = parse(&fields("/error"), body.as_bytes());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code(), Some("404"));
        assert_eq!(errors[0].cause(), Some("NOT_FOUND"));
        assert_eq!(errors[0].message(), Some("Requested entity was not found."));
    }

    #[test]
    fn an_array_at_the_pointer_keeps_its_order_and_skips_what_is_no_error() {
        let body = r#"{"meta": {"errors": "decoy"}, "errors": [
            {"code": "A"}, 7, null, [{"code": "nested"}], {"code": "B", "x": [1, {"y": 2}]},
            {"unrelated": 1}, {"code": null, "message": "no code"}, {"code": 1.5}
        ]}"#;
        let f = fields("/errors");
        assert_eq!(
            codes(&f, body),
            vec![Some("A".into()), Some("B".into()), None, Some("1.5".into())]
        );
        assert_eq!(parse(&f, body.as_bytes())[2].message(), Some("no code"));
    }

    #[test]
    fn the_root_is_the_default() {
        let f = ErrorFields::builder().code("/code").build().unwrap();
        assert_eq!(
            codes(&f, r#"[{"code": "A"}, {"code": "B"}]"#),
            some(&["A", "B"])
        );
        assert_eq!(codes(&f, r#"{"code": "A"}"#), some(&["A"]));
    }

    #[test]
    fn pointers_that_miss_leave_the_field_empty() {
        let f = ErrorFields::builder()
            .errors("/error")
            .code("/code/0")
            .cause("/status/text")
            .message("/message")
            .more_info_url("/links/0")
            .build()
            .unwrap();
        let body = r#"{"error": {"code": "X", "status": null,
            "message": {"text": "an object"}, "links": ["https://docs.example/x"]}}"#;
        let errors = parse(&f, body.as_bytes());
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        assert_eq!((e.code(), e.cause(), e.message()), (None, None, None));
        assert_eq!(e.more_info_url(), Some("https://docs.example/x"));
        // Nothing found at all: no error.
        assert!(parse(&f, br#"{"error": {"code": "X"}}"#).is_empty());
    }

    #[test]
    fn the_errors_pointer_walks_indices_and_escapes() {
        let body = r#"{"a/b": {"m~n": [{"skip": [1, 2, {"code": "no"}]}, {"code": "yes"}]}}"#;
        assert_eq!(codes(&fields("/a~1b/m~0n/1"), body), some(&["yes"]));
        assert_eq!(codes(&fields("/a~1b/m~0n"), body), some(&["yes"]));
        for missing in [
            "/a~1b/m~0n/2",
            "/a~1b/m~0n/01",
            "/a~1b/m~0n/-",
            "/a/b/m~0n",
            "/a~1b/m~1n",
            "/a~1b/m~0n/0/skip/0",
        ] {
            assert!(codes(&fields(missing), body).is_empty(), "{missing}");
        }
        assert_eq!(codes(&fields("/a~1b/m~0n/0/skip/2"), body), some(&["no"]));
        // A key written with escapes in the body is the same key.
        assert_eq!(
            codes(&fields("/err\"s"), r#"{"err\u0022s": [{"code": "E"}]}"#),
            some(&["E"])
        );
    }

    #[test]
    fn a_pointer_into_a_string_or_a_null_finds_nothing() {
        for body in [
            r#"{"error": "Not Found"}"#,
            r#"{"error": null}"#,
            r#"{"error": 404}"#,
            r#"{"error": {"code": "X"}}"#,
        ] {
            assert!(codes(&fields("/error/code"), body).is_empty(), "{body}");
        }
    }

    #[test]
    fn empty_and_not_json() {
        let f = fields("/error");
        for body in [
            &b""[..],
            b"   ",
            b"null",
            b"[]",
            b"{}",
            b"{\"error\": []}",
            b"{\"error\": {}}",
            b"<html><body>502 Bad Gateway</body></html>",
            b"\xff\xfe\x00garbage",
            b"{\"error\": {\"code\": \"\xff\"}}",
        ] {
            assert!(parse(&f, body).is_empty(), "{body:?}");
        }
    }

    #[test]
    fn a_cut_body_keeps_the_complete_errors_of_an_array() {
        let f = fields("/errors");
        let body =
            r#"{"errors": [{"code": "A"}, {"code": "B", "message": "m"}, {"code": "C", "mess"#;
        assert_eq!(codes(&f, body), some(&["A", "B"]));
        // Cut inside the envelope before the array: nothing.
        assert!(codes(&f, r#"{"other": [1, 2"#).is_empty());
        // A single object cut before its end: nothing.
        let single = fields("/error");
        assert!(codes(&single, r#"{"error": {"code": "A", "message": "cut he"#).is_empty());
        assert!(codes(&single, r#"{"error": {"code": "A""#).is_empty());
    }

    #[test]
    fn what_follows_the_errors_is_not_read() {
        // The errors are whole before the syntax error: they are kept.
        let f = fields("/error");
        assert_eq!(
            codes(&f, r#"{"error": {"code": "A"}, "trailer": nonsense"#),
            some(&["A"])
        );
        // The first of duplicate keys is the one read.
        assert_eq!(
            codes(&f, r#"{"error": {"code": "A"}, "error": {"code": "B"}}"#),
            some(&["A"])
        );
    }

    #[test]
    fn deep_nesting_is_rejected_not_overflowed() {
        let depth = 100_000;
        let f = fields("/errors");
        let mut body = String::from(r#"{"errors": [{"code": "A"}, "#);
        body.push_str(&"[".repeat(depth));
        assert_eq!(codes(&f, &body), some(&["A"]));
        let mut body = String::from(r#"{"skipped": "#);
        body.push_str(&"{\"x\":".repeat(depth));
        assert!(codes(&f, &body).is_empty());
        // A pointer as deep as the nesting is stopped by the same limit,
        // and followed to the end below it.
        let nested = |depth: usize| {
            let f = ErrorFields::builder()
                .errors("/x".repeat(depth))
                .code("/code")
                .build()
                .unwrap();
            let mut body = "{\"x\":".repeat(depth);
            body.push_str(r#"{"code": "bottom"}"#);
            body.push_str(&"}".repeat(depth));
            codes(&f, &body)
        };
        assert!(nested(depth).is_empty());
        assert_eq!(nested(100), some(&["bottom"]));
    }

    #[test]
    fn many_errors() {
        let f = fields("/errors");
        let one = r#"{"code":"E","message":"m"},"#;
        let mut body = String::from(r#"{"errors":["#);
        body.push_str(&one.repeat(20_000));
        body.push_str(r#"{"code":"Last"}]}"#);
        let errors = parse(&f, body.as_bytes());
        assert_eq!(errors.len(), 20_001);
        assert_eq!(errors.last().unwrap().code(), Some("Last"));
    }
}
