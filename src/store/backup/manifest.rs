//! `manifest.json`, the last file a backup writes and the first a restore
//! reads: what the backup holds, with a SHA-256 of every file.
//!
//! ```text
//! {"format": 1, "sealmailVersion": "0.1.0", "created": "2026-05-01T10:00:00Z",
//!  "engine": "rocksdb",
//!  "files": [{"path": "db/000009.sst", "size": 1234, "sha256": "9f86..."}, ...]}
//! ```
//!
//! Paths are `db/NAME` or `segments/NAME`, NAME a plain file name of
//! letters, digits, `.`, `_` and `-`: a manifest can name nothing outside
//! those two directories, whoever wrote it.

use std::collections::HashSet;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The name of the manifest in a backup directory.
pub const MANIFEST_NAME: &str = "manifest.json";

/// The manifest format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// The engine name of the embedded store in a manifest.
pub const ENGINE_ROCKSDB: &str = "rocksdb";

/// The directories of a backup, as they are in the data directory.
pub(crate) const PARTS: [&str; 2] = ["db", "segments"];

/// Bytes read per step of a copy or a check.
const CHUNK_BYTES: usize = 1 << 20;

/// What a backup holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    /// The version of the sealmail that wrote it.
    pub sealmail_version: String,
    /// When the cut was taken, RFC 3339 UTC.
    pub created: String,
    /// The engine whose files these are ([`ENGINE_ROCKSDB`]).
    pub engine: String,
    /// Every file, with its size and checksum.
    pub files: Vec<FileEntry>,
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileEntry {
    /// `db/NAME` or `segments/NAME`.
    pub path: String,
    /// Its length in bytes.
    pub size: u64,
    /// SHA-256 of its bytes, lowercase hex.
    pub sha256: String,
}

impl Manifest {
    /// The manifest of `files`, written now by this build.
    pub(crate) fn new(files: Vec<FileEntry>) -> Self {
        Self {
            format: FORMAT_VERSION,
            sealmail_version: env!("CARGO_PKG_VERSION").to_string(),
            created: now_rfc3339(),
            engine: ENGINE_ROCKSDB.to_string(),
            files,
        }
    }

    /// Parses a manifest and checks what a restore relies on: a format
    /// this build reads, the embedded engine, safe and distinct paths.
    /// The error says what is wrong.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self, String> {
        let manifest: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if manifest.format > FORMAT_VERSION || manifest.format == 0 {
            return Err(format!(
                "format {} (this sealmail reads format {FORMAT_VERSION}); restore with the sealmail {} that wrote it, or a newer one",
                manifest.format, manifest.sealmail_version
            ));
        }
        if manifest.engine != ENGINE_ROCKSDB {
            return Err(format!(
                "engine {:?}; `sealmail restore` brings back the embedded store ({ENGINE_ROCKSDB:?})",
                manifest.engine
            ));
        }
        let mut seen = HashSet::new();
        for file in &manifest.files {
            split_path(&file.path)?;
            if !seen.insert(file.path.as_str()) {
                return Err(format!("{:?} is listed twice", file.path));
            }
            if file.sha256.len() != 64 || !file.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "the checksum of {:?} is not SHA-256 hex",
                    file.path
                ));
            }
        }
        Ok(manifest)
    }

    /// Bytes of every file together.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// `(part, name)` of a manifest path, or why it is not one a backup can
/// hold.
pub(crate) fn split_path(path: &str) -> Result<(&'static str, &str), String> {
    let refuse = || format!("{path:?} is not a backup file path (db/NAME or segments/NAME)");
    let (part, name) = path.split_once('/').ok_or_else(refuse)?;
    let part = PARTS.into_iter().find(|p| *p == part).ok_or_else(refuse)?;
    let plain = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if name.is_empty() || name.len() > 255 || !plain || name.starts_with('.') {
        return Err(refuse());
    }
    Ok((part, name))
}

/// Why [`copy_hashed`] stopped.
#[derive(Debug)]
pub(crate) enum CopyError {
    /// Reading the source failed, or it ended early.
    Read(std::io::Error),
    /// Writing the copy failed.
    Write(std::io::Error),
}

/// Copies exactly `len` bytes of `from` into `to` (when given) and returns
/// their SHA-256 in hex; a source shorter than `len` is a read error.
pub(crate) fn copy_hashed(
    from: &mut impl Read,
    len: u64,
    mut to: Option<&mut dyn Write>,
) -> Result<String, CopyError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).map_or(CHUNK_BYTES, |l| l.min(CHUNK_BYTES));
        let got = match from.read(&mut buf[..want]) {
            Ok(0) => {
                return Err(CopyError::Read(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("it ends {left} bytes early"),
                )))
            }
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..got]);
        if let Some(to) = to.as_mut() {
            to.write_all(&buf[..got]).map_err(CopyError::Write)?;
        }
        left -= got as u64;
    }
    Ok(hex(&hasher.finalize()))
}

/// Now, RFC 3339 UTC to the second.
fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| now.unix_timestamp().to_string())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> FileEntry {
        FileEntry {
            path: path.into(),
            size: 3,
            sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn round_trips_and_refuses_paths_outside_the_store() {
        let good = Manifest::new(vec![entry("db/000009.sst"), entry("segments/00ab.seg")]);
        let bytes = serde_json::to_vec(&good).unwrap();
        assert_eq!(Manifest::parse(&bytes).unwrap(), good);
        for bad in [
            "db/../master.key",
            "../db/x",
            "/etc/passwd",
            "db/",
            "db/.hidden",
            "db/a/b",
            "other/x",
            "db",
            "db/x\ny",
        ] {
            let m = Manifest::new(vec![entry(bad)]);
            let err = Manifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap_err();
            assert!(err.contains("not a backup file path"), "{bad:?}: {err}");
        }
        let twice = Manifest::new(vec![entry("db/CURRENT"), entry("db/CURRENT")]);
        let err = Manifest::parse(&serde_json::to_vec(&twice).unwrap()).unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn refuses_a_newer_format_and_another_engine() {
        let mut m = Manifest::new(vec![]);
        m.format = FORMAT_VERSION + 1;
        let err = Manifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert!(err.contains("format"), "{err}");
        let mut m = Manifest::new(vec![]);
        m.engine = "postgres".into();
        let err = Manifest::parse(&serde_json::to_vec(&m).unwrap()).unwrap_err();
        assert!(err.contains("engine"), "{err}");
    }

    #[test]
    fn copy_hashed_copies_exactly_and_notices_a_short_source() {
        let data = vec![5u8; 3 * CHUNK_BYTES / 2 + 7];
        let mut out = Vec::new();
        let sum = copy_hashed(&mut data.as_slice(), 1000, Some(&mut out)).unwrap();
        assert_eq!(out, &data[..1000]);
        assert_eq!(sum, hex(&Sha256::digest(&data[..1000])));
        let all = copy_hashed(&mut data.as_slice(), data.len() as u64, None).unwrap();
        assert_eq!(all, hex(&Sha256::digest(&data)));
        let short = copy_hashed(&mut data.as_slice(), data.len() as u64 + 1, None);
        assert!(
            matches!(&short, Err(CopyError::Read(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
            "{short:?}"
        );
    }
}
