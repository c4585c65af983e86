//! The histogram handles a [`MetricsListener`](super::MetricsListener)
//! records into, kept per host, so that a call builds no labels.
//!
//! Why: through the `metrics` facade, each record names its series by its
//! labels, and the recorder finds the series from them: the labels are
//! built, their key hashed and compared label by label with the one kept.
//! For the two records of a call that came to more than the whole stack
//! (12,841 instructions per call recording into metrics-exporter-prometheus
//! against 3,998 without a listener; `STACK_LOOP=resilience_prometheus`). A
//! handle the recorder gave once records without any of it.
//!
//! The handles are found by the authority as the request spells it
//! (`api.example:8443`), which costs no parsing: the host and port that
//! label the series are worked out once, when the handle is asked for.
//! Hosts past the listener's `max_hosts` share the series of `_other`.
//!
//! Bounds: at most twice `max_hosts` spellings (many spellings of few
//! hosts start the cache over, as the breaker registry's do), and at most
//! [`MAX_SERIES_PER_HOST`] series for each. A series past that is recorded
//! as before, its labels built for each record: correct, only slower. An
//! authority with userinfo is never kept: credentials stay out of
//! long-lived state.
//!
//! A handle belongs to the recorder that gave it. The handles are taken
//! again when the recorder in force changes (a program that installs its
//! recorder after the first calls, a test's local recorder), and a handle
//! is used for at most [`REFRESH`]: a recorder that drops series idle for a
//! while (metrics-exporter-prometheus's `idle_timeout`) makes the series
//! again when it is asked for it, and a handle kept past the drop would
//! record into a series it no longer exports.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use metrics::{Histogram, Recorder};

use crate::hash::{FastHash, fast_hash};
use crate::rng::SharedRng;

/// Series kept per spelling and instrument: statuses, methods, outcomes
/// and routes vary, but a host sees a handful of their combinations.
pub(crate) const MAX_SERIES_PER_HOST: usize = 32;

/// The longest a handle is used before it is asked for again.
pub(crate) const REFRESH: Duration = Duration::from_secs(1);

/// Which recorder is in force on this thread now: its address, the same
/// for as long as it is installed.
pub(crate) fn recorder_in_force() -> usize {
    metrics::with_recorder(|r| std::ptr::from_ref::<dyn Recorder>(r).cast::<()>().addr())
}

/// Where a request went, as the cache knows it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Place<'a> {
    /// A named host, by its authority as the request spelled it.
    Spelled(&'a str),
    /// Any host past the listener's `max_hosts`.
    Other,
}

/// The handles of one instrument's series, by the authority of the
/// request and by `K`, what tells apart the series of one authority.
pub(crate) struct SeriesCache<K> {
    /// The most spellings kept.
    max_spellings: usize,
    kept: RwLock<Kept<K>>,
}

struct Kept<K> {
    /// The recorder the handles came from.
    recorder: usize,
    spelled: HashMap<Box<str>, Vec<Series<K>>, FastHash>,
    other: Vec<Series<K>>,
}

impl<K> Kept<K> {
    fn series(&self, place: Place<'_>) -> Option<&[Series<K>]> {
        match place {
            Place::Spelled(authority) => self.spelled.get(authority).map(Vec::as_slice),
            Place::Other => Some(&self.other),
        }
    }
}

struct Series<K> {
    key: K,
    histogram: Histogram,
    /// When the handle is to be asked for again.
    stale: Instant,
}

impl<K> SeriesCache<K> {
    /// A cache for a listener that names at most `max_hosts` hosts.
    pub(crate) fn new(max_hosts: usize) -> Self {
        SeriesCache {
            max_spellings: max_hosts.saturating_mul(2).max(1),
            kept: RwLock::new(Kept {
                recorder: 0,
                spelled: HashMap::with_hasher(fast_hash(SharedRng::from_entropy().next_u64())),
                other: Vec::new(),
            }),
        }
    }

    /// Records `value` into the series of `place` that `matches`, when a
    /// handle for it is kept from `recorder` and is not stale at `now`.
    /// False when not: the caller then asks the recorder and
    /// [`keep`](Self::keep)s the handle.
    #[inline]
    pub(crate) fn record(
        &self,
        place: Place<'_>,
        matches: impl Fn(&K) -> bool,
        value: f64,
        recorder: usize,
        now: Instant,
    ) -> bool {
        let kept = self.kept.read().unwrap_or_else(PoisonError::into_inner);
        if kept.recorder != recorder {
            return false;
        }
        let Some(series) = kept
            .series(place)
            .and_then(|all| all.iter().find(|s| matches(&s.key)))
        else {
            return false;
        };
        if now >= series.stale {
            return false;
        }
        series.histogram.record(value);
        true
    }

    /// Keeps the handle of the series `key` of `place`, taken from
    /// `recorder` at `now`, in place of the one it had; not when the
    /// spelling carries userinfo or its series are at their bound. A
    /// handle from another recorder than the one kept replaces them all.
    pub(crate) fn keep(
        &self,
        place: Place<'_>,
        key: K,
        histogram: Histogram,
        recorder: usize,
        now: Instant,
    ) where
        K: PartialEq,
    {
        if matches!(place, Place::Spelled(authority) if authority.contains('@')) {
            return;
        }
        let mut kept = self.kept.write().unwrap_or_else(PoisonError::into_inner);
        let kept = &mut *kept;
        if kept.recorder != recorder {
            kept.spelled.clear();
            kept.other.clear();
            kept.recorder = recorder;
        }
        let all = match place {
            Place::Other => &mut kept.other,
            Place::Spelled(authority) => {
                if !kept.spelled.contains_key(authority) && kept.spelled.len() >= self.max_spellings
                {
                    // A cache, bounded: many spellings start it over.
                    kept.spelled.clear();
                }
                kept.spelled.entry(authority.into()).or_default()
            }
        };
        let fresh = Series {
            key,
            histogram,
            stale: now.checked_add(REFRESH).unwrap_or(now),
        };
        if let Some(old) = all.iter_mut().find(|s| s.key == fresh.key) {
            *old = fresh;
        } else if all.len() < MAX_SERIES_PER_HOST {
            all.push(fresh);
        }
    }

    /// Spellings kept, and series kept in all.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        let kept = self.kept.read().unwrap_or_else(PoisonError::into_inner);
        let series = kept.spelled.values().map(Vec::len).sum::<usize>() + kept.other.len();
        (kept.spelled.len(), series)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use metrics::HistogramFn;

    use super::*;

    /// A histogram that counts its records.
    #[derive(Default)]
    struct Count(AtomicU64);

    impl HistogramFn for Count {
        fn record(&self, _value: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn counted() -> (Arc<Count>, Histogram) {
        let count = Arc::new(Count::default());
        (Arc::clone(&count), Histogram::from_arc(count))
    }

    #[test]
    fn a_kept_handle_records_until_it_is_stale_or_the_recorder_changes() {
        let cache = SeriesCache::<u16>::new(4);
        let (a, b) = (Place::Spelled("a"), Place::Spelled("b"));
        let now = Instant::now();
        assert!(!cache.record(a, |k| *k == 200, 1.0, 1, now), "none kept");
        let (count, histogram) = counted();
        cache.keep(a, 200, histogram, 1, now);
        assert!(cache.record(a, |k| *k == 200, 1.0, 1, now));
        assert!(cache.record(a, |k| *k == 200, 1.0, 1, now + REFRESH / 2));
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        // Another series, another host, `_other`, another recorder, a
        // stale handle.
        assert!(!cache.record(a, |k| *k == 404, 1.0, 1, now));
        assert!(!cache.record(b, |k| *k == 200, 1.0, 1, now));
        assert!(!cache.record(Place::Other, |k| *k == 200, 1.0, 1, now));
        assert!(!cache.record(a, |k| *k == 200, 1.0, 2, now));
        assert!(!cache.record(a, |k| *k == 200, 1.0, 1, now + REFRESH));
        assert_eq!(count.0.load(Ordering::Relaxed), 2);
        // A handle taken again replaces the one kept.
        let (again, histogram) = counted();
        cache.keep(a, 200, histogram, 1, now + REFRESH);
        assert!(cache.record(a, |k| *k == 200, 1.0, 1, now + REFRESH));
        assert_eq!(again.0.load(Ordering::Relaxed), 1);
        assert_eq!(cache.size(), (1, 1));
        // A handle of another recorder drops every handle of the last.
        cache.keep(Place::Other, 200, counted().1, 2, now);
        assert_eq!(cache.size(), (0, 1));
        assert!(!cache.record(a, |k| *k == 200, 1.0, 2, now));
        assert!(cache.record(Place::Other, |k| *k == 200, 1.0, 2, now));
    }

    #[test]
    fn spellings_and_series_are_bounded_and_userinfo_is_never_kept() {
        let cache = SeriesCache::<u16>::new(2);
        let now = Instant::now();
        for host in 0..1000 {
            for status in 100..999 {
                let authority = format!("h{host}:80");
                cache.keep(Place::Spelled(&authority), status, counted().1, 1, now);
                cache.keep(Place::Other, status, counted().1, 1, now);
            }
        }
        let (spellings, series) = cache.size();
        assert!(spellings <= 4, "{spellings} spellings kept");
        assert!(series <= 5 * MAX_SERIES_PER_HOST, "{series} series kept");
        let cache = SeriesCache::<u16>::new(2);
        cache.keep(Place::Spelled("user:secret@h"), 200, counted().1, 1, now);
        assert_eq!(cache.size(), (0, 0));
    }
}
