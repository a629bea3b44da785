//! Reading a column family in chunks bounded by keys and bytes, through
//! nothing but [`Store::scan`].

use super::super::{Cf, KeyRange, KeyValue, Order, StoreError};
use super::StorePair;

/// Bounds of one chunk.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Most keys (at least 1).
    pub(super) keys: usize,
    /// Bytes of keys and values after which the chunk ends.
    pub(super) bytes: usize,
}

/// Keys asked for per scan of `cf` when filling a chunk of `limits`.
fn scan_limit(cf: Cf, limits: Limits) -> usize {
    // why one at a time for blobs: the trait has no keys-only scan, and a
    // body may be as large as the biggest message accepted (50 MiB and
    // more); a scan of 1,000 could hold gigabytes. One per scan bounds a
    // chunk to its byte limit plus one body. Other records are small
    // (at most a few KiB), so they come a chunk's worth per scan.
    if cf == Cf::Blobs {
        1
    } else {
        limits.keys
    }
}

/// The smallest key after `key`.
pub(super) fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

/// The rows of `cf` from `start` on (included): at most `limits.keys`,
/// and ending with the row that reaches `limits.bytes` (a first row larger
/// than that is a chunk of its own). Empty when `cf` has no key from
/// `start` on.
pub(super) fn read_chunk(
    store: &StorePair<'_>,
    cf: Cf,
    start: &[u8],
    limits: Limits,
) -> Result<Vec<KeyValue>, StoreError> {
    let mut rows: Vec<KeyValue> = Vec::new();
    let mut bytes = 0usize;
    let mut from = start.to_vec();
    loop {
        let want = scan_limit(cf, limits).min(limits.keys - rows.len());
        let range = KeyRange {
            start: std::mem::take(&mut from),
            end: None,
        };
        let got = store.scan(cf, &range, Order::Forward, want)?;
        if got.is_empty() {
            return Ok(rows);
        }
        for (key, value) in got {
            from = successor(&key);
            bytes = bytes.saturating_add(key.len() + value.len());
            rows.push((key, value));
            if rows.len() >= limits.keys || bytes >= limits.bytes {
                return Ok(rows);
            }
        }
    }
}

/// Keys in `cf`, counted a scan of 1,000 at a time.
pub(super) fn count_keys(store: &StorePair<'_>, cf: Cf) -> Result<u64, StoreError> {
    const PAGE: usize = 1_000;
    let mut count = 0u64;
    let mut from = Vec::new();
    loop {
        let range = KeyRange {
            start: from,
            end: None,
        };
        let got = store.scan(cf, &range, Order::Forward, PAGE)?;
        let Some((last, _)) = got.last() else {
            return Ok(count);
        };
        from = successor(last);
        count += got.len() as u64;
    }
}
