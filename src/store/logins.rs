//! Successful logins remembered, so that a client that logs in again and
//! again (imaptest and mobile clients log in per sync, a JMAP client sends
//! its credentials with every request) pays the argon2id check once per
//! [`LOGIN_TTL`] instead of every time.
//!
//! What is kept: a salted SHA-256 of address and password (never the
//! password; the salt is random per process), the account it opened and
//! a stamp of the stored password hash (`accounts::stamp`). A
//! hit still loads the account and compares the stamp, so a removed
//! account or a changed password is refused at once, on every node of a
//! shared store. Only successes are kept: a wrong password costs the full
//! check every time, and the answer's time tells nothing it would not
//! tell anyway (only a right password can hit).
//!
//! Password checks also wait for one of [`LoginCache::slot`]'s slots, one
//! per core: each argon2id evaluation takes 19 MiB for its duration, so
//! without a bound a burst of logins (ten clients starting at once, or
//! thousands of unauthenticated connections sending LOGIN together) would
//! take 19 MiB per connection, up to the blocking pool's 512 threads.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::AccountId;

/// How long a successful check is remembered.
pub(crate) const LOGIN_TTL: Duration = Duration::from_secs(5 * 60);

/// Entries kept at most; the table is emptied when full (a spray of
/// distinct credentials cannot grow it, and real clients simply re-check).
const MAX_ENTRIES: usize = 10_000;

/// Successful credential checks, keyed by a salted hash of the credentials,
/// and the slots of the checks running at once.
#[derive(Debug)]
pub(crate) struct LoginCache {
    salt: [u8; 32],
    // why: a std Mutex, held for one map operation, never across an await.
    entries: Mutex<HashMap<[u8; 32], Remembered>>,
    slots: Semaphore,
}

/// A successful check: whose, against which password hash, when.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    id: AccountId,
    stamp: [u8; 32],
    at: Instant,
}

impl Default for LoginCache {
    fn default() -> Self {
        let mut salt = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Self::with_slots(salt, cores)
    }
}

impl LoginCache {
    fn with_slots(salt: [u8; 32], slots: usize) -> Self {
        Self {
            salt,
            entries: Mutex::default(),
            slots: Semaphore::new(slots),
        }
    }

    /// Waits for a slot for one password check (`check_login`), held
    /// until the permit is dropped. Callers take it on the async side,
    /// before the check goes to the blocking pool, so that waiting checks
    /// hold no pool thread.
    pub(crate) async fn slot(&self) -> Option<SemaphorePermit<'_>> {
        // why Option: the semaphore is never closed; were it, the check
        // would run unbounded rather than not at all.
        self.slots.acquire().await.ok()
    }

    /// The key of the credentials `address` and `password`.
    pub(crate) fn key(&self, address: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(address.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// Whether `key` opened account `id` against the password hash whose
    /// stamp is `stamp`, less than [`LOGIN_TTL`] ago.
    pub(crate) fn remembers(&self, key: &[u8; 32], id: AccountId, stamp: &[u8; 32]) -> bool {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .is_some_and(|r| r.id == id && &r.stamp == stamp && r.at.elapsed() < LOGIN_TTL)
    }

    /// Remembers that `key` opened account `id` against `stamp`.
    pub(crate) fn remember(&self, key: [u8; 32], id: AccountId, stamp: [u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        let at = Instant::now();
        entries.insert(key, Remembered { id, stamp, at });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_keyed_by_address_and_password_and_checks_the_stamp() {
        let cache = LoginCache::default();
        let key = cache.key("a@example.org", "right");
        assert_ne!(key, cache.key("a@example.org", "wrong"));
        assert_ne!(
            key,
            cache.key("a@example.orgr", "ight"),
            "the separator keeps fields apart"
        );
        assert_ne!(
            key,
            LoginCache::default().key("a@example.org", "right"),
            "salted per server"
        );
        assert!(!cache.remembers(&key, AccountId(7), &[1; 32]));
        cache.remember(key, AccountId(7), [1; 32]);
        assert!(cache.remembers(&key, AccountId(7), &[1; 32]));
        assert!(
            !cache.remembers(&key, AccountId(7), &[2; 32]),
            "new password"
        );
        assert!(
            !cache.remembers(&key, AccountId(8), &[1; 32]),
            "other account"
        );
        let wrong = cache.key("a@example.org", "wrong");
        assert!(!cache.remembers(&wrong, AccountId(7), &[1; 32]));
    }

    #[tokio::test]
    async fn no_more_checks_run_at_once_than_there_are_slots() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = std::sync::Arc::new(LoginCache::with_slots([0; 32], 2));
        let running = std::sync::Arc::new(AtomicUsize::new(0));
        let most = std::sync::Arc::new(AtomicUsize::new(0));
        let checks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, running, most) = (cache.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    let slot = cache.slot().await;
                    assert!(slot.is_some());
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for check in checks {
            check.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_full_cache_starts_over() {
        let cache = LoginCache::default();
        for i in 0..MAX_ENTRIES {
            cache.remember(
                cache.key(&format!("u{i}@example.org"), "pw"),
                AccountId(1),
                [0; 32],
            );
        }
        let first = cache.key("u0@example.org", "pw");
        assert!(cache.remembers(&first, AccountId(1), &[0; 32]));
        cache.remember(
            cache.key("one-more@example.org", "pw"),
            AccountId(1),
            [0; 32],
        );
        assert!(!cache.remembers(&first, AccountId(1), &[0; 32]));
        let len = cache.entries.lock().unwrap().len();
        assert_eq!(len, 1);
    }
}
