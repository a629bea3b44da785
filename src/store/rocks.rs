//! The embedded default engine: [`Store`] on RocksDB.
//!
//! One database at `data_dir/db`, one RocksDB column family per [`Cf`],
//! created when missing. Every write is a `WriteBatch` written with
//! `sync = true`, so it is in the fsynced WAL before [`Store::write`]
//! returns; RocksDB applies a batch across column families atomically.
//! Message blobs go to RocksDB's blob files (values of 4 KiB and more), so
//! compaction moves 64 KiB bodies once instead of at every level.
//!
//! [`Store::compact`] flushes every column family (so the WAL files that
//! still hold replaced values become obsolete and RocksDB deletes them)
//! and then rewrites the blobs column family and all its blob files. What
//! it cannot reach: blocks of deleted files that the file system or an
//! SSD has not overwritten yet, and copies in backups or snapshots.

use std::fmt;
use std::path::{Path, PathBuf};

use rocksdb::{
    BottommostLevelCompaction, ColumnFamily, ColumnFamilyDescriptor, CompactOptions, Direction,
    ErrorKind, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use super::error::{bug, corrupt};
use super::{Batch, BatchOp, Cf, KeyRange, KeyValue, Order, Store, StoreError};

/// [`Store`] on an embedded RocksDB database.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
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
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        // why: small column families (accounts, mailboxes) rarely fill a
        // memtable, so without a cap every WAL file stays alive until they
        // do — gigabytes of WAL to keep on disk and replay at open. The cap
        // forces those flushes instead.
        opts.set_max_total_wal_size(256 << 20);
        let cfs = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(*cf)));
        let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(|e| engine("open", e))?;
        let store = Self {
            db,
            path,
            #[cfg(test)]
            fail_after_ops: std::sync::Mutex::new(None),
        };
        // why: resolve every handle once now, so a missing column family is
        // an open-time error and never a surprise in the middle of a batch.
        for cf in Cf::ALL {
            store.handle(cf)?;
        }
        Ok(store)
    }

    /// Flushes every column family's memtable to SST files (and blobs to
    /// blob files). Not needed for durability — the WAL already is — but
    /// used by tests that inspect the files and before a file-level backup.
    pub fn flush(&self) -> Result<(), StoreError> {
        for cf in Cf::ALL {
            let handle = self.handle(cf)?;
            self.db.flush_cf(handle).map_err(|e| engine("flush", e))?;
        }
        Ok(())
    }

    /// The directory of the database files.
    pub fn path(&self) -> &Path {
        &self.path
    }

    // why: rocksdb 0.20 handles borrow the DB, so they cannot be stored
    // next to it without unsafe (forbidden here). The lookup is a map
    // probe by name; `open` proved every name resolves, and a miss is a
    // typed Bug error rather than an unwrap.
    fn handle(&self, cf: Cf) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| bug(format!("column family {cf} missing after open")))
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

    fn add_op(&self, wb: &mut WriteBatch, op: &BatchOp) -> Result<(), StoreError> {
        match op {
            BatchOp::Put { cf, key, value } => wb.put_cf(self.handle(*cf)?, key, value),
            BatchOp::Delete { cf, key } => wb.delete_cf(self.handle(*cf)?, key),
            BatchOp::DeleteRange { cf, range } => {
                let handle = self.handle(*cf)?;
                match &range.end {
                    Some(end) => wb.delete_range_cf(handle, &range.start, end),
                    // why: RocksDB range deletes need an end key; an open
                    // range is rare (ids near u32::MAX), so delete key by key.
                    None => {
                        for (key, _) in self.scan(*cf, range, Order::Forward, usize::MAX)? {
                            wb.delete_cf(handle, key);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Blob GC age cutoff in normal operation (RocksDB's default): during
/// compaction, blobs are moved out of the oldest quarter of blob files.
const BLOB_GC_CUTOFF: &str = "0.25";

fn cf_options(cf: Cf) -> Options {
    let mut opts = Options::default();
    if cf == Cf::Blobs {
        opts.set_enable_blob_files(true);
        opts.set_min_blob_size(4096);
        opts.set_enable_blob_gc(true);
        opts.set_blob_gc_age_cutoff(0.25);
    }
    opts
}

fn engine(op: &'static str, e: rocksdb::Error) -> StoreError {
    StoreError::Engine {
        op,
        message: e.into_string(),
    }
}

fn read_error(cf: Cf, op: &'static str, e: rocksdb::Error) -> StoreError {
    if e.kind() == ErrorKind::Corruption {
        corrupt(cf, e.into_string())
    } else {
        engine(op, e)
    }
}

impl Store for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.db
            .get_cf(self.handle(cf)?, key)
            .map_err(|e| read_error(cf, "get", e))
    }

    fn get_many(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let handle = self.handle(cf)?;
        self.db
            .multi_get_cf(keys.iter().map(|k| (handle, k)))
            .into_iter()
            .map(|r| r.map_err(|e| read_error(cf, "get", e)))
            .collect()
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut read = ReadOptions::default();
        read.set_iterate_lower_bound(range.start.clone());
        if let Some(end) = &range.end {
            if end <= &range.start {
                return Ok(Vec::new());
            }
            read.set_iterate_upper_bound(end.clone());
        }
        let mode = match order {
            Order::Forward => IteratorMode::From(&range.start, Direction::Forward),
            Order::Reverse => IteratorMode::End,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf_opt(self.handle(cf)?, read, mode) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| read_error(cf, "scan", e))?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let mut wb = WriteBatch::default();
        for op in batch.ops() {
            #[cfg(test)]
            self.injected_failure(wb.len())?;
            self.add_op(&mut wb, op)?;
        }
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(wb, &opts).map_err(|e| engine("write", e))
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.flush()?;
        let blobs = self.handle(Cf::Blobs)?;
        // why: with the normal cutoff, a blob file outside the oldest
        // quarter keeps its deleted blobs until it ages into it; for this
        // one forced compaction every blob file is collected.
        self.db
            .set_options_cf(blobs, &[("blob_garbage_collection_age_cutoff", "1.0")])
            .map_err(|e| engine("compact", e))?;
        let mut opts = CompactOptions::default();
        opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
        self.db
            .compact_range_cf_opt(blobs, None::<&[u8]>, None::<&[u8]>, &opts);
        self.db
            .set_options_cf(
                blobs,
                &[("blob_garbage_collection_age_cutoff", BLOB_GC_CUTOFF)],
            )
            .map_err(|e| engine("compact", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> (tempfile::TempDir, RocksStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn failure_mid_batch_commits_nothing() {
        let (_dir, store) = open();
        let mut batch = Batch::new();
        batch.put(Cf::Blobs, b"a".to_vec(), b"blob".to_vec());
        batch.put(Cf::Messages, b"a".to_vec(), b"record".to_vec());
        batch.put(Cf::Accounts, b"a".to_vec(), b"counter".to_vec());
        store.fail_next_write_after(2);
        assert!(matches!(
            store.write(batch.clone()),
            Err(StoreError::Engine { .. })
        ));
        for cf in [Cf::Blobs, Cf::Messages, Cf::Accounts] {
            assert_eq!(store.get(cf, b"a").unwrap(), None, "{cf}");
        }
        store.write(batch).unwrap();
        assert_eq!(
            store.get(Cf::Messages, b"a").unwrap(),
            Some(b"record".to_vec())
        );
    }

    #[test]
    fn scan_orders_bounds_and_limits() {
        let (_dir, store) = open();
        let mut batch = Batch::new();
        for k in [[1u8, 0], [1, 1], [1, 2], [2, 0]] {
            batch.put(Cf::Changes, k.to_vec(), vec![k[1]]);
        }
        store.write(batch).unwrap();
        let range = KeyRange::prefix(&[1]);
        let fwd = store.scan(Cf::Changes, &range, Order::Forward, 10).unwrap();
        assert_eq!(fwd.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(), [0, 1, 2]);
        let rev = store.scan(Cf::Changes, &range, Order::Reverse, 2).unwrap();
        assert_eq!(rev.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(), [2, 1]);
        let open_end = KeyRange {
            start: vec![1, 2],
            end: None,
        };
        assert_eq!(
            store
                .scan(Cf::Changes, &open_end, Order::Forward, 10)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn delete_range_with_and_without_end() {
        let (_dir, store) = open();
        let mut batch = Batch::new();
        for k in [[1u8], [2], [0xff]] {
            batch.put(Cf::Audit, k.to_vec(), vec![]);
        }
        store.write(batch).unwrap();
        let mut batch = Batch::new();
        batch.delete_range(Cf::Audit, KeyRange::prefix(&[1]));
        batch.delete_range(Cf::Audit, KeyRange::prefix(&[0xff]));
        store.write(batch).unwrap();
        let all = KeyRange::prefix(&[]);
        let left = store.scan(Cf::Audit, &all, Order::Forward, 10).unwrap();
        assert_eq!(left, vec![(vec![2], vec![])]);
    }

    #[test]
    fn get_many_keeps_order() {
        let (_dir, store) = open();
        let mut batch = Batch::new();
        batch.put(Cf::Meta, b"x".to_vec(), b"1".to_vec());
        store.write(batch).unwrap();
        let got = store
            .get_many(Cf::Meta, &[b"y".to_vec(), b"x".to_vec()])
            .unwrap();
        assert_eq!(got, vec![None, Some(b"1".to_vec())]);
    }
}
