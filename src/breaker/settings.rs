//! What the breaker layer is told: a policy's `[circuit_breaker]`.

use std::time::Duration;

use serde::Deserialize;

use super::registry::Scope;
use super::throttle::ThrottleSettings;
use crate::settings::{self, SettingsError};
use crate::units::DurationStr;

/// When a breaker trips, how long it stays open, and which calls share one.
///
/// Built with [`BreakerSettings::builder`], from a policy file's
/// `[circuit_breaker]`, or with serde from such a table. The defaults are
/// those of `policies/README.md`: trip after 10 failures in a row, or when
/// half of the last 100 calls (at least 20) failed; stay open 5 s, growing to
/// 10 s for repeated trips; while open, every 50th call is a probe too, and a
/// call waits up to 4 s for the verdict of the next probe; one probe at a
/// time; one breaker per host, at most 1024 hosts.
///
/// ```
/// use std::time::Duration;
/// use tower_rebound::breaker::BreakerSettings;
///
/// let settings = BreakerSettings::builder()
///     .consecutive_failures(3)
///     .open_for(Duration::from_secs(1))
///     .build()?;
/// assert_eq!(settings.consecutive_failures(), 3);
/// // The longest open time may not be shorter than the first.
/// let error = BreakerSettings::builder()
///     .open_for(Duration::from_secs(20))
///     .max_open_for(Duration::from_secs(10))
///     .build()
///     .unwrap_err();
/// assert_eq!(error.key(), "circuit_breaker.max_open_for");
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RawBreaker")]
pub struct BreakerSettings {
    pub(crate) enabled: bool,
    pub(crate) scope: Scope,
    pub(crate) max_hosts: usize,
    pub(crate) consecutive_failures: u32,
    pub(crate) failure_rate: f64,
    pub(crate) window: u32,
    pub(crate) min_calls: u32,
    pub(crate) slow_call_duration: Option<Duration>,
    pub(crate) open_for: Duration,
    pub(crate) max_open_for: Duration,
    pub(crate) half_open_probes: u32,
    pub(crate) probe_every: u32,
    pub(crate) wait_for_probe: Duration,
    pub(crate) trip_within: Duration,
    pub(crate) count_throttling: bool,
    pub(crate) throttle: ThrottleSettings,
}

impl BreakerSettings {
    /// A builder with the defaults.
    pub fn builder() -> BreakerBuilder {
        BreakerBuilder::default()
    }

    /// Whether there are breakers at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Which calls share a breaker.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The most breakers kept at once (with [`Scope::Host`]).
    pub fn max_hosts(&self) -> usize {
        self.max_hosts
    }

    /// Failures in a row that trip a breaker; 0 turns this trigger off.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The share of failures in the window that trips a breaker; 0 turns
    /// this trigger off.
    pub fn failure_rate(&self) -> f64 {
        self.failure_rate
    }

    /// How many of the latest calls the failure rate is taken over.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// How many calls the window must hold before the rate counts.
    pub fn min_calls(&self) -> u32 {
        self.min_calls
    }

    /// A success slower than this counts as a failure.
    pub fn slow_call_duration(&self) -> Option<Duration> {
        self.slow_call_duration
    }

    /// How long a first trip keeps the breaker open.
    pub fn open_for(&self) -> Duration {
        self.open_for
    }

    /// The longest a repeated trip keeps it open.
    pub fn max_open_for(&self) -> Duration {
        self.max_open_for
    }

    /// How many probes a half-open breaker lets through at once.
    pub fn half_open_probes(&self) -> u32 {
        self.half_open_probes
    }

    /// While open, every this-many-th call goes through as a probe; 0 probes
    /// by time alone.
    pub fn probe_every(&self) -> u32 {
        self.probe_every
    }

    /// How long a call that finds the breaker open waits for the verdict of
    /// the next probe; zero rejects it at once.
    pub fn wait_for_probe(&self) -> Duration {
        self.wait_for_probe
    }

    /// How recent the failures that trip a breaker must be: the fewest a
    /// trip needs must all have ended within it. Zero: any failures count.
    pub fn trip_within(&self) -> Duration {
        self.trip_within
    }

    /// The fewest failures that can trip a breaker: `consecutive_failures`,
    /// or the failing share of `min_calls`, whichever rule needs fewer.
    pub fn fewest_failures_to_trip(&self) -> u32 {
        let by_rate = (self.failure_rate > 0.0)
            .then(|| (f64::from(self.min_calls) * self.failure_rate).ceil() as u32);
        let by_row = (self.consecutive_failures > 0).then_some(self.consecutive_failures);
        match (by_row, by_rate) {
            (Some(a), Some(b)) => a.min(b),
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => 0,
        }
        .max(1)
    }

    /// Whether throttling (a 429, or a spent quota's wait) counts as a
    /// failure.
    pub fn count_throttling(&self) -> bool {
        self.count_throttling
    }

    /// The adaptive throttling of each host (`[adaptive_throttle]`).
    pub fn adaptive_throttle(&self) -> ThrottleSettings {
        self.throttle
    }

    /// Whether the layer keeps per-host state at all: breakers, or
    /// throttling.
    pub(crate) fn per_host(&self) -> bool {
        self.enabled || self.throttle.enabled()
    }
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings::builder()
            .build()
            .expect("the defaults are within bounds")
    }
}

/// Builds [`BreakerSettings`]; see there.
#[derive(Debug, Clone, Default)]
pub struct BreakerBuilder {
    enabled: Option<bool>,
    scope: Option<Scope>,
    max_hosts: Option<u32>,
    consecutive_failures: Option<u32>,
    failure_rate: Option<f64>,
    window: Option<u32>,
    min_calls: Option<u32>,
    slow_call_duration: Option<Duration>,
    open_for: Option<Duration>,
    max_open_for: Option<Duration>,
    half_open_probes: Option<u32>,
    probe_every: Option<u32>,
    wait_for_probe: Option<Duration>,
    trip_within: Option<Duration>,
    count_throttling: Option<bool>,
    throttle: Option<ThrottleSettings>,
}

impl BreakerBuilder {
    /// Adaptive throttling of each host (`[adaptive_throttle]`, default
    /// off); it works with the breakers on or off.
    pub fn adaptive_throttle(mut self, throttle: ThrottleSettings) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Whether there are breakers at all (`enabled`, default true).
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = Some(enabled);
        self
    }

    /// One breaker per host, or one for every call (`scope`, default host).
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// The most breakers kept at once (`max_hosts`, 1 to 100,000, default
    /// 1024).
    pub fn max_hosts(mut self, max_hosts: u32) -> Self {
        self.max_hosts = Some(max_hosts);
        self
    }

    /// Failures in a row that trip (`consecutive_failures`, 0 to 1000,
    /// default 10; 0 turns it off).
    pub fn consecutive_failures(mut self, n: u32) -> Self {
        self.consecutive_failures = Some(n);
        self
    }

    /// The failing share of the window that trips (`failure_rate`, 0 to 1,
    /// default 0.5; 0 turns it off).
    pub fn failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = Some(rate);
        self
    }

    /// The calls the rate is taken over (`window`, 1 to 1000, default 100).
    pub fn window(mut self, window: u32) -> Self {
        self.window = Some(window);
        self
    }

    /// The calls the window needs before the rate counts (`min_calls`, 1 to
    /// `window`, default 20 or `window` if smaller).
    pub fn min_calls(mut self, min_calls: u32) -> Self {
        self.min_calls = Some(min_calls);
        self
    }

    /// A success slower than this is a failure (`slow_call_duration`, 1 ms
    /// to 1 h, default none).
    pub fn slow_call_duration(mut self, duration: Duration) -> Self {
        self.slow_call_duration = Some(duration);
        self
    }

    /// The first open time (`open_for`, 1 ms to 1 h, default 5 s).
    pub fn open_for(mut self, open_for: Duration) -> Self {
        self.open_for = Some(open_for);
        self
    }

    /// The longest open time (`max_open_for`, `open_for` to 1 h, default 10 s
    /// or `open_for` if longer).
    pub fn max_open_for(mut self, max_open_for: Duration) -> Self {
        self.max_open_for = Some(max_open_for);
        self
    }

    /// Probes let through when half-open (`half_open_probes`, 1 to 100,
    /// default 1).
    pub fn half_open_probes(mut self, probes: u32) -> Self {
        self.half_open_probes = Some(probes);
        self
    }

    /// While open, let every `n`-th call through as a probe (`probe_every`,
    /// 0 to 10,000, default 50; 0 probes by time alone, after `open_for`).
    ///
    /// Probing by time alone makes the host wait for its probe however many
    /// calls want it: a probe every 5 to 10 s. Probing by count keeps pace
    /// with the load, at a fixed share of it (1 call in 50 is 2%), so a busy
    /// client learns of a recovery within a fraction of a second; the time
    /// of `open_for` remains the floor for a quiet one. Such a probe that
    /// fails leaves the breaker open, quietly: the open time does not grow,
    /// and no change of state is reported.
    pub fn probe_every(mut self, n: u32) -> Self {
        self.probe_every = Some(n);
        self
    }

    /// How long a call that finds the breaker open waits for the verdict of
    /// the next probe (`wait_for_probe`, 0 to 1 h, default 4 s; 0 rejects it
    /// at once).
    ///
    /// A breaker that rejects every call until its next probe succeeds
    /// loses the calls made between the host's recovery and that probe,
    /// half the gap between probes on average. A call that waits is sent as
    /// soon as a probe closes the breaker, and fails with `circuit_open` as
    /// soon as one fails; it never waits past this, nor past the end of its
    /// call when the request carries it. A waiting call holds no connection
    /// and sends nothing: a failing host sees only the probes.
    pub fn wait_for_probe(mut self, wait: Duration) -> Self {
        self.wait_for_probe = Some(wait);
        self
    }

    /// How recent the failures that trip a breaker must be (`trip_within`,
    /// 0 to 1 h, default 5 s; 0 counts failures however far apart).
    ///
    /// The fewest failures that can trip (`consecutive_failures`, or the
    /// failing share of `min_calls`) must all have ended within this span.
    /// A client that calls too seldom to burden the host (10 failures
    /// spread over more than 5 s: about 2 calls a second or fewer) never
    /// trips, and so never loses the calls made between the host's recovery
    /// and a probe; its retry budget still bounds what it sends. A busy
    /// client trips as before.
    pub fn trip_within(mut self, within: Duration) -> Self {
        self.trip_within = Some(within);
        self
    }

    /// Whether throttling (a 429, or a spent quota's wait) counts as a
    /// failure (`count_throttling`, default false).
    pub fn count_throttling(mut self, count: bool) -> Self {
        self.count_throttling = Some(count);
        self
    }

    /// The settings, or the first value out of bounds.
    pub fn build(self) -> Result<BreakerSettings, SettingsError> {
        let hour = Duration::from_secs(3600);
        let window = settings::count(
            "circuit_breaker.window",
            self.window.unwrap_or(100),
            1..=1000,
        )?;
        let min_calls = settings::count(
            "circuit_breaker.min_calls",
            self.min_calls.unwrap_or(20.min(window)),
            1..=window,
        )?;
        let open_for = settings::duration(
            "circuit_breaker.open_for",
            self.open_for.unwrap_or(Duration::from_secs(5)),
            Duration::from_millis(1)..=hour,
        )?;
        let max_open_for = settings::duration(
            "circuit_breaker.max_open_for",
            self.max_open_for
                .unwrap_or(Duration::from_secs(10).max(open_for)),
            open_for..=hour,
        )?;
        let slow_call_duration = match self.slow_call_duration {
            None => None,
            Some(d) => Some(settings::duration(
                "circuit_breaker.slow_call_duration",
                d,
                Duration::from_millis(1)..=hour,
            )?),
        };
        let max_hosts = settings::count(
            "circuit_breaker.max_hosts",
            self.max_hosts
                .unwrap_or(crate::host_key::DEFAULT_MAX_HOSTS as u32),
            1..=100_000,
        )?;
        Ok(BreakerSettings {
            enabled: self.enabled.unwrap_or(true),
            scope: self.scope.unwrap_or(Scope::Host),
            max_hosts: max_hosts as usize,
            consecutive_failures: settings::count(
                "circuit_breaker.consecutive_failures",
                self.consecutive_failures.unwrap_or(10),
                0..=1000,
            )?,
            failure_rate: settings::bounded(
                "circuit_breaker.failure_rate (a fraction: 0.5 is 50%; 0 turns it off)",
                self.failure_rate.unwrap_or(0.5),
                0.0..=1.0,
                f64::to_string,
            )
            .map_err(|e| {
                SettingsError::new("circuit_breaker.failure_rate", e.message().to_owned())
            })?,
            window,
            min_calls,
            slow_call_duration,
            open_for,
            max_open_for,
            half_open_probes: settings::count(
                "circuit_breaker.half_open_probes",
                self.half_open_probes.unwrap_or(1),
                1..=100,
            )?,
            probe_every: settings::count(
                "circuit_breaker.probe_every",
                self.probe_every.unwrap_or(50),
                0..=10_000,
            )?,
            wait_for_probe: settings::duration(
                "circuit_breaker.wait_for_probe",
                self.wait_for_probe.unwrap_or(Duration::from_secs(4)),
                Duration::ZERO..=hour,
            )?,
            trip_within: settings::duration(
                "circuit_breaker.trip_within",
                self.trip_within.unwrap_or(Duration::from_secs(5)),
                Duration::ZERO..=hour,
            )?,
            count_throttling: self.count_throttling.unwrap_or(false),
            throttle: self.throttle.unwrap_or_default(),
        })
    }
}

/// `[circuit_breaker]` as a file writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBreaker {
    enabled: Option<bool>,
    scope: Option<Scope>,
    consecutive_failures: Option<i64>,
    failure_rate: Option<f64>,
    window: Option<i64>,
    min_calls: Option<i64>,
    slow_call_duration: Option<DurationStr>,
    open_for: Option<DurationStr>,
    max_open_for: Option<DurationStr>,
    half_open_probes: Option<i64>,
    probe_every: Option<i64>,
    wait_for_probe: Option<DurationStr>,
    trip_within: Option<DurationStr>,
    count_throttling: Option<bool>,
    max_hosts: Option<i64>,
}

/// A whole number as a count: negative or huge numbers become a value no
/// bound admits, so that `build` names them.
fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl TryFrom<RawBreaker> for BreakerSettings {
    type Error = SettingsError;

    fn try_from(raw: RawBreaker) -> Result<Self, SettingsError> {
        let mut b = BreakerSettings::builder();
        b.enabled = raw.enabled;
        b.scope = raw.scope;
        b.max_hosts = raw.max_hosts.map(count);
        b.consecutive_failures = raw.consecutive_failures.map(count);
        b.failure_rate = raw.failure_rate;
        b.window = raw.window.map(count);
        b.min_calls = raw.min_calls.map(count);
        b.slow_call_duration = raw.slow_call_duration.map(|d| d.0);
        b.open_for = raw.open_for.map(|d| d.0);
        b.max_open_for = raw.max_open_for.map(|d| d.0);
        b.half_open_probes = raw.half_open_probes.map(count);
        b.probe_every = raw.probe_every.map(count);
        b.wait_for_probe = raw.wait_for_probe.map(|d| d.0);
        b.trip_within = raw.trip_within.map(|d| d.0);
        b.count_throttling = raw.count_throttling;
        b.build()
    }
}
