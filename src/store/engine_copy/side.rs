//! One side of a copy: a metadata store and its blob store, read and
//! written as if bodies were the column family [`Cf::Blobs`], so that the
//! chunked copy and the verification treat every key space alike.

use crate::store::blobs::BlobStore;
use crate::store::{Batch, BatchOp, Cf, Expect, KeyRange, KeyValue, Order, Store, StoreError};

/// The metadata store and the blob store of one installation.
#[derive(Debug, Clone, Copy)]
pub struct StorePair<'a> {
    /// Metadata.
    pub store: &'a dyn Store,
    /// Message bodies.
    pub blobs: &'a dyn BlobStore,
}

impl StorePair<'_> {
    /// [`Store::get`]; bodies from the blob store.
    pub(super) fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if cf == Cf::Blobs {
            return self.blobs.get(key);
        }
        self.store.get(cf, key)
    }

    /// [`Store::scan`] (forward only for bodies: the copy reads forward).
    pub(super) fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        if cf != Cf::Blobs {
            return self.store.scan(cf, range, order, limit);
        }
        let mut out = Vec::new();
        for key in self.blobs.keys(range, limit)? {
            // why skipped when gone: deleted between the two reads; the
            // copy runs on a stopped server, so this is a body collected
            // as an orphan, which is not worth copying.
            if let Some(value) = self.blobs.get(&key)? {
                out.push((key, value));
            }
        }
        if order == Order::Reverse {
            out.reverse();
        }
        Ok(out)
    }

    /// [`Store::write_if`]; the bodies of `batch` go to the blob store
    /// first (the crash rule of `blobs`: durable before anything names
    /// them, an orphan if the metadata write is refused).
    pub(super) fn write_if(&self, expect: &[Expect], batch: Batch) -> Result<(), StoreError> {
        let mut bodies: Vec<(&[u8], &[u8])> = Vec::new();
        let mut rest = Batch::new();
        for op in batch.ops() {
            match op {
                BatchOp::Put {
                    cf: Cf::Blobs,
                    key,
                    value,
                } => bodies.push((key, value)),
                BatchOp::Put { cf, key, value } => rest.put(*cf, key.clone(), value.clone()),
                BatchOp::Delete { cf, key } => rest.delete(*cf, key.clone()),
                BatchOp::DeleteRange { cf, range } => rest.delete_range(*cf, range.clone()),
            }
        }
        self.blobs.put(&bodies)?;
        self.store.write_if(expect, rest)
    }
}
