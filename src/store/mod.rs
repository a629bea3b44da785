//! Durable storage: the [`Store`] trait, its engines — embedded RocksDB
//! ([`RocksStore`], the default) and PostgreSQL ([`PgStore`], shared by
//! several nodes; `store.engine`, opened by [`MailStore::open_config`]) —
//! and the typed mail layer on top ([`MailStore`]).
//!
//! # Why this shape
//!
//! [`Store`] is the one swap point for storage engines (ARCHITECTURE.md,
//! "Growing past one machine"). It is deliberately a narrow, ordered
//! key-value interface — get, ranged scan, atomic multi-key batch — because
//! that is what every engine worth plugging in (RocksDB, FoundationDB, TiKV)
//! offers natively. Nothing above it names RocksDB. Everything mail-shaped
//! (accounts, IMAP mailboxes and UIDs, blobs, certificates, lists, logs)
//! lives in [`MailStore`], a concrete type over `Arc<dyn Store>`, so a new
//! engine implements four methods and inherits all of it.
//!
//! Every change that touches several keys is built as one [`Batch`] and
//! written with a single [`Store::write_if`], which is durable (WAL fsync)
//! before it returns: a crash leaves either all of a change or none of it.
//! The write is conditional on the version keys of the scopes the change
//! read (one per account, one for the address directory; see `txn`), so
//! counters stay right when several processes share one engine: a change
//! that lost a race is re-run from fresh reads, no lock is involved.
//!
//! The API is blocking; the server wraps calls in `spawn_blocking`.
//!
//! # Column families and key layout
//!
//! Integers in keys are big-endian so that byte order is numeric order and
//! scans come back sorted. `acct` is an [`AccountId`] (u32), `mbox` a
//! [`MailboxId`] (u32), `uid` a [`Uid`] (u32), `hash` and `fp` are 32-byte
//! SHA-256 digests (`hash` of a blob is random for a freshly encrypted
//! copy, see [`BlobHash`]), `lenL` is a u16 byte length. Values are
//! postcard encodings preceded by one record-version byte (see `records`).
//! Message bodies (`blobs`) are not in the [`Store`] at all: they live in
//! a [`BlobStore`] of their own (see `blobs`; the key layout below is the
//! blob store's), and the mail layer puts them there before the metadata
//! that names them commits. Each engine has its blob tier: segment files
//! next to RocksDB (`rocks`), a table of its own in PostgreSQL
//! (`postgres`).
//!
//! | CF | key | value |
//! |---|---|---|
//! | `meta` | `"next_account_id"` | u32 |
//! | `meta` | `"rev_directory"` | u64 version of the address directory (`txn`; absent: 0) |
//! | `meta` | `"rev" acct` | u64 version of one account's records (`txn`; absent: 0) |
//! | `accounts` | `acct` | account record (addresses, password hash, quota, counters) |
//! | `addresses` | lowercased address (primary or alias) | `acct` |
//! | `mailboxes` | `acct mbox` | [`Mailbox`] |
//! | `mailbox_names` | `acct name` (UTF-8, `/`-separated) | `mbox` |
//! | `messages` | `acct mbox uid` | [`Message`] |
//! | `blobs` (the [`BlobStore`]) | `acct hash` | raw message bytes |
//! | `blob_refs` | `acct hash` | u64 reference count |
//! | `certs` | `acct fp` | [`Certificate`] |
//! | `settings` | `acct` | [`EncryptionSettings`] |
//! | `changes` | `acct change_id(u64)` | [`Change`] |
//! | `audit` | `acct seq(u64)` | [`AuditEvent`] |
//! | `lists` | lowercased list address | [`MailingList`] |
//! | `list_members` | `lenL list member` | `()` |
//! | `list_keys` | `lenL list fp` | list key record (certificate DER, AES-256-GCM sealed private key) |
//! | `imports` | `acct hash` (SHA-256 of the source message as read by `sealmail import`) | where it was stored (`mbox uid`) |
//! | `meta` | `"data_version"` | u32 shape of the stored data (`upgrade`; absent: 0) |
//! | `emails` | `acct email_id(u64)` | where the Email is (`mbox uid`) |
//! | `threads` | `acct thread_id(u64) email_id(u64)` | the member's receivedAt |
//! | `message_ids` | `acct sha256(Message-ID)` | its thread and base-subject hash (`threads`) |
//!
//! An Email id (RFC 8621 §4.1.1) is the account's change id of the
//! message's creation: unique in the account, allocated by the same
//! optimistic transaction that logs the creation, and kept by a move
//! (which rewrites `messages` under the new `mbox uid` and repoints
//! `emails`). A COPY creates a new Email with a new id: a stored message
//! is in exactly one mailbox.
//!
//! Every account-scoped CF starts its keys with `acct`, so removing an
//! account is one range delete per CF (its version key in `meta` stays,
//! bumped, so that version never repeats).
//!
//! An `imports` marker is written in the same batch as the message it
//! records (see `migrate`), so a re-run of an interrupted import skips
//! exactly the messages that were stored. It outlives an expunge of that
//! message on purpose: importing the same source again must not bring
//! back mail the user deleted.

mod accounts;
mod announce;
pub mod backup;
mod blobs;
mod cert_record;
mod certs;
mod delivery_view;
mod engine_copy;
#[cfg(test)]
pub(crate) mod engine_tests;
mod error;
mod keys;
mod lists;
mod log;
mod logins;
mod mail;
mod mailbox;
mod mailbox_name;
mod master_key;
mod message;
mod message_record;
mod message_scan;
mod migrate;
mod open;
mod postgres;
mod reading;
mod records;
mod rocks;
mod stripes;
mod subscriptions;
#[cfg(test)]
mod test_fixtures;
#[cfg(test)]
mod tests;
mod threads;
mod tokens;
mod transfer;
mod txn;
mod upgrade;

use std::fmt;

pub use accounts::Recipient;
pub use blobs::{BlobStore, Referenced, SegmentBlobStore, ORPHAN_GRACE};
pub use cert_record::{Certificate, NewCertificate};
pub use certs::{Cipher, EncryptionSettings, KeyTransport};
pub use delivery_view::DeliveryView;
pub use engine_copy::{
    copy_store, finish_copy, migrate_engine, verify_copy, CfDigest, CopyError, CopyOptions,
    CopyProgress, CopyReport, MigrationReport, NoProgress, Phase, StorePair, Verification,
    MARKER_KEY,
};
pub use error::{MailError, StoreError};
pub use lists::{ListKeyInfo, ListKeyPair, MailingList};
pub use log::{AuditEvent, AuditKind, Change, ChangeKind, ChangedObject, EmailChange};
pub use mail::MailStore;
pub(crate) use mailbox_name::normalize_mailbox_name;
pub use master_key::{MasterKey, SecretBytes};
pub use message::FlagsSet;
pub use message_record::{FlagChange, Flags, HeaderFields, Message, NewMessage};
pub use open::{open_engine_url, EnginePair};
pub use postgres::{PgBlobStore, PgStore, DEFAULT_POOL_SIZE};
pub use reading::{Credential, HeldKey, OpenedKey, ReadingStatus, MAX_READING_KEYS};
pub use records::{Account, AccountId, BlobHash, Mailbox, MailboxId, MailboxRole, Uid};
pub use rocks::RocksStore;
pub(crate) use threads::base_subject;
pub use tokens::{AppToken, NewAppToken, TokenId, MAX_APP_TOKENS, TOKEN_PREFIX};

/// A column family: one independent, ordered key space of the store.
///
/// Resolved to an engine handle once, at open time. The layout of each is
/// in the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Cf {
    /// Global counters.
    Meta,
    /// Account records.
    Accounts,
    /// Address (primary and aliases) → account.
    Addresses,
    /// Mailbox records.
    Mailboxes,
    /// Mailbox name → mailbox id, per account.
    MailboxNames,
    /// Message records, in UID order per mailbox.
    Messages,
    /// Message contents, content-addressed per account.
    Blobs,
    /// Reference counts of blobs.
    BlobRefs,
    /// Certificates per account.
    Certs,
    /// Encryption settings per account.
    Settings,
    /// Per-account change log (JMAP state, IMAP modseq).
    Changes,
    /// Per-account audit log.
    Audit,
    /// Mailing lists.
    Lists,
    /// Mailing-list members.
    ListMembers,
    /// Mailing-list key pairs (private key sealed).
    ListKeys,
    /// Markers of messages brought in by `sealmail import`.
    Imports,
    /// App tokens per account (hashed secrets).
    AppTokens,
    /// Email id → where the message is, per account.
    Emails,
    /// Thread id → its Emails, per account.
    Threads,
    /// Message-ID → its thread, per account (threading).
    MessageIds,
}

impl Cf {
    /// Every column family, in a fixed order.
    pub const ALL: [Cf; 20] = [
        Cf::Meta,
        Cf::Accounts,
        Cf::Addresses,
        Cf::Mailboxes,
        Cf::MailboxNames,
        Cf::Messages,
        Cf::Blobs,
        Cf::BlobRefs,
        Cf::Certs,
        Cf::Settings,
        Cf::Changes,
        Cf::Audit,
        Cf::Lists,
        Cf::ListMembers,
        Cf::ListKeys,
        Cf::Imports,
        Cf::AppTokens,
        Cf::Emails,
        Cf::Threads,
        Cf::MessageIds,
    ];

    /// The name the engine knows this column family by.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::Accounts => "accounts",
            Cf::Addresses => "addresses",
            Cf::Mailboxes => "mailboxes",
            Cf::MailboxNames => "mailbox_names",
            Cf::Messages => "messages",
            Cf::Blobs => "blobs",
            Cf::BlobRefs => "blob_refs",
            Cf::Certs => "certs",
            Cf::Settings => "settings",
            Cf::Changes => "changes",
            Cf::Audit => "audit",
            Cf::Lists => "lists",
            Cf::ListMembers => "list_members",
            Cf::ListKeys => "list_keys",
            Cf::Imports => "imports",
            Cf::AppTokens => "app_tokens",
            Cf::Emails => "emails",
            Cf::Threads => "threads",
            Cf::MessageIds => "message_ids",
        }
    }
}

impl fmt::Display for Cf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A half-open key range `[start, end)`; `end: None` means "to the end of
/// the column family".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    /// First key included.
    pub start: Vec<u8>,
    /// First key excluded, or `None` for no upper bound.
    pub end: Option<Vec<u8>>,
}

impl KeyRange {
    /// Every key that starts with `prefix`.
    pub fn prefix(prefix: &[u8]) -> Self {
        Self {
            start: prefix.to_vec(),
            end: prefix_successor(prefix),
        }
    }

    /// Keys from `start` (included) to `end` (excluded).
    pub fn between(start: Vec<u8>, end: Vec<u8>) -> Self {
        Self {
            start,
            end: Some(end),
        }
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &[u8]) -> bool {
        key >= self.start.as_slice() && self.end.as_deref().is_none_or(|end| key < end)
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` if there is none (the prefix is empty or all `0xff`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// A key and its value, as [`Store::scan`] returns them.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// Scan direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Ascending key order.
    Forward,
    /// Descending key order (latest first for counter-keyed logs).
    Reverse,
}

/// One operation of a [`Batch`].
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Remove `key` (no error if absent).
    Delete {
        /// Column family.
        cf: Cf,
        /// Key.
        key: Vec<u8>,
    },
    /// Remove every key in `range`.
    DeleteRange {
        /// Column family.
        cf: Cf,
        /// Keys to remove.
        range: KeyRange,
    },
}

// why: values hold message bodies and sealed keys; Debug shows sizes only.
impl fmt::Debug for BatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchOp::Put { cf, key, value } => write!(
                f,
                "Put({cf}, {} key bytes, {} value bytes)",
                key.len(),
                value.len()
            ),
            BatchOp::Delete { cf, key } => write!(f, "Delete({cf}, {} key bytes)", key.len()),
            BatchOp::DeleteRange { cf, .. } => write!(f, "DeleteRange({cf})"),
        }
    }
}

/// Writes applied all together or not at all, in order (a later put of the
/// same key wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        self.ops.push(BatchOp::Put { cf, key, value });
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) {
        self.ops.push(BatchOp::Delete { cf, key });
    }

    /// Adds a range delete.
    pub fn delete_range(&mut self, cf: Cf, range: KeyRange) {
        self.ops.push(BatchOp::DeleteRange { cf, range });
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// What a conditional write ([`Store::write_if`]) expects to find when it
/// commits: `key` of `cf` holds `value` (`None`: the key is absent).
///
/// Expected keys are version keys: every write that changes one expects
/// it too, so an engine may check expectations against other conditional
/// writes only (the embedded engine does; PostgreSQL checks them against
/// everything).
#[derive(Clone, PartialEq, Eq)]
pub struct Expect {
    /// Column family.
    pub cf: Cf,
    /// Key.
    pub key: Vec<u8>,
    /// The value the key must hold, or `None` for "absent".
    pub value: Option<Vec<u8>>,
}

// why: like BatchOp, sizes only.
impl fmt::Debug for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Expect({}, {} key bytes, {:?} value bytes)",
            self.cf,
            self.key.len(),
            self.value.as_ref().map(Vec::len)
        )
    }
}

/// An ordered, durable key-value engine: the only swap point for storage.
///
/// Keys and values are opaque bytes. Keys are built by [`MailStore`] from
/// ids it allocated and from addresses or mailbox names that came from
/// peers and operators (validated, but otherwise arbitrary bytes); values
/// are opaque records. No method may panic on any key or value.
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// The value of `key`, or `None`.
    ///
    /// `key` may derive from peer input (an address in RCPT TO): any bytes
    /// must be accepted. Never panics.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The values of several keys of one column family, in the order
    /// given. Same input rules as [`Store::get`]; engines with a native
    /// multi-get override the default. Never panics.
    fn get_many(&self, cf: Cf, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(cf, k)).collect()
    }

    /// Up to `limit` key-value pairs of `range`, in `order`, read from one
    /// consistent view.
    ///
    /// `range` bounds come from [`MailStore`] (prefixes of validated
    /// names and ids); an empty or inverted range yields nothing. Never
    /// panics.
    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError>;

    /// Applies `batch` atomically and durably: when this returns `Ok`, the
    /// whole batch is in the write-ahead log and synced to disk; when it
    /// returns `Err`, none of it is visible.
    ///
    /// The batch is built by [`MailStore`]; values may hold peer-supplied
    /// message bytes of any size up to the server's message limit. Never
    /// panics.
    fn write(&self, batch: Batch) -> Result<(), StoreError> {
        self.write_if(&[], batch)
    }

    /// Applies `batch` as [`Store::write`] does, but only if every
    /// expectation in `expect` holds at the moment of the commit;
    /// otherwise nothing is written and the result is
    /// [`StoreError::Conflict`], which the caller answers by reading again
    /// and retrying (see `MailStore`'s transaction combinators). This is
    /// what keeps counters (UIDs, MODSEQs, used bytes) right when several
    /// processes share one engine: no correctness rule may rest on a lock
    /// held in one process.
    ///
    /// Same input rules as [`Store::write`]. Never panics.
    fn write_if(&self, expect: &[Expect], batch: Batch) -> Result<(), StoreError>;

    /// Asks the engine to drop deleted values from its files now, instead
    /// of whenever its own housekeeping gets to them: after `sealmail
    /// reencrypt` replaced plaintext blobs, so the plaintext does not
    /// linger in files on disk. Engines without such a notion keep the
    /// default, which does nothing. Takes no input from peers; may take
    /// long (it rewrites files). Never panics.
    fn compact(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Routine housekeeping the server runs now and then: gives back the
    /// space of deleted values where enough of it has piled up, without
    /// rewriting everything as [`Store::compact`] does. The default does
    /// nothing. Takes no input from peers. Never panics.
    fn maintain(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Called by the server every few seconds: an engine that holds
    /// written data in memory besides its durable copy (RocksDB's
    /// memtables beside its WAL) may write it out once no write has come
    /// for a while, and drop what it caches of its files, so that an idle
    /// server gives that memory back. The
    /// default does nothing. Called on the async runtime: it must not
    /// wait for the disk (start the write and return). Takes no input
    /// from peers. Never panics.
    fn release_memory_when_quiet(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
