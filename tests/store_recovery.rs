//! The RocksDB store recovers from running out of file descriptors by
//! itself: a flush that cannot create its files puts RocksDB into its
//! background-error state, where every write fails; once descriptors are
//! free again, writes work without a restart, and everything acknowledged
//! before is still there, also after a fresh open.
//!
//! The descriptors are exhausted for real, in a child process (this test
//! binary run again with [`CHILD`] set) whose open-files limit is lowered,
//! so no other test of the run is starved.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use sealmail::store::{Batch, BlobStore, Cf, RocksStore, Store};

/// Set in the child's environment: run the scenario instead of spawning.
const CHILD: &str = "SEALMAIL_TEST_STORE_RECOVERY_CHILD";

#[test]
fn store_writes_work_again_after_descriptors_ran_out() {
    if std::env::var_os(CHILD).is_some() {
        exhaust_and_recover();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store_writes_work_again_after_descriptors_ran_out",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{log}");
    assert!(
        log.contains("child: recovered"),
        "child did not run:\n{log}"
    );
}

fn put(key: &str, value: Vec<u8>) -> Batch {
    let mut batch = Batch::new();
    batch.put(Cf::Messages, key.as_bytes().to_vec(), value);
    batch
}

fn big(marker: &str) -> Vec<u8> {
    marker.as_bytes().repeat(64 * 1024 / marker.len() + 1)
}

/// Opens `/dev/null` until the process is out of descriptors.
fn take_every_descriptor() -> Vec<std::fs::File> {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(24), "expected EMFILE: {e}");
                return held;
            }
        }
    }
}

/// The scenario, in the child process.
fn exhaust_and_recover() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    rlimit::setrlimit(rlimit::Resource::NOFILE, 512, hard).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, blobs) = RocksStore::open_pair(dir.path()).unwrap();
    blobs.put(&[(b"big-before", &big("big-before"))]).unwrap();
    store
        .write(put("before", b"acknowledged".to_vec()))
        .unwrap();

    let held = take_every_descriptor();
    // A memtable switch needs a new WAL and an SST file: it fails, and
    // RocksDB records a background error.
    let flushed = store.flush();
    eprintln!("child: flush while out of descriptors: {flushed:?}");
    let during = store.write(put("during", b"x".to_vec()));
    let err = during.expect_err("writes fail in the background-error state");
    let text = err.to_string();
    eprintln!("child: write while out of descriptors: {text}");
    drop(held);

    // Free again: within a few backoff periods a write succeeds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match store.write(put("after", b"recovered".to_vec())) {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("child: not yet: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the store did not recover: {e}"),
        }
    }
    // The blob tier's index lives in the same database: it recovered too.
    blobs.put(&[(b"big-after", &big("big-after"))]).unwrap();
    store.write(put("after-blob", b"x".to_vec())).unwrap();
    for (cf, key, value) in [
        (Cf::Messages, "before", b"acknowledged".to_vec()),
        (Cf::Messages, "after", b"recovered".to_vec()),
    ] {
        assert_eq!(store.get(cf, key.as_bytes()).unwrap(), Some(value), "{key}");
    }
    for key in ["big-before", "big-after"] {
        assert_eq!(blobs.get(key.as_bytes()).unwrap(), Some(big(key)), "{key}");
    }
    drop((store, blobs));
    let (store, blobs) = RocksStore::open_pair(dir.path()).unwrap();
    assert_eq!(
        store.get(Cf::Messages, b"before").unwrap().as_deref(),
        Some(&b"acknowledged"[..])
    );
    assert_eq!(blobs.get(b"big-after").unwrap(), Some(big("big-after")));
    // Checked last, so that on a store that stays wedged the test fails
    // on that, not on this.
    let data_dir = dir.path().to_str().unwrap();
    assert!(
        !text.contains(data_dir) && !text.contains('/'),
        "the error names a path: {text}"
    );
    eprintln!("child: recovered");
}
