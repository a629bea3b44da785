//! The measurement behind `blobs.value STORAGE EXTERNAL` (see the module
//! documentation of `postgres`): 1 MiB of random bytes (as ciphertext
//! looks) inserted and read back, EXTERNAL against the default (EXTENDED:
//! pglz tried first). Run with `cargo test --lib storage_figures --
//! --ignored --nocapture`; it prints the medians and asserts only that
//! both tables round-trip.

use std::time::{Duration, Instant};

use rand::RngCore;

use super::test_server::test_db;

const ROUNDS: usize = 20;

#[test]
#[ignore = "a measurement: run by hand (see the module documentation)"]
fn storage_figures() {
    let db = test_db();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(
                "CREATE TABLE ext (key int PRIMARY KEY, value bytea NOT NULL);
                 ALTER TABLE ext ALTER COLUMN value SET STORAGE EXTERNAL;
                 CREATE TABLE def (key int PRIMARY KEY, value bytea NOT NULL);",
            )
            .await
            .unwrap();
        for table in ["def", "ext", "def", "ext"] {
            let (mut inserts, mut selects) = (Vec::new(), Vec::new());
            for round in 0..ROUNDS {
                let mut body = vec![0u8; 1024 * 1024];
                rand::thread_rng().fill_bytes(&mut body);
                let key = i32::try_from(round).unwrap();
                client
                    .execute(&format!("DELETE FROM {table} WHERE key = $1"), &[&key])
                    .await
                    .unwrap();
                let t = Instant::now();
                client
                    .execute(
                        &format!("INSERT INTO {table} VALUES ($1, $2)"),
                        &[&key, &body],
                    )
                    .await
                    .unwrap();
                inserts.push(t.elapsed());
                let t = Instant::now();
                let row = client
                    .query_one(
                        &format!("SELECT value FROM {table} WHERE key = $1"),
                        &[&key],
                    )
                    .await
                    .unwrap();
                selects.push(t.elapsed());
                assert_eq!(row.get::<_, Vec<u8>>(0), body);
            }
            println!(
                "{table}: insert median {:?}, select median {:?}",
                median(&mut inserts),
                median(&mut selects)
            );
        }
    });
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}
