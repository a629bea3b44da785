//! Store throughput: append N messages with 64 KiB random bodies through
//! `MailStore::append` (each a synced RocksDB batch), read every record and
//! blob back, and time reopening the store. A plain `main` that prints
//! figures (criterion's repetition would take far too long at this size).
//!
//! `cargo bench --bench store` (N = 20 000 by default; set
//! `SEALMAIL_BENCH_MESSAGES` for another count, `SEALMAIL_BENCH_DIR` to
//! put the database on another disk).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use rand::{RngCore, SeedableRng};
use sealmail::store::{Flags, HeaderFields, MailStore, NewMessage};

const BODY: usize = 64 * 1024;

fn main() {
    let n: usize = std::env::var("SEALMAIL_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = match std::env::var_os("SEALMAIL_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut body = vec![0u8; BODY];

    let store = MailStore::open(dir.path()).unwrap();
    let acct = store
        .add_account("bench@example.org", None, &[])
        .unwrap()
        .id;
    let inbox = store.mailbox_by_name(acct, "INBOX").unwrap().id;

    let start = Instant::now();
    let mut gen_time = Duration::ZERO;
    let mut uids = Vec::with_capacity(n);
    for i in 0..n {
        let g = Instant::now();
        rng.fill_bytes(&mut body);
        gen_time += g.elapsed();
        let msg = NewMessage {
            raw: &body,
            flags: Flags::default(),
            internal_date: 1_700_000_000,
            headers: HeaderFields {
                subject: Some(format!("message {i}")),
                ..HeaderFields::default()
            },
            encrypted: true,
            unique: false,
        };
        uids.push(store.append(acct, inbox, msg).unwrap().uid);
    }
    let write = start.elapsed().saturating_sub(gen_time);
    report("append", n, write);

    let start = Instant::now();
    let mut bytes = 0usize;
    for &uid in &uids {
        let m = store.get_message(acct, inbox, uid).unwrap();
        let blob = store.get_blob(acct, m.blob).unwrap().unwrap();
        bytes += black_box(blob).len();
    }
    assert_eq!(bytes, n * BODY);
    report("read record + blob", n, start.elapsed());

    let start = Instant::now();
    let listed = store.list_messages(acct, inbox, None, usize::MAX).unwrap();
    assert_eq!(listed.len(), n);
    println!(
        "list {n} records in UID order: {:.3} s",
        start.elapsed().as_secs_f64()
    );

    drop(store);
    let start = Instant::now();
    let store = MailStore::open(dir.path()).unwrap();
    let reopen = start.elapsed();
    assert_eq!(store.account(acct).unwrap().used_bytes, (n * BODY) as u64);
    println!("reopen: {:.3} s", reopen.as_secs_f64());
    println!(
        "on disk: database {:.0} MB, blob segments {:.0} MB",
        dir_size(&dir.path().join("db")) as f64 / 1e6,
        dir_size(&dir.path().join("segments")) as f64 / 1e6
    );
}

fn report(what: &str, n: usize, elapsed: Duration) {
    let secs = elapsed.as_secs_f64();
    println!(
        "{what}: {n} messages in {secs:.2} s = {:.0} msgs/s, {:.1} MB/s",
        n as f64 / secs,
        (n * BODY) as f64 / 1e6 / secs
    );
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}
