//! Listeners sized for a policy: what the events module offers, made to
//! fit the policy's host bound. Here, beside [`Policy`], so that the events
//! module need not know of policies.

#[cfg(feature = "metrics")]
use crate::events::MetricsListener;
#[cfg(feature = "opentelemetry")]
use crate::events::OpenTelemetryListener;

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
use super::Policy;

#[cfg(feature = "metrics")]
impl MetricsListener {
    /// Naming as many hosts as `policy`'s breaker registry keeps.
    pub fn for_policy(policy: &Policy) -> Self {
        MetricsListener::new().with_max_hosts(policy.breaker_settings().max_hosts())
    }
}

#[cfg(feature = "opentelemetry")]
impl OpenTelemetryListener {
    /// Through the global meter, naming as many hosts as `policy`'s breaker
    /// registry keeps.
    pub fn for_policy(policy: &Policy) -> Self {
        OpenTelemetryListener::new().with_max_hosts(policy.breaker_settings().max_hosts())
    }
}
