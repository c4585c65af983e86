//! A policy you can swap while calls run.
//!
//! [`ReloadableLayer`] wraps clients in the stack of a policy that a
//! [`PolicySwap`] handle replaces at any time: calls that start after a swap
//! run under the new policy, calls in flight finish under the one they
//! started with (each holds its own stack), and no call ever mixes the two.
//! The breakers, the retry budget and the rate limit each survive a swap
//! that keeps their settings, so a host whose breaker is open stays cut
//! off, a spent budget stays spent and the limit's turns go on; a policy that cannot be read is refused
//! whole by [`Policy`]'s own loading, before it reaches the handle, and the
//! old one stays.
//!
//! Each client checks for a new policy when it gets ready (one atomic load)
//! and builds its stack anew once per swap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::config::Policy;
use crate::error::{BoxError, Error};
use crate::retry::ReplayBody;
use crate::stack::{Resilience, ResilienceLayer, ResponseFuture};

/// The policy in force, and how many times it was swapped.
#[derive(Debug)]
struct Current {
    generation: AtomicU64,
    layer: RwLock<ResilienceLayer>,
}

impl Current {
    fn layer(&self) -> (u64, ResilienceLayer) {
        let layer = self
            .layer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Read under the lock: the generation and the layer agree.
        (self.generation.load(Ordering::Acquire), layer.clone())
    }
}

/// Wraps clients in the rebound stack of a policy that can be swapped while
/// they run.
///
/// Calls that start after a swap run under the new policy; calls in flight
/// finish under the one they started with (each holds its own stack), and
/// no call mixes the two. The breakers, the retry budget and the rate limit
/// each carry over when the new policy gives them the same settings, so a
/// host whose breaker is open stays cut off, a spent budget stays spent and
/// the limit's turns go on; a part whose settings changed starts anew. Each
/// client looks for a new policy
/// when it gets ready (one atomic load) and builds its stack anew once per
/// swap.
///
/// ```
/// # use std::convert::Infallible;
/// # use http::{Request, Response};
/// # use http_body_util::Full;
/// # use bytes::Bytes;
/// use tower::{Layer, ServiceExt};
/// use tower_rebound::{Policy, ReloadableLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let client = tower::service_fn(|_req: Request<Full<Bytes>>| async {
/// #     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
/// # });
/// let (layer, swap) = ReloadableLayer::new(Policy::preset("standard")?);
/// let client = layer.layer(client);
/// // Later, from a file that changed: an invalid file is refused here, and
/// // the policy in force stays.
/// swap.swap(Policy::from_toml_str("[retry]\nmax_attempts = 2\n")?);
/// let request = Request::get("http://api.example/devices").body(Full::default())?;
/// assert_eq!(client.oneshot(request).await?.status(), 200);
/// assert_eq!(swap.generation(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ReloadableLayer {
    current: Arc<Current>,
}

/// Swaps the policy of a [`ReloadableLayer`] and of every client it wraps.
#[derive(Debug, Clone)]
pub struct PolicySwap {
    current: Arc<Current>,
}

impl ReloadableLayer {
    /// The layer, under `policy` until swapped, and its handle.
    pub fn new(policy: Policy) -> (ReloadableLayer, PolicySwap) {
        let current = Arc::new(Current {
            generation: AtomicU64::new(0),
            layer: RwLock::new(ResilienceLayer::new(policy)),
        });
        (
            ReloadableLayer {
                current: Arc::clone(&current),
            },
            PolicySwap { current },
        )
    }
}

impl PolicySwap {
    /// Puts `policy` in force for the calls that start from now on. The
    /// breakers, the budget and the rate limit carry over when `policy`
    /// gives them the same settings.
    pub fn swap(&self, policy: Policy) {
        let mut layer = self
            .current
            .layer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *layer = layer.succeeded_by(&policy);
        self.current.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// How many times the policy was swapped.
    pub fn generation(&self) -> u64 {
        self.current.generation.load(Ordering::Acquire)
    }

    /// The breakers of the policy in force.
    pub fn breakers(&self) -> crate::breaker::BreakerHandle {
        self.current.layer().1.breakers()
    }

    /// Reads the policy file at `path` every `every` and, when its contents
    /// change, loads it and hands the result to `take`, which returns the
    /// policy to put in force (with listeners of its own, say), or `None` to
    /// keep the one in force (a file that cannot be read: say so there). A
    /// file being replaced (unreadable for a moment) is looked at again at
    /// the next turn. Runs on the current Tokio runtime until the returned
    /// task is aborted.
    ///
    /// The file is read and compared rather than watched through the
    /// operating system: no dependency, and an editor that saves by renaming
    /// a new file over the old one is seen as well.
    #[cfg(feature = "watch")]
    #[cfg_attr(docsrs, doc(cfg(feature = "watch")))]
    pub fn watch_file<F>(
        &self,
        path: impl Into<std::path::PathBuf>,
        every: std::time::Duration,
        mut take: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(Result<Policy, crate::config::PolicyError>) -> Option<Policy> + Send + 'static,
    {
        let path = path.into();
        let swap = self.clone();
        tokio::spawn(async move {
            let mut seen = std::fs::read(&path).ok();
            let mut turns = tokio::time::interval(every);
            turns.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                turns.tick().await;
                let now = std::fs::read(&path).ok();
                if now.is_none() || now == seen {
                    continue;
                }
                seen = now;
                if let Some(policy) = take(Policy::from_path(&path)) {
                    swap.swap(policy);
                }
            }
        })
    }
}

impl<S: Clone> Layer<S> for ReloadableLayer {
    type Service = Reloadable<S>;

    fn layer(&self, inner: S) -> Reloadable<S> {
        let (generation, layer) = self.current.layer();
        Reloadable {
            stack: layer.layer(inner.clone()),
            generation,
            inner,
            current: Arc::clone(&self.current),
        }
    }
}

/// A client in the rebound stack of the policy in force; built by
/// [`ReloadableLayer`].
#[derive(Debug, Clone)]
pub struct Reloadable<S> {
    /// The stack of policy number `generation`.
    stack: Resilience<S>,
    generation: u64,
    /// The client, for the stack of the next policy.
    inner: S,
    current: Arc<Current>,
}

impl<S: Clone> Reloadable<S> {
    /// Builds the stack anew when the policy was swapped since.
    fn refresh(&mut self) {
        if self.current.generation.load(Ordering::Acquire) != self.generation {
            let (generation, layer) = self.current.layer();
            self.stack = layer.layer(self.inner.clone());
            self.generation = generation;
        }
    }
}

impl<S, B, RB> Service<Request<B>> for Reloadable<S>
where
    S: Service<Request<B>, Response = Response<RB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody + Default,
    RB: http_body::Body + Unpin,
{
    type Response = Response<RB>;
    type Error = Error;
    type Future = ResponseFuture<S, B, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        // The stack made ready is the one `call` uses.
        self.refresh();
        self.stack.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        self.stack.call(request)
    }
}
