//! The states a circuit breaker can be in: on the ground floor, since the
//! breaker layer and the events that report its changes both name them.

/// The state of one breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are rejected without being sent, until the open time ends.
    Open,
    /// A few probe calls go through; their outcome closes or reopens it.
    HalfOpen,
    /// Held open by an operator until reset or forced closed.
    ForcedOpen,
    /// Held closed by an operator: calls go through and never trip it.
    ForcedClosed,
}

impl BreakerState {
    /// The state's name, such as `"half_open"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
            BreakerState::ForcedOpen => "forced_open",
            BreakerState::ForcedClosed => "forced_closed",
        }
    }
}
