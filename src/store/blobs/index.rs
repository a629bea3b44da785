//! Where the segment blob store keeps its index: a [`BlobIndex`], given to
//! it by the metadata engine it is paired with.
//!
//! # Why the index lives in the metadata engine
//!
//! A body put costs one segment sync; its index entry is then written
//! *unsynced* into the metadata engine's log. The metadata commit that
//! follows (the one naming the body) syncs that log, and a synced write
//! persists everything logged before it, so a delivery costs two syncs
//! (segment + metadata), as before the blob store had a trait of its own.
//! An entry whose metadata never committed may be lost in a crash, which
//! leaves segment bytes nothing names: garbage for the segment collector,
//! never a dangling reference.
//!
//! Small bodies skip the segment and sync altogether: the index holds them
//! inline ([`Stored::Inline`]), and the metadata commit's sync is their
//! only one.

use std::fmt;

use super::super::{KeyRange, StoreError};
use super::segments::Location;

/// What the index holds for a key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// The body itself (small bodies).
    Inline(Vec<u8>),
    /// Where the body is in the segment files.
    Segment(Location),
}

// why: inline values are message bodies; Debug shows sizes only.
impl fmt::Debug for Stored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stored::Inline(v) => write!(f, "Inline({} bytes)", v.len()),
            Stored::Segment(loc) => write!(f, "Segment({loc:?})"),
        }
    }
}

/// The key → [`Stored`] map of a [`SegmentBlobStore`](super::SegmentBlobStore).
///
/// Writes need not be synced (see the module doc). The segment store
/// serialises every write; implementations need no locking of their own.
pub(crate) trait BlobIndex: Send + Sync + fmt::Debug + 'static {
    /// The entry of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Stored>, StoreError>;

    /// Sets the entries of `items`, all together, without a sync.
    fn set(&self, items: &[(&[u8], Stored)]) -> Result<(), StoreError>;

    /// Removes the entries of `keys`, without a sync.
    fn remove(&self, keys: &[Vec<u8>]) -> Result<(), StoreError>;

    /// Makes every write so far durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// Up to `limit` keys of `range`, ascending.
    fn keys(&self, range: &KeyRange, limit: usize) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Every entry held in a segment below segment number `below`.
    fn located_below(&self, below: u64) -> Result<Vec<(Vec<u8>, Location)>, StoreError>;

    /// Drops deleted inline values from the index's files now. The
    /// default does nothing.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
