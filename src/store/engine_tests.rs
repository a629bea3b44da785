//! The engine contract, written once and run against every engine (the
//! RocksDB tests call these on a database on disk; the PostgreSQL tests on
//! a real server).

use std::sync::Arc;

use super::{Batch, Cf, Expect, Store, StoreError};

/// `write_if` writes when every expectation holds, writes nothing and
/// answers `Conflict` when one does not, and "absent" is an expectation
/// of its own.
pub(crate) fn conditional_write(store: &dyn Store) {
    let version = |v: &[u8]| Expect {
        cf: Cf::Meta,
        key: b"contract-version".to_vec(),
        value: Some(v.to_vec()),
    };
    let absent = Expect {
        cf: Cf::Meta,
        key: b"contract-version".to_vec(),
        value: None,
    };
    let mut first = Batch::new();
    first.put(Cf::Meta, b"contract-version".to_vec(), b"1".to_vec());
    first.put(Cf::Accounts, b"contract-data".to_vec(), b"one".to_vec());
    store
        .write_if(std::slice::from_ref(&absent), first)
        .unwrap();

    let mut stale = Batch::new();
    stale.put(Cf::Meta, b"contract-version".to_vec(), b"1".to_vec());
    stale.put(Cf::Accounts, b"contract-data".to_vec(), b"lost".to_vec());
    assert!(matches!(
        store.write_if(&[absent], stale),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.get(Cf::Accounts, b"contract-data").unwrap(),
        Some(b"one".to_vec()),
        "a refused conditional write must leave nothing behind"
    );

    let mut next = Batch::new();
    next.put(Cf::Meta, b"contract-version".to_vec(), b"2".to_vec());
    next.put(Cf::Accounts, b"contract-data".to_vec(), b"two".to_vec());
    store.write_if(&[version(b"1")], next).unwrap();
    let mut late = Batch::new();
    late.delete(Cf::Accounts, b"contract-data".to_vec());
    assert!(matches!(
        store.write_if(&[version(b"1")], late),
        Err(StoreError::Conflict { .. })
    ));
    assert_eq!(
        store.get(Cf::Accounts, b"contract-data").unwrap(),
        Some(b"two".to_vec())
    );
}

/// Threads that each read a counter and write it back one higher, with
/// the value read as the expectation, retrying on `Conflict`, lose no
/// increment: what UIDs and MODSEQs rest on.
pub(crate) fn counter_under_contention(store: Arc<dyn Store>) {
    const THREADS: u64 = 4;
    const EACH: u64 = 50;
    let key = b"contract-counter".to_vec();
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let store = Arc::clone(&store);
            let key = key.clone();
            std::thread::spawn(move || {
                let mut conflicts = 0u64;
                for _ in 0..EACH {
                    loop {
                        let seen = store.get(Cf::Meta, &key).unwrap();
                        let n = seen
                            .as_deref()
                            .map_or(0, |b| u64::from_be_bytes(b.try_into().expect("8 bytes")));
                        let mut batch = Batch::new();
                        batch.put(Cf::Meta, key.clone(), (n + 1).to_be_bytes().to_vec());
                        let expect = Expect {
                            cf: Cf::Meta,
                            key: key.clone(),
                            value: seen,
                        };
                        match store.write_if(&[expect], batch) {
                            Ok(()) => break,
                            Err(StoreError::Conflict { .. }) => conflicts += 1,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let n = store.get(Cf::Meta, &key).unwrap().unwrap();
    assert_eq!(
        u64::from_be_bytes(n.try_into().unwrap()),
        THREADS * EACH,
        "every increment must land exactly once"
    );
}
