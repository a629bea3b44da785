//! Giving a quiet database's memory back.
//!
//! Two parts of RocksDB keep memory after a burst (a stress run, a list
//! fan-out) that an idle server no longer needs (`benches/RESULTS.md`,
//! issue #17 item 6):
//!
//! - What a write adds stays in a memtable until 64 MiB of writes fill
//!   it. It is durable already (the synced WAL), but the memory stays
//!   taken: an idle server kept 10 MiB and more for good. Once no write
//!   has come for [`QUIET`] and the memtables hold more than
//!   [`FLUSH_ABOVE`], they are written out to SST files, which frees them.
//! - The block cache (one, bounded, `access::BLOCK_CACHE_BYTES`) fills as
//!   files are read back and keeps its blocks while nothing reads them.
//!   Once per quiet spell it is emptied; the next reads fill it again
//!   from the operating system's page cache, which the kernel manages.
//!
//! "No write" is read off the database's sequence number, so every writer
//! (the metadata, the blob tier's index) counts without telling anyone.
//! The check reads memory only and the flush runs on RocksDB's own
//! background thread, so the caller (the server's memory tick, on the
//! async runtime) never waits for the disk.

use std::sync::{PoisonError, TryLockError};
use std::time::{Duration, Instant};

use rocksdb::{Cache, FlushOptions, DB};

use super::access::{column_families_in, engine_error};
use super::RocksStore;
use crate::store::StoreError;

/// How long the database has to be without writes before its memtables
/// are written out: longer than the pauses inside a burst, short enough
/// that an idle server is back to its working set soon after.
pub(super) const QUIET: Duration = Duration::from_secs(5);

/// Memtable bytes below which a quiet database keeps them: each flush
/// makes an SST file per column family (and a blob file for the larger
/// values of `blobs`) that compaction merges later, so a server with a
/// trickle of mail flushes at most once per 4 MiB written.
pub(super) const FLUSH_ABOVE: u64 = 4 << 20;

/// The last sequence number seen, since when it has not moved, and
/// whether the block cache was emptied since.
#[derive(Debug)]
pub(super) struct Quiet {
    seq: u64,
    since: Instant,
    cache_emptied: bool,
}

impl Default for Quiet {
    fn default() -> Self {
        Self {
            seq: 0,
            since: Instant::now(),
            cache_emptied: false,
        }
    }
}

impl Quiet {
    /// Whether the database has been without writes for `quiet`, given
    /// its sequence number `seq` now.
    fn quiet_for(&mut self, seq: u64, quiet: Duration) -> bool {
        if seq != self.seq {
            self.seq = seq;
            self.since = Instant::now();
            self.cache_emptied = false;
            return false;
        }
        self.since.elapsed() >= quiet
    }
}

/// What [`RocksStore::release_when_quiet`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Released {
    /// The memtables are being written out.
    pub(super) flushed: bool,
    /// The block cache was emptied.
    pub(super) cache_emptied: bool,
}

impl RocksStore {
    /// When the database has been quiet for `quiet`: starts writing the
    /// memtables out (without waiting for it) if they hold more than
    /// [`FLUSH_ABOVE`] bytes, and empties the block cache once per quiet
    /// spell.
    pub(super) fn release_when_quiet(&self, quiet: Duration) -> Result<Released, StoreError> {
        // why not `with_db`: that reopens a closed database, and this runs
        // on the async runtime; a database being reopened (or closed) is
        // simply not looked at this time.
        let engine = match self.engine.try_read() {
            Ok(engine) => engine,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(Released::default()),
        };
        let Some(db) = &engine.db else {
            return Ok(Released::default());
        };
        let seq = db.latest_sequence_number();
        let mut spell = self.quiet.lock().unwrap_or_else(PoisonError::into_inner);
        if !spell.quiet_for(seq, quiet) {
            return Ok(Released::default());
        }
        let cache_emptied = !std::mem::replace(&mut spell.cache_emptied, true);
        drop(spell);
        let memtables = memtable_bytes(db)?;
        if cache_emptied {
            let cached = self.cache.get_usage();
            empty(&mut self.cache.clone());
            tracing::debug!(
                cached,
                memtables,
                table_readers = property_sum(db, "rocksdb.estimate-table-readers-mem")?,
                "emptied the block cache after a quiet spell"
            );
        }
        let flushed = memtables > FLUSH_ABOVE;
        if flushed {
            flush_in_background(db)?;
        }
        Ok(Released {
            flushed,
            cache_emptied,
        })
    }
}

/// Drops every block `cache` holds that nobody is reading now; its
/// capacity stays.
fn empty(cache: &mut Cache) {
    cache.set_capacity(0);
    cache.set_capacity(super::access::BLOCK_CACHE_BYTES);
}

/// Starts writing every column family's memtables out, without waiting.
fn flush_in_background(db: &DB) -> Result<(), StoreError> {
    let mut background = FlushOptions::default();
    background.set_wait(false);
    for (name, cf) in column_families_in(db)? {
        db.flush_cf_opt(cf, &background)
            .map_err(|e| engine_error("flush", e))
            .inspect_err(|e| tracing::warn!(cf = name, error = %e, "idle flush failed"))?;
    }
    tracing::debug!("writing the memtables out after a quiet spell");
    Ok(())
}

/// Bytes held by the memtables of every column family, those being
/// written out included.
pub(super) fn memtable_bytes(db: &DB) -> Result<u64, StoreError> {
    property_sum(db, "rocksdb.cur-size-all-mem-tables")
}

/// The integer property `name` summed over every column family.
fn property_sum(db: &DB, name: &str) -> Result<u64, StoreError> {
    let mut total = 0u64;
    for (_, cf) in column_families_in(db)? {
        let bytes = db
            .property_int_value_cf(cf, name)
            .map_err(|e| engine_error("memory property", e))?;
        total = total.saturating_add(bytes.unwrap_or(0));
    }
    Ok(total)
}
