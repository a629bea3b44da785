//! Where each column family lives in PostgreSQL, and the SQL text of every
//! statement the engine runs (prepared once per connection, see `pool`).
//!
//! Every column family of the metadata store lives in the table `kv`,
//! told apart by a `smallint` number. Message bodies are not the metadata
//! store's: the blob tier keeps them in the table `blobs` with statements
//! of its own (`blobs`). Keys are `bytea`, which
//! PostgreSQL compares bytewise with the shorter key first on a common
//! prefix: exactly the order of `[u8]` in Rust, so `ORDER BY key` is the
//! order [`crate::store::Store::scan`] promises.

use tokio_postgres::types::ToSql;

use crate::store::Cf;

/// A parameter as tokio-postgres takes it.
pub(super) type Param<'a> = &'a (dyn ToSql + Sync);

/// The table (and for `kv`, the number) a column family is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Table {
    /// A column family of the `kv` table, with its number.
    Kv(i16),
}

impl Table {
    /// Where `cf` lives. The numbers are stored on disk: never renumber;
    /// a new column family takes a new number.
    pub(super) fn of(cf: Cf) -> Self {
        match cf {
            Cf::Meta => Table::Kv(0),
            Cf::Accounts => Table::Kv(1),
            Cf::Addresses => Table::Kv(2),
            Cf::Mailboxes => Table::Kv(3),
            Cf::MailboxNames => Table::Kv(4),
            Cf::Messages => Table::Kv(5),
            // why a number like any other: bodies are not the metadata
            // store's (the blob tier, `PgBlobStore`, keeps them in the
            // table `blobs`); nothing stores this column family here.
            Cf::Blobs => Table::Kv(6),
            Cf::BlobRefs => Table::Kv(7),
            Cf::Certs => Table::Kv(8),
            Cf::Settings => Table::Kv(9),
            Cf::Changes => Table::Kv(10),
            Cf::Audit => Table::Kv(11),
            Cf::Lists => Table::Kv(12),
            Cf::ListMembers => Table::Kv(13),
            Cf::ListKeys => Table::Kv(14),
            Cf::Imports => Table::Kv(15),
            Cf::AppTokens => Table::Kv(16),
            Cf::Emails => Table::Kv(17),
            Cf::Threads => Table::Kv(18),
            Cf::MessageIds => Table::Kv(19),
        }
    }

    /// `rest` with the column family number in front (the statements of
    /// `kv` take it as `$1`).
    pub(super) fn params<'a>(&'a self, rest: &[Param<'a>]) -> Vec<Param<'a>> {
        let Table::Kv(number) = self;
        let mut all = Vec::with_capacity(rest.len() + 1);
        all.push(number as Param<'a>);
        all.extend_from_slice(rest);
        all
    }

    /// The SQL text of `statement` on this table.
    pub(super) fn sql(self, statement: Statement) -> &'static str {
        use Statement as S;
        match self {
            Table::Kv(_) => match statement {
                S::Get => "SELECT value FROM kv WHERE cf = $1 AND key = $2",
                S::GetMany => "SELECT key, value FROM kv WHERE cf = $1 AND key = ANY($2)",
                S::ScanForward => "SELECT key, value FROM kv WHERE cf = $1 AND key >= $2 AND key < $3 ORDER BY key ASC LIMIT $4",
                S::ScanForwardOpen => "SELECT key, value FROM kv WHERE cf = $1 AND key >= $2 ORDER BY key ASC LIMIT $3",
                S::ScanReverse => "SELECT key, value FROM kv WHERE cf = $1 AND key >= $2 AND key < $3 ORDER BY key DESC LIMIT $4",
                S::ScanReverseOpen => "SELECT key, value FROM kv WHERE cf = $1 AND key >= $2 ORDER BY key DESC LIMIT $3",
                S::Put => "INSERT INTO kv (cf, key, value) SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) AS t(k, v) ON CONFLICT (cf, key) DO UPDATE SET value = excluded.value",
                S::Delete => "DELETE FROM kv WHERE cf = $1 AND key = ANY($2)",
                S::DeleteRange => "DELETE FROM kv WHERE cf = $1 AND key >= $2 AND key < $3",
                S::DeleteRangeOpen => "DELETE FROM kv WHERE cf = $1 AND key >= $2",
                S::Lock => "SELECT key, value FROM kv WHERE cf = $1 AND key = ANY($2) ORDER BY key FOR UPDATE",
                S::Reserve => "INSERT INTO kv (cf, key, value) SELECT $1, k, '' FROM unnest($2::bytea[]) AS t(k) ORDER BY k ON CONFLICT DO NOTHING RETURNING key",
            },
        }
    }
}

/// The statements of the metadata store, on `kv`.
///
/// why bounded and open forms instead of one `($3 IS NULL OR key < $3)`:
/// with the upper bound as a filter instead of an index condition, a
/// scan or range delete near the start of a large column family walks
/// the index to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Statement {
    /// One value.
    Get,
    /// The values of a set of keys (`key = ANY`).
    GetMany,
    /// `[start, end)` ascending, with a limit.
    ScanForward,
    /// `[start, ..)` ascending, with a limit.
    ScanForwardOpen,
    /// `[start, end)` descending, with a limit.
    ScanReverse,
    /// `[start, ..)` descending, with a limit.
    ScanReverseOpen,
    /// Multi-row upsert from two arrays.
    Put,
    /// Delete a set of keys.
    Delete,
    /// Delete `[start, end)`.
    DeleteRange,
    /// Delete `[start, ..)`.
    DeleteRangeOpen,
    /// Read and row-lock a set of keys (`FOR UPDATE`), in key order.
    Lock,
    /// Insert an empty placeholder for each of a set of keys unless it
    /// exists, in key order, returning the keys it inserted: holds them
    /// against concurrent inserts until the transaction ends.
    Reserve,
}
