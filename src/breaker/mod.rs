//! Circuit breaking: fail fast against a failing host.
mod state;
pub use state::{BreakerCounters, BreakerState};
