//! Message bodies: the [`BlobStore`] trait, next to [`Store`](super::Store)
//! and apart from it, and the local default, segment files
//! ([`SegmentBlobStore`]).
//!
//! # Why a store of their own
//!
//! Bodies are large, written once, read whole or in ranges, and deleted
//! when their last reference goes; metadata is small, read-modify-written
//! and transactional. Kept apart, each engine stores bodies the way that
//! suits it (segment files next to RocksDB, a `blobs` table in
//! PostgreSQL), and the metadata engine has no body special cases. The
//! layering follows the data flow: mail layer → metadata store + blob
//! store → engines.
//!
//! # Keys
//!
//! A key is the mail layer's `acct hash` (4 + 32 bytes), the key of
//! [`Cf::Blobs`](super::Cf::Blobs); the reference count of the body lives
//! in the metadata store under the same key in `blob_refs`.
//!
//! # The crash rule
//!
//! A body is durable before any metadata names it: the mail layer
//! [`BlobStore::put`]s the bodies of a change, and only then commits the
//! metadata (`write_if`) that references them. A body whose metadata
//! never committed (a crash in between, a conflict that re-ran the
//! change, a refused batch) is an *orphan*: no `blob_refs` entry names
//! it. Orphans are garbage, never a dangling reference, and
//! [`BlobStore::collect_orphans`] removes those that stayed unreferenced
//! for a while. The other way round, a body is deleted only after the
//! metadata commit that dropped its last reference; a crash before that
//! delete leaves an orphan too.
//!
//! # A delete racing a new put of the same body
//!
//! Keys of plaintext bodies are content digests (one body for identical
//! copies in an account), so a change may put a body that another change
//! is about to delete. Within one process the account lock stripes of the
//! mail layer serialise the two (the delete runs before the lock is
//! released). Across processes on one engine (nodes sharing PostgreSQL)
//! they would not: node A commits the drop of the last reference, node B
//! reads no reference, puts the same body and commits a new reference,
//! and A's delete, which follows its commit, removes B's body. So a blob
//! store that other processes write at once says so
//! ([`BlobStore::shared`]), and the mail layer then names every new body
//! with a random key instead of its digest: a key whose last reference is
//! gone is never put again, and nothing can come to name it.

use std::fmt;
use std::ops::Range;

use super::{KeyRange, StoreError};

mod index;
mod local;
pub(crate) mod segments;

pub(crate) use index::{BlobIndex, Stored};
pub use local::SegmentBlobStore;

/// Says, for each key, whether metadata references it (a `blob_refs`
/// entry exists): what [`BlobStore::collect_orphans`] asks the mail
/// layer.
pub type Referenced<'a> = &'a dyn Fn(&[Vec<u8>]) -> Result<Vec<bool>, StoreError>;

/// A store of message bodies, keyed by the mail layer's `acct hash`.
///
/// Blocking, like [`Store`](super::Store). Keys come from the mail layer
/// (ids it allocated, digests it computed); values are peer-supplied
/// message bytes of any size up to the server's message limit. No method
/// may panic on any key or value.
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// Stores every `(key, body)` of `items` (replacing a body already
    /// there). When this returns `Ok`, a metadata write committed after
    /// it that names these keys finds them after any crash: either the
    /// bodies are synced, or (an engine sharing one log with its
    /// metadata) they are in that log before the metadata write that
    /// syncs it. One call per change, however many bodies it holds.
    fn put(&self, items: &[(&[u8], &[u8])]) -> Result<(), StoreError>;

    /// The body at `key`, or `None`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The bytes `range` of the body at `key` (clamped to its length; an
    /// empty or inverted range yields no bytes), or `None` if there is no
    /// body: an IMAP partial fetch without reading the whole body.
    fn get_range(&self, key: &[u8], range: Range<u64>) -> Result<Option<Vec<u8>>, StoreError>;

    /// Removes the bodies at `keys` (no error for a missing one). Called
    /// after the metadata commit that dropped their last reference.
    fn delete(&self, keys: &[Vec<u8>]) -> Result<(), StoreError>;

    /// Up to `limit` keys of `range`, ascending: account removal, copying
    /// between engines, checks.
    fn keys(&self, range: &KeyRange, limit: usize) -> Result<Vec<Vec<u8>>, StoreError>;

    /// Removes orphans (see the module doc): bodies that `referenced`
    /// said were unreferenced at two calls at least [`ORPHAN_GRACE`]
    /// apart, or whatever the engine uses to know a body is that old, and
    /// that were not put again since. A body that `referenced` says is
    /// referenced is never removed. Returns how many were removed.
    fn collect_orphans(&self, referenced: Referenced<'_>) -> Result<u64, StoreError>;

    /// Whether other processes write this store at once (nodes sharing
    /// one database). The mail layer then never puts a body under a key
    /// that existed before (see the module doc). The default: no.
    fn shared(&self) -> bool {
        false
    }

    /// Routine housekeeping: gives back the space of deleted bodies where
    /// enough of it has piled up. The default does nothing.
    fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Drops deleted bodies from files now (after `sealmail reencrypt`,
    /// so replaced plaintext does not linger). The default does nothing.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// How long a body must have stayed unreferenced before orphan collection
/// removes it: far longer than any change takes from its body put to its
/// metadata commit (a change retries for milliseconds).
pub const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

#[cfg(test)]
pub(crate) mod contract;
#[cfg(test)]
mod tests;
