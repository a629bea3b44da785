//! [`PgBlobStore`]: the blob tier of the PostgreSQL engine, the table
//! `blobs(key, value, put_at)` next to the metadata's `kv`, on the same
//! database, pool and runtime as its [`PgStore`].
//!
//! # The crash rule on PostgreSQL
//!
//! A [`BlobStore::put`] is its own transaction, committed before it
//! returns, but *lazily* (`synchronous_commit = off` for that transaction
//! alone): its commit record is in PostgreSQL's write-ahead log when it
//! returns, not yet flushed. The metadata commit that names the bodies
//! comes after it in the same log and is synced (`synchronous_commit =
//! on`), and PostgreSQL flushes the log in order, up to that commit: so
//! once the metadata is durable, so are the bodies it names, on the
//! primary and on any synchronous standby — the "one log" case of the
//! `BlobStore::put` contract. A crash before that flush loses at most
//! bodies no metadata names yet. Deletes are lazy too: a delete lost in a
//! crash leaves an orphan, which collection removes. Each put saved one
//! WAL flush (several milliseconds of `fsync` on a plain disk) per
//! delivery.
//!
//! Orphans are told by age, not by memory: every put stamps `put_at`
//! with the server's clock, and [`BlobStore::collect_orphans`] removes
//! only a body that is unreferenced *and* was last put more than the
//! grace ago — checked again in the `DELETE` itself, so a body put again
//! by any node while the collector looked is kept. One clock (the
//! server's) decides, so the nodes' clocks need not agree.
//!
//! # Range reads
//!
//! `substring(value from .. for ..)` on a value with `STORAGE EXTERNAL`
//! (uncompressed, out of line) reads only the TOAST chunks the range
//! covers: an IMAP partial fetch of a large body does not read all of it.
//!
//! `maintain` and `compact` keep their defaults: autovacuum reclaims the
//! rows of deleted bodies.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join3;

use super::error::is_broken;
use super::PgStore;
use crate::store::blobs::{BlobStore, Referenced, ORPHAN_GRACE};
use crate::store::{KeyRange, StoreError};

/// Most value bytes per upsert statement of one put (a larger body goes
/// alone): PostgreSQL caps one array parameter at 1 GiB, and smaller
/// statements keep the server's per-statement memory modest.
const PUT_BYTES: usize = 64 * 1024 * 1024;

/// Keys looked at per step of orphan collection.
const ORPHAN_PAGE: i64 = 1_000;

const PUT: &str = "INSERT INTO blobs (key, value, put_at) SELECT k, v, now() FROM unnest($1::bytea[], $2::bytea[]) AS t(k, v) ON CONFLICT (key) DO UPDATE SET value = excluded.value, put_at = excluded.put_at";
const GET: &str = "SELECT value FROM blobs WHERE key = $1";
// why substring's 1-based start and a count: that is its SQL form; both
// are int4, and the values are clamped to the 1 GiB a bytea can hold.
const GET_RANGE: &str = "SELECT substring(value from $2 for $3) FROM blobs WHERE key = $1";
const DELETE: &str = "DELETE FROM blobs WHERE key = ANY($1)";
const KEYS: &str = "SELECT key FROM blobs WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3";
const KEYS_OPEN: &str = "SELECT key FROM blobs WHERE key >= $1 ORDER BY key LIMIT $2";
const OLD_KEYS: &str = "SELECT key FROM blobs WHERE key >= $1 AND put_at < now() - make_interval(secs => $2) ORDER BY key LIMIT $3";
const DELETE_OLD: &str = "DELETE FROM blobs WHERE key = ANY($1) AND put_at < now() - make_interval(secs => $2) RETURNING key";

/// Opens a transaction whose commit does not wait for the WAL flush.
const LAZY_BEGIN: &str = "BEGIN; SET LOCAL synchronous_commit TO off";

/// How a statement's transaction commits.
#[derive(Debug, Clone, Copy)]
enum Commit {
    /// On its own, returning once PostgreSQL's WAL holds it on disk (a
    /// read: nothing to wait for).
    Synced,
    /// Without waiting for the WAL flush: the next synced commit of any
    /// connection flushes it (see the module doc).
    Lazy,
}

/// [`BlobStore`] on the PostgreSQL engine's `blobs` table.
#[derive(Debug)]
pub struct PgBlobStore {
    engine: Arc<PgStore>,
    grace: Duration,
}

impl PgBlobStore {
    /// The blob tier of `engine` (same database and connections).
    pub(super) fn new(engine: Arc<PgStore>) -> Self {
        Self {
            engine,
            grace: ORPHAN_GRACE,
        }
    }

    /// The same store, removing orphans older than `grace` instead of
    /// [`ORPHAN_GRACE`] (tests).
    #[must_use]
    pub fn with_orphan_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Runs one statement `text` with `params` built from owned values,
    /// on a pooled connection; once more on a fresh one if the
    /// connection was broken (each statement here is safe to repeat).
    fn query<T: Send + 'static>(
        &self,
        op: &'static str,
        commit: Commit,
        text: &'static str,
        params: Params,
        read: fn(Vec<tokio_postgres::Row>) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let pool = Arc::clone(&self.engine.pool);
        self.engine.block(async move {
            let mut retried = false;
            loop {
                let mut lease = pool.get().await?;
                let (client, statements) = lease.conn()?.parts();
                let result = async {
                    let s = statements.prepared(&*client, text).await?;
                    let refs = params.refs();
                    match commit {
                        Commit::Synced => client.query(&s, &refs).await,
                        Commit::Lazy => {
                            // why one round trip: the three are sent at
                            // once. If BEGIN failed, the statement runs
                            // on its own and commits synced: slower, not
                            // wrong; if the statement fails, COMMIT rolls
                            // back.
                            let (begin, rows, end) = join3(
                                client.batch_execute(LAZY_BEGIN),
                                client.query(&s, &refs),
                                client.batch_execute("COMMIT"),
                            )
                            .await;
                            begin?;
                            let rows = rows?;
                            end?;
                            Ok(rows)
                        }
                    }
                }
                .await
                .and_then(read);
                match result {
                    Err(e) if !retried && is_broken(&e) => {
                        retried = true;
                        drop(lease);
                        pool.discard_idle();
                    }
                    other => break other.map_err(|e| pool.error(op, &e)),
                }
            }
        })
    }

    fn grace_secs(&self) -> f64 {
        self.grace.as_secs_f64()
    }
}

/// The keys and values of one upsert statement.
type Rows = (Vec<Vec<u8>>, Vec<Vec<u8>>);

/// The parameters of one statement, owned (they travel to the runtime).
enum Params {
    Key(Vec<u8>),
    KeyRange(Vec<u8>, i32, i32),
    Keys(Vec<Vec<u8>>),
    Bodies(Vec<Vec<u8>>, Vec<Vec<u8>>),
    Scan(Vec<u8>, Option<Vec<u8>>, i64),
    Old(Vec<u8>, f64, i64),
    KeysOlder(Vec<Vec<u8>>, f64),
}

impl Params {
    fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        match self {
            Params::Key(k) => vec![k],
            Params::KeyRange(k, from, count) => vec![k, from, count],
            Params::Keys(ks) => vec![ks],
            Params::Bodies(ks, vs) => vec![ks, vs],
            Params::Scan(start, Some(end), limit) => vec![start, end, limit],
            Params::Scan(start, None, limit) => vec![start, limit],
            Params::Old(start, secs, limit) => vec![start, secs, limit],
            Params::KeysOlder(ks, secs) => vec![ks, secs],
        }
    }
}

fn first_bytes(rows: Vec<tokio_postgres::Row>) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    rows.first().map(|r| r.try_get(0)).transpose()
}

fn all_keys(rows: Vec<tokio_postgres::Row>) -> Result<Vec<Vec<u8>>, tokio_postgres::Error> {
    rows.iter().map(|r| r.try_get(0)).collect()
}

fn nothing(_: Vec<tokio_postgres::Row>) -> Result<(), tokio_postgres::Error> {
    Ok(())
}

/// `range` as substring's 1-based start and count, clamped to int4 (a
/// bytea holds at most 1 GiB, so nothing real is cut).
fn substring_args(range: &Range<u64>) -> (i32, i32) {
    let start = i32::try_from(range.start)
        .unwrap_or(i32::MAX)
        .min(i32::MAX - 1);
    let count = i32::try_from(range.end.saturating_sub(range.start)).unwrap_or(i32::MAX);
    (start + 1, count)
}

impl BlobStore for PgBlobStore {
    /// Yes: every node of a cluster writes the one `blobs` table.
    fn shared(&self) -> bool {
        true
    }

    fn put(&self, items: &[(&[u8], &[u8])]) -> Result<(), StoreError> {
        // why the last of each key only: one upsert may not touch a row
        // twice ("ON CONFLICT DO UPDATE command cannot affect row a
        // second time"), and the last put of a key wins.
        let last: BTreeMap<&[u8], &[u8]> = items.iter().copied().collect();
        let mut statements: Vec<Rows> = Vec::new();
        let mut bytes = 0;
        for (key, value) in last {
            if statements.is_empty() || bytes + value.len() > PUT_BYTES {
                statements.push((Vec::new(), Vec::new()));
                bytes = 0;
            }
            if let Some((keys, values)) = statements.last_mut() {
                keys.push(key.to_vec());
                values.push(value.to_vec());
                bytes += value.len();
            }
        }
        // why one transaction per statement, not one for all: a put may
        // be partly done when it fails; what it left is an orphan, as the
        // crash rule allows, and a large fan-out does not hold one
        // transaction open across many statements.
        for (keys, values) in statements {
            self.query(
                "put bodies",
                Commit::Lazy,
                PUT,
                Params::Bodies(keys, values),
                nothing,
            )?;
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(
            "get body",
            Commit::Synced,
            GET,
            Params::Key(key.to_vec()),
            first_bytes,
        )
    }

    fn get_range(&self, key: &[u8], range: Range<u64>) -> Result<Option<Vec<u8>>, StoreError> {
        let (from, count) = substring_args(&range);
        self.query(
            "get body range",
            Commit::Synced,
            GET_RANGE,
            Params::KeyRange(key.to_vec(), from, count),
            first_bytes,
        )
    }

    fn delete(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.query(
            "delete bodies",
            Commit::Lazy,
            DELETE,
            Params::Keys(keys.to_vec()),
            nothing,
        )
    }

    fn keys(&self, range: &KeyRange, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let empty = range.end.as_ref().is_some_and(|end| *end <= range.start);
        if limit == 0 || empty {
            return Ok(Vec::new());
        }
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let text = if range.end.is_some() { KEYS } else { KEYS_OPEN };
        let params = Params::Scan(range.start.clone(), range.end.clone(), limit);
        self.query("list bodies", Commit::Synced, text, params, all_keys)
    }

    fn collect_orphans(&self, referenced: Referenced<'_>) -> Result<u64, StoreError> {
        let mut removed = 0;
        let mut from = Vec::new();
        loop {
            let params = Params::Old(std::mem::take(&mut from), self.grace_secs(), ORPHAN_PAGE);
            let keys = self.query(
                "find orphan bodies",
                Commit::Synced,
                OLD_KEYS,
                params,
                all_keys,
            )?;
            let Some(last) = keys.last() else { break };
            from = last.clone();
            from.push(0);
            let flags = referenced(&keys)?;
            if flags.len() != keys.len() {
                return Err(crate::store::error::bug("one reference flag per key"));
            }
            let orphans: Vec<Vec<u8>> = keys
                .into_iter()
                .zip(flags)
                .filter(|(_, referenced)| !referenced)
                .map(|(key, _)| key)
                .collect();
            if orphans.is_empty() {
                continue;
            }
            // why the age again in the DELETE: a node that put one of
            // these since we looked (a new delivery of the same body) made
            // it young, and its metadata may be committing right now.
            let params = Params::KeysOlder(orphans, self.grace_secs());
            let gone = self.query(
                "remove orphan bodies",
                Commit::Lazy,
                DELETE_OLD,
                params,
                all_keys,
            )?;
            removed += gone.len() as u64;
        }
        if removed > 0 {
            tracing::info!(
                removed,
                "orphan bodies removed (their changes never committed)"
            );
        }
        Ok(removed)
    }
}
