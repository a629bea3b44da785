//! [`MailStore`]: the typed mail layer over any [`Store`]: opening, the
//! lock stripes and typed reads the other modules share.
//!
//! Every operation reads what it needs, builds one [`Batch`](super::Batch) and writes it
//! once, so a crash or an engine error leaves all of a change or none of
//! it. Counters (UIDNEXT, modseq, used bytes, account ids) are
//! read-modify-write; what keeps them right, also when several processes
//! share one engine, is the optimistic transaction of `txn`: every write
//! goes through one of its combinators (`update_account`,
//! `update_accounts`, `update_directory`), which commits with a
//! conditional write on the scope's version key and re-runs the change
//! from fresh reads when another writer got there first.
//!
//! The lock stripes here (a fixed set of `std::sync::Mutex`es per account,
//! one for the directory, taken before any account lock) are only a
//! conflict reducer: the combinators take them so that the writers of one
//! process queue instead of conflicting and retrying. Correctness does
//! not depend on them; two processes never share them. No lock is ever
//! held while hashing a password.
//!
//! The sibling modules `accounts`, `mailbox`, `message`, `certs`, `lists`
//! and `log` add the methods to [`MailStore`]; `announce` tells listeners
//! of each committed change.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use super::backup::LocalEngine;
use super::blobs::BlobStore;
use super::delivery_view::ViewCache;
use super::error::{bug, corrupt, MailError};
use super::keys::Key;
use super::master_key::MasterKey;
use super::records::{decode, AccountId, BlobHash, Record};
use super::stripes::Stripes;
use super::{Cf, EnginePair, KeyRange, Order, RocksStore, Store};
use crate::notify::Notifier;

/// Account lock stripes. A list fan-out locks a chunk of 64 accounts
/// through its synced write; with 64 stripes every chunk took every
/// stripe, so the chunks of one list wrote one after another and the
/// cores sat idle during each sync. With 16,384 (128 KiB of mutexes) two
/// chunks of random accounts share a stripe about one time in five.
const LOCK_STRIPES: usize = 16_384;

/// The mail store: accounts, mailboxes, messages, certificates, lists and
/// logs over an `Arc<dyn Store>`, message bodies in an `Arc<dyn
/// BlobStore>`. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MailStore {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) master_key: MasterKey,
    directory: Mutex<()>,
    stripes: Stripes,
    /// Quota of accounts without one of their own (`limits.account_quota`).
    pub(crate) default_quota: Option<u64>,
    /// What deliveries read of recent recipients (`delivery_view`).
    pub(crate) views: ViewCache,
    /// Successful logins, so that a repeated one skips argon2id (`logins`).
    pub(crate) logins: super::logins::LoginCache,
    /// The embedded engine's files, for an online backup; `None` on an
    /// engine that backs itself up (PostgreSQL).
    pub(crate) local: Option<LocalEngine>,
    /// Where committed changes are announced (`announce`).
    pub(crate) notifier: RwLock<Option<Arc<Notifier>>>,
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
        let (db, blobs) = RocksStore::open_pair(data_dir)?;
        let key = MasterKey::load_or_create(master_key)?;
        let engine = EnginePair::new(Arc::clone(&db) as _, Arc::clone(&blobs) as _);
        let mut store = Self::new(engine, key);
        store.local = Some(LocalEngine::new(data_dir.to_path_buf(), db, blobs));
        store.upgrade()?;
        Ok(store)
    }

    /// The same store with `quota` (bytes; `None`: unlimited) for every
    /// account that has no quota of its own.
    #[must_use]
    pub fn with_default_quota(mut self, quota: Option<u64>) -> Self {
        self.default_quota = quota;
        self
    }

    /// A mail store over any engine: its metadata store and its blob
    /// store (see [`RocksStore::open_pair`] for the embedded pair).
    pub fn new(engine: EnginePair, master_key: MasterKey) -> Self {
        Self {
            store: engine.store,
            blobs: engine.blobs,
            master_key,
            directory: Mutex::new(()),
            stripes: Stripes::new(LOCK_STRIPES),
            default_quota: None,
            views: ViewCache::default(),
            logins: super::logins::LoginCache::default(),
            local: None,
            notifier: RwLock::default(),
        }
    }

    /// The engine underneath.
    pub fn engine(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The blob store underneath.
    pub fn blob_store(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The key for a new body `raw`: its digest, so that identical copies
    /// in an account share one body, unless the copy is `unique` (fresh
    /// ciphertext equals nothing) or the blob store is shared by several
    /// processes, where a digest key could be put again while another
    /// node deletes it (`blobs` module doc): then a random one.
    pub(crate) fn new_blob_key(&self, raw: &[u8], unique: bool) -> BlobHash {
        if self.is_random_blob_key(unique) {
            BlobHash::random()
        } else {
            BlobHash::of(raw)
        }
    }

    /// Whether [`MailStore::new_blob_key`] makes a random key (256 random
    /// bits: no other body has it, so it has no reference count yet).
    pub(crate) fn is_random_blob_key(&self, unique: bool) -> bool {
        unique || self.blobs.shared()
    }

    /// Removes bodies no `blob_refs` entry names (see the crash rule in
    /// `blobs`); returns how many went.
    pub fn collect_orphans(&self) -> Result<u64, MailError> {
        let store = &*self.store;
        let referenced = |keys: &[Vec<u8>]| -> Result<Vec<bool>, super::StoreError> {
            Ok(store
                .get_many(Cf::BlobRefs, keys)?
                .into_iter()
                .map(|v| v.is_some())
                .collect())
        };
        Ok(self.blobs.collect_orphans(&referenced)?)
    }

    pub(crate) fn lock_account(&self, id: AccountId) -> MutexGuard<'_, ()> {
        self.stripes.lock(id.0.into())
    }

    /// Locks several accounts, in stripe order so that two callers with
    /// overlapping sets cannot deadlock.
    pub(crate) fn lock_accounts(&self, ids: &[AccountId]) -> Vec<MutexGuard<'_, ()>> {
        self.stripes.lock_all(ids.iter().map(|id| id.0.into()))
    }

    pub(crate) fn lock_directory(&self) -> MutexGuard<'_, ()> {
        self.directory
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads one small key from the engine: the readiness check's proof
    /// that the store answers (an open handle alone proves nothing when
    /// the database behind it is gone).
    pub fn ping(&self) -> Result<(), MailError> {
        self.store.get(Cf::Meta, &Key::DirectoryVersion.encode())?;
        Ok(())
    }

    pub(crate) fn load<R: Record>(&self, key: &Key) -> Result<Option<R>, MailError> {
        let cf = key.cf();
        match self.store.get(cf, &key.encode())? {
            Some(bytes) => Ok(Some(decode(cf, &bytes)?)),
            None => Ok(None),
        }
    }

    /// The records of `keys`, all of one column family, in their order,
    /// read in one engine call (one round trip on PostgreSQL).
    pub(crate) fn load_many<R: Record>(&self, keys: &[Key]) -> Result<Vec<Option<R>>, MailError> {
        let Some(cf) = keys.first().map(Key::cf) else {
            return Ok(Vec::new());
        };
        if keys.iter().any(|k| k.cf() != cf) {
            return Err(bug("load_many over several column families").into());
        }
        let encoded: Vec<Vec<u8>> = keys.iter().map(Key::encode).collect();
        self.store
            .get_many(cf, &encoded)?
            .into_iter()
            .map(|v| Ok(v.map(|bytes| decode(cf, &bytes)).transpose()?))
            .collect()
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

/// Now, unix seconds.
pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
