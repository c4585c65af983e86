//! [`OpenTelemetryListener`]: the stack's events as OpenTelemetry metrics.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, UpDownCounter};

use super::instrument::{
    BREAKER_OPEN, BREAKER_TRANSITIONS, CALL_DURATION, CONCURRENCY_LIMIT, DURATION_BUCKETS, POLLS,
    RATE_LIMIT_FALLBACKS, RATE_LIMIT_LOCAL, REQUEST_DURATION, RETRIES, RETRIES_REFUSED,
};
use super::labels::{self, Names};
use super::{
    AttemptEnded, BreakerTransition, CallEnded, ConcurrencyLimitChanged, Listener, PollSent,
    RateLimitBackend, RetryRefused, RetryScheduled,
};

/// Records the stack's [instruments](super::instrument) through the
/// OpenTelemetry metrics API (feature `opentelemetry`).
///
/// The instruments are made once, from a [`Meter`]: the global one named
/// `rebound` ([`new`](Self::new)), which records nothing until the program
/// sets a meter provider (`opentelemetry::global::set_meter_provider`), or
/// one given ([`with_meter`](Self::with_meter)). rebound depends on the
/// API only: the SDK, its readers and exporters are the program's choice.
/// The duration histograms carry the bucket boundaries OpenTelemetry
/// recommends for HTTP ([`DURATION_BUCKETS`]).
///
/// `server.address` names at most `max_hosts` hosts (by default as many
/// as a breaker registry keeps, [`BreakerSettings::max_hosts`](crate::breaker::BreakerSettings::max_hosts)); the hosts
/// after share `_other`, so a client that calls many hosts keeps a bounded
/// number of series. No path, query or full URL is ever recorded.
///
/// ```
/// use tower_rebound::events::OpenTelemetryListener;
/// use tower_rebound::{Policy, ResilienceLayer};
///
/// let policy = Policy::preset("connio")?;
/// let meter = opentelemetry::global::meter("my-service");
/// let listener = OpenTelemetryListener::with_meter(&meter)
///     .with_max_hosts(policy.breaker_settings().max_hosts());
/// let layer = ResilienceLayer::new(policy.with_listener(listener));
/// # let _ = layer;
/// # Ok::<_, tower_rebound::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct OpenTelemetryListener {
    request_duration: Histogram<f64>,
    call_duration: Histogram<f64>,
    retries: Counter<u64>,
    refused: Counter<u64>,
    transitions: Counter<u64>,
    open: UpDownCounter<i64>,
    polls: Counter<u64>,
    fallbacks: Counter<u64>,
    local: UpDownCounter<i64>,
    concurrency: Gauge<u64>,
    hosts: Arc<Names>,
    /// The ports `server.port` names: as many as hosts; past them (and for
    /// a host named `_other`) the attribute is left out.
    ports: Arc<Names>,
    routes: Arc<Names>,
}

impl std::fmt::Debug for OpenTelemetryListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenTelemetryListener")
            .field("max_hosts", &self.hosts.max())
            .finish_non_exhaustive()
    }
}

impl Default for OpenTelemetryListener {
    fn default() -> Self {
        OpenTelemetryListener::new()
    }
}

impl OpenTelemetryListener {
    /// Records through the global meter provider's meter `rebound`.
    pub fn new() -> Self {
        OpenTelemetryListener::with_meter(&opentelemetry::global::meter("rebound"))
    }

    /// Records through `meter`.
    pub fn with_meter(meter: &Meter) -> Self {
        let duration = |name: &'static str, description: &'static str| {
            meter
                .f64_histogram(name)
                .with_unit("s")
                .with_description(description)
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build()
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        OpenTelemetryListener {
            request_duration: duration(
                REQUEST_DURATION,
                "Duration of HTTP client requests: each attempt and status request sent.",
            ),
            call_duration: duration(
                CALL_DURATION,
                "Duration of calls, from the call to its outcome, waits and polls included.",
            ),
            retries: counter(RETRIES, "{retry}", "Retries scheduled, by what failed."),
            refused: counter(
                RETRIES_REFUSED,
                "{retry}",
                "Retries that were due and not sent, by why.",
            ),
            transitions: counter(
                BREAKER_TRANSITIONS,
                "{transition}",
                "Circuit breaker changes of state, by the state entered.",
            ),
            open: meter
                .i64_up_down_counter(BREAKER_OPEN)
                .with_unit("{breaker}")
                .with_description("Circuit breakers open now.")
                .build(),
            polls: counter(POLLS, "{poll}", "Status requests of 202 operations sent."),
            fallbacks: counter(
                RATE_LIMIT_FALLBACKS,
                "{fallback}",
                "Times a shared rate limit lost its store and fell back to its local limit.",
            ),
            local: meter
                .i64_up_down_counter(RATE_LIMIT_LOCAL)
                .with_unit("{limit}")
                .with_description("Shared rate limits on their local fallback now.")
                .build(),
            concurrency: meter
                .u64_gauge(CONCURRENCY_LIMIT)
                .with_unit("{request}")
                .with_description(
                    "Requests an adaptive concurrency limit lets be in flight at once.",
                )
                .build(),
            hosts: Arc::new(Names::new(crate::host_key::DEFAULT_MAX_HOSTS)),
            ports: Arc::new(Names::new(crate::host_key::DEFAULT_MAX_HOSTS)),
            routes: Arc::new(Names::new(labels::MAX_ROUTES)),
        }
    }

    /// Names at most `max_hosts` hosts in `server.address`; the hosts after
    /// share `_other`.
    pub fn with_max_hosts(mut self, max_hosts: usize) -> Self {
        self.hosts = Arc::new(Names::new(max_hosts));
        self.ports = Arc::new(Names::new(max_hosts));
        self
    }
}

impl Listener for OpenTelemetryListener {
    fn attempt_ended(&self, e: &AttemptEnded<'_>) {
        if !e.was_sent() {
            return;
        }
        let target = e.target();
        let host = self.hosts.host(target.host());
        // A port is an integer here: one past the names kept is left out
        // rather than named `_other`, so the attribute keeps one type.
        let port = target
            .port()
            .filter(|&port| &*self.ports.port(&host, port) != super::instrument::OTHER);
        // The optional attributes take the places after the first two.
        let mut attributes = [
            KeyValue::new(labels::METHOD, labels::method(target.method())),
            KeyValue::new(labels::SERVER_ADDRESS, host),
            KeyValue::new(labels::SERVER_PORT, 0_i64),
            KeyValue::new(labels::STATUS_CODE, 0_i64),
            KeyValue::new(labels::ERROR_TYPE, ""),
        ];
        let mut len = 2;
        if let Some(port) = port {
            attributes[len] = KeyValue::new(labels::SERVER_PORT, i64::from(port));
            len += 1;
        }
        if let Some(status) = e.status() {
            attributes[len] = KeyValue::new(labels::STATUS_CODE, i64::from(status.as_u16()));
            len += 1;
        }
        if let Some(error) = labels::error_type(e) {
            attributes[len] = KeyValue::new(labels::ERROR_TYPE, error);
            len += 1;
        }
        self.request_duration
            .record(e.duration().as_secs_f64(), &attributes[..len]);
    }

    fn retry_scheduled(&self, e: &RetryScheduled<'_>) {
        let attributes = [
            KeyValue::new(labels::SERVER_ADDRESS, self.hosts.host(e.target().host())),
            KeyValue::new(labels::RETRY_REASON, e.reason().as_str()),
        ];
        self.retries.add(1, &attributes);
    }

    fn retry_refused(&self, e: &RetryRefused<'_>) {
        let attributes = [
            KeyValue::new(labels::SERVER_ADDRESS, self.hosts.host(e.target().host())),
            KeyValue::new(labels::REFUSAL, e.refusal().as_str()),
        ];
        self.refused.add(1, &attributes);
    }

    fn rate_limit_backend(&self, e: &RateLimitBackend<'_>) {
        if e.shared() {
            self.local.add(-1, &[]);
        } else {
            let attributes = [KeyValue::new(labels::RATE_LIMIT_KEY, e.key().to_owned())];
            self.fallbacks.add(1, &attributes);
            self.local.add(1, &[]);
        }
    }

    fn concurrency_limit(&self, e: &ConcurrencyLimitChanged<'_>) {
        let attributes = [KeyValue::new(labels::CONCURRENCY_KEY, e.key().to_owned())];
        self.concurrency.record(u64::from(e.to()), &attributes);
    }

    fn breaker_transition(&self, e: &BreakerTransition<'_>) {
        let attributes = [
            KeyValue::new(labels::SERVER_ADDRESS, self.hosts.host(e.host())),
            KeyValue::new(labels::BREAKER_STATE, e.to().as_str()),
        ];
        self.transitions.add(1, &attributes);
        match (labels::is_open(e.from()), labels::is_open(e.to())) {
            (false, true) => self.open.add(1, &[]),
            (true, false) => self.open.add(-1, &[]),
            _ => {}
        }
    }

    fn poll_sent(&self, e: &PollSent<'_>) {
        let attributes = [KeyValue::new(
            labels::SERVER_ADDRESS,
            self.hosts.host(e.target().host()),
        )];
        self.polls.add(1, &attributes);
    }

    fn call_ended(&self, e: &CallEnded<'_>) {
        let target = e.target();
        let mut attributes = [
            KeyValue::new(labels::METHOD, labels::method(target.method())),
            KeyValue::new(labels::SERVER_ADDRESS, self.hosts.host(target.host())),
            KeyValue::new(labels::OUTCOME, e.outcome().as_str()),
            KeyValue::new(labels::ROUTE, ""),
        ];
        let mut len = 3;
        if let Some(route) = e.route() {
            attributes[len] = KeyValue::new(labels::ROUTE, self.routes.get(route));
            len += 1;
        }
        self.call_duration
            .record(e.duration().as_secs_f64(), &attributes[..len]);
    }
}
