//! The blob tier of the RocksDB engine: [`RocksBlobIndex`], the index of a
//! [`SegmentBlobStore`] kept in this database (so that its unsynced writes
//! reach the disk with the next synced metadata write, see
//! `blobs::index`), and [`RocksStore::open_pair`], which composes the two.
//!
//! Small bodies are inline values of the `blobs` column family (RocksDB
//! blob files from 4 KiB, so compaction moves them once instead of at
//! every level); large ones are in segment files, their locations in the
//! internal column family `blob_locations`. A key is in at most one of the
//! two. Nothing of this is visible through [`Store`](super::super::Store):
//! the metadata engine has no body special cases.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    BottommostLevelCompaction, CompactOptions, IteratorMode, WriteBatch, WriteOptions, DB,
};

use super::super::blobs::segments::Location;
use super::super::blobs::{BlobIndex, SegmentBlobStore, Stored};
use super::super::error::corrupt;
use super::super::{Cf, KeyRange, Order, StoreError};
use super::{engine_error, handle, locations, read_error, scan_cf, RocksStore, BLOB_GC_CUTOFF};

/// The index of the RocksDB engine's segment blob store.
#[derive(Debug)]
pub(crate) struct RocksBlobIndex {
    store: Arc<RocksStore>,
}

impl RocksStore {
    /// Opens the RocksDB engine at `data_dir/db` and its blob tier, the
    /// segment files at `data_dir/segments` indexed in the same database:
    /// the metadata store and the blob store of one data directory.
    pub fn open_pair(data_dir: &Path) -> Result<(Arc<Self>, Arc<SegmentBlobStore>), StoreError> {
        let store = Arc::new(Self::open(data_dir)?);
        let index = Arc::new(RocksBlobIndex {
            store: Arc::clone(&store),
        });
        let blobs = SegmentBlobStore::open(&data_dir.join("segments"), index)?;
        Ok((store, Arc::new(blobs)))
    }

    /// Writes `wb` without waiting for a sync: the next synced write (the
    /// metadata commit) persists it.
    fn write_unsynced(
        &self,
        build: impl Fn(&DB) -> Result<WriteBatch, StoreError>,
    ) -> Result<(), StoreError> {
        let mut opts = WriteOptions::default();
        opts.set_sync(false);
        self.commit_with(&opts, build)
    }
}

fn decode_location(raw: &[u8]) -> Result<Location, StoreError> {
    Location::decode(raw).ok_or_else(|| corrupt(Cf::Blobs, "undecodable blob location"))
}

impl BlobIndex for RocksBlobIndex {
    fn get(&self, key: &[u8]) -> Result<Option<Stored>, StoreError> {
        self.store.with_db(|db| {
            let read = |e| read_error(Cf::Blobs, "get", e);
            if let Some(raw) = db.get_cf(locations(db)?, key).map_err(read)? {
                return Ok(Some(Stored::Segment(decode_location(&raw)?)));
            }
            let inline = db.get_cf(handle(db, Cf::Blobs)?, key).map_err(read)?;
            Ok(inline.map(Stored::Inline))
        })
    }

    fn set(&self, items: &[(&[u8], Stored)]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        self.store.write_unsynced(|db| {
            let (blobs, locations) = (handle(db, Cf::Blobs)?, locations(db)?);
            let mut wb = WriteBatch::default();
            for (key, stored) in items {
                match stored {
                    Stored::Segment(loc) => {
                        wb.put_cf(locations, key, loc.encode());
                        wb.delete_cf(blobs, key);
                    }
                    Stored::Inline(value) => {
                        wb.put_cf(blobs, key, value);
                        wb.delete_cf(locations, key);
                    }
                }
            }
            Ok(wb)
        })
    }

    fn remove(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.store.write_unsynced(|db| {
            let (blobs, locations) = (handle(db, Cf::Blobs)?, locations(db)?);
            let mut wb = WriteBatch::default();
            for key in keys {
                wb.delete_cf(blobs, key);
                wb.delete_cf(locations, key);
            }
            Ok(wb)
        })
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.store
            .with_db(|db| db.flush_wal(true).map_err(|e| engine_error("sync", e)))
    }

    fn keys(&self, range: &KeyRange, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let (inline, located) = self.store.with_db(|db| {
            // why values too: `scan_cf` is the one bounded iterator here; a
            // page of inline values is small (below 16 KiB each).
            Ok((
                scan_cf(
                    db,
                    Cf::Blobs,
                    handle(db, Cf::Blobs)?,
                    range,
                    Order::Forward,
                    limit,
                )?,
                scan_cf(db, Cf::Blobs, locations(db)?, range, Order::Forward, limit)?,
            ))
        })?;
        let mut out: Vec<Vec<u8>> = inline.into_iter().chain(located).map(|(k, _)| k).collect();
        out.sort_unstable();
        out.dedup();
        out.truncate(limit);
        Ok(out)
    }

    fn located_below(&self, below: u64) -> Result<Vec<(Vec<u8>, Location)>, StoreError> {
        self.store.with_db(|db| {
            let mut out = Vec::new();
            for item in db.iterator_cf(locations(db)?, IteratorMode::Start) {
                let (key, raw) = item.map_err(|e| read_error(Cf::Blobs, "scan", e))?;
                let loc = decode_location(&raw)?;
                if loc.segment < below {
                    out.push((key.into_vec(), loc));
                }
            }
            Ok(out)
        })
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.store.with_db(|db| {
            let blobs = handle(db, Cf::Blobs)?;
            db.flush_cf(blobs).map_err(|e| engine_error("flush", e))?;
            db.flush_cf(locations(db)?)
                .map_err(|e| engine_error("flush", e))?;
            // why: with the normal cutoff, a blob file outside the oldest
            // quarter keeps its deleted blobs until it ages into it; for
            // this one forced compaction every blob file is collected.
            db.set_options_cf(blobs, &[("blob_garbage_collection_age_cutoff", "1.0")])
                .map_err(|e| engine_error("compact", e))?;
            let mut opts = CompactOptions::default();
            opts.set_bottommost_level_compaction(BottommostLevelCompaction::Force);
            db.compact_range_cf_opt(blobs, None::<&[u8]>, None::<&[u8]>, &opts);
            db.set_options_cf(
                blobs,
                &[("blob_garbage_collection_age_cutoff", BLOB_GC_CUTOFF)],
            )
            .map_err(|e| engine_error("compact", e))
        })
    }
}

/// The index of `store`'s blob tier, for tests that build the segment
/// store themselves (another orphan grace).
#[cfg(test)]
pub(crate) fn test_index(store: &Arc<RocksStore>) -> RocksBlobIndex {
    RocksBlobIndex {
        store: Arc::clone(store),
    }
}
