//! [`SegmentBlobStore`]: the local default [`BlobStore`]. Bodies of
//! [`SEGMENT_MIN_VALUE`] and more are appended to segment files (synced);
//! smaller ones, and the locations of the large ones, go into a
//! [`BlobIndex`] the paired metadata engine keeps (see `index`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::index::{BlobIndex, Stored};
use super::segments::{segment_error, Segments, SEGMENT_MIN_VALUE};
use super::{BlobStore, Referenced, ORPHAN_GRACE};
use crate::store::{KeyRange, StoreError};

mod collect;
mod held;

/// Keys asked of the index (and of `referenced`) per step of orphan
/// collection.
const ORPHAN_PAGE: usize = 1_000;

/// The segment files plus their index: the local default [`BlobStore`].
#[derive(Debug)]
pub struct SegmentBlobStore {
    segments: Segments,
    index: Arc<dyn BlobIndex>,
    /// Shared by every put and delete from its segment append to its index
    /// write; taken exclusively by the collectors, so they never act on
    /// an index entry a put is about to replace.
    commit: RwLock<()>,
    /// One collector at a time.
    collecting: Mutex<()>,
    /// Keys seen unreferenced by orphan collection, with when first seen;
    /// a put of the key forgets it.
    suspects: Mutex<HashMap<Vec<u8>, Instant>>,
    grace: Duration,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SegmentBlobStore {
    /// Opens (creating if missing) the segment directory `dir`, indexed
    /// by `index`.
    pub(crate) fn open(dir: &Path, index: Arc<dyn BlobIndex>) -> Result<Self, StoreError> {
        let segments = Segments::open(dir).map_err(|source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Self {
            segments,
            index,
            commit: RwLock::new(()),
            collecting: Mutex::new(()),
            suspects: Mutex::new(HashMap::new()),
            grace: ORPHAN_GRACE,
        })
    }

    /// The same store, removing orphans after `grace` instead of
    /// [`ORPHAN_GRACE`] (tests).
    #[must_use]
    pub fn with_orphan_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// The directory of the segment files.
    pub fn segments_dir(&self) -> &Path {
        self.segments.dir()
    }

    /// A failed segment file operation, as a [`StoreError::Io`] (logged
    /// here with the directory; the error's text names no path).
    fn segment_io(&self, source: std::io::Error) -> StoreError {
        tracing::warn!(dir = %self.segments.dir().display(), error = %source, "blob segment I/O failed");
        StoreError::Io {
            path: self.segments.dir().to_path_buf(),
            source,
        }
    }

    /// The entry of `key`, read from its segment; retried once because
    /// the collector may move a body and delete its old segment between
    /// our reading the location and the segment.
    fn read(&self, key: &[u8], range: Option<&Range<u64>>) -> Result<Option<Vec<u8>>, StoreError> {
        for attempt in 0..2 {
            let loc = match self.index.get(key)? {
                None => return Ok(None),
                Some(Stored::Inline(bytes)) => return Ok(Some(clamp(bytes, range))),
                Some(Stored::Segment(loc)) => loc,
            };
            let read = match range {
                None => self.segments.read(&loc),
                Some(r) => self.segments.read_range(&loc, r.clone()),
            };
            match read {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(super::segments::ReadError::Missing(_)) if attempt == 0 => continue,
                Err(e) => return Err(segment_error(e)),
            }
        }
        Err(crate::store::error::corrupt(
            crate::store::Cf::Blobs,
            "blob segment missing",
        ))
    }
}

/// `bytes` cut to `range` (clamped), or all of them.
fn clamp(bytes: Vec<u8>, range: Option<&Range<u64>>) -> Vec<u8> {
    let Some(r) = range else { return bytes };
    let len = bytes.len();
    let start = usize::try_from(r.start).unwrap_or(usize::MAX).min(len);
    let end = usize::try_from(r.end)
        .unwrap_or(usize::MAX)
        .min(len)
        .max(start);
    bytes[start..end].to_vec()
}

impl BlobStore for SegmentBlobStore {
    fn put(&self, items: &[(&[u8], &[u8])]) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let large: Vec<&[u8]> = items
            .iter()
            .map(|(_, v)| *v)
            .filter(|v| v.len() >= SEGMENT_MIN_VALUE)
            .collect();
        // why held from before the append: the collector waits for every
        // put in flight, so it never deletes a segment an entry about to
        // be written names.
        let _shared = self.commit.read().unwrap_or_else(PoisonError::into_inner);
        // why before the index: an entry must never be durable before the
        // bytes it names (Segments::append syncs them).
        let mut locations = if large.is_empty() {
            Vec::new()
        } else {
            self.segments
                .append(&large)
                .map_err(|e| self.segment_io(e))?
        }
        .into_iter();
        let mut entries = Vec::with_capacity(items.len());
        for (key, value) in items {
            let stored =
                if value.len() >= SEGMENT_MIN_VALUE {
                    Stored::Segment(locations.next().ok_or_else(|| {
                        crate::store::error::bug("a segment location per large blob")
                    })?)
                } else {
                    Stored::Inline(value.to_vec())
                };
            entries.push((*key, stored));
        }
        let mut suspects = lock(&self.suspects);
        for (key, _) in items {
            suspects.remove(*key);
        }
        self.index.set(&entries)
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(key, None)
    }

    fn get_range(&self, key: &[u8], range: Range<u64>) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(key, Some(&range))
    }

    fn delete(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        let _shared = self.commit.read().unwrap_or_else(PoisonError::into_inner);
        self.index.remove(keys)
    }

    fn keys(&self, range: &KeyRange, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        self.index.keys(range, limit)
    }

    fn collect_orphans(&self, referenced: Referenced<'_>) -> Result<u64, StoreError> {
        self.remove_orphans(referenced)
    }

    fn maintain(&self) -> Result<(), StoreError> {
        self.collect_segments(collect::MAINTAIN_MIN_DEAD)
    }

    fn compact(&self) -> Result<(), StoreError> {
        self.index.compact()?;
        self.collect_segments(0.0)
    }
}
