//! The RocksDB engine against a real database on disk: atomic batches,
//! scans, range deletes (its blob tier is tested in `blobs`).

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
