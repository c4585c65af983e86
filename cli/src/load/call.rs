//! One call of a load run: sent through the shared client, its body read to
//! the end, and counted in the tally, or counted as abandoned if the run gives
//! up on it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use tokio::sync::OwnedSemaphorePermit;
use tower::ServiceExt;
use tower_rebound::Reloadable;
use tower_rebound::client::BareHttpsClient;
use tower_rebound::{CallInfo, Outcome};

use super::lock;
use super::tally::{ABANDONED, Tally};

/// What every call needs: the one client, the classifier that names an
/// answer's outcome, the request to clone and the tally to count in.
pub(super) struct Caller {
    pub(super) client: Reloadable<BareHttpsClient>,
    /// The classifier of the policy in force (`--watch` swaps it).
    pub(super) classifiers: super::watch::Classifiers,
    pub(super) request: Request<Full<Bytes>>,
    pub(super) tally: Arc<Mutex<Tally>>,
}

impl Caller {
    /// One call, holding `slot` until it ends: its outcome, the requests
    /// it sent, and its latency to the end of the body.
    pub(super) fn call(
        &self,
        slot: OwnedSemaphorePermit,
    ) -> impl Future<Output = ()> + Send + 'static {
        let in_flight = InFlight {
            tally: Arc::clone(&self.tally),
            started: std::time::Instant::now(),
            ended: false,
            _slot: slot,
        };
        let client = self.client.clone();
        let classifier = match self.classifiers.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        let request = self.request.clone();
        async move {
            let (outcome, requests) = match client.oneshot(request).await {
                Ok(response) => {
                    let info = CallInfo::of(&response);
                    let class = classifier.classify_head(response.status(), response.headers());
                    let mut outcome = Outcome::of_response(class);
                    // Read to the end, so the connection can be used again.
                    let mut body = response.into_body();
                    while let Some(frame) = body.frame().await {
                        if frame.is_err() {
                            outcome = Outcome::Transport;
                            break;
                        }
                    }
                    (outcome, info.requests())
                }
                Err(error) => (Outcome::from(error.kind()), error.requests()),
            };
            in_flight.end(outcome.as_str(), u64::from(requests));
        }
    }
}

/// A call in flight: counted as [`ABANDONED`] if it is dropped before it
/// ends.
struct InFlight {
    tally: Arc<Mutex<Tally>>,
    started: std::time::Instant,
    ended: bool,
    _slot: OwnedSemaphorePermit,
}

impl InFlight {
    fn end(mut self, name: &'static str, requests: u64) {
        lock(&self.tally).end(name, requests, self.started.elapsed());
        self.ended = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.ended {
            // How many requests it sent is not known: none are counted.
            lock(&self.tally).end(ABANDONED, 0, self.started.elapsed());
        }
    }
}
