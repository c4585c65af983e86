//! What the classify layer is told: the status table (`[classify]`), with the
//! error-body settings (`[error_body]`, in `error_body/settings.rs`) beside it.

use std::sync::Arc;

use http::StatusCode;
use serde::Deserialize;

use super::error_body::ErrorBodySettings;
use crate::settings::SettingsError;
use crate::status::{Classifier, FIRST_STATUS, LAST_STATUS, Rule, StatusClass};

/// The status table of a policy and its error-body settings.
///
/// Statuses listed for a class take that class; the others take the fallback
/// of their hundred (by default `1xx` and `4xx` terminal, `2xx` and `3xx`
/// success, `5xx` retryable). Built with [`ClassifySettings::builder`], from a
/// policy file's `[classify]` and `[error_body]`, or with serde from a
/// `[classify]` table.
///
/// ```
/// use http::StatusCode;
/// use tower_rebound::classify::{ClassifySettings, StatusClass};
///
/// let settings = ClassifySettings::builder()
///     .retryable([429, 500])
///     .pollable([202])
///     .unsupported([503])
///     .build()?;
/// assert_eq!(settings.classify(StatusCode::SERVICE_UNAVAILABLE), StatusClass::Unsupported);
/// assert_eq!(settings.classify(StatusCode::BAD_GATEWAY), StatusClass::Retryable);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawClassify")]
pub struct ClassifySettings {
    pub(crate) classifier: Arc<Classifier>,
    pub(crate) error_body: ErrorBodySettings,
}

impl ClassifySettings {
    /// A builder with no listed statuses, the default fallbacks and the
    /// default error-body settings.
    pub fn builder() -> ClassifyBuilder {
        ClassifyBuilder::default()
    }

    /// The class of `status`.
    pub fn classify(&self, status: StatusCode) -> StatusClass {
        self.classifier.classify(status)
    }

    /// The status table, shared by the layers that name the class of a
    /// response.
    pub fn classifier(&self) -> &Arc<Classifier> {
        &self.classifier
    }

    /// How error bodies are read.
    pub fn error_body(&self) -> &ErrorBodySettings {
        &self.error_body
    }
}

impl Default for ClassifySettings {
    fn default() -> Self {
        ClassifySettings::builder()
            .build()
            .expect("the defaults are within bounds")
    }
}

/// Builds [`ClassifySettings`]; see there.
#[derive(Debug, Clone)]
pub struct ClassifyBuilder {
    lists: [Vec<u16>; 5],
    fallback: [StatusClass; 5],
    bad_hundred: Option<u8>,
    rules: Vec<Rule>,
    error_body: ErrorBodySettings,
}

impl Default for ClassifyBuilder {
    fn default() -> Self {
        ClassifyBuilder {
            lists: Default::default(),
            fallback: DEFAULT_FALLBACK,
            bad_hundred: None,
            rules: Vec::new(),
            error_body: ErrorBodySettings::default(),
        }
    }
}

/// The class of unlisted statuses, by hundred (`1xx` first).
const DEFAULT_FALLBACK: [StatusClass; 5] = [
    StatusClass::Terminal,
    StatusClass::Success,
    StatusClass::Success,
    StatusClass::Terminal,
    StatusClass::Retryable,
];

impl ClassifyBuilder {
    /// The statuses of `class` (`classify.success`, `classify.retryable`, ...),
    /// replacing any listed for it before. Each must be from 100 to 599, and
    /// a status belongs to one class.
    pub fn statuses(mut self, class: StatusClass, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.lists[class_index(class)] = statuses.into_iter().collect();
        self
    }

    /// The statuses that are a success (`classify.success`).
    pub fn success(self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses(StatusClass::Success, statuses)
    }

    /// The statuses worth another attempt (`classify.retryable`).
    pub fn retryable(self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses(StatusClass::Retryable, statuses)
    }

    /// The statuses of an operation that goes on (`classify.pollable`).
    pub fn pollable(self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses(StatusClass::Pollable, statuses)
    }

    /// The statuses of a request that is wrong (`classify.terminal`).
    pub fn terminal(self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses(StatusClass::Terminal, statuses)
    }

    /// The statuses of a feature that does not exist
    /// (`classify.unsupported`).
    pub fn unsupported(self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.statuses(StatusClass::Unsupported, statuses)
    }

    /// The class of the statuses of hundred `hundred` (1 for `1xx` to 5 for
    /// `5xx`) that no list names (`classify.fallback`).
    pub fn fallback(mut self, hundred: u8, class: StatusClass) -> Self {
        if let Some(slot) = usize::from(hundred)
            .checked_sub(1)
            .and_then(|i| self.fallback.get_mut(i))
        {
            *slot = class;
        } else {
            self.bad_hundred = Some(hundred);
        }
        self
    }

    /// One more rule, tried after those added before it and before the
    /// status lists (`[[classify.rules]]`); see [`Rule`].
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// How error bodies are read (`[error_body]`).
    pub fn error_body(mut self, error_body: ErrorBodySettings) -> Self {
        self.error_body = error_body;
        self
    }

    /// The settings, or the first value out of bounds.
    pub fn build(self) -> Result<ClassifySettings, SettingsError> {
        if let Some(hundred) = self.bad_hundred {
            return Err(SettingsError::new(
                "classify.fallback",
                format!("no such hundred {hundred}: expected 1 (1xx) to 5 (5xx)"),
            ));
        }
        let mut listed: Vec<(u16, StatusClass)> = Vec::new();
        for &class in StatusClass::ALL {
            let key = list_key(class);
            for (index, &status) in self.lists[class_index(class)].iter().enumerate() {
                if !(FIRST_STATUS..=LAST_STATUS).contains(&status) {
                    return Err(SettingsError::new(
                        key,
                        format!(
                            "invalid status {status} in {key}: expected a status code from {FIRST_STATUS} to {LAST_STATUS}"
                        ),
                    )
                    .at_index(index));
                }
                if let Some(&(_, earlier)) = listed.iter().find(|(s, _)| *s == status) {
                    let message = if earlier == class {
                        format!("status {status} is listed twice in {key}")
                    } else {
                        format!(
                            "status {status} is listed in both {} and {key}: a status belongs to one class",
                            list_key(earlier)
                        )
                    };
                    return Err(SettingsError::new(key, message).at_index(index));
                }
                listed.push((status, class));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            rule.check(&format!("classify.rules.{i}"))?;
        }
        Ok(ClassifySettings {
            classifier: Arc::new(Classifier::new(self.fallback, listed).with_rules(self.rules)),
            error_body: self.error_body,
        })
    }
}

fn class_index(class: StatusClass) -> usize {
    StatusClass::ALL
        .iter()
        .position(|c| *c == class)
        .unwrap_or(0)
}

fn list_key(class: StatusClass) -> &'static str {
    match class {
        StatusClass::Success => "classify.success",
        StatusClass::Retryable => "classify.retryable",
        StatusClass::Pollable => "classify.pollable",
        StatusClass::Terminal => "classify.terminal",
        StatusClass::Unsupported => "classify.unsupported",
    }
}

/// `[classify]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClassify {
    #[serde(default)]
    pub(crate) success: Vec<i64>,
    #[serde(default)]
    pub(crate) retryable: Vec<i64>,
    #[serde(default)]
    pub(crate) pollable: Vec<i64>,
    #[serde(default)]
    pub(crate) terminal: Vec<i64>,
    #[serde(default)]
    pub(crate) unsupported: Vec<i64>,
    #[serde(default)]
    pub(crate) fallback: RawFallback,
    #[serde(default)]
    pub(crate) rules: Vec<RawRule>,
}

/// One `[[classify.rules]]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    name: Option<String>,
    status: Option<OneOrMany<i64>>,
    code: Option<OneOrMany<String>>,
    message: Option<OneOrMany<String>>,
    header: Option<RawHeader>,
    class: StatusClass,
}

/// A rule's `header`: `"Name"`, `"Name: value"`, `"Name: a | b"`, or
/// `{ name = "Name", any_of = ["a", "b"] }` for values the text cannot
/// write (a `*`, a `|`).
#[derive(Debug)]
enum RawHeader {
    Text(String),
    Table(RawHeaderTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeaderTable {
    name: String,
    any_of: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::{self, MapAccess, Visitor};

        struct Header;

        impl<'de> Visitor<'de> for Header {
            type Value = RawHeader;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "\"Name\", \"Name: value\", \"Name: value | value\" or a table { name = \"Name\", any_of = [...] }",
                )
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawHeader, E> {
                Ok(RawHeader::Text(v.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawHeader, A::Error> {
                RawHeaderTable::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RawHeader::Table)
            }
        }

        deserializer.deserialize_any(Header)
    }
}

impl RawHeader {
    /// The condition on `rule`, or what is wrong with it, at `key`.
    fn apply(&self, rule: Rule, key: String) -> Result<Rule, SettingsError> {
        match self {
            RawHeader::Table(RawHeaderTable { name, any_of: None }) => {
                Ok(rule.header_present(name.trim()))
            }
            RawHeader::Table(RawHeaderTable {
                name,
                any_of: Some(values),
            }) => {
                if values.is_empty() {
                    return Err(SettingsError::new(
                        key,
                        format!(
                            "header {name:?} in a rule has an empty any_of: list at least one value, or leave any_of out to match any value"
                        ),
                    ));
                }
                Ok(rule.header_any_of(name.trim(), values.iter().map(String::as_str)))
            }
            RawHeader::Text(text) => {
                let Some((name, values)) = text.split_once(':') else {
                    return Ok(rule.header_present(text.trim()));
                };
                let name = name.trim();
                let values: Vec<&str> = values.split('|').map(str::trim).collect();
                if values.len() > 1 && values.iter().any(|v| v.is_empty()) {
                    return Err(SettingsError::new(
                        key,
                        format!(
                            "invalid header {text:?} in a rule: an empty value between \"|\"; expected \"Name: value | value\""
                        ),
                    ));
                }
                if values.contains(&"*") {
                    return Err(SettingsError::new(
                        key,
                        format!(
                            "header {text:?} in a rule: \"*\" is not a wildcard here; write header = \"{name}\" to match any value, or header = {{ name = \"{name}\", any_of = [\"*\"] }} to match a literal *"
                        ),
                    ));
                }
                Ok(rule.header_any_of(name, values))
            }
        }
    }
}

/// A value written alone or as a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

impl RawRule {
    fn into_rule(self, i: usize) -> Result<Rule, SettingsError> {
        let key = |rest: &str| format!("classify.rules.{i}.{rest}");
        let mut rule = Rule::new(self.class);
        if let Some(name) = &self.name {
            rule = rule.named(name);
        }
        if let Some(statuses) = self.status {
            let statuses = statuses
                .into_vec()
                .into_iter()
                .enumerate()
                .map(|(index, n)| {
                    u16::try_from(n).map_err(|_| {
                        SettingsError::new(
                            key("status"),
                            format!(
                                "invalid status {n} in a rule: expected a status code from {FIRST_STATUS} to {LAST_STATUS}"
                            ),
                        )
                        .at_index(index)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            rule = rule.status(statuses);
        }
        if let Some(codes) = self.code {
            rule = rule.code(codes.into_vec());
        }
        if let Some(messages) = self.message {
            rule = rule.message(messages.into_vec());
        }
        if let Some(header) = &self.header {
            rule = header.apply(rule, key("header"))?;
        }
        Ok(rule)
    }
}

impl RawClassify {
    /// The builder these lists make, before the error-body settings.
    pub(crate) fn builder(self) -> Result<ClassifyBuilder, SettingsError> {
        let fallback = self.fallback.by_hundred();
        let mut builder = ClassifySettings::builder();
        for (class, list) in [
            (StatusClass::Success, self.success),
            (StatusClass::Retryable, self.retryable),
            (StatusClass::Pollable, self.pollable),
            (StatusClass::Terminal, self.terminal),
            (StatusClass::Unsupported, self.unsupported),
        ] {
            let key = list_key(class);
            let statuses = list
                .into_iter()
                .enumerate()
                .map(|(index, n)| {
                    u16::try_from(n).map_err(|_| {
                        SettingsError::new(
                            key,
                            format!(
                                "invalid status {n} in {key}: expected a status code from {FIRST_STATUS} to {LAST_STATUS}"
                            ),
                        )
                        .at_index(index)
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            builder = builder.statuses(class, statuses);
        }
        for (i, class) in fallback.into_iter().enumerate() {
            builder = builder.fallback(i as u8 + 1, class);
        }
        for (i, rule) in self.rules.into_iter().enumerate() {
            builder = builder.rule(rule.into_rule(i)?);
        }
        Ok(builder)
    }
}

impl TryFrom<RawClassify> for ClassifySettings {
    type Error = SettingsError;

    fn try_from(raw: RawClassify) -> Result<Self, SettingsError> {
        raw.builder()?.build()
    }
}

/// The class of the statuses a policy does not list, by hundred.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFallback {
    #[serde(rename = "1xx", default = "terminal")]
    informational: StatusClass,
    #[serde(rename = "2xx", default = "success")]
    successful: StatusClass,
    #[serde(rename = "3xx", default = "success")]
    redirection: StatusClass,
    #[serde(rename = "4xx", default = "terminal")]
    client_error: StatusClass,
    #[serde(rename = "5xx", default = "retryable")]
    server_error: StatusClass,
}

impl Default for RawFallback {
    fn default() -> Self {
        let [
            informational,
            successful,
            redirection,
            client_error,
            server_error,
        ] = DEFAULT_FALLBACK;
        RawFallback {
            informational,
            successful,
            redirection,
            client_error,
            server_error,
        }
    }
}

impl RawFallback {
    fn by_hundred(&self) -> [StatusClass; 5] {
        [
            self.informational,
            self.successful,
            self.redirection,
            self.client_error,
            self.server_error,
        ]
    }
}

fn terminal() -> StatusClass {
    StatusClass::Terminal
}
fn success() -> StatusClass {
    StatusClass::Success
}
fn retryable() -> StatusClass {
    StatusClass::Retryable
}
