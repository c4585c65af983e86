//! The instruments rebound's listeners record: their names, and the bucket
//! boundaries of the two duration histograms.
//!
//! `MetricsListener` (feature `metrics`) and `OpenTelemetryListener`
//! (feature `opentelemetry`) record the same instruments under the same
//! names, units and attributes. The names are here for exporters that
//! need them, such as a Prometheus exporter
//! told which histograms get [`DURATION_BUCKETS`], and for listeners of
//! your own that should line up with rebound's.
//!
//! | instrument | kind | unit | attributes |
//! |---|---|---|---|
//! | [`REQUEST_DURATION`] | histogram | `s` | `http.request.method`, `server.address`, `server.port`, `http.response.status_code`, `error.type` |
//! | [`CALL_DURATION`] | histogram | `s` | `http.request.method`, `server.address`, `rebound.outcome`, `rebound.route` |
//! | [`RETRIES`] | counter | `{retry}` | `server.address`, `rebound.retry.reason` |
//! | [`RETRIES_REFUSED`] | counter | `{retry}` | `server.address`, `rebound.refusal` |
//! | [`BREAKER_TRANSITIONS`] | counter | `{transition}` | `server.address`, `rebound.breaker.state` |
//! | [`BREAKER_OPEN`] | up-down counter (gauge) | `{breaker}` | none |
//! | [`POLLS`] | counter | `{poll}` | `server.address` |
//! | [`RATE_LIMIT_FALLBACKS`] | counter | `{fallback}` | `rebound.rate_limit.key` |
//! | [`RATE_LIMIT_LOCAL`] | up-down counter (gauge) | `{limit}` | none |
//! | [`CONCURRENCY_LIMIT`] | gauge | `{request}` | `rebound.concurrency.key` |

/// Attempts and status requests sent, by how long each took (seconds):
/// OpenTelemetry's HTTP client request duration, one record per request on
/// the wire. An attempt an open breaker stopped was not sent and is not
/// recorded.
pub const REQUEST_DURATION: &str = "http.client.request.duration";

/// Calls, from the call to its outcome with waits and polls (seconds).
pub const CALL_DURATION: &str = "rebound.call.duration";

/// Retries scheduled, by what failed (`rebound.retry.reason`: `status`,
/// `transport`, `timeout`).
pub const RETRIES: &str = "rebound.retries";

/// Retries that were due and not sent, by why (`rebound.refusal`:
/// `budget`, `deadline`, `not_replayable`, `retry_after`).
pub const RETRIES_REFUSED: &str = "rebound.retries.refused";

/// Breaker changes of state, by the state entered (`rebound.breaker.state`:
/// `closed`, `open`, `half_open`, and `forced_open`, `forced_closed` when an
/// operator holds one).
pub const BREAKER_TRANSITIONS: &str = "rebound.breaker.transitions";

/// Breakers open now (held open by an operator included).
pub const BREAKER_OPEN: &str = "rebound.breaker.open";

/// Status requests of `202 Accepted` operations sent.
pub const POLLS: &str = "rebound.polls";

/// Times a shared rate limit lost its store (Redis unreachable or slower
/// than `redis_timeout`) and fell back to its local limit, by the limit's
/// key prefix (`rebound.rate_limit.key`).
pub const RATE_LIMIT_FALLBACKS: &str = "rebound.rate_limit.fallbacks";

/// Shared rate limits on their local fallback now.
pub const RATE_LIMIT_LOCAL: &str = "rebound.rate_limit.local";

/// The requests an adaptive concurrency limit lets be in flight at once,
/// by the limit's key (`rebound.concurrency.key`: `scheme://host:port`, or
/// empty for one limit of the whole policy); recorded when it moves.
pub const CONCURRENCY_LIMIT: &str = "rebound.concurrency.limit";

/// The `server.address` of hosts past a listener's `max_hosts` (and the
/// `rebound.route` of routes past 256).
pub const OTHER: &str = "_other";

/// The bucket boundaries, in seconds, of [`REQUEST_DURATION`] and
/// [`CALL_DURATION`]: those OpenTelemetry's HTTP semantic conventions
/// recommend for `http.client.request.duration`.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
