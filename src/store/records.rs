//! The values the mail layer stores, and their versioned encoding.
//!
//! A stored value is one record-version byte followed by the postcard
//! encoding of the record. A record type that needs a new shape gets a new
//! version number and a decoder for the old one; enums are encoded by
//! variant index, so new variants go at the end, never in between.

use std::fmt;
use std::num::NonZeroU32;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{bug, corrupt};
use super::{Cf, StoreError};
use crate::certs::Fingerprint;

/// A record type with its current version byte.
pub(crate) trait Record: Serialize + DeserializeOwned {
    /// Written in front of every encoding.
    const VERSION: u8;
}

/// Encodes `record` with its version byte.
pub(crate) fn encode<R: Record>(record: &R) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(record, vec![R::VERSION])
        .map_err(|e| bug(format!("encoding a record: {e}")))
}

/// Decodes a value of `cf` written by [`encode`].
pub(crate) fn decode<R: Record>(cf: Cf, bytes: &[u8]) -> Result<R, StoreError> {
    match bytes.split_first() {
        Some((&v, rest)) if v == R::VERSION => {
            postcard::from_bytes(rest).map_err(|e| corrupt(cf, format!("record: {e}")))
        }
        Some((v, _)) => Err(corrupt(
            cf,
            format!("record version {v}, this sealmail reads {}", R::VERSION),
        )),
        None => Err(corrupt(cf, "empty value")),
    }
}

macro_rules! id_newtype {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub u32);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}
// why: a macro only to stamp out two identical u32 id newtypes; a generic
// `Id<T>` would make every signature noisier for no gain.
id_newtype!(
    /// An account's internal id, allocated once and never reused.
    AccountId
);
id_newtype!(
    /// A mailbox id, unique within its account and never reused there.
    MailboxId
);

/// An IMAP UID (RFC 9051 §2.3.1.1): non-zero, strictly ascending within a
/// mailbox, never reused within its UIDVALIDITY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Uid(pub NonZeroU32);

impl Uid {
    /// The first UID of a mailbox.
    pub const FIRST: Uid = Uid(NonZeroU32::MIN);

    /// The UID `n`, or `None` for zero.
    pub fn new(n: u32) -> Option<Uid> {
        NonZeroU32::new(n).map(Uid)
    }

    /// The numeric value.
    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The next UID, or `None` at `u32::MAX`.
    pub fn next(self) -> Option<Uid> {
        self.0.checked_add(1).map(Uid)
    }
}

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The key of a message's blob: the SHA-256 of its bytes, or 32 random
/// bytes for a copy that cannot equal any other ([`NewMessage::unique`]).
///
/// [`NewMessage::unique`]: super::NewMessage::unique
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
    }

    /// A random key, for a blob that equals no other.
    pub fn random() -> Self {
        Self(rand::random())
    }
}

impl fmt::Display for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for BlobHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobHash({self})")
    }
}

/// Serde for [`Fingerprint`] as its 32 raw bytes.
pub(crate) mod fp_bytes {
    use super::Fingerprint;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(fp: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
        fp.as_bytes().serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
        <[u8; 32]>::deserialize(d).map(Fingerprint::from)
    }
}

/// An account as the API shows it (the password hash stays inside).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Account {
    /// Internal id.
    pub id: AccountId,
    /// Primary address, lowercased.
    pub address: String,
    /// Further addresses that deliver to this account, lowercased.
    pub aliases: Vec<String>,
    /// Whether a password is set (an account without one receives mail
    /// but cannot log in).
    pub has_password: bool,
    /// Quota in bytes; `None` for unlimited.
    pub quota_bytes: Option<u64>,
    /// Bytes used by stored messages.
    pub used_bytes: u64,
    /// Creation time, unix seconds.
    pub created: i64,
    /// Latest change id (JMAP state, IMAP modseq) of the account.
    pub modseq: u64,
}

/// A special-use role (RFC 6154), given to the mailboxes of a new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum MailboxRole {
    /// The inbox.
    Inbox,
    /// `\Sent`.
    Sent,
    /// `\Drafts`.
    Drafts,
    /// `\Trash`.
    Trash,
    /// `\Junk`.
    Junk,
    /// `\Archive`.
    Archive,
}

/// A mailbox with its IMAP counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Mailbox {
    /// Id, unique within the account.
    pub id: MailboxId,
    /// Full name, `/`-separated (`Archive/2024`); `INBOX` is upper case.
    pub name: String,
    /// The mailbox one level up, if any.
    pub parent: Option<MailboxId>,
    /// UIDVALIDITY.
    pub uid_validity: NonZeroU32,
    /// UIDNEXT: the UID the next appended message gets.
    pub uid_next: Uid,
    /// HIGHESTMODSEQ (RFC 7162).
    pub highest_modseq: u64,
    /// Special-use role.
    pub role: Option<MailboxRole>,
    /// Whether the mailbox is subscribed.
    pub subscribed: bool,
    /// Number of messages.
    pub exists: u32,
}

impl Record for Mailbox {
    const VERSION: u8 = 1;
}
