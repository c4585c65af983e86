//! What classify is told about error bodies: `[error_body]` and
//! `[error_body.fields]`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use super::pointer::Pointer;
use crate::classify::WaitSource;
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
    fields: Vec<ErrorFields>,
    wait_headers: Vec<WaitSource>,
    retry_delay: Vec<Pointer>,
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

    /// The most pointers `error_body.retry_delay` may list.
    pub const MAX_RETRY_DELAY_POINTERS: usize = 16;
    /// The most pointer sets `[[error_body.fields]]` may list.
    pub const MAX_FIELD_SETS: usize = 16;

    /// A builder with the defaults: 64 KiB, the `auto` format, no pointers,
    /// waits read from every header of [`WaitSource::HEADERS`] and from no
    /// body pointer.
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
    /// of `auto` (`[error_body.fields]`): the first set, when there are
    /// several; see [`field_sets`](Self::field_sets).
    pub fn fields(&self) -> Option<&ErrorFields> {
        self.fields.first()
    }

    /// Every set of pointers (`[[error_body.fields]]`), in the order they
    /// are read: the errors each finds follow those of the sets before it.
    pub fn field_sets(&self) -> &[ErrorFields] {
        &self.fields
    }

    /// The headers a wait is read from, the first that gives one winning
    /// (`error_body.wait_headers`).
    pub fn wait_headers(&self) -> &[WaitSource] {
        &self.wait_headers
    }

    /// The JSON pointers into an error body where a wait is read when no
    /// header gave one (`error_body.retry_delay`), the first that finds one
    /// winning.
    pub fn retry_delay(&self) -> impl Iterator<Item = &str> + '_ {
        self.retry_delay.iter().map(Pointer::as_str)
    }

    pub(crate) fn retry_delay_pointers(&self) -> &[Pointer] {
        &self.retry_delay
    }
}

impl Default for ErrorBodySettings {
    fn default() -> Self {
        ErrorBodySettings {
            max_bytes: Self::DEFAULT_MAX_BYTES,
            format: ErrorBodyFormat::Auto,
            fields: Vec::new(),
            wait_headers: WaitSource::HEADERS.to_vec(),
            retry_delay: Vec::new(),
        }
    }
}

/// Builds [`ErrorBodySettings`]; see there.
#[derive(Debug, Clone, Default)]
pub struct ErrorBodyBuilder {
    settings: ErrorBodySettings,
    retry_delay: Vec<String>,
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
    pub fn fields(self, fields: ErrorFields) -> Self {
        self.field_sets([fields])
    }

    /// Several sets of pointers (`[[error_body.fields]]`), replacing any
    /// before: each is read in turn and the errors of all are kept, in
    /// order, for APIs that report errors in two shapes in one body
    /// (GitHub's `message` and `errors[]`, Azure's `error` and
    /// `error.details[]`). At most 16.
    pub fn field_sets(mut self, sets: impl IntoIterator<Item = ErrorFields>) -> Self {
        self.settings.fields = sets.into_iter().collect();
        self
    }

    /// The headers a wait is read from, in order: the first that gives one
    /// sets it (`error_body.wait_headers`). Any of [`WaitSource::HEADERS`],
    /// each once; none reads waits from the body alone.
    pub fn wait_headers(mut self, sources: impl IntoIterator<Item = WaitSource>) -> Self {
        self.settings.wait_headers = sources.into_iter().collect();
        self
    }

    /// JSON pointers into the error body where a wait is read, when no
    /// header gave one (`error_body.retry_delay`): its value is duration
    /// text (`"2s"`, `"1.5s"`, `"250ms"`) or a number of seconds. A `*`
    /// token stands for every element of an array, in order
    /// (`/error/details/*/retryDelay`); the first pointer that finds a wait
    /// sets it. At most 16; none, the default, reads no wait from the body.
    pub fn retry_delay<S: Into<String>>(mut self, pointers: impl IntoIterator<Item = S>) -> Self {
        self.retry_delay = pointers.into_iter().map(Into::into).collect();
        self
    }

    /// The settings, or the first value out of bounds or in contradiction.
    pub fn build(self) -> Result<ErrorBodySettings, SettingsError> {
        let mut settings = self.settings;
        settings::bounded(
            "error_body.max_bytes",
            settings.max_bytes,
            0..=ErrorBodySettings::MAX_MAX_BYTES,
            |n| format!("{n} bytes"),
        )?;
        check_wait_headers(&settings.wait_headers)?;
        if self.retry_delay.len() > ErrorBodySettings::MAX_RETRY_DELAY_POINTERS {
            return Err(SettingsError::new(
                "error_body.retry_delay",
                format!(
                    "error_body.retry_delay lists {} pointers: expected at most {}",
                    self.retry_delay.len(),
                    ErrorBodySettings::MAX_RETRY_DELAY_POINTERS
                ),
            ));
        }
        settings.retry_delay = self
            .retry_delay
            .iter()
            .enumerate()
            .map(|(i, text)| {
                Pointer::parse("error_body.retry_delay", text).map_err(|e| e.at_index(i))
            })
            .collect::<Result<_, _>>()?;
        if settings.fields.len() > ErrorBodySettings::MAX_FIELD_SETS {
            return Err(SettingsError::new(
                "error_body.fields",
                format!(
                    "error_body.fields lists {} sets of pointers: expected at most {}",
                    settings.fields.len(),
                    ErrorBodySettings::MAX_FIELD_SETS
                ),
            ));
        }
        match (settings.format, settings.fields.is_empty()) {
            (format @ (ErrorBodyFormat::Connio | ErrorBodyFormat::Problem), false) => {
                Err(SettingsError::new(
                    "error_body.fields",
                    format!(
                        "error_body.fields is never read with format = \"{format}\": remove it, or set format = \"fields\" (or \"auto\", which reads it when nothing else matches)"
                    ),
                ))
            }
            (ErrorBodyFormat::Fields, true) => Err(SettingsError::new(
                "error_body.format",
                "format = \"fields\" needs [error_body.fields] to say where the errors are: add it, or choose another format",
            )),
            _ => Ok(settings),
        }
    }
}

/// Each header source at most once, and no body among the headers.
fn check_wait_headers(sources: &[WaitSource]) -> Result<(), SettingsError> {
    for (i, source) in sources.iter().enumerate() {
        let error = |message: String| {
            Err(SettingsError::new("error_body.wait_headers", message).at_index(i))
        };
        if !WaitSource::HEADERS.contains(source) {
            return error(format!(
                "\"{source}\" is not a header: a wait in the body is read from the pointers of error_body.retry_delay; expected \"retry-after\", \"ratelimit\" or \"x-ratelimit-reset\""
            ));
        }
        if sources[..i].contains(source) {
            return error(format!(
                "\"{source}\" is listed twice in error_body.wait_headers"
            ));
        }
    }
    Ok(())
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
    pub(crate) fields: Option<RawFieldSets>,
    pub(crate) wait_headers: Option<Vec<String>>,
    pub(crate) retry_delay: Option<Pointers>,
}

/// `[error_body.fields]`, one table, or `[[error_body.fields]]`, a list of
/// them.
#[derive(Debug)]
pub(crate) enum RawFieldSets {
    One(RawErrorFields),
    Many(Vec<RawErrorFields>),
}

impl<'de> Deserialize<'de> for RawFieldSets {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Sets;

        impl<'de> Visitor<'de> for Sets {
            type Value = RawFieldSets;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of JSON pointers, or a list of such tables")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawFieldSets, A::Error> {
                RawErrorFields::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawFieldSets::One)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawFieldSets, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(RawFieldSets::Many)
            }
        }

        deserializer.deserialize_any(Sets)
    }
}

/// A JSON pointer, or a list of them.
#[derive(Debug)]
pub(crate) struct Pointers(Vec<String>);

impl<'de> Deserialize<'de> for Pointers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct List;

        impl<'de> Visitor<'de> for List {
            type Value = Pointers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a JSON pointer such as \"/error/details/*/retryDelay\", or a list of them",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Pointers, E> {
                Ok(Pointers(vec![v.to_owned()]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Pointers, A::Error> {
                Vec::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Pointers)
            }
        }

        deserializer.deserialize_any(List)
    }
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
        match raw.fields {
            None => {}
            Some(RawFieldSets::One(fields)) => {
                builder = builder.fields(ErrorFields::try_from(fields)?);
            }
            Some(RawFieldSets::Many(sets)) => {
                let sets = sets
                    .into_iter()
                    .enumerate()
                    .map(|(i, set)| ErrorFields::try_from(set).map_err(|e| in_set(e, i)))
                    .collect::<Result<Vec<_>, _>>()?;
                builder = builder.field_sets(sets);
            }
        }
        if let Some(names) = raw.wait_headers {
            let sources = names
                .iter()
                .enumerate()
                .map(|(i, name)| {
                    name.parse::<WaitSource>().map_err(|e| {
                        SettingsError::new("error_body.wait_headers", e.to_string()).at_index(i)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.wait_headers(sources);
        }
        if let Some(Pointers(pointers)) = raw.retry_delay {
            builder = builder.retry_delay(pointers);
        }
        builder.build()
    }
}

/// An error of set `i` of a list of pointer sets, at that set's key
/// (`error_body.fields.1.code`), so that a file's error points at it.
fn in_set(error: SettingsError, i: usize) -> SettingsError {
    let key = error
        .key()
        .replacen("error_body.fields", &format!("error_body.fields.{i}"), 1);
    SettingsError::new(key, error.message().to_owned())
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
