//! Large blob values in append-only segment files next to the database.
//!
//! # Why
//!
//! RocksDB passes every value through its write-ahead log and again
//! through a blob file at flush, computing a CRC32C each time; Debian's
//! `librocksdb` is a portable build that does that in software (about
//! 1 GB/s). For a list fan-out of 64 KiB messages that was half of all CPU
//! (benches/RESULTS.md). A value written here is copied once, checksummed
//! in hardware (`crc32fast`), and synced before the RocksDB batch that
//! points at it commits, so a pointer is never durable before its bytes.
//!
//! # Layout and lifecycle
//!
//! `data_dir/segments/<16 hex digits>.seg`, numbered upwards. A segment is
//! appended to only by the process that created it: after a restart a new
//! one is started, so a tail torn by a crash is never written after. Bytes
//! that no pointer names (a crash between the segment sync and the commit,
//! a deleted or replaced blob) are garbage until the collector (see
//! `SegmentBlobStore::compact`) copies a segment's live values into the current
//! segment, repoints them and deletes the old file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::store::error::corrupt;
use crate::store::{Cf, StoreError};

/// Values of this size and more go to segments; smaller ones stay in
/// RocksDB, where one WAL sync covers them (a segment costs a second
/// sync).
pub(crate) const SEGMENT_MIN_VALUE: usize = 16 * 1024;

/// A segment takes no new appends once it is this large.
const SEGMENT_TARGET: u64 = 256 << 20;

/// Open read handles kept at most; beyond that the cache starts over.
const READ_HANDLES: usize = 64;

/// Where a value lives: stored in RocksDB in place of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub(crate) segment: u64,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    /// CRC-32 (IEEE) of the value.
    pub(crate) crc: u32,
}

impl Location {
    const VERSION: u8 = 1;
    const ENCODED: usize = 1 + 8 + 8 + 4 + 4;

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::ENCODED);
        out.push(Self::VERSION);
        out.extend_from_slice(&self.segment.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        out.extend_from_slice(&self.crc.to_be_bytes());
        out
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != Self::ENCODED || bytes[0] != Self::VERSION {
            return None;
        }
        let u64_at = |i: usize| bytes[i..i + 8].try_into().ok().map(u64::from_be_bytes);
        let u32_at = |i: usize| bytes[i..i + 4].try_into().ok().map(u32::from_be_bytes);
        Some(Self {
            segment: u64_at(1)?,
            offset: u64_at(9)?,
            len: u32_at(17)?,
            crc: u32_at(21)?,
        })
    }

    /// One past the last byte.
    pub(crate) fn end(&self) -> u64 {
        self.offset + u64::from(self.len)
    }
}

/// Why a segment read failed.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The segment file is gone (collected after the location was read,
    /// or lost).
    Missing(PathBuf),
    /// The file is shorter than the location says, or the checksum does
    /// not match.
    Corrupt(String),
    Io(PathBuf, io::Error),
}

/// Writes `values` at `base` in segment `number` and syncs them; their
/// locations, in order.
fn write_synced(
    file: &File,
    number: u64,
    base: u64,
    values: &[&[u8]],
) -> io::Result<Vec<Location>> {
    let mut out = Vec::with_capacity(values.len());
    let mut offset = base;
    for value in values {
        let len =
            u32::try_from(value.len()).map_err(|_| io::Error::other("blob larger than 4 GiB"))?;
        file.write_all_at(value, offset)?;
        out.push(Location {
            segment: number,
            offset,
            len,
            crc: crc32fast::hash(value),
        });
        offset += u64::from(len);
    }
    file.sync_data()?;
    Ok(out)
}

/// The segment currently appended to.
#[derive(Debug)]
struct Current {
    number: u64,
    file: Arc<File>,
    len: u64,
}

/// The segment files of one data directory.
#[derive(Debug)]
pub(crate) struct Segments {
    dir: PathBuf,
    /// `None` until the first append after open or [`Segments::seal`].
    current: Mutex<Option<Current>>,
    /// The number the next new segment gets.
    next: Mutex<u64>,
    readers: Mutex<HashMap<u64, Arc<File>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Segments {
    /// Opens (creating if missing) the segment directory `dir`.
    pub(crate) fn open(dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let next = Self::list_dir(dir)?.last().map_or(0, |n| n + 1);
        Ok(Self {
            dir: dir.to_path_buf(),
            current: Mutex::new(None),
            next: Mutex::new(next),
            readers: Mutex::new(HashMap::new()),
        })
    }

    /// The directory holding the segment files.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn path(&self, number: u64) -> PathBuf {
        self.dir.join(format!("{number:016x}.seg"))
    }

    /// Segment numbers present on disk, ascending.
    fn list_dir(dir: &Path) -> io::Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
                continue;
            };
            if let Ok(n) = u64::from_str_radix(stem, 16) {
                out.push(n);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// Segment numbers present on disk, ascending.
    pub(crate) fn list(&self) -> io::Result<Vec<u64>> {
        Self::list_dir(&self.dir)
    }

    /// Appends `values` (all to one segment) and syncs them to disk.
    /// Returns their locations, in order.
    pub(crate) fn append(&self, values: &[&[u8]]) -> io::Result<Vec<Location>> {
        let total: u64 = values.iter().map(|v| v.len() as u64).sum();
        let (number, file, base) = {
            let mut current = lock(&self.current);
            let full = current
                .as_ref()
                .is_none_or(|c| c.len > 0 && c.len + total > SEGMENT_TARGET);
            if full {
                *current = Some(self.create()?);
            }
            let Some(c) = current.as_mut() else {
                return Err(io::Error::other("no current segment after create"));
            };
            let base = c.len;
            c.len += total;
            (c.number, Arc::clone(&c.file), base)
        };
        let written = write_synced(&file, number, base, values);
        if written.is_err() {
            // why: after a failed write or fsync the file's state on disk
            // is unknown (Linux may drop the dirty pages and report the
            // next fsync as clean), so no later value may rely on it; the
            // next append starts a new segment.
            let mut current = lock(&self.current);
            if current.as_ref().is_some_and(|c| c.number == number) {
                *current = None;
            }
        }
        written
    }

    /// Starts a new segment file (and makes its name durable). A file
    /// created whose name could not be synced stays behind empty: the
    /// collector removes it.
    fn create(&self) -> io::Result<Current> {
        let number = {
            let mut next = lock(&self.next);
            let n = *next;
            *next += 1;
            n
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(self.path(number))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(Current {
            number,
            file: Arc::new(file),
            len: 0,
        })
    }

    /// Closes the current segment for appends; the next append starts a
    /// new one. Returns the lowest number a segment started after this
    /// call can have: every segment below it is closed.
    pub(crate) fn seal(&self) -> u64 {
        let mut current = lock(&self.current);
        *current = None;
        *lock(&self.next)
    }

    /// Reads and checks the value at `loc`.
    pub(crate) fn read(&self, loc: &Location) -> Result<Vec<u8>, ReadError> {
        let path = self.path(loc.segment);
        let file = self.reader(loc.segment, &path)?;
        let mut buf = vec![0; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                ReadError::Corrupt(format!(
                    "{} ends before byte {} of a blob",
                    path.display(),
                    loc.end()
                ))
            } else {
                ReadError::Io(path.clone(), e)
            }
        })?;
        if crc32fast::hash(&buf) != loc.crc {
            return Err(ReadError::Corrupt(format!(
                "checksum mismatch for the blob at {}:{}",
                path.display(),
                loc.offset
            )));
        }
        Ok(buf)
    }

    /// Reads the bytes `range` of the value at `loc` (clamped to it),
    /// without checking the value's checksum.
    ///
    /// why unchecked: the checksum covers the whole value, and a partial
    /// fetch that read the whole body to check it would save nothing; a
    /// range read trusts the file system as any read of part of a file
    /// does, and the full reads (FETCH of the whole body, copies) still
    /// check it.
    pub(crate) fn read_range(
        &self,
        loc: &Location,
        range: std::ops::Range<u64>,
    ) -> Result<Vec<u8>, ReadError> {
        let len = u64::from(loc.len);
        let start = range.start.min(len);
        let end = range.end.min(len).max(start);
        let path = self.path(loc.segment);
        let file = self.reader(loc.segment, &path)?;
        let size = usize::try_from(end - start)
            .map_err(|_| ReadError::Corrupt("blob range beyond memory".into()))?;
        let mut buf = vec![0; size];
        file.read_exact_at(&mut buf, loc.offset + start)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    ReadError::Corrupt(format!(
                        "{} ends before byte {} of a blob",
                        path.display(),
                        loc.offset + end
                    ))
                } else {
                    ReadError::Io(path.clone(), e)
                }
            })?;
        Ok(buf)
    }

    fn reader(&self, number: u64, path: &Path) -> Result<Arc<File>, ReadError> {
        if let Some(file) = lock(&self.readers).get(&number) {
            return Ok(Arc::clone(file));
        }
        let file = match File::open(path) {
            Ok(f) => Arc::new(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ReadError::Missing(path.to_path_buf()))
            }
            Err(e) => return Err(ReadError::Io(path.to_path_buf(), e)),
        };
        let mut readers = lock(&self.readers);
        if readers.len() >= READ_HANDLES {
            readers.clear();
        }
        readers.insert(number, Arc::clone(&file));
        Ok(file)
    }

    /// The size of segment `number` on disk.
    pub(crate) fn size(&self, number: u64) -> io::Result<u64> {
        Ok(std::fs::metadata(self.path(number))?.len())
    }

    /// Deletes segment `number` (after no pointer names it any more).
    pub(crate) fn remove(&self, number: u64) -> io::Result<()> {
        lock(&self.readers).remove(&number);
        match std::fs::remove_file(self.path(number)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// A failed segment read as a [`StoreError`], logged with the path (the
/// error's text names none: it may reach a client's reply).
pub(crate) fn segment_error(e: ReadError) -> StoreError {
    match e {
        ReadError::Missing(path) => {
            tracing::error!(path = %path.display(), "blob segment missing");
            corrupt(Cf::Blobs, "a blob segment file is missing")
        }
        ReadError::Corrupt(detail) => {
            tracing::error!(%detail, "blob segment damaged");
            corrupt(
                Cf::Blobs,
                "a blob segment file is damaged (checksum or length); the server log names it",
            )
        }
        ReadError::Io(path, source) => {
            tracing::warn!(path = %path.display(), error = %source, "blob segment read failed");
            StoreError::Io { path, source }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_round_trips_and_rejects_other_lengths() {
        let loc = Location {
            segment: 7,
            offset: 1 << 40,
            len: 90_000,
            crc: 0xdead_beef,
        };
        assert_eq!(Location::decode(&loc.encode()), Some(loc));
        assert_eq!(Location::decode(&loc.encode()[1..]), None);
        let mut other = loc.encode();
        other[0] = 2;
        assert_eq!(Location::decode(&other), None);
    }

    #[test]
    fn append_read_and_detect_damage() {
        let dir = tempfile::tempdir().unwrap();
        let segs = Segments::open(dir.path()).unwrap();
        let a = vec![1u8; 20_000];
        let b = vec![2u8; 30_000];
        let locs = segs.append(&[&a, &b]).unwrap();
        assert_eq!(locs[0].segment, locs[1].segment);
        assert_eq!(locs[1].offset, 20_000);
        assert_eq!(segs.read(&locs[0]).unwrap(), a);
        assert_eq!(segs.read(&locs[1]).unwrap(), b);

        // A flipped byte on disk is a checksum error, not wrong data.
        let path = segs.path(locs[1].segment);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[25_000] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let fresh = Segments::open(dir.path()).unwrap();
        assert!(
            matches!(fresh.read(&locs[1]), Err(ReadError::Corrupt(m)) if m.contains("checksum"))
        );
        let past = Location {
            offset: 60_000,
            ..locs[0]
        };
        assert!(
            matches!(fresh.read(&past), Err(ReadError::Corrupt(m)) if m.contains("ends before"))
        );
    }

    #[test]
    fn reopen_and_seal_start_new_segments() {
        let dir = tempfile::tempdir().unwrap();
        let first = Segments::open(dir.path())
            .unwrap()
            .append(&[b"x".as_slice()])
            .unwrap()[0];
        let segs = Segments::open(dir.path()).unwrap();
        let second = segs.append(&[b"y".as_slice()]).unwrap()[0];
        assert!(second.segment > first.segment, "{first:?} {second:?}");
        let boundary = segs.seal();
        let third = segs.append(&[b"z".as_slice()]).unwrap()[0];
        assert!(third.segment >= boundary && second.segment < boundary);
        assert_eq!(segs.list().unwrap().len(), 3);
        segs.remove(first.segment).unwrap();
        assert!(matches!(segs.read(&first), Err(ReadError::Missing(_))));
        assert_eq!(segs.read(&third).unwrap(), b"z");
    }
}
