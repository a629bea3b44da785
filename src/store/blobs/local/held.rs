//! Holding the segment files still for an online backup: [`Held`].
//!
//! # Why holding the collectors is enough
//!
//! Segment bytes change in two ways only. Appends write past the end of
//! the current segment, at offsets nothing names yet, and are synced
//! before the index entry naming them is written. The segment collector
//! moves live values to a new segment, repoints their entries and then
//! deletes the old file; it is the only code that deletes a segment, and
//! nothing ever rewrites bytes in place. Orphan collection only removes
//! index entries. So while both collectors are held off (they take
//! `collecting` first), every segment that exists stays, and every byte
//! an index entry already names stays as it is.
//!
//! A backup takes the hold, then the checkpoint of the index (the
//! metadata database), then [`Held::files`]: each file's length, read
//! after the checkpoint, covers every location the checkpoint holds
//! (those bytes were synced before their entry was written, and the entry
//! before the checkpoint). Copying that many bytes of each file, before
//! the hold ends, gives segments that match the checkpoint; bytes past a
//! location the checkpoint names are garbage to it, as after a crash.

use std::path::PathBuf;
use std::sync::MutexGuard;

use super::{lock, SegmentBlobStore};

/// One segment file and the bytes of it to copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SegmentFile {
    /// Its name in the segment directory (`<16 hex digits>.seg`).
    pub(crate) name: String,
    /// Where it is.
    pub(crate) path: PathBuf,
    /// Its length when listed: every byte any entry written before the
    /// listing names lies below it.
    pub(crate) len: u64,
}

/// Both collectors of a [`SegmentBlobStore`] held off: no segment is
/// deleted while this lives. Puts, gets and deletes go on.
#[derive(Debug)]
pub(crate) struct Held<'a> {
    store: &'a SegmentBlobStore,
    _collecting: MutexGuard<'a, ()>,
}

impl SegmentBlobStore {
    /// Waits for a collector in progress to finish, then holds both off
    /// until the [`Held`] is dropped. Routine maintenance and `compact`
    /// wait meanwhile (on the blocking pool); deliveries do not.
    pub(crate) fn hold_collectors(&self) -> Held<'_> {
        Held {
            store: self,
            _collecting: lock(&self.collecting),
        }
    }
}

impl Held<'_> {
    /// Every segment file with its length now, ascending.
    pub(crate) fn files(&self) -> std::io::Result<Vec<SegmentFile>> {
        let segments = &self.store.segments;
        let mut out = Vec::new();
        for number in segments.list()? {
            let path = segments.path(number);
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| std::io::Error::other("a segment file name is not UTF-8"))?
                .to_string();
            out.push(SegmentFile {
                name,
                len: segments.size(number)?,
                path,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::blobs::BlobStore;
    use crate::store::rocks::test_index;
    use crate::store::RocksStore;

    #[test]
    fn a_held_store_keeps_its_segments_through_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(RocksStore::open(dir.path()).unwrap());
        let blobs = Arc::new(
            SegmentBlobStore::open(&dir.path().join("segments"), Arc::new(test_index(&db)))
                .unwrap(),
        );
        let body = vec![7u8; 40_000];
        blobs.put(&[(b"k1".as_slice(), body.as_slice())]).unwrap();
        blobs.delete(&[b"k1".to_vec()]).unwrap();

        let held = blobs.hold_collectors();
        let before = held.files().unwrap();
        assert_eq!(before.len(), 1);
        assert!(before[0].len >= 40_000, "{before:?}");
        let compacting = {
            let blobs = Arc::clone(&blobs);
            std::thread::spawn(move || blobs.compact().unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!compacting.is_finished(), "compaction waits for the hold");
        assert!(before[0].path.exists());
        drop(held);
        compacting.join().unwrap();
        assert!(
            !before[0].path.exists(),
            "after the hold the dead segment is collected"
        );
    }
}
