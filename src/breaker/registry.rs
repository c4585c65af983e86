//! The breakers of one layer, one per key, with a bound on how many.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use http::Uri;
use tokio::time::Instant;

use super::state::{
    Admission, BreakerSettings, BreakerState, Permit, StateMachine, Transition, Verdict,
};
use crate::retry::SharedRng;

/// Which calls share a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One breaker per scheme, host and port.
    Host,
    /// One breaker for every call.
    Global,
}

/// One breaker: its state machine behind a lock held for a few instructions,
/// and a flag that lets a closed breaker admit a call without the lock.
pub(crate) struct Cell {
    pub(crate) key: Box<str>,
    /// True while the state is closed or forced closed.
    closed: AtomicBool,
    /// Set when a call looks the breaker up; cleared by the eviction sweep.
    used: AtomicBool,
    machine: Mutex<StateMachine>,
    rng: SharedRng,
}

impl Cell {
    fn new(key: Box<str>, settings: BreakerSettings, seed: u64) -> Self {
        Cell {
            key,
            closed: AtomicBool::new(true),
            used: AtomicBool::new(true),
            machine: Mutex::new(StateMachine::new(settings)),
            rng: SharedRng::seeded(seed),
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
    }

    /// Whether a call may go through. A closed breaker answers without its
    /// lock and without reading the clock.
    pub(crate) fn admit(&self) -> (Admission, Option<Transition>) {
        if self.closed.load(Ordering::Acquire) {
            return (Admission::Admit(Permit::Normal), None);
        }
        let mut machine = self.machine();
        let result = machine.admit(Instant::now());
        self.sync(&machine);
        result
    }

    pub(crate) fn record(&self, permit: Permit, verdict: Verdict) -> Option<Transition> {
        let mut machine = self.machine();
        let transition = machine.record(permit, verdict, Instant::now, || self.rng.next_u64());
        if transition.is_some() {
            self.sync(&machine);
        }
        transition
    }

    pub(crate) fn cancel(&self, permit: Permit) {
        self.machine().cancel(permit);
    }

    pub(crate) fn force(&self, open: bool) -> Option<Transition> {
        let mut machine = self.machine();
        let transition = machine.force(open);
        self.sync(&machine);
        transition
    }

    pub(crate) fn reset(&self) -> Option<Transition> {
        let mut machine = self.machine();
        let transition = machine.reset();
        self.sync(&machine);
        transition
    }
}

/// Every breaker of one layer and its clones.
pub(crate) struct Registry {
    pub(crate) settings: BreakerSettings,
    scope: Scope,
    max_hosts: usize,
    global: Arc<Cell>,
    hosts: RwLock<HashMap<Box<str>, Arc<Cell>>>,
    seeds: SharedRng,
}

/// Keys longer than this are built on the heap; others on the stack.
const INLINE_KEY: usize = 256;

/// The breaker key of a request: `scheme://host:port`, the host in lower case
/// and the port made explicit. Never the path, the query or userinfo.
pub(crate) fn write_key(uri: &Uri, out: &mut impl std::fmt::Write) -> std::fmt::Result {
    let Some(host) = uri.host() else {
        // A relative URI names no host: such calls share one breaker.
        return out.write_str("(no host)");
    };
    let scheme = uri.scheme_str().unwrap_or("http");
    let port = uri.port_u16().or(match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    });
    out.write_str(scheme)?;
    out.write_str("://")?;
    for c in host.chars() {
        out.write_char(c.to_ascii_lowercase())?;
    }
    if let Some(port) = port {
        write!(out, ":{port}")?;
    }
    Ok(())
}

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
    pub(crate) fn new(
        settings: BreakerSettings,
        scope: Scope,
        max_hosts: usize,
        seed: u64,
    ) -> Self {
        let seeds = SharedRng::seeded(seed);
        Registry {
            settings,
            scope,
            max_hosts: max_hosts.max(1),
            global: Arc::new(Cell::new("global".into(), settings, seeds.next_u64())),
            hosts: RwLock::new(HashMap::new()),
            seeds,
        }
    }

    /// The breaker for `uri`, made if it is new.
    pub(crate) fn cell(&self, uri: &Uri) -> Arc<Cell> {
        if self.scope == Scope::Global {
            return Arc::clone(&self.global);
        }
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
        self.cell_for_key(key)
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
            if let Some(cell) = hosts.get(key) {
                if !cell.used.load(Ordering::Relaxed) {
                    cell.used.store(true, Ordering::Relaxed);
                }
                return Arc::clone(cell);
            }
        }
        let mut hosts = self
            .hosts
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(cell) = hosts.get(key) {
            return Arc::clone(cell);
        }
        if hosts.len() >= self.max_hosts {
            evict_one(&mut hosts);
        }
        let cell = Arc::new(Cell::new(key.into(), self.settings, self.seeds.next_u64()));
        hosts.insert(key.into(), Arc::clone(&cell));
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
        let mut cells: Vec<Arc<Cell>> = hosts.values().cloned().collect();
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
        hosts.get(key).cloned()
    }
}

/// Makes room for one more breaker: the one to go is a closed breaker no call
/// has looked up since the last sweep, else any closed one, else any at all.
/// Open breakers go last, since they hold back calls to a failing host. Every
/// use flag is cleared on the way, so the next sweep sees fresh use.
fn evict_one(hosts: &mut HashMap<Box<str>, Arc<Cell>>) {
    let mut idle_closed = None;
    let mut closed = None;
    let mut any = None;
    for (key, cell) in hosts.iter() {
        let was_used = cell.used.swap(false, Ordering::Relaxed);
        let is_closed = cell.closed.load(Ordering::Relaxed);
        if is_closed && !was_used && idle_closed.is_none() {
            idle_closed = Some(key.clone());
        }
        if is_closed && closed.is_none() {
            closed = Some(key.clone());
        }
        if any.is_none() {
            any = Some(key.clone());
        }
    }
    if let Some(key) = idle_closed.or(closed).or(any) {
        hosts.remove(&key);
    }
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
        let r = Registry::new(settings(), Scope::Host, 8, 1);
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
        let r = Registry::new(settings(), Scope::Host, 16, 1);
        let failing = r.cell(&"http://failing.example/".parse().unwrap());
        failing.force(true);
        for i in 0..10_000 {
            r.cell(&format!("http://host{i}.example/").parse().unwrap());
        }
        assert_eq!(r.cells().len(), 16);
        let again = r
            .find("http://failing.example:80")
            .expect("the open breaker stayed");
        assert!(Arc::ptr_eq(&again, &failing));
    }

    #[test]
    fn global_scope_shares_one() {
        let r = Registry::new(settings(), Scope::Global, 8, 1);
        let a = r.cell(&"http://a.example/".parse().unwrap());
        let b = r.cell(&"https://b.example/".parse().unwrap());
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*a.key, "global");
    }
}
