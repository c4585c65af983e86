//! The retry budget: a token bucket that successes fill and retries drain.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::settings::{self, SettingsError};

/// Why a retry is wanted, which sets its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryCause {
    /// The server said it is throttling the client (429).
    Throttling,
    /// A server error, a transport failure or a timed-out attempt.
    Transient,
}

/// The settings of a [`Budget`], in tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct BudgetSettings {
    /// Whether retries are limited by the budget at all.
    pub enabled: bool,
    /// The most tokens the bucket holds, and what it starts with.
    pub capacity: f64,
    /// Tokens put back by each success.
    pub success_refill: f64,
    /// Tokens a retry after a transient failure takes.
    pub transient_cost: f64,
    /// Tokens a retry after throttling takes.
    pub throttling_cost: f64,
}

impl BudgetSettings {
    /// Whether every value is within the bounds a policy allows: a capacity
    /// of 0 to 10,000, a refill of 0 to 100, costs of 0.001 to 1,000.
    pub(crate) fn check(&self) -> Result<(), SettingsError> {
        settings::number("retry.budget.capacity", self.capacity, 0.0..=10_000.0)?;
        settings::number(
            "retry.budget.success_refill",
            self.success_refill,
            0.0..=100.0,
        )?;
        settings::number(
            "retry.budget.transient_cost",
            self.transient_cost,
            0.001..=1000.0,
        )?;
        settings::number(
            "retry.budget.throttling_cost",
            self.throttling_cost,
            0.001..=1000.0,
        )?;
        Ok(())
    }
}

impl Default for BudgetSettings {
    /// 20 retries in reserve, 0.2 put back by each success, one token per
    /// retry.
    fn default() -> Self {
        BudgetSettings {
            enabled: true,
            capacity: 20.0,
            success_refill: 0.2,
            transient_cost: 1.0,
            throttling_cost: 1.0,
        }
    }
}

const MILLI: f64 = 1000.0;

fn millis(tokens: f64) -> u64 {
    // Settings are validated to be finite and non-negative; clamp anyway so a
    // hand-built setting cannot wrap.
    (tokens.clamp(0.0, 1e12) * MILLI).round() as u64
}

/// A retry budget shared by every clone of a layer.
///
/// Why a budget, and not only `max_attempts`? With three attempts per call, a
/// full outage triples the load on a server that is already failing. Capping
/// attempts per call does nothing about the *sum* over calls; a budget caps
/// retries as a share of what succeeds.
///
/// Why this bucket, and not a rate? A budget that also grants a fixed number
/// of retries per second (tower's `TpsBudget` grants 10) lets a client at 10
/// calls/s retry every call: 2.2x amplification in an outage. A budget that
/// charges every failure, retried or not (gRPC's retry throttling), stops
/// retrying when 10% of calls fail, and only 92% of calls then succeed. This
/// bucket, in the spirit of the AWS SDKs' retry quota, does neither:
///
/// - it starts full, with `capacity` tokens;
/// - every success (any answer that is not a retryable failure) puts
///   `success_refill` tokens back, up to `capacity`;
/// - every retry takes `transient_cost` tokens (5xx, transport failures,
///   timeouts) or `throttling_cost` (429), and is refused when too few are left;
/// - nothing refills with time.
///
/// In a full outage nothing succeeds, so after `capacity / cost` retries the
/// bucket is empty and stays empty: amplification tends to 1.0 at any request
/// rate. With a share `p` of attempts failing at random, retries need about
/// `p / (1 - p)` tokens per success; while that is below `success_refill`
/// (0.11 for p = 10%, against the default refill of 0.2) the bucket stays full
/// and every retry is granted.
///
/// One bucket is shared by every layer built from one [`Policy`](crate::Policy)
/// value and its clones. Tokens are counted in thousandths in one atomic, so
/// taking and returning them is lock-free.
///
/// ```
/// use tower_rebound::retry::{Budget, BudgetSettings, RetryCause};
///
/// let mut settings = BudgetSettings::default();
/// settings.capacity = 2.0;
/// let budget = Budget::new(settings);
/// assert!(budget.withdraw(RetryCause::Transient));
/// assert!(budget.withdraw(RetryCause::Throttling));
/// assert!(!budget.withdraw(RetryCause::Transient)); // spent
/// budget.deposit(); // a success puts back success_refill (0.2)
/// assert_eq!((budget.granted(), budget.refused()), (2, 1));
/// ```
#[derive(Debug)]
pub struct Budget {
    enabled: bool,
    tokens: AtomicU64,
    granted: AtomicU64,
    refused: AtomicU64,
    capacity: u64,
    refill: u64,
    transient_cost: u64,
    throttling_cost: u64,
}

impl Budget {
    /// A full budget with `settings`.
    pub fn new(settings: BudgetSettings) -> Self {
        let capacity = millis(settings.capacity);
        Budget {
            enabled: settings.enabled,
            tokens: AtomicU64::new(capacity),
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            capacity,
            refill: millis(settings.success_refill),
            transient_cost: millis(settings.transient_cost),
            throttling_cost: millis(settings.throttling_cost),
        }
    }

    /// Records a success: returns `success_refill` tokens, up to the capacity.
    pub fn deposit(&self) {
        if !self.enabled || self.refill == 0 {
            return;
        }
        // Skip the write when full: the common case on a healthy service.
        if self.tokens.load(Ordering::Relaxed) >= self.capacity {
            return;
        }
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| {
                (t < self.capacity).then(|| (t + self.refill).min(self.capacity))
            });
    }

    /// Takes the price of one retry for `cause`; `false` when too few tokens
    /// are left, in which case nothing is taken.
    pub fn withdraw(&self, cause: RetryCause) -> bool {
        let cost = match cause {
            RetryCause::Throttling => self.throttling_cost,
            RetryCause::Transient => self.transient_cost,
        };
        let granted = !self.enabled
            || self
                .tokens
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| t.checked_sub(cost))
                .is_ok();
        let counter = if granted {
            &self.granted
        } else {
            &self.refused
        };
        counter.fetch_add(1, Ordering::Relaxed);
        granted
    }

    /// Retries granted so far.
    pub fn granted(&self) -> u64 {
        self.granted.load(Ordering::Relaxed)
    }

    /// Retries refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The settings the budget was made with.
    pub fn settings(&self) -> BudgetSettings {
        BudgetSettings {
            enabled: self.enabled,
            capacity: self.capacity as f64 / MILLI,
            success_refill: self.refill as f64 / MILLI,
            transient_cost: self.transient_cost as f64 / MILLI,
            throttling_cost: self.throttling_cost as f64 / MILLI,
        }
    }

    /// The tokens left.
    pub fn available(&self) -> f64 {
        self.tokens.load(Ordering::Relaxed) as f64 / MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget::new(BudgetSettings {
            enabled: true,
            capacity: 10.0,
            success_refill: 0.2,
            transient_cost: 1.0,
            throttling_cost: 2.0,
        })
    }

    #[test]
    fn starts_full_and_refuses_when_empty() {
        let b = budget();
        assert_eq!(b.available(), 10.0);
        for _ in 0..10 {
            assert!(b.withdraw(RetryCause::Transient));
        }
        assert!(!b.withdraw(RetryCause::Transient));
        assert_eq!(b.available(), 0.0);
    }

    #[test]
    fn throttling_costs_its_own_price_and_a_refusal_takes_nothing() {
        let b = budget();
        for _ in 0..4 {
            assert!(b.withdraw(RetryCause::Throttling));
        }
        assert_eq!(b.available(), 2.0);
        assert!(b.withdraw(RetryCause::Throttling));
        assert!(!b.withdraw(RetryCause::Throttling));
        assert!(!b.withdraw(RetryCause::Transient));
        assert_eq!(b.available(), 0.0);
    }

    #[test]
    fn successes_refill_up_to_capacity() {
        let b = budget();
        for _ in 0..10 {
            b.withdraw(RetryCause::Transient);
        }
        for _ in 0..4 {
            b.deposit();
        }
        assert!((b.available() - 0.8).abs() < 1e-9);
        assert!(!b.withdraw(RetryCause::Transient));
        b.deposit();
        assert!(b.withdraw(RetryCause::Transient));
        for _ in 0..1000 {
            b.deposit();
        }
        assert_eq!(b.available(), 10.0);
    }

    #[test]
    fn a_full_outage_spends_the_capacity_and_no_more() {
        let b = budget();
        let granted = (0..100_000)
            .filter(|_| b.withdraw(RetryCause::Transient))
            .count();
        assert_eq!(granted, 10);
    }

    #[test]
    fn ten_percent_failures_never_exhaust_it() {
        // Deterministic 10% failure pattern: one failed attempt in ten, each
        // retried once and succeeding.
        let b = budget();
        for call in 0..100_000 {
            if call % 10 == 0 {
                assert!(b.withdraw(RetryCause::Transient), "refused at call {call}");
            }
            b.deposit();
        }
    }

    #[test]
    fn disabled_grants_everything() {
        let b = Budget::new(BudgetSettings {
            enabled: false,
            ..budget().settings()
        });
        assert!((0..1000).all(|_| b.withdraw(RetryCause::Throttling)));
    }
}
