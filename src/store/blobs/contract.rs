//! The [`BlobStore`] contract as test bodies that every engine's tests
//! run against a real instance (the segment store on disk, the
//! PostgreSQL `blobs` table on the test cluster): put, get, range get,
//! delete, keys, orphan collection, and the crash rule with the mail
//! layer on top.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::BlobStore;
use crate::store::{
    Batch, Cf, EnginePair, Expect, Flags, HeaderFields, KeyRange, KeyValue, MailStore, MasterKey,
    NewMessage, Order, Store, StoreError,
};

/// A body of `len` bytes: `marker`, then filler.
pub(crate) fn body(marker: &str, len: usize) -> Vec<u8> {
    let mut v = marker.as_bytes().to_vec();
    v.resize(len.max(marker.len()), b'.');
    v
}

/// Large enough for every engine's out-of-line path (segments from 16 KiB).
const LARGE: usize = 40 * 1024;

fn put(blobs: &dyn BlobStore, items: &[(&[u8], Vec<u8>)]) {
    let refs: Vec<(&[u8], &[u8])> = items.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    blobs.put(&refs).unwrap();
}

/// `referenced` for orphan collection: the keys in `live`.
fn only<'a>(live: &'a [&'a [u8]]) -> impl Fn(&[Vec<u8>]) -> Result<Vec<bool>, StoreError> + 'a {
    move |keys| Ok(keys.iter().map(|k| live.contains(&k.as_slice())).collect())
}

/// Put, get, range get, replace, keys and delete, small and large.
pub(crate) fn put_get_range_delete(blobs: &dyn BlobStore) {
    let large = body("large-marker", LARGE);
    let small = body("small-marker", 100);
    put(
        blobs,
        &[
            (b"a1", large.clone()),
            (b"a2", small.clone()),
            (b"b1", b"".to_vec()),
        ],
    );
    assert_eq!(blobs.get(b"a1").unwrap(), Some(large.clone()));
    assert_eq!(blobs.get(b"a2").unwrap(), Some(small.clone()));
    assert_eq!(
        blobs.get(b"b1").unwrap(),
        Some(Vec::new()),
        "an empty body is a body"
    );
    assert_eq!(blobs.get(b"none").unwrap(), None);

    // Ranges: inside, clamped at the end, past the end, inverted, empty.
    for key in [&b"a1"[..], b"a2"] {
        let whole = blobs.get(key).unwrap().unwrap();
        assert_eq!(
            blobs.get_range(key, 2..9).unwrap().unwrap(),
            whole[2..9],
            "{key:?}"
        );
        assert_eq!(blobs.get_range(key, 0..u64::MAX).unwrap().unwrap(), whole);
        let len = whole.len() as u64;
        assert_eq!(
            blobs.get_range(key, len - 3..len + 100).unwrap().unwrap(),
            whole[whole.len() - 3..]
        );
        assert_eq!(
            blobs.get_range(key, len + 5..len + 9).unwrap(),
            Some(Vec::new())
        );
        assert_eq!(
            blobs.get_range(key, Range { start: 9, end: 2 }).unwrap(),
            Some(Vec::new())
        );
        assert_eq!(blobs.get_range(key, 4..4).unwrap(), Some(Vec::new()));
    }
    assert_eq!(
        blobs.get_range(b"a1", u64::MAX - 1..u64::MAX).unwrap(),
        Some(Vec::new())
    );
    assert_eq!(blobs.get_range(b"none", 0..1).unwrap(), None);

    // Keys: ascending, bounded, limited.
    let all = KeyRange::prefix(&[]);
    assert_eq!(
        blobs.keys(&all, 10).unwrap(),
        [b"a1".to_vec(), b"a2".to_vec(), b"b1".to_vec()]
    );
    assert_eq!(blobs.keys(&KeyRange::prefix(b"a"), 10).unwrap().len(), 2);
    assert_eq!(blobs.keys(&all, 1).unwrap(), [b"a1".to_vec()]);
    assert!(blobs.keys(&all, 0).unwrap().is_empty());

    // A put replaces; the same key twice in one put: the last wins.
    put(blobs, &[(b"a2", large.clone())]);
    assert_eq!(blobs.get(b"a2").unwrap(), Some(large.clone()));
    put(blobs, &[(b"a1", b"first".to_vec()), (b"a1", small.clone())]);
    assert_eq!(blobs.get(b"a1").unwrap(), Some(small));

    // Delete: gone, a missing key is no error, the others stay.
    blobs.delete(&[b"a1".to_vec(), b"absent".to_vec()]).unwrap();
    blobs.delete(&[]).unwrap();
    assert_eq!(blobs.get(b"a1").unwrap(), None);
    assert_eq!(blobs.get_range(b"a1", 0..3).unwrap(), None);
    assert_eq!(blobs.get(b"a2").unwrap(), Some(large));
    assert_eq!(
        blobs.keys(&all, 10).unwrap(),
        [b"a2".to_vec(), b"b1".to_vec()]
    );
    blobs.put(&[]).unwrap();
    blobs.maintain().unwrap();
    blobs.compact().unwrap();
    assert_eq!(blobs.get(b"b1").unwrap(), Some(Vec::new()));
}

/// Orphan collection on a store whose grace is `grace`: an unreferenced
/// body goes once it stayed so for the grace, a referenced one never, and
/// a body put again meanwhile is young again.
pub(crate) fn orphan_collection(blobs: &dyn BlobStore, grace: Duration) {
    let live: &[&[u8]] = &[b"live-large", b"live-small"];
    put(
        blobs,
        &[
            (b"live-large", body("live-large", LARGE)),
            (b"live-small", b"live".to_vec()),
            (b"orphan-large", body("orphan-large", LARGE)),
            (b"orphan-small", b"orphan".to_vec()),
        ],
    );
    // Within the grace: nothing goes.
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 0);
    std::thread::sleep(grace + grace / 2);
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 2);
    assert_eq!(blobs.get(b"orphan-large").unwrap(), None);
    assert_eq!(blobs.get(b"orphan-small").unwrap(), None);
    assert_eq!(
        blobs.get(b"live-large").unwrap(),
        Some(body("live-large", LARGE))
    );
    assert_eq!(blobs.get(b"live-small").unwrap(), Some(b"live".to_vec()));
    // However long a referenced body waits, it stays.
    std::thread::sleep(grace + grace / 2);
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 0);
    assert_eq!(blobs.keys(&KeyRange::prefix(b"live"), 10).unwrap().len(), 2);

    // Put again after it was first seen unreferenced: starts over.
    put(blobs, &[(b"again", b"x".to_vec())]);
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 0);
    std::thread::sleep(grace + grace / 2);
    put(blobs, &[(b"again", b"y".to_vec())]);
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 0);
    assert_eq!(blobs.get(b"again").unwrap(), Some(b"y".to_vec()));

    // A referenced check that fails: an error, nothing removed.
    std::thread::sleep(grace + grace / 2);
    let failing = |_: &[Vec<u8>]| -> Result<Vec<bool>, StoreError> {
        Err(StoreError::Engine {
            op: "get",
            message: "injected".into(),
        })
    };
    assert!(blobs.collect_orphans(&failing).is_err());
    assert_eq!(blobs.get(b"again").unwrap(), Some(b"y".to_vec()));
}

/// A metadata store that refuses its writes while armed: a change's
/// bodies are put, its metadata never commits, as in a crash between
/// the two.
#[derive(Debug)]
pub(crate) struct Refusing {
    inner: Arc<dyn Store>,
    armed: AtomicBool,
}

impl Refusing {
    pub(crate) fn new(inner: Arc<dyn Store>) -> Self {
        Self {
            inner,
            armed: AtomicBool::new(false),
        }
    }
}

impl Store for Refusing {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan(cf, range, order, limit)
    }

    fn write_if(&self, expect: &[Expect], batch: Batch) -> Result<(), StoreError> {
        if self.armed.load(Ordering::SeqCst) {
            return Err(StoreError::Engine {
                op: "write",
                message: "refused: the process died before its metadata commit".into(),
            });
        }
        self.inner.write_if(expect, batch)
    }
}

fn message(raw: &[u8]) -> NewMessage<'_> {
    NewMessage {
        raw,
        flags: Flags::default(),
        internal_date: 1_700_000_000,
        headers: HeaderFields::default(),
        encrypted: false,
        unique: false,
    }
}

/// The crash rule through the mail layer: a delivery whose bodies were
/// put but whose metadata never committed leaves an orphan, never a
/// dangling reference; orphan collection (grace zero: `blobs` must have
/// it) removes it and keeps every referenced body. `store` and `blobs`
/// are one engine's pair.
pub(crate) fn crash_between_put_and_commit(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) {
    let engine = Arc::new(Refusing::new(store));
    let mail = MailStore::new(
        EnginePair::new(engine.clone(), blobs.clone()),
        MasterKey::from_bytes([2; 32]),
    );
    let id = mail.add_account("ann@example.org", None, &[]).unwrap().id;
    let inbox = mail.mailbox_by_name(id, "INBOX").unwrap();
    let kept_small = b"Subject: kept\r\n\r\nsmall\r\n".to_vec();
    let kept_large = body("Subject: kept-large\r\n\r\n", LARGE);
    let lost_small = b"Subject: lost\r\n\r\nsmall\r\n".to_vec();
    let lost_large = body("Subject: lost-large\r\n\r\n", LARGE);
    let a = mail.append(id, inbox.id, message(&kept_small)).unwrap();
    let b = mail.append(id, inbox.id, message(&kept_large)).unwrap();

    engine.armed.store(true, Ordering::SeqCst);
    assert!(mail.append(id, inbox.id, message(&lost_small)).is_err());
    assert!(mail.append(id, inbox.id, message(&lost_large)).is_err());
    engine.armed.store(false, Ordering::SeqCst);

    // The bodies of the failed deliveries are in the blob store, and no
    // message names them: every listed message has its body.
    let all = KeyRange::prefix(&[]);
    assert_eq!(blobs.keys(&all, 100).unwrap().len(), 4);
    let msgs = mail.list_messages(id, inbox.id, None, 10).unwrap();
    assert_eq!(msgs.len(), 2);
    for m in &msgs {
        assert!(
            mail.get_blob(id, m.blob).unwrap().is_some(),
            "dangling reference to {:?}",
            m.blob
        );
    }
    // Collection removes exactly the orphans.
    assert_eq!(mail.collect_orphans().unwrap(), 2);
    assert_eq!(mail.collect_orphans().unwrap(), 0);
    assert_eq!(blobs.keys(&all, 100).unwrap().len(), 2);
    mail.compact().unwrap();
    assert_eq!(mail.get_blob(id, a.blob).unwrap(), Some(kept_small));
    assert_eq!(mail.get_blob(id, b.blob).unwrap(), Some(kept_large));
}
