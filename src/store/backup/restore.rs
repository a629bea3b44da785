//! Restoring a backup into a data directory: [`verify`] and [`restore`].
//! The server is stopped; the caller holds the data directory's lock.
//!
//! Every file is checked against the manifest before anything in the
//! data directory changes, and checked again as it is copied (so a file
//! changed between the two reads is not restored). The copy goes to
//! `data_dir/.restore/` and is moved into place when complete; a store
//! already there is refused, or with `replace` moved aside to
//! `data_dir/pre-restore-<unix time>/`, never deleted.
//!
//! The backup directory is read without following links below it
//! (`nofollow`): a backup on shared storage cannot make a restore read
//! some other file.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::manifest::{
    copy_hashed, split_path, CopyError, FileEntry, Manifest, MANIFEST_NAME, PARTS,
};
use super::BackupError;
use crate::nofollow::Dir;

/// Where a restore copies to before moving into place.
const STAGING_DIR: &str = ".restore";

/// What a restore did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The manifest of the backup restored.
    pub manifest: Manifest,
    /// Where the store that was in the data directory went (`replace`).
    pub moved_aside: Option<PathBuf>,
}

/// Reads the manifest of the backup in `dir` and checks every file it
/// lists (size and SHA-256). The error names the first file that differs.
pub fn verify(dir: &Path) -> Result<Manifest, BackupError> {
    let backup = Backup::open(dir)?;
    for file in &backup.manifest.files {
        backup.check(file, None)?;
    }
    Ok(backup.manifest)
}

/// Verifies the backup in `dir`, then copies it into `data_dir` as its
/// `db/` and `segments/`. A data directory holding a store is refused
/// unless `replace`, which moves that store aside first. Restored files
/// get the owner of `data_dir` (for a restore run as root).
pub fn restore(dir: &Path, data_dir: &Path, replace: bool) -> Result<RestoreReport, BackupError> {
    let backup = Backup::open(dir)?;
    for file in &backup.manifest.files {
        backup.check(file, None)?;
    }
    let occupied = occupied_parts(data_dir)?;
    if !occupied.is_empty() && !replace {
        return Err(BackupError::DataDirInUse {
            path: data_dir.to_path_buf(),
        });
    }
    let staging = data_dir.join(STAGING_DIR);
    stage(&backup, &staging)?;
    let moved_aside = if occupied.is_empty() {
        None
    } else {
        Some(move_aside(data_dir, &occupied)?)
    };
    for part in PARTS {
        let io = data_dir_error(&data_dir.join(part));
        std::fs::rename(staging.join(part), data_dir.join(part)).map_err(io)?;
    }
    std::fs::remove_dir(&staging).map_err(data_dir_error(&staging))?;
    sync_dir(data_dir)?;
    Ok(RestoreReport {
        manifest: backup.manifest,
        moved_aside,
    })
}

/// A backup directory opened for reading: its manifest and its parts.
struct Backup {
    manifest: Manifest,
    /// `db/` and `segments/`, in the order of [`PARTS`]; `None` when absent.
    parts: Vec<Option<Dir>>,
}

impl Backup {
    fn open(dir: &Path) -> Result<Self, BackupError> {
        let manifest_path = dir.join(MANIFEST_NAME);
        let tree = |e: crate::nofollow::TreeError| BackupError::BadManifest {
            path: manifest_path.clone(),
            detail: e.to_string(),
        };
        let root = Dir::open_root(dir, false).map_err(tree)?;
        if root
            .kind(OsStr::new(MANIFEST_NAME))
            .map_err(tree)?
            .is_none()
        {
            return Err(BackupError::NoManifest {
                path: dir.to_path_buf(),
            });
        }
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut root.open_regular(OsStr::new(MANIFEST_NAME)).map_err(tree)?,
            &mut bytes,
        )
        .map_err(|e| BackupError::BadManifest {
            path: manifest_path.clone(),
            detail: e.to_string(),
        })?;
        let manifest = Manifest::parse(&bytes).map_err(|detail| BackupError::BadManifest {
            path: manifest_path.clone(),
            detail,
        })?;
        let parts = PARTS
            .iter()
            .map(|p| root.open_dir(OsStr::new(p)))
            .collect::<Result<_, _>>()
            .map_err(|e| BackupError::Mismatch {
                path: dir.to_path_buf(),
                detail: format!("cannot be read: {e}"),
            })?;
        Ok(Self { manifest, parts })
    }

    /// Checks `file` against the manifest while copying it into `to`.
    fn check(&self, file: &FileEntry, to: Option<&mut dyn Write>) -> Result<(), BackupError> {
        let (part, name) = split_path(&file.path).map_err(|detail| BackupError::Mismatch {
            path: PathBuf::from(&file.path),
            detail,
        })?;
        let index = PARTS.iter().position(|p| *p == part).unwrap_or_default();
        let dir = self.parts.get(index).and_then(Option::as_ref);
        let shown = dir.map_or_else(|| PathBuf::from(&file.path), |d| d.path().join(name));
        let mismatch = |detail: String| BackupError::Mismatch {
            path: shown.clone(),
            detail,
        };
        let dir = dir.ok_or_else(|| mismatch("is missing".into()))?;
        let mut source = dir
            .open_regular(OsStr::new(name))
            .map_err(|e| mismatch(format!("cannot be read ({e})")))?;
        let size = source
            .metadata()
            .map_err(|e| mismatch(format!("cannot be read ({e})")))?
            .len();
        if size != file.size {
            return Err(mismatch(format!(
                "is {size} bytes, the manifest says {}",
                file.size
            )));
        }
        let sum = match copy_hashed(&mut source, file.size, to) {
            Ok(sum) => sum,
            Err(CopyError::Read(e)) => return Err(mismatch(format!("cannot be read ({e})"))),
            Err(CopyError::Write(e)) => {
                return Err(BackupError::DataDir {
                    path: PathBuf::from(&file.path),
                    source: e,
                })
            }
        };
        if !sum.eq_ignore_ascii_case(&file.sha256) {
            return Err(mismatch(format!(
                "has SHA-256 {sum}, the manifest says {}",
                file.sha256
            )));
        }
        Ok(())
    }
}

fn data_dir_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError {
    let path = path.to_path_buf();
    move |source| BackupError::DataDir { path, source }
}

/// The parts (`db`, `segments`) of `data_dir` that hold anything; empty
/// ones are removed, so the restored ones can take their place.
fn occupied_parts(data_dir: &Path) -> Result<Vec<&'static str>, BackupError> {
    let mut occupied = Vec::new();
    for part in PARTS {
        let path = data_dir.join(part);
        let empty_dir = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(data_dir_error(&path)(e)),
            Ok(meta) if meta.is_dir() => std::fs::read_dir(&path)
                .map_err(data_dir_error(&path))?
                .next()
                .is_none(),
            Ok(_) => false,
        };
        if empty_dir {
            std::fs::remove_dir(&path).map_err(data_dir_error(&path))?;
        } else {
            occupied.push(part);
        }
    }
    Ok(occupied)
}

/// Moves `parts` of `data_dir` into a new `pre-restore-<unix time>/`.
fn move_aside(data_dir: &Path, parts: &[&str]) -> Result<PathBuf, BackupError> {
    let secs = time::OffsetDateTime::now_utc().unix_timestamp();
    let aside = data_dir.join(format!("pre-restore-{secs}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&aside)
        .map_err(data_dir_error(&aside))?;
    for part in parts {
        std::fs::rename(data_dir.join(part), aside.join(part))
            .map_err(data_dir_error(&data_dir.join(part)))?;
    }
    Ok(aside)
}

/// Copies every file of `backup` into `staging/{db,segments}` (a leftover
/// of an interrupted restore is removed first), checking each again, and
/// gives the copies the owner of the data directory.
fn stage(backup: &Backup, staging: &Path) -> Result<(), BackupError> {
    match std::fs::remove_dir_all(staging) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(data_dir_error(staging)(e))
        }
        _ => {}
    }
    let owner = staging
        .parent()
        .map(std::fs::metadata)
        .transpose()
        .map_err(data_dir_error(staging))?;
    let mut created = Vec::new();
    for dir in std::iter::once(staging.to_path_buf()).chain(PARTS.iter().map(|p| staging.join(p))) {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(data_dir_error(&dir))?;
        created.push(dir);
    }
    for file in &backup.manifest.files {
        let path = staging.join(&file.path);
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(data_dir_error(&path))?;
        backup.check(file, Some(&mut out))?;
        out.sync_all().map_err(data_dir_error(&path))?;
        created.push(path);
    }
    for part in PARTS {
        sync_dir(&staging.join(part))?;
    }
    if let Some(owner) = owner {
        for path in &created {
            let mine = std::fs::metadata(path).map_err(data_dir_error(path))?;
            if (mine.uid(), mine.gid()) != (owner.uid(), owner.gid()) {
                std::os::unix::fs::lchown(path, Some(owner.uid()), Some(owner.gid()))
                    .map_err(data_dir_error(path))?;
            }
        }
    }
    Ok(())
}

fn sync_dir(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(data_dir_error(path))
}
