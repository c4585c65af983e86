//! The status table: which class each HTTP status belongs to under a policy.

use std::fmt;
use std::str::FromStr;

use http::StatusCode;

/// The class of a response status under a policy.
///
/// Every response falls into exactly one class, and each layer above classify
/// acts on the class alone: nothing above re-reads status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusClass {
    /// The call succeeded; the response is passed through.
    Success,
    /// A transient failure (throttling or a server error) worth another attempt.
    Retryable,
    /// The request was accepted and finishes asynchronously (`202 Accepted`);
    /// the response is passed through for the poll layer.
    Pollable,
    /// The request itself is wrong; sending it again will not help.
    Terminal,
    /// The server says the feature does not exist; never retried.
    Unsupported,
}

impl StatusClass {
    /// All classes, in the order policies list them.
    pub const ALL: [StatusClass; 5] = [
        StatusClass::Success,
        StatusClass::Retryable,
        StatusClass::Pollable,
        StatusClass::Terminal,
        StatusClass::Unsupported,
    ];

    /// The name of the class as policy files spell it, such as `"retryable"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatusClass::Success => "success",
            StatusClass::Retryable => "retryable",
            StatusClass::Pollable => "pollable",
            StatusClass::Terminal => "terminal",
            StatusClass::Unsupported => "unsupported",
        }
    }

    /// Whether responses of this class pass through as `Ok(response)`.
    pub const fn passes_through(self) -> bool {
        matches!(self, StatusClass::Success | StatusClass::Pollable)
    }
}

impl fmt::Display for StatusClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`StatusClass`] from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownClass;

impl fmt::Display for UnknownClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "unknown status class: expected success, retryable, pollable, terminal or unsupported",
        )
    }
}

impl std::error::Error for UnknownClass {}

impl FromStr for StatusClass {
    type Err = UnknownClass;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StatusClass::ALL
            .into_iter()
            .find(|class| class.as_str() == s)
            .ok_or(UnknownClass)
    }
}

/// The first and last status a policy can list.
pub(crate) const FIRST_STATUS: u16 = 100;
pub(crate) const LAST_STATUS: u16 = 599;
const SPAN: usize = (LAST_STATUS - FIRST_STATUS + 1) as usize;

/// A complete map from status code to [`StatusClass`], built from a policy.
///
/// A lookup is one array index. Statuses the policy does not list take the
/// fallback of their hundred (`1xx` … `5xx`); statuses from 600 up, which HTTP
/// does not define, are terminal.
#[derive(Clone, PartialEq, Eq)]
pub struct Classifier {
    table: [StatusClass; SPAN],
}

impl Classifier {
    /// Builds a table from the fallback class of each hundred (index 0 is
    /// `1xx`) and the explicitly listed statuses, which must lie in 100..=599.
    pub(crate) fn new(
        fallback: [StatusClass; 5],
        listed: impl IntoIterator<Item = (u16, StatusClass)>,
    ) -> Self {
        let mut table = [StatusClass::Terminal; SPAN];
        for (i, class) in table.iter_mut().enumerate() {
            *class = fallback[i / 100];
        }
        for (status, class) in listed {
            debug_assert!((FIRST_STATUS..=LAST_STATUS).contains(&status));
            if let Some(slot) = table.get_mut(usize::from(status.wrapping_sub(FIRST_STATUS))) {
                *slot = class;
            }
        }
        Classifier { table }
    }

    /// The class of `status`.
    pub fn classify(&self, status: StatusCode) -> StatusClass {
        self.table
            .get(usize::from(status.as_u16().wrapping_sub(FIRST_STATUS)))
            .copied()
            .unwrap_or(StatusClass::Terminal)
    }
}

impl fmt::Debug for Classifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Print runs of equal classes rather than 500 entries.
        let mut list = f.debug_map();
        let mut start = 0;
        for i in 1..=SPAN {
            if i == SPAN || self.table[i] != self.table[start] {
                let first = start as u16 + FIRST_STATUS;
                let last = i as u16 - 1 + FIRST_STATUS;
                list.entry(&format_args!("{first}..={last}"), &self.table[start]);
                start = i;
            }
        }
        list.finish()
    }
}
