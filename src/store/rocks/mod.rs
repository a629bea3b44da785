//! The embedded default engine: [`Store`] on RocksDB.
//!
//! One database at `data_dir/db`, one RocksDB column family per [`Cf`],
//! created when missing. Every write is a `WriteBatch` written with
//! `sync = true`, so it is in the fsynced WAL before [`Store::write`]
//! returns; RocksDB applies a batch across column families atomically.
//!
//! Message bodies are not this engine's business through [`Store`]: its
//! blob tier (`blobs`, [`RocksStore::open_pair`]) is a
//! [`SegmentBlobStore`](super::blobs::SegmentBlobStore) whose index lives
//! in this database, in the `blobs` column family (small bodies inline)
//! and the internal column family `blob_locations`.
//!
//! [`Store::compact`] flushes every column family, so the WAL files that
//! still hold replaced values become obsolete and RocksDB deletes them
//! (the blob tier's `compact` rewrites its own files). What it cannot
//! reach: blocks of deleted files that the file system or an SSD has not
//! overwritten yet, and copies in backups or snapshots.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use rocksdb::{WriteBatch, WriteOptions, DB};

use super::{Batch, BatchOp, Cf, Expect, KeyRange, KeyValue, Order, Store, StoreError};

mod access;
mod blobs;
#[cfg(test)]
pub(crate) use blobs::test_index;
mod idle;
mod key_locks;
mod recovery;
use access::{
    column_families, column_families_in, delete_range, engine_error, handle, locations, read_error,
    scan_cf, BLOB_GC_CUTOFF,
};
use key_locks::KeyLocks;
use recovery::{open_db, reopen_helps, unavailable, Backoff, Engine};

/// The internal column family of the blob tier's segment locations (key:
/// the blob's key), not a [`Cf`]: nothing above the engine sees it.
const LOCATIONS: &str = "blob_locations";

/// [`Store`] on an embedded RocksDB database.
pub struct RocksStore {
    /// The database handle, swapped by a reopen after an I/O error (see
    /// `recovery`).
    engine: RwLock<Engine>,
    backoff: Mutex<Backoff>,
    path: PathBuf,
    /// Locks of expected keys, held by a conditional write from its check
    /// to its commit.
    versions: KeyLocks,
    /// Since when no write has come (`idle`).
    quiet: Mutex<idle::Quiet>,
    /// The block cache of every column family, kept across reopens.
    cache: rocksdb::Cache,
    #[cfg(test)]
    fail_after_ops: std::sync::Mutex<Option<usize>>,
}

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens (creating if missing) the database at `data_dir/db`, with
    /// every column family of [`Cf::ALL`].
    ///
    /// `data_dir` comes from the operator's configuration.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join("db");
        std::fs::create_dir_all(&path).map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        let cache = rocksdb::Cache::new_lru_cache(access::BLOCK_CACHE_BYTES)
            .map_err(|e| engine_error("open", e))?;
        let db = open_db(&path, &cache).map_err(|e| engine_error("open", e))?;
        let store = Self {
            engine: RwLock::new(Engine {
                db: Some(db),
                generation: 0,
            }),
            backoff: Mutex::new(Backoff::default()),
            path,
            versions: KeyLocks::new(),
            quiet: Mutex::new(idle::Quiet::default()),
            cache,
            #[cfg(test)]
            fail_after_ops: std::sync::Mutex::new(None),
        };
        // why: resolve every handle once now, so a missing column family is
        // an open-time error and never a surprise in the middle of a batch.
        store.with_db(|db| {
            for cf in Cf::ALL {
                handle(db, cf)?;
            }
            locations(db).map(drop)
        })?;
        Ok(store)
    }

    /// Flushes every column family's memtable to SST files (and blobs to
    /// blob files). Not needed for durability — the WAL already is — but
    /// used by tests that inspect the files and before a file-level backup.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.with_db(|db| {
            for (_, cf) in column_families_in(db)? {
                db.flush_cf(cf).map_err(|e| engine_error("flush", e))?;
            }
            Ok(())
        })
    }

    /// The directory of the database files.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes a consistent copy of the database as it is now into the
    /// new directory `into` (a RocksDB checkpoint: memtables flushed, SST
    /// files hard-linked when `into` is on the same file system, copied
    /// otherwise). Writes go on meanwhile; none after the cut is in it.
    pub(crate) fn checkpoint(&self, into: &Path) -> Result<(), StoreError> {
        self.with_db(|db| {
            rocksdb::checkpoint::Checkpoint::new(db)
                .and_then(|c| c.create_checkpoint(into))
                .map_err(|e| engine_error("checkpoint", e))
        })
    }

    /// Test hook: the next [`Store::write`] fails after adding `ops`
    /// operations to the RocksDB batch, before committing it.
    #[cfg(test)]
    pub(crate) fn fail_next_write_after(&self, ops: usize) {
        *self
            .fail_after_ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ops);
    }

    /// Test hook: cancels a failure armed by `fail_next_write_after`.
    #[cfg(test)]
    pub(crate) fn disarm_failure(&self) {
        *self
            .fail_after_ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    #[cfg(test)]
    fn injected_failure(&self, added: usize) -> Result<(), StoreError> {
        let mut slot = self
            .fail_after_ops
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *slot == Some(added) {
            *slot = None;
            return Err(StoreError::Engine {
                op: "write",
                message: "injected failure".into(),
            });
        }
        Ok(())
    }

    /// [`StoreError::Conflict`] unless every expectation holds now.
    fn check(&self, expect: &[Expect]) -> Result<(), StoreError> {
        for e in expect {
            if self.get(e.cf, &e.key)? != e.value {
                return Err(StoreError::Conflict {
                    detail: format!("a key of `{}` was changed by another writer", e.cf),
                });
            }
        }
        Ok(())
    }

    fn add_op(&self, db: &DB, wb: &mut WriteBatch, op: &BatchOp) -> Result<(), StoreError> {
        match op {
            BatchOp::Put { cf, key, value } => wb.put_cf(handle(db, *cf)?, key, value),
            BatchOp::Delete { cf, key } => wb.delete_cf(handle(db, *cf)?, key),
            BatchOp::DeleteRange { cf, range } => {
                delete_range(db, wb, *cf, handle(db, *cf)?, range)?;
            }
        }
        Ok(())
    }

    /// Builds the RocksDB batch for `batch`.
    fn build_batch(&self, db: &DB, batch: &Batch) -> Result<WriteBatch, StoreError> {
        let mut wb = WriteBatch::default();
        for op in batch.ops() {
            #[cfg(test)]
            self.injected_failure(wb.len())?;
            self.add_op(db, &mut wb, op)?;
        }
        Ok(wb)
    }

    /// Writes what `build` makes, synced. A write that fails with an
    /// I/O-class error reopens the database (see `recovery`) and is tried
    /// once more on the new handle.
    ///
    /// why a retry is safe: a batch holds absolute values, so applying it
    /// twice (once from the WAL the reopen replays, once again here) ends
    /// in the same state, and the callers hold the locks of the keys they
    /// write for the whole call, so no other change lands in between.
    fn commit(
        &self,
        build: impl Fn(&DB) -> Result<WriteBatch, StoreError>,
    ) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.commit_with(&opts, build)
    }

    /// [`RocksStore::commit`] with `opts` (the blob tier's index writes
    /// are not synced).
    fn commit_with(
        &self,
        opts: &WriteOptions,
        build: impl Fn(&DB) -> Result<WriteBatch, StoreError>,
    ) -> Result<(), StoreError> {
        let mut retried = false;
        // why bounded: a closed handle is reopened before the first try,
        // and a failed write gets one retry on a reopened handle.
        for _ in 0..3 {
            let engine = self.engine();
            let generation = engine.generation;
            let Some(db) = &engine.db else {
                drop(engine);
                self.recover(generation)?;
                continue;
            };
            match db.write_opt(build(db)?, opts) {
                Ok(()) => return Ok(()),
                Err(e) if !retried && reopen_helps(&e) => {
                    tracing::warn!(error = %e, "store write failed; reopening the database");
                }
                Err(e) => return Err(engine_error("write", e)),
            }
            drop(engine);
            retried = true;
            self.recover(generation)?;
        }
        Err(unavailable())
    }
}

impl Store for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_db(|db| {
            db.get_cf(handle(db, cf)?, key)
                .map_err(|e| read_error(cf, "get", e))
        })
    }

    fn get_many(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.with_db(|db| {
            let handle = handle(db, cf)?;
            db.multi_get_cf(keys.iter().map(|k| (handle, k)))
                .into_iter()
                .map(|r| r.map_err(|e| read_error(cf, "get", e)))
                .collect()
        })
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.with_db(|db| scan_cf(db, cf, handle(db, cf)?, range, order, limit))
    }

    fn write_if(&self, expect: &[Expect], batch: Batch) -> Result<(), StoreError> {
        // why only the expected keys are locked: expected keys are version
        // keys that every writer changing them also expects (the contract
        // of `Expect`), so two conditional writes on one version key
        // serialise here and the second sees the first's value; blind
        // writes of other keys stay free to share RocksDB's group commit.
        let _versions = self
            .versions
            .lock(expect.iter().map(|e| (e.cf, &e.key[..])));
        if !expect.is_empty() {
            self.check(expect)?;
        }
        self.commit(|db| self.build_batch(db, &batch))
    }

    fn compact(&self) -> Result<(), StoreError> {
        // why only a flush: the WAL files holding replaced values become
        // obsolete and RocksDB deletes them; bodies are the blob tier's.
        self.flush()
    }

    fn release_memory_when_quiet(&self) -> Result<(), StoreError> {
        self.release_when_quiet(idle::QUIET).map(drop)
    }
}

#[cfg(test)]
mod tests;
