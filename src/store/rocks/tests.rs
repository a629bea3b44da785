//! The RocksDB engine against a real database on disk: atomic batches,
//! scans, range deletes, and large blobs in segment files (collection,
//! crash leftovers, damage).

use super::*;

fn open() -> (tempfile::TempDir, RocksStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RocksStore::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn conditional_write_contract() {
    let (_dir, store) = open();
    crate::store::engine_tests::conditional_write(&store);
}

#[test]
fn conditional_counter_loses_no_increment() {
    let (_dir, store) = open();
    crate::store::engine_tests::counter_under_contention(std::sync::Arc::new(store));
}

#[test]
fn failure_mid_batch_commits_nothing() {
    let (_dir, store) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Blobs, b"a".to_vec(), b"blob".to_vec());
    batch.put(Cf::Messages, b"a".to_vec(), b"record".to_vec());
    batch.put(Cf::Accounts, b"a".to_vec(), b"counter".to_vec());
    store.fail_next_write_after(2);
    assert!(matches!(
        store.write(batch.clone()),
        Err(StoreError::Engine { .. })
    ));
    for cf in [Cf::Blobs, Cf::Messages, Cf::Accounts] {
        assert_eq!(store.get(cf, b"a").unwrap(), None, "{cf}");
    }
    store.write(batch).unwrap();
    assert_eq!(
        store.get(Cf::Messages, b"a").unwrap(),
        Some(b"record".to_vec())
    );
}

#[test]
fn scan_orders_bounds_and_limits() {
    let (_dir, store) = open();
    let mut batch = Batch::new();
    for k in [[1u8, 0], [1, 1], [1, 2], [2, 0]] {
        batch.put(Cf::Changes, k.to_vec(), vec![k[1]]);
    }
    store.write(batch).unwrap();
    let range = KeyRange::prefix(&[1]);
    let fwd = store.scan(Cf::Changes, &range, Order::Forward, 10).unwrap();
    assert_eq!(fwd.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(), [0, 1, 2]);
    let rev = store.scan(Cf::Changes, &range, Order::Reverse, 2).unwrap();
    assert_eq!(rev.iter().map(|(_, v)| v[0]).collect::<Vec<_>>(), [2, 1]);
    let open_end = KeyRange {
        start: vec![1, 2],
        end: None,
    };
    assert_eq!(
        store
            .scan(Cf::Changes, &open_end, Order::Forward, 10)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn delete_range_with_and_without_end() {
    let (_dir, store) = open();
    let mut batch = Batch::new();
    for k in [[1u8], [2], [0xff]] {
        batch.put(Cf::Audit, k.to_vec(), vec![]);
    }
    store.write(batch).unwrap();
    let mut batch = Batch::new();
    batch.delete_range(Cf::Audit, KeyRange::prefix(&[1]));
    batch.delete_range(Cf::Audit, KeyRange::prefix(&[0xff]));
    store.write(batch).unwrap();
    let all = KeyRange::prefix(&[]);
    let left = store.scan(Cf::Audit, &all, Order::Forward, 10).unwrap();
    assert_eq!(left, vec![(vec![2], vec![])]);
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

#[test]
fn large_blobs_go_to_segments_and_compact_reclaims_deleted_ones() {
    let (dir, store) = open();
    let mut batch = Batch::new();
    for k in [b"k1", b"k2", b"k3"] {
        let marker = format!("marker-{}", String::from_utf8_lossy(k));
        batch.put(Cf::Blobs, k.to_vec(), big(&marker));
    }
    batch.put(Cf::Blobs, b"small".to_vec(), b"tiny-marker".to_vec());
    store.write(batch).unwrap();
    store.flush().unwrap();
    assert!(on_disk(store.segments_dir(), b"marker-k2"));
    assert!(
        !on_disk(store.path(), b"marker-k2"),
        "large value in RocksDB"
    );
    assert!(on_disk(store.path(), b"tiny-marker"));
    assert_eq!(store.get(Cf::Blobs, b"k2").unwrap(), Some(big("marker-k2")));

    let mut batch = Batch::new();
    batch.delete(Cf::Blobs, b"k2".to_vec());
    store.write(batch).unwrap();
    assert_eq!(store.get(Cf::Blobs, b"k2").unwrap(), None);
    assert!(
        on_disk(dir.path(), b"marker-k2"),
        "deleted bytes stay until compact"
    );
    store.compact().unwrap();
    assert!(
        !on_disk(dir.path(), b"marker-k2"),
        "compact left deleted bytes"
    );
    for k in [b"k1".as_slice(), b"k3"] {
        let marker = format!("marker-{}", String::from_utf8_lossy(k));
        assert_eq!(store.get(Cf::Blobs, k).unwrap(), Some(big(&marker)));
    }
    drop(store);
    let store = RocksStore::open(dir.path()).unwrap();
    assert_eq!(store.get(Cf::Blobs, b"k3").unwrap(), Some(big("marker-k3")));
    assert_eq!(
        store.get(Cf::Blobs, b"small").unwrap(),
        Some(b"tiny-marker".to_vec())
    );
}

#[test]
fn blob_scans_and_range_deletes_see_both_places() {
    let (_dir, store) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Blobs, vec![1, 1], big("a"));
    batch.put(Cf::Blobs, vec![1, 2], b"b".to_vec());
    batch.put(Cf::Blobs, vec![1, 3], big("c"));
    batch.put(Cf::Blobs, vec![2, 0], big("d"));
    store.write(batch).unwrap();
    let range = KeyRange::prefix(&[1]);
    let keys = |order, limit| {
        store
            .scan(Cf::Blobs, &range, order, limit)
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k[1], v.len()))
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(Order::Forward, 10), [(1, 40960), (2, 1), (3, 40960)]);
    assert_eq!(keys(Order::Reverse, 2), [(3, 40960), (2, 1)]);
    let got = store
        .get_many(Cf::Blobs, &[vec![2, 0], vec![9], vec![1, 2]])
        .unwrap();
    assert_eq!(got, [Some(big("d")), None, Some(b"b".to_vec())]);

    let mut batch = Batch::new();
    batch.delete_range(Cf::Blobs, range.clone());
    store.write(batch).unwrap();
    assert!(keys(Order::Forward, 10).is_empty());
    assert_eq!(store.get(Cf::Blobs, &[2, 0]).unwrap(), Some(big("d")));
}

#[test]
fn compact_while_writing_keeps_every_live_blob() {
    let (_dir, store) = open();
    let store = std::sync::Arc::new(store);
    let writer = {
        let store = std::sync::Arc::clone(&store);
        std::thread::spawn(move || {
            for i in 0u32..300 {
                let mut batch = Batch::new();
                batch.put(Cf::Blobs, i.to_be_bytes().to_vec(), big(&format!("v{i}")));
                if i % 3 == 0 && i > 0 {
                    batch.delete(Cf::Blobs, (i - 1).to_be_bytes().to_vec());
                }
                store.write(batch).unwrap();
            }
        })
    };
    while !writer.is_finished() {
        store.compact().unwrap();
    }
    writer.join().unwrap();
    store.compact().unwrap();
    for i in 0u32..300 {
        let got = store.get(Cf::Blobs, &i.to_be_bytes()).unwrap();
        let deleted = i % 3 == 2 && i < 299;
        assert_eq!(got, (!deleted).then(|| big(&format!("v{i}"))), "blob {i}");
    }
}

#[test]
fn maintenance_rewrites_segments_a_quarter_dead_and_leaves_the_others() {
    let (dir, store) = open();
    let put = |keys: std::ops::Range<u8>| {
        let mut batch = Batch::new();
        for k in keys {
            batch.put(Cf::Blobs, vec![k], big(&format!("blob-{k:03}")));
        }
        store.write(batch).unwrap();
    };
    put(0..4);
    // Closes the first segment (nothing dead yet, so nothing rewritten).
    store.compact().unwrap();
    put(10..20);
    let mut batch = Batch::new();
    batch.delete(Cf::Blobs, vec![0]); // a quarter of the first segment
    batch.delete(Cf::Blobs, vec![10]); // a tenth of the second
    store.write(batch).unwrap();
    store.maintain().unwrap();
    assert!(
        !on_disk(dir.path(), b"blob-000"),
        "quarter-dead segment kept"
    );
    assert!(
        on_disk(dir.path(), b"blob-010"),
        "tenth-dead segment rewritten"
    );
    for k in (1..4).chain(11..20) {
        let got = store.get(Cf::Blobs, &[k]).unwrap();
        assert_eq!(got, Some(big(&format!("blob-{k:03}"))), "blob {k}");
    }
    store.compact().unwrap();
    assert!(
        !on_disk(dir.path(), b"blob-010"),
        "compact rewrites any dead bytes"
    );
}

#[test]
fn a_failed_commit_leaves_only_garbage_that_compact_removes() {
    let (dir, store) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Blobs, b"lost".to_vec(), big("never-committed"));
    batch.put(Cf::Messages, b"m".to_vec(), b"record".to_vec());
    store.fail_next_write_after(2);
    assert!(store.write(batch).is_err());
    assert_eq!(store.get(Cf::Blobs, b"lost").unwrap(), None);
    assert!(on_disk(dir.path(), b"never-committed"));
    store.compact().unwrap();
    assert!(!on_disk(dir.path(), b"never-committed"));
}

#[test]
fn a_damaged_segment_is_a_corruption_error() {
    let (dir, store) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Blobs, b"k".to_vec(), big("x"));
    store.write(batch).unwrap();
    for entry in std::fs::read_dir(store.segments_dir()).unwrap() {
        let path = entry.unwrap().path();
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(b) = bytes.get_mut(100) {
            *b ^= 0xff;
        }
        std::fs::write(&path, bytes).unwrap();
    }
    // A fresh open, so no cached read handle hides the damage.
    drop(store);
    let store = RocksStore::open(dir.path()).unwrap();
    let err = store.get(Cf::Blobs, b"k").unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { cf: Cf::Blobs, detail } if detail.contains("checksum")),
        "{err:?}"
    );
}

#[test]
fn get_many_keeps_order() {
    let (_dir, store) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Meta, b"x".to_vec(), b"1".to_vec());
    store.write(batch).unwrap();
    let got = store
        .get_many(Cf::Meta, &[b"y".to_vec(), b"x".to_vec()])
        .unwrap();
    assert_eq!(got, vec![None, Some(b"1".to_vec())]);
}
