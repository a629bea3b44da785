//! Giving a quiet database's memtables back.
//!
//! What a write adds to RocksDB stays in a memtable until 64 MiB of writes
//! fill it. It is durable already (the synced WAL), but the memory stays
//! taken: after a burst (a stress run, a list fan-out) an idle server kept
//! 10 MiB and more for good (`benches/RESULTS.md`, issue #17 item 6). Once
//! no write has come for [`QUIET`] and the memtables hold more than
//! [`FLUSH_ABOVE`], they are written out to SST files, which frees them.
//!
//! "No write" is read off the database's sequence number, so every writer
//! (the metadata, the blob tier's index) counts without telling anyone.
//! The check reads memory only and the flush runs on RocksDB's own
//! background thread, so the caller (the server's memory tick, on the
//! async runtime) never waits for the disk.

use std::sync::{PoisonError, TryLockError};
use std::time::{Duration, Instant};

use rocksdb::{FlushOptions, DB};

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

/// The last sequence number seen and since when it has not moved.
#[derive(Debug)]
pub(super) struct Quiet {
    seq: u64,
    since: Instant,
}

impl Default for Quiet {
    fn default() -> Self {
        Self {
            seq: 0,
            since: Instant::now(),
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
            return false;
        }
        self.since.elapsed() >= quiet
    }
}

impl RocksStore {
    /// Starts writing the memtables out (without waiting for it) when
    /// the database has been quiet for `quiet` and they hold more than
    /// [`FLUSH_ABOVE`] bytes; whether it did.
    pub(super) fn flush_when_quiet(&self, quiet: Duration) -> Result<bool, StoreError> {
        // why not `with_db`: that reopens a closed database, and this runs
        // on the async runtime; a database being reopened (or closed) is
        // simply not looked at this time.
        let engine = match self.engine.try_read() {
            Ok(engine) => engine,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(false),
        };
        let Some(db) = &engine.db else {
            return Ok(false);
        };
        let seq = db.latest_sequence_number();
        let ready = self
            .quiet
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .quiet_for(seq, quiet);
        if !ready || memtable_bytes(db)? <= FLUSH_ABOVE {
            return Ok(false);
        }
        let mut background = FlushOptions::default();
        background.set_wait(false);
        for (name, cf) in column_families_in(db)? {
            db.flush_cf_opt(cf, &background)
                .map_err(|e| engine_error("flush", e))
                .inspect_err(|e| tracing::warn!(cf = name, error = %e, "idle flush failed"))?;
        }
        tracing::debug!("writing the memtables out after a quiet spell");
        Ok(true)
    }
}

/// Bytes held by the memtables of every column family, those being
/// written out included.
pub(super) fn memtable_bytes(db: &DB) -> Result<u64, StoreError> {
    let mut total = 0u64;
    for (_, cf) in column_families_in(db)? {
        let bytes = db
            .property_int_value_cf(cf, "rocksdb.cur-size-all-mem-tables")
            .map_err(|e| engine_error("memtable size", e))?;
        total = total.saturating_add(bytes.unwrap_or(0));
    }
    Ok(total)
}
