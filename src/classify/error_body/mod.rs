//! Parsing error bodies into [`ApiError`]s, in the format a policy names.
//!
//! APIs disagree on how to say what went wrong. The seed API sends an array
//! of `{"code", "cause", "message", "moreInfoUrl"}` objects (`connio`);
//! RFC 9457 defines problem details, one object per response served as
//! `application/problem+json` (`problem`); Azure, Google and most others wrap
//! their errors in an envelope of their own, which JSON pointers describe
//! (`fields`). `auto`, the default, tells them apart by the `Content-Type`
//! and the shape of the body.
//!
//! Whatever the format, the parsers take what they can and never fail: a
//! body that is not JSON, not UTF-8, nested past serde_json's recursion limit
//! or of another shape yields no errors, and stays available as raw bytes on
//! the error. A body cut at `error_body.max_bytes` keeps the complete errors
//! of an array before the cut; a single object that was cut yields nothing.

mod connio;
mod fields;
pub(crate) mod pointer;
mod problem;
mod settings;

use http::HeaderValue;
use serde_json::Value;

use crate::error::ApiError;

pub use connio::parse_api_errors;
pub(crate) use settings::RawErrorBody;
pub use settings::{
    ErrorBodyBuilder, ErrorBodyFormat, ErrorBodySettings, ErrorFields, ErrorFieldsBuilder,
};

/// Parses an error body into the API errors it carries, in the format of
/// `settings`; `content_type` is the response's `Content-Type`, which the
/// `auto` format reads.
///
/// [`ErrorBodyFormat`] says what each format reads. Codes that are numbers
/// are read as their decimal text in every format. The bytes are taken as
/// they are: `settings.max_bytes()` is for the reader that collects them
/// (the classify layer stops there and passes what it read, cut or not).
///
/// ```
/// use http::HeaderValue;
/// use tower_rebound::classify::{parse_error_body, ErrorBodySettings, ErrorFields};
///
/// let auto = ErrorBodySettings::default();
///
/// // A problem detail, told apart by its Content-Type.
/// let problem = HeaderValue::from_static("application/problem+json; charset=utf-8");
/// let body = br#"{"type": "https://errors.example/quota", "title": "Quota exceeded",
///                 "status": 429, "retryIn": 30}"#;
/// let errors = parse_error_body(&auto, Some(&problem), body);
/// assert_eq!(errors[0].code(), Some("https://errors.example/quota"));
/// assert_eq!(errors[0].cause(), Some("Quota exceeded"));
/// assert_eq!(errors[0].members().unwrap()["retryIn"], 30);
///
/// // The connio shape, whatever the Content-Type.
/// let errors = parse_error_body(&auto, None, br#"[{"code": "ResourceNotFound"}]"#);
/// assert_eq!(errors[0].code(), Some("ResourceNotFound"));
///
/// // Google's envelope, once the pointers say where the errors are.
/// let google = ErrorBodySettings::builder()
///     .fields(ErrorFields::builder().errors("/error").code("/code").cause("/status").build()?)
///     .build()?;
/// let body = br#"{"error": {"code": 404, "message": "Not found.", "status": "NOT_FOUND"}}"#;
/// assert!(parse_error_body(&auto, None, body).is_empty());
/// let errors = parse_error_body(&google, None, body);
/// assert_eq!(errors[0].code(), Some("404"));
/// assert_eq!(errors[0].cause(), Some("NOT_FOUND"));
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
pub fn parse_error_body(
    settings: &ErrorBodySettings,
    content_type: Option<&HeaderValue>,
    body: &[u8],
) -> Vec<ApiError> {
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    match settings.format() {
        ErrorBodyFormat::Connio => parse_api_errors(body),
        ErrorBodyFormat::Problem => problem::parse(body),
        ErrorBodyFormat::Fields => each_set(settings, body),
        ErrorBodyFormat::Auto => {
            if content_type.is_some_and(is_problem_json) {
                return problem::parse(body);
            }
            let errors = parse_api_errors(body);
            if errors.is_empty() {
                each_set(settings, body)
            } else {
                errors
            }
        }
    }
}

/// The errors of every pointer set, one set after another.
fn each_set(settings: &ErrorBodySettings, body: &[u8]) -> Vec<ApiError> {
    match settings.field_sets() {
        [] => Vec::new(),
        [one] => fields::parse(one, body),
        sets => sets
            .iter()
            .flat_map(|fields| fields::parse(fields, body))
            .collect(),
    }
}

/// Whether a `Content-Type` is `application/problem+json`, in any case and
/// with any parameters.
fn is_problem_json(content_type: &HeaderValue) -> bool {
    let value = content_type.as_bytes();
    let media_type = value.split(|&b| b == b';').next().unwrap_or(value);
    media_type
        .trim_ascii()
        .eq_ignore_ascii_case(b"application/problem+json")
}

/// A field's value as text: strings as they are, numbers and booleans as
/// JSON writes them; objects, arrays and nulls are no text.
pub(crate) fn text_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(format: ErrorBodyFormat, fields: Option<ErrorFields>) -> ErrorBodySettings {
        let builder = ErrorBodySettings::builder().format(format);
        match fields {
            Some(fields) => builder.fields(fields),
            None => builder,
        }
        .build()
        .unwrap()
    }

    fn google() -> ErrorFields {
        ErrorFields::builder()
            .errors("/error")
            .code("/code")
            .cause("/status")
            .message("/message")
            .build()
            .unwrap()
    }

    fn codes(
        settings: &ErrorBodySettings,
        content_type: Option<&'static str>,
        body: &str,
    ) -> Vec<String> {
        let content_type = content_type.map(HeaderValue::from_static);
        parse_error_body(settings, content_type.as_ref(), body.as_bytes())
            .iter()
            .map(|e| e.code().unwrap_or("-").to_owned())
            .collect()
    }

    const CONNIO: &str = r#"[{"code": "ResourceNotFound"}, {"code": "BadPath"}]"#;
    const PROBLEM: &str = r#"{"type": "https://errors.example/not-found", "title": "Not Found"}"#;
    const GOOGLE: &str =
        r#"{"error": {"code": 404, "message": "Not found.", "status": "NOT_FOUND"}}"#;

    #[test]
    fn problem_json_is_told_by_its_media_type() {
        for content_type in [
            "application/problem+json",
            "Application/Problem+JSON",
            "application/problem+json; charset=utf-8",
            "  application/problem+json ;charset=\"utf-8\"",
            "application/problem+json;",
        ] {
            let value = HeaderValue::from_str(content_type).unwrap();
            assert!(is_problem_json(&value), "{content_type}");
        }
        for content_type in [
            "application/json",
            "application/problem+xml",
            "application/problem+json2",
            "application/problem",
            "text/plain; type=application/problem+json",
            "",
        ] {
            let value = HeaderValue::from_str(content_type).unwrap();
            assert!(!is_problem_json(&value), "{content_type}");
        }
    }

    #[test]
    fn auto_picks_each_format() {
        let auto = settings(ErrorBodyFormat::Auto, None);
        let problem = Some("application/problem+json");
        let json = Some("application/json");
        assert_eq!(
            codes(&auto, problem, PROBLEM),
            ["https://errors.example/not-found"]
        );
        // A problem detail served as plain JSON has none of connio's fields.
        assert!(codes(&auto, json, PROBLEM).is_empty());
        assert_eq!(codes(&auto, json, CONNIO), ["ResourceNotFound", "BadPath"]);
        assert_eq!(codes(&auto, None, CONNIO), ["ResourceNotFound", "BadPath"]);
        // The Content-Type is believed: a connio array served as a problem
        // detail is not an object, so no problem at all.
        assert!(codes(&auto, problem, CONNIO).is_empty());
        // Without pointers, Google's envelope is raw bytes only.
        assert!(codes(&auto, json, GOOGLE).is_empty());

        let auto_google = settings(ErrorBodyFormat::Auto, Some(google()));
        assert_eq!(codes(&auto_google, json, GOOGLE), ["404"]);
        // The connio shape comes before the pointers, the problem before both.
        assert_eq!(
            codes(&auto_google, json, CONNIO),
            ["ResourceNotFound", "BadPath"]
        );
        assert_eq!(
            codes(&auto_google, problem, PROBLEM),
            ["https://errors.example/not-found"]
        );
        // A problem+json body that is not a problem is not read another way.
        assert_eq!(codes(&auto_google, problem, GOOGLE), ["about:blank"]);
    }

    #[test]
    fn several_pointer_sets_read_every_shape_of_one_body_in_order() {
        let set = |errors: &str, code: &str, message: &str| {
            ErrorFields::builder()
                .errors(errors)
                .code(code)
                .message(message)
                .build()
                .unwrap()
        };
        // Azure Resource Manager: the error, then each of its details.
        let azure = ErrorBodySettings::builder()
            .field_sets([
                set("/error", "/code", "/message"),
                set("/error/details", "/code", "/message"),
            ])
            .build()
            .unwrap();
        let body = r#"{"error": {"code": "InvalidTemplateDeployment",
            "message": "The template deployment 'vm' is not valid according to the validation procedure.",
            "details": [
              {"code": "QuotaExceeded", "message": "Operation could not be completed as it results in exceeding approved Total Regional Cores quota."},
              {"code": "SkuNotAvailable", "message": "The requested size for resource is currently not available in location 'westus'."}
            ]}}"#;
        assert_eq!(
            codes(&azure, Some("application/json"), body),
            [
                "InvalidTemplateDeployment",
                "QuotaExceeded",
                "SkuNotAvailable"
            ]
        );
        // An Azure error without details: the one error.
        let body = r#"{"error": {"code": "ResourceGroupNotFound", "message": "Resource group 'rg' could not be found."}}"#;
        assert_eq!(codes(&azure, None, body), ["ResourceGroupNotFound"]);

        // GitHub: the message of the whole, then each error's code.
        let github = ErrorBodySettings::builder()
            .format(ErrorBodyFormat::Fields)
            .field_sets([
                ErrorFields::builder()
                    .message("/message")
                    .more_info_url("/documentation_url")
                    .build()
                    .unwrap(),
                set("/errors", "/code", "/message"),
            ])
            .build()
            .unwrap();
        let body = r#"{"message": "Validation Failed",
            "errors": [{"resource": "Issue", "field": "title", "code": "missing_field"},
                       {"resource": "Label", "field": "name", "code": "already_exists"}],
            "documentation_url": "https://docs.github.com/rest/issues/labels#create-a-label"}"#;
        let errors = parse_error_body(&github, None, body.as_bytes());
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[0].code(), None);
        assert_eq!(errors[0].message(), Some("Validation Failed"));
        assert_eq!(
            codes(&github, None, body),
            ["-", "missing_field", "already_exists"]
        );
        // A plain GitHub error has its message only.
        let body =
            r#"{"message": "Not Found", "documentation_url": "https://docs.github.com/rest"}"#;
        assert_eq!(codes(&github, None, body), ["-"]);

        // problem+json: the problem's code, then its errors extension.
        let problem = r##"{"type": "https://example.net/validation-error", "title": "Your request is not valid.",
            "errors": [{"code": "age.range", "detail": "must be a positive integer", "pointer": "#/age"},
                       {"detail": "must be 'green', 'red' or 'blue'", "pointer": "#/profile/color"}]}"##;
        let auto = settings(ErrorBodyFormat::Auto, None);
        assert_eq!(
            codes(&auto, Some("application/problem+json"), problem),
            ["https://example.net/validation-error", "age.range", "-"]
        );
    }

    #[test]
    fn a_named_format_ignores_the_content_type() {
        let problem = Some("application/problem+json");
        let connio = settings(ErrorBodyFormat::Connio, None);
        assert_eq!(
            codes(&connio, problem, CONNIO),
            ["ResourceNotFound", "BadPath"]
        );
        assert!(codes(&connio, None, PROBLEM).is_empty());
        let as_problem = settings(ErrorBodyFormat::Problem, None);
        assert_eq!(
            codes(&as_problem, Some("text/html"), PROBLEM),
            ["https://errors.example/not-found"]
        );
        assert!(codes(&as_problem, None, CONNIO).is_empty());
        let fields = settings(ErrorBodyFormat::Fields, Some(google()));
        assert_eq!(codes(&fields, problem, GOOGLE), ["404"]);
        // `fields` does not fall back on the connio shape.
        assert!(codes(&fields, None, CONNIO).is_empty());
    }

    #[test]
    fn numeric_codes_are_their_decimal_text_in_every_format() {
        let problem = settings(ErrorBodyFormat::Problem, None);
        let connio = settings(ErrorBodyFormat::Connio, None);
        let fields = settings(ErrorBodyFormat::Fields, Some(google()));
        assert_eq!(codes(&problem, None, r#"{"code": 404}"#), ["404"]);
        assert_eq!(codes(&connio, None, r#"[{"code": 404}]"#), ["404"]);
        assert_eq!(codes(&fields, None, r#"{"error": {"code": 404}}"#), ["404"]);
        assert_eq!(
            codes(&fields, None, r#"{"error": {"code": -1.5e3}}"#),
            ["-1500.0"]
        );
    }

    #[test]
    fn a_byte_order_mark_is_skipped_in_every_format() {
        let problem = settings(ErrorBodyFormat::Problem, None);
        let fields = settings(ErrorBodyFormat::Fields, Some(google()));
        let with_bom = |body: &str| [&b"\xEF\xBB\xBF"[..], body.as_bytes()].concat();
        assert_eq!(
            parse_error_body(&problem, None, &with_bom(PROBLEM)).len(),
            1
        );
        assert_eq!(parse_error_body(&fields, None, &with_bom(GOOGLE)).len(), 1);
    }

    #[test]
    fn empty_and_not_json_in_every_format() {
        let all = [
            settings(ErrorBodyFormat::Auto, Some(google())),
            settings(ErrorBodyFormat::Connio, None),
            settings(ErrorBodyFormat::Problem, None),
            settings(ErrorBodyFormat::Fields, Some(google())),
        ];
        for settings in &all {
            for content_type in [None, Some("application/problem+json")] {
                for body in [
                    &b""[..],
                    b"null",
                    b"\xff\xfe\x00",
                    b"<html>502</html>",
                    b"{\"error\":",
                ] {
                    let content_type = content_type.map(HeaderValue::from_static);
                    assert!(
                        parse_error_body(settings, content_type.as_ref(), body).is_empty(),
                        "{:?} {body:?}",
                        settings.format()
                    );
                }
            }
        }
    }
}
