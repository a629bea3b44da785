//! Online backup of the embedded engine ([`MailStore::backup`], what
//! `sealmail backup DIR` asks the running server for) and its restore
//! ([`restore`], `sealmail restore DIR`, server stopped).
//!
//! # The cut
//!
//! A backup is the RocksDB database and the blob segment files as they
//! were at one moment, without stopping delivery. The crash rule of the
//! blob store (`blobs` module doc) makes that possible without a lock on
//! writers: a body is in its segment (synced) before the index entry and
//! the metadata naming it commit, and a body is deleted only after the
//! commit that dropped its last reference. So the backup
//!
//! 1. holds off the segment store's collectors (the only code that
//!    deletes a segment file; see `blobs::local::held`),
//! 2. takes a RocksDB checkpoint: the metadata and the blob index at one
//!    instant, the cut,
//! 3. copies each segment file up to its length read after the
//!    checkpoint, which covers every body the checkpoint names, then lets
//!    the collectors go, and
//! 4. copies the checkpoint's files.
//!
//! A body put after the cut is in the copied segments or not, and no
//! index entry of the checkpoint names it: garbage, as after a crash. A
//! body deleted after the cut is still in the copied segments, as the
//! checkpoint expects. A body whose change had not committed at the cut
//! is an orphan in the restored store, and orphan collection removes it.
//!
//! The checkpoint is made in the data directory (`backup-checkpoint/`,
//! hard links to the live files, so it costs no copy) and then copied;
//! the backup directory never shares a file with the live database.
//!
//! # The backup directory
//!
//! `DIR/manifest.json` (see `manifest`), `DIR/db/`, `DIR/segments/`,
//! files mode 0600. Everything is written into `DIR/.partial/` first and
//! moved into place when complete, the manifest last: a directory without
//! `manifest.json` is not a backup, whatever else it holds. The master
//! key is never in a backup: it lives outside `db/` and `segments/`.
//!
//! PostgreSQL installations are not backed up here: their data is in the
//! database, which `pg_dump` or `pg_basebackup` copy consistently
//! ([`BackupError::NotEmbedded`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::{RocksStore, SegmentBlobStore, StoreError};

mod manifest;
mod restore;
mod write;

pub use manifest::{FileEntry, Manifest, ENGINE_ROCKSDB, FORMAT_VERSION, MANIFEST_NAME};
pub use restore::{restore, verify, RestoreReport};

/// Why a backup or a restore did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The server runs on PostgreSQL.
    #[error("this server keeps its mail in PostgreSQL (store.engine = \"postgres\"), which `sealmail backup` does not copy: back the database up with pg_dump or pg_basebackup (message bodies are in it too), and keep a copy of the master key file (store.master_key) apart from it")]
    NotEmbedded,
    /// Another backup is running on this server.
    #[error("a backup of this server is already running; wait until it ends, then try again")]
    Busy,
    /// The backup directory was not given as an absolute path.
    #[error("{path:?} is not an absolute path; give the backup directory as one")]
    NotAbsolute {
        /// What was given.
        path: PathBuf,
    },
    /// The backup directory holds something already.
    #[error("{path:?} is not empty; give a new or empty directory, so that no file in it can be taken for part of this backup")]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The backup directory (or a file in it) could not be written: a
    /// link planted in it, permissions, a full disk.
    #[error("cannot write the backup: {message}; check that the directory is writable by the server's user and has space")]
    Target {
        /// What failed, naming the path.
        message: String,
    },
    /// Our own files (the checkpoint, a segment) could not be read.
    #[error("cannot read {path:?} for the backup: {source}")]
    Source {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The engine failed to make its checkpoint.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The directory given to restore holds no manifest.
    #[error("{path:?} holds no {MANIFEST_NAME}: it is not a complete sealmail backup (an interrupted backup has none); restore a complete one")]
    NoManifest {
        /// The directory.
        path: PathBuf,
    },
    /// The manifest cannot be read or names something it may not.
    #[error("the backup's manifest {path:?} is not usable: {detail}")]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// A file of the backup is missing, unreadable or differs from the
    /// manifest.
    #[error("backup file {path:?} {detail}: the backup is damaged or was changed after it was written; nothing was restored, restore another backup")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// How it differs.
        detail: String,
    },
    /// The data directory holds a store already.
    #[error("{path:?} already holds a store; restore into a data directory without one, or pass --replace to move the current db/ and segments/ aside first")]
    DataDirInUse {
        /// The data directory.
        path: PathBuf,
    },
    /// The data directory could not be written.
    #[error("cannot restore into {path:?}: {source}; check permissions and free space")]
    DataDir {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl BackupError {
    /// Whether the operator can fix it with another argument or another
    /// backup (exit code 1), rather than a failure of the server or the
    /// disk underneath (exit code 2).
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            Self::Source { .. } | Self::Store(_) | Self::DataDir { .. }
        )
    }
}

/// What an online backup needs of the embedded engine: the database to
/// checkpoint and the segment store whose collectors it holds off, both
/// of one data directory.
#[derive(Debug)]
pub(crate) struct LocalEngine {
    data_dir: PathBuf,
    db: Arc<RocksStore>,
    blobs: Arc<SegmentBlobStore>,
    /// One backup at a time: they would share the checkpoint directory.
    running: Mutex<()>,
}

impl LocalEngine {
    /// The engine of `data_dir`, opened as `db` and `blobs`. The
    /// checkpoint of a backup that a crash interrupted goes now: its hard
    /// links would keep the space of deleted database files.
    pub(crate) fn new(
        data_dir: PathBuf,
        db: Arc<RocksStore>,
        blobs: Arc<SegmentBlobStore>,
    ) -> Self {
        if let Err(e) = write::remove_checkpoint(&data_dir) {
            tracing::warn!(error = %e, "cannot remove the checkpoint of an interrupted backup");
        }
        Self {
            data_dir,
            db,
            blobs,
            running: Mutex::new(()),
        }
    }
}

#[cfg(test)]
mod tests;
