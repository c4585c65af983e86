//! [`MetricsListener`]: the stack's events through the `metrics` facade.

use std::sync::Arc;

use ::metrics::{
    Label, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};

use super::instrument::{
    BREAKER_OPEN, BREAKER_TRANSITIONS, CALL_DURATION, POLLS, RATE_LIMIT_FALLBACKS,
    RATE_LIMIT_LOCAL, REQUEST_DURATION, RETRIES, RETRIES_REFUSED,
};
use super::labels::{self, Names};
use super::{
    AttemptEnded, BreakerTransition, CallEnded, Listener, PollSent, RateLimitBackend, RetryRefused,
    RetryScheduled,
};

/// Records the stack's [instruments](super::instrument) through the
/// [`metrics`](::metrics) facade (feature `metrics`): to whatever recorder
/// the program installs, such as metrics-exporter-prometheus's, and to
/// nothing when it installs none.
///
/// Build it after installing the recorder: the constructor describes each
/// instrument (its unit and what it counts) to the recorder installed then,
/// and exporters use the unit in names (`rebound_call_duration_seconds`
/// from metrics-exporter-prometheus with `with_recommended_naming(true)`).
///
/// Histogram buckets are the exporter's business under the facade: give the
/// two duration histograms ([`REQUEST_DURATION`], [`CALL_DURATION`]) the
/// boundaries OpenTelemetry recommends for HTTP,
/// [`DURATION_BUCKETS`](super::instrument::DURATION_BUCKETS) (with
/// metrics-exporter-prometheus, `set_buckets_for_metric`), or they are
/// summaries.
///
/// `server.address` names at most `max_hosts` hosts (by default as many
/// as a breaker registry keeps, [`BreakerSettings::max_hosts`](crate::breaker::BreakerSettings::max_hosts)); the hosts
/// after share `_other`, and so do `server.port`'s ports past as many (and
/// the port of a host named `_other`), so a client that calls many hosts
/// keeps a bounded number of series. No path, query or full URL is ever
/// recorded.
///
/// ```
/// use tower_rebound::events::MetricsListener;
/// use tower_rebound::{Policy, ResilienceLayer};
///
/// // Install the recorder first (metrics::set_global_recorder, or an
/// // exporter's install), then:
/// let policy = Policy::preset("connio")?;
/// let listener = MetricsListener::for_policy(&policy);
/// let layer = ResilienceLayer::new(policy.with_listener(listener));
/// # let _ = layer;
/// # Ok::<_, tower_rebound::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct MetricsListener {
    hosts: Arc<Names>,
    /// The ports `server.port` names: as many as hosts.
    ports: Arc<Names>,
    routes: Arc<Names>,
}

impl std::fmt::Debug for MetricsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsListener")
            .field("max_hosts", &self.hosts.max())
            .finish_non_exhaustive()
    }
}

impl Default for MetricsListener {
    fn default() -> Self {
        MetricsListener::new()
    }
}

impl MetricsListener {
    /// Describes the instruments to the recorder installed now, and names
    /// as many hosts as a breaker registry keeps by default.
    pub fn new() -> Self {
        describe_histogram!(
            REQUEST_DURATION,
            Unit::Seconds,
            "Duration of HTTP client requests: each attempt and status request sent."
        );
        describe_histogram!(
            CALL_DURATION,
            Unit::Seconds,
            "Duration of calls, from the call to its outcome, waits and polls included."
        );
        describe_counter!(RETRIES, Unit::Count, "Retries scheduled, by what failed.");
        describe_counter!(
            RETRIES_REFUSED,
            Unit::Count,
            "Retries that were due and not sent, by why."
        );
        describe_counter!(
            BREAKER_TRANSITIONS,
            Unit::Count,
            "Circuit breaker changes of state, by the state entered."
        );
        describe_gauge!(BREAKER_OPEN, Unit::Count, "Circuit breakers open now.");
        describe_counter!(
            POLLS,
            Unit::Count,
            "Status requests of 202 operations sent."
        );
        describe_counter!(
            RATE_LIMIT_FALLBACKS,
            Unit::Count,
            "Times a shared rate limit lost its store and fell back to its local limit."
        );
        describe_gauge!(
            RATE_LIMIT_LOCAL,
            Unit::Count,
            "Shared rate limits on their local fallback now."
        );
        let max_hosts = crate::host_key::DEFAULT_MAX_HOSTS;
        MetricsListener {
            hosts: Arc::new(Names::new(max_hosts)),
            ports: Arc::new(Names::new(max_hosts)),
            routes: Arc::new(Names::new(labels::MAX_ROUTES)),
        }
    }

    /// Naming as many hosts as `policy`'s breaker registry keeps.
    pub fn for_policy(policy: &crate::Policy) -> Self {
        MetricsListener::new().with_max_hosts(policy.breaker_settings().max_hosts())
    }

    /// Names at most `max_hosts` hosts in `server.address`, and as many
    /// ports in `server.port`; the hosts and ports after share `_other`.
    pub fn with_max_hosts(mut self, max_hosts: usize) -> Self {
        self.hosts = Arc::new(Names::new(max_hosts));
        self.ports = Arc::new(Names::new(max_hosts));
        self
    }
}

impl Listener for MetricsListener {
    fn attempt_ended(&self, e: &AttemptEnded<'_>) {
        if !e.was_sent() {
            return;
        }
        let target = e.target();
        let mut attributes = Vec::with_capacity(5);
        attributes.push(Label::new(labels::METHOD, labels::method(target.method())));
        let host = self.hosts.host(target.host());
        let port = target.port().map(|port| self.ports.port(&host, port));
        attributes.push(Label::new(labels::SERVER_ADDRESS, host));
        if let Some(port) = port {
            attributes.push(Label::new(labels::SERVER_PORT, port));
        }
        if let Some(status) = e.status() {
            attributes.push(Label::new(labels::STATUS_CODE, labels::status(status)));
        }
        if let Some(error) = labels::error_type(e) {
            attributes.push(Label::new(labels::ERROR_TYPE, error));
        }
        histogram!(REQUEST_DURATION, attributes).record(e.duration().as_secs_f64());
    }

    fn retry_scheduled(&self, e: &RetryScheduled<'_>) {
        counter!(
            RETRIES,
            labels::SERVER_ADDRESS => self.hosts.host(e.target().host()),
            labels::RETRY_REASON => e.reason().as_str()
        )
        .increment(1);
    }

    fn retry_refused(&self, e: &RetryRefused<'_>) {
        counter!(
            RETRIES_REFUSED,
            labels::SERVER_ADDRESS => self.hosts.host(e.target().host()),
            labels::REFUSAL => e.refusal().as_str()
        )
        .increment(1);
    }

    fn breaker_transition(&self, e: &BreakerTransition<'_>) {
        counter!(
            BREAKER_TRANSITIONS,
            labels::SERVER_ADDRESS => self.hosts.host(e.host()),
            labels::BREAKER_STATE => e.to().as_str()
        )
        .increment(1);
        match (labels::is_open(e.from()), labels::is_open(e.to())) {
            (false, true) => gauge!(BREAKER_OPEN).increment(1.0),
            (true, false) => gauge!(BREAKER_OPEN).decrement(1.0),
            _ => {}
        }
    }

    fn rate_limit_backend(&self, e: &RateLimitBackend<'_>) {
        if e.shared() {
            gauge!(RATE_LIMIT_LOCAL).decrement(1.0);
        } else {
            counter!(RATE_LIMIT_FALLBACKS, labels::RATE_LIMIT_KEY => e.key().to_owned())
                .increment(1);
            gauge!(RATE_LIMIT_LOCAL).increment(1.0);
        }
    }

    fn poll_sent(&self, e: &PollSent<'_>) {
        counter!(POLLS, labels::SERVER_ADDRESS => self.hosts.host(e.target().host())).increment(1);
    }

    fn call_ended(&self, e: &CallEnded<'_>) {
        let target = e.target();
        let mut attributes = Vec::with_capacity(4);
        attributes.push(Label::new(labels::METHOD, labels::method(target.method())));
        attributes.push(Label::new(
            labels::SERVER_ADDRESS,
            self.hosts.host(target.host()),
        ));
        attributes.push(Label::new(labels::OUTCOME, e.outcome().as_str()));
        if let Some(route) = e.route() {
            attributes.push(Label::new(labels::ROUTE, self.routes.get(route)));
        }
        histogram!(CALL_DURATION, attributes).record(e.duration().as_secs_f64());
    }
}
