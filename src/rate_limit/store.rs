//! Where shared turns are counted: Redis, or a store in memory with the same
//! interface, for simulations and tests of many processes in one.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::gcra::{self, Grant, Rate};

/// A boxed future of a store.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// A store's failure: the limiter falls back to its local limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StoreError {}

/// One request for turns: one round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Acquire {
    /// The rate of the key.
    pub rate: Rate,
    /// Turns wanted (a lease takes several).
    pub turns: u32,
    /// How long the caller may wait for a turn, in microseconds: a turn
    /// further off is refused, not reserved.
    pub max_wait_us: u64,
}

/// Shared turns, one GCRA state and one pause per key, read and changed
/// atomically in one round trip.
///
/// Each process holds its own [`Limiter`](super::RateLimitLayer) over one
/// store; processes that name the same key share its turns.
pub trait Store: Send + Sync + 'static {
    /// Takes turns from `key`, or says why not (see [`gcra::take`]): a
    /// paused key grants nothing until its pause ends.
    fn acquire(&self, key: &str, request: Acquire) -> StoreFuture<Grant>;

    /// Pauses `key` for `pause`, unless it is already paused for longer.
    fn pause(&self, key: &str, pause: Duration) -> StoreFuture<()>;
}

/// A [`Store`] in this process's memory, on Tokio's clock (so paused time
/// drives it): what a simulation of several processes shares in place of
/// Redis. It counts its round trips, and can be made unreachable.
///
/// ```
/// use std::sync::Arc;
/// use tower_rebound::rate_limit::{MemoryStore, RateLimitSettings};
/// use tower_rebound::Policy;
///
/// let store = Arc::new(MemoryStore::new());
/// let limit = RateLimitSettings::builder().per_second(200.0).build()?;
/// // Two processes' policies, one limit.
/// let a = Policy::default().with_rate_limit_store(limit.clone(), store.clone());
/// let b = Policy::default().with_rate_limit_store(limit, store.clone());
/// # let _ = (a, b);
/// # Ok::<_, tower_rebound::SettingsError>(())
/// ```
#[derive(Debug)]
pub struct MemoryStore {
    origin: Instant,
    keys: Mutex<HashMap<String, Key>>,
    round_trips: AtomicU64,
    down: AtomicBool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Key {
    tat_us: u64,
    paused_until_us: u64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore {
            origin: Instant::now(),
            keys: Mutex::new(HashMap::new()),
            round_trips: AtomicU64::new(0),
            down: AtomicBool::new(false),
        }
    }

    /// The round trips made to it so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// Makes every round trip fail (`true`) or work again (`false`), as a
    /// Redis server stopped and started again.
    pub fn set_unreachable(&self, down: bool) {
        self.down.store(down, Ordering::Relaxed);
    }

    fn now_us(&self) -> u64 {
        // Starts at 1 s so that a key's first turns see a full burst.
        1_000_000 + self.origin.elapsed().as_micros() as u64
    }

    fn trip(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Key>>, StoreError> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        if self.down.load(Ordering::Relaxed) {
            return Err(StoreError("store unreachable".to_owned()));
        }
        Ok(self
            .keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// [`Store::acquire`], at once.
    pub fn acquire_now(&self, key: &str, request: Acquire) -> Result<Grant, StoreError> {
        let now = self.now_us();
        let mut keys = self.trip()?;
        let entry = keys.entry(key.to_owned()).or_default();
        if entry.paused_until_us > now {
            return Ok(Grant::paused(entry.paused_until_us - now));
        }
        let (tat, grant) = gcra::take(
            entry.tat_us,
            now,
            request.rate,
            request.turns,
            request.max_wait_us,
        );
        entry.tat_us = tat;
        Ok(grant)
    }

    /// [`Store::pause`], at once.
    pub fn pause_now(&self, key: &str, pause: Duration) -> Result<(), StoreError> {
        let until = self.now_us().saturating_add(pause.as_micros() as u64);
        let mut keys = self.trip()?;
        let entry = keys.entry(key.to_owned()).or_default();
        entry.paused_until_us = entry.paused_until_us.max(until);
        Ok(())
    }
}

impl Store for MemoryStore {
    fn acquire(&self, key: &str, request: Acquire) -> StoreFuture<Grant> {
        let result = self.acquire_now(key, request);
        Box::pin(async move { result })
    }

    fn pause(&self, key: &str, pause: Duration) -> StoreFuture<()> {
        let result = self.pause_now(key, pause);
        Box::pin(async move { result })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn shared_turns_pauses_and_outages() {
        let store = MemoryStore::new();
        let ask = Acquire {
            rate: Rate::new(10.0, 2),
            turns: 1,
            max_wait_us: 0,
        };
        assert_eq!(store.acquire_now("k", ask).unwrap().turns, 1);
        assert_eq!(store.acquire_now("k", ask).unwrap().turns, 1);
        assert_eq!(store.acquire_now("k", ask).unwrap().turns, 0);
        assert_eq!(store.acquire_now("other", ask).unwrap().turns, 1);
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(store.acquire_now("k", ask).unwrap().turns, 1);

        store.pause_now("k", Duration::from_secs(2)).unwrap();
        store.pause_now("k", Duration::from_secs(1)).unwrap();
        let paused = store.acquire_now("k", ask).unwrap();
        assert!(paused.paused);
        assert_eq!(paused.wait_us, 2_000_000, "the longer pause holds");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(store.acquire_now("k", ask).unwrap().turns, 1);

        store.set_unreachable(true);
        assert!(store.acquire_now("k", ask).is_err());
        store.set_unreachable(false);
        assert_eq!(store.round_trips(), 10);
    }
}
