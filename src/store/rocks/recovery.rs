//! Recovery of the database after an I/O error, without a restart.
//!
//! # Why
//!
//! When RocksDB fails to create a file it needs in the background (a new
//! WAL or SST file at a memtable switch or flush, e.g. with `EMFILE` while
//! a connection flood holds every descriptor), it records a background
//! error and refuses every later write with it, until the database is
//! opened again. rust-rocksdb 0.20 has no binding for `DB::Resume`, and a
//! second handle on the same directory cannot be opened while the first
//! holds its lock, so the only way back is to close the handle and open it
//! again in place.
//!
//! # Shape
//!
//! The handle sits in an [`Engine`] behind a `RwLock`: every operation
//! holds the read side for as long as it uses the handle (so a reader in
//! flight keeps the old handle alive until it is done), and a reopen takes
//! the write side, drops the old handle and opens a new one. A reopen is
//! tried when a write fails with an I/O-class error, and before any
//! operation while the handle is closed; attempts are spaced by a growing
//! backoff so a persistent failure (a full disk) does not loop hot, and
//! are skipped while the process has no spare descriptors at all, since
//! closing the handle then would only turn failing writes into failing
//! reads too. Acknowledged writes are in the fsynced WAL, which the reopen
//! replays.

use std::path::Path;
use std::sync::{MutexGuard, PoisonError, RwLockReadGuard};
use std::time::{Duration, Instant};

use rocksdb::{Cache, ErrorKind, DB};

use super::super::StoreError;
use super::RocksStore;

/// First pause after a failed reopen; doubled per failure up to
/// [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest pause between two reopen attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Descriptors that must be free before a reopen is worth trying: a
/// reopen opens the MANIFEST, the CURRENT and OPTIONS files, a new WAL and
/// directory handles.
const REOPEN_HEADROOM: usize = 32;

/// The open database, or none after a reopen that failed.
#[derive(Default)]
pub(super) struct Engine {
    pub(super) db: Option<DB>,
    /// Bumped by every reopen attempt, so that callers that saw the same
    /// failure reopen once, not once each.
    pub(super) generation: u64,
}

/// When the next reopen may be tried.
#[derive(Debug, Default)]
pub(super) struct Backoff {
    failures: u32,
    not_before: Option<Instant>,
}

impl RocksStore {
    /// The engine, for reading its handle. Never held while calling
    /// [`RocksStore::recover`] or while waiting for the commit lock.
    pub(super) fn engine(&self) -> RwLockReadGuard<'_, Engine> {
        self.engine.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the open database; when the handle is closed (a reopen
    /// failed), tries to reopen it first, subject to the backoff.
    pub(super) fn with_db<T>(
        &self,
        f: impl FnOnce(&DB) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let engine = self.engine();
        if let Some(db) = &engine.db {
            return f(db);
        }
        let generation = engine.generation;
        drop(engine);
        self.recover(generation)?;
        match &self.engine().db {
            Some(db) => f(db),
            None => Err(unavailable()),
        }
    }

    /// Closes and reopens the database in place, unless another caller
    /// already did since `seen` (the generation the caller's failure
    /// happened on), the backoff has not passed, or the process has no
    /// descriptors to spare. The caller holds no engine guard.
    pub(super) fn recover(&self, seen: u64) -> Result<(), StoreError> {
        let mut backoff = self.backoff.lock().unwrap_or_else(PoisonError::into_inner);
        if self.engine().generation != seen {
            return if self.engine().db.is_some() {
                Ok(())
            } else {
                Err(unavailable())
            };
        }
        if backoff.not_before.is_some_and(|t| Instant::now() < t) {
            return Err(unavailable());
        }
        if !descriptors_to_spare() {
            tracing::warn!("store not reopened yet: the process has no file descriptors to spare");
            return Err(failed_attempt(&mut backoff, "no file descriptors to spare"));
        }
        let mut engine = self.engine.write().unwrap_or_else(PoisonError::into_inner);
        engine.generation += 1;
        // why drop first: RocksDB's LOCK file refuses a second handle on
        // the same directory while the first is open.
        engine.db = None;
        match open_db(&self.path, &self.cache) {
            Ok(db) => {
                engine.db = Some(db);
                *backoff = Backoff::default();
                tracing::warn!("store reopened after an I/O error; writes work again");
                Ok(())
            }
            Err(e) => {
                let message = e.into_string();
                tracing::error!(error = %message, "store reopen failed; retrying later");
                Err(failed_attempt(&mut backoff, &sanitize(&message)))
            }
        }
    }
}

/// Records a failed attempt and returns the error for the caller.
fn failed_attempt(backoff: &mut MutexGuard<'_, Backoff>, reason: &str) -> StoreError {
    backoff.failures = backoff.failures.saturating_add(1);
    let pause = FIRST_BACKOFF
        .saturating_mul(1 << backoff.failures.min(8).saturating_sub(1))
        .min(MAX_BACKOFF);
    backoff.not_before = Some(Instant::now() + pause);
    StoreError::Engine {
        op: "reopen",
        message: format!("{reason}; retrying in {} ms", pause.as_millis()),
    }
}

/// The error while the handle is closed between reopen attempts.
pub(super) fn unavailable() -> StoreError {
    StoreError::Engine {
        op: "reopen",
        message: "the database is being reopened after an I/O error; try again shortly".into(),
    }
}

/// Whether a failed write is worth a reopen: I/O-class errors leave RocksDB
/// in its background-error state; an invalid argument is our bug and a
/// reopen would not change it.
pub(super) fn reopen_helps(e: &rocksdb::Error) -> bool {
    !matches!(
        e.kind(),
        ErrorKind::InvalidArgument | ErrorKind::NotSupported | ErrorKind::NotFound
    )
}

/// Opens (creating if missing) the database at `path` with every column
/// family, their table files' blocks cached in `cache`.
pub(super) fn open_db(path: &Path, cache: &Cache) -> Result<DB, rocksdb::Error> {
    let mut opts = rocksdb::Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    // why: small column families (accounts, mailboxes) rarely fill a
    // memtable, so without a cap every WAL file stays alive until they
    // do — gigabytes of WAL to keep on disk and replay at open. The cap
    // forces those flushes instead.
    opts.set_max_total_wal_size(256 << 20);
    DB::open_cf_descriptors(&opts, path, super::column_families(cache))
}

/// Whether [`REOPEN_HEADROOM`] descriptors can be opened now.
fn descriptors_to_spare() -> bool {
    let mut held = Vec::with_capacity(REOPEN_HEADROOM);
    for _ in 0..REOPEN_HEADROOM {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(_) => return false,
        }
    }
    true
}

/// An engine message without file paths: RocksDB names the file it failed
/// on (`IO error: While open a file for appending: /data/db/000012.log:
/// Too many open files`), and that text reaches LMTP, IMAP and JMAP
/// replies. Parts that look like a path are dropped; the full message is
/// logged where the error is made.
pub(super) fn sanitize(message: &str) -> String {
    message
        .split(": ")
        .filter(|part| !part.contains('/'))
        .collect::<Vec<_>>()
        .join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_drops_paths_and_keeps_the_reason() {
        assert_eq!(
            sanitize("IO error: While open a file for appending: /tmp/x/db/000012.log: Too many open files"),
            "IO error: While open a file for appending: Too many open files"
        );
        assert_eq!(sanitize("Corruption: bad block"), "Corruption: bad block");
    }
}
