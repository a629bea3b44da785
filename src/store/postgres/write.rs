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

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;

use tokio_postgres::{Client, IsolationLevel, Row};

use super::error::{engine, is_broken, is_conflict};
use super::plan::{Plan, TableOps};
use super::pool::{Pool, Statements};
use super::sql::{Param, Statement, Table};
use crate::store::{Batch, Cf, Expect, StoreError};

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
///
/// why pipelined: every statement between `BEGIN` and `COMMIT` is sent
/// at once and their answers read after (tokio-postgres sends requests in
/// the order their futures are first polled), so a transaction costs
/// three round trips however many tables and expectations it has; one
/// round trip per statement made a list chunk's write wait on dozens.
/// The expectations are judged from the answers before `COMMIT`: when one
/// fails, the applied statements are rolled back with the rest. A
/// statement that fails aborts the transaction, and the ones behind it
/// fail too; the first failure is the one reported.
async fn commit(
    client: &mut Client,
    statements: &mut Statements,
    expect: &[Expect],
    plan: &Plan<'_>,
) -> Result<(), Failure> {
    let checks = Checks::of(expect, plan);
    let ops = plan.by_table();
    let calls = Calls::prepare(&*client, statements, &checks, plan, &ops).await?;
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?;
    let answers = in_order(calls.0.iter().map(|c| tx.query(&c.statement, &c.params))).await;
    let mut failure = None;
    for (call, answer) in calls.0.iter().zip(answers) {
        let rows = answer?;
        if failure.is_none() {
            failure = call.judge(&checks, &rows);
        }
    }
    if let Some(detail) = failure {
        return Err(Failure::Expectation(detail));
    }
    tx.commit().await.map_err(Failure::Commit)
}

/// The expectations on one table, by what they expect.
struct Checks<'e> {
    /// The column family, for messages.
    cf: Cf,
    table: Table,
    /// Keys expected to hold a value, in key order.
    present: Vec<&'e [u8]>,
    /// The value each of `present` is expected to hold.
    wanted: Vec<&'e [u8]>,
    /// Keys expected absent, in key order: reserved with a placeholder.
    absent: Vec<&'e [u8]>,
    /// The placeholders the batch does not overwrite: deleted before
    /// the commit, so none is ever visible.
    release: Vec<&'e [u8]>,
}

impl<'e> Checks<'e> {
    /// `expect` (sorted by table and key) grouped by table.
    fn of(expect: &'e [Expect], plan: &Plan<'_>) -> Vec<Self> {
        let mut all: Vec<Checks<'e>> = Vec::new();
        for e in expect {
            let table = Table::of(e.cf);
            if all.last().is_none_or(|c| c.table != table) {
                all.push(Checks {
                    cf: e.cf,
                    table,
                    present: Vec::new(),
                    wanted: Vec::new(),
                    absent: Vec::new(),
                    release: Vec::new(),
                });
            }
            let Some(checks) = all.last_mut() else {
                continue;
            };
            match &e.value {
                Some(value) => {
                    checks.present.push(&e.key);
                    checks.wanted.push(value);
                }
                None => {
                    checks.absent.push(&e.key);
                    if !plan.puts(table, &e.key) {
                        checks.release.push(&e.key);
                    }
                }
            }
        }
        all
    }
}

/// What one statement of the pipeline is for.
#[derive(Clone, Copy)]
enum Purpose {
    /// Locks the present-expected keys of `Checks` number `.0`.
    Lock(usize),
    /// Reserves the absent-expected keys of `Checks` number `.0`.
    Reserve(usize),
    /// Applies part of the batch, or releases placeholders.
    Write,
}

/// One prepared statement of the pipeline with its parameters.
struct Call<'p> {
    statement: tokio_postgres::Statement,
    params: Vec<Param<'p>>,
    purpose: Purpose,
}

impl Call<'_> {
    /// Why the expectations this call checks do not hold, if they don't.
    fn judge(&self, checks: &[Checks<'_>], rows: &[Row]) -> Option<String> {
        match self.purpose {
            Purpose::Write => None,
            Purpose::Lock(i) => {
                let c = &checks[i];
                let found: HashMap<Vec<u8>, Vec<u8>> = rows
                    .iter()
                    .filter_map(|r| Some((r.try_get(0).ok()?, r.try_get(1).ok()?)))
                    .collect();
                c.present.iter().zip(&c.wanted).find_map(|(key, wanted)| {
                    let now = match found.get(*key) {
                        Some(v) if v.as_slice() == *wanted => return None,
                        Some(_) => "now another value",
                        None => "absent",
                    };
                    Some(format!(
                        "a key of `{}` expected to hold the value read is {now}",
                        c.cf
                    ))
                })
            }
            Purpose::Reserve(i) => {
                let c = &checks[i];
                (rows.len() < c.absent.len()).then(|| {
                    format!(
                        "a key of `{}` expected absent was just written by another transaction",
                        c.cf
                    )
                })
            }
        }
    }
}

/// Every statement of one attempt, in the order they run: locks and
/// reservations, range deletes, point deletes and puts, releases.
struct Calls<'p>(Vec<Call<'p>>);

impl<'p> Calls<'p> {
    async fn prepare(
        client: &Client,
        statements: &mut Statements,
        checks: &'p [Checks<'p>],
        plan: &'p Plan<'p>,
        ops: &'p [TableOps<'p>],
    ) -> Result<Self, tokio_postgres::Error> {
        let mut calls = Vec::new();
        let mut add = |statement, params, purpose| {
            calls.push(Call {
                statement,
                params,
                purpose,
            });
        };
        for (i, c) in checks.iter().enumerate() {
            let table = &c.table;
            if !c.present.is_empty() {
                let s = statements.get(client, c.table, Statement::Lock).await?;
                add(s, table.params(&[&c.present]), Purpose::Lock(i));
            }
            if !c.absent.is_empty() {
                let s = statements.get(client, c.table, Statement::Reserve).await?;
                add(s, table.params(&[&c.absent]), Purpose::Reserve(i));
            }
        }
        for (table, range) in &plan.ranges {
            let start = &range.start;
            match &range.end {
                Some(end) => {
                    let s = statements
                        .get(client, *table, Statement::DeleteRange)
                        .await?;
                    add(s, table.params(&[start, end]), Purpose::Write);
                }
                None => {
                    let s = statements
                        .get(client, *table, Statement::DeleteRangeOpen)
                        .await?;
                    add(s, table.params(&[start]), Purpose::Write);
                }
            }
        }
        for (table, deletes, puts) in ops {
            if !deletes.is_empty() {
                let s = statements.get(client, *table, Statement::Delete).await?;
                add(s, table.params(&[deletes]), Purpose::Write);
            }
            for rows in puts {
                let s = statements.get(client, *table, Statement::Put).await?;
                add(s, table.params(&[&rows.keys, &rows.values]), Purpose::Write);
            }
        }
        for c in checks {
            if !c.release.is_empty() {
                let s = statements.get(client, c.table, Statement::Delete).await?;
                add(s, c.table.params(&[&c.release]), Purpose::Write);
            }
        }
        Ok(Calls(calls))
    }
}

/// Awaits every future of `futures`, each polled for the first time in
/// the order given, and their outputs in that order.
///
/// why not `join_all`: a tokio-postgres request is sent when its future
/// is first polled, and the statements of a transaction must reach the
/// server in order (a lock before the puts that follow it, a placeholder
/// released after them). `join_all` promises no polling order.
async fn in_order<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => done = false,
                }
            }
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}
