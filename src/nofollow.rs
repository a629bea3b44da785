//! Directory trees that `export` and `backup` write and `import` and
//! `restore` read without ever following a symbolic link below the
//! directory the operator named.
//!
//! These commands usually run as root (or as the server's user) on trees
//! someone else may have shaped (a Maildir in a home directory, mailbox
//! names chosen over IMAP, a backup directory on shared storage), so a
//! path is never resolved as a whole: the operator's directory is opened
//! once (a link there is the operator's own choice), and every step below
//! it is one `openat`/`mkdirat` relative to an open directory with
//! `O_NOFOLLOW`. A link swapped in between two steps is then refused by
//! the kernel, not followed. Files are opened with `O_NONBLOCK` so that a
//! FIFO cannot stall a command, and only regular files are read.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::Errno;

/// Why a step in the tree was not taken.
#[derive(Debug)]
pub(crate) enum TreeError {
    /// The entry is a symbolic link: never followed.
    Link(PathBuf),
    /// The entry exists but is not what was needed (a directory, or a
    /// regular file to read).
    Kind {
        /// The entry.
        path: PathBuf,
        /// What it is.
        found: &'static str,
    },
    /// The system call failed.
    Io(PathBuf, std::io::Error),
}

impl TreeError {
    /// The error for an entry of `kind` at `path` where a regular file
    /// was wanted.
    pub(crate) fn not_regular(path: PathBuf, kind: FileType) -> Self {
        match kind {
            FileType::Symlink => Self::Link(path),
            kind => Self::Kind {
                path,
                found: describe(kind, "a regular file"),
            },
        }
    }
}

impl fmt::Display for TreeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // why: quoted and escaped, since names below the operator's
            // directory may hold terminal control characters.
            Self::Link(path) => write!(f, "{path:?} is a symbolic link, which is never followed"),
            Self::Kind { path, found } => write!(f, "{path:?} is {found}"),
            Self::Io(path, e) => write!(f, "{path:?}: {e}"),
        }
    }
}

/// An open directory and the path it was reached by (for messages).
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the operator's directory `path` (links in it are followed:
    /// the operator chose it), creating it first when `create`.
    pub(crate) fn open_root(path: &Path, create: bool) -> Result<Self, TreeError> {
        let io = |e: std::io::Error| TreeError::Io(path.to_owned(), e);
        if create {
            std::fs::create_dir_all(path).map_err(io)?;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(CWD, path, flags, Mode::empty()).map_err(|e| io(e.into()))?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The path this directory was reached by.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The subdirectory `name`, created when missing; a link or another
    /// kind of file there is refused.
    pub(crate) fn create_dir(&self, name: &OsStr) -> Result<Self, TreeError> {
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o777)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(TreeError::Io(self.path.join(name), e.into())),
        }
        self.open_dir(name)?
            .ok_or_else(|| TreeError::Io(self.path.join(name), Errno::NOENT.into()))
    }

    /// The existing subdirectory `name`; `None` when there is none.
    pub(crate) fn open_dir(&self, name: &OsStr) -> Result<Option<Self>, TreeError> {
        let path = self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Self { fd, path })),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::LOOP | Errno::NOTDIR) => Err(self.wrong_kind(name, "a directory")),
            Err(e) => Err(TreeError::Io(path, e.into())),
        }
    }

    /// What kind of file `name` is (a link is not followed); `None` when
    /// there is none.
    pub(crate) fn kind(&self, name: &OsStr) -> Result<Option<FileType>, TreeError> {
        match rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(TreeError::Io(self.path.join(name), e.into())),
        }
    }

    /// The error for `name` when it is not `wanted`: a link, or another kind.
    fn wrong_kind(&self, name: &OsStr, wanted: &'static str) -> TreeError {
        let path = self.path.join(name);
        match self.kind(name) {
            Ok(Some(FileType::Symlink)) => TreeError::Link(path),
            Ok(Some(kind)) => TreeError::Kind {
                path,
                found: describe(kind, wanted),
            },
            Ok(None) => TreeError::Io(path, Errno::NOENT.into()),
            Err(e) => e,
        }
    }

    /// Every entry but `.` and `..`, with its kind (a link is a link), in
    /// name order.
    pub(crate) fn entries(&self) -> Result<Vec<(OsString, FileType)>, TreeError> {
        let io = |e: Errno| TreeError::Io(self.path.clone(), e.into());
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd).map_err(io)? {
            let entry = entry.map_err(io)?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_owned();
            if name == "." || name == ".." {
                continue;
            }
            let kind = match entry.file_type() {
                // why: some file systems do not fill d_type.
                FileType::Unknown => self.kind(&name)?.unwrap_or(FileType::Unknown),
                kind => kind,
            };
            out.push((name, kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Opens `name` for reading if it is a regular file; a link, FIFO,
    /// socket or device is refused without being read (or waited on).
    pub(crate) fn open_regular(&self, name: &OsStr) -> Result<File, TreeError> {
        let path = self.path.join(name);
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return Err(TreeError::Link(path)),
            Err(e) => return Err(TreeError::Io(path, e.into())),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| TreeError::Io(path.clone(), e.into()))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Ok(File::from(fd)),
            kind => Err(TreeError::Kind {
                path,
                found: describe(kind, "a regular file"),
            }),
        }
    }

    /// Creates `name` for writing; fails if anything (a link too) is there.
    pub(crate) fn create_new(&self, name: &OsStr) -> Result<File, TreeError> {
        self.create_new_mode(name, 0o666)
    }

    /// [`Dir::create_new`] with permission bits `mode` (before the umask).
    pub(crate) fn create_new_mode(&self, name: &OsStr, mode: u32) -> Result<File, TreeError> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rustix::fs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))
            .map(File::from)
            .map_err(|e| TreeError::Io(self.path.join(name), e.into()))
    }

    /// Creates the subdirectory `name` with permission bits `mode`; fails
    /// if anything (a link too) is there already.
    pub(crate) fn create_dir_new(&self, name: &OsStr, mode: u32) -> Result<Self, TreeError> {
        rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode))
            .map_err(|e| TreeError::Io(self.path.join(name), e.into()))?;
        self.open_dir(name)?
            .ok_or_else(|| TreeError::Io(self.path.join(name), Errno::NOENT.into()))
    }

    /// Removes the empty subdirectory `name`.
    pub(crate) fn remove_dir(&self, name: &OsStr) -> Result<(), TreeError> {
        rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR)
            .map_err(|e| TreeError::Io(self.path.join(name), e.into()))
    }

    /// Makes the directory's entries (names created, renamed, removed)
    /// durable.
    pub(crate) fn sync(&self) -> Result<(), TreeError> {
        rustix::fs::fsync(&self.fd).map_err(|e| TreeError::Io(self.path.clone(), e.into()))
    }

    /// Removes the file (or link: its target is untouched) `name`, if any.
    pub(crate) fn remove_file(&self, name: &OsStr) -> Result<(), TreeError> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(TreeError::Io(self.path.join(name), e.into())),
        }
    }

    /// Moves `name` to `to`/`to_name` (a link at the target is replaced,
    /// never followed).
    pub(crate) fn rename(&self, name: &OsStr, to: &Dir, to_name: &OsStr) -> Result<(), TreeError> {
        rustix::fs::renameat(&self.fd, name, &to.fd, to_name)
            .map_err(|e| TreeError::Io(to.path.join(to_name), e.into()))
    }
}

/// "a FIFO, not a regular file", and so on.
fn describe(kind: FileType, wanted: &'static str) -> &'static str {
    match (kind, wanted) {
        (FileType::Directory, _) => "a directory, not a regular file",
        (FileType::Fifo, _) => "a FIFO, not a regular file",
        (FileType::Socket, _) => "a socket, not a regular file",
        (FileType::CharacterDevice | FileType::BlockDevice, _) => "a device, not a regular file",
        (FileType::RegularFile, "a directory") => "a file, not a directory",
        _ => "not a regular file or directory",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_refused_at_every_step() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret"), "root only").unwrap();
        let root_path = tmp.path().join("root");
        let root = Dir::open_root(&root_path, true).unwrap();
        std::os::unix::fs::symlink(&outside, root_path.join("dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), root_path.join("file")).unwrap();
        assert!(matches!(
            root.create_dir("dir".as_ref()),
            Err(TreeError::Link(_))
        ));
        assert!(matches!(
            root.open_dir("dir".as_ref()),
            Err(TreeError::Link(_))
        ));
        assert!(matches!(
            root.open_regular("file".as_ref()),
            Err(TreeError::Link(_))
        ));
        assert!(root.create_new("file".as_ref()).is_err());
        assert_eq!(std::fs::read(outside.join("secret")).unwrap(), b"root only");
        let kinds: Vec<_> = root
            .entries()
            .unwrap()
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        assert_eq!(kinds, [FileType::Symlink, FileType::Symlink]);
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(tmp.path().join("pipe"))
            .status()
            .unwrap();
        assert!(status.success());
        let root = Dir::open_root(tmp.path(), false).unwrap();
        let err = root.open_regular("pipe".as_ref()).unwrap_err().to_string();
        assert!(err.contains("FIFO"), "{err}");
    }
}
