//! Checking settings: the one path every value takes, whether it comes from a
//! policy file, from serde, or from code.
//!
//! Each layer's settings type has a builder whose `build` checks every value
//! against its bounds with the helpers here, and fails with a
//! [`SettingsError`] that names the key as a policy file spells it. The policy
//! loader turns that key into the line and column of the value in the file.

use std::borrow::Cow;
use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

/// A setting out of its bounds, or settings that contradict each other.
///
/// Names the key as a policy file spells it (`retry.max_attempts`), and for a
/// list, which element; the message says what was expected.
///
/// ```
/// use tower_rebound::retry::RetrySettings;
///
/// let error = RetrySettings::builder().max_attempts(0).build().unwrap_err();
/// assert_eq!(error.key(), "retry.max_attempts");
/// assert_eq!(error.to_string(), "retry.max_attempts is out of bounds: expected 1 to 10");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    key: Cow<'static, str>,
    index: Option<usize>,
    message: String,
}

impl SettingsError {
    pub(crate) fn new(key: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        SettingsError {
            key: key.into(),
            index: None,
            message: message.into(),
        }
    }

    /// The same error, about element `index` of the list at its key.
    pub(crate) fn at_index(mut self, index: usize) -> Self {
        self.index = Some(index);
        self
    }

    /// The key, as a policy file spells it, such as `retry.backoff.max`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Which element of a list the error is about, counting from 0.
    pub fn index(&self) -> Option<usize> {
        self.index
    }

    /// What is wrong and what was expected.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SettingsError {}

/// `value`, when it lies within `bounds`.
pub(crate) fn bounded<T: PartialOrd>(
    key: &'static str,
    value: T,
    bounds: RangeInclusive<T>,
    show: impl Fn(&T) -> String,
) -> Result<T, SettingsError> {
    if bounds.contains(&value) {
        Ok(value)
    } else {
        Err(out_of_bounds(key, &bounds, show))
    }
}

/// The error for a value outside `bounds`.
pub(crate) fn out_of_bounds<T>(
    key: impl Into<Cow<'static, str>>,
    bounds: &RangeInclusive<T>,
    show: impl Fn(&T) -> String,
) -> SettingsError {
    let key = key.into();
    let message = format!(
        "{key} is out of bounds: expected {} to {}",
        show(bounds.start()),
        show(bounds.end())
    );
    SettingsError::new(key, message)
}

/// A duration within `bounds`.
pub(crate) fn duration(
    key: &'static str,
    value: Duration,
    bounds: RangeInclusive<Duration>,
) -> Result<Duration, SettingsError> {
    bounded(key, value, bounds, |d| show_duration(*d))
}

/// A number within `bounds` (never NaN).
pub(crate) fn number(
    key: &'static str,
    value: f64,
    bounds: RangeInclusive<f64>,
) -> Result<f64, SettingsError> {
    bounded(key, value, bounds, f64::to_string)
}

/// A count within `bounds`.
pub(crate) fn count(
    key: &'static str,
    value: u32,
    bounds: RangeInclusive<u32>,
) -> Result<u32, SettingsError> {
    bounded(key, value, bounds, u32::to_string)
}

/// A duration as a policy file writes it, in the largest whole unit.
pub(crate) fn show_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 3_600_000 == 0 && ms > 0 {
        format!("\"{}h\"", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("\"{}m\"", ms / 60_000)
    } else if ms % 1000 == 0 && ms > 0 {
        format!("\"{}s\"", ms / 1000)
    } else {
        format!("\"{ms}ms\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_nan_is_out() {
        assert_eq!(count("k", 1, 1..=10), Ok(1));
        assert_eq!(count("k", 10, 1..=10), Ok(10));
        let error = count("retry.max_attempts", 0, 1..=10).unwrap_err();
        assert_eq!(error.key(), "retry.max_attempts");
        assert_eq!(
            error.message(),
            "retry.max_attempts is out of bounds: expected 1 to 10"
        );
        assert!(number("k", f64::NAN, 0.0..=1.0).is_err());
        let error = duration(
            "t",
            Duration::ZERO,
            Duration::from_millis(1)..=Duration::from_secs(3600),
        )
        .unwrap_err();
        assert_eq!(
            error.message(),
            "t is out of bounds: expected \"1ms\" to \"1h\""
        );
    }
}
