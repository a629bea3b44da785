//! Free helpers of the engine over a borrowed handle: column families,
//! lookups, scans, and engine errors made safe to show (no file paths).

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, Direction, ErrorKind,
    IteratorMode, Options, ReadOptions, WriteBatch, DB,
};

use super::super::error::{bug, corrupt};
use super::super::{Cf, KeyRange, KeyValue, Order, StoreError};
use super::recovery::sanitize;
use super::LOCATIONS;

/// Bytes of the block cache all column families share.
///
/// why one cache: without one, RocksDB gives each column family a cache
/// of its own (8 MiB each, 88 MiB for our eleven), which fills as data
/// is read from files and is never given back. One cache of the size one
/// family had bounds the server's memory the same whatever reads it.
pub(super) const BLOCK_CACHE_BYTES: usize = 8 << 20;

/// The column families of the database, with their options; their table
/// files' blocks are cached in `cache`.
pub(super) fn column_families(cache: &Cache) -> impl Iterator<Item = ColumnFamilyDescriptor> {
    let tables = {
        let mut tables = BlockBasedOptions::default();
        tables.set_block_cache(cache);
        tables
    };
    Cf::ALL
        .iter()
        .map(|cf| (cf.name(), cf_options(Some(*cf))))
        .chain([(LOCATIONS, cf_options(None))])
        .map(move |(name, mut opts)| {
            opts.set_block_based_table_factory(&tables);
            ColumnFamilyDescriptor::new(name, opts)
        })
}

// why: rocksdb 0.20 handles borrow the DB, so they cannot be stored next
// to it without unsafe (forbidden here). The lookup is a map probe by
// name; `open` proved every name resolves, and a miss is a typed Bug
// error rather than an unwrap.
pub(super) fn handle(db: &DB, cf: Cf) -> Result<&ColumnFamily, StoreError> {
    db.cf_handle(cf.name())
        .ok_or_else(|| bug(format!("column family {cf} missing after open")))
}

pub(super) fn locations(db: &DB) -> Result<&ColumnFamily, StoreError> {
    db.cf_handle(LOCATIONS)
        .ok_or_else(|| bug(format!("column family {LOCATIONS} missing after open")))
}

/// Every column family's handle, with its name: each [`Cf`] and the blob
/// tier's [`LOCATIONS`].
pub(super) fn column_families_in(
    db: &DB,
) -> Result<Vec<(&'static str, &ColumnFamily)>, StoreError> {
    let mut all = Vec::with_capacity(Cf::ALL.len() + 1);
    for cf in Cf::ALL {
        all.push((cf.name(), handle(db, cf)?));
    }
    all.push((LOCATIONS, locations(db)?));
    Ok(all)
}

pub(super) fn delete_range(
    db: &DB,
    wb: &mut WriteBatch,
    cf: Cf,
    handle: &ColumnFamily,
    range: &KeyRange,
) -> Result<(), StoreError> {
    match &range.end {
        Some(end) => wb.delete_range_cf(handle, &range.start, end),
        // why: RocksDB range deletes need an end key; an open range is
        // rare (ids near u32::MAX), so delete key by key.
        None => {
            for (key, _) in scan_cf(db, cf, handle, range, Order::Forward, usize::MAX)? {
                wb.delete_cf(handle, key);
            }
        }
    }
    Ok(())
}

pub(super) fn scan_cf(
    db: &DB,
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
    for item in db.iterator_cf_opt(handle, read, mode) {
        if out.len() >= limit {
            break;
        }
        let (k, v) = item.map_err(|e| read_error(cf, "scan", e))?;
        out.push((k.into_vec(), v.into_vec()));
    }
    Ok(out)
}

/// Blob GC age cutoff in normal operation (RocksDB's default): during
/// compaction, blobs are moved out of the oldest quarter of blob files.
pub(super) const BLOB_GC_CUTOFF: &str = "0.25";

/// The options of column family `cf` (`None`: the blob tier's
/// locations).
fn cf_options(cf: Option<Cf>) -> Options {
    let mut opts = Options::default();
    if cf == Some(Cf::Blobs) {
        opts.set_enable_blob_files(true);
        opts.set_min_blob_size(4096);
        opts.set_enable_blob_gc(true);
        opts.set_blob_gc_age_cutoff(0.25);
    }
    opts
}

/// An engine error, its message without file paths (it may reach a
/// client's reply); the full message goes to the log.
pub(super) fn engine_error(op: &'static str, e: rocksdb::Error) -> StoreError {
    let message = e.into_string();
    tracing::warn!(op, error = %message, "storage engine error");
    StoreError::Engine {
        op,
        message: sanitize(&message),
    }
}

pub(super) fn read_error(cf: Cf, op: &'static str, e: rocksdb::Error) -> StoreError {
    if e.kind() == ErrorKind::Corruption {
        let message = e.into_string();
        tracing::error!(%cf, error = %message, "corrupt data read");
        corrupt(cf, sanitize(&message))
    } else {
        engine_error(op, e)
    }
}
