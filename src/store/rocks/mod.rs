//! The embedded default engine: [`Store`] on RocksDB.
//!
//! One database at `data_dir/db`, one RocksDB column family per [`Cf`],
//! created when missing. Every write is a `WriteBatch` written with
//! `sync = true`, so it is in the fsynced WAL before [`Store::write`]
//! returns; RocksDB applies a batch across column families atomically.
//!
//! Blob values of 16 KiB and more (`Cf::Blobs`) do not go through RocksDB
//! at all: they are appended to segment files (`segments`), synced, and
//! RocksDB stores their location in the internal column family
//! `blob_locations` in the same batch as everything else. Smaller blobs
//! stay in the `blobs` column family (RocksDB blob files from 4 KiB), so
//! compaction moves bodies once instead of at every level.
//!
//! [`Store::compact`] flushes every column family (so the WAL files that
//! still hold replaced values become obsolete and RocksDB deletes them),
//! rewrites the blobs column family and all its blob files, and rewrites
//! every segment holding bytes no location names any more. What it cannot
//! reach: blocks of deleted files that the file system or an SSD has not
//! overwritten yet, and copies in backups or snapshots.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use rocksdb::{
    BottommostLevelCompaction, ColumnFamily, ColumnFamilyDescriptor, CompactOptions, Direction,
    ErrorKind, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use super::error::{bug, corrupt};
use super::segments::Segments;
use super::{Batch, BatchOp, Cf, KeyRange, KeyValue, Order, Store, StoreError};

mod blobs;
use blobs::segment_value;

/// The internal column family of segment locations (key: the blob's key
/// in `Cf::Blobs`), not a [`Cf`]: nothing above the engine sees it.
const LOCATIONS: &str = "blob_locations";

/// Bytes of live values the segment collector moves per commit.
const RELOCATE_BYTES: u64 = 64 << 20;

/// Routine maintenance rewrites a segment once a quarter of it is dead,
/// so deleted mail gives its space back while a segment that lost one
/// message is not rewritten for it.
const MAINTAIN_MIN_DEAD: f64 = 0.25;

/// [`Store`] on an embedded RocksDB database.
pub struct RocksStore {
    db: DB,
    path: PathBuf,
    segments: Segments,
    /// Shared by every commit from its segment append to its RocksDB
    /// write; taken exclusively by the segment collector to wait for the
    /// commits in flight and while it checks and repoints locations.
    commit: RwLock<()>,
    /// One collector at a time.
    collecting: Mutex<()>,
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
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(*cf)))
            .chain([ColumnFamilyDescriptor::new(LOCATIONS, Options::default())]);
        let db = DB::open_cf_descriptors(&opts, &path, cfs).map_err(|e| engine("open", e))?;
        let seg_dir = data_dir.join("segments");
        let segments = Segments::open(&seg_dir).map_err(|source| StoreError::Io {
            path: seg_dir,
            source,
        })?;
        let store = Self {
            db,
            path,
            segments,
            commit: RwLock::new(()),
            collecting: Mutex::new(()),
            #[cfg(test)]
            fail_after_ops: std::sync::Mutex::new(None),
        };
        // why: resolve every handle once now, so a missing column family is
        // an open-time error and never a surprise in the middle of a batch.
        for cf in Cf::ALL {
            store.handle(cf)?;
        }
        store.locations()?;
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
        self.db
            .flush_cf(self.locations()?)
            .map_err(|e| engine("flush", e))
    }

    /// The directory of the blob segment files.
    pub fn segments_dir(&self) -> &Path {
        self.segments.dir()
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

    fn locations(&self) -> Result<&ColumnFamily, StoreError> {
        self.db
            .cf_handle(LOCATIONS)
            .ok_or_else(|| bug(format!("column family {LOCATIONS} missing after open")))
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
                self.delete_range(wb, *cf, self.handle(*cf)?, range)?;
            }
        }
        Ok(())
    }

    fn delete_range(
        &self,
        wb: &mut WriteBatch,
        cf: Cf,
        handle: &ColumnFamily,
        range: &KeyRange,
    ) -> Result<(), StoreError> {
        match &range.end {
            Some(end) => wb.delete_range_cf(handle, &range.start, end),
            // why: RocksDB range deletes need an end key; an open
            // range is rare (ids near u32::MAX), so delete key by key.
            None => {
                for (key, _) in self.scan_cf(cf, handle, range, Order::Forward, usize::MAX)? {
                    wb.delete_cf(handle, key);
                }
            }
        }
        Ok(())
    }

    fn scan_cf(
        &self,
        cf: Cf,
        handle: &ColumnFamily,
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
        for item in self.db.iterator_cf_opt(handle, read, mode) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item.map_err(|e| read_error(cf, "scan", e))?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn commit_batch(&self, wb: WriteBatch) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(wb, &opts).map_err(|e| engine("write", e))
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
        if cf == Cf::Blobs {
            return self.get_blob(key);
        }
        self.db
            .get_cf(self.handle(cf)?, key)
            .map_err(|e| read_error(cf, "get", e))
    }

    fn get_many(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        if cf == Cf::Blobs {
            return keys.iter().map(|k| self.get_blob(k)).collect();
        }
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
        if cf == Cf::Blobs {
            return self.scan_blobs(range, order, limit);
        }
        self.scan_cf(cf, self.handle(cf)?, range, order, limit)
    }

    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        let values: Vec<&[u8]> = batch.ops().iter().filter_map(segment_value).collect();
        // why held from before the segment append: the collector waits for
        // every commit in flight, so it never deletes a segment that a
        // location about to be committed names.
        let _shared = self.commit.read().unwrap_or_else(PoisonError::into_inner);
        // why before the batch: a location must never be durable before
        // the bytes it names (Segments::append syncs them).
        let mut locations = if values.is_empty() {
            Vec::new()
        } else {
            self.segments
                .append(&values)
                .map_err(|source| self.segment_io(source))?
        }
        .into_iter();
        let mut wb = WriteBatch::default();
        for op in batch.ops() {
            #[cfg(test)]
            self.injected_failure(wb.len())?;
            match op {
                BatchOp::Put { cf: Cf::Blobs, .. }
                | BatchOp::Delete { cf: Cf::Blobs, .. }
                | BatchOp::DeleteRange { cf: Cf::Blobs, .. } => {
                    let location = if segment_value(op).is_some() {
                        Some(
                            locations
                                .next()
                                .ok_or_else(|| bug("a segment location per large blob"))?,
                        )
                    } else {
                        None
                    };
                    self.add_blob_op(&mut wb, op, location)?;
                }
                _ => self.add_op(&mut wb, op)?,
            }
        }
        self.commit_batch(wb)
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
            .map_err(|e| engine("compact", e))?;
        self.collect_segments(0.0)
    }

    fn maintain(&self) -> Result<(), StoreError> {
        self.collect_segments(MAINTAIN_MIN_DEAD)
    }
}

#[cfg(test)]
mod tests;
