//! What classify is told about error bodies: `[error_body]` and
//! `[error_body.fields]`.

use std::fmt;

use serde::Deserialize;

use super::pointer::Pointer;
use crate::settings::{self, SettingsError};
use crate::units::ByteSize;

/// How much of an error body classify reads, and how it reads it: a policy's
/// `[error_body]`.
///
/// ```
/// use tower_rebound::classify::{ErrorBodyFormat, ErrorBodySettings, ErrorFields};
///
/// let settings = ErrorBodySettings::new(4096)?;
/// assert_eq!(settings.max_bytes(), 4096);
/// assert_eq!(settings.format(), ErrorBodyFormat::Auto);
/// assert!(ErrorBodySettings::new(1 << 30).is_err());
///
/// // Azure's errors: `{"error": {"code": "...", "message": "..."}}`.
/// let azure = ErrorBodySettings::builder()
///     .format(ErrorBodyFormat::Fields)
///     .fields(ErrorFields::builder().errors("/error").code("/code").message("/message").build()?)
///     .build()?;
/// assert_eq!(azure.fields().unwrap().errors(), "/error");
///
/// // A format that would never read the pointers refuses them.
/// let error = ErrorBodySettings::builder()
///     .format(ErrorBodyFormat::Problem)
///     .fields(ErrorFields::builder().code("/code").build()?)
///     .build()
///     .unwrap_err();
/// assert_eq!(error.key(), "error_body.fields");
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawErrorBody")]
pub struct ErrorBodySettings {
    max_bytes: usize,
    format: ErrorBodyFormat,
    fields: Option<ErrorFields>,
}

impl ErrorBodySettings {
    /// The default cap on the bytes read from an error body: 64 KiB.
    pub const DEFAULT_MAX_BYTES: usize = 64 * 1024;
    /// The largest cap: 16 MiB.
    pub const MAX_MAX_BYTES: usize = 16 * 1024 * 1024;

    /// Reads at most `max_bytes` of each error body (0 to 16 MiB), in the
    /// [`Auto`](ErrorBodyFormat::Auto) format.
    pub fn new(max_bytes: usize) -> Result<Self, SettingsError> {
        Self::builder().max_bytes(max_bytes).build()
    }

    /// A builder with the defaults: 64 KiB, the `auto` format, no pointers.
    pub fn builder() -> ErrorBodyBuilder {
        ErrorBodyBuilder::default()
    }

    /// The most bytes of an error body that are read.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// How the body is read (`error_body.format`).
    pub fn format(&self) -> ErrorBodyFormat {
        self.format
    }

    /// Where the errors are, for the `fields` format and as the last resort
    /// of `auto` (`[error_body.fields]`).
    pub fn fields(&self) -> Option<&ErrorFields> {
        self.fields.as_ref()
    }
}

impl Default for ErrorBodySettings {
    fn default() -> Self {
        ErrorBodySettings {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            format: ErrorBodyFormat::Auto,
            fields: None,
        }
    }
}

/// Builds [`ErrorBodySettings`]; see there.
#[derive(Debug, Clone, Default)]
pub struct ErrorBodyBuilder {
    settings: ErrorBodySettings,
}

impl ErrorBodyBuilder {
    /// The most bytes of an error body that are read, 0 to 16 MiB
    /// (`error_body.max_bytes`).
    pub fn max_bytes(mut self, max_bytes: usize) -> Self {
        self.settings.max_bytes = max_bytes;
        self
    }

    /// How the body is read (`error_body.format`).
    pub fn format(mut self, format: ErrorBodyFormat) -> Self {
        self.settings.format = format;
        self
    }

    /// Where the errors are (`[error_body.fields]`): read by the `fields`
    /// format, and by `auto` when the body is neither a problem detail nor
    /// the connio shape.
    pub fn fields(mut self, fields: ErrorFields) -> Self {
        self.settings.fields = Some(fields);
        self
    }

    /// The settings, or the first value out of bounds or in contradiction.
    pub fn build(self) -> Result<ErrorBodySettings, SettingsError> {
        let settings = self.settings;
        settings::bounded(
            "error_body.max_bytes",
            settings.max_bytes,
            0..=ErrorBodySettings::MAX_MAX_BYTES,
            |n| format!("{n} bytes"),
        )?;
        match (settings.format, &settings.fields) {
            (format @ (ErrorBodyFormat::Connio | ErrorBodyFormat::Problem), Some(_)) => {
                Err(SettingsError::new(
                    "error_body.fields",
                    format!(
                        "error_body.fields is never read with format = \"{format}\": remove it, or set format = \"fields\" (or \"auto\", which reads it when nothing else matches)"
                    ),
                ))
            }
            (ErrorBodyFormat::Fields, None) => Err(SettingsError::new(
                "error_body.format",
                "format = \"fields\" needs [error_body.fields] to say where the errors are: add it, or choose another format",
            )),
            _ => Ok(settings),
        }
    }
}

/// How an error body is read into [`ApiError`](crate::ApiError)s
/// (`error_body.format`).
///
/// ```
/// use tower_rebound::classify::ErrorBodyFormat;
///
/// assert_eq!(ErrorBodyFormat::default(), ErrorBodyFormat::Auto);
/// assert_eq!(ErrorBodyFormat::Problem.as_str(), "problem");
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ErrorBodyFormat {
    /// A body whose `Content-Type` is `application/problem+json` as a problem
    /// detail; otherwise the connio shape when it finds an error; otherwise
    /// the `[error_body.fields]` pointers, when there are some.
    #[default]
    Auto,
    /// The seed API's array (or single object) of `code`, `cause`, `message`
    /// and `moreInfoUrl`: [`parse_api_errors`](super::parse_api_errors).
    Connio,
    /// A problem detail (RFC 9457, `application/problem+json`), whatever the
    /// `Content-Type`: one object, one error.
    Problem,
    /// The object, or array of objects, that `[error_body.fields]` points at.
    Fields,
}

impl ErrorBodyFormat {
    /// The name a policy file gives this format, such as `"problem"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorBodyFormat::Auto => "auto",
            ErrorBodyFormat::Connio => "connio",
            ErrorBodyFormat::Problem => "problem",
            ErrorBodyFormat::Fields => "fields",
        }
    }
}

impl fmt::Display for ErrorBodyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an API keeps its errors: JSON pointers (RFC 6901) into the body, a
/// policy's `[error_body.fields]`.
///
/// `errors` points at the error, or at an array of errors, from the root of
/// the body (`""`, the default, is the root itself). The other four point at
/// a field from one error object. Each is `""` or starts with `/`; `~1`
/// stands for `/` and `~0` for `~` in a key, and an array element is named
/// by its index. A pointer that finds nothing, or finds an object, an array
/// or a null, leaves its field empty; numbers and booleans are read as their
/// text (Google's `"code": 404` is the code `"404"`).
///
/// ```
/// use tower_rebound::classify::ErrorFields;
///
/// // Google's errors: `{"error": {"code": 404, "message": "...", "status": "NOT_FOUND"}}`.
/// let google = ErrorFields::builder()
///     .errors("/error")
///     .code("/code")
///     .cause("/status")
///     .message("/message")
///     .build()?;
/// assert_eq!(google.code(), Some("/code"));
/// assert_eq!(google.more_info_url(), None);
///
/// let error = ErrorFields::builder().code("code").build().unwrap_err();
/// assert_eq!(error.key(), "error_body.fields.code");
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFields {
    pub(crate) errors: Pointer,
    pub(crate) code: Option<Pointer>,
    pub(crate) cause: Option<Pointer>,
    pub(crate) message: Option<Pointer>,
    pub(crate) more_info_url: Option<Pointer>,
}

impl ErrorFields {
    /// A builder with `errors` at the root and no field.
    pub fn builder() -> ErrorFieldsBuilder {
        ErrorFieldsBuilder::default()
    }

    /// Where the error, or the array of errors, is in the body.
    pub fn errors(&self) -> &str {
        self.errors.as_str()
    }

    /// Where the code is in an error.
    pub fn code(&self) -> Option<&str> {
        self.code.as_ref().map(Pointer::as_str)
    }

    /// Where the cause is in an error.
    pub fn cause(&self) -> Option<&str> {
        self.cause.as_ref().map(Pointer::as_str)
    }

    /// Where the message is in an error.
    pub fn message(&self) -> Option<&str> {
        self.message.as_ref().map(Pointer::as_str)
    }

    /// Where the link to the error's documentation is in an error.
    pub fn more_info_url(&self) -> Option<&str> {
        self.more_info_url.as_ref().map(Pointer::as_str)
    }
}

/// Builds [`ErrorFields`]; see there.
#[derive(Debug, Clone, Default)]
pub struct ErrorFieldsBuilder {
    errors: Option<String>,
    code: Option<String>,
    cause: Option<String>,
    message: Option<String>,
    more_info_url: Option<String>,
}

impl ErrorFieldsBuilder {
    /// Where the error, or the array of errors, is in the body
    /// (`error_body.fields.errors`); `""`, the root, by default.
    pub fn errors(mut self, pointer: impl Into<String>) -> Self {
        self.errors = Some(pointer.into());
        self
    }

    /// Where the code is in an error (`error_body.fields.code`).
    pub fn code(mut self, pointer: impl Into<String>) -> Self {
        self.code = Some(pointer.into());
        self
    }

    /// Where the cause is in an error (`error_body.fields.cause`).
    pub fn cause(mut self, pointer: impl Into<String>) -> Self {
        self.cause = Some(pointer.into());
        self
    }

    /// Where the message is in an error (`error_body.fields.message`).
    pub fn message(mut self, pointer: impl Into<String>) -> Self {
        self.message = Some(pointer.into());
        self
    }

    /// Where the link to the error's documentation is in an error
    /// (`error_body.fields.more_info_url`).
    pub fn more_info_url(mut self, pointer: impl Into<String>) -> Self {
        self.more_info_url = Some(pointer.into());
        self
    }

    /// The pointers, or the first that is not a JSON pointer. At least one
    /// of the four fields must be named: errors with no field are never
    /// kept.
    pub fn build(self) -> Result<ErrorFields, SettingsError> {
        let field = |key: &'static str, text: Option<String>| {
            text.map(|text| Pointer::parse(key, &text)).transpose()
        };
        let fields = ErrorFields {
            errors: Pointer::parse(
                "error_body.fields.errors",
                self.errors.as_deref().unwrap_or(""),
            )?,
            code: field("error_body.fields.code", self.code)?,
            cause: field("error_body.fields.cause", self.cause)?,
            message: field("error_body.fields.message", self.message)?,
            more_info_url: field("error_body.fields.more_info_url", self.more_info_url)?,
        };
        let named = [
            &fields.code,
            &fields.cause,
            &fields.message,
            &fields.more_info_url,
        ];
        if named.iter().all(|p| p.is_none()) {
            return Err(SettingsError::new(
                "error_body.fields",
                "error_body.fields names no field to read: set at least one of code, cause, message and more_info_url",
            ));
        }
        Ok(fields)
    }
}

/// `[error_body]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawErrorBody {
    pub(crate) max_bytes: Option<ByteSize>,
    pub(crate) format: Option<ErrorBodyFormat>,
    pub(crate) fields: Option<RawErrorFields>,
}

/// `[error_body.fields]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawErrorFields {
    errors: Option<String>,
    code: Option<String>,
    cause: Option<String>,
    message: Option<String>,
    more_info_url: Option<String>,
}

impl TryFrom<RawErrorFields> for ErrorFields {
    type Error = SettingsError;

    fn try_from(raw: RawErrorFields) -> Result<Self, SettingsError> {
        ErrorFieldsBuilder {
            errors: raw.errors,
            code: raw.code,
            cause: raw.cause,
            message: raw.message,
            more_info_url: raw.more_info_url,
        }
        .build()
    }
}

impl TryFrom<RawErrorBody> for ErrorBodySettings {
    type Error = SettingsError;

    fn try_from(raw: RawErrorBody) -> Result<Self, SettingsError> {
        let mut builder = ErrorBodySettings::builder();
        if let Some(ByteSize(n)) = raw.max_bytes {
            builder = builder.max_bytes(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(format) = raw.format {
            builder = builder.format(format);
        }
        if let Some(fields) = raw.fields {
            builder = builder.fields(ErrorFields::try_from(fields)?);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> ErrorFields {
        ErrorFields::builder().code("/code").build().unwrap()
    }

    #[test]
    fn formats_and_fields_that_contradict_each_other() {
        for format in [ErrorBodyFormat::Connio, ErrorBodyFormat::Problem] {
            let error = ErrorBodySettings::builder()
                .format(format)
                .fields(fields())
                .build()
                .unwrap_err();
            assert_eq!(error.key(), "error_body.fields");
            assert!(error.message().contains(format.as_str()), "{error}");
        }
        let error = ErrorBodySettings::builder()
            .format(ErrorBodyFormat::Fields)
            .build()
            .unwrap_err();
        assert_eq!(error.key(), "error_body.format");
        for format in [ErrorBodyFormat::Auto, ErrorBodyFormat::Fields] {
            let settings = ErrorBodySettings::builder()
                .format(format)
                .fields(fields())
                .build()
                .unwrap();
            assert_eq!(settings.fields(), Some(&fields()));
        }
    }

    #[test]
    fn max_bytes_is_bounded_whatever_the_format() {
        let error = ErrorBodySettings::builder()
            .max_bytes(ErrorBodySettings::MAX_MAX_BYTES + 1)
            .format(ErrorBodyFormat::Problem)
            .build()
            .unwrap_err();
        assert_eq!(error.key(), "error_body.max_bytes");
        assert_eq!(ErrorBodySettings::new(0).unwrap().max_bytes(), 0);
        assert_eq!(
            ErrorBodySettings::new(ErrorBodySettings::DEFAULT_MAX_BYTES),
            Ok(ErrorBodySettings::default())
        );
    }

    #[test]
    fn fields_need_a_field_and_name_each_bad_pointer() {
        let error = ErrorFields::builder().errors("/error").build().unwrap_err();
        assert_eq!(error.key(), "error_body.fields");
        let cases: [(ErrorFieldsBuilder, &str); 5] = [
            (
                ErrorFields::builder().errors("error").code("/c"),
                "error_body.fields.errors",
            ),
            (ErrorFields::builder().code("c"), "error_body.fields.code"),
            (
                ErrorFields::builder().cause("/~"),
                "error_body.fields.cause",
            ),
            (
                ErrorFields::builder().message("/~9"),
                "error_body.fields.message",
            ),
            (
                ErrorFields::builder().more_info_url("#/x"),
                "error_body.fields.more_info_url",
            ),
        ];
        for (builder, key) in cases {
            assert_eq!(builder.build().unwrap_err().key(), key);
        }
        let google = ErrorFields::builder()
            .errors("/error")
            .code("/code")
            .cause("/status")
            .message("/message")
            .more_info_url("/details/0/links/0/url")
            .build()
            .unwrap();
        assert_eq!(google.errors(), "/error");
        assert_eq!(google.cause(), Some("/status"));
        assert_eq!(google.message(), Some("/message"));
        assert_eq!(google.more_info_url(), Some("/details/0/links/0/url"));
    }
}
