//! Counters that every call adds to, split over cache lines so that
//! threads counting at once do not take turns owning one line.
//!
//! A relaxed `fetch_add` is cheap on one core and costly on several: each
//! core must own the counter's cache line to write it, so two threads
//! calling through one client pass the line back and forth on every call
//! (`cargo bench --bench threads`). A [`Striped`] counter gives each thread
//! a stripe of its own (by a number it is given when it first counts, so
//! that as many threads as there are stripes never share one), and sums
//! the stripes when read, which the counters here are only on slow paths:
//! when a retry is wanted, when a breaker's counters are asked for.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// One stripe, alone on its cache line and the next: some cores fetch
/// lines in pairs.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Stripe(AtomicU64);

/// A count split over stripes, one per thread (modulo their number).
#[derive(Debug)]
pub(crate) struct Striped {
    stripes: Box<[Stripe]>,
}

impl Default for Striped {
    fn default() -> Self {
        Striped {
            stripes: (0..stripes()).map(|_| Stripe::default()).collect(),
        }
    }
}

impl Striped {
    /// Adds `n`, on this thread's stripe.
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let at = thread_number() & (self.stripes.len() - 1);
        // The index is masked to the length, a power of two.
        if let Some(stripe) = self.stripes.get(at) {
            stripe.0.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The sum of every stripe: everything added before, and maybe some
    /// of what is added meanwhile, as one relaxed counter would say.
    pub(crate) fn sum(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }
}

/// How many stripes a counter has: the machine's cores, rounded up to a
/// power of two, at most 16 (2 KiB a counter).
fn stripes() -> usize {
    static STRIPES: OnceLock<usize> = OnceLock::new();
    *STRIPES.get_or_init(|| {
        std::thread::available_parallelism()
            .map_or(1, usize::from)
            .clamp(1, 16)
            .next_power_of_two()
    })
}

/// This thread's number: threads are numbered in the order they first
/// count.
#[inline]
fn thread_number() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static NUMBER: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NUMBER.with(|n| *n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sum_counts_every_add_of_every_thread() {
        let counter = Striped::default();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        counter.add(1);
                    }
                });
            }
        });
        counter.add(5);
        assert_eq!(counter.sum(), 80_005);
    }

    #[test]
    fn threads_take_stripes_in_turn() {
        let counter = Striped::default();
        let numbers: Vec<usize> = (0..4)
            .map(|_| std::thread::spawn(thread_number).join().unwrap())
            .collect();
        for pair in numbers.windows(2) {
            assert!(pair[1] > pair[0], "{numbers:?}");
        }
        assert!(counter.stripes.len().is_power_of_two());
        assert_eq!(std::mem::align_of::<Stripe>(), 128);
    }
}
