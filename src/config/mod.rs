//! Policies: what rebound does with each response, loaded from TOML.
//!
//! A policy is one TOML file. The shipped presets are the files in the
//! repository's `policies/` folder, compiled in, so the files a user copies and
//! the built-in presets cannot drift apart. `policies/README.md` documents
//! every key, its default and its bounds.
//!
//! Loading is strict: unknown sections and keys are errors (a typo must not
//! silently fall back to a default), every value is checked against its
//! bounds, and every error names the file, line and column.

mod error;
mod schema;
mod units;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use http::StatusCode;

use crate::classify::{Classifier, ClassifySettings, FIRST_STATUS, LAST_STATUS, StatusClass};
use schema::RawPolicy;

pub use error::PolicyError;

/// The default cap on the bytes read from an error body: 64 KiB.
pub const DEFAULT_ERROR_BODY_MAX_BYTES: usize = 64 * 1024;
/// The largest `error_body.max_bytes` a policy may set: 16 MiB.
pub const MAX_ERROR_BODY_MAX_BYTES: usize = 16 * 1024 * 1024;
/// The largest policy file [`Policy::from_path`] reads: 1 MiB.
pub const MAX_POLICY_FILE_BYTES: u64 = 1024 * 1024;

const PRESETS: [(&str, &str); 2] = [
    ("connio", include_str!("../../policies/connio.toml")),
    ("standard", include_str!("../../policies/standard.toml")),
];

/// A validated policy: everything the layers of the stack need to know.
///
/// Cheap to clone: the parts are shared.
///
/// ```
/// use http::StatusCode;
/// use rebound::{classify::StatusClass, Policy};
///
/// let policy = Policy::from_toml_str(r#"
///     [classify]
///     retryable = [429, 500]
///     unsupported = [503]
/// "#)?;
/// assert_eq!(policy.classify(StatusCode::TOO_MANY_REQUESTS), StatusClass::Retryable);
/// assert_eq!(policy.classify(StatusCode::SERVICE_UNAVAILABLE), StatusClass::Unsupported);
/// // Statuses not listed take the fallback of their hundred.
/// assert_eq!(policy.classify(StatusCode::CONFLICT), StatusClass::Terminal);
/// # Ok::<_, rebound::PolicyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    classify: Arc<ClassifySettings>,
}

impl Policy {
    /// Loads a policy from TOML text. Errors name the origin `<string>`.
    pub fn from_toml_str(text: &str) -> Result<Policy, PolicyError> {
        Policy::parse("<string>", text)
    }

    /// Loads a policy from a TOML file. Errors name the file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Policy, PolicyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let text = read_bounded(path).map_err(|e| PolicyError::new(&origin, e))?;
        Policy::parse(&origin, &text)
    }

    /// One of the shipped presets: `"connio"` (the seed API's status table) or
    /// `"standard"` (ordinary HTTP semantics).
    pub fn preset(name: &str) -> Result<Policy, PolicyError> {
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            PolicyError::new(
                name,
                format!(
                    "unknown preset: expected one of {}",
                    Policy::preset_names().join(", ")
                ),
            )
        })?;
        Policy::parse(&format!("preset {name}"), text)
    }

    /// The names of the shipped presets.
    pub fn preset_names() -> Vec<&'static str> {
        PRESETS.iter().map(|(name, _)| *name).collect()
    }

    /// The class of `status` under this policy.
    pub fn classify(&self, status: StatusCode) -> StatusClass {
        self.classify.classifier.classify(status)
    }

    /// The most bytes of an error body that are read (`error_body.max_bytes`).
    pub fn error_body_max_bytes(&self) -> usize {
        self.classify.error_body_max_bytes
    }

    pub(crate) fn classify_settings(&self) -> Arc<ClassifySettings> {
        Arc::clone(&self.classify)
    }

    fn parse(origin: &str, text: &str) -> Result<Policy, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', "; ");
            match e.span() {
                Some(span) => PolicyError::at(origin, text, span, message),
                None => PolicyError::new(origin, message),
            }
        })?;
        let at = |span, message: String| PolicyError::at(origin, text, span, message);

        let mut listed: HashMap<u16, StatusClass> = HashMap::new();
        for (class, statuses) in raw.classify.lists() {
            for status in statuses {
                let code = *status.get_ref();
                let code = u16::try_from(code)
                    .ok()
                    .filter(|c| (FIRST_STATUS..=LAST_STATUS).contains(c))
                    .ok_or_else(|| {
                        at(
                            status.span(),
                            format!(
                                "invalid status {code} in classify.{class}: expected a status code from {FIRST_STATUS} to {LAST_STATUS}"
                            ),
                        )
                    })?;
                if let Some(earlier) = listed.insert(code, class) {
                    let message = if earlier == class {
                        format!("status {code} is listed twice in classify.{class}")
                    } else {
                        format!(
                            "status {code} is listed in both classify.{earlier} and classify.{class}: a status belongs to one class"
                        )
                    };
                    return Err(at(status.span(), message));
                }
            }
        }
        let classifier = Classifier::new(raw.classify.fallback.by_hundred(), listed);

        let error_body_max_bytes = match raw.error_body.max_bytes {
            None => DEFAULT_ERROR_BODY_MAX_BYTES,
            Some(spanned) => usize::try_from(spanned.get_ref().0)
                .ok()
                .filter(|n| *n <= MAX_ERROR_BODY_MAX_BYTES)
                .ok_or_else(|| {
                    at(
                        spanned.span(),
                        format!(
                            "error_body.max_bytes is too large: expected at most {MAX_ERROR_BODY_MAX_BYTES} bytes (16MiB)"
                        ),
                    )
                })?,
        };

        Ok(Policy {
            classify: Arc::new(ClassifySettings {
                classifier,
                error_body_max_bytes,
            }),
        })
    }
}

fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;

    let file = std::fs::File::open(path).map_err(|e| format!("cannot read policy file: {e}"))?;
    let mut text = String::new();
    file.take(MAX_POLICY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read policy file: {e}"))?;
    if text.len() as u64 > MAX_POLICY_FILE_BYTES {
        return Err(format!(
            "policy file is larger than {MAX_POLICY_FILE_BYTES} bytes: expected a small TOML file"
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
