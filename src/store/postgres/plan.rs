//! A [`Batch`] reduced to what it leaves behind, in the order PostgreSQL
//! applies it: range deletes first, then one statement per table for
//! point deletes and a few multi-row upserts per table for puts.
//!
//! why reorder: a batch is applied in order, a later op on a key winning.
//! Keeping only the last point op per key, dropping point ops that a
//! later range delete covers, and running the range deletes before the
//! rest gives the same end state, and lets every statement carry a whole
//! column family's keys (a list fan-out writes thousands of keys in one
//! batch; one round trip per key would take seconds). With one op per
//! key, an upsert never meets the same key twice, which PostgreSQL
//! refuses ("ON CONFLICT DO UPDATE command cannot affect row a second
//! time").

use std::collections::BTreeMap;
use std::ops::Bound;

use super::sql::Table;
use crate::store::{Batch, BatchOp, KeyRange};

/// Most rows per upsert statement.
const PUT_ROWS: usize = 1000;
/// Most value bytes per upsert statement (a larger value goes alone):
/// PostgreSQL caps one array parameter at 1 GiB, and smaller statements
/// keep the server's per-statement memory modest.
const PUT_BYTES: usize = 64 * 1024 * 1024;

/// What a batch leaves behind.
#[derive(Debug, Default)]
pub(super) struct Plan<'b> {
    /// Range deletes, in batch order (they commute).
    pub(super) ranges: Vec<(Table, &'b KeyRange)>,
    /// The last point op of each key: `Some(value)` a put, `None` a delete.
    points: BTreeMap<(Table, &'b [u8]), Option<&'b [u8]>>,
}

/// The point ops on one table: deleted keys, and puts in statements.
pub(super) type TableOps<'b> = (Table, Vec<&'b [u8]>, Vec<Puts<'b>>);

/// One upsert statement's rows.
#[derive(Debug, Default)]
pub(super) struct Puts<'b> {
    pub(super) keys: Vec<&'b [u8]>,
    pub(super) values: Vec<&'b [u8]>,
    bytes: usize,
}

impl<'b> Plan<'b> {
    /// The plan of `batch`.
    pub(super) fn of(batch: &'b Batch) -> Self {
        let mut plan = Plan::default();
        for op in batch.ops() {
            match op {
                BatchOp::Put { cf, key, value } => {
                    plan.points.insert((Table::of(*cf), key), Some(value));
                }
                BatchOp::Delete { cf, key } => {
                    plan.points.insert((Table::of(*cf), key), None);
                }
                BatchOp::DeleteRange { cf, range } => {
                    let table = Table::of(*cf);
                    let covered: Vec<_> = plan
                        .points
                        .range((
                            Bound::Included((table, range.start.as_slice())),
                            Bound::Unbounded,
                        ))
                        .map(|(k, _)| *k)
                        .take_while(|(t, key)| *t == table && range.contains(key))
                        .collect();
                    for key in covered {
                        plan.points.remove(&key);
                    }
                    plan.ranges.push((table, range));
                }
            }
        }
        plan
    }

    /// The tables with point ops, each with its deleted keys and its puts
    /// in statements of at most [`PUT_ROWS`] rows and [`PUT_BYTES`] bytes.
    pub(super) fn by_table(&self) -> Vec<TableOps<'b>> {
        let mut tables: Vec<TableOps<'b>> = Vec::new();
        for (&(table, key), value) in &self.points {
            if tables.last().is_none_or(|(t, _, _)| *t != table) {
                tables.push((table, Vec::new(), Vec::new()));
            }
            let Some((_, deletes, puts)) = tables.last_mut() else {
                continue;
            };
            match value {
                None => deletes.push(key),
                Some(value) => {
                    let full = puts.last().is_none_or(|p| {
                        p.keys.len() >= PUT_ROWS || p.bytes + value.len() > PUT_BYTES
                    });
                    if full {
                        puts.push(Puts::default());
                    }
                    if let Some(p) = puts.last_mut() {
                        p.keys.push(key);
                        p.values.push(value);
                        p.bytes += value.len();
                    }
                }
            }
        }
        tables
    }

    /// Whether the plan leaves `key` of `table` holding a value.
    pub(super) fn puts(&self, table: Table, key: &[u8]) -> bool {
        matches!(self.points.get(&(table, key)), Some(Some(_)))
    }
}
