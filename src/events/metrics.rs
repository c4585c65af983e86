//! [`MetricsListener`]: the stack's events through the `metrics` facade.

use std::sync::Arc;
use std::time::Instant;

use ::metrics::{
    Histogram, Key, Label, Level, Metadata, Unit, counter, describe_counter, describe_gauge,
    describe_histogram, gauge,
};
use http::StatusCode;

use super::instrument::OTHER;
use super::instrument::{
    BREAKER_OPEN, BREAKER_TRANSITIONS, CALL_DURATION, CONCURRENCY_LIMIT, POLLS,
    RATE_LIMIT_FALLBACKS, RATE_LIMIT_LOCAL, REQUEST_DURATION, RETRIES, RETRIES_REFUSED,
};
use super::labels::{self, Names};
use super::series::{Place, SeriesCache, recorder_in_force};
use super::{
    AttemptEnded, BreakerTransition, CallEnded, ConcurrencyLimitChanged, Listener, PollSent,
    RateLimitBackend, RetryRefused, RetryScheduled, Target,
};
use crate::outcome::Outcome;

/// What `histogram!` here would tell the recorder of each series.
static METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

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
/// The two duration histograms, recorded on every request and call, keep
/// the handles the recorder gives for each host's series and record into
/// them, rather than naming the series by its labels every time. A handle
/// is asked for again when another recorder is in force, and after a
/// second: a recorder that drops idle series (metrics-exporter-prometheus's
/// `idle_timeout`) gets the series back when the host is called again.
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
    /// The handles of [`REQUEST_DURATION`]'s series, by host.
    requests: Arc<SeriesCache<RequestSeries>>,
    /// The handles of [`CALL_DURATION`]'s series, by host.
    calls: Arc<SeriesCache<CallSeries>>,
}

/// What tells apart a host's series of [`REQUEST_DURATION`]: the values
/// of its other labels.
#[derive(PartialEq)]
struct RequestSeries {
    method: &'static str,
    /// With the authority, what sets `server.port`: the port of the
    /// request's scheme (the authority spells any other); for `_other`,
    /// 0 when the request has a port at all, since it names none.
    port: Option<u16>,
    status: Option<StatusCode>,
    error: Option<&'static str>,
}

/// What tells apart a host's series of [`CALL_DURATION`].
#[derive(PartialEq)]
struct CallSeries {
    method: &'static str,
    outcome: Outcome,
    route: Option<Box<str>>,
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
        describe_gauge!(
            CONCURRENCY_LIMIT,
            Unit::Count,
            "Requests an adaptive concurrency limit lets be in flight at once."
        );
        let max_hosts = crate::host_key::DEFAULT_MAX_HOSTS;
        MetricsListener {
            hosts: Arc::new(Names::new(max_hosts)),
            ports: Arc::new(Names::new(max_hosts)),
            routes: Arc::new(Names::new(labels::MAX_ROUTES)),
            requests: Arc::new(SeriesCache::new(max_hosts)),
            calls: Arc::new(SeriesCache::new(max_hosts)),
        }
    }

    /// Names at most `max_hosts` hosts in `server.address`, and as many
    /// ports in `server.port`; the hosts and ports after share `_other`.
    pub fn with_max_hosts(mut self, max_hosts: usize) -> Self {
        self.hosts = Arc::new(Names::new(max_hosts));
        self.ports = Arc::new(Names::new(max_hosts));
        self.requests = Arc::new(SeriesCache::new(max_hosts));
        self.calls = Arc::new(SeriesCache::new(max_hosts));
        self
    }

    /// Records a request's duration into a series the cache had no fresh
    /// handle for: its labels named, the handle asked for and kept.
    #[cold]
    #[inline(never)]
    fn request_series(
        &self,
        target: Target<'_>,
        mut series: RequestSeries,
        seconds: f64,
        recorder: usize,
        now: Instant,
    ) {
        let name = self.hosts.host(target.host());
        let port = target.port();
        let place = self.place(target, &name);
        if let Place::Other = place {
            series.port = port.map(|_| 0);
            let matches = |s: &RequestSeries| *s == series;
            if self.requests.record(place, matches, seconds, recorder, now) {
                return;
            }
        }
        let mut attributes = Vec::with_capacity(5);
        attributes.push(Label::new(labels::METHOD, series.method));
        let port = port.map(|port| self.ports.port(&name, port));
        attributes.push(Label::new(labels::SERVER_ADDRESS, name));
        if let Some(port) = port {
            attributes.push(Label::new(labels::SERVER_PORT, port));
        }
        if let Some(status) = series.status {
            attributes.push(Label::new(labels::STATUS_CODE, labels::status(status)));
        }
        if let Some(error) = series.error {
            attributes.push(Label::new(labels::ERROR_TYPE, error));
        }
        let histogram = register(Key::from_parts(REQUEST_DURATION, attributes));
        histogram.record(seconds);
        self.requests.keep(place, series, histogram, recorder, now);
    }

    /// [`request_series`](Self::request_series), for a call's duration.
    #[cold]
    #[inline(never)]
    fn call_series(
        &self,
        target: Target<'_>,
        series: CallSeries,
        seconds: f64,
        recorder: usize,
        now: Instant,
    ) {
        let name = self.hosts.host(target.host());
        let place = self.place(target, &name);
        if let Place::Other = place {
            let matches = |s: &CallSeries| *s == series;
            if self.calls.record(place, matches, seconds, recorder, now) {
                return;
            }
        }
        let mut attributes = Vec::with_capacity(4);
        attributes.push(Label::new(labels::METHOD, series.method));
        attributes.push(Label::new(labels::SERVER_ADDRESS, name));
        attributes.push(Label::new(labels::OUTCOME, series.outcome.as_str()));
        if let Some(route) = &series.route {
            attributes.push(Label::new(labels::ROUTE, self.routes.get(route)));
        }
        let histogram = register(Key::from_parts(CALL_DURATION, attributes));
        histogram.record(seconds);
        self.calls.keep(place, series, histogram, recorder, now);
    }

    /// Where the cache keeps the series of a request to `target`, which
    /// `server.address` names `name`.
    fn place<'a>(&self, target: Target<'a>, name: &str) -> Place<'a> {
        if name == OTHER {
            return Place::Other;
        }
        Place::Spelled(authority(target))
    }
}

/// The authority of a request as it spells it; empty for a relative URI.
fn authority<'a>(target: Target<'a>) -> &'a str {
    target.uri().authority().map_or("", |a| a.as_str())
}

/// The handle of the histogram `key` from the recorder in force, as
/// `histogram!` would ask for it.
fn register(key: Key) -> Histogram {
    ::metrics::with_recorder(|recorder| recorder.register_histogram(&key, &METADATA))
}

impl Listener for MetricsListener {
    fn attempt_ended(&self, e: &AttemptEnded<'_>) {
        if !e.was_sent() {
            return;
        }
        let target = e.target();
        let series = RequestSeries {
            method: labels::method(target.method()),
            port: target
                .uri()
                .scheme_str()
                .and_then(crate::host_key::default_port),
            status: e.status(),
            error: labels::error_type(e),
        };
        let place = Place::Spelled(authority(target));
        let seconds = e.duration().as_secs_f64();
        let (recorder, now) = (recorder_in_force(), Instant::now());
        let matches = |s: &RequestSeries| *s == series;
        if !self.requests.record(place, matches, seconds, recorder, now) {
            self.request_series(target, series, seconds, recorder, now);
        }
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

    fn concurrency_limit(&self, e: &ConcurrencyLimitChanged<'_>) {
        gauge!(CONCURRENCY_LIMIT, labels::CONCURRENCY_KEY => e.key().to_owned())
            .set(f64::from(e.to()));
    }

    fn poll_sent(&self, e: &PollSent<'_>) {
        counter!(POLLS, labels::SERVER_ADDRESS => self.hosts.host(e.target().host())).increment(1);
    }

    fn call_ended(&self, e: &CallEnded<'_>) {
        let target = e.target();
        let (method, outcome, route) = (labels::method(target.method()), e.outcome(), e.route());
        let place = Place::Spelled(authority(target));
        let seconds = e.duration().as_secs_f64();
        let (recorder, now) = (recorder_in_force(), Instant::now());
        let matches = |s: &CallSeries| {
            s.method == method && s.outcome == outcome && s.route.as_deref() == route
        };
        if !self.calls.record(place, matches, seconds, recorder, now) {
            let series = CallSeries {
                method,
                outcome,
                route: route.map(Box::from),
            };
            self.call_series(target, series, seconds, recorder, now);
        }
    }
}
