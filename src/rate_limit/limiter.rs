//! One process's side of a limit: its leased turns, its pauses, its local
//! limiter, and the breaker in front of the shared store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::gcra::{self, Grant, Rate};
use super::settings::RateLimitSettings;
use super::store::{Acquire, Store};
use crate::error::Error;
use crate::events::{Listeners, RateLimitBackend};

/// Leased turns unused after this long are dropped: a lease is for turns
/// about to be taken, not a reserve.
pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// After a failed round trip the store is left alone this long; then one
/// attempt tries it again. A store that came back is used again within this
/// (plus one round trip).
pub const STORE_RETRY: Duration = Duration::from_secs(1);
/// Keys past which idle keys are forgotten. Keys in use are kept, so the
/// next sweep waits until the keys double.
const MAX_KEYS: usize = 4096;
/// The longest wait of a call that has no deadline.
const NO_DEADLINE_WAIT: Duration = Duration::from_secs(60);

/// What a process knows of one key.
#[derive(Debug)]
struct Local {
    /// The local limiter's TAT (the whole limit with the local backend; the
    /// fallback's while the store is unreachable).
    tat_us: u64,
    leased: u32,
    lease_expires: Instant,
    paused_until: Option<Instant>,
    /// One round trip to the store at a time per key: the others wait for
    /// its lease rather than each making their own.
    gate: Arc<tokio::sync::Mutex<()>>,
}

impl Local {
    /// Whether forgetting the key would change what it is granted: its next
    /// turn is still to come (a fresh key would get its whole burst again),
    /// it holds leased turns or a pause, or a round trip is in flight or
    /// awaited (a fresh gate would let a second one start).
    fn in_use(&self, now: Instant, now_us: u64) -> bool {
        self.tat_us > now_us
            || (self.leased > 0 && now < self.lease_expires)
            || self.paused_until.is_some_and(|p| p > now)
            || Arc::strong_count(&self.gate) > 1
    }
}

/// Whether the store is used, and since when it is not.
#[derive(Debug, Default)]
struct Health {
    down_since: Option<Instant>,
    retry_at: Option<Instant>,
    fallbacks: u64,
    returns: u64,
}

/// What the fast path decided.
enum Quick {
    Go,
    /// A turn reserved for after this wait.
    Wait(Duration),
    /// The key is paused this long.
    Paused(Duration),
    Refuse(Duration),
    /// Ask the store.
    Store,
}

pub(crate) struct Limiter {
    pub(crate) settings: RateLimitSettings,
    rate: Rate,
    fallback: Rate,
    store: Option<Arc<dyn Store>>,
    origin: Instant,
    keys: Mutex<HashMap<String, Local>>,
    /// The number of keys at which idle ones are next forgotten.
    sweep_at: AtomicUsize,
    health: Mutex<Health>,
    listeners: Listeners,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("settings", &self.settings)
            .field("shared", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Limiter {
    pub(crate) fn new(
        settings: RateLimitSettings,
        store: Option<Arc<dyn Store>>,
        listeners: Listeners,
    ) -> Limiter {
        Limiter {
            rate: Rate::new(settings.per_second, settings.burst),
            fallback: Rate::new(settings.fallback_per_second, settings.burst),
            settings,
            store,
            origin: Instant::now(),
            keys: Mutex::new(HashMap::new()),
            sweep_at: AtomicUsize::new(MAX_KEYS),
            health: Mutex::new(Health::default()),
            listeners,
        }
    }

    fn now_us(&self, now: Instant) -> u64 {
        1_000_000 + now.saturating_duration_since(self.origin).as_micros() as u64
    }

    /// The longest an attempt may wait for a turn.
    fn max_wait(&self, now: Instant, deadline: Option<Instant>) -> Duration {
        if !self.settings.wait {
            return Duration::ZERO;
        }
        deadline.map_or(NO_DEADLINE_WAIT, |d| d.saturating_duration_since(now))
    }

    /// Whether the store is to be used now; false while it is left alone
    /// after a failure.
    fn store_usable(&self, now: Instant) -> bool {
        self.store.is_some() && lock(&self.health).retry_at.is_none_or(|at| now >= at)
    }

    /// The decision that needs no round trip: a pause, a leased turn, the
    /// local limiter (with no store, or the store left alone).
    fn quick(&self, key: &str, now: Instant, max_wait: Duration, use_store: bool) -> Quick {
        let now_us = self.now_us(now);
        let mut keys = lock(&self.keys);
        if !keys.contains_key(key) {
            // A key seen for the first time is copied in; one seen before
            // is found without allocating.
            if keys.len() >= self.sweep_at.load(Ordering::Relaxed) {
                keys.retain(|_, local| local.in_use(now, now_us));
                let next = MAX_KEYS.max(keys.len().saturating_mul(2));
                self.sweep_at.store(next, Ordering::Relaxed);
            }
            keys.insert(
                key.to_owned(),
                Local {
                    tat_us: 0,
                    leased: 0,
                    lease_expires: now,
                    paused_until: None,
                    gate: Arc::new(tokio::sync::Mutex::new(())),
                },
            );
        }
        let Some(local) = keys.get_mut(key) else {
            return Quick::Store;
        };
        if let Some(until) = local.paused_until {
            if until > now {
                let remaining = until - now;
                return if remaining <= max_wait {
                    Quick::Paused(remaining)
                } else {
                    Quick::Refuse(remaining)
                };
            }
            local.paused_until = None;
        }
        if local.leased > 0 {
            if now < local.lease_expires {
                local.leased -= 1;
                return Quick::Go;
            }
            local.leased = 0;
        }
        if use_store {
            return Quick::Store;
        }
        let rate = if self.store.is_some() {
            self.fallback
        } else {
            self.rate
        };
        let (tat, grant) = gcra::take(local.tat_us, now_us, rate, 1, micros(max_wait));
        local.tat_us = tat;
        match grant {
            Grant {
                turns: 0, wait_us, ..
            } => Quick::Refuse(Duration::from_micros(wait_us)),
            Grant { wait_us: 0, .. } => Quick::Go,
            Grant { wait_us, .. } => Quick::Wait(Duration::from_micros(wait_us)),
        }
    }

    /// A turn without waiting or a round trip, when there is one: the
    /// attempt then goes at once, with nothing allocated.
    pub(crate) fn try_now(&self, key: &str) -> bool {
        let now = Instant::now();
        let use_store = self.store_usable(now);
        matches!(self.quick(key, now, Duration::ZERO, use_store), Quick::Go)
    }

    /// A turn for an attempt to `key`: Ok when it may go (after any wait),
    /// `rate_limited` when none comes within what it may wait.
    ///
    /// One round trip per key is in flight at a time. An attempt that finds
    /// one waits for it at most `redis_timeout` (the longest that round trip
    /// can take) and never past its deadline; while the store is down (the
    /// round trip in flight is the one that tries it again) it does not wait
    /// at all. Either way, an attempt that gets no turn from the store limits
    /// itself locally at once: a silent store costs one attempt per key
    /// `redis_timeout`, and the attempts behind it nothing more.
    pub(crate) async fn acquire(
        self: Arc<Self>,
        key: Arc<str>,
        deadline: Option<Instant>,
    ) -> Result<(), Error> {
        // Each pass either returns or waits out a pause; a few suffice.
        for _ in 0..8 {
            let asked = Instant::now();
            let use_store = self.store_usable(asked);
            let quick = self.quick(&key, asked, self.max_wait(asked, deadline), use_store);
            let (Quick::Store, Some(store)) = (&quick, &self.store) else {
                match Self::settle(quick).await {
                    Some(result) => return result,
                    None => continue,
                }
            };
            let Some(gate) = self.gate(&key) else {
                continue;
            };
            let turn = match Arc::clone(&gate).try_lock_owned() {
                Ok(turn) => Some(turn),
                Err(_) if self.store_down() => None,
                Err(_) => {
                    let until = bounded(asked + self.settings.redis_timeout, deadline);
                    tokio::time::timeout_at(until, gate.lock_owned()).await.ok()
                }
            };
            // The round trip this attempt waited for may have leased turns,
            // or marked the store down: then there is nothing to ask it.
            let now = Instant::now();
            let max_wait = self.max_wait(now, deadline);
            let use_store = turn.is_some() && self.store_usable(now);
            match self.quick(&key, now, max_wait, use_store) {
                Quick::Store => {}
                quick => match Self::settle(quick).await {
                    Some(result) => return result,
                    None => continue,
                },
            }
            let request = Acquire {
                rate: self.rate,
                turns: self.settings.lease,
                max_wait_us: micros(max_wait),
            };
            let given_up = now + self.settings.redis_timeout;
            let until = bounded(given_up, deadline);
            let grant = match tokio::time::timeout_at(until, store.acquire(&key, request)).await {
                Ok(Ok(grant)) => grant,
                Ok(Err(error)) => {
                    self.store_failed(&error.to_string());
                    continue;
                }
                // Cut by the call's deadline, not by the store: the store
                // is not to blame, and the local limiter answers at once.
                Err(_) if until < given_up => {
                    drop(turn);
                    let now = Instant::now();
                    let quick = self.quick(&key, now, self.max_wait(now, deadline), false);
                    match Self::settle(quick).await {
                        Some(result) => return result,
                        None => continue,
                    }
                }
                Err(_) => {
                    self.store_failed("no answer within rate_limit.redis_timeout");
                    continue;
                }
            };
            self.store_answered();
            let now = Instant::now();
            if grant.paused {
                self.pause_here(&key, now + Duration::from_micros(grant.wait_us));
                continue;
            }
            if grant.turns == 0 {
                return Err(Error::rate_limited(Some(Duration::from_micros(
                    grant.wait_us,
                ))));
            }
            if grant.turns > 1 {
                if let Some(local) = lock(&self.keys).get_mut(&*key) {
                    local.leased = grant.turns - 1;
                    local.lease_expires = now + LEASE_TTL;
                }
            }
            drop(turn);
            if grant.wait_us > 0 {
                // Whatever the store says, never past the deadline.
                let turn_at = now + Duration::from_micros(grant.wait_us);
                tokio::time::sleep_until(bounded(turn_at, deadline)).await;
            }
            return Ok(());
        }
        Err(Error::rate_limited(None))
    }

    /// Acts on a decision that needs no round trip; `None` to decide again
    /// (after a pause, or when the store is to be asked). Its waits were
    /// bounded by the call's deadline when it was made.
    async fn settle(quick: Quick) -> Option<Result<(), Error>> {
        match quick {
            Quick::Go => Some(Ok(())),
            Quick::Wait(wait) => {
                // A local reservation: the turn is ours after the wait.
                tokio::time::sleep(wait).await;
                Some(Ok(()))
            }
            Quick::Paused(wait) => {
                tokio::time::sleep(wait).await;
                None
            }
            Quick::Refuse(wait) => Some(Err(Error::rate_limited(Some(wait)))),
            Quick::Store => None,
        }
    }

    /// The gate of `key`'s round trips.
    fn gate(&self, key: &str) -> Option<Arc<tokio::sync::Mutex<()>>> {
        lock(&self.keys)
            .get(key)
            .map(|local| Arc::clone(&local.gate))
    }

    /// Whether the store failed and has not answered since.
    fn store_down(&self) -> bool {
        lock(&self.health).down_since.is_some()
    }

    /// A `429` said to wait `pause`: this process waits, and, with a store,
    /// every process that shares the key.
    pub(crate) async fn pause(self: Arc<Self>, key: Arc<str>, pause: Duration) {
        let pause = pause.min(self.settings.max_pause);
        self.pause_here(&key, Instant::now() + pause);
        let Some(store) = self.store.as_ref() else {
            return;
        };
        if !self.store_usable(Instant::now()) {
            return;
        }
        match tokio::time::timeout(self.settings.redis_timeout, store.pause(&key, pause)).await {
            Ok(Ok(())) => self.store_answered(),
            Ok(Err(error)) => self.store_failed(&error.to_string()),
            Err(_) => self.store_failed("no answer within rate_limit.redis_timeout"),
        }
    }

    fn pause_here(&self, key: &str, until: Instant) {
        if let Some(local) = lock(&self.keys).get_mut(key) {
            local.paused_until = Some(local.paused_until.map_or(until, |p| p.max(until)));
            local.leased = 0;
        }
    }

    fn store_failed(&self, why: &str) {
        let now = Instant::now();
        let first = {
            let mut health = lock(&self.health);
            health.retry_at = Some(now + STORE_RETRY);
            let first = health.down_since.is_none();
            if first {
                health.down_since = Some(now);
                health.fallbacks += 1;
            }
            first
        };
        if first {
            tracing::warn!(
                key = self.settings.key.as_str(),
                error = why,
                fallback_per_second = self.settings.fallback_per_second,
                "rate limit store unreachable: limiting locally"
            );
            self.emit(false, Some(why));
        }
    }

    fn store_answered(&self) {
        let back = {
            let mut health = lock(&self.health);
            health.retry_at = None;
            let back = health.down_since.take().is_some();
            if back {
                health.returns += 1;
            }
            back
        };
        if back {
            tracing::info!(
                key = self.settings.key.as_str(),
                "rate limit store reachable again: limiting with it"
            );
            self.emit(true, None);
        }
    }

    fn emit(&self, shared: bool, error: Option<&str>) {
        if self.listeners.is_some() {
            let event = RateLimitBackend {
                key: &self.settings.key,
                shared,
                error,
            };
            self.listeners.emit(|l| l.rate_limit_backend(&event));
        }
    }

    /// Times the limiter fell back to its local limit, and came back.
    pub(crate) fn fallbacks(&self) -> (u64, u64) {
        let health = lock(&self.health);
        (health.fallbacks, health.returns)
    }
}

/// `at`, or the deadline when that comes first.
fn bounded(at: Instant, deadline: Option<Instant>) -> Instant {
    deadline.map_or(at, |deadline| at.min(deadline))
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::RateLimitSettings;

    fn limiter() -> Limiter {
        // One turn a second, one at once: a key that took its turn has its
        // next one a second away.
        let settings = RateLimitSettings::builder()
            .per_second(1.0)
            .burst(1)
            .build()
            .unwrap();
        Limiter::new(settings, None, Listeners::default())
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweep_at_4096_keys_forgets_only_idle_ones() {
        let limiter = limiter();
        for i in 0..MAX_KEYS / 2 - 2 {
            assert!(limiter.try_now(&format!("idle-{i}")));
        }
        // Idle by its turns, but a round trip is in flight for it.
        assert!(limiter.try_now("in-flight"));
        let gate = limiter.gate("in-flight").unwrap();
        assert!(limiter.try_now("paused"));
        limiter.pause_here("paused", Instant::now() + Duration::from_secs(30));
        // The keys above have their next turns now; the busy keys a second
        // from now.
        tokio::time::advance(Duration::from_secs(2)).await;
        for i in 0..MAX_KEYS / 2 {
            assert!(limiter.try_now(&format!("busy-{i}")));
        }
        assert_eq!(lock(&limiter.keys).len(), MAX_KEYS);

        // The 4,097th key sweeps.
        assert!(limiter.try_now("new"));
        let kept = lock(&limiter.keys).len();
        assert_eq!(kept, MAX_KEYS / 2 + 3, "busy, paused, in flight, new");
        for i in 0..MAX_KEYS / 2 {
            assert!(
                !limiter.try_now(&format!("busy-{i}")),
                "busy-{i} kept its limit: no fresh burst"
            );
        }
        assert!(!limiter.try_now("paused"), "the pause holds");
        let in_flight = limiter.gate("in-flight").unwrap();
        assert!(Arc::ptr_eq(&gate, &in_flight), "one gate: one round trip");
        assert!(
            !lock(&limiter.keys).contains_key("idle-0"),
            "idle keys are forgotten"
        );
        drop((gate, in_flight));

        // Half the keys in use: the next sweep waits for twice as many as
        // the sweep kept (the new key came after it), rather than sweeping
        // on every new key.
        assert_eq!(limiter.sweep_at.load(Ordering::Relaxed), 2 * (kept - 1));
    }
}
