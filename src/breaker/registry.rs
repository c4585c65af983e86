//! The breakers of one layer, one per key, with a bound on how many.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use http::Uri;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::state::{
    Admission, BreakerSettings, BreakerState, Permit, StateMachine, Transition, Verdict,
};
use super::throttle::Throttle;
use crate::events::Listeners;
use crate::hash::{FastHash, fast_hash};
use crate::host_key::write_key;
use crate::rng::SharedRng;
use crate::stripes::Striped;

/// Which calls share a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Scope {
    /// One breaker per scheme, host and port.
    Host,
    /// One breaker for every call.
    Global,
}

/// One breaker: its state machine behind a lock held for a few instructions,
/// and a flag that lets a closed breaker admit a call without the lock.
///
/// Aligned to two cache lines so that, in its `Arc`, the reference count,
/// which every call through a clone of the stack writes, is alone on its
/// line: the flags every call reads then stay in each core's cache.
#[repr(align(128))]
pub(crate) struct Cell {
    pub(crate) key: Box<str>,
    pub(crate) settings: BreakerSettings,
    /// True while the state is closed or forced closed.
    closed: AtomicBool,
    /// True while one more success would change nothing but a count: closed,
    /// no failure in a row, and a full window without failures. A success
    /// then skips the lock.
    healthy: AtomicBool,
    /// Successes that took that way, added to the counters when they are
    /// read: striped, so that threads succeeding at once write apart.
    quiet_successes: Striped,
    /// Set when a call looks the breaker up; cleared by the eviction hand.
    used: AtomicBool,
    /// Set when the breaker leaves the registry, so that spellings still
    /// cached for it are looked up again.
    evicted: AtomicBool,
    machine: Mutex<StateMachine>,
    pub(crate) rng: SharedRng,
    /// Told of each change of state and each call refused.
    pub(crate) listeners: Listeners,
    /// The host's adaptive throttling, when it is on.
    pub(crate) throttle: Option<Throttle>,
    /// Wakes the calls waiting for a probe's verdict (`wait_for_probe`)
    /// when a probe ends or the state is forced or reset.
    pub(crate) verdicts: Arc<Notify>,
}

impl Cell {
    fn new(key: Box<str>, settings: BreakerSettings, seed: u64, listeners: Listeners) -> Self {
        Cell {
            key,
            settings,
            listeners,
            closed: AtomicBool::new(true),
            healthy: AtomicBool::new(false),
            quiet_successes: Striped::default(),
            used: AtomicBool::new(true),
            evicted: AtomicBool::new(false),
            machine: Mutex::new(StateMachine::new(settings)),
            rng: SharedRng::seeded(seed),
            throttle: settings
                .throttle
                .enabled()
                .then(|| Throttle::new(&settings.throttle, Instant::now())),
            verdicts: Arc::new(Notify::new()),
        }
    }

    pub(crate) fn machine(&self) -> MutexGuard<'_, StateMachine> {
        self.machine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sync(&self, machine: &StateMachine) {
        let closed = matches!(
            machine.state(),
            BreakerState::Closed | BreakerState::ForcedClosed
        );
        self.closed.store(closed, Ordering::Release);
        self.healthy.store(machine.is_healthy(), Ordering::Release);
    }

    /// The machine's counters, with the successes that skipped the lock.
    pub(crate) fn counters(&self, machine: &StateMachine) -> super::state::BreakerCounters {
        let mut counters = machine.counters();
        let quiet = self.quiet_successes.sum();
        counters.admitted += quiet;
        counters.successes += quiet;
        counters
    }

    /// Whether a call may go through. A closed breaker answers without its
    /// lock and without reading the clock.
    pub(crate) fn admit(
        &self,
        wait_until: impl FnOnce(Instant) -> Instant,
    ) -> (Admission, Option<Transition>) {
        // With breaking off (throttling alone) the machine never leaves
        // closed: nothing records into it.
        if self.closed.load(Ordering::Acquire) {
            return (Admission::Admit(Permit::Normal), None);
        }
        let mut machine = self.machine();
        let result = machine.admit(Instant::now(), wait_until);
        self.sync(&machine);
        result
    }

    /// Asks again for a call that waits for a probe's verdict; with the
    /// time left until the open breaker lets probes through, if it is open.
    pub(crate) fn resume(&self, ticket: u64) -> (Admission, Option<Transition>, Option<Duration>) {
        let now = Instant::now();
        let mut machine = self.machine();
        let (admission, transition) = machine.resume(now, ticket);
        self.sync(&machine);
        (admission, transition, machine.open_remaining(now))
    }

    /// A waiting call gave up.
    pub(crate) fn give_up(&self) {
        self.machine().give_up();
    }

    pub(crate) fn record(&self, permit: Permit, verdict: Verdict) -> Option<Transition> {
        if !self.settings.enabled {
            return None;
        }
        if verdict == Verdict::Success
            && permit == Permit::Normal
            && self.healthy.load(Ordering::Acquire)
        {
            self.quiet_successes.add(1);
            return None;
        }
        let transition = {
            let mut machine = self.machine();
            let transition = machine.record(permit, verdict, Instant::now, || self.rng.next_u64());
            self.sync(&machine);
            transition
        };
        if let Permit::Probe { .. } = permit {
            self.verdicts.notify_waiters();
        }
        transition
    }

    pub(crate) fn cancel(&self, permit: Permit) {
        self.machine().cancel(permit);
        if let Permit::Probe { .. } = permit {
            // The slot is free: a waiting call may take it.
            self.verdicts.notify_waiters();
        }
    }

    pub(crate) fn force(&self, open: bool) -> Option<Transition> {
        let transition = {
            let mut machine = self.machine();
            let transition = machine.force(open);
            self.sync(&machine);
            transition
        };
        self.verdicts.notify_waiters();
        transition
    }

    pub(crate) fn reset(&self) -> Option<Transition> {
        let transition = {
            let mut machine = self.machine();
            let transition = machine.reset();
            self.sync(&machine);
            transition
        };
        self.verdicts.notify_waiters();
        transition
    }
}

/// Every breaker of one layer and its clones.
pub(crate) struct Registry {
    settings: BreakerSettings,
    scope: Scope,
    max_hosts: usize,
    global: Arc<Cell>,
    hosts: RwLock<Hosts>,
    seeds: SharedRng,
    listeners: Listeners,
}

/// The breakers by key, and a cache from the authority exactly as requests
/// spell it (one map per scheme) to the breaker of its key, so that a call
/// finds its breaker without parsing or formatting anything.
struct Hosts {
    by_key: HashMap<Box<str>, Arc<Cell>, FastHash>,
    /// The same breakers as `by_key`, in the order the eviction hand visits
    /// them; a newcomer takes the place of the breaker it evicts.
    ring: Vec<Arc<Cell>>,
    /// Where the next eviction starts looking.
    hand: usize,
    /// Spellings may still point at evicted breakers (marked `evicted`):
    /// removing them at eviction would mean a search of these maps. They are
    /// bounded with the rest of the cache.
    http: HashMap<Box<str>, Arc<Cell>, FastHash>,
    https: HashMap<Box<str>, Arc<Cell>, FastHash>,
}

impl Hosts {
    fn alias_count(&self) -> usize {
        self.http.len() + self.https.len()
    }
}

/// Which alias map a request's scheme uses, if any.
fn alias_map<'a>(
    hosts: &'a Hosts,
    uri: &Uri,
) -> Option<&'a HashMap<Box<str>, Arc<Cell>, FastHash>> {
    let scheme = uri.scheme()?;
    if *scheme == http::uri::Scheme::HTTP {
        Some(&hosts.http)
    } else if *scheme == http::uri::Scheme::HTTPS {
        Some(&hosts.https)
    } else {
        None
    }
}

/// The longest authority a service remembers as its last host.
const LAST_HOST_BYTES: usize = 62;

/// The breaker of the host a service called last, by the scheme and the
/// authority as the request spelled them.
#[derive(Clone)]
pub(crate) struct LastHost {
    https: bool,
    len: u8,
    spelling: [u8; LAST_HOST_BYTES],
    cell: Arc<Cell>,
}

impl LastHost {
    fn spelling(&self) -> &[u8] {
        &self.spelling[..usize::from(self.len)]
    }
}

/// Keys longer than this are built on the heap; others on the stack.
const INLINE_KEY: usize = 256;

/// A fixed buffer that refuses to overflow, for keys built without allocating.
struct StackKey {
    bytes: [u8; INLINE_KEY],
    len: usize,
}

impl std::fmt::Write for StackKey {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        if end > INLINE_KEY {
            return Err(std::fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Registry {
    pub(crate) fn new(settings: BreakerSettings, seed: u64, listeners: Listeners) -> Self {
        let (scope, max_hosts) = (settings.scope, settings.max_hosts);
        let seeds = SharedRng::seeded(seed);
        let hosts = Hosts {
            by_key: HashMap::with_hasher(fast_hash(seeds.next_u64())),
            ring: Vec::new(),
            hand: 0,
            http: HashMap::with_hasher(fast_hash(seeds.next_u64())),
            https: HashMap::with_hasher(fast_hash(seeds.next_u64())),
        };
        Registry {
            settings,
            scope,
            max_hosts: max_hosts.max(1),
            global: Arc::new(Cell::new(
                "global".into(),
                settings,
                seeds.next_u64(),
                listeners.clone(),
            )),
            hosts: RwLock::new(hosts),
            seeds,
            listeners,
        }
    }

    /// The breaker for `uri`, made if it is new.
    #[inline]
    pub(crate) fn cell(&self, uri: &Uri) -> Arc<Cell> {
        if self.scope == Scope::Global {
            return Arc::clone(&self.global);
        }
        // The fast way: the authority as spelled, seen before.
        let authority = uri.authority().map(|a| a.as_str());
        if let Some(authority) = authority {
            let hosts = self
                .hosts
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(cell) = alias_map(&hosts, uri)
                .and_then(|map| map.get(authority))
                .filter(|cell| !cell.evicted.load(Ordering::Relaxed))
            {
                if !cell.used.load(Ordering::Relaxed) {
                    cell.used.store(true, Ordering::Relaxed);
                }
                return Arc::clone(cell);
            }
        }
        self.cell_slow(uri)
    }

    /// The breaker for `uri`, from `last` when the request goes where the
    /// previous one through the same service went: one comparison of the
    /// authority as spelled, no lock. A miss looks in the registry and
    /// remembers the answer.
    #[inline]
    pub(crate) fn cell_via(&self, uri: &Uri, last: &mut Option<LastHost>) -> Arc<Cell> {
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return self.cell(uri);
        };
        let https = *scheme == http::uri::Scheme::HTTPS;
        if !https && *scheme != http::uri::Scheme::HTTP {
            return self.cell(uri);
        }
        let authority = authority.as_str().as_bytes();
        if let Some(last) = last.as_ref() {
            if last.https == https
                && last.spelling() == authority
                && !last.cell.evicted.load(Ordering::Relaxed)
            {
                if !last.cell.used.load(Ordering::Relaxed) {
                    last.cell.used.store(true, Ordering::Relaxed);
                }
                return Arc::clone(&last.cell);
            }
        }
        let cell = self.cell(uri);
        // Userinfo is never kept (credentials stay out of long-lived state).
        if authority.len() <= LAST_HOST_BYTES && !authority.contains(&b'@') {
            let mut spelling = [0u8; LAST_HOST_BYTES];
            spelling[..authority.len()].copy_from_slice(authority);
            *last = Some(LastHost {
                https,
                len: authority.len() as u8,
                spelling,
                cell: Arc::clone(&cell),
            });
        }
        cell
    }

    #[cold]
    fn cell_slow(&self, uri: &Uri) -> Arc<Cell> {
        let mut stack = StackKey {
            bytes: [0; INLINE_KEY],
            len: 0,
        };
        let heap;
        let key: &str = if write_key(uri, &mut stack).is_ok() {
            // Only `&str`s were written, whole.
            std::str::from_utf8(&stack.bytes[..stack.len]).unwrap_or_default()
        } else {
            let mut long = String::new();
            let _ = write_key(uri, &mut long);
            heap = long;
            &heap
        };
        let cell = self.cell_for_key(key);
        // Remember the spelling, unless it carries userinfo: credentials are
        // not kept in a long-lived map.
        if let Some(authority) = uri.authority().map(|a| a.as_str()) {
            if !authority.contains('@') {
                let mut hosts = self
                    .hosts
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if hosts.alias_count() >= self.max_hosts.saturating_mul(4) {
                    // A cache, bounded: many spellings of few hosts start it over.
                    hosts.http.clear();
                    hosts.https.clear();
                }
                let still_there = hosts
                    .by_key
                    .get(&*cell.key)
                    .is_some_and(|c| Arc::ptr_eq(c, &cell));
                let scheme = uri.scheme();
                let map = if scheme == Some(&http::uri::Scheme::HTTP) {
                    Some(&mut hosts.http)
                } else if scheme == Some(&http::uri::Scheme::HTTPS) {
                    Some(&mut hosts.https)
                } else {
                    None
                };
                if let (Some(map), true) = (map, still_there) {
                    map.insert(authority.into(), Arc::clone(&cell));
                }
            }
        }
        cell
    }

    pub(crate) fn cell_for_key(&self, key: &str) -> Arc<Cell> {
        if self.scope == Scope::Global {
            return Arc::clone(&self.global);
        }
        {
            let hosts = self
                .hosts
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(cell) = hosts.by_key.get(key) {
                cell.used.store(true, Ordering::Relaxed);
                return Arc::clone(cell);
            }
        }
        let mut hosts = self
            .hosts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cell) = hosts.by_key.get(key) {
            return Arc::clone(cell);
        }
        let cell = Arc::new(Cell::new(
            key.into(),
            self.settings,
            self.seeds.next_u64(),
            self.listeners.clone(),
        ));
        if hosts.ring.len() >= self.max_hosts {
            let slot = evict_one(&mut hosts);
            hosts.ring[slot] = Arc::clone(&cell);
        } else {
            hosts.ring.push(Arc::clone(&cell));
        }
        hosts.by_key.insert(key.into(), Arc::clone(&cell));
        cell
    }

    /// Every breaker there is now.
    pub(crate) fn cells(&self) -> Vec<Arc<Cell>> {
        if self.scope == Scope::Global {
            return vec![Arc::clone(&self.global)];
        }
        let hosts = self
            .hosts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut cells: Vec<Arc<Cell>> = hosts.by_key.values().cloned().collect();
        cells.sort_by(|a, b| a.key.cmp(&b.key));
        cells
    }

    pub(crate) fn find(&self, key: &str) -> Option<Arc<Cell>> {
        if self.scope == Scope::Global {
            return Some(Arc::clone(&self.global));
        }
        let hosts = self
            .hosts
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        hosts.by_key.get(key).cloned()
    }
}

/// How many breakers one eviction looks at, at most: admitting a host costs
/// the same whether 100 or 100,000 breakers are kept.
const EVICTION_SCAN: usize = 64;

/// Makes room for one more breaker, and returns the place in the ring it
/// frees. A clock hand walks the ring: the one to go is the first closed
/// breaker no call has looked up since the hand last passed it, else the first
/// closed one, else the one under the hand, within [`EVICTION_SCAN`] places.
/// Open breakers go last, since they hold back calls to a failing host; one
/// is evicted only when every breaker within reach of the hand is open.
fn evict_one(hosts: &mut Hosts) -> usize {
    let len = hosts.ring.len();
    let start = hosts.hand % len;
    let mut closed = None;
    let mut idle_closed = None;
    for step in 0..len.min(EVICTION_SCAN) {
        let slot = (start + step) % len;
        let cell = &hosts.ring[slot];
        let was_used = cell.used.swap(false, Ordering::Relaxed);
        if cell.closed.load(Ordering::Relaxed) {
            if !was_used {
                idle_closed = Some(slot);
                break;
            }
            closed.get_or_insert(slot);
        }
    }
    let slot = idle_closed.or(closed).unwrap_or(start);
    hosts.hand = (slot + 1) % len;
    let gone = &hosts.ring[slot];
    gone.evicted.store(true, Ordering::Relaxed);
    hosts.by_key.remove(&*gone.key);
    slot
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn settings() -> BreakerSettings {
        BreakerSettings {
            consecutive_failures: 1,
            failure_rate: 0.0,
            window: 10,
            min_calls: 1,
            slow_call_duration: None,
            open_for: Duration::from_secs(1),
            max_open_for: Duration::from_secs(1),
            half_open_probes: 1,
            count_throttling: false,
            ..BreakerSettings::default()
        }
    }

    fn key(uri: &str) -> String {
        let mut out = String::new();
        write_key(&uri.parse().unwrap(), &mut out).unwrap();
        out
    }

    #[test]
    fn keys_are_scheme_host_and_port() {
        assert_eq!(key("http://API.Example/x?y"), "http://api.example:80");
        assert_eq!(key("https://api.example/x"), "https://api.example:443");
        assert_eq!(
            key("http://user:pw@api.example:8080/"),
            "http://api.example:8080"
        );
        assert_eq!(key("http://[::1]:9/"), "http://[::1]:9");
        assert_eq!(key("/relative"), "(no host)");
    }

    #[test]
    fn hosts_get_their_own_breakers_and_long_keys_work() {
        let r = Registry::new(
            BreakerSettings {
                scope: Scope::Host,
                max_hosts: 8,
                ..settings()
            },
            1,
            Listeners::default(),
        );
        let a = r.cell(&"http://a.example/".parse().unwrap());
        let b = r.cell(&"http://b.example/".parse().unwrap());
        let a_again = r.cell(&"http://A.EXAMPLE:80/other".parse().unwrap());
        assert!(Arc::ptr_eq(&a, &a_again));
        assert!(!Arc::ptr_eq(&a, &b));
        let long_host = format!("http://{}.example/", "h".repeat(300));
        let long = r.cell(&long_host.parse().unwrap());
        assert_eq!(long.key.len(), 7 + 300 + 8 + 3);
        assert!(Arc::ptr_eq(&long, &r.cell(&long_host.parse().unwrap())));
    }

    #[test]
    fn a_flood_of_hosts_is_bounded_and_open_breakers_are_kept() {
        let r = Registry::new(
            BreakerSettings {
                scope: Scope::Host,
                max_hosts: 16,
                ..settings()
            },
            1,
            Listeners::default(),
        );
        let failing = r.cell(&"http://failing.example/".parse().unwrap());
        failing.force(true);
        for i in 0..10_000 {
            r.cell(&format!("http://host{i}.example/").parse().unwrap());
        }
        assert_eq!(r.cells().len(), 16);
        let hosts = r.hosts.read().unwrap();
        assert_eq!(hosts.ring.len(), 16);
        let live = hosts
            .http
            .values()
            .filter(|cell| !cell.evicted.load(Ordering::Relaxed))
            .count();
        assert!(live <= 16, "spellings of live breakers: {live}");
        assert!(hosts.alias_count() <= 4 * 16, "the cache stays bounded");
        drop(hosts);
        let again = r
            .find("http://failing.example:80")
            .expect("the open breaker stayed");
        assert!(Arc::ptr_eq(&again, &failing));
    }

    #[test]
    fn a_spelling_of_an_evicted_host_finds_its_new_breaker() {
        let r = Registry::new(
            BreakerSettings {
                scope: Scope::Host,
                max_hosts: 2,
                ..settings()
            },
            1,
            Listeners::default(),
        );
        let a: Uri = "http://A.example/".parse().unwrap();
        let first = r.cell(&a);
        r.cell(&"http://b.example/".parse().unwrap());
        r.cell(&"http://c.example/".parse().unwrap());
        assert!(r.find("http://a.example:80").is_none(), "a was evicted");
        let again = r.cell(&a);
        assert!(
            !Arc::ptr_eq(&first, &again),
            "the evicted breaker is not used"
        );
        let kept = r.find("http://a.example:80").expect("a is back");
        assert!(Arc::ptr_eq(&kept, &again));
        assert_eq!(r.cells().len(), 2);
    }

    #[test]
    fn the_hand_evicts_idle_breakers_before_used_ones() {
        let r = Registry::new(
            BreakerSettings {
                scope: Scope::Host,
                max_hosts: 4,
                ..settings()
            },
            1,
            Listeners::default(),
        );
        let uris: Vec<Uri> = (0..4)
            .map(|i| format!("http://h{i}.example/").parse().unwrap())
            .collect();
        for uri in &uris {
            r.cell(uri);
        }
        // A first eviction clears every use flag on its way round.
        r.cell(&"http://new0.example/".parse().unwrap());
        // h1 is used again; h2 and h3 are not: h2 goes next, never h1.
        r.cell(&uris[1]);
        r.cell(&"http://new1.example/".parse().unwrap());
        assert!(r.find("http://h1.example:80").is_some());
        assert!(r.find("http://h2.example:80").is_none());
    }

    #[test]
    fn the_last_host_is_found_without_the_registry_and_follows_evictions() {
        let r = Registry::new(
            BreakerSettings {
                max_hosts: 1,
                ..settings()
            },
            1,
            Listeners::default(),
        );
        let mut last = None;
        let a: Uri = "http://a.example/x".parse().unwrap();
        let first = r.cell_via(&a, &mut last);
        assert!(last.is_some());
        assert!(Arc::ptr_eq(&first, &r.cell_via(&a, &mut last)));
        // Another scheme is another breaker, even for the same spelling.
        let https: Uri = "https://a.example/x".parse().unwrap();
        let other = r.cell_via(&https, &mut last);
        assert!(!Arc::ptr_eq(&first, &other));
        // With one breaker kept, that evicted the first: the remembered
        // breaker is not used again.
        let again = r.cell_via(&a, &mut last);
        assert!(!Arc::ptr_eq(&first, &again));
        assert!(Arc::ptr_eq(&again, &r.find("http://a.example:80").unwrap()));
        // Userinfo is never remembered.
        let mut fresh = None;
        r.cell_via(&"http://u:secret@b.example/".parse().unwrap(), &mut fresh);
        assert!(fresh.is_none());
    }

    #[test]
    fn global_scope_shares_one() {
        let r = Registry::new(
            BreakerSettings {
                scope: Scope::Global,
                max_hosts: 8,
                ..settings()
            },
            1,
            Listeners::default(),
        );
        let a = r.cell(&"http://a.example/".parse().unwrap());
        let b = r.cell(&"https://b.example/".parse().unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a.key, "global");
    }
}

#[cfg(test)]
mod alias_tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn spellings_of_one_host_share_its_breaker_and_stay_bounded() {
        let settings = BreakerSettings {
            consecutive_failures: 1,
            failure_rate: 0.0,
            window: 1,
            min_calls: 1,
            slow_call_duration: None,
            open_for: Duration::from_secs(1),
            max_open_for: Duration::from_secs(1),
            half_open_probes: 1,
            count_throttling: false,
            ..BreakerSettings::default()
        };
        let r = Registry::new(
            BreakerSettings {
                scope: Scope::Host,
                max_hosts: 4,
                ..settings
            },
            9,
            Listeners::default(),
        );
        let first = r.cell(&"http://api.example/".parse().unwrap());
        for spelling in [
            "http://API.example/",
            "http://api.EXAMPLE:80/",
            "http://Api.Example:80/x",
        ] {
            assert!(
                Arc::ptr_eq(&first, &r.cell(&spelling.parse().unwrap())),
                "{spelling}"
            );
        }
        // Userinfo is never cached.
        let with_user = r.cell(&"http://user:secret@api.example/".parse().unwrap());
        assert!(Arc::ptr_eq(&first, &with_user));
        let hosts = r.hosts.read().unwrap();
        assert!(hosts.http.keys().all(|k| !k.contains('@')));
        drop(hosts);
        // A flood of spellings of one host is bounded.
        for i in 0..1000 {
            let mut host = String::from("api.example");
            for (j, c) in host.clone().chars().enumerate() {
                if i & (1 << (j % 10)) != 0 {
                    host.replace_range(j..=j, &c.to_ascii_uppercase().to_string());
                }
            }
            r.cell(&format!("http://{host}:{}/", 80).parse().unwrap());
        }
        assert!(r.hosts.read().unwrap().alias_count() <= 16);
        assert_eq!(r.cells().len(), 1);
    }
}
