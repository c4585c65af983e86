//! The status table: which class each HTTP status belongs to under a policy,
//! and the rules tried before it.

mod rule;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};

pub use rule::{Decision, Rule, RuleInput};

/// The class of a response status under a policy.
///
/// Every response falls into exactly one class, and each layer above classify
/// acts on the class alone: nothing above re-reads status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
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
    ///
    /// A slice, so that adding a class (the enum is `#[non_exhaustive]`)
    /// does not change this constant's type.
    pub const ALL: &'static [StatusClass] = &[
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
            .iter()
            .copied()
            .find(|class| class.as_str() == s)
            .ok_or(UnknownClass)
    }
}

/// The first and last status a policy can list.
pub(crate) const FIRST_STATUS: u16 = 100;
pub(crate) const LAST_STATUS: u16 = 599;
const SPAN: usize = (LAST_STATUS - FIRST_STATUS + 1) as usize;

/// A complete map from status code to [`StatusClass`], built from a policy,
/// and the [`Rule`]s tried before it.
///
/// A lookup is one array index. Statuses the policy does not list take the
/// fallback of their hundred (`1xx` … `5xx`); statuses from 600 up, which HTTP
/// does not define, are terminal.
#[derive(Clone, PartialEq, Eq)]
pub struct Classifier {
    table: [StatusClass; SPAN],
    rules: Box<[Rule]>,
    /// Each rule's name, or `#` and its index: what spans and errors record.
    labels: Box<[Arc<str>]>,
    reads_codes: bool,
    /// The statuses whose success bodies a rule reads for error codes.
    success_reads: Box<[u16]>,
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
        Classifier {
            table,
            rules: Box::new([]),
            labels: Box::new([]),
            reads_codes: false,
            success_reads: Box::new([]),
        }
    }

    /// The same table with `rules` tried before it, in order.
    pub(crate) fn with_rules(mut self, rules: Vec<Rule>) -> Self {
        self.labels = rules
            .iter()
            .enumerate()
            .map(|(i, rule)| Arc::from(rule.name().map_or_else(|| format!("#{i}"), str::to_owned)))
            .collect();
        self.reads_codes = rules.iter().any(Rule::reads_codes);
        let mut success_reads: Vec<u16> = rules
            .iter()
            .flat_map(Rule::success_statuses)
            .copied()
            .collect();
        success_reads.sort_unstable();
        success_reads.dedup();
        self.success_reads = success_reads.into();
        self.rules = rules.into();
        self
    }

    /// The class of `status` in the table, rules aside.
    pub fn classify(&self, status: StatusCode) -> StatusClass {
        self.table
            .get(usize::from(status.as_u16().wrapping_sub(FIRST_STATUS)))
            .copied()
            .unwrap_or(StatusClass::Terminal)
    }

    /// The class of a response head: the first rule that matches, else the
    /// table. Rules that need error codes wait for the body; see [`Rule`].
    #[inline]
    pub fn classify_head(&self, status: StatusCode, headers: &HeaderMap) -> StatusClass {
        if self.rules.is_empty() {
            self.classify(status)
        } else {
            self.decide(&RuleInput::new(status, headers)).class()
        }
    }

    /// The class of a response, and which rule decided it (or the table).
    ///
    /// For a head ([`RuleInput::new`]): the first rule that matches, else the
    /// table; rules that need error codes do not match yet. With the error
    /// codes of a body read because the head's class was a failure
    /// ([`RuleInput::with_codes`]): a rule before the one that decided the
    /// head (all of them, when the table did) that now matches with a
    /// failure class takes over; else the head's decision stands. This is
    /// what the classify layer does.
    pub fn decide(&self, input: &RuleInput<'_>) -> Decision {
        let head = self
            .rules
            .iter()
            .enumerate()
            .find_map(|(i, rule)| {
                rule.decide(&input.head())
                    .map(|class| Decision::new(class, Some(i)))
            })
            .unwrap_or_else(|| Decision::new(self.classify(input.status()), None));
        // A success's codes come only from a body a rule asked to read
        // (`reads_success`): the rules before the one that decided it may
        // still make it a failure, as for a failure's codes.
        if input.codes().is_none() || head.class() == StatusClass::Pollable {
            return head;
        }
        let before = head.rule().unwrap_or(self.rules.len());
        self.rules[..before]
            .iter()
            .enumerate()
            .find_map(|(i, rule)| {
                rule.decide(input)
                    .filter(|class| !class.passes_through())
                    .map(|class| Decision::new(class, Some(i)))
            })
            .unwrap_or(head)
    }

    /// The rules, in the order they are tried.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The name of rule `index`, when it has one.
    pub fn rule_name(&self, index: usize) -> Option<&str> {
        self.rules.get(index).and_then(Rule::name)
    }

    /// What spans and errors record of rule `index`: its name, or `#index`.
    pub(crate) fn rule_label(&self, index: usize) -> Option<&Arc<str>> {
        self.labels.get(index)
    }

    /// Whether a rule reads error codes, so that an error body must be
    /// decided on again once read.
    pub(crate) fn reads_codes(&self) -> bool {
        self.reads_codes
    }

    /// Whether a rule asks to read the body of a success of `status` for
    /// error codes: a rule that names `status` and codes, and yields a
    /// failure.
    #[inline]
    pub(crate) fn reads_success(&self, status: StatusCode) -> bool {
        !self.success_reads.is_empty() && self.success_reads.contains(&status.as_u16())
    }

    /// Whether a rule may yield `class`.
    pub(crate) fn rules_yield(&self, class: StatusClass) -> bool {
        self.rules.iter().any(|rule| rule.may_yield(class))
    }

    /// Whether any response can take `class`: a status of the table, or a
    /// rule.
    pub(crate) fn can_yield(&self, class: StatusClass) -> bool {
        self.table.contains(&class) || self.rules_yield(class)
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
        list.finish()?;
        if !self.rules.is_empty() {
            write!(f, " rules: {:?}", self.rules)?;
        }
        Ok(())
    }
}
