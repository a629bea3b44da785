//! [`PgBlobStore`]: the blob tier of the PostgreSQL engine, the table
//! `blobs(key, off, value, put_at)` next to the metadata's `kv`, on the same
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
//! # Layout: rows of at most [`CHUNK_BYTES`], inline
//!
//! A body is the rows `(key, off, value)` of `blobs`, `off` the byte
//! offset of `value` in the body; every body has the row at `off = 0`
//! (an empty body: an empty `value`), which also carries its `put_at`.
//! why not one row per body (schema version 2): TOAST cut every body into
//! chunks of about 2 KB, each a tuple and an entry in the TOAST index, all
//! through the WAL; a 90 KB body was 45 of each. Rows of 8,000 bytes kept
//! inline (`toast_tuple_target`, one row per 8 KB page) are 12 tuples and
//! 12 index entries, written by one multi-row `INSERT`. Large objects keep
//! 2 KB pages too. The measurement (`benches/pg_bodies.rs`) is in
//! `benches/RESULTS.md`.
//!
//! A put replaces a body by deleting its rows and inserting the new ones
//! in its transaction. Two puts of one key at once may collide on the
//! primary key (a conflict, retried by the caller); the mail layer never
//! does that on a shared store (random keys, `BlobStore::shared`).
//!
//! A range read fetches only the rows the range covers (the row holding
//! its start, found by the largest `off` not after it, and those before
//! its end): an IMAP partial fetch of a large body does not read all of
//! it. Nothing depends on the rows' size: bodies written with another
//! [`CHUNK_BYTES`] read the same.
//!
//! `maintain` and `compact` keep their defaults: autovacuum reclaims the
//! rows of deleted bodies.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{join3, join_all};
use futures_util::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;
use tokio_postgres::Client;

use super::error::is_broken;
use super::pool::Statements;
use super::PgStore;
use crate::store::blobs::{BlobStore, Referenced, ORPHAN_GRACE};
use crate::store::{KeyRange, StoreError};

/// Most body bytes per transaction of one put (a larger body goes alone):
/// smaller transactions keep the server's memory for an `INSERT`'s arrays
/// modest, and a fan-out's bodies do not hold one transaction open.
const PUT_BYTES: usize = 64 * 1024 * 1024;

/// Keys looked at per step of orphan collection.
const ORPHAN_PAGE: i64 = 1_000;

/// Most bytes of a body per row. why 8,000: with the key (36 bytes from
/// the mail layer), the offset, `put_at` and the headers, a row fills one
/// 8 KB heap page and stays under the table's `toast_tuple_target`
/// (8,160), so PostgreSQL stores it inline; a longer key only moves that
/// row's value to TOAST. Changing it needs no migration (see the module
/// doc).
pub(super) const CHUNK_BYTES: usize = 8_000;

/// Bytes of bodies from which a put's transaction sends its rows with
/// binary `COPY` rather than one `INSERT … unnest`. why: `COPY` streams
/// the rows without building two arrays of them on the server, measured a
/// quarter faster per body for a fan-out chunk (`benches/pg_bodies.rs`),
/// but takes four round trips instead of one; a single delivery's body
/// gains less than those cost.
const COPY_FROM_BYTES: usize = 1024 * 1024;

/// Removes the rows of bodies about to be put again.
const CLEAR: &str = "DELETE FROM blobs WHERE key = ANY($1)";
const PUT: &str = "INSERT INTO blobs (key, off, value, put_at) SELECT k, o, v, now() FROM unnest($1::bytea[], $2::int8[], $3::bytea[]) AS t(k, o, v)";
const COPY_ROWS: &str = "COPY blobs (key, off, value) FROM STDIN (FORMAT binary)";
const GET: &str = "SELECT value FROM blobs WHERE key = $1 ORDER BY off";
// why the row at the largest `off` not after the start, and up to the
// end but at least that row: its presence tells an existing body from a
// missing one when the range covers no byte.
const GET_RANGE: &str = "WITH first AS (SELECT max(off) AS off FROM blobs WHERE key = $1 AND off <= $2) SELECT b.off, b.value FROM blobs b, first WHERE b.key = $1 AND b.off >= first.off AND b.off < greatest($3, first.off + 1) ORDER BY b.off";
const DELETE: &str = "DELETE FROM blobs WHERE key = ANY($1)";
const KEYS: &str =
    "SELECT key FROM blobs WHERE off = 0 AND key >= $1 AND key < $2 ORDER BY key LIMIT $3";
const KEYS_OPEN: &str = "SELECT key FROM blobs WHERE off = 0 AND key >= $1 ORDER BY key LIMIT $2";
const OLD_KEYS: &str = "SELECT key FROM blobs WHERE off = 0 AND key >= $1 AND put_at < now() - make_interval(secs => $2) ORDER BY key LIMIT $3";
const DELETE_OLD: &str = "WITH old AS (SELECT key FROM blobs WHERE off = 0 AND key = ANY($1) AND put_at < now() - make_interval(secs => $2)), gone AS (DELETE FROM blobs WHERE key IN (SELECT key FROM old) RETURNING key) SELECT DISTINCT key FROM gone";

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

    /// Runs the statements `steps` (SQL text and parameters built from
    /// owned values) on a pooled connection, and `read`s the rows of the
    /// last; once more on a fresh connection if the connection was broken
    /// (each statement here is safe to repeat). `Synced` runs one
    /// statement on its own; `Lazy` runs them all in one transaction.
    fn query<T: Send + 'static>(
        &self,
        op: &'static str,
        commit: Commit,
        steps: Vec<(&'static str, Params)>,
        read: fn(Vec<tokio_postgres::Row>) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let pool = Arc::clone(&self.engine.pool);
        self.engine.block(async move {
            let mut retried = false;
            loop {
                let mut lease = pool.get().await?;
                let (client, statements) = lease.conn()?.parts();
                let result = async {
                    let mut prepared = Vec::with_capacity(steps.len());
                    for (text, params) in &steps {
                        prepared.push((statements.prepared(&*client, text).await?, params.refs()));
                    }
                    let queries = prepared.iter().map(|(s, refs)| client.query(s, refs));
                    let results = match commit {
                        Commit::Synced => join_all(queries).await,
                        Commit::Lazy => {
                            // why one round trip: all are sent at once.
                            // If a statement fails, the next ones fail
                            // and COMMIT rolls back. BEGIN fails only with
                            // the connection, and then so does the rest.
                            let (begin, results, end) = join3(
                                client.batch_execute(LAZY_BEGIN),
                                join_all(queries),
                                client.batch_execute("COMMIT"),
                            )
                            .await;
                            begin?;
                            end?;
                            results
                        }
                    };
                    let mut last = Vec::new();
                    for rows in results {
                        last = rows?;
                    }
                    Ok(last)
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

    /// Runs one transaction of a put with its rows sent by binary
    /// `COPY`; once more on a fresh connection if the connection was
    /// broken (the transaction replaces the bodies whole: safe to repeat).
    fn put_by_copy(&self, rows: PutRows) -> Result<(), StoreError> {
        let pool = Arc::clone(&self.engine.pool);
        self.engine.block(async move {
            let mut retried = false;
            loop {
                let mut lease = pool.get().await?;
                let (client, statements) = lease.conn()?.parts();
                match copy_rows(client, statements, &rows).await {
                    Err(e) if !retried && is_broken(&e) => {
                        retried = true;
                        drop(lease);
                        pool.discard_idle();
                    }
                    other => break other.map_err(|e| pool.error("put bodies", &e)),
                }
            }
        })
    }

    fn grace_secs(&self) -> f64 {
        self.grace.as_secs_f64()
    }
}

/// The bodies of one transaction of a put: their keys, and their rows.
#[derive(Default)]
struct PutRows {
    bodies: Vec<Vec<u8>>,
    keys: Vec<Vec<u8>>,
    offs: Vec<i64>,
    values: Vec<Vec<u8>>,
    bytes: usize,
}

impl PutRows {
    /// Adds `body` under `key`, cut into rows of [`CHUNK_BYTES`] (one
    /// empty row for an empty body).
    fn add(&mut self, key: &[u8], body: &[u8]) {
        self.bodies.push(key.to_vec());
        let mut off = 0usize;
        loop {
            let part = body.get(off..).unwrap_or_default();
            let part = part.get(..CHUNK_BYTES).unwrap_or(part);
            self.keys.push(key.to_vec());
            self.offs.push(i64::try_from(off).unwrap_or(i64::MAX));
            self.values.push(part.to_vec());
            off += part.len();
            if off >= body.len() {
                break;
            }
        }
        self.bytes += body.len();
    }

    /// Its statements: the old rows of its keys out, the new ones in.
    fn into_steps(self) -> Vec<(&'static str, Params)> {
        vec![
            (CLEAR, Params::Keys(self.bodies)),
            (PUT, Params::Rows(self.keys, self.offs, self.values)),
        ]
    }
}

/// The transaction of [`PgBlobStore::put_by_copy`]: the old rows of the
/// bodies out, the new ones in by `COPY`, committed lazily (module doc).
async fn copy_rows(
    client: &mut Client,
    statements: &mut Statements,
    rows: &PutRows,
) -> Result<(), tokio_postgres::Error> {
    let clear = statements.prepared(&*client, CLEAR).await?;
    let copy = statements.prepared(&*client, COPY_ROWS).await?;
    let tx = client.transaction().await?;
    // why joined: sent at once, one round trip for the three.
    let (lazy, cleared, sink) = join3(
        tx.batch_execute("SET LOCAL synchronous_commit TO off"),
        tx.execute(&clear, &[&rows.bodies]),
        tx.copy_in(&copy),
    )
    .await;
    lazy?;
    cleared?;
    let writer = BinaryCopyInWriter::new(sink?, &[Type::BYTEA, Type::INT8, Type::BYTEA]);
    pin_mut!(writer);
    for ((key, off), value) in rows.keys.iter().zip(&rows.offs).zip(&rows.values) {
        writer.as_mut().write(&[key, off, value]).await?;
    }
    writer.finish().await?;
    tx.commit().await
}

/// The parameters of one statement, owned (they travel to the runtime).
enum Params {
    Key(Vec<u8>),
    KeyRange(Vec<u8>, i64, i64),
    Keys(Vec<Vec<u8>>),
    Rows(Vec<Vec<u8>>, Vec<i64>, Vec<Vec<u8>>),
    Scan(Vec<u8>, Option<Vec<u8>>, i64),
    Old(Vec<u8>, f64, i64),
    KeysOlder(Vec<Vec<u8>>, f64),
}

impl Params {
    fn refs(&self) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
        match self {
            Params::Key(k) => vec![k],
            Params::KeyRange(k, start, end) => vec![k, start, end],
            Params::Keys(ks) => vec![ks],
            Params::Rows(ks, offs, vs) => vec![ks, offs, vs],
            Params::Scan(start, Some(end), limit) => vec![start, end, limit],
            Params::Scan(start, None, limit) => vec![start, limit],
            Params::Old(start, secs, limit) => vec![start, secs, limit],
            Params::KeysOlder(ks, secs) => vec![ks, secs],
        }
    }
}

/// A body from its rows in order, or `None` without rows.
fn whole_body(rows: Vec<tokio_postgres::Row>) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    if rows.is_empty() {
        return Ok(None);
    }
    let mut body = Vec::new();
    for row in &rows {
        body.extend_from_slice(row.try_get::<_, &[u8]>(0)?);
    }
    Ok(Some(body))
}

/// The rows of a range read: `(off, value)`, in order.
fn offset_rows(
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<(i64, Vec<u8>)>, tokio_postgres::Error> {
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

fn all_keys(rows: Vec<tokio_postgres::Row>) -> Result<Vec<Vec<u8>>, tokio_postgres::Error> {
    rows.iter().map(|r| r.try_get(0)).collect()
}

fn nothing(_: Vec<tokio_postgres::Row>) -> Result<(), tokio_postgres::Error> {
    Ok(())
}

/// The bytes `range` of a body, from the rows a range read found: `None`
/// without rows (no body), else what of `range` the rows hold.
fn cut(rows: &[(i64, Vec<u8>)], range: &Range<u64>) -> Option<Vec<u8>> {
    if rows.is_empty() {
        return None;
    }
    let mut bytes = Vec::new();
    for (off, value) in rows {
        let off = u64::try_from(*off).unwrap_or(0);
        let len = value.len() as u64;
        let from = range.start.max(off).min(off + len);
        let to = range.end.min(off + len).max(from);
        let (Ok(from), Ok(to)) = (usize::try_from(from - off), usize::try_from(to - off)) else {
            continue;
        };
        bytes.extend_from_slice(value.get(from..to).unwrap_or_default());
    }
    Some(bytes)
}

impl BlobStore for PgBlobStore {
    /// Yes: every node of a cluster writes the one `blobs` table.
    fn shared(&self) -> bool {
        true
    }

    fn put(&self, items: &[(&[u8], &[u8])]) -> Result<(), StoreError> {
        // why the last of each key only: the last put of a key wins, and
        // its rows would collide with the earlier put's in one insert.
        let last: BTreeMap<&[u8], &[u8]> = items.iter().copied().collect();
        let mut transactions: Vec<PutRows> = Vec::new();
        for (key, value) in last {
            match transactions.last_mut() {
                Some(rows) if rows.bytes + value.len() <= PUT_BYTES => rows.add(key, value),
                _ => {
                    let mut rows = PutRows::default();
                    rows.add(key, value);
                    transactions.push(rows);
                }
            }
        }
        // why one transaction per group, not one for all: a put may be
        // partly done when it fails; what it left is an orphan, as the
        // crash rule allows, and a large fan-out does not hold one
        // transaction open across many statements. A body is never split
        // across two: its old rows go in the transaction that puts its new.
        for rows in transactions {
            if rows.bytes >= COPY_FROM_BYTES {
                self.put_by_copy(rows)?;
            } else {
                self.query("put bodies", Commit::Lazy, rows.into_steps(), nothing)?;
            }
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.query(
            "get body",
            Commit::Synced,
            vec![(GET, Params::Key(key.to_vec()))],
            whole_body,
        )
    }

    fn get_range(&self, key: &[u8], range: Range<u64>) -> Result<Option<Vec<u8>>, StoreError> {
        let start = i64::try_from(range.start).unwrap_or(i64::MAX);
        let end = i64::try_from(range.end).unwrap_or(i64::MAX);
        let rows = self.query(
            "get body range",
            Commit::Synced,
            vec![(GET_RANGE, Params::KeyRange(key.to_vec(), start, end))],
            offset_rows,
        )?;
        Ok(cut(&rows, &range))
    }

    fn delete(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        if keys.is_empty() {
            return Ok(());
        }
        self.query(
            "delete bodies",
            Commit::Lazy,
            vec![(DELETE, Params::Keys(keys.to_vec()))],
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
        self.query(
            "list bodies",
            Commit::Synced,
            vec![(text, params)],
            all_keys,
        )
    }

    fn collect_orphans(&self, referenced: Referenced<'_>) -> Result<u64, StoreError> {
        let mut removed = 0;
        let mut from = Vec::new();
        loop {
            let params = Params::Old(std::mem::take(&mut from), self.grace_secs(), ORPHAN_PAGE);
            let keys = self.query(
                "find orphan bodies",
                Commit::Synced,
                vec![(OLD_KEYS, params)],
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
            // it young, and its metadata may be committing right now. Its
            // put replaced the rows this statement would delete, so they
            // are skipped, and its new rows are not in this snapshot.
            let params = Params::KeysOlder(orphans, self.grace_secs());
            let gone = self.query(
                "remove orphan bodies",
                Commit::Lazy,
                vec![(DELETE_OLD, params)],
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
