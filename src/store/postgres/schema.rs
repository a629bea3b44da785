//! The database schema, created and migrated when the engine opens.
//!
//! `sealmail_schema` holds one row: the number of [`MIGRATIONS`] applied.
//! Opening applies the missing ones, in order, in one transaction, under
//! a transaction-scoped advisory lock, so two nodes starting at once do
//! not both migrate (the second waits, then finds nothing left to do),
//! and a failed step leaves the schema as it was.

use tokio_postgres::Client;

use super::error::engine;
use super::pool::Pool;
use crate::store::StoreError;

/// Key of the advisory lock taken while migrating ("sealmail" in ASCII,
/// as a number no other program is likely to pick).
const MIGRATION_LOCK: i64 = 0x7365_616c_6d61_696c;

/// The schema steps, oldest first; step `n` moves the schema from version
/// `n` to `n + 1`. Never edit a released step: add one.
///
/// Step 1: `kv` for every column family but blobs, `blobs` for message
/// bodies. `STORAGE EXTERNAL` keeps a body out of line but uncompressed:
/// most bodies are S/MIME ciphertext, which pglz cannot shrink, so the
/// compression attempt is CPU spent for nothing (see `postgres` for the
/// measurement).
///
/// Step 2: `blobs.put_at`, when a body was last put (the server's clock):
/// how orphan collection knows a body is old enough to go (see
/// `postgres::blobs`). Bodies already there count from the migration.
///
/// Step 3: a body as rows `(key, off, value)` of at most 8,000 bytes kept
/// inline (`toast_tuple_target`) instead of one row that TOAST cut into 2 KB
/// chunks: a quarter of the tuples and index entries per body written
/// (`postgres::blobs`). The bodies already there are rewritten into the
/// new table, each row keeping its body's `put_at`: the step takes about
/// as long as copying them once.
pub(super) const MIGRATIONS: &[&str] = &[
    "
    CREATE TABLE kv (
        cf smallint NOT NULL,
        key bytea NOT NULL,
        value bytea NOT NULL,
        PRIMARY KEY (cf, key)
    );
    CREATE TABLE blobs (
        key bytea PRIMARY KEY,
        value bytea NOT NULL
    );
    ALTER TABLE blobs ALTER COLUMN value SET STORAGE EXTERNAL;
",
    "
    ALTER TABLE blobs ADD COLUMN put_at timestamptz NOT NULL DEFAULT now();
",
    "
    ALTER TABLE blobs RENAME TO blobs_v2;
    ALTER INDEX blobs_pkey RENAME TO blobs_v2_pkey;
    CREATE TABLE blobs (
        key bytea NOT NULL,
        off bigint NOT NULL,
        value bytea NOT NULL,
        put_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (key, off)
    ) WITH (toast_tuple_target = 8160);
    ALTER TABLE blobs ALTER COLUMN value SET STORAGE EXTERNAL;
    INSERT INTO blobs (key, off, value, put_at)
        SELECT b.key, o, substring(b.value from o + 1 for 8000), b.put_at
        FROM blobs_v2 b,
            generate_series(0, greatest(octet_length(b.value) - 1, 0), 8000) AS o;
    DROP TABLE blobs_v2;
",
];

/// Brings the schema of the pool's database to the latest version.
pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut conn = pool.connect().await?;
    let (client, _) = conn.parts();
    let found = apply(client, MIGRATIONS).await.map_err(|e| match e {
            Failure::Db(e) => pool.error("migrate schema", &e),
            Failure::Newer(found) => engine(
                "migrate schema",
                format!(
                    "the database at {} has schema version {found}, newer than this sealmail knows ({}); upgrade sealmail on this node",
                    pool.target,
                    MIGRATIONS.len()
                ),
            ),
        })?;
    if found < MIGRATIONS.len() {
        tracing::info!(server = %pool.target, from = found, to = MIGRATIONS.len(), "PostgreSQL schema migrated");
    }
    // why: the engine promises a write is durable when it returns, which
    // on PostgreSQL rests on the default `synchronous_commit = on`.
    let setting = client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .and_then(|row| row.try_get::<_, String>(0))
        .map_err(|e| pool.error("read settings", &e))?;
    if setting == "off" || setting == "local" {
        tracing::error!(server = %pool.target, synchronous_commit = %setting, "PostgreSQL commits are not durable on return: set synchronous_commit = on for sealmail's database");
    }
    Ok(())
}

/// Why a migration did not run.
enum Failure {
    Db(tokio_postgres::Error),
    /// The database is at this version, newer than ours.
    Newer(usize),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

/// Applies the steps of `migrations` the database lacks, in one
/// transaction; returns the version it found.
async fn apply(client: &mut Client, migrations: &[&str]) -> Result<usize, Failure> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS sealmail_schema (
            one boolean PRIMARY KEY DEFAULT true CHECK (one),
            version integer NOT NULL
        )",
    )
    .await?;
    let row = tx
        .query_opt("SELECT version FROM sealmail_schema", &[])
        .await?;
    let found: i32 = match row {
        Some(row) => row.try_get(0)?,
        None => 0,
    };
    let found = usize::try_from(found).unwrap_or(0);
    if found > migrations.len() {
        return Err(Failure::Newer(found));
    }
    for step in migrations.iter().skip(found) {
        tx.batch_execute(step).await?;
    }
    let version = i32::try_from(migrations.len()).unwrap_or(i32::MAX);
    tx.execute(
        "INSERT INTO sealmail_schema (one, version) VALUES (true, $1)
         ON CONFLICT (one) DO UPDATE SET version = excluded.version",
        &[&version],
    )
    .await?;
    tx.commit().await?;
    Ok(found)
}
