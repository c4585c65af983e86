use std::sync::Arc;
use std::time::Duration;

use http::Uri;
use tokio::time::Instant;

use super::registry::{Cell, Registry};
use super::report;
use super::state::{BreakerCounters, BreakerState};
use crate::host_key::write_key;

/// A look at, and a hand on, the breakers of one layer: for operators and
/// tests. Keys are named by any URL of the host (`http://api.example/`), or
/// by the key itself (`http://api.example:80`).
///
/// ```
/// use tower_rebound::breaker::BreakerState;
/// use tower_rebound::{Policy, ResilienceLayer};
///
/// let layer = ResilienceLayer::new(Policy::preset("connio")?);
/// let breakers = layer.breakers();
/// breakers.force_open("https://api.example/");
/// let snapshot = breakers.snapshot("https://api.example/v3/devices").unwrap();
/// assert_eq!(snapshot.state, BreakerState::ForcedOpen);
/// # Ok::<_, tower_rebound::PolicyError>(())
/// ```
#[derive(Clone, Default)]
pub struct BreakerHandle {
    registry: Option<Arc<Registry>>,
}

impl std::fmt::Debug for BreakerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BreakerHandle")
            .field("breakers", &self.snapshots())
            .finish()
    }
}

/// The state of one breaker at one moment.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BreakerSnapshot {
    /// The key: `scheme://host:port`, or `global`.
    pub key: String,
    /// The state.
    pub state: BreakerState,
    /// Failures in a row, as counted while closed.
    pub consecutive_failures: u32,
    /// The failure rate over the window, once it holds a call.
    pub failure_rate: Option<f64>,
    /// Calls in the window.
    pub window_calls: u32,
    /// The time left until an open breaker lets probes through.
    pub open_remaining: Option<Duration>,
    /// What the breaker has seen.
    pub counters: BreakerCounters,
}

impl BreakerHandle {
    pub(crate) fn new(registry: Option<Arc<Registry>>) -> Self {
        BreakerHandle { registry }
    }

    /// Whether the layer has breakers at all (`circuit_breaker.enabled`):
    /// a handle on a layer without them sees no breaker and changes nothing.
    pub fn is_enabled(&self) -> bool {
        self.registry.is_some()
    }

    /// Every breaker there is now, by key. Empty when breaking is off.
    pub fn snapshots(&self) -> Vec<BreakerSnapshot> {
        let Some(registry) = &self.registry else {
            return Vec::new();
        };
        registry.cells().iter().map(|cell| snapshot(cell)).collect()
    }

    /// The breaker for `url`'s host, if a call has made it (or an operator
    /// forced it).
    pub fn snapshot(&self, url: &str) -> Option<BreakerSnapshot> {
        let registry = self.registry.as_ref()?;
        registry.find(&key_of(url)).map(|cell| snapshot(&cell))
    }

    /// Holds `url`'s breaker open until it is reset or forced closed: calls
    /// to the host are rejected without being sent.
    pub fn force_open(&self, url: &str) {
        self.with_cell(url, |cell| cell.force(true));
    }

    /// Holds `url`'s breaker closed until it is reset: calls go through and
    /// failures never trip it.
    pub fn force_closed(&self, url: &str) {
        self.with_cell(url, |cell| cell.force(false));
    }

    /// Makes `url`'s breaker a fresh closed one (its counters stay).
    pub fn reset(&self, url: &str) {
        self.with_cell(url, |cell| cell.reset());
    }

    fn with_cell(&self, url: &str, act: impl FnOnce(&Cell) -> Option<super::state::Transition>) {
        let Some(registry) = &self.registry else {
            return;
        };
        let cell = registry.cell_for_key(&key_of(url));
        if let Some(transition) = act(&cell) {
            report(&cell, &transition);
        }
    }
}

/// The breaker key of a URL, or the text itself when it is not one.
fn key_of(url: &str) -> String {
    match url.parse::<Uri>() {
        Ok(uri) if uri.host().is_some() => {
            let mut key = String::new();
            let _ = write_key(&uri, &mut key);
            key
        }
        _ => url.to_owned(),
    }
}

fn snapshot(cell: &Cell) -> BreakerSnapshot {
    let machine = cell.machine();
    BreakerSnapshot {
        key: cell.key.to_string(),
        state: machine.state(),
        consecutive_failures: machine.consecutive_failures(),
        failure_rate: machine.failure_rate(),
        window_calls: machine.window_calls(),
        open_remaining: machine.open_remaining(Instant::now()),
        counters: cell.counters(&machine),
    }
}
