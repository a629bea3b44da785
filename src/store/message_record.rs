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
}

impl Record for Message {
    const VERSION: u8 = 1;
}
