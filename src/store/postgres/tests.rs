//! The PostgreSQL engine against a real server (`test_server`): the
//! engine contract, scans, range deletes, large blobs, many-key reads,
//! an unreachable server, a broken connection, and a second engine on the
//! same database. Concurrency: `conflict_tests`.
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use super::test_server::{test_db, TestDb};
use super::*;
use crate::store::blobs::{contract, BlobStore, ORPHAN_GRACE};
use crate::store::BatchOp;

fn open() -> (TestDb, PgStore) {
    let db = test_db();
    let store = PgStore::open(&db.url, 4).unwrap();
    (db, store)
}

#[test]
fn conditional_write_contract() {
    let (_db, store) = open();
    crate::store::engine_tests::conditional_write(&store);
}

#[test]
fn conditional_counter_loses_no_increment() {
    let (_db, store) = open();
    crate::store::engine_tests::counter_under_contention(Arc::new(store));
}

#[test]
fn scan_orders_bounds_and_limits() {
    let (_db, store) = open();
    let mut keys: Vec<Vec<u8>> = vec![
        vec![1, 0],
        vec![1, 1],
        vec![1, 2],
        vec![1],
        vec![1, 0xff, 0xff],
        vec![1, 0, 0],
        vec![2, 0],
        vec![0, 0xff],
        vec![],
    ];
    let mut batch = Batch::new();
    for (i, k) in keys.iter().enumerate() {
        batch.put(Cf::Changes, k.clone(), vec![i as u8]);
        batch.put(Cf::Audit, k.clone(), vec![0]); // another cf, same keys
    }
    store.write(batch).unwrap();
    keys.sort();
    let all = store
        .scan(
            Cf::Changes,
            &KeyRange::prefix(&[]),
            Order::Forward,
            usize::MAX,
        )
        .unwrap();
    let got: Vec<Vec<u8>> = all.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(got, keys, "bytea order is Rust's byte order");

    let range = KeyRange::prefix(&[1]);
    let fwd = store.scan(Cf::Changes, &range, Order::Forward, 10).unwrap();
    let fwd: Vec<Vec<u8>> = fwd.into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        fwd,
        [
            vec![1],
            vec![1, 0],
            vec![1, 0, 0],
            vec![1, 1],
            vec![1, 2],
            vec![1, 0xff, 0xff]
        ]
    );
    let rev = store.scan(Cf::Changes, &range, Order::Reverse, 2).unwrap();
    let rev: Vec<Vec<u8>> = rev.into_iter().map(|(k, _)| k).collect();
    assert_eq!(rev, [vec![1, 0xff, 0xff], vec![1, 2]]);

    let between = KeyRange::between(vec![1, 0, 0], vec![1, 2]);
    let mid = store
        .scan(Cf::Changes, &between, Order::Forward, 10)
        .unwrap();
    assert_eq!(mid.len(), 2, "start included, end excluded");
    let open_end = KeyRange {
        start: vec![1, 2],
        end: None,
    };
    let tail = store
        .scan(Cf::Changes, &open_end, Order::Reverse, 10)
        .unwrap();
    assert_eq!(tail.first().unwrap().0, vec![2, 0]);
    assert_eq!(tail.len(), 3);
    let inverted = KeyRange::between(vec![2], vec![1]);
    assert!(store
        .scan(Cf::Changes, &inverted, Order::Forward, 10)
        .unwrap()
        .is_empty());
    assert!(store
        .scan(Cf::Changes, &range, Order::Forward, 0)
        .unwrap()
        .is_empty());
}

#[test]
fn range_deletes_and_batch_order() {
    let (_db, store) = open();
    let mut batch = Batch::new();
    for k in 0u8..10 {
        batch.put(Cf::Messages, vec![7, k], vec![k]);
        batch.put(Cf::Certs, vec![7, k], vec![k; 100]);
        batch.put(Cf::Mailboxes, vec![7, k], vec![k]);
    }
    store.write(batch).unwrap();

    let mut batch = Batch::new();
    batch.put(
        Cf::Messages,
        vec![7, 3],
        b"overwritten by the range delete".to_vec(),
    );
    batch.delete_range(Cf::Messages, KeyRange::between(vec![7, 2], vec![7, 5]));
    batch.put(Cf::Messages, vec![7, 4], b"after".to_vec());
    batch.delete_range(
        Cf::Certs,
        KeyRange {
            start: vec![7, 8],
            end: None,
        },
    );
    batch.put(Cf::Mailboxes, vec![7, 1], b"a".to_vec());
    batch.delete(Cf::Mailboxes, vec![7, 1]);
    batch.put(Cf::Mailboxes, vec![7, 2], b"b".to_vec());
    batch.put(Cf::Mailboxes, vec![7, 2], b"c".to_vec());
    store.write(batch).unwrap();

    let messages = store
        .scan(Cf::Messages, &KeyRange::prefix(&[7]), Order::Forward, 100)
        .unwrap();
    let keys: Vec<u8> = messages.iter().map(|(k, _)| k[1]).collect();
    assert_eq!(keys, [0, 1, 4, 5, 6, 7, 8, 9]);
    assert_eq!(store.get(Cf::Messages, &[7, 4]).unwrap().unwrap(), b"after");
    let certs = store
        .scan(Cf::Certs, &KeyRange::prefix(&[7]), Order::Forward, 100)
        .unwrap();
    assert_eq!(certs.len(), 8, "open-ended range delete");
    assert_eq!(store.get(Cf::Mailboxes, &[7, 1]).unwrap(), None);
    assert_eq!(store.get(Cf::Mailboxes, &[7, 2]).unwrap().unwrap(), b"c");

    let mut everything = Batch::new();
    for cf in Cf::ALL {
        everything.delete_range(cf, KeyRange::prefix(&[]));
    }
    store.write(everything).unwrap();
    for cf in Cf::ALL {
        let left = store
            .scan(cf, &KeyRange::prefix(&[]), Order::Forward, 1)
            .unwrap();
        assert!(left.is_empty(), "{cf}");
    }
}

#[test]
fn a_large_fan_out_batch_is_one_transaction() {
    let (db, store) = open();
    let mut batch = Batch::new();
    for i in 0u32..5000 {
        batch.put(Cf::Messages, i.to_be_bytes().to_vec(), vec![1; 200]);
        batch.put(Cf::Changes, i.to_be_bytes().to_vec(), vec![2; 20]);
    }
    assert!(batch
        .ops()
        .iter()
        .all(|op| matches!(op, BatchOp::Put { .. })));
    store.write(batch).unwrap();
    assert_eq!(db.psql("SELECT count(*) FROM kv"), "10000");
}

#[test]
fn large_blobs_round_trip() {
    let db = test_db();
    let (_store, blobs) = PgStore::open_pair(&db.url, 4).unwrap();
    let body: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    blobs.put(&[(b"big", &body)]).unwrap();
    assert_eq!(blobs.get(b"big").unwrap().unwrap(), body);
    let range = 15 * 1024 * 1024..15 * 1024 * 1024 + 10;
    assert_eq!(
        blobs
            .get_range(b"big", range.start as u64..range.end as u64)
            .unwrap()
            .unwrap(),
        body[range]
    );
    let stored = db.psql("SELECT sum(octet_length(value)) FROM blobs WHERE key = 'big'");
    assert_eq!(stored, body.len().to_string());
    let storage = db.psql(
        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'blobs'::regclass AND attname = 'value'",
    );
    assert_eq!(storage, "e", "blobs.value is STORAGE EXTERNAL");
    assert_eq!(toast_bytes(&db), "0", "rows stay inline, out of TOAST");
}

/// Bytes in the TOAST table of `blobs`.
fn toast_bytes(db: &TestDb) -> String {
    db.psql("SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'blobs'")
}

/// `len` bytes that differ at nearby offsets (a misplaced row shows).
fn patterned(len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

const CHUNK: usize = blobs::CHUNK_BYTES;

/// Sizes around the row boundaries, and a few megabytes.
const SIZES: [usize; 9] = [
    0,
    1,
    CHUNK - 1,
    CHUNK,
    CHUNK + 1,
    2 * CHUNK,
    3 * CHUNK + 17,
    90 * 1024,
    5 * 1024 * 1024 + 3,
];

fn sized_bodies() -> Vec<(Vec<u8>, Vec<u8>)> {
    SIZES
        .iter()
        .map(|&n| (format!("size-{n}").into_bytes(), patterned(n)))
        .collect()
}

/// Every range between offsets next to the row boundaries and the ends.
fn check_ranges(blobs: &dyn BlobStore, key: &[u8], body: &[u8]) {
    let len = body.len() as u64;
    let mut points = vec![0, 1, len.saturating_sub(1), len, len + 1, u64::MAX];
    for k in 1..=3 {
        let edge = (k * CHUNK) as u64;
        points.extend([edge - 1, edge, edge + 1]);
    }
    for &start in &points {
        for &end in &points {
            let got = blobs.get_range(key, start..end).unwrap();
            let (from, to) = (start.min(len) as usize, end.min(len) as usize);
            let want = body.get(from..to).unwrap_or_default();
            assert_eq!(got.as_deref(), Some(want), "{len} bytes: {start}..{end}");
        }
    }
}

#[test]
fn bodies_across_row_boundaries_round_trip_and_range_read() {
    let (db, _store, blobs) = open_blobs(ORPHAN_GRACE);
    let bodies = sized_bodies();
    let items: Vec<(&[u8], &[u8])> = bodies
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    blobs.put(&items).unwrap();
    for (key, body) in &bodies {
        assert_eq!(blobs.get(key).unwrap().as_deref(), Some(body.as_slice()));
        check_ranges(&*blobs, key, body);
        let rows = db.psql(&format!(
            "SELECT count(*) FROM blobs WHERE key = '{}'",
            String::from_utf8_lossy(key)
        ));
        assert_eq!(rows, body.len().div_ceil(CHUNK).max(1).to_string());
    }
    assert_eq!(toast_bytes(&db), "0", "rows stay inline, out of TOAST");
    assert_eq!(
        blobs.keys(&KeyRange::prefix(b"size-"), 100).unwrap().len(),
        SIZES.len(),
        "one key per body, not per row"
    );
}

#[test]
fn a_shorter_body_put_again_leaves_no_rows_of_the_longer() {
    let (db, _store, blobs) = open_blobs(ORPHAN_GRACE);
    let long = patterned(3 * CHUNK + 5);
    let short = patterned(CHUNK - 1);
    blobs.put(&[(b"k", &long)]).unwrap();
    blobs.put(&[(b"k", &short)]).unwrap();
    assert_eq!(blobs.get(b"k").unwrap().unwrap(), short);
    check_ranges(&*blobs, b"k", &short);
    assert_eq!(db.psql("SELECT count(*) FROM blobs WHERE key = 'k'"), "1");
    blobs.put(&[(b"k", b""), (b"k", &long)]).unwrap();
    assert_eq!(blobs.get(b"k").unwrap().unwrap(), long);
    blobs.put(&[(b"k", b"")]).unwrap();
    assert_eq!(blobs.get(b"k").unwrap().unwrap(), b"");
    blobs.put(&[(b"k", &long), (b"other", &short)]).unwrap();
    blobs.delete(&[b"k".to_vec()]).unwrap();
    assert_eq!(blobs.get(b"k").unwrap(), None);
    assert_eq!(blobs.get_range(b"k", 0..10).unwrap(), None);
    assert_eq!(db.psql("SELECT count(*) FROM blobs WHERE key = 'k'"), "0");
    assert_eq!(blobs.get(b"other").unwrap().unwrap(), short);
}

#[test]
fn a_body_of_many_rows_put_by_one_node_reads_on_another() {
    let (db, _store, first) = open_blobs(ORPHAN_GRACE);
    let bodies = sized_bodies();
    let items: Vec<(&[u8], &[u8])> = bodies
        .iter()
        .map(|(k, v)| (k.as_slice(), v.as_slice()))
        .collect();
    first.put(&items).unwrap();
    let (_s, second) = PgStore::open_pair(&db.url, 1).unwrap();
    for (key, body) in &bodies {
        assert_eq!(second.get(key).unwrap().as_deref(), Some(body.as_slice()));
    }
    let (key, body) = &bodies[SIZES.len() - 1];
    let range = 2 * CHUNK as u64 - 7..40 * CHUNK as u64 + 3;
    assert_eq!(
        second.get_range(key, range.clone()).unwrap().unwrap(),
        body[range.start as usize..range.end as usize]
    );
    second.delete(std::slice::from_ref(key)).unwrap();
    assert_eq!(first.get(key).unwrap(), None);
}

#[test]
fn get_many_in_order_with_gaps_and_repeats() {
    let (_db, store) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Accounts, b"a".to_vec(), b"1".to_vec());
    batch.put(Cf::Accounts, b"c".to_vec(), b"3".to_vec());
    batch.put(Cf::Addresses, b"b".to_vec(), b"other cf".to_vec());
    store.write(batch).unwrap();
    let keys = [b"c".to_vec(), b"b".to_vec(), b"a".to_vec(), b"c".to_vec()];
    let got = store.get_many(Cf::Accounts, &keys).unwrap();
    assert_eq!(
        got,
        [
            Some(b"3".to_vec()),
            None,
            Some(b"1".to_vec()),
            Some(b"3".to_vec())
        ]
    );
    assert!(store.get_many(Cf::Accounts, &[]).unwrap().is_empty());
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgres://mail:hunter2@127.0.0.1:{port}/sealmail");
    let err = PgStore::open(&url, 2).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, StoreError::Engine { op: "connect", .. }),
        "{text}"
    );
    assert!(
        text.contains(&format!("postgres://mail@127.0.0.1:{port}/sealmail")),
        "{text}"
    );
    assert!(
        text.contains("store.url") && text.contains("reachable"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
    let bad = PgStore::open("postgres://mail:hunter2@127.0.0.1:notaport/x", 2).unwrap_err();
    assert!(!bad.to_string().contains("hunter2"), "{bad}");
    assert!(bad.to_string().contains("postgres://USER@HOST"), "{bad}");
}

#[test]
fn a_second_engine_sees_the_first_ones_writes() {
    let (db, first) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Lists, b"list@example.org".to_vec(), b"record".to_vec());
    first.write(batch).unwrap();
    let second = PgStore::open(&db.url, 1).unwrap();
    assert_eq!(
        second.get(Cf::Lists, b"list@example.org").unwrap().unwrap(),
        b"record"
    );
    let mut batch = Batch::new();
    batch.delete(Cf::Lists, b"list@example.org".to_vec());
    second.write(batch).unwrap();
    assert_eq!(first.get(Cf::Lists, b"list@example.org").unwrap(), None);
    assert_eq!(
        db.psql("SELECT version FROM sealmail_schema"),
        schema::MIGRATIONS.len().to_string()
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let (db, _store) = open();
    db.psql("UPDATE sealmail_schema SET version = 99");
    let err = PgStore::open(&db.url, 1).unwrap_err().to_string();
    assert!(
        err.contains("99") && err.contains("upgrade sealmail"),
        "{err}"
    );
}

#[test]
fn a_broken_connection_is_replaced() {
    let (db, store) = open();
    let mut batch = Batch::new();
    batch.put(Cf::Meta, b"k".to_vec(), b"v".to_vec());
    store.write(batch).unwrap();
    assert_eq!(store.get(Cf::Meta, b"k").unwrap().unwrap(), b"v");
    let killed = db.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ));
    assert_ne!(killed, "0", "the engine's connections were not found");
    assert_eq!(store.get(Cf::Meta, b"k").unwrap().unwrap(), b"v");
    db.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ));
    let mut batch = Batch::new();
    batch.put(Cf::Meta, b"k".to_vec(), b"w".to_vec());
    store.write(batch).unwrap();
    assert_eq!(store.get(Cf::Meta, b"k").unwrap().unwrap(), b"w");
}

#[test]
fn dropping_the_engine_inside_an_async_context_does_not_panic() {
    let (_db, store) = open();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async move {
        // A call from async code blocks this thread but does not panic.
        assert_eq!(store.get(Cf::Meta, b"none").unwrap(), None);
        drop(store);
    });
}

/// The blob tier of a fresh database, removing orphans after `grace`.
fn open_blobs(grace: std::time::Duration) -> (TestDb, Arc<PgStore>, Arc<PgBlobStore>) {
    let db = test_db();
    let (store, _) = PgStore::open_pair(&db.url, 4).unwrap();
    let blobs = Arc::new(PgBlobStore::new(Arc::clone(&store)).with_orphan_grace(grace));
    (db, store, blobs)
}

#[test]
fn blob_store_contract() {
    let (_db, _store, blobs) = open_blobs(ORPHAN_GRACE);
    contract::put_get_range_delete(&*blobs);
}

#[test]
fn blob_store_orphan_collection() {
    let (_db, _store, blobs) = open_blobs(std::time::Duration::from_millis(400));
    contract::orphan_collection(&*blobs, std::time::Duration::from_millis(400));
}

#[test]
fn blob_store_crash_between_put_and_commit() {
    let (_db, store, blobs) = open_blobs(std::time::Duration::ZERO);
    contract::crash_between_put_and_commit(store, blobs);
}

#[test]
fn a_second_node_sees_bodies_and_keeps_one_it_put_again() {
    // why 3 s: the put again and the collection must fall within one
    // grace period; 300 ms was once too short on a loaded machine.
    let grace = std::time::Duration::from_secs(3);
    let (db, _store, first) = open_blobs(grace);
    first.put(&[(b"body", b"bytes")]).unwrap();
    let (_s, second) = PgStore::open_pair(&db.url, 1).unwrap();
    assert_eq!(second.get(b"body").unwrap().unwrap(), b"bytes");
    std::thread::sleep(grace + std::time::Duration::from_millis(500));
    // The second node puts it again (a new delivery of the same body)
    // just before the first collects: young again, it stays.
    second.put(&[(b"body", b"bytes")]).unwrap();
    let unreferenced = |keys: &[Vec<u8>]| Ok(vec![false; keys.len()]);
    assert_eq!(first.collect_orphans(&unreferenced).unwrap(), 0);
    assert_eq!(first.get(b"body").unwrap().unwrap(), b"bytes");
}

#[test]
fn a_database_of_schema_two_keeps_its_bodies_as_rows() {
    // A database as schema version 2 left it: one row per body in `blobs`,
    // out of line in TOAST. Bodies of every size around a row boundary,
    // made by the server (seven-digit numbers, cut to size).
    let db = test_db();
    db.psql(schema::MIGRATIONS[0]);
    db.psql(schema::MIGRATIONS[1]);
    db.psql(
        "CREATE TABLE sealmail_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL);
         INSERT INTO sealmail_schema VALUES (true, 2);",
    );
    let digits = |n: usize| -> Vec<u8> {
        let mut v: Vec<u8> = (1..=n / 7 + 1)
            .flat_map(|i| format!("{i:07}").into_bytes())
            .collect();
        v.truncate(n);
        v
    };
    for n in SIZES {
        db.psql(&format!(
            "INSERT INTO blobs (key, value, put_at) SELECT 'old-{n}', substring(convert_to(string_agg(lpad(i::text, 7, '0'), '' ORDER BY i), 'UTF8') from 1 for {n}), now() - interval '1 hour' FROM generate_series(1, {n} / 7 + 1) AS i"
        ));
    }
    let (store, blobs) = PgStore::open_pair(&db.url, 2).unwrap();
    assert_eq!(
        db.psql("SELECT version FROM sealmail_schema"),
        schema::MIGRATIONS.len().to_string()
    );
    for n in SIZES {
        let key = format!("old-{n}").into_bytes();
        let body = digits(n);
        assert_eq!(
            blobs.get(&key).unwrap().as_deref(),
            Some(body.as_slice()),
            "{n}"
        );
        check_ranges(&*blobs, &key, &body);
    }
    assert_eq!(toast_bytes(&db), "0");
    // Each row kept its body's age: unreferenced and old, they go.
    let unreferenced = |keys: &[Vec<u8>]| Ok(vec![false; keys.len()]);
    let short_grace = PgBlobStore::new(store).with_orphan_grace(std::time::Duration::from_secs(60));
    assert_eq!(
        short_grace.collect_orphans(&unreferenced).unwrap(),
        SIZES.len() as u64
    );
    assert_eq!(db.psql("SELECT count(*) FROM blobs"), "0");
}

#[test]
fn a_database_of_schema_one_keeps_its_bodies() {
    // A database as the engine left it before bodies had a store of their
    // own: schema version 1, a body in `blobs` without `put_at`.
    let db = test_db();
    db.psql(schema::MIGRATIONS[0]);
    db.psql(
        "CREATE TABLE sealmail_schema (one boolean PRIMARY KEY DEFAULT true CHECK (one), version integer NOT NULL);
         INSERT INTO sealmail_schema VALUES (true, 1);
         INSERT INTO blobs (key, value) VALUES ('old-body', 'old bytes');",
    );
    let (_store, blobs) = PgStore::open_pair(&db.url, 2).unwrap();
    assert_eq!(blobs.get(b"old-body").unwrap().unwrap(), b"old bytes");
    assert_eq!(
        blobs.get_range(b"old-body", 4..9).unwrap().unwrap(),
        b"bytes"
    );
    // Unreferenced, but young since the migration: the grace holds.
    let unreferenced = |keys: &[Vec<u8>]| Ok(vec![false; keys.len()]);
    assert_eq!(blobs.collect_orphans(&unreferenced).unwrap(), 0);
    assert_eq!(
        db.psql("SELECT version FROM sealmail_schema"),
        schema::MIGRATIONS.len().to_string()
    );
}
