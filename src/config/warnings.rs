//! What is valid in a policy but probably wrong: `rebound check`'s warnings.

use std::fmt;

use http::StatusCode;

use super::Policy;
use super::error::line_and_column;
use super::extends::Resolved;
use super::schema::exact_span_of;
use crate::breaker::BreakerSettings;
use crate::classify::ClassifySettings;
use crate::deadline::Timeouts;
use crate::retry::{BudgetSettings, RetrySettings};
use crate::status::{RuleInput, StatusClass};

/// A policy that loads but probably does not do what its author meant, at
/// the line and column that makes it so.
///
/// Displays as `FILE:LINE:COL: warning: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWarning {
    origin: String,
    location: (usize, usize),
    message: String,
}

impl PolicyWarning {
    /// The file the warning is about.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The line, counting from 1.
    pub fn line(&self) -> usize {
        self.location.0
    }

    /// The column, counting characters from 1.
    pub fn column(&self) -> usize {
        self.location.1
    }

    /// What is probably wrong, and what to write instead.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for PolicyWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (line, column) = self.location;
        write!(
            f,
            "{}:{line}:{column}: warning: {}",
            self.origin, self.message
        )
    }
}

/// One warning before it is placed: its message and the keys that make it
/// so, the likeliest first.
struct Finding {
    message: String,
    keys: Vec<(String, Option<usize>)>,
}

/// The warnings of a loaded policy: its own sections, then each route where
/// it differs from them.
pub(crate) fn of(policy: &Policy, resolved: &Resolved) -> Vec<PolicyWarning> {
    let Some(first) = resolved.sources.first() else {
        return Vec::new();
    };
    let writes_poll =
        |prefix: &str| exact_span_of(&first.text, &format!("{prefix}poll"), None).is_some();
    let own = findings(
        "",
        policy.classify_settings(),
        policy.retry_settings(),
        policy.timeouts(),
        writes_poll(""),
        Some(policy),
    );
    let mut all: Vec<Finding> = Vec::new();
    for (i, route) in policy.routes().iter().enumerate() {
        let prefix = format!("routes.{i}.");
        let found = findings(
            &prefix,
            route.classify_settings(),
            route.retry_settings(),
            route.timeouts(),
            writes_poll(&prefix),
            None,
        );
        all.extend(
            found
                .into_iter()
                .filter(|f| !own.iter().any(|o| o.message == f.message))
                .map(|mut f| {
                    f.message = format!("route {i}: {}", f.message);
                    f.keys.push((format!("routes.{i}"), None));
                    f
                }),
        );
    }
    own.into_iter()
        .chain(all)
        .chain(replaced_lists(resolved))
        .chain(idle_concurrency_keys(&first.text, policy.concurrency()))
        .map(|finding| place(finding, &first.origin, &first.text))
        .collect()
}

/// The `[concurrency]` keys a file writes that its limit never reads: the
/// adaptive limit's with `adaptive` off, the queue's wait with no queue.
fn idle_concurrency_keys(
    text: &str,
    limit: &crate::concurrency::ConcurrencySettings,
) -> Vec<Finding> {
    if !limit.enabled() {
        return Vec::new();
    }
    let writes = |key: &str| exact_span_of(text, &format!("concurrency.{key}"), None).is_some();
    let mut found = Vec::new();
    if !limit.adaptive() {
        for key in ["tolerance", "min_in_flight"] {
            if writes(key) {
                found.push(Finding {
                    message: format!(
                        "concurrency.{key} shapes the adaptive limit, and concurrency.adaptive is false, so it does nothing: the limit is max_in_flight; set adaptive = true or drop the key"
                    ),
                    keys: vec![(format!("concurrency.{key}"), None)],
                });
            }
        }
    }
    if limit.queue() == 0 && writes("queue_timeout") {
        found.push(Finding {
            message: "concurrency.queue_timeout bounds a wait in the queue, and concurrency.queue = 0, so no call waits: raise queue or drop the key".to_owned(),
            keys: vec![("concurrency.queue_timeout".to_owned(), None)],
        });
    }
    found
}

/// The lists of tables a file writes over a base that has its own: a list
/// replaces the base's whole, so a file that means to add one rule or route
/// to a preset's drops the preset's.
fn replaced_lists(resolved: &Resolved) -> Vec<Finding> {
    let Some((first, bases)) = resolved.sources.split_first() else {
        return Vec::new();
    };
    let Ok(own) = first.text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let list = |table: &toml::Table, path: &str| -> usize {
        let mut value = None;
        let mut at = Some(table);
        for segment in path.split('.') {
            value = at.and_then(|t| t.get(segment));
            at = value.and_then(toml::Value::as_table);
        }
        value.and_then(toml::Value::as_array).map_or(0, Vec::len)
    };
    let mut found = Vec::new();
    for (path, what) in [("classify.rules", "rules"), ("routes", "routes")] {
        if list(&own, path) == 0 {
            continue;
        }
        let base = bases.iter().find_map(|base| {
            let table = base.text.parse::<toml::Table>().ok()?;
            let n = list(&table, path);
            (n > 0).then_some((base.origin.as_str(), n))
        });
        if let Some((origin, n)) = base {
            found.push(Finding {
                message: format!(
                    "[[{path}]] here replaces the {n} {what} of the base {origin}: a list is replaced whole, not added to; copy the base's {what} to keep them (rebound check --effective shows them)"
                ),
                keys: vec![(path.to_owned(), Some(0))],
            });
        }
    }
    found
}

fn findings(
    prefix: &str,
    classify: &ClassifySettings,
    retry: &RetrySettings,
    timeouts: Timeouts,
    writes_poll: bool,
    policy: Option<&Policy>,
) -> Vec<Finding> {
    let key = |k: &str| (format!("{prefix}{k}"), None);
    let classifier = classify.classifier();
    let mut found = Vec::new();
    // A plain 429: no header a rule looks for, its body not read yet.
    let headers = http::HeaderMap::new();
    let plain = classifier.decide(&RuleInput::new(StatusCode::TOO_MANY_REQUESTS, &headers));
    let throttled = plain.class();
    // Rules before the one that decides a plain 429 (all of them, when the
    // lists do) may still retry some 429s: by a header, or by an error code.
    let rules = classifier.rules();
    let before = plain.rule().unwrap_or(rules.len());
    let rescued = rules[..before]
        .iter()
        .any(|rule| rule.may_yield(StatusClass::Retryable));
    if throttled != StatusClass::Retryable && !rescued {
        let finding = match plain.rule() {
            Some(i) => Finding {
                message: format!(
                    "rule {i} of classify.rules makes every 429 Too Many Requests {throttled}, so a throttled call is never retried: give the rule a header or code to match, or drop 429 from it"
                ),
                keys: vec![
                    key(&format!("classify.rules.{i}.status")),
                    key(&format!("classify.rules.{i}")),
                    key("classify"),
                ],
            },
            None => Finding {
                message: format!(
                    "429 Too Many Requests is {throttled}, so a throttled call is never retried: list 429 in classify.retryable"
                ),
                keys: vec![
                    key(&format!("classify.{throttled}")),
                    key("classify"),
                    key("extends"),
                ],
            },
        };
        found.push(finding);
    }
    if writes_poll && !classifier.can_yield(StatusClass::Pollable) {
        found.push(Finding {
            message: "[poll] is set but no status is pollable, so nothing is ever polled: list 202 in classify.pollable".to_owned(),
            keys: vec![key("poll")],
        });
    }
    let attempts = retry.max_attempts();
    if attempts > 1 && !classifier.can_yield(StatusClass::Retryable) {
        found.push(Finding {
            message: format!(
                "retry.max_attempts is {attempts} but no status is retryable, so no call is ever retried"
            ),
            keys: vec![key("retry.max_attempts"), key("retry"), key("extends")],
        });
    }
    if let Some(policy) = policy {
        if attempts > 1 && !retry.budget().enabled && !policy.breaker_settings().enabled() {
            found.push(Finding {
                message: format!(
                    "both the retry budget and the circuit breaker are off with retry.max_attempts = {attempts}: an outage turns every call into {attempts} requests (a retry storm); enable one"
                ),
                keys: vec![
                    key("retry.budget.enabled"),
                    key("circuit_breaker.enabled"),
                    key("retry"),
                ],
            });
        }
    }
    if let Some(policy) = policy {
        let limit = policy.rate_limit();
        if limit.enabled()
            && matches!(limit.backend(), crate::rate_limit::Backend::Redis { .. })
            && limit.fallback_per_second() >= limit.per_second()
        {
            found.push(Finding {
                message: format!(
                    "rate_limit.fallback_per_second ({}) is the whole shared limit: while Redis is unreachable each process takes it on its own; set it to per_second divided by the number of processes",
                    limit.fallback_per_second()
                ),
                keys: vec![
                    key("rate_limit.fallback_per_second"),
                    key("rate_limit.backend"),
                    key("rate_limit"),
                ],
            });
        }
        let breaker = policy.breaker_settings();
        found.extend(breaker_findings(breaker));
        if breaker.enabled() && breaker.wait_for_probe() >= timeouts.total() {
            found.push(Finding {
                message: format!(
                    "circuit_breaker.wait_for_probe ({}) is not shorter than timeouts.total ({}): a call that finds the breaker open may spend all its time waiting for a probe; wait less",
                    crate::settings::show_duration(breaker.wait_for_probe()).trim_matches('"'),
                    crate::settings::show_duration(timeouts.total()).trim_matches('"'),
                ),
                keys: vec![
                    key("circuit_breaker.wait_for_probe"),
                    key("timeouts.total"),
                    key("circuit_breaker"),
                ],
            });
        }
    }
    let budget = retry.budget();
    let reachable = retries_of_a_new_process(&budget);
    if attempts > 1 && budget.enabled && reachable < u64::from(attempts - 1) {
        let start = budget.min_reserve.min(budget.capacity);
        let needed = f64::from(attempts - 1) * budget.transient_cost;
        let raise = if needed > budget.capacity {
            format!("raise retry.budget.capacity and retry.budget.min_reserve to {needed}")
        } else {
            format!("raise retry.budget.min_reserve to {needed}")
        };
        let made = reachable + 1;
        found.push(Finding {
            message: format!(
                "retry.max_attempts is {attempts} but a new process's retry budget holds {start} tokens, {reachable} retries at retry.budget.transient_cost = {}: a process that makes few calls (every `rebound request`) makes {made} attempt{}, not {attempts}; {raise} or lower retry.max_attempts",
                budget.transient_cost,
                if made == 1 { "" } else { "s" },
            ),
            keys: vec![
                key("retry.budget.min_reserve"),
                key("retry.max_attempts"),
                key("retry.budget.transient_cost"),
                key("retry.budget.capacity"),
                key("retry.budget"),
                key("retry"),
            ],
        });
    }
    found.extend(wait_findings(prefix, classify, retry));
    if timeouts.attempt() > timeouts.total() {
        found.push(Finding {
            message: format!(
                "timeouts.attempt ({:?}) is longer than timeouts.total ({:?}): every attempt is cut at the total",
                timeouts.attempt(),
                timeouts.total()
            ),
            keys: vec![key("timeouts.attempt"), key("timeouts.total"), key("timeouts")],
        });
    }
    found
}

/// The waits a server asks for that cannot be honoured: a body pointer
/// with no body read, or sources read when no wait is allowed.
fn wait_findings(prefix: &str, classify: &ClassifySettings, retry: &RetrySettings) -> Vec<Finding> {
    let key = |k: &str| (format!("{prefix}{k}"), None);
    let body = classify.error_body();
    let mut found = Vec::new();
    let pointers = body.retry_delay().count();
    if pointers > 0 && body.max_bytes() == 0 {
        found.push(Finding {
            message: "error_body.retry_delay reads the wait from the error body, but error_body.max_bytes = 0 reads none of it, so it never finds one: raise max_bytes, or set retry_delay = []".to_owned(),
            keys: vec![
                key("error_body.retry_delay"),
                key("error_body.max_bytes"),
                key("error_body"),
            ],
        });
    }
    let classifier = classify.classifier();
    let reads_a_success = |rule: &crate::classify::Rule| {
        rule.success_statuses().iter().any(|&status| {
            StatusCode::from_u16(status)
                .is_ok_and(|status| classifier.classify(status) == StatusClass::Success)
        })
    };
    if body.max_bytes() == 0
        && let Some(i) = classifier.rules().iter().position(reads_a_success)
    {
        found.push(Finding {
            message: format!(
                "rule {i} of classify.rules reads error codes from a success body, but error_body.max_bytes = 0 reads none of it, so the rule never matches: raise max_bytes"
            ),
            keys: vec![
                key(&format!("classify.rules.{i}.code")),
                key(&format!("classify.rules.{i}")),
                key("error_body.max_bytes"),
            ],
        });
    }
    let reads_waits = pointers > 0 || !body.wait_headers().is_empty();
    if reads_waits && retry.max_retry_after().is_zero() && retry.max_attempts() > 1 {
        found.push(Finding {
            message: "retry.max_retry_after is 0s, so every wait a server asks for (Retry-After, a rate-limit reset, a retry delay) ends the call instead of being waited: raise it, or read no waits (error_body.wait_headers = [] and retry_delay = [])".to_owned(),
            keys: vec![
                key("retry.max_retry_after"),
                key("error_body.wait_headers"),
                key("retry"),
            ],
        });
    }
    found
}

/// The retries a process's budget grants before it has seen any call: a
/// scaled bucket holds `min_reserve`, a fixed one (`min_reserve` at or above
/// `capacity`) its capacity. Counted in thousandths of a token, as the bucket
/// counts them.
fn retries_of_a_new_process(budget: &BudgetSettings) -> u64 {
    let milli = |tokens: f64| (tokens * 1000.0).round() as u64;
    let start = milli(budget.min_reserve.min(budget.capacity));
    start / milli(budget.transient_cost).max(1)
}

/// The warnings of a policy's breaker: one that can never trip.
fn breaker_findings(breaker: &BreakerSettings) -> Option<Finding> {
    let key = |k: &str| (k.to_owned(), None);
    (breaker.enabled() && breaker.consecutive_failures() == 0 && breaker.failure_rate() == 0.0)
        .then(|| Finding {
            message: "circuit_breaker is on but both its triggers are off (consecutive_failures = 0 and failure_rate = 0), so it never trips: set one, or enabled = false".to_owned(),
            keys: vec![
                key("circuit_breaker.consecutive_failures"),
                key("circuit_breaker.failure_rate"),
                key("circuit_breaker"),
            ],
        })
}

/// The warning at the first of its keys the file writes, else at the file's
/// first line.
fn place(finding: Finding, origin: &str, text: &str) -> PolicyWarning {
    let document: toml::Table = toml::from_str(text).unwrap_or_default();
    let span = finding.keys.iter().find_map(|(key, index)| {
        // A class list: at the status the warning is about, when it is there.
        let index = index.or_else(|| position_of_429(&document, key));
        exact_span_of(text, key, index)
    });
    PolicyWarning {
        origin: origin.to_owned(),
        location: span.map_or((1, 1), |span| line_and_column(text, span.start)),
        message: finding.message,
    }
}

/// Where 429 stands in the list at `key` (dotted, list indices as numbers).
fn position_of_429(document: &toml::Table, key: &str) -> Option<usize> {
    let mut value: Option<&toml::Value> = None;
    let mut table = document;
    for segment in key.split('.') {
        let next = match value {
            Some(toml::Value::Array(items)) => items.get(segment.parse::<usize>().ok()?)?,
            _ => table.get(segment)?,
        };
        if let toml::Value::Table(inner) = next {
            table = inner;
        }
        value = Some(next);
    }
    value?
        .as_array()?
        .iter()
        .position(|v| v.as_integer() == Some(429))
}
