//! The PostgreSQL engine: [`Store`] on a PostgreSQL (15 or later) database
//! that several `sealmail serve` nodes may share (`store.engine =
//! "postgres"`, `store.url`).
//!
//! # Layout
//!
//! Created and migrated at open (`schema`): `kv(cf smallint, key bytea,
//! value bytea, PRIMARY KEY (cf, key))` holds the metadata, every column
//! family of [`Store`]; `blobs(key bytea, off bigint, value bytea, put_at
//! timestamptz, PRIMARY KEY (key, off))` the message bodies, as rows of at
//! most 8,000 bytes stored inline, which are not the metadata store's but
//! its blob tier's ([`PgBlobStore`], opened with it by
//! [`PgStore::open_pair`]); and `sealmail_schema` the schema version.
//! `bytea` compares bytewise, which is our key order (`sql`).
//!
//! `blobs.value` has `STORAGE EXTERNAL`: never compressed, and out of line
//! only for a row over the table's `toast_tuple_target` (a long key). A
//! body sealed for an opted-in account is ciphertext that pglz cannot
//! shrink. Measured on this engine's test cluster (PostgreSQL 15, 2 cores,
//! loopback, fsync on), inserting and reading back 1 MiB of random bytes,
//! median of 20 (`storage_figures`): EXTERNAL 5.1–5.4 ms per insert and
//! 2.6–2.7 ms per select, the default (EXTENDED) 5.4–5.5 ms and 2.6–2.8
//! ms. The gain is small — pglz gives up on input it cannot shrink
//! within the first KiB — but it is free, and the attempt is never made.

//! # Blocking API over an async client
//!
//! The engine owns a small tokio runtime ([`RUNTIME_THREADS`] workers)
//! that drives the connections of its pool (`pool`). Each blocking method
//! spawns its work onto that runtime and waits for the answer on a
//! `std::sync::mpsc` channel. why not `Handle::block_on`: it panics when
//! called on a thread that runs async code, and a channel wait does not;
//! the server calls the store inside `spawn_blocking`, the CLI and the
//! tests from plain threads, and either way the caller only blocks.
//! Dropping the engine shuts the runtime down in the background (which,
//! unlike dropping a runtime, is allowed inside an async context), closing
//! every connection.
//!
//! # Writes
//!
//! One READ COMMITTED transaction per batch, expectations checked under
//! row locks and key reservations (`write`), the batch reduced to a few
//! multi-row statements (`plan`). Conflicts with concurrent transactions
//! (serialization failure, deadlock, unique violation) are
//! [`StoreError::Conflict`]; other failures [`StoreError::Engine`] with a
//! message that names the server (never the password) and what to check.
//!
//! [`Store::compact`] and [`Store::maintain`] keep their defaults:
//! PostgreSQL's autovacuum reclaims deleted rows. TLS to the server is not
//! supported yet: use a loopback or private network, or a unix socket
//! (`postgres://user@%2Frun%2Fpostgresql/db`).

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

use super::{Batch, Cf, Expect, KeyRange, KeyValue, Order, Store, StoreError};

mod blobs;
mod error;
mod plan;
mod pool;
mod read;
mod schema;
mod sql;
mod write;

#[cfg(test)]
mod conflict_tests;
#[cfg(test)]
mod storage_figures;
#[cfg(test)]
#[allow(unreachable_pub, dead_code)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;

pub use blobs::PgBlobStore;
use error::engine;
use pool::Pool;

/// Worker threads of the engine's runtime: enough to drive a pool's
/// connections (the work is waiting on the network, not computing).
pub(crate) const RUNTIME_THREADS: usize = 2;

/// Connections when `store.pool_size` is not set: a server's blocking
/// pool runs many store calls at once (deliveries, IMAP and JMAP
/// sessions); 16 keeps a few nodes well under PostgreSQL's default
/// `max_connections` of 100.
pub const DEFAULT_POOL_SIZE: usize = 16;

/// [`Store`] on PostgreSQL.
pub struct PgStore {
    pool: Arc<Pool>,
    handle: Handle,
    runtime: Option<Runtime>,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("server", &self.pool.target)
            .field("pool_size", &self.pool.size())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user[:password]@host
    /// [:port]/db`, or the `key=value` form), with at most `pool_size`
    /// connections, and creates or migrates its schema.
    ///
    /// `url` comes from the operator's config; errors never repeat its
    /// password.
    pub fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|e| {
            engine(
                "open",
                format!("store.url is not a PostgreSQL connection URL ({}); write it as postgres://USER@HOST:PORT/DATABASE", error::describe(&e)),
            )
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("sealmail-pg")
            .enable_all()
            .build()
            .map_err(|e| {
                engine(
                    "open",
                    format!("cannot start the PostgreSQL client threads: {e}"),
                )
            })?;
        let store = Self {
            pool: Arc::new(Pool::new(config, pool_size)),
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        };
        let pool = Arc::clone(&store.pool);
        store.block(async move { schema::migrate(&pool).await })?;
        tracing::info!(server = %store.pool.target, pool_size = store.pool.size(), "PostgreSQL store opened");
        Ok(store)
    }

    /// [`PgStore::open`], and the engine's blob tier on the same
    /// connections: the metadata store and the blob store of one
    /// database.
    pub fn open_pair(
        url: &str,
        pool_size: usize,
    ) -> Result<(Arc<Self>, Arc<PgBlobStore>), StoreError> {
        let store = Arc::new(Self::open(url, pool_size)?);
        let blobs = Arc::new(PgBlobStore::new(Arc::clone(&store)));
        Ok((store, blobs))
    }

    /// Runs `work` on the engine's runtime and waits for its result.
    fn block<T: Send + 'static>(
        &self,
        work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(work.await);
        });
        rx.recv().unwrap_or_else(|_| {
            Err(engine(
                "wait",
                "the PostgreSQL client task ended without an answer (the engine is shutting down, or a bug: see the server log)",
            ))
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Store for PgStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.block(read::get(Arc::clone(&self.pool), cf, key.to_vec()))
    }

    fn get_many(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        self.block(read::get_many(Arc::clone(&self.pool), cf, keys.to_vec()))
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.block(read::scan(
            Arc::clone(&self.pool),
            cf,
            range.clone(),
            order,
            limit,
        ))
    }

    fn write_if(&self, expect: &[Expect], batch: Batch) -> Result<(), StoreError> {
        self.block(write::write_if(
            Arc::clone(&self.pool),
            expect.to_vec(),
            batch,
        ))
    }
}
