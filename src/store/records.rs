//! The values the mail layer stores, and their versioned encoding.
//!
//! A stored value is one record-version byte followed by the postcard
//! encoding of the record. A record type that needs a new shape gets a new
//! version number and a decoder for the old one; enums are encoded by
//! variant index, so new variants go at the end, never in between.

use std::collections::BTreeSet;
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

/// The SHA-256 of a message's bytes: the key of its blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobHash(pub [u8; 32]);

impl BlobHash {
    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(Sha256::digest(data).into())
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

/// A certificate to add to an account, with the facts the caller parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// SHA-256 of `der`; checked against it.
    pub fingerprint: Fingerprint,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial_number: String,
    /// E-mail addresses of the certificate.
    pub email_addresses: Vec<String>,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// `RSA`, `EC`, ...
    pub key_algorithm: String,
    /// Key size in bits, when known.
    pub key_size: Option<u32>,
    /// Free text from the user.
    pub description: String,
    /// Whether it is used for encryption.
    pub is_active: bool,
}

impl NewCertificate {
    /// The record for `der` from what `certs` found in it.
    pub fn from_info(der: Vec<u8>, info: &crate::certs::CertInfo, description: String) -> Self {
        Self {
            fingerprint: info.fingerprint,
            der,
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            serial_number: info.serial_number.clone(),
            email_addresses: info.email_addresses.clone(),
            not_before: info.not_before.unix_timestamp(),
            not_after: info.not_after.unix_timestamp(),
            key_algorithm: info.key_algorithm.clone(),
            key_size: info.key_size,
            description,
            is_active: true,
        }
    }
}

/// A certificate stored on an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Certificate {
    /// SHA-256 of the DER (JMAP `id` and `fingerprint`).
    #[serde(with = "fp_bytes")]
    pub fingerprint: Fingerprint,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial_number: String,
    /// E-mail addresses of the certificate.
    pub email_addresses: Vec<String>,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// `RSA`, `EC`, ...
    pub key_algorithm: String,
    /// Key size in bits, when known.
    pub key_size: Option<u32>,
    /// Free text from the user.
    pub description: String,
    /// Whether it is used for encryption.
    pub is_active: bool,
    /// When it was added, unix seconds.
    pub added: i64,
}

impl Record for Certificate {
    const VERSION: u8 = 1;
}

impl Certificate {
    pub(crate) fn from_new(c: NewCertificate, added: i64) -> Self {
        Self {
            fingerprint: c.fingerprint,
            der: c.der,
            subject: c.subject,
            issuer: c.issuer,
            serial_number: c.serial_number,
            email_addresses: c.email_addresses,
            not_before: c.not_before,
            not_after: c.not_after,
            key_algorithm: c.key_algorithm,
            key_size: c.key_size,
            description: c.description,
            is_active: c.is_active,
            added,
        }
    }
}

pub use super::certs::{Cipher, EncryptionSettings};
pub use super::lists::{ListKeyInfo, ListKeyPair, MailingList};
pub use super::log::{AuditEvent, AuditKind, Change, ChangeKind, ChangedObject};
