//! The keys unlocked on this node, by account.
//!
//! An IMAP session holds its account's keys with a [`Hold`] for as long
//! as it is logged in; when the last hold of an account goes, its keys
//! are forgotten at once. JMAP requests hold nothing (each brings the
//! password again): their keys stay for [`IDLE`] after the last use,
//! then [`Keyring::sweep`] forgets them. Forgetting drops the ring's
//! reference; the keys are zeroised when the last in-flight reply using
//! them is done.
//!
//! A removed key or reading switched off is forgotten at once on the node
//! that made the change (`forget`). Other nodes on the same PostgreSQL
//! hear of it through the change notifications (the store announces an
//! `EncryptionSettings` change, the bus carries it): while a node holds an
//! account's keys, a watcher task listens for that account and checks its
//! reading status in the store on each such change ([`Keyring::watch`]).
//! The sweep checks every held account once a minute as well, in case a
//! notification was lost.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, oneshot};

use super::Unlocked;
use crate::notify::{DataTypes, Notifier};
use crate::store::{AccountId, MailStore};

/// How long keys no session holds stay after their last use.
pub(crate) const IDLE: Duration = Duration::from_secs(15 * 60);
/// How often the sweeper runs.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Unlocked keys by account.
#[derive(Debug, Default)]
pub struct Keyring {
    // why: a std Mutex, held for one map operation, never across an await.
    slots: Mutex<HashMap<AccountId, Slot>>,
    /// The generation of the next new slot.
    next_generation: std::sync::atomic::AtomicU64,
    /// What a slot's watcher needs; unset (no watchers) until the server
    /// calls [`Keyring::watch`].
    watching: std::sync::OnceLock<Watching>,
}

/// The notifier to listen to, the store to check, the runtime to run on.
#[derive(Debug)]
struct Watching {
    notifier: Arc<Notifier>,
    store: Arc<MailStore>,
    runtime: tokio::runtime::Handle,
}

#[derive(Debug)]
struct Slot {
    keys: Arc<Unlocked>,
    holders: usize,
    used: Instant,
    /// New for every slot made after none was there, so a hold taken on
    /// forgotten keys does not release keys unlocked since.
    generation: u64,
    /// Dropped with the slot, which ends its watcher.
    _watcher: Option<oneshot::Sender<()>>,
}

/// An IMAP session's claim on its account's keys; released on drop.
#[derive(Debug)]
pub struct Hold {
    ring: Arc<Keyring>,
    account: AccountId,
    generation: u64,
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut slots = self.ring.lock();
        let last = match slots.get_mut(&self.account) {
            Some(slot) if slot.generation == self.generation => {
                slot.holders = slot.holders.saturating_sub(1);
                slot.holders == 0
            }
            _ => false,
        };
        if last {
            slots.remove(&self.account);
        }
    }
}

impl Hold {
    /// The keys, while they are held (not forgotten since).
    pub fn keys(&self) -> Option<Arc<Unlocked>> {
        let mut slots = self.ring.lock();
        let slot = slots
            .get_mut(&self.account)
            .filter(|s| s.generation == self.generation)?;
        slot.used = Instant::now();
        Some(Arc::clone(&slot.keys))
    }
}

impl Keyring {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The account's keys, if unlocked; marks them used.
    pub fn get(&self, account: AccountId) -> Option<Arc<Unlocked>> {
        let mut slots = self.lock();
        let slot = slots.get_mut(&account)?;
        slot.used = Instant::now();
        Some(Arc::clone(&slot.keys))
    }

    /// Holds `keys` for `account` (replacing ones held; their holds carry
    /// over) and returns them.
    pub fn insert(self: &Arc<Self>, account: AccountId, keys: Unlocked) -> Arc<Unlocked> {
        self.put(account, keys, 0).0
    }

    /// As [`Keyring::insert`], with a hold for a session taken at once.
    pub fn insert_held(self: &Arc<Self>, account: AccountId, keys: Unlocked) -> Hold {
        let generation = self.put(account, keys, 1).1;
        Hold {
            ring: Arc::clone(self),
            account,
            generation,
        }
    }

    /// Puts `keys` with `more` holders added; their Arc and generation.
    fn put(
        self: &Arc<Self>,
        account: AccountId,
        keys: Unlocked,
        more: usize,
    ) -> (Arc<Unlocked>, u64) {
        let keys = Arc::new(keys);
        let mut slots = self.lock();
        let (holders, generation, watcher) = match slots.remove(&account) {
            Some(old) => (old.holders, old.generation, old._watcher),
            None => {
                let generation = self
                    .next_generation
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                (0, generation, self.spawn_watcher(account))
            }
        };
        slots.insert(
            account,
            Slot {
                keys: Arc::clone(&keys),
                holders: holders + more,
                used: Instant::now(),
                generation,
                _watcher: watcher,
            },
        );
        (keys, generation)
    }

    /// A hold on the account's keys for a session, when they are
    /// unlocked.
    pub fn hold(self: &Arc<Self>, account: AccountId) -> Option<Hold> {
        let mut slots = self.lock();
        let slot = slots.get_mut(&account)?;
        slot.holders += 1;
        Some(Hold {
            ring: Arc::clone(self),
            account,
            generation: slot.generation,
        })
    }

    /// Forgets the account's keys now (reading off, key removed, password
    /// reset); sessions then serve mail as stored.
    pub fn forget(&self, account: AccountId) {
        self.lock().remove(&account);
    }

    /// Drops one key of the account's (it was removed); the others stay.
    pub fn drop_key(&self, account: AccountId, certificate: crate::certs::Fingerprint) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(&account) else {
            return;
        };
        let rest = slot.keys.without(certificate);
        if rest.is_empty() {
            slots.remove(&account);
        } else {
            slot.keys = Arc::new(rest);
        }
    }

    /// Starts watching: from now on every account whose keys are unlocked
    /// has a task that re-checks its reading status when another node
    /// (or this one) announces an `EncryptionSettings` change of it. Call
    /// once, inside the runtime.
    pub fn watch(&self, notifier: Arc<Notifier>, store: Arc<MailStore>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let _ = self.watching.set(Watching {
            notifier,
            store,
            runtime,
        });
    }

    /// The watcher of a new slot of `account`: its end (dropped with the
    /// slot), or `None` when not watching.
    fn spawn_watcher(self: &Arc<Self>, account: AccountId) -> Option<oneshot::Sender<()>> {
        let w = self.watching.get()?;
        // why subscribe here, not in the task: a change announced between
        // this unlock and the task's first poll must not be missed.
        let mut changes = w.notifier.subscribe(account);
        let (end, mut ended) = oneshot::channel::<()>();
        let store = Arc::clone(&w.store);
        let ring = Arc::downgrade(self);
        w.runtime.spawn(async move {
            loop {
                let check = tokio::select! {
                    _ = &mut ended => return,
                    change = changes.recv() => match change {
                        Ok(types) => types.intersects(DataTypes::ENCRYPTION_SETTINGS),
                        Err(broadcast::error::RecvError::Lagged(_)) => true,
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                };
                if !check {
                    continue;
                }
                let Some(ring) = ring.upgrade() else {
                    return;
                };
                let store = Arc::clone(&store);
                let _ = tokio::task::spawn_blocking(move || ring.check(&store, account)).await;
            }
        });
        Some(end)
    }

    /// Whether any keys of `account` are held (tests, status).
    pub fn holds(&self, account: AccountId) -> bool {
        self.lock().contains_key(&account)
    }

    /// Blocking: forgets keys idle past [`IDLE`] that no session holds,
    /// and those whose account no longer reads on the server (changed on
    /// another node) or no longer holds that key.
    pub fn sweep(&self, store: &MailStore) {
        let held: Vec<AccountId> = {
            let mut slots = self.lock();
            slots.retain(|_, s| s.holders > 0 || s.used.elapsed() < IDLE);
            slots.keys().copied().collect()
        };
        for account in held {
            self.check(store, account);
        }
    }

    /// Blocking: forgets the account's keys when the store says reading is
    /// off for it or one of the held keys was removed (maybe by another
    /// node); a removed key is dropped, the others stay.
    pub fn check(&self, store: &MailStore, account: AccountId) {
        let Some(keys) = self.lock().get(&account).map(|s| Arc::clone(&s.keys)) else {
            return;
        };
        match store.reading_status(account) {
            Ok(status) if status.enabled => {
                let gone: Vec<_> = keys
                    .certificates()
                    .filter(|fp| !status.keys.iter().any(|k| k.certificate == *fp))
                    .collect();
                for fp in gone {
                    self.drop_key(account, fp);
                }
            }
            Ok(_) => self.forget(account),
            Err(e) => {
                tracing::warn!(account = account.0, error = %e, "server-side reading status unreadable")
            }
        }
    }
}

/// Runs [`Keyring::sweep`] every [`SWEEP_EVERY`] until the process ends.
pub async fn sweeper(ring: Arc<Keyring>, store: Arc<MailStore>) {
    use crate::periodic::{every, First};
    every(SWEEP_EVERY, First::AtOnce, std::future::pending(), || {
        let (ring, store) = (Arc::clone(&ring), Arc::clone(&store));
        async move {
            let _ = tokio::task::spawn_blocking(move || ring.sweep(&store)).await;
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(account: u32) -> Unlocked {
        Unlocked::of(AccountId(account), Vec::new())
    }

    #[test]
    fn the_last_hold_forgets_the_keys() {
        let ring = Arc::new(Keyring::default());
        ring.insert(AccountId(1), keys(1));
        let a = ring.hold(AccountId(1)).unwrap();
        let b = ring.hold(AccountId(1)).unwrap();
        drop(a);
        assert!(ring.holds(AccountId(1)));
        drop(b);
        assert!(!ring.holds(AccountId(1)));
        assert!(ring.hold(AccountId(1)).is_none());
    }

    #[test]
    fn a_hold_on_forgotten_keys_does_not_release_new_ones() {
        let ring = Arc::new(Keyring::default());
        ring.insert(AccountId(1), keys(1));
        let old = ring.hold(AccountId(1)).unwrap();
        ring.forget(AccountId(1));
        ring.insert(AccountId(1), keys(1));
        let new = ring.hold(AccountId(1)).unwrap();
        drop(old);
        assert!(ring.holds(AccountId(1)));
        drop(new);
        assert!(!ring.holds(AccountId(1)));
    }

    #[test]
    fn accounts_are_apart() {
        let ring = Arc::new(Keyring::default());
        ring.insert(AccountId(1), keys(1));
        assert!(ring.get(AccountId(2)).is_none());
        assert!(ring.hold(AccountId(2)).is_none());
        ring.forget(AccountId(2));
        assert!(ring.holds(AccountId(1)));
    }
}
