//! The seedable random source behind jitter, and uniform draws from it.
//!
//! SplitMix64 (Steele, Lea and Flood, 2014): one 64-bit state advanced by a
//! constant, then mixed. Advancing is a single `fetch_add`, so one generator
//! is shared by every clone of a layer without a lock, and a seeded generator
//! gives the same sequence on every run of a single-threaded test.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A random source shared by all clones of a layer.
#[derive(Debug)]
pub(crate) struct SharedRng {
    state: AtomicU64,
}

impl SharedRng {
    pub(crate) fn seeded(seed: u64) -> Self {
        SharedRng {
            state: AtomicU64::new(seed),
        }
    }

    /// Seeded from the process's hash randomness, different on every run.
    pub(crate) fn from_entropy() -> Self {
        SharedRng::seeded(
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        )
    }

    pub(crate) fn next_u64(&self) -> u64 {
        mix(self
            .state
            .fetch_add(GAMMA, Ordering::Relaxed)
            .wrapping_add(GAMMA))
    }
}

/// Uniform in `[low, high)` (exactly `low` when the range is empty), by
/// integer arithmetic on nanoseconds: no rounding can leave the range.
pub(crate) fn between(low: Duration, high: Duration, random: u64) -> Duration {
    if high <= low {
        return low;
    }
    let span = (high - low).as_nanos();
    let offset = (span * u128::from(random)) >> 64;
    low + Duration::from_nanos(u64::try_from(offset).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_sequences_repeat_and_differ_by_seed() {
        let a: Vec<u64> = (0..5)
            .map({
                let r = SharedRng::seeded(7);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let r = SharedRng::seeded(7);
                move |_| r.next_u64()
            })
            .collect();
        let c: Vec<u64> = (0..5)
            .map({
                let r = SharedRng::seeded(8);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn the_reference_values_of_splitmix64() {
        // The first outputs for seed 0 of the reference implementation.
        let r = SharedRng::seeded(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn bits_are_roughly_balanced() {
        let r = SharedRng::seeded(42);
        let ones: u32 = (0..10_000).map(|_| r.next_u64().count_ones()).sum();
        let share = f64::from(ones) / (10_000.0 * 64.0);
        assert!((0.49..0.51).contains(&share), "{share}");
    }
}
