//! Writing a backup: [`MailStore::backup`], the cut (see the module doc
//! of `backup`) and the backup directory, written below `DIR/.partial`
//! without following a link and moved into place when complete.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::sync::TryLockError;

use super::manifest::{copy_hashed, CopyError, FileEntry, Manifest, MANIFEST_NAME};
use super::{BackupError, LocalEngine};
use crate::nofollow::{Dir, TreeError};
use crate::store::MailStore;

/// The checkpoint's directory inside the data directory while a backup
/// runs; a leftover of a killed backup is removed by the next one.
const CHECKPOINT_DIR: &str = "backup-checkpoint";

/// Where a backup is written until it is complete.
const PARTIAL_DIR: &str = ".partial";

/// Permission bits of what a backup writes: mail, only for its owner.
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

impl MailStore {
    /// Writes a consistent copy of the running store into the directory
    /// `dir` (absolute; created when missing, refused when not empty):
    /// `db/`, `segments/` and `manifest.json`, which it returns. Deliveries
    /// and reads go on meanwhile; the segment collectors wait. Blocking,
    /// and long for a large store.
    ///
    /// `dir` comes from the operator (the management API on
    /// `admin.sock`); nothing below it is followed if it is a link.
    pub fn backup(&self, dir: &Path) -> Result<Manifest, BackupError> {
        self.local
            .as_ref()
            .ok_or(BackupError::NotEmbedded)?
            .backup(dir)
    }
}

impl LocalEngine {
    fn backup(&self, dir: &Path) -> Result<Manifest, BackupError> {
        let _one = match self.running.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(BackupError::Busy),
        };
        let target = Target::prepare(dir)?;
        let written = self
            .write_into(&target)
            .map(Manifest::new)
            .and_then(|manifest| target.finish(&manifest).map(|()| manifest));
        match written {
            Ok(manifest) => {
                tracing::info!(
                    dir = %dir.display(),
                    files = manifest.files.len(),
                    bytes = manifest.bytes(),
                    "backup written"
                );
                Ok(manifest)
            }
            Err(e) => {
                target.discard();
                Err(e)
            }
        }
    }

    /// Takes the cut and copies it into `target`; the files written.
    fn write_into(&self, target: &Target) -> Result<Vec<FileEntry>, BackupError> {
        let scratch = self.data_dir.join(CHECKPOINT_DIR);
        remove_checkpoint(&self.data_dir)?;
        let mut files = Vec::new();
        {
            let held = self.blobs.hold_collectors();
            self.db.checkpoint(&scratch)?;
            // why listed after the checkpoint: each length then covers
            // every body the checkpoint names (`blobs::local::held`).
            let segments = held.files().map_err(|source| BackupError::Source {
                path: self.blobs.segments_dir().to_path_buf(),
                source,
            })?;
            for segment in segments {
                files.push(target.copy_in(
                    Part::Segments,
                    &segment.name,
                    &segment.path,
                    segment.len,
                )?);
            }
        }
        let copied = copy_checkpoint(target, &scratch, &mut files);
        remove_checkpoint(&self.data_dir)?;
        copied?;
        Ok(files)
    }
}

/// Copies every file of the checkpoint at `scratch` into `target`'s `db/`.
fn copy_checkpoint(
    target: &Target,
    scratch: &Path,
    files: &mut Vec<FileEntry>,
) -> Result<(), BackupError> {
    let source = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Source { path, source }
    };
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(scratch).map_err(source(scratch))? {
        let entry = entry.map_err(source(scratch))?;
        let meta = entry.metadata().map_err(source(&entry.path()))?;
        if !meta.is_file() {
            return Err(BackupError::Source {
                path: entry.path(),
                source: std::io::Error::other("not a regular file in a RocksDB checkpoint"),
            });
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        entries.push((name, entry.path(), meta.len()));
    }
    entries.sort();
    for (name, path, len) in entries {
        files.push(target.copy_in(Part::Db, &name, &path, len)?);
    }
    Ok(())
}

/// Removes the checkpoint directory of `data_dir` and everything below
/// it, if it is there (links in it are removed, not followed).
pub(super) fn remove_checkpoint(data_dir: &Path) -> Result<(), BackupError> {
    let path = data_dir.join(CHECKPOINT_DIR);
    match std::fs::remove_dir_all(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(BackupError::Source { path, source: e })
        }
        _ => Ok(()),
    }
}

/// The two directories of a backup.
#[derive(Debug, Clone, Copy)]
enum Part {
    Db,
    Segments,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Db => "db",
            Part::Segments => "segments",
        }
    }
}

fn target_error(e: TreeError) -> BackupError {
    BackupError::Target {
        message: e.to_string(),
    }
}

/// The backup directory being written: `DIR` and `DIR/.partial/{db,segments}`.
#[derive(Debug)]
struct Target {
    root: Dir,
    partial: Dir,
    db: Dir,
    segments: Dir,
}

impl Target {
    /// Opens (creating when missing) the empty directory `dir` and makes
    /// `.partial/` in it.
    fn prepare(dir: &Path) -> Result<Self, BackupError> {
        if !dir.is_absolute() {
            return Err(BackupError::NotAbsolute {
                path: dir.to_path_buf(),
            });
        }
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(BackupError::Target {
                    message: format!("{dir:?}: {e}"),
                })
            }
            _ => {}
        }
        let root = Dir::open_root(dir, false).map_err(target_error)?;
        if !root.entries().map_err(target_error)?.is_empty() {
            return Err(BackupError::NotEmpty {
                path: dir.to_path_buf(),
            });
        }
        let partial = root
            .create_dir_new(OsStr::new(PARTIAL_DIR), DIR_MODE)
            .map_err(target_error)?;
        let db = partial
            .create_dir_new(OsStr::new(Part::Db.name()), DIR_MODE)
            .map_err(target_error)?;
        let segments = partial
            .create_dir_new(OsStr::new(Part::Segments.name()), DIR_MODE)
            .map_err(target_error)?;
        Ok(Self {
            root,
            partial,
            db,
            segments,
        })
    }

    fn dir(&self, part: Part) -> &Dir {
        match part {
            Part::Db => &self.db,
            Part::Segments => &self.segments,
        }
    }

    /// Copies the first `len` bytes of `from` into `part/name`, synced.
    fn copy_in(
        &self,
        part: Part,
        name: &str,
        from: &Path,
        len: u64,
    ) -> Result<FileEntry, BackupError> {
        let read_error = |source| BackupError::Source {
            path: from.to_path_buf(),
            source,
        };
        let mut source = File::open(from).map_err(read_error)?;
        let dir = self.dir(part);
        let mut out = dir
            .create_new_mode(OsStr::new(name), FILE_MODE)
            .map_err(target_error)?;
        let write_error = |e: std::io::Error| BackupError::Target {
            message: format!("{:?}: {e}", dir.path().join(name)),
        };
        let sha256 = match copy_hashed(&mut source, len, Some(&mut out)) {
            Ok(sum) => sum,
            Err(CopyError::Read(e)) => return Err(read_error(e)),
            Err(CopyError::Write(e)) => return Err(write_error(e)),
        };
        out.sync_all().map_err(write_error)?;
        Ok(FileEntry {
            path: format!("{}/{name}", part.name()),
            size: len,
            sha256,
        })
    }

    /// Writes the manifest and moves everything into place, the manifest
    /// last.
    fn finish(&self, manifest: &Manifest) -> Result<(), BackupError> {
        let name = OsStr::new(MANIFEST_NAME);
        let mut file = self
            .partial
            .create_new_mode(name, FILE_MODE)
            .map_err(target_error)?;
        let write_error = |e: std::io::Error| BackupError::Target {
            message: format!("{:?}: {e}", self.partial.path().join(MANIFEST_NAME)),
        };
        let json = serde_json::to_vec_pretty(manifest).map_err(|e| BackupError::Target {
            message: format!("cannot encode the manifest: {e}"),
        })?;
        file.write_all(&json).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        for dir in [&self.db, &self.segments, &self.partial] {
            dir.sync().map_err(target_error)?;
        }
        for part in [Part::Db, Part::Segments] {
            let part = OsStr::new(part.name());
            self.partial
                .rename(part, &self.root, part)
                .map_err(target_error)?;
        }
        self.root.sync().map_err(target_error)?;
        self.partial
            .rename(name, &self.root, name)
            .map_err(target_error)?;
        self.root
            .remove_dir(OsStr::new(PARTIAL_DIR))
            .map_err(target_error)?;
        self.root.sync().map_err(target_error)
    }

    /// Removes what a failed backup wrote, so the directory can be used
    /// again; what cannot be removed stays (and is not a backup: it has no
    /// manifest).
    fn discard(&self) {
        let partial: PathBuf = self.root.path().join(PARTIAL_DIR);
        if let Err(e) = std::fs::remove_dir_all(&partial) {
            tracing::warn!(path = %partial.display(), error = %e, "cannot remove an unfinished backup");
        }
    }
}
