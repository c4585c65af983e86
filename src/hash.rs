//! The hash of the maps on the hot path (host names, routes, metric
//! series): foldhash, keyed per map.

/// The hasher of those maps: foldhash's fast hash, whose seed each map
/// draws at random, so that chosen host names cannot be made to collide.
pub(crate) type FastHash = foldhash::fast::FixedState;

/// The hasher of a map, keyed by `seed`.
#[inline]
pub(crate) fn fast_hash(seed: u64) -> FastHash {
    foldhash::fast::FixedState::with_seed(seed)
}
