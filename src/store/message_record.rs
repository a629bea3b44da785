//! Message records: flags, clear header fields, the stored record and
//! what the caller passes to append.
//!
//! Stored with the versioned encoding of `records`; a new field means a
//! new record version.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::records::{BlobHash, MailboxId, Record, Uid};

/// Message flags (RFC 9051 §2.3.2): the system flags plus keywords.
/// `\Recent` is per session and not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flags {
    /// `\Seen`.
    pub seen: bool,
    /// `\Answered`.
    pub answered: bool,
    /// `\Flagged`.
    pub flagged: bool,
    /// `\Deleted`.
    pub deleted: bool,
    /// `\Draft`.
    pub draft: bool,
    /// Keywords (`$Forwarded`, `$Junk`, ...), as given.
    pub keywords: BTreeSet<String>,
}

impl Flags {
    fn apply(&mut self, other: &Flags, on: bool) {
        let pairs = [
            (&mut self.seen, other.seen),
            (&mut self.answered, other.answered),
            (&mut self.flagged, other.flagged),
            (&mut self.deleted, other.deleted),
            (&mut self.draft, other.draft),
        ];
        for (mine, theirs) in pairs {
            if theirs {
                *mine = on;
            }
        }
        for k in &other.keywords {
            if on {
                self.keywords.insert(k.clone());
            } else {
                self.keywords.remove(k);
            }
        }
    }
}

/// How [`super::MailStore::set_flags`] changes flags (IMAP STORE
/// `FLAGS`, `+FLAGS`, `-FLAGS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagChange {
    /// Replace all flags.
    Replace(Flags),
    /// Set these flags.
    Add(Flags),
    /// Clear these flags.
    Remove(Flags),
}

impl FlagChange {
    /// `flags` after this change.
    pub fn applied_to(&self, flags: &Flags) -> Flags {
        let mut out = flags.clone();
        match self {
            FlagChange::Replace(f) => out = f.clone(),
            FlagChange::Add(f) => out.apply(f, true),
            FlagChange::Remove(f) => out.apply(f, false),
        }
        out
    }
}

/// Header fields of a message that stay in clear (also on encrypted
/// messages), for IMAP ENVELOPE, threading and search. Raw strings as the
/// caller extracted them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderFields {
    /// `From`.
    pub from: Option<String>,
    /// `To`.
    pub to: Option<String>,
    /// `Cc`.
    pub cc: Option<String>,
    /// `Subject`.
    pub subject: Option<String>,
    /// `Date`.
    pub date: Option<String>,
    /// `Message-ID`.
    pub message_id: Option<String>,
    /// `In-Reply-To`.
    pub in_reply_to: Option<String>,
    /// `References`.
    pub references: Option<String>,
}

/// A message to append.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    /// The message exactly as it is to be stored (already encrypted for an
    /// opted-in account).
    pub raw: &'a [u8],
    /// Initial flags.
    pub flags: Flags,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
    /// Clear header fields.
    pub headers: HeaderFields,
    /// Whether `raw` is S/MIME encrypted.
    pub encrypted: bool,
    /// Whether `raw` was just encrypted here (with a new random content
    /// key), so that no other message can equal it: its blob gets a random
    /// key instead of the SHA-256 of all its bytes, which would never
    /// deduplicate anything.
    pub unique: bool,
}

/// A stored message record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// Its mailbox.
    pub mailbox: MailboxId,
    /// Its UID there.
    pub uid: Uid,
    /// MODSEQ of its last change.
    pub modseq: u64,
    /// Flags.
    pub flags: Flags,
    /// INTERNALDATE, unix seconds.
    pub internal_date: i64,
    /// RFC822.SIZE.
    pub size: u64,
    /// Clear header fields.
    pub headers: HeaderFields,
    /// Key of the content in the blob store.
    pub blob: BlobHash,
    /// Whether the stored content is S/MIME encrypted.
    pub encrypted: bool,
    /// The JMAP Email id (RFC 8621 §4.1.1): unique in the account and
    /// never changed, also by a move. It is the account's change id of
    /// the message's creation (see `log`), so allocating it is part of
    /// the transaction that logs the creation.
    pub email_id: u64,
    /// The JMAP Thread id (RFC 8621 §3): the Email id of the first
    /// message of the thread (see `threads`).
    pub thread_id: u64,
}

impl Record for Message {
    const VERSION: u8 = 2;
}

/// A message record as version 1 stored it, before Email ids: read only
/// by the data migration that gives each one its ids (`upgrade`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MessageV1 {
    pub(crate) mailbox: MailboxId,
    pub(crate) uid: Uid,
    pub(crate) modseq: u64,
    pub(crate) flags: Flags,
    pub(crate) internal_date: i64,
    pub(crate) size: u64,
    pub(crate) headers: HeaderFields,
    pub(crate) blob: BlobHash,
    pub(crate) encrypted: bool,
}

impl Record for MessageV1 {
    const VERSION: u8 = 1;
}

impl MessageV1 {
    /// The current record with the ids given.
    pub(crate) fn upgraded(self, email_id: u64, thread_id: u64) -> Message {
        Message {
            mailbox: self.mailbox,
            uid: self.uid,
            modseq: self.modseq,
            flags: self.flags,
            internal_date: self.internal_date,
            size: self.size,
            headers: self.headers,
            blob: self.blob,
            encrypted: self.encrypted,
            email_id,
            thread_id,
        }
    }
}

/// Value of `emails` (`acct email_id`): where the Email is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EmailLocation {
    pub(crate) mailbox: MailboxId,
    pub(crate) uid: Uid,
}

impl Record for EmailLocation {
    const VERSION: u8 = 1;
}

/// Value of `threads` (`acct thread_id email_id`): one member of a
/// thread, with its receivedAt, so that `Thread/get` sorts its members
/// without reading their records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ThreadMember {
    pub(crate) received_at: i64,
}

impl Record for ThreadMember {
    const VERSION: u8 = 1;
}

/// Value of `message_ids` (`acct sha256(Message-ID)`): the thread a
/// Message-ID (of a stored message, or one a stored message referred to)
/// belongs to, and the hash of that message's base subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ThreadRef {
    pub(crate) thread_id: u64,
    pub(crate) subject: u64,
}

impl Record for ThreadRef {
    const VERSION: u8 = 1;
}
