//! [`MailStore`]: the typed mail layer over any [`Store`]: opening, the
//! locks, typed reads and the batch builder the other modules share.
//!
//! Every operation reads what it needs, builds one [`Batch`] and writes it
//! once, so a crash or an engine error leaves all of a change or none of
//! it. Counters (UIDNEXT, modseq, used bytes) are read-modify-write, so
//! operations that change an account hold that account's lock — one of a
//! fixed set of `std::sync::Mutex` stripes — for the read, the batch build
//! and the write; no lock is ever held while hashing a password. Changes
//! to the address directory (accounts, aliases, lists) also hold the
//! directory lock, taken before any account lock.
//!
//! The sibling modules `accounts`, `mailbox`, `message`, `certs`, `lists`
//! and `log` add the methods to [`MailStore`].

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::accounts::AccountRecord;
use super::error::{bug, corrupt, MailError};
use super::keys::Key;
use super::log::{ChangeKind, ChangedObject};
use super::master_key::MasterKey;
use super::records::{decode, encode, AccountId, Record};
use super::{Batch, Cf, KeyRange, Order, RocksStore, Store};

/// Account lock stripes. A list fan-out locks a chunk of 64 accounts
/// through its synced write; with 64 stripes every chunk took every
/// stripe, so the chunks of one list wrote one after another and the
/// cores sat idle during each sync. With 16,384 (128 KiB of mutexes) two
/// chunks of random accounts share a stripe about one time in five.
const LOCK_STRIPES: usize = 16_384;

/// The mail store: accounts, mailboxes, messages, certificates, lists and
/// logs over an `Arc<dyn Store>`. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MailStore {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) master_key: MasterKey,
    directory: Mutex<()>,
    stripes: Vec<Mutex<()>>,
    /// Quota of accounts without one of their own (`limits.account_quota`).
    pub(crate) default_quota: Option<u64>,
}

impl MailStore {
    /// Opens the RocksDB store at `data_dir/db` with the master key
    /// `data_dir/master.key` (created if missing).
    pub fn open(data_dir: &Path) -> Result<Self, MailError> {
        Self::open_with_master_key(data_dir, &data_dir.join("master.key"))
    }

    /// Opens the RocksDB store at `data_dir/db` with the master key file
    /// `master_key` (created, mode 0600, if missing); kept apart from the
    /// data directory, a copy of `db/` alone does not reveal list keys.
    pub fn open_with_master_key(data_dir: &Path, master_key: &Path) -> Result<Self, MailError> {
        let store = RocksStore::open(data_dir)?;
        let key = MasterKey::load_or_create(master_key)?;
        Ok(Self::new(Arc::new(store), key))
    }

    /// The same store with `quota` (bytes; `None`: unlimited) for every
    /// account that has no quota of its own.
    #[must_use]
    pub fn with_default_quota(mut self, quota: Option<u64>) -> Self {
        self.default_quota = quota;
        self
    }

    /// A mail store over any engine.
    pub fn new(store: Arc<dyn Store>, master_key: MasterKey) -> Self {
        Self {
            store,
            master_key,
            directory: Mutex::new(()),
            stripes: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            default_quota: None,
        }
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<dyn Store> {
        &self.store
    }

    // why: the mutexes guard `()`; all state is in the store, so a panic in
    // another holder leaves nothing half-updated in memory to be poisoned.
    pub(crate) fn lock_account(&self, id: AccountId) -> MutexGuard<'_, ()> {
        let stripe = usize::try_from(id.0).unwrap_or(0) % LOCK_STRIPES;
        match self.stripes.get(stripe) {
            Some(m) => m.lock().unwrap_or_else(PoisonError::into_inner),
            None => self
                .directory
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Locks several accounts, in stripe order so that two callers with
    /// overlapping sets cannot deadlock.
    pub(crate) fn lock_accounts(&self, ids: &[AccountId]) -> Vec<MutexGuard<'_, ()>> {
        let mut stripes: Vec<usize> = ids
            .iter()
            .map(|id| usize::try_from(id.0).unwrap_or(0) % LOCK_STRIPES)
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .filter_map(|i| self.stripes.get(i))
            .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner))
            .collect()
    }

    pub(crate) fn lock_directory(&self) -> MutexGuard<'_, ()> {
        self.directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn load<R: Record>(&self, key: &Key) -> Result<Option<R>, MailError> {
        let cf = key.cf();
        match self.store.get(cf, &key.encode())? {
            Some(bytes) => Ok(Some(decode(cf, &bytes)?)),
            None => Ok(None),
        }
    }

    /// Decodes every record of `range` in `cf`, with its parsed key.
    pub(crate) fn scan_records<R: Record>(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<(Key, R)>, MailError> {
        let rows = self.store.scan(cf, range, order, limit)?;
        rows.into_iter()
            .map(|(k, v)| {
                let key = Key::decode(cf, &k).ok_or_else(|| corrupt(cf, "undecodable key"))?;
                Ok((key, decode(cf, &v)?))
            })
            .collect()
    }
}

/// A batch under construction, with typed puts and change logging.
#[derive(Debug, Default)]
pub(crate) struct Tx {
    pub(crate) batch: Batch,
}

impl Tx {
    pub(crate) fn put<R: Record>(&mut self, key: &Key, value: &R) -> Result<(), MailError> {
        self.batch.put(key.cf(), key.encode(), encode(value)?);
        Ok(())
    }

    pub(crate) fn delete(&mut self, key: &Key) {
        self.batch.delete(key.cf(), key.encode());
    }

    /// Logs a change: bumps the account's modseq and returns it.
    pub(crate) fn change(
        &mut self,
        id: AccountId,
        rec: &mut AccountRecord,
        kind: ChangeKind,
        object: ChangedObject,
    ) -> Result<u64, MailError> {
        rec.modseq = rec
            .modseq
            .checked_add(1)
            .ok_or_else(|| bug("modseq overflow"))?;
        let change = super::log::Change {
            id: rec.modseq,
            kind,
            object,
        };
        self.put(&Key::Change(id, rec.modseq), &change)?;
        Ok(rec.modseq)
    }
}

/// Now, unix seconds.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
