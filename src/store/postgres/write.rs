//! [`Store::write_if`](crate::store::Store::write_if) on PostgreSQL: one
//! READ COMMITTED transaction per batch.
//!
//! # How expectations hold at commit
//!
//! Each expected key is read with `SELECT ... FOR UPDATE`, which waits
//! for any transaction writing that row and then returns the latest
//! committed value, and locks the row until we commit: no writer, whether
//! it checks expectations or not, can change it in between. A key
//! expected *absent* has no row to lock — the trap: two transactions
//! would both see it absent and both commit. So an absent key is
//! reserved: an empty placeholder row is inserted (`ON CONFLICT DO
//! NOTHING`). The uncommitted row makes every other insert of that key
//! wait for our transaction; if the insert finds the key taken (a writer
//! committed it since), the expectation fails. A placeholder the batch
//! does not overwrite is deleted before the commit, so none is ever
//! visible. Expectations are checked in key order, so two writers
//! expecting the same keys lock them in the same order; a deadlock that
//! still happens (PostgreSQL aborts one side, SQLSTATE 40P01) is a
//! conflict like a failed expectation.
//!
//! Durability is PostgreSQL's: `COMMIT` returns once the WAL is flushed
//! under the default `synchronous_commit = on` (checked at open).

use std::sync::Arc;

use tokio_postgres::{Client, IsolationLevel, Transaction};

use super::error::{engine, is_broken, is_conflict};
use super::plan::Plan;
use super::pool::{Pool, Statements};
use super::sql::{Statement, Table};
use crate::store::{Batch, Expect, StoreError};

/// Attempts of a batch whose connection broke before its commit was sent
/// or (unconditional batches only) that met a concurrent transaction.
const ATTEMPTS: u32 = 5;

/// Why a transaction did not commit.
enum Failure {
    /// An expectation does not hold; nothing was written.
    Expectation(String),
    /// PostgreSQL failed before `COMMIT` was sent: nothing was written.
    Before(tokio_postgres::Error),
    /// `COMMIT` failed: if the connection broke, the outcome is unknown.
    Commit(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Before(e)
    }
}

/// Applies `batch` if every expectation of `expect` holds.
pub(super) async fn write_if(
    pool: Arc<Pool>,
    mut expect: Vec<Expect>,
    batch: Batch,
) -> Result<(), StoreError> {
    if expect.is_empty() && batch.is_empty() {
        return Ok(());
    }
    expect.sort_by(|a, b| (Table::of(a.cf), &a.key).cmp(&(Table::of(b.cf), &b.key)));
    expect.dedup();
    let plan = Plan::of(&batch);
    let mut attempt = 1;
    loop {
        let mut lease = pool.get().await?;
        let (client, statements) = lease.conn()?.parts();
        let failure = match commit(client, statements, &expect, &plan).await {
            Ok(()) => return Ok(()),
            Err(failure) => failure,
        };
        drop(lease);
        match failure {
            Failure::Expectation(detail) => return Err(StoreError::Conflict { detail }),
            // why retry: nothing was written, and either the connection
            // was stale (a restarted server) or, without expectations,
            // the batch is the same whichever transaction goes first.
            Failure::Before(e)
                if attempt < ATTEMPTS
                    && (is_broken(&e) || (expect.is_empty() && is_conflict(&e))) =>
            {
                if is_broken(&e) {
                    pool.discard_idle();
                }
                attempt += 1;
            }
            Failure::Before(e) => return Err(pool.error("write", &e)),
            Failure::Commit(e) if is_broken(&e) => {
                pool.discard_idle();
                return Err(engine(
                    "commit",
                    format!(
                        "the connection to PostgreSQL at {} broke during COMMIT, so whether the write took effect is unknown ({}); check that the server is running",
                        pool.target,
                        super::error::describe(&e)
                    ),
                ));
            }
            Failure::Commit(e) => return Err(pool.error("commit", &e)),
        }
    }
}

/// One attempt: check, apply, release placeholders, commit.
async fn commit(
    client: &mut Client,
    statements: &mut Statements,
    expect: &[Expect],
    plan: &Plan<'_>,
) -> Result<(), Failure> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    let mut reserved: Vec<(Table, &[u8])> = Vec::new();
    for e in expect {
        if check(&tx, statements, e).await? {
            reserved.push((Table::of(e.cf), &e.key));
        }
    }
    apply(&tx, statements, plan).await?;
    for (table, key) in reserved {
        if !plan.puts(table, key) {
            let delete = statements.get(&tx, table, Statement::Delete).await?;
            tx.execute(&delete, &table.params(&[&vec![key]])).await?;
        }
    }
    tx.commit().await.map_err(Failure::Commit)
}

/// Checks one expectation inside `tx`, locking its row (or reserving the
/// absent key); `Ok(true)` when it placed a placeholder row.
async fn check(
    tx: &Transaction<'_>,
    statements: &mut Statements,
    e: &Expect,
) -> Result<bool, Failure> {
    let table = Table::of(e.cf);
    let lock = statements.get(tx, table, Statement::Lock).await?;
    let row = tx.query_opt(&lock, &table.params(&[&e.key])).await?;
    let found: Option<Vec<u8>> = row.map(|r| r.try_get(0)).transpose()?;
    match (found, &e.value) {
        (Some(found), Some(wanted)) if found == *wanted => Ok(false),
        (None, None) => {
            let reserve = statements.get(tx, table, Statement::Reserve).await?;
            if tx.execute(&reserve, &table.params(&[&e.key])).await? == 1 {
                Ok(true)
            } else {
                Err(Failure::Expectation(format!(
                    "a key of `{}` expected absent was just written by another transaction",
                    e.cf
                )))
            }
        }
        (found, _) => Err(Failure::Expectation(format!(
            "a key of `{}` expected {} is {}",
            e.cf,
            if e.value.is_some() {
                "to hold the value read"
            } else {
                "absent"
            },
            if found.is_some() {
                "now another value"
            } else {
                "absent"
            },
        ))),
    }
}

/// Runs the plan's statements inside `tx`.
async fn apply(
    tx: &Transaction<'_>,
    statements: &mut Statements,
    plan: &Plan<'_>,
) -> Result<(), Failure> {
    for (table, range) in &plan.ranges {
        let start = range.start.as_slice();
        match &range.end {
            Some(end) => {
                let s = statements.get(tx, *table, Statement::DeleteRange).await?;
                tx.execute(&s, &table.params(&[&start, &end.as_slice()]))
                    .await?;
            }
            None => {
                let s = statements
                    .get(tx, *table, Statement::DeleteRangeOpen)
                    .await?;
                tx.execute(&s, &table.params(&[&start])).await?;
            }
        }
    }
    for (table, deletes, puts) in plan.by_table() {
        if !deletes.is_empty() {
            let s = statements.get(tx, table, Statement::Delete).await?;
            tx.execute(&s, &table.params(&[&deletes])).await?;
        }
        for rows in puts {
            let s = statements.get(tx, table, Statement::Put).await?;
            tx.execute(&s, &table.params(&[&rows.keys, &rows.values]))
                .await?;
        }
    }
    Ok(())
}
