//! The segment blob store of the RocksDB pair against real files: put,
//! get, range get, delete, durability, both collectors, damage, and the
//! crash rule with the mail layer.

use crate::store::EnginePair;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::{Batch, Cf, RocksStore, Store};

fn open(dir: &Path) -> (Arc<RocksStore>, Arc<SegmentBlobStore>) {
    RocksStore::open_pair(dir).unwrap()
}

/// A large value: `marker` followed by filler up to 40 KiB.
fn big(marker: &str) -> Vec<u8> {
    let mut v = marker.as_bytes().to_vec();
    v.resize(40 * 1024, b'.');
    v
}

/// Whether any file under `dir` contains `needle`.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        if path.is_dir() {
            return on_disk(&path, needle);
        }
        let hay = std::fs::read(&path).unwrap_or_default();
        hay.windows(needle.len()).any(|w| w == needle)
    })
}

fn put(blobs: &dyn BlobStore, items: &[(&[u8], Vec<u8>)]) {
    let refs: Vec<(&[u8], &[u8])> = items.iter().map(|(k, v)| (*k, v.as_slice())).collect();
    blobs.put(&refs).unwrap();
}

/// `referenced` for orphan collection: the keys in `live`.
fn only<'a>(live: &'a [&'a [u8]]) -> impl Fn(&[Vec<u8>]) -> Result<Vec<bool>, StoreError> + 'a {
    move |keys| Ok(keys.iter().map(|k| live.contains(&k.as_slice())).collect())
}

#[test]
fn put_get_range_get_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (store, blobs) = open(dir.path());
    put(
        &*blobs,
        &[
            (b"k1", big("marker-k1")),
            (b"small", b"tiny-marker".to_vec()),
        ],
    );
    assert_eq!(blobs.get(b"k1").unwrap(), Some(big("marker-k1")));
    assert_eq!(blobs.get(b"small").unwrap(), Some(b"tiny-marker".to_vec()));
    assert_eq!(blobs.get(b"none").unwrap(), None);
    assert_eq!(
        blobs.get_range(b"k1", 2..9).unwrap(),
        Some(b"rker-k1".to_vec())
    );
    assert_eq!(
        blobs.get_range(b"small", 5..100).unwrap(),
        Some(b"marker".to_vec())
    );
    assert_eq!(
        blobs.get_range(b"k1", 50_000..60_000).unwrap(),
        Some(Vec::new())
    );
    assert_eq!(
        blobs.get_range(b"k1", Range { start: 9, end: 2 }).unwrap(),
        Some(Vec::new())
    );
    assert_eq!(blobs.get_range(b"none", 0..1).unwrap(), None);
    assert!(on_disk(blobs.segments_dir(), b"marker-k1"));
    assert!(
        !on_disk(store.path(), b"marker-k1"),
        "large body in RocksDB"
    );
    blobs.delete(&[b"k1".to_vec(), b"absent".to_vec()]).unwrap();
    assert_eq!(blobs.get(b"k1").unwrap(), None);
    put(&*blobs, &[(b"k2", big("marker-k2"))]);
    // The metadata commit that follows a put is what syncs its index entry.
    let mut batch = Batch::new();
    batch.put(Cf::Meta, b"m".to_vec(), b"1".to_vec());
    store.write(batch).unwrap();
    drop((store, blobs));
    let (_store, blobs) = open(dir.path());
    assert_eq!(blobs.get(b"k2").unwrap(), Some(big("marker-k2")));
    assert_eq!(blobs.get(b"small").unwrap(), Some(b"tiny-marker".to_vec()));
    assert_eq!(blobs.get(b"k1").unwrap(), None);
}

#[test]
fn keys_merge_inline_and_segment_bodies_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, blobs) = open(dir.path());
    put(
        &*blobs,
        &[
            (&[1, 1], big("a")),
            (&[1, 2], b"b".to_vec()),
            (&[1, 3], big("c")),
            (&[2, 0], big("d")),
        ],
    );
    let keys = blobs.keys(&KeyRange::prefix(&[1]), 10).unwrap();
    assert_eq!(keys, [vec![1, 1], vec![1, 2], vec![1, 3]]);
    assert_eq!(
        blobs.keys(&KeyRange::prefix(&[]), 2).unwrap(),
        [vec![1, 1], vec![1, 2]]
    );
}

#[test]
fn compact_reclaims_deleted_bodies_and_keeps_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, blobs) = open(dir.path());
    put(
        &*blobs,
        &[(b"k1", big("marker-k1")), (b"k2", big("marker-k2"))],
    );
    blobs.delete(&[b"k2".to_vec()]).unwrap();
    assert!(
        on_disk(dir.path(), b"marker-k2"),
        "deleted bytes stay until compact"
    );
    blobs.compact().unwrap();
    assert!(
        !on_disk(dir.path(), b"marker-k2"),
        "compact left deleted bytes"
    );
    assert_eq!(blobs.get(b"k1").unwrap(), Some(big("marker-k1")));
}

#[test]
fn compact_while_writing_keeps_every_live_body() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, blobs) = open(dir.path());
    let writer = {
        let blobs = Arc::clone(&blobs);
        std::thread::spawn(move || {
            for i in 0u32..300 {
                put(&*blobs, &[(&i.to_be_bytes(), big(&format!("v{i}")))]);
                if i % 3 == 0 && i > 0 {
                    blobs.delete(&[(i - 1).to_be_bytes().to_vec()]).unwrap();
                }
            }
        })
    };
    while !writer.is_finished() {
        blobs.compact().unwrap();
    }
    writer.join().unwrap();
    blobs.compact().unwrap();
    for i in 0u32..300 {
        let got = blobs.get(&i.to_be_bytes()).unwrap();
        let deleted = i % 3 == 2 && i < 299;
        assert_eq!(got, (!deleted).then(|| big(&format!("v{i}"))), "blob {i}");
    }
}

#[test]
fn maintenance_rewrites_segments_a_quarter_dead_and_leaves_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, blobs) = open(dir.path());
    let put_range = |keys: std::ops::Range<u8>| {
        let items: Vec<(Vec<u8>, Vec<u8>)> = keys
            .map(|k| (vec![k], big(&format!("blob-{k:03}"))))
            .collect();
        let refs: Vec<(&[u8], &[u8])> = items
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
            .collect();
        blobs.put(&refs).unwrap();
    };
    put_range(0..4);
    // Closes the first segment (nothing dead yet, so nothing rewritten).
    blobs.compact().unwrap();
    put_range(10..20);
    blobs.delete(&[vec![0], vec![10]]).unwrap();
    blobs.maintain().unwrap();
    assert!(
        !on_disk(dir.path(), b"blob-000"),
        "quarter-dead segment kept"
    );
    assert!(
        on_disk(dir.path(), b"blob-010"),
        "tenth-dead segment rewritten"
    );
    for k in (1..4).chain(11..20) {
        assert_eq!(
            blobs.get(&[k]).unwrap(),
            Some(big(&format!("blob-{k:03}"))),
            "blob {k}"
        );
    }
}

#[test]
fn orphans_go_after_the_grace_and_referenced_bodies_never() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let index = Arc::new(super::super::rocks::test_index(&store));
    let blobs = SegmentBlobStore::open(&dir.path().join("segments"), index)
        .unwrap()
        .with_orphan_grace(Duration::from_millis(50));
    put(
        &blobs,
        &[
            (b"orphan", big("orphan-body")),
            (b"small-orphan", b"s".to_vec()),
        ],
    );
    put(&blobs, &[(b"live", big("live-body"))]);
    let live: &[&[u8]] = &[b"live"];
    // First sighting: remembered, not removed.
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 0);
    std::thread::sleep(Duration::from_millis(80));
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 2);
    assert_eq!(blobs.get(b"orphan").unwrap(), None);
    assert_eq!(blobs.get(b"small-orphan").unwrap(), None);
    assert_eq!(blobs.get(b"live").unwrap(), Some(big("live-body")));
    blobs.compact().unwrap();
    assert!(!on_disk(dir.path(), b"orphan-body"));

    // A body put again after its first sighting starts over.
    put(&blobs, &[(b"again", b"x".to_vec())]);
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 0);
    std::thread::sleep(Duration::from_millis(80));
    put(&blobs, &[(b"again", b"y".to_vec())]);
    assert_eq!(blobs.collect_orphans(&only(live)).unwrap(), 0);
    assert_eq!(blobs.get(b"again").unwrap(), Some(b"y".to_vec()));
}

#[test]
fn a_damaged_segment_is_a_corruption_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, blobs) = open(dir.path());
    put(&*blobs, &[(b"k", big("x"))]);
    for entry in std::fs::read_dir(blobs.segments_dir()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(b) = bytes.get_mut(100) {
            *b ^= 0xff;
        }
        std::fs::write(&path, bytes).unwrap();
    }
    // A fresh open, so no cached read handle hides the damage.
    drop((store, blobs));
    let (_store, blobs) = open(dir.path());
    let err = blobs.get(b"k").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { cf: crate::store::Cf::Blobs, detail } if detail.contains("checksum")),
        "{err:?}"
    );
}

/// A metadata store that refuses every write: the change's bodies are put,
/// its metadata never commits (as in a crash between the two).
#[derive(Debug)]
struct Refusing(Arc<RocksStore>, std::sync::atomic::AtomicBool);

impl Store for Refusing {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.0.get(cf, key)
    }
    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: crate::store::Order,
        limit: usize,
    ) -> Result<Vec<crate::store::KeyValue>, StoreError> {
        self.0.scan(cf, range, order, limit)
    }
    fn write_if(&self, expect: &[crate::store::Expect], batch: Batch) -> Result<(), StoreError> {
        if self.1.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Engine {
                op: "write",
                message: "refused".into(),
            });
        }
        self.0.write_if(expect, batch)
    }
}

#[test]
fn a_body_whose_metadata_never_committed_is_an_orphan_not_a_dangling_reference() {
    use crate::store::{MailStore, MasterKey, NewMessage};
    let dir = tempfile::tempdir().unwrap();
    let (rocks, _) = open(dir.path());
    let index = Arc::new(super::super::rocks::test_index(&rocks));
    let blobs = Arc::new(
        SegmentBlobStore::open(&dir.path().join("segments"), index)
            .unwrap()
            .with_orphan_grace(Duration::ZERO),
    );
    let engine = Arc::new(Refusing(rocks, false.into()));
    let mail = MailStore::new(
        EnginePair::new(engine.clone(), blobs.clone()),
        MasterKey::from_bytes([2; 32]),
    );
    let id = mail.add_account("ann@example.org", None, &[]).unwrap().id;
    let inbox = mail.mailbox_by_name(id, "INBOX").unwrap();
    let (kept_raw, lost_raw) = (big("kept-body"), big("lost-body"));
    let message = |raw| NewMessage {
        raw,
        flags: crate::store::Flags::default(),
        internal_date: 1_700_000_000,
        headers: crate::store::HeaderFields::default(),
        encrypted: false,
        unique: false,
    };
    let kept = mail.append(id, inbox.id, message(&kept_raw)).unwrap();
    engine.1.store(true, std::sync::atomic::Ordering::SeqCst);
    let lost = mail.append(id, inbox.id, message(&lost_raw));
    assert!(lost.is_err());
    engine.1.store(false, std::sync::atomic::Ordering::SeqCst);
    // The body is there, no metadata names it.
    assert!(on_disk(blobs.segments_dir(), b"lost-body"));
    let msgs = mail.list_messages(id, inbox.id, None, 10).unwrap();
    assert_eq!(msgs.len(), 1);
    for m in &msgs {
        assert!(
            mail.get_blob(id, m.blob).unwrap().is_some(),
            "dangling reference"
        );
    }
    // Grace zero: the orphan goes at once, the referenced body stays.
    assert_eq!(mail.collect_orphans().unwrap(), 1);
    assert_eq!(mail.collect_orphans().unwrap(), 0);
    mail.compact().unwrap();
    assert!(!on_disk(dir.path(), b"lost-body"));
    assert_eq!(
        mail.get_blob(id, kept.blob).unwrap(),
        Some(big("kept-body"))
    );
}

/// The segment store of a fresh RocksDB pair, removing orphans after
/// `grace`.
fn open_with_grace(dir: &Path, grace: Duration) -> (Arc<RocksStore>, Arc<SegmentBlobStore>) {
    let (store, _) = open(dir);
    let index = Arc::new(super::super::rocks::test_index(&store));
    let blobs = SegmentBlobStore::open(&dir.join("segments"), index)
        .unwrap()
        .with_orphan_grace(grace);
    (store, Arc::new(blobs))
}

#[test]
fn segment_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, blobs) = open(dir.path());
    super::contract::put_get_range_delete(&*blobs);
}

#[test]
fn segment_store_orphan_collection() {
    let dir = tempfile::tempdir().unwrap();
    let grace = Duration::from_millis(200);
    let (_store, blobs) = open_with_grace(dir.path(), grace);
    super::contract::orphan_collection(&*blobs, grace);
}

#[test]
fn segment_store_crash_between_put_and_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (store, blobs) = open_with_grace(dir.path(), Duration::ZERO);
    super::contract::crash_between_put_and_commit(store, blobs);
}

/// A process that dies between the body put and the metadata commit: the
/// body's unsynced index entry may or may not survive; either way no
/// metadata names it, and collection leaves nothing of it.
#[test]
fn a_crash_after_the_put_leaves_at_most_an_orphan() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (_store, blobs) = open(dir.path());
        put(&*blobs, &[(b"lost", big("lost-after-crash"))]);
        // The process dies here: no metadata write follows.
    }
    let (store, blobs) = open_with_grace(dir.path(), Duration::ZERO);
    let referenced = |keys: &[Vec<u8>]| -> Result<Vec<bool>, StoreError> {
        store
            .get_many(Cf::BlobRefs, keys)
            .map(|found| found.into_iter().map(|v| v.is_some()).collect())
    };
    let orphans = blobs.collect_orphans(&referenced).unwrap();
    assert!(orphans <= 1, "{orphans}");
    blobs.compact().unwrap();
    assert_eq!(blobs.get(b"lost").unwrap(), None);
    assert!(!on_disk(dir.path(), b"lost-after-crash"));
}
