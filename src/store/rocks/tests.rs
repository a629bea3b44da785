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

/// The memtables' bytes now.
fn memtables(store: &RocksStore) -> u64 {
    store.with_db(idle::memtable_bytes).unwrap()
}

/// Writes 8 MiB of records, 64 KiB a batch.
fn write_eight_mib(store: &RocksStore, tag: u8) {
    for i in 0..128u32 {
        let mut batch = Batch::new();
        batch.put(
            Cf::Messages,
            [&[tag][..], &i.to_be_bytes()].concat(),
            vec![tag; 64 << 10],
        );
        store.write(batch).unwrap();
    }
}

/// Memtable bytes of an emptied database (eleven empty memtables hold a
/// few KiB).
const EMPTIED: u64 = 256 << 10;

/// Waits (at most 10 s) until the background flush has emptied the
/// memtables.
fn wait_for_flush(store: &RocksStore) -> u64 {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while memtables(store) > EMPTIED && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    memtables(store)
}

#[test]
fn a_quiet_database_writes_its_memtables_out_and_keeps_its_data() {
    let (dir, store) = open();
    write_eight_mib(&store, 1);
    let full = memtables(&store);
    assert!(
        full > 8 << 20,
        "memtables hold {full} bytes after 8 MiB of writes"
    );
    let quiet = std::time::Duration::from_millis(50);
    // The first look only notes the sequence number: no flush yet.
    assert!(!store.release_when_quiet(quiet).unwrap().flushed);
    std::thread::sleep(quiet);
    assert!(store.release_when_quiet(quiet).unwrap().flushed);
    let left = wait_for_flush(&store);
    assert!(left <= EMPTIED, "{left} bytes still in memtables");
    // Nothing more to do until the next write, and the data is all there,
    // also after a reopen (it is in SST files now, not only the WAL).
    std::thread::sleep(quiet);
    assert!(!store.release_when_quiet(quiet).unwrap().flushed);
    drop(store);
    let store = RocksStore::open(dir.path()).unwrap();
    for i in 0..128u32 {
        let value = store
            .get(Cf::Messages, &[&[1][..], &i.to_be_bytes()].concat())
            .unwrap();
        assert_eq!(
            value.as_deref(),
            Some(&vec![1u8; 64 << 10][..]),
            "record {i}"
        );
    }
}

#[test]
fn a_busy_database_keeps_its_memtables() {
    let (_dir, store) = open();
    let quiet = std::time::Duration::from_millis(200);
    assert!(!store.release_when_quiet(quiet).unwrap().flushed);
    // Writes keep coming, each within the quiet spell of the last look.
    for tag in 1..=3u8 {
        std::thread::sleep(quiet / 2);
        write_eight_mib(&store, tag);
        assert!(
            !store.release_when_quiet(quiet).unwrap().flushed,
            "flushed while busy ({tag})"
        );
    }
    assert!(memtables(&store) > 24 << 20);
    // A quiet database with little in its memtables keeps them too.
    let (_dir, small) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Messages, b"k".to_vec(), vec![0; 1000]);
    small.write(batch).unwrap();
    assert!(
        !small
            .release_when_quiet(std::time::Duration::ZERO)
            .unwrap()
            .flushed
    );
    assert!(
        !small
            .release_when_quiet(std::time::Duration::ZERO)
            .unwrap()
            .flushed
    );
    assert!(memtables(&small) > 0);
}

#[test]
fn every_column_family_reads_through_one_bounded_block_cache() {
    let (_dir, store) = open();
    for cf in [Cf::Messages, Cf::Accounts] {
        let mut batch = Batch::new();
        for i in 0..200u32 {
            batch.put(cf, i.to_be_bytes().to_vec(), vec![7; 4096]);
        }
        store.write(batch).unwrap();
    }
    store.flush().unwrap();
    for i in 0..200u32 {
        assert!(store.get(Cf::Messages, &i.to_be_bytes()).unwrap().is_some());
    }
    let property = |cf: Cf, name: &str| {
        store
            .with_db(|db| {
                db.property_int_value_cf(access::handle(db, cf)?, name)
                    .map_err(|e| access::engine_error("property", e))
            })
            .unwrap()
            .unwrap()
    };
    // Read through Messages only, yet Accounts reports the same usage:
    // one cache, of the one capacity.
    let used = property(Cf::Messages, "rocksdb.block-cache-usage");
    assert!(used > 100 * 4096, "{used} bytes cached");
    assert_eq!(property(Cf::Accounts, "rocksdb.block-cache-usage"), used);
    for cf in Cf::ALL {
        assert_eq!(
            property(cf, "rocksdb.block-cache-capacity"),
            access::BLOCK_CACHE_BYTES as u64,
            "{cf}"
        );
    }
}

#[test]
fn a_quiet_database_empties_its_block_cache_once_per_quiet_spell() {
    let (_dir, store) = open();
    let mut batch = Batch::new();
    for i in 0..200u32 {
        batch.put(Cf::Messages, i.to_be_bytes().to_vec(), vec![7; 4096]);
    }
    store.write(batch).unwrap();
    store.flush().unwrap();
    let read_all = || {
        for i in 0..200u32 {
            assert!(store.get(Cf::Messages, &i.to_be_bytes()).unwrap().is_some());
        }
    };
    let cached = || store.cache.get_usage();
    read_all();
    assert!(cached() > 100 * 4096, "{} bytes cached", cached());
    let quiet = std::time::Duration::ZERO;
    // The first look notes the sequence number; the second empties.
    assert!(!store.release_when_quiet(quiet).unwrap().cache_emptied);
    assert!(store.release_when_quiet(quiet).unwrap().cache_emptied);
    assert!(cached() < 64 << 10, "{} bytes still cached", cached());
    // Reads fill it again, and the same quiet spell leaves it alone.
    read_all();
    let refilled = cached();
    assert!(refilled > 100 * 4096, "{refilled} bytes cached");
    assert!(!store.release_when_quiet(quiet).unwrap().cache_emptied);
    assert_eq!(cached(), refilled);
    // A write starts a new spell, after which it is emptied again, and
    // the cache keeps its capacity throughout.
    let mut batch = Batch::new();
    batch.put(Cf::Accounts, b"k".to_vec(), b"v".to_vec());
    store.write(batch).unwrap();
    assert!(!store.release_when_quiet(quiet).unwrap().cache_emptied);
    assert!(store.release_when_quiet(quiet).unwrap().cache_emptied);
    assert!(cached() < 64 << 10, "{} bytes still cached", cached());
    let capacity = store
        .with_db(|db| {
            db.property_int_value_cf(
                access::handle(db, Cf::Messages)?,
                "rocksdb.block-cache-capacity",
            )
            .map_err(|e| access::engine_error("property", e))
        })
        .unwrap();
    assert_eq!(capacity, Some(access::BLOCK_CACHE_BYTES as u64));
    read_all();
}
