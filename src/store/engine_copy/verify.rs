//! Verification of a copy: per column family, the number of keys and a
//! SHA-256 over every key and value, computed on both sides from their
//! own reads.
//!
//! Each key and value enters the digest preceded by its length (u64,
//! big-endian), so no two different sequences of rows hash alike by
//! moving bytes between a key and its value. The target's progress
//! marker is left out: it is the copy's own bookkeeping.

use sha2::{Digest as _, Sha256};

use super::super::Cf;
use super::chunks::{read_chunk, successor, Limits};
use super::{
    CopyError, CopyProgress, StorePair, DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_KEYS, MARKER_KEY,
};

/// What one side holds in one column family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfDigest {
    /// Keys.
    pub keys: u64,
    /// Bytes of keys and values.
    pub bytes: u64,
    /// SHA-256 over every key and value in key order, each preceded by
    /// its length.
    pub sha256: [u8; 32],
}

/// Both sides of every column family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Per column family, in [`Cf::ALL`] order: (cf, source, target).
    pub cfs: Vec<(Cf, CfDigest, CfDigest)>,
}

impl Verification {
    /// Whether every column family is equal on both sides.
    pub fn is_equal(&self) -> bool {
        self.mismatches().next().is_none()
    }

    /// The column families that differ.
    pub fn mismatches(&self) -> impl Iterator<Item = (Cf, &CfDigest, &CfDigest)> {
        self.cfs
            .iter()
            .filter(|(_, s, t)| s != t)
            .map(|(cf, s, t)| (*cf, s, t))
    }

    /// Keys in the source, all column families.
    pub fn keys(&self) -> u64 {
        self.cfs.iter().map(|(_, s, _)| s.keys).sum()
    }
}

/// Reads both sides in full and compares them per column family.
/// `progress` is advanced by the keys read on both sides (the caller
/// announces the phase: it knows the total).
pub fn verify_copy(
    source: &StorePair<'_>,
    target: &StorePair<'_>,
    progress: &mut dyn CopyProgress,
) -> Result<Verification, CopyError> {
    let limits = Limits {
        keys: DEFAULT_CHUNK_KEYS,
        bytes: DEFAULT_CHUNK_BYTES,
    };
    let mut done = 0u64;
    let mut cfs = Vec::with_capacity(Cf::ALL.len());
    for cf in Cf::ALL {
        let s = digest(source, cf, limits, &mut |n| {
            done += n;
            progress.advance(done);
        })
        .map_err(CopyError::Source)?;
        let t = digest(target, cf, limits, &mut |n| {
            done += n;
            progress.advance(done);
        })
        .map_err(CopyError::Target)?;
        cfs.push((cf, s, t));
    }
    Ok(Verification { cfs })
}

/// The digest of `cf` in `store`, read in chunks; `read(n)` after each.
fn digest(
    store: &StorePair<'_>,
    cf: Cf,
    limits: Limits,
    read: &mut dyn FnMut(u64),
) -> Result<CfDigest, super::StoreError> {
    let mut hash = Sha256::new();
    let (mut keys, mut bytes) = (0u64, 0u64);
    let mut from = Vec::new();
    loop {
        let rows = read_chunk(store, cf, &from, limits)?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        from = successor(last);
        let before = keys;
        for (key, value) in &rows {
            if cf == Cf::Meta && key == MARKER_KEY {
                continue;
            }
            for part in [key, value] {
                hash.update((part.len() as u64).to_be_bytes());
                hash.update(part);
            }
            keys += 1;
            bytes += (key.len() + value.len()) as u64;
        }
        read(keys - before);
    }
    Ok(CfDigest {
        keys,
        bytes,
        sha256: hash.finalize().into(),
    })
}
