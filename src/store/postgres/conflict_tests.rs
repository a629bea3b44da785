//! The PostgreSQL engine under concurrency, against a real server: two
//! engines (two nodes) on one counter, writers racing to create the same
//! key, and engines migrating one database at once.
#![allow(clippy::cast_possible_truncation)]

use std::sync::Arc;

use super::test_server::{test_db, TestDb};
use super::*;

fn open() -> (TestDb, PgStore) {
    let db = test_db();
    let store = PgStore::open(&db.url, 4).unwrap();
    (db, store)
}

/// Adds `n` to the counter at `key`, each step a conditional write that
/// expects the value it read, retried on conflict.
fn increment(store: &dyn Store, key: &[u8], n: u64) {
    for _ in 0..n {
        loop {
            let seen = store.get(Cf::Meta, key).unwrap();
            let value = seen
                .as_deref()
                .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
            let mut batch = Batch::new();
            batch.put(Cf::Meta, key.to_vec(), (value + 1).to_be_bytes().to_vec());
            let expect = Expect {
                cf: Cf::Meta,
                key: key.to_vec(),
                value: seen,
            };
            match store.write_if(&[expect], batch) {
                Ok(()) => break,
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => panic!("{e}"),
            }
        }
    }
}

#[test]
fn counter_shared_by_two_engines_loses_no_increment() {
    // Two engines on one database are two nodes: their only common
    // ground is PostgreSQL.
    let db = test_db();
    let a = Arc::new(PgStore::open(&db.url, 2).unwrap());
    let b = Arc::new(PgStore::open(&db.url, 2).unwrap());
    let workers: Vec<_> = [&a, &b, &a, &b]
        .into_iter()
        .map(|store| {
            let store = Arc::clone(store);
            std::thread::spawn(move || increment(store.as_ref(), b"shared", 40))
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let n = b.get(Cf::Meta, b"shared").unwrap().unwrap();
    assert_eq!(u64::from_be_bytes(n.try_into().unwrap()), 160);
}

#[test]
fn only_one_of_racing_writers_expecting_absent_wins() {
    let db = test_db();
    let stores: Vec<Arc<PgStore>> = (0..4)
        .map(|_| Arc::new(PgStore::open(&db.url, 2).unwrap()))
        .collect();
    for round in 0u8..20 {
        let barrier = Arc::new(std::sync::Barrier::new(stores.len()));
        let racers: Vec<_> = stores
            .iter()
            .enumerate()
            .map(|(i, store)| {
                let (store, barrier) = (Arc::clone(store), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    let expect = Expect {
                        cf: Cf::Meta,
                        key: vec![b'k', round],
                        value: None,
                    };
                    // The batch does not write the expected key itself:
                    // only the reservation stops a second winner.
                    let mut batch = Batch::new();
                    batch.put(Cf::Accounts, vec![b'w', round, i as u8], vec![1]);
                    batch.put(Cf::Meta, vec![b'k', round], vec![i as u8]);
                    barrier.wait();
                    store.write_if(&[expect], batch)
                })
            })
            .collect();
        let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        let won = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {results:?}");
        assert!(results
            .iter()
            .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict { .. }))));
        let winners = stores[0]
            .scan(
                Cf::Accounts,
                &KeyRange::prefix(&[b'w', round]),
                Order::Forward,
                10,
            )
            .unwrap();
        assert_eq!(winners.len(), 1, "round {round}");
    }
}

#[test]
fn absent_expectation_leaves_no_placeholder() {
    let (_db, store) = open();
    let expect = Expect {
        cf: Cf::Settings,
        key: b"never-written".to_vec(),
        value: None,
    };
    let mut batch = Batch::new();
    batch.put(Cf::Settings, b"other".to_vec(), b"v".to_vec());
    store
        .write_if(std::slice::from_ref(&expect), batch)
        .unwrap();
    assert_eq!(store.get(Cf::Settings, b"never-written").unwrap(), None);
    let all = store
        .scan(Cf::Settings, &KeyRange::prefix(&[]), Order::Forward, 10)
        .unwrap();
    assert_eq!(all, vec![(b"other".to_vec(), b"v".to_vec())]);
    // And it still counts as absent for the next writer.
    store.write_if(&[expect], Batch::new()).unwrap();
}

#[test]
fn engines_opening_at_once_migrate_once() {
    let db = test_db();
    let openers: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || PgStore::open(&url, 1).map(|_| ()))
        })
        .collect();
    for o in openers {
        o.join().unwrap().unwrap();
    }
    assert_eq!(
        db.psql("SELECT version FROM sealmail_schema"),
        super::schema::MIGRATIONS.len().to_string()
    );
    assert_eq!(db.psql("SELECT count(*) FROM sealmail_schema"), "1");
}
