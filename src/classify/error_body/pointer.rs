//! JSON pointers (RFC 6901), checked once when the settings are built.
//!
//! `[error_body.fields]` says where an API keeps its errors with pointers such
//! as `/error/code`. They are split into their reference tokens, `~1` and `~0`
//! undone, when the settings are built, so that a mistake is a settings error
//! at its line and reading a body splits nothing.

use serde_json::Value;

use crate::settings::SettingsError;

/// A JSON pointer: the text as written and its reference tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// `text` as a pointer, or an error naming `key` (such as
    /// `error_body.fields.code`).
    pub(crate) fn parse(key: &'static str, text: &str) -> Result<Pointer, SettingsError> {
        let invalid = |why: &str| {
            SettingsError::new(
                key,
                format!("invalid JSON pointer {text:?} in {key}: {why}"),
            )
        };
        let tokens = match text.strip_prefix('/') {
            None if text.is_empty() => Vec::new(),
            None => {
                return Err(invalid(
                    "expected \"\" (the whole value) or a pointer that starts with \"/\", such as \"/error/code\"",
                ));
            }
            Some(rest) => rest
                .split('/')
                .map(|token| {
                    unescape(token).ok_or_else(|| {
                        invalid("\"~\" must be followed by 0 (for \"~\") or 1 (for \"/\")")
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Pointer {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pointer as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Its reference tokens, unescaped; none for `""`, the whole value.
    pub(crate) fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// The value it points at in `value`, if there is one.
    pub(crate) fn resolve<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.tokens
            .iter()
            .try_fold(value, |value, token| match value {
                Value::Object(object) => object.get(token),
                Value::Array(items) => index_of(token).and_then(|i| items.get(i)),
                _ => None,
            })
    }
}

/// The array index a token names: decimal digits without a leading zero
/// (RFC 6901 section 4). `-`, the element after the last, names none.
pub(crate) fn index_of(token: &str) -> Option<usize> {
    let digits = !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit());
    if !digits || (token.len() > 1 && token.starts_with('0')) {
        return None;
    }
    token.parse().ok()
}

/// A reference token with `~1` read as `/` and `~0` as `~`, or `None` for a
/// `~` followed by anything else.
fn unescape(token: &str) -> Option<String> {
    if !token.contains('~') {
        return Some(token.to_owned());
    }
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens(text: &str) -> Vec<String> {
        Pointer::parse("k", text).unwrap().tokens().to_vec()
    }

    #[test]
    fn tokens_are_split_and_unescaped() {
        assert!(tokens("").is_empty());
        assert_eq!(tokens("/"), [""]);
        assert_eq!(tokens("/error/code"), ["error", "code"]);
        assert_eq!(tokens("/a~1b/m~0n"), ["a/b", "m~n"]);
        // `~01` is the escape `~0` and then `1`: a `~` that an escape made
        // does not start another escape.
        assert_eq!(tokens("/~01"), ["~1"]);
        assert_eq!(tokens("//x/"), ["", "x", ""]);
    }

    #[test]
    fn malformed_pointers_name_the_key() {
        for text in ["error", "#/error", "/a~2", "/a~", " /a"] {
            let error = Pointer::parse("error_body.fields.code", text).unwrap_err();
            assert_eq!(error.key(), "error_body.fields.code", "{text}");
            assert!(
                error.message().contains("in error_body.fields.code"),
                "{error}"
            );
        }
    }

    #[test]
    fn the_examples_of_rfc_6901() {
        let doc = json!({
            "foo": ["bar", "baz"], "": 0, "a/b": 1, "c%d": 2, "e^f": 3,
            "g|h": 4, "i\\j": 5, "k\"l": 6, " ": 7, "m~n": 8
        });
        let at = |text: &str| Pointer::parse("k", text).unwrap().resolve(&doc).cloned();
        assert_eq!(at(""), Some(doc.clone()));
        assert_eq!(at("/foo"), Some(json!(["bar", "baz"])));
        assert_eq!(at("/foo/0"), Some(json!("bar")));
        for (text, n) in [
            ("/", 0),
            ("/a~1b", 1),
            ("/c%d", 2),
            ("/e^f", 3),
            ("/g|h", 4),
            ("/i\\j", 5),
            ("/k\"l", 6),
            ("/ ", 7),
            ("/m~0n", 8),
        ] {
            assert_eq!(at(text), Some(json!(n)), "{text}");
        }
    }

    #[test]
    fn misses_are_none() {
        let doc = json!({"error": {"code": "X", "list": [1, 2]}, "n": null});
        let at = |text: &str| Pointer::parse("k", text).unwrap().resolve(&doc).cloned();
        assert_eq!(at("/error/code/0"), None, "into a string");
        assert_eq!(at("/n/x"), None, "into a null");
        assert_eq!(at("/error/list/2"), None, "past the end");
        assert_eq!(at("/error/list/-"), None, "the element after the last");
        assert_eq!(at("/error/list/01"), None, "a leading zero");
        assert_eq!(at("/error/list/+1"), None, "a sign");
        assert_eq!(at("/error/list/1"), Some(json!(2)));
        assert_eq!(at("/missing"), None);
    }

    #[test]
    fn indices() {
        assert_eq!(index_of("0"), Some(0));
        assert_eq!(index_of("10"), Some(10));
        for token in [
            "",
            "-",
            "00",
            "01",
            "+1",
            "-1",
            "1e2",
            "99999999999999999999999",
        ] {
            assert_eq!(index_of(token), None, "{token}");
        }
    }
}
