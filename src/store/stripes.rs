//! A fixed set of mutexes, each guarding a slice of a key space (a
//! "stripe"): the mail layer's account locks and the RocksDB engine's key
//! locks. Several stripes are always taken in ascending order, so two
//! callers with overlapping sets cannot deadlock.

use std::sync::{Mutex, MutexGuard, PoisonError};

// why the mutexes guard `()`: the state is in the store, so a panic in
// another holder leaves nothing in memory half-updated to be poisoned.
#[derive(Debug)]
pub(crate) struct Stripes(Vec<Mutex<()>>);

impl Stripes {
    /// `count` stripes (at least one).
    pub(crate) fn new(count: usize) -> Self {
        Self((0..count.max(1)).map(|_| Mutex::new(())).collect())
    }

    /// The stripe of `slot` (any number: taken modulo the stripe count).
    fn index(&self, slot: u64) -> usize {
        // why no overflow: the remainder is below the stripe count, a usize.
        usize::try_from(slot % self.0.len() as u64).unwrap_or(0)
    }

    /// Locks the stripe of `slot`.
    pub(crate) fn lock(&self, slot: u64) -> MutexGuard<'_, ()> {
        self.0[self.index(slot)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the stripes of `slots`, each once, in stripe order.
    pub(crate) fn lock_all(&self, slots: impl Iterator<Item = u64>) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = slots.map(|s| self.index(s)).collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|i| self.0[i].lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Stripes;

    #[test]
    fn overlapping_sets_lock_each_stripe_once() {
        let s = Stripes::new(4);
        // 1 and 5 share a stripe: taking both must not deadlock on itself.
        let held = s.lock_all([5, 1, 2, 1].into_iter());
        assert_eq!(held.len(), 2);
        drop(held);
        let _one = s.lock(6);
        assert!(s.0[2].try_lock().is_err());
        assert!(s.0[1].try_lock().is_ok());
    }
}
