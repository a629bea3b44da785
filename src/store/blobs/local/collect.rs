//! The two collectors of the segment blob store: the segment collector
//! (gives back the space of deleted bodies) and orphan collection (removes
//! bodies no metadata ever named, see the crash rule in `blobs`).

use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::time::Instant;

use super::super::index::Stored;
use super::super::segments::{segment_error, Location};
use super::super::Referenced;
use super::{lock, SegmentBlobStore, ORPHAN_PAGE};
use crate::store::{KeyRange, StoreError};

/// Bytes of live values the segment collector moves per index write.
const RELOCATE_BYTES: u64 = 64 << 20;

/// Routine maintenance rewrites a segment once a quarter of it is dead,
/// so deleted mail gives its space back while a segment that lost one
/// message is not rewritten for it.
pub(super) const MAINTAIN_MIN_DEAD: f64 = 0.25;

impl SegmentBlobStore {
    /// Rewrites every closed segment that holds bytes no entry names
    /// (deleted or replaced bodies, a crash's leftovers): its live values
    /// move to the current segment, their entries are repointed, and the
    /// old file is deleted. A segment is rewritten when at least
    /// `min_dead` of its bytes are dead (0.0: any dead byte at all).
    pub(super) fn collect_segments(&self, min_dead: f64) -> Result<(), StoreError> {
        let _one = lock(&self.collecting);
        let boundary = self.segments.seal();
        // why: a put that appended to a segment below the boundary before
        // the seal may not have written its entry yet; wait for it.
        drop(self.commit.write().unwrap_or_else(PoisonError::into_inner));
        let mut live: BTreeMap<u64, Vec<(Vec<u8>, Location)>> = BTreeMap::new();
        for (key, loc) in self.index.located_below(boundary)? {
            live.entry(loc.segment).or_default().push((key, loc));
        }
        let io = |source| self.segment_io(source);
        for number in self.segments.list().map_err(io)? {
            if number >= boundary {
                continue;
            }
            let entries = live.remove(&number).unwrap_or_default();
            let used: u64 = entries.iter().map(|(_, l)| u64::from(l.len)).sum();
            let size = self.segments.size(number).map_err(io)?;
            #[expect(
                clippy::cast_precision_loss,
                reason = "a ratio of file sizes; rounding is harmless"
            )]
            let dead = size.saturating_sub(used) as f64 / size.max(1) as f64;
            if size > 0 && (used == size || dead < min_dead) {
                continue;
            }
            for chunk in chunks(&entries) {
                self.relocate(chunk)?;
            }
            self.segments.remove(number).map_err(io)?;
            tracing::debug!(
                segment = number,
                live_bytes = used,
                size,
                "blob segment collected"
            );
        }
        Ok(())
    }

    /// Copies the values at `entries` into the current segment and points
    /// each key there, unless a put or delete changed its entry meanwhile.
    fn relocate(&self, entries: &[(Vec<u8>, Location)]) -> Result<(), StoreError> {
        let values = entries
            .iter()
            .map(|(_, loc)| self.segments.read(loc).map_err(segment_error))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let moved = self
            .segments
            .append(&refs)
            .map_err(|source| self.segment_io(source))?;
        let _exclusive = self.commit.write().unwrap_or_else(PoisonError::into_inner);
        let mut repoint = Vec::with_capacity(entries.len());
        for ((key, old), new) in entries.iter().zip(moved) {
            if self.index.get(key)? == Some(Stored::Segment(*old)) {
                repoint.push((key.as_slice(), Stored::Segment(new)));
            }
        }
        self.index.set(&repoint)?;
        // why synced: the old segment is deleted after this returns; an
        // entry still naming it after a crash would dangle.
        self.index.sync()
    }

    /// Removes the keys that `referenced` called unreferenced now and at
    /// a call at least the grace period ago, and that no put touched
    /// since. Returns how many went.
    pub(super) fn remove_orphans(&self, referenced: Referenced<'_>) -> Result<u64, StoreError> {
        let _one = lock(&self.collecting);
        let mut removed = 0;
        let mut from = Vec::new();
        let mut seen_unreferenced = std::collections::HashSet::new();
        loop {
            let range = KeyRange {
                start: std::mem::take(&mut from),
                end: None,
            };
            let keys = self.index.keys(&range, ORPHAN_PAGE)?;
            let Some(last) = keys.last() else { break };
            from = successor(last);
            let flags = referenced(&keys)?;
            if flags.len() != keys.len() {
                return Err(crate::store::error::bug("one reference flag per key"));
            }
            let now = Instant::now();
            let mut due = Vec::new();
            {
                let mut suspects = lock(&self.suspects);
                for (key, referenced) in keys.into_iter().zip(flags) {
                    if referenced {
                        suspects.remove(&key);
                        continue;
                    }
                    let since = *suspects.entry(key.clone()).or_insert(now);
                    if now.duration_since(since) >= self.grace {
                        due.push(key.clone());
                    }
                    seen_unreferenced.insert(key);
                }
            }
            removed += self.remove_if_still_suspect(due)?;
        }
        // why: a suspect that is gone now (deleted, or referenced and
        // removed) must not be remembered with its old time.
        lock(&self.suspects).retain(|k, _| seen_unreferenced.contains(k));
        Ok(removed)
    }

    /// Removes `due` keys that are still suspects (no put since), with
    /// every put and delete held off.
    fn remove_if_still_suspect(&self, due: Vec<Vec<u8>>) -> Result<u64, StoreError> {
        if due.is_empty() {
            return Ok(0);
        }
        let _exclusive = self.commit.write().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<Vec<u8>> = {
            let mut suspects = lock(&self.suspects);
            due.into_iter()
                .filter(|k| suspects.remove(k).is_some())
                .collect()
        };
        self.index.remove(&gone)?;
        for _ in &gone {
            tracing::info!("orphan blob removed (its change never committed)");
        }
        Ok(gone.len() as u64)
    }
}

/// `entries` in runs of about [`RELOCATE_BYTES`] (at least one each).
fn chunks(entries: &[(Vec<u8>, Location)]) -> Vec<&[(Vec<u8>, Location)]> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < entries.len() && (end == start || bytes < RELOCATE_BYTES) {
            bytes += u64::from(entries[end].1.len);
            end += 1;
        }
        out.push(&entries[start..end]);
        start = end;
    }
    out
}

/// The smallest key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = key.to_vec();
    next.push(0);
    next
}
