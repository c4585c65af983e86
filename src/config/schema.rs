//! The policy file as written: each layer's section in the form serde reads,
//! and where a key stands in the text, so that a mistake can be pointed at.

use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::breaker::{RawBreaker, RawThrottle};
use crate::classify::{RawClassify, RawErrorBody};
use crate::concurrency::RawConcurrency;
use crate::deadline::RawTimeouts;
use crate::poll::RawPoll;
use crate::rate_limit::RawRateLimit;
use crate::retry::RawRetry;

/// A whole policy file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPolicy {
    // Read by `extends.rs`; here for its type and as a known key.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) extends: Option<String>,
    #[serde(default)]
    pub(crate) classify: RawClassify,
    #[serde(default)]
    pub(crate) error_body: RawErrorBody,
    #[serde(default)]
    pub(crate) retry: RawRetry,
    #[serde(default)]
    pub(crate) timeouts: RawTimeouts,
    #[serde(default)]
    pub(crate) circuit_breaker: RawBreaker,
    #[serde(default)]
    pub(crate) adaptive_throttle: RawThrottle,
    #[serde(default)]
    pub(crate) poll: RawPoll,
    #[serde(default)]
    pub(crate) rate_limit: RawRateLimit,
    #[serde(default)]
    pub(crate) concurrency: RawConcurrency,
    // Checked here, read from the document by `routes.rs`.
    #[serde(default)]
    #[allow(dead_code)]
    pub(crate) routes: Vec<RawRoute>,
}

/// One `[[routes]]` table: checked here for unknown keys and wrong types,
/// read in `routes.rs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // the fields are read from the document, not from here
pub(crate) struct RawRoute {
    name: Option<String>,
    host: Option<String>,
    path_prefix: Option<String>,
    methods: Option<Vec<String>>,
    classify: Option<RawClassify>,
    error_body: Option<RawErrorBody>,
    retry: Option<RawRetry>,
    timeouts: Option<RawTimeouts>,
    poll: Option<RawPoll>,
    // Refused with a reason by `routes.rs`.
    circuit_breaker: Option<toml::Value>,
    rate_limit: Option<toml::Value>,
    concurrency: Option<toml::Value>,
}

/// The byte range of the value at `key` (dotted, as `retry.backoff.max`) in
/// `text`, or of element `index` of the list there. A key the file does not
/// write (the mistake is in a default it contradicts) points at the nearest
/// table it wrote on the way.
pub(crate) fn span_of(text: &str, key: &str, index: Option<usize>) -> Option<Range<usize>> {
    match locate(text, key, index) {
        Located::Exact(span) | Located::Nearest(span) => Some(span),
        Located::Nowhere => None,
    }
}

/// The byte range of the value at `key` when `text` writes that very key.
pub(crate) fn exact_span_of(text: &str, key: &str, index: Option<usize>) -> Option<Range<usize>> {
    match locate(text, key, index) {
        Located::Exact(span) => Some(span),
        Located::Nearest(_) | Located::Nowhere => None,
    }
}

enum Located {
    /// The key itself.
    Exact(Range<usize>),
    /// The nearest table on the way to a key the text does not write.
    Nearest(Range<usize>),
    Nowhere,
}

fn locate(text: &str, key: &str, index: Option<usize>) -> Located {
    let Ok(root) = DeTable::parse(text) else {
        return Located::Nowhere;
    };
    let mut table = root.get_ref();
    let mut found: Option<Range<usize>> = None;
    let nearest = |found: Option<Range<usize>>| found.map_or(Located::Nowhere, Located::Nearest);
    let segments: Vec<&str> = key.split('.').collect();
    let mut i = 0;
    while i < segments.len() {
        let segment = segments[i];
        let Some((name, mut value)) = table.iter().find(|(k, _)| k.get_ref() == segment) else {
            return nearest(found);
        };
        let mut here = name.span();
        // `routes.2.retry`: element 2 of the list of routes.
        if let (DeValue::Array(items), Some(n)) = (
            value.get_ref(),
            segments.get(i + 1).and_then(|s| s.parse::<usize>().ok()),
        ) {
            let Some(item) = items.get(n) else {
                return Located::Nearest(value.span());
            };
            here = item.span();
            value = item;
            i += 1;
        }
        i += 1;
        let last = i == segments.len();
        match value.get_ref() {
            DeValue::Table(inner) if !last => {
                found = Some(here);
                table = inner;
            }
            DeValue::Array(items) if last => {
                return Located::Exact(
                    index
                        .and_then(|i| items.get(i))
                        .map_or(value.span(), |item| item.span()),
                );
            }
            _ if last => return Located::Exact(value.span()),
            _ => return nearest(found),
        }
    }
    nearest(found)
}
