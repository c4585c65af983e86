//! The retry budget: a token bucket that successes fill and retries drain.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::reserve::Reserve;
use super::reserve::{MILLI, millis};
use crate::settings::{self, SettingsError};

/// Why a retry is wanted, which sets its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryCause {
    /// The server said it is throttling the client: a 429, or a spent
    /// quota ([`Error::is_throttling`](crate::Error::is_throttling)).
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
    /// The most tokens the bucket holds, whatever the call rate.
    pub capacity: f64,
    /// Tokens put back by each success.
    pub success_refill: f64,
    /// Tokens a retry after a transient failure takes.
    pub transient_cost: f64,
    /// Tokens a retry after throttling takes.
    pub throttling_cost: f64,
    /// Seconds of the process's own recent calls the bucket may hold: its
    /// reserve scales with its call rate, between `min_reserve` and
    /// `capacity`.
    pub reserve: Duration,
    /// The fewest tokens the bucket may be held to, whatever the rate; at
    /// `capacity` or above, the bucket is not scaled and holds `capacity`.
    pub min_reserve: f64,
    /// Whether a retry after a transient failure that succeeds gives its
    /// cost back: a retry that worked did not add to a failing server's load.
    pub refund: bool,
}

impl BudgetSettings {
    /// The bucket of earlier versions: 20 retries in reserve at any call
    /// rate, no refunds.
    pub fn fixed() -> Self {
        BudgetSettings {
            min_reserve: 20.0,
            refund: false,
            ..BudgetSettings::default()
        }
    }

    /// These settings with a reserve of `span` seconds of the process's own
    /// calls and at least `min_reserve` tokens.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_rebound::retry::BudgetSettings;
    ///
    /// let settings = BudgetSettings::default().with_reserve(Duration::from_secs(5), 4.0);
    /// assert_eq!(settings.reserve, Duration::from_secs(5));
    /// assert_eq!(settings.min_reserve, 4.0);
    /// ```
    pub fn with_reserve(mut self, span: Duration, min_reserve: f64) -> Self {
        self.reserve = span;
        self.min_reserve = min_reserve;
        self
    }

    /// These settings with refunds of successful retries on or off.
    pub fn with_refund(mut self, refund: bool) -> Self {
        self.refund = refund;
        self
    }

    /// Whether every value is within the bounds a policy allows: a capacity
    /// and a minimum reserve of 0 to 10,000, a refill of 0 to 100, costs of
    /// 0.001 to 1,000, a reserve of 0 to 1 hour.
    pub(crate) fn check(&self) -> Result<(), SettingsError> {
        settings::number("retry.budget.capacity", self.capacity, 0.0..=10_000.0)?;
        settings::number("retry.budget.min_reserve", self.min_reserve, 0.0..=10_000.0)?;
        settings::duration(
            "retry.budget.reserve",
            self.reserve,
            Duration::ZERO..=Duration::from_secs(3600),
        )?;
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
    /// Up to 20 retries in reserve, as many as 3 s of the process's own calls
    /// and at least 3 (one call's retries at the default 4 attempts); 0.2 put
    /// back by each success, one token per retry, refunded when the retry
    /// succeeds after a transient failure.
    fn default() -> Self {
        BudgetSettings {
            enabled: true,
            capacity: 20.0,
            success_refill: 0.2,
            transient_cost: 1.0,
            throttling_cost: 1.0,
            reserve: Duration::from_secs(3),
            min_reserve: 3.0,
            refund: true,
        }
    }
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
/// - it starts with `min_reserve` tokens, and holds at most `capacity`;
/// - every success (any answer that is not a retryable failure) puts
///   `success_refill` tokens back;
/// - every retry takes `transient_cost` tokens (5xx, transport failures,
///   timeouts) or `throttling_cost` (429), and is refused when too few are left;
/// - with `refund`, a retry after a transient failure that succeeds gives its
///   cost back;
/// - nothing refills with time.
///
/// In a full outage nothing succeeds, so once the tokens are spent the bucket
/// stays empty: amplification tends to 1.0 at any request rate. With a share
/// `p` of attempts failing at random, retries need about `p / (1 - p)` tokens
/// per success, and with refunds only the retries that fail again cost
/// anything; while that is below `success_refill` (0.11, or 0.01 with
/// refunds, for p = 10%, against the default refill of 0.2) the bucket stays
/// full and every retry is granted.
///
/// Why a reserve that scales? A fixed reserve of 20 is nothing to a process
/// making 1,000 calls a second, and a third of the calls of a process making
/// one a second through a one-minute outage: a fleet of 100 such processes
/// sends the failing server 1.33 requests per call. So the bucket holds at
/// most `reserve` seconds of the process's own recent calls (3 s by
/// default), never fewer than `min_reserve` tokens (3: one call's retries)
/// nor more than `capacity`; an outage of a minute then costs about 5% more
/// requests at any rate from 1 call a second up. A process younger than
/// `reserve` holds no more than the calls it has started (and
/// `min_reserve`), so a fleet that restarts into an outage does not bring a
/// full bucket each. Counting the calls ([`Budget::record_call`]) costs each
/// call one relaxed increment; the rate is worked out only when a retry is
/// wanted. With `min_reserve` at `capacity` (see [`BudgetSettings::fixed`])
/// the bucket is not scaled and counts nothing.
///
/// One bucket is shared by every layer built from one [`Policy`](crate::Policy)
/// value and its clones. Tokens are counted in thousandths in one atomic, so
/// taking and returning them is lock-free.
///
/// ```
/// use tower_rebound::retry::{Budget, BudgetSettings, RetryCause};
///
/// let mut settings = BudgetSettings::fixed();
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
    refund: bool,
    tokens: AtomicU64,
    granted: AtomicU64,
    refused: AtomicU64,
    capacity: u64,
    refill: u64,
    transient_cost: u64,
    throttling_cost: u64,
    /// `None` when the bucket is not scaled: `min_reserve` at `capacity`.
    reserve: Option<Reserve>,
    /// Kept for [`Budget::settings`] when the bucket is not scaled.
    settings: BudgetSettings,
}

impl Budget {
    /// A budget with `settings`, for a process starting now (on Tokio's
    /// clock when there is one).
    pub fn new(settings: BudgetSettings) -> Self {
        Budget::starting_at(settings, Instant::now())
    }

    /// A budget with `settings`, for a process starting at `now`: it holds
    /// `min_reserve` tokens (or `capacity`, when not scaled) until it has
    /// seen calls.
    pub fn starting_at(settings: BudgetSettings, now: Instant) -> Self {
        let capacity = millis(settings.capacity);
        let floor = millis(settings.min_reserve);
        let reserve = (settings.enabled && floor < capacity)
            .then(|| Reserve::new(settings.reserve, floor, capacity, now));
        Budget {
            enabled: settings.enabled,
            refund: settings.refund,
            tokens: AtomicU64::new(capacity),
            granted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            capacity,
            refill: millis(settings.success_refill),
            transient_cost: millis(settings.transient_cost),
            throttling_cost: millis(settings.throttling_cost),
            reserve,
            settings,
        }
    }

    /// Records that the process started a call (or a status request): what
    /// the reserve of a scaled bucket is worked out from, with the retries
    /// it grants. The retry layer records each request it is given; a budget
    /// used by hand should be told too, or it holds `min_reserve`.
    #[inline]
    pub fn record_call(&self) {
        if let Some(reserve) = &self.reserve {
            reserve.count();
        }
    }

    /// Records a success: returns `success_refill` tokens, up to the capacity.
    pub fn deposit(&self) {
        // Skip the write when full: the common case on a healthy service.
        if !self.enabled || self.refill == 0 || self.tokens.load(Ordering::Relaxed) >= self.capacity
        {
            return;
        }
        self.put_back(self.refill);
    }

    /// Records that a retry after `cause` succeeded: with `refund`, a retry
    /// after a transient failure gives its cost back (on top of the
    /// success's own [`Budget::deposit`]).
    pub fn refund(&self, cause: RetryCause) {
        if self.enabled && self.refund && cause == RetryCause::Transient {
            self.put_back(self.transient_cost);
        }
    }

    fn put_back(&self, tokens: u64) {
        let _ = self
            .tokens
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| {
                (t < self.capacity).then(|| (t + tokens).min(self.capacity))
            });
    }

    /// Takes the price of one retry for `cause`; `false` when too few tokens
    /// are left, in which case nothing is taken. Reads the clock when the
    /// bucket scales with the call rate; see [`Budget::withdraw_at`].
    pub fn withdraw(&self, cause: RetryCause) -> bool {
        self.take(cause, Instant::now)
    }

    /// Takes the price of one retry for `cause` at `now`; `false` when too
    /// few tokens are left, in which case nothing is taken. A scaled bucket
    /// first gives up what the process's recent calls no longer justify.
    pub fn withdraw_at(&self, cause: RetryCause, now: Instant) -> bool {
        self.take(cause, || now)
    }

    fn take(&self, cause: RetryCause, now: impl FnOnce() -> Instant) -> bool {
        let cost = match cause {
            RetryCause::Throttling => self.throttling_cost,
            RetryCause::Transient => self.transient_cost,
        };
        let granted = !self.enabled || {
            let bound = match &self.reserve {
                Some(reserve) => reserve.bound(now()),
                None => self.capacity,
            };
            let granted = self
                .tokens
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |t| {
                    t.min(bound).checked_sub(cost)
                })
                .is_ok();
            if granted {
                // A retry is a request the process sends, as a call is.
                self.record_call();
            }
            granted
        };
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
        self.settings
    }

    /// The tokens left, as of the last retry wanted: a scaled bucket holds
    /// no more than its reserve allowed then.
    pub fn available(&self) -> f64 {
        let tokens = self.tokens.load(Ordering::Relaxed);
        let tokens = match &self.reserve {
            Some(reserve) => tokens.min(reserve.last_bound()),
            None => tokens,
        };
        tokens as f64 / MILLI
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> Budget {
        Budget::new(BudgetSettings {
            capacity: 10.0,
            min_reserve: 10.0,
            throttling_cost: 2.0,
            refund: false,
            ..BudgetSettings::default()
        })
    }

    /// The default budget, scaled, for a process starting at `start`.
    fn scaled(start: Instant) -> Budget {
        Budget::starting_at(BudgetSettings::default(), start)
    }

    /// `rate` calls a second for `secs` seconds from `from`, each a
    /// success; the instant after the last.
    fn healthy(b: &Budget, from: Instant, rate: u64, secs: u64) -> Instant {
        for _ in 0..rate * secs {
            b.record_call();
            b.deposit();
        }
        from + Duration::from_secs(secs)
    }

    /// Retries granted to `rate` calls a second through `secs` seconds of
    /// outage from `from`, each call wanting 3.
    fn outage(b: &Budget, from: Instant, rate: u64, secs: u64) -> usize {
        (0..rate * secs)
            .map(|i| {
                let now = from + Duration::from_secs_f64(i as f64 / rate as f64);
                b.record_call();
                (0..3)
                    .take_while(|_| b.withdraw_at(RetryCause::Transient, now))
                    .count()
            })
            .sum()
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
    fn an_outage_costs_the_reserve_of_the_process_own_rate() {
        // A process that was healthy for a minute, then a minute of outage:
        // 3 s of its calls, at least 3, at most 20.
        for (rate, expected) in [(1, 3), (2, 6), (5, 15), (10, 20), (100, 20)] {
            let start = Instant::now();
            let b = scaled(start);
            let now = healthy(&b, start, rate, 60);
            assert_eq!(outage(&b, now, rate, 60), expected, "{rate}/s");
            assert!(b.available() < 1.0, "{rate}/s: {}", b.available());
        }
    }

    #[test]
    fn a_new_process_in_an_outage_spends_the_floor() {
        let start = Instant::now();
        let b = scaled(start);
        assert_eq!(b.available(), 3.0);
        assert_eq!(outage(&b, start, 100, 60), 3);
    }

    #[test]
    fn a_new_process_holds_as_many_tokens_as_calls_it_started() {
        // Twelve calls started at once, then their failures: twelve retries,
        // not the floor's three nor the capacity's twenty.
        let start = Instant::now();
        let b = scaled(start);
        for _ in 0..12 {
            b.record_call();
        }
        let granted = (0..20)
            .filter(|_| b.withdraw_at(RetryCause::Transient, start))
            .count();
        assert_eq!(granted, 12);
    }

    #[test]
    fn the_fixed_bucket_spends_its_capacity_at_any_rate() {
        let start = Instant::now();
        let b = Budget::starting_at(BudgetSettings::fixed(), start);
        let now = healthy(&b, start, 1, 60);
        assert_eq!(outage(&b, now, 1, 60), 20);
        assert_eq!(b.settings(), BudgetSettings::fixed());
    }

    #[test]
    fn a_retry_that_succeeds_after_a_transient_failure_is_refunded() {
        let start = Instant::now();
        let b = scaled(start);
        let now = healthy(&b, start, 1, 60);
        // Three tokens at 1 call/s: three calls in a row each retried once,
        // successfully, and a fourth still has its three retries.
        for call in 0..3 {
            b.record_call();
            assert!(b.withdraw_at(RetryCause::Transient, now), "call {call}");
            b.deposit();
            b.refund(RetryCause::Transient);
        }
        assert_eq!(outage(&b, now, 1, 1), 3);
        // A retry after throttling is not refunded.
        let b = scaled(start);
        let now = healthy(&b, start, 1, 60);
        for _ in 0..3 {
            b.record_call();
            assert!(b.withdraw_at(RetryCause::Throttling, now));
            b.deposit();
            b.refund(RetryCause::Throttling);
        }
        assert!(b.available() < 1.0, "{}", b.available());
    }

    #[test]
    fn ten_percent_failures_at_one_call_a_second_never_exhaust_the_reserve() {
        // The hardest deterministic pattern of 10% failures for a small
        // bucket: every tenth call fails three times, then succeeds.
        let start = Instant::now();
        let b = scaled(start);
        for call in 0..100_000u64 {
            let now = start + Duration::from_secs(call);
            b.record_call();
            if call % 10 == 0 {
                for retry in 0..3 {
                    assert!(
                        b.withdraw_at(RetryCause::Transient, now),
                        "refused at call {call}, retry {retry}"
                    );
                }
                b.refund(RetryCause::Transient);
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
