//! `--metrics`: the metrics a run produced, in Prometheus's text format.
//!
//! A subcommand that runs calls offers it in three steps: [`Metrics::install`]
//! before it builds its stack, [`Metrics::watch`] on the policy the stack is
//! built from, and [`Metrics::render`] once the calls are done.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_rebound::Policy;
use tower_rebound::events::MetricsListener;
use tower_rebound::events::instrument::{CALL_DURATION, DURATION_BUCKETS, REQUEST_DURATION};

/// The line before the metrics of `--metrics`.
pub(crate) const METRICS_HEADING: &str = "The metrics of these calls, in Prometheus's text format:";

/// The process's metrics recorder: metrics-exporter-prometheus's, without
/// its HTTP listener.
pub(crate) struct Metrics(PrometheusHandle);

impl Metrics {
    /// Installs the recorder for the whole process (once: a second install
    /// fails), with the names Prometheus recommends (units and `_total`
    /// added, the names the dashboard queries) and OpenTelemetry's buckets
    /// for the two duration histograms.
    pub(crate) fn install() -> Result<Metrics, String> {
        let mut builder = PrometheusBuilder::new().with_recommended_naming(true);
        for name in [REQUEST_DURATION, CALL_DURATION] {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(name.to_owned()), &DURATION_BUCKETS)
                .map_err(|e| format!("cannot set the metrics' buckets: {e}"))?;
        }
        let handle = builder
            .install_recorder()
            .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
        Ok(Metrics(handle))
    }

    /// `policy`, recording into this recorder. A method of the installed
    /// recorder because the listener describes its instruments (their
    /// units, which Prometheus's names carry) to the recorder of the moment.
    pub(crate) fn watch(&self, policy: Policy) -> Policy {
        let listener = MetricsListener::for_policy(&policy);
        policy.with_listener(listener)
    }

    /// Everything recorded so far, in Prometheus's text format.
    pub(crate) fn render(&self) -> String {
        self.0.render()
    }
}
