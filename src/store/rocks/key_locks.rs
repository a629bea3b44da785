//! Striped locks over keys: what makes [`super::RocksStore`]'s check of
//! expectations and its commit one step for conditional writes on the
//! same key. One process owns an embedded RocksDB (its `LOCK` file), so
//! in-process locks are all the embedded engine needs for the contract of
//! [`crate::store::Store::write_if`]; engines shared by several processes
//! check in the engine itself.

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::MutexGuard;

use crate::store::stripes::Stripes;
use crate::store::Cf;

/// Stripes. Two conditional writes of unrelated keys share a stripe one
/// time in 4,096 per key pair; a list fan-out chunk expects 64 version
/// keys, so two chunks of random accounts still mostly run side by side.
const STRIPES: usize = 4_096;

pub(super) struct KeyLocks {
    stripes: Stripes,
    hasher: std::collections::hash_map::RandomState,
}

impl KeyLocks {
    pub(super) fn new() -> Self {
        Self {
            stripes: Stripes::new(STRIPES),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Locks the stripes of `keys`, in stripe order so that two callers
    /// with overlapping keys cannot deadlock.
    pub(super) fn lock<'k>(
        &self,
        keys: impl Iterator<Item = (Cf, &'k [u8])>,
    ) -> Vec<MutexGuard<'_, ()>> {
        self.stripes.lock_all(keys.map(|(cf, key)| {
            let mut h = self.hasher.build_hasher();
            cf.hash(&mut h);
            key.hash(&mut h);
            h.finish()
        }))
    }
}
