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

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError, RwLock};

use rocksdb::{
    BottommostLevelCompaction, ColumnFamily, ColumnFamilyDescriptor, CompactOptions, Direction,
    ErrorKind, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use super::error::{bug, corrupt};
use super::segments::{Location, ReadError, Segments, SEGMENT_MIN_VALUE};
use super::{Batch, BatchOp, Cf, KeyRange, KeyValue, Order, Store, StoreError};

/// The internal column family of segment locations (key: the blob's key
/// in `Cf::Blobs`), not a [`Cf`]: nothing above the engine sees it.
const LOCATIONS: &str = "blob_locations";

/// Bytes of live values the segment collector moves per commit.
const RELOCATE_BYTES: u64 = 64 << 20;

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

    /// Adds a `Cf::Blobs` operation to `wb`: a value of
    /// [`SEGMENT_MIN_VALUE`] and more has already been written to a
    /// segment at `location`, so only the location goes into the batch.
    fn add_blob_op(
        &self,
        wb: &mut WriteBatch,
        op: &BatchOp,
        location: Option<Location>,
    ) -> Result<(), StoreError> {
        let (blobs, locations) = (self.handle(Cf::Blobs)?, self.locations()?);
        match op {
            BatchOp::Put { key, value, .. } => match location {
                Some(loc) => {
                    wb.put_cf(locations, key, loc.encode());
                    wb.delete_cf(blobs, key);
                }
                None => {
                    wb.put_cf(blobs, key, value);
                    wb.delete_cf(locations, key);
                }
            },
            BatchOp::Delete { key, .. } => {
                wb.delete_cf(blobs, key);
                wb.delete_cf(locations, key);
            }
            BatchOp::DeleteRange { range, .. } => {
                self.delete_range(wb, Cf::Blobs, blobs, range)?;
                self.delete_range(wb, Cf::Blobs, locations, range)?;
            }
        }
        Ok(())
    }

    /// The blob at `key`: from its segment if it has a location, else
    /// from the `blobs` column family.
    fn get_blob(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        // why two tries: the collector may move the blob and delete its old
        // segment between our reading the location and the segment.
        for attempt in 0..2 {
            let Some(raw) = self
                .db
                .get_cf(self.locations()?, key)
                .map_err(|e| read_error(Cf::Blobs, "get", e))?
            else {
                return self
                    .db
                    .get_cf(self.handle(Cf::Blobs)?, key)
                    .map_err(|e| read_error(Cf::Blobs, "get", e));
            };
            let loc = decode_location(&raw)?;
            match self.segments.read(&loc) {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(ReadError::Missing(_)) if attempt == 0 => continue,
                Err(e) => return Err(segment_error(e)),
            }
        }
        Err(corrupt(Cf::Blobs, "blob segment missing"))
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

    /// A scan of `Cf::Blobs`: the inline values and the segment values,
    /// merged in key order.
    fn scan_blobs(
        &self,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = self.scan_cf(Cf::Blobs, self.handle(Cf::Blobs)?, range, order, limit)?;
        for (key, raw) in self.scan_cf(Cf::Blobs, self.locations()?, range, order, limit)? {
            let loc = decode_location(&raw)?;
            let bytes = self.segments.read(&loc).map_err(segment_error)?;
            out.push((key, bytes));
        }
        out.sort_by(|a, b| match order {
            Order::Forward => a.0.cmp(&b.0),
            Order::Reverse => b.0.cmp(&a.0),
        });
        out.truncate(limit);
        Ok(out)
    }

    /// Rewrites every closed segment that holds bytes no location names
    /// (deleted or replaced blobs, a crash's leftovers): its live values
    /// move to the current segment, their locations are repointed, and
    /// the old file is deleted.
    fn collect_segments(&self) -> Result<(), StoreError> {
        let _one = self
            .collecting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let boundary = self.segments.seal();
        // why: a commit that appended to a segment below the boundary before
        // the seal may not have written its location yet; wait for it.
        drop(self.commit.write().unwrap_or_else(PoisonError::into_inner));
        let mut live: BTreeMap<u64, Vec<(Vec<u8>, Location)>> = BTreeMap::new();
        for item in self.db.iterator_cf(self.locations()?, IteratorMode::Start) {
            let (key, raw) = item.map_err(|e| read_error(Cf::Blobs, "scan", e))?;
            let loc = decode_location(&raw)?;
            if loc.segment < boundary {
                live.entry(loc.segment)
                    .or_default()
                    .push((key.into_vec(), loc));
            }
        }
        let io = |source| StoreError::Io {
            path: self.segments.dir().to_path_buf(),
            source,
        };
        for number in self.segments.list().map_err(io)? {
            if number >= boundary {
                continue;
            }
            let entries = live.remove(&number).unwrap_or_default();
            let used: u64 = entries.iter().map(|(_, l)| u64::from(l.len)).sum();
            let size = self.segments.size(number).map_err(io)?;
            if size > 0 && used == size {
                continue;
            }
            let mut start = 0;
            while start < entries.len() {
                let mut end = start;
                let mut bytes = 0;
                while end < entries.len() && (end == start || bytes < RELOCATE_BYTES) {
                    bytes += u64::from(entries[end].1.len);
                    end += 1;
                }
                self.relocate(&entries[start..end])?;
                start = end;
            }
            self.segments.remove(number).map_err(io)?;
            tracing::debug!(
                segment = number,
                live_bytes = used,
                size,
                "blob segment collected"
            );
        }
        Ok(())
    }

    /// Copies the values at `entries` into the current segment and points
    /// each key there, unless a commit changed its location meanwhile.
    fn relocate(&self, entries: &[(Vec<u8>, Location)]) -> Result<(), StoreError> {
        let values = entries
            .iter()
            .map(|(_, loc)| self.segments.read(loc).map_err(segment_error))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let moved = self
            .segments
            .append(&refs)
            .map_err(|source| StoreError::Io {
                path: self.segments.dir().to_path_buf(),
                source,
            })?;
        let locations = self.locations()?;
        let _exclusive = self.commit.write().unwrap_or_else(PoisonError::into_inner);
        let mut wb = WriteBatch::default();
        for ((key, old), new) in entries.iter().zip(moved) {
            let now = self
                .db
                .get_cf(locations, key)
                .map_err(|e| read_error(Cf::Blobs, "get", e))?;
            if now.as_deref().and_then(Location::decode) == Some(*old) {
                wb.put_cf(locations, key, new.encode());
            }
        }
        self.commit_batch(wb)
    }

    fn commit_batch(&self, wb: WriteBatch) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(wb, &opts).map_err(|e| engine("write", e))
    }
}

/// The value of a `Cf::Blobs` put that goes to a segment.
fn segment_value(op: &BatchOp) -> Option<&[u8]> {
    match op {
        BatchOp::Put {
            cf: Cf::Blobs,
            value,
            ..
        } if value.len() >= SEGMENT_MIN_VALUE => Some(value),
        _ => None,
    }
}

fn decode_location(raw: &[u8]) -> Result<Location, StoreError> {
    Location::decode(raw).ok_or_else(|| corrupt(Cf::Blobs, "undecodable blob location"))
}

fn segment_error(e: ReadError) -> StoreError {
    match e {
        ReadError::Missing(path) => corrupt(
            Cf::Blobs,
            format!("blob segment {} is missing", path.display()),
        ),
        ReadError::Corrupt(detail) => corrupt(Cf::Blobs, detail),
        ReadError::Io(path, source) => StoreError::Io { path, source },
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
                .map_err(|source| StoreError::Io {
                    path: self.segments.dir().to_path_buf(),
                    source,
                })?
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
        self.collect_segments()
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

    /// A large value: `marker` followed by filler up to 40 KiB.
    fn big(marker: &str) -> Vec<u8> {
        let mut v = marker.as_bytes().to_vec();
        v.resize(40 * 1024, b'.');
        v
    }

    /// Whether any file under `dir` contains `needle`.
    fn on_disk(dir: &Path, needle: &[u8]) -> bool {
        std::fs::read_dir(dir).unwrap().any(|e| {
            let path = e.unwrap().path();
            if path.is_dir() {
                return on_disk(&path, needle);
            }
            let hay = std::fs::read(&path).unwrap_or_default();
            hay.windows(needle.len()).any(|w| w == needle)
        })
    }

    #[test]
    fn large_blobs_go_to_segments_and_compact_reclaims_deleted_ones() {
        let (dir, store) = open();
        let mut batch = Batch::new();
        for k in [b"k1", b"k2", b"k3"] {
            let marker = format!("marker-{}", String::from_utf8_lossy(k));
            batch.put(Cf::Blobs, k.to_vec(), big(&marker));
        }
        batch.put(Cf::Blobs, b"small".to_vec(), b"tiny-marker".to_vec());
        store.write(batch).unwrap();
        store.flush().unwrap();
        assert!(on_disk(store.segments_dir(), b"marker-k2"));
        assert!(
            !on_disk(store.path(), b"marker-k2"),
            "large value in RocksDB"
        );
        assert!(on_disk(store.path(), b"tiny-marker"));
        assert_eq!(store.get(Cf::Blobs, b"k2").unwrap(), Some(big("marker-k2")));

        let mut batch = Batch::new();
        batch.delete(Cf::Blobs, b"k2".to_vec());
        store.write(batch).unwrap();
        assert_eq!(store.get(Cf::Blobs, b"k2").unwrap(), None);
        assert!(
            on_disk(dir.path(), b"marker-k2"),
            "deleted bytes stay until compact"
        );
        store.compact().unwrap();
        assert!(
            !on_disk(dir.path(), b"marker-k2"),
            "compact left deleted bytes"
        );
        for k in [b"k1".as_slice(), b"k3"] {
            let marker = format!("marker-{}", String::from_utf8_lossy(k));
            assert_eq!(store.get(Cf::Blobs, k).unwrap(), Some(big(&marker)));
        }
        drop(store);
        let store = RocksStore::open(dir.path()).unwrap();
        assert_eq!(store.get(Cf::Blobs, b"k3").unwrap(), Some(big("marker-k3")));
        assert_eq!(
            store.get(Cf::Blobs, b"small").unwrap(),
            Some(b"tiny-marker".to_vec())
        );
    }

    #[test]
    fn blob_scans_and_range_deletes_see_both_places() {
        let (_dir, store) = open();
        let mut batch = Batch::new();
        batch.put(Cf::Blobs, vec![1, 1], big("a"));
        batch.put(Cf::Blobs, vec![1, 2], b"b".to_vec());
        batch.put(Cf::Blobs, vec![1, 3], big("c"));
        batch.put(Cf::Blobs, vec![2, 0], big("d"));
        store.write(batch).unwrap();
        let range = KeyRange::prefix(&[1]);
        let keys = |order, limit| {
            store
                .scan(Cf::Blobs, &range, order, limit)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k[1], v.len()))
                .collect::<Vec<_>>()
        };
        assert_eq!(keys(Order::Forward, 10), [(1, 40960), (2, 1), (3, 40960)]);
        assert_eq!(keys(Order::Reverse, 2), [(3, 40960), (2, 1)]);
        let got = store
            .get_many(Cf::Blobs, &[vec![2, 0], vec![9], vec![1, 2]])
            .unwrap();
        assert_eq!(got, [Some(big("d")), None, Some(b"b".to_vec())]);

        let mut batch = Batch::new();
        batch.delete_range(Cf::Blobs, range.clone());
        store.write(batch).unwrap();
        assert!(keys(Order::Forward, 10).is_empty());
        assert_eq!(store.get(Cf::Blobs, &[2, 0]).unwrap(), Some(big("d")));
    }

    #[test]
    fn compact_while_writing_keeps_every_live_blob() {
        let (_dir, store) = open();
        let store = std::sync::Arc::new(store);
        let writer = {
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0u32..300 {
                    let mut batch = Batch::new();
                    batch.put(Cf::Blobs, i.to_be_bytes().to_vec(), big(&format!("v{i}")));
                    if i % 3 == 0 && i > 0 {
                        batch.delete(Cf::Blobs, (i - 1).to_be_bytes().to_vec());
                    }
                    store.write(batch).unwrap();
                }
            })
        };
        while !writer.is_finished() {
            store.compact().unwrap();
        }
        writer.join().unwrap();
        store.compact().unwrap();
        for i in 0u32..300 {
            let got = store.get(Cf::Blobs, &i.to_be_bytes()).unwrap();
            let deleted = i % 3 == 2 && i < 299;
            assert_eq!(got, (!deleted).then(|| big(&format!("v{i}"))), "blob {i}");
        }
    }

    #[test]
    fn a_failed_commit_leaves_only_garbage_that_compact_removes() {
        let (dir, store) = open();
        let mut batch = Batch::new();
        batch.put(Cf::Blobs, b"lost".to_vec(), big("never-committed"));
        batch.put(Cf::Messages, b"m".to_vec(), b"record".to_vec());
        store.fail_next_write_after(2);
        assert!(store.write(batch).is_err());
        assert_eq!(store.get(Cf::Blobs, b"lost").unwrap(), None);
        assert!(on_disk(dir.path(), b"never-committed"));
        store.compact().unwrap();
        assert!(!on_disk(dir.path(), b"never-committed"));
    }

    #[test]
    fn a_damaged_segment_is_a_corruption_error() {
        let (dir, store) = open();
        let mut batch = Batch::new();
        batch.put(Cf::Blobs, b"k".to_vec(), big("x"));
        store.write(batch).unwrap();
        for entry in std::fs::read_dir(store.segments_dir()).unwrap() {
            let path = entry.unwrap().path();
            let mut bytes = std::fs::read(&path).unwrap();
            if let Some(b) = bytes.get_mut(100) {
                *b ^= 0xff;
            }
            std::fs::write(&path, bytes).unwrap();
        }
        // A fresh open, so no cached read handle hides the damage.
        drop(store);
        let store = RocksStore::open(dir.path()).unwrap();
        let err = store.get(Cf::Blobs, b"k").unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { cf: Cf::Blobs, detail } if detail.contains("checksum")),
            "{err:?}"
        );
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
