//! How to write a batch of message bodies into PostgreSQL (issue #16, item
//! 6): the layouts the blob tier could use, timed against each other on
//! one server, with the same bodies, in the same run.
//!
//! ```text
//! SEALMAIL_BENCH_STORE_URL=postgres://postgres@127.0.0.1:PORT cargo bench --bench pg_bodies
//! SEALMAIL_BENCH_BODIES=128        bodies per batch (a fan-out chunk)
//! SEALMAIL_BENCH_BODY_BYTES=92160  bytes per body (a 64 KiB message sealed)
//! SEALMAIL_BENCH_ROUNDS=12         batches per layout
//! ```
//!
//! Each batch is what a fan-out chunk does: one transaction that puts the
//! bodies, committed without waiting for the WAL flush, then a small synced
//! commit (the metadata's) that flushes it. The layouts run interleaved,
//! round by round, so the machine's noise falls on all of them alike; each
//! gets a fresh table in a throwaway database. The bodies are random bytes
//! (ciphertext does not compress). Prints the median time per body.
//!
//! - `toast`: one row per body, `STORAGE EXTERNAL` (the layout of schema
//!   version 2): TOAST cuts each body into chunks of about 2 KB.
//! - `toast-copy`: the same rows written with binary `COPY … FROM STDIN`
//!   (after deleting the keys: `COPY` does not upsert).
//! - `lo`: large objects (`lo_from_bytea`) and a row naming each: kept in
//!   `pg_largeobject` in pages of 2 KB, as TOAST does.
//! - `rows`: rows of 8,000 bytes, stored inline (`toast_tuple_target`),
//!   written with a multi-row `INSERT … unnest`.
//! - `rows-copy`: the same rows written with binary `COPY … FROM STDIN`.
// why the casts allowed: byte values cut from a random word, and
// microsecond counts far below usize::MAX, in a measurement.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_possible_truncation,
    missing_docs
)]

use std::time::{Duration, Instant};

use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};

const CHUNK: usize = 8000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Random bytes (xorshift): incompressible, like ciphertext.
fn bodies(count: usize, len: usize, seed: u64) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut x = seed | 1;
    (0..count)
        .map(|i| {
            let mut key = format!("{seed:016x}{i:020}").into_bytes();
            key.truncate(36);
            let body = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            (key, body)
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Layout {
    Toast,
    ToastCopy,
    LargeObjects,
    Rows,
    RowsCopy,
}

const LAYOUTS: [(Layout, &str); 5] = [
    (Layout::Toast, "toast"),
    (Layout::ToastCopy, "toast-copy"),
    (Layout::LargeObjects, "lo"),
    (Layout::Rows, "rows"),
    (Layout::RowsCopy, "rows-copy"),
];

const SCHEMA: &str = "
    CREATE TABLE toast (key bytea PRIMARY KEY, value bytea NOT NULL, put_at timestamptz NOT NULL DEFAULT now());
    ALTER TABLE toast ALTER COLUMN value SET STORAGE EXTERNAL;
    CREATE TABLE lo (key bytea PRIMARY KEY, body oid NOT NULL, put_at timestamptz NOT NULL DEFAULT now());
    CREATE TABLE rows (key bytea NOT NULL, off bigint NOT NULL, data bytea NOT NULL, put_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (key, off)) WITH (toast_tuple_target = 8160);
    ALTER TABLE rows ALTER COLUMN data SET STORAGE EXTERNAL;
    CREATE TABLE meta (k int PRIMARY KEY, v int NOT NULL);
    INSERT INTO meta VALUES (1, 0);
";

async fn put(client: &mut Client, layout: Layout, batch: &[(Vec<u8>, Vec<u8>)]) {
    let tx = client.transaction().await.unwrap();
    tx.batch_execute("SET LOCAL synchronous_commit TO off")
        .await
        .unwrap();
    let keys: Vec<&[u8]> = batch.iter().map(|(k, _)| k.as_slice()).collect();
    match layout {
        Layout::Toast => {
            let values: Vec<&[u8]> = batch.iter().map(|(_, v)| v.as_slice()).collect();
            tx.execute("INSERT INTO toast (key, value, put_at) SELECT k, v, now() FROM unnest($1::bytea[], $2::bytea[]) AS t(k, v) ON CONFLICT (key) DO UPDATE SET value = excluded.value, put_at = excluded.put_at", &[&keys, &values]).await.unwrap();
        }
        Layout::ToastCopy => {
            tx.execute("DELETE FROM toast WHERE key = ANY($1)", &[&keys])
                .await
                .unwrap();
            let sink = tx
                .copy_in("COPY toast (key, value) FROM STDIN (FORMAT binary)")
                .await
                .unwrap();
            let writer = BinaryCopyInWriter::new(sink, &[Type::BYTEA, Type::BYTEA]);
            pin_mut!(writer);
            for (k, v) in batch {
                writer.as_mut().write(&[k, v]).await.unwrap();
            }
            writer.finish().await.unwrap();
        }
        Layout::LargeObjects => {
            let values: Vec<&[u8]> = batch.iter().map(|(_, v)| v.as_slice()).collect();
            tx.execute("INSERT INTO lo (key, body) SELECT k, lo_from_bytea(0, v) FROM unnest($1::bytea[], $2::bytea[]) AS t(k, v)", &[&keys, &values]).await.unwrap();
        }
        Layout::Rows => {
            let (mut ks, mut offs, mut datas) = (Vec::new(), Vec::new(), Vec::new());
            for (k, v) in batch {
                for (i, part) in v.chunks(CHUNK).enumerate() {
                    ks.push(k.as_slice());
                    offs.push((i * CHUNK) as i64);
                    datas.push(part);
                }
            }
            tx.execute("DELETE FROM rows WHERE key = ANY($1)", &[&keys])
                .await
                .unwrap();
            tx.execute("INSERT INTO rows (key, off, data) SELECT k, o, d FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) AS t(k, o, d)", &[&ks, &offs, &datas]).await.unwrap();
        }
        Layout::RowsCopy => {
            tx.execute("DELETE FROM rows WHERE key = ANY($1)", &[&keys])
                .await
                .unwrap();
            let sink = tx
                .copy_in("COPY rows (key, off, data) FROM STDIN (FORMAT binary)")
                .await
                .unwrap();
            let writer = BinaryCopyInWriter::new(sink, &[Type::BYTEA, Type::INT8, Type::BYTEA]);
            pin_mut!(writer);
            for (k, v) in batch {
                for (i, part) in v.chunks(CHUNK).enumerate() {
                    let off = (i * CHUNK) as i64;
                    writer.as_mut().write(&[k, &off, &part]).await.unwrap();
                }
            }
            writer.finish().await.unwrap();
        }
    }
    tx.commit().await.unwrap();
    // The metadata commit that names them, synced: flushes the WAL.
    client
        .execute("UPDATE meta SET v = v + 1 WHERE k = 1", &[])
        .await
        .unwrap();
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let Ok(server) = std::env::var("SEALMAIL_BENCH_STORE_URL") else {
        eprintln!("pg_bodies: set SEALMAIL_BENCH_STORE_URL=postgres://USER@HOST:PORT (benches/engines.py starts a server)");
        return;
    };
    let count = env_or("SEALMAIL_BENCH_BODIES", 128);
    let len = env_or("SEALMAIL_BENCH_BODY_BYTES", 92_160);
    let rounds = env_or("SEALMAIL_BENCH_ROUNDS", 12);
    let db = format!("pg_bodies_{}", std::process::id());
    let admin = connect(&server).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let mut client = connect(&format!("{}/{db}", server.trim_end_matches('/'))).await;
    client.batch_execute(SCHEMA).await.unwrap();

    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); LAYOUTS.len()];
    for round in 0..rounds {
        for (i, (layout, _)) in LAYOUTS.iter().enumerate() {
            let batch = bodies(count, len, (round * 16 + i + 1) as u64);
            let start = Instant::now();
            put(&mut client, *layout, &batch).await;
            // why the first round dropped: it also warms the caches.
            if round > 0 {
                times[i].push(start.elapsed());
            }
        }
    }
    println!("{count} bodies of {len} bytes per batch, {rounds} rounds (first dropped); µs per body, median (min–max):");
    for ((_, name), mut t) in LAYOUTS.iter().zip(times) {
        t.sort();
        let per = |d: Duration| d.as_micros() as usize / count;
        if let (Some(first), Some(last)) = (t.first(), t.last()) {
            println!(
                "  {name:<10} {:>6} ({}–{})",
                per(t[t.len() / 2]),
                per(*first),
                per(*last)
            );
        }
    }
    let toast = client
        .query_one(
            "SELECT pg_relation_size(reltoastrelid) FROM pg_class WHERE relname = 'rows'",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    println!("  (TOAST bytes of the rows table: {toast})");
    drop(client);
    admin
        .batch_execute(&format!("DROP DATABASE {db}"))
        .await
        .unwrap();
}
