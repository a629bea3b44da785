//! Reads: one statement each, on any pooled connection (a single
//! statement sees one consistent snapshot, as `scan` promises). A read
//! that finds its connection broken runs once more on a fresh one.

use std::collections::HashMap;
use std::sync::Arc;

use super::error::is_broken;
use super::pool::Pool;
use super::sql::{Statement, Table};
use crate::store::{Cf, KeyRange, KeyValue, Order, StoreError};

/// Runs `$body` (an async block over `$client` and `$statements`) on a
/// pooled connection; once more on a fresh one if the connection was
/// broken.
macro_rules! retrying {
    ($pool:expr, $op:expr, |$client:ident, $statements:ident| $body:expr) => {{
        let mut retried = false;
        loop {
            let mut lease = $pool.get().await?;
            let ($client, $statements) = lease.conn()?.parts();
            let result: Result<_, tokio_postgres::Error> = $body.await;
            match result {
                Err(e) if !retried && is_broken(&e) => {
                    retried = true;
                    drop(lease);
                    $pool.discard_idle();
                }
                other => break other.map_err(|e| $pool.error($op, &e)),
            }
        }
    }};
}

/// The value of `key`.
pub(super) async fn get(
    pool: Arc<Pool>,
    cf: Cf,
    key: Vec<u8>,
) -> Result<Option<Vec<u8>>, StoreError> {
    let table = Table::of(cf);
    retrying!(pool, "get", |client, statements| async {
        let s = statements.get(&*client, table, Statement::Get).await?;
        let row = client.query_opt(&s, &table.params(&[&key])).await?;
        row.map(|r| r.try_get::<_, Vec<u8>>(0)).transpose()
    })
}

/// The values of `keys`, in their order, in one statement.
pub(super) async fn get_many(
    pool: Arc<Pool>,
    cf: Cf,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let table = Table::of(cf);
    let mut found: HashMap<Vec<u8>, Vec<u8>> =
        retrying!(pool, "get", |client, statements| async {
            let s = statements.get(&*client, table, Statement::GetMany).await?;
            let rows = client.query(&s, &table.params(&[&keys])).await?;
            rows.into_iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
                .collect::<Result<HashMap<_, _>, tokio_postgres::Error>>()
        })?;
    // why: a key named twice gets a copy; its last mention takes the
    // value itself, so no body is copied for a list without repeats.
    let last: HashMap<&[u8], usize> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.as_slice(), i))
        .collect();
    Ok(keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            if last.get(k.as_slice()) == Some(&i) {
                found.remove(k)
            } else {
                found.get(k).cloned()
            }
        })
        .collect())
}

/// Up to `limit` pairs of `range`, in `order`.
pub(super) async fn scan(
    pool: Arc<Pool>,
    cf: Cf,
    range: KeyRange,
    order: Order,
    limit: usize,
) -> Result<Vec<KeyValue>, StoreError> {
    let empty = range.end.as_ref().is_some_and(|end| *end <= range.start);
    if limit == 0 || empty {
        return Ok(Vec::new());
    }
    let table = Table::of(cf);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let start = range.start.as_slice();
    let statement = match (order, &range.end) {
        (Order::Forward, Some(_)) => Statement::ScanForward,
        (Order::Forward, None) => Statement::ScanForwardOpen,
        (Order::Reverse, Some(_)) => Statement::ScanReverse,
        (Order::Reverse, None) => Statement::ScanReverseOpen,
    };
    retrying!(pool, "scan", |client, statements| async {
        let s = statements.get(&*client, table, statement).await?;
        let params = match &range.end {
            Some(end) => table.params(&[&start, end, &limit]),
            None => table.params(&[&start, &limit]),
        };
        let rows = client.query(&s, &params).await?;
        rows.into_iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<KeyValue>, tokio_postgres::Error>>()
    })
}
