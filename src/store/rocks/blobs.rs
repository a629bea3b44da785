//! Blob values on the engine: large ones in segment files, their
//! locations in the `blob_locations` column family, small ones inline.

use std::collections::BTreeMap;
use std::sync::PoisonError;

use rocksdb::{IteratorMode, WriteBatch, DB};

use super::super::error::corrupt;
use super::super::segments::{Location, ReadError, SEGMENT_MIN_VALUE};
use super::super::{BatchOp, Cf, KeyRange, KeyValue, Order, StoreError};
use super::{delete_range, handle, locations, read_error, scan_cf, RocksStore, RELOCATE_BYTES};

/// Adds a `Cf::Blobs` operation to `wb`: a value of [`SEGMENT_MIN_VALUE`]
/// and more has already been written to a segment at `location`, so only
/// the location goes into the batch.
pub(super) fn add_blob_op(
    db: &DB,
    wb: &mut WriteBatch,
    op: &BatchOp,
    location: Option<Location>,
) -> Result<(), StoreError> {
    let (blobs, locations) = (handle(db, Cf::Blobs)?, locations(db)?);
    match op {
        BatchOp::Put { key, value, .. } => match location {
            Some(loc) => {
                wb.put_cf(locations, key, loc.encode());
                wb.delete_cf(blobs, key);
            }
            None => {
                wb.put_cf(blobs, key, value);
                wb.delete_cf(locations, key);
            }
        },
        BatchOp::Delete { key, .. } => {
            wb.delete_cf(blobs, key);
            wb.delete_cf(locations, key);
        }
        BatchOp::DeleteRange { range, .. } => {
            delete_range(db, wb, Cf::Blobs, blobs, range)?;
            delete_range(db, wb, Cf::Blobs, locations, range)?;
        }
    }
    Ok(())
}

impl RocksStore {
    /// The blob at `key`: from its segment if it has a location, else
    /// from the `blobs` column family.
    pub(super) fn get_blob(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        // why two tries: the collector may move the blob and delete its old
        // segment between our reading the location and the segment.
        for attempt in 0..2 {
            let found = self.with_db(|db| {
                let Some(raw) = db
                    .get_cf(locations(db)?, key)
                    .map_err(|e| read_error(Cf::Blobs, "get", e))?
                else {
                    return db
                        .get_cf(handle(db, Cf::Blobs)?, key)
                        .map(Err)
                        .map_err(|e| read_error(Cf::Blobs, "get", e));
                };
                decode_location(&raw).map(Ok)
            })?;
            let loc = match found {
                Ok(loc) => loc,
                Err(inline) => return Ok(inline),
            };
            match self.segments.read(&loc) {
                Ok(bytes) => return Ok(Some(bytes)),
                Err(ReadError::Missing(_)) if attempt == 0 => continue,
                Err(e) => return Err(segment_error(e)),
            }
        }
        Err(corrupt(Cf::Blobs, "blob segment missing"))
    }

    /// A scan of `Cf::Blobs`: the inline values and the segment values,
    /// merged in key order.
    pub(super) fn scan_blobs(
        &self,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let (mut out, located) = self.with_db(|db| {
            Ok((
                scan_cf(db, Cf::Blobs, handle(db, Cf::Blobs)?, range, order, limit)?,
                scan_cf(db, Cf::Blobs, locations(db)?, range, order, limit)?,
            ))
        })?;
        for (key, raw) in located {
            let loc = decode_location(&raw)?;
            let bytes = self.segments.read(&loc).map_err(segment_error)?;
            out.push((key, bytes));
        }
        out.sort_by(|a, b| match order {
            Order::Forward => a.0.cmp(&b.0),
            Order::Reverse => b.0.cmp(&a.0),
        });
        out.truncate(limit);
        Ok(out)
    }

    /// Rewrites every closed segment that holds bytes no location names
    /// (deleted or replaced blobs, a crash's leftovers): its live values
    /// move to the current segment, their locations are repointed, and
    /// the old file is deleted.
    ///
    /// A segment is rewritten when at least `min_dead` of its bytes are
    /// dead (0.0: any dead byte at all).
    pub(super) fn collect_segments(&self, min_dead: f64) -> Result<(), StoreError> {
        let _one = self
            .collecting
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let boundary = self.segments.seal();
        // why: a commit that appended to a segment below the boundary before
        // the seal may not have written its location yet; wait for it.
        drop(self.commit.write().unwrap_or_else(PoisonError::into_inner));
        let mut live: BTreeMap<u64, Vec<(Vec<u8>, Location)>> = BTreeMap::new();
        self.with_db(|db| {
            for item in db.iterator_cf(locations(db)?, IteratorMode::Start) {
                let (key, raw) = item.map_err(|e| read_error(Cf::Blobs, "scan", e))?;
                let loc = decode_location(&raw)?;
                if loc.segment < boundary {
                    live.entry(loc.segment)
                        .or_default()
                        .push((key.into_vec(), loc));
                }
            }
            Ok(())
        })?;
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
            let mut start = 0;
            while start < entries.len() {
                let mut end = start;
                let mut bytes = 0;
                while end < entries.len() && (end == start || bytes < RELOCATE_BYTES) {
                    bytes += u64::from(entries[end].1.len);
                    end += 1;
                }
                self.relocate(&entries[start..end])?;
                start = end;
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

    /// A failed segment file operation, as a [`StoreError::Io`] (logged
    /// here with the directory; the error's text names no path).
    pub(super) fn segment_io(&self, source: std::io::Error) -> StoreError {
        tracing::warn!(dir = %self.segments.dir().display(), error = %source, "blob segment I/O failed");
        StoreError::Io {
            path: self.segments.dir().to_path_buf(),
            source,
        }
    }

    /// Copies the values at `entries` into the current segment and points
    /// each key there, unless a commit changed its location meanwhile.
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
        // why the commit lock before any engine guard: a writer holds the
        // commit lock's read side while it may reopen the engine.
        let _exclusive = self.commit.write().unwrap_or_else(PoisonError::into_inner);
        self.commit(|db| {
            let locations = locations(db)?;
            let mut wb = WriteBatch::default();
            for ((key, old), new) in entries.iter().zip(&moved) {
                let now = db
                    .get_cf(locations, key)
                    .map_err(|e| read_error(Cf::Blobs, "get", e))?;
                if now.as_deref().and_then(Location::decode) == Some(*old) {
                    wb.put_cf(locations, key, new.encode());
                }
            }
            Ok(wb)
        })
    }
}

/// The value of a `Cf::Blobs` put that goes to a segment.
pub(super) fn segment_value(op: &BatchOp) -> Option<&[u8]> {
    match op {
        BatchOp::Put {
            cf: Cf::Blobs,
            value,
            ..
        } if value.len() >= SEGMENT_MIN_VALUE => Some(value),
        _ => None,
    }
}

fn decode_location(raw: &[u8]) -> Result<Location, StoreError> {
    Location::decode(raw).ok_or_else(|| corrupt(Cf::Blobs, "undecodable blob location"))
}

fn segment_error(e: ReadError) -> StoreError {
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
