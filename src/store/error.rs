//! Errors of the storage layer.
//!
//! Two levels, like the two layers: [`StoreError`] is what an engine
//! reports (disk or engine failure, corrupt data, our bug), and
//! [`MailError`] is what [`super::MailStore`] reports: the caller's request
//! broke a rule (unknown account, duplicate certificate, last active
//! certificate) or the engine failed underneath. Callers map
//! [`MailError::is_user_error`] to "exit 1 / 4xx-free rejection" and the
//! rest to "internal error".

use std::path::PathBuf;

use super::Cf;
use crate::certs::Fingerprint;

/// A failure of the storage engine or of the data it holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The engine could not read or write (disk full, I/O error, lock held
    /// by another process, ...). Usually an operator must act.
    #[error("storage engine failed during {op}: {message}; check the engine: for RocksDB free space, permissions and that no other sealmail process uses the data directory; for PostgreSQL that the server in store.url is up and reachable")]
    Engine {
        /// What we were doing.
        op: &'static str,
        /// The engine's message.
        message: String,
    },
    /// A file of ours next to the database (a blob segment) failed. The
    /// text names no path, as it may reach a client's reply; the path is
    /// logged where the error is made, and kept here for callers.
    #[error("storage file access failed: {source}; the server log names the file")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes do not decode: disk corruption, or data written by a
    /// newer sealmail.
    #[error(
        "corrupt data in column family `{cf}`: {detail}; restore from backup or upgrade sealmail"
    )]
    Corrupt {
        /// Where.
        cf: Cf,
        /// What did not decode.
        detail: String,
    },
    /// A conditional write ([`super::Store::write_if`]) found a key
    /// changed by another writer since it was read; nothing was written.
    /// Retried by the transaction combinators; reaches a user only when a
    /// key stays contended past every retry.
    #[error(
        "the data changed under a concurrent update ({detail}); nothing was written, try again"
    )]
    Conflict {
        /// Which expectation failed.
        detail: String,
    },
    /// An invariant of our own code does not hold. This is a bug in
    /// sealmail; please report it.
    #[error("internal storage error (a bug in sealmail, please report it): {detail}")]
    Bug {
        /// What went wrong.
        detail: String,
    },
}

/// A failure of a [`super::MailStore`] operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The storage engine failed underneath.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The master key could not be loaded or created.
    #[error("master key {path}: {reason}")]
    MasterKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The account does not exist.
    #[error("no account {account}; check the address with `sealmail account list`")]
    AccountNotFound {
        /// The address or id asked for.
        account: String,
    },
    /// An address is not a plausible e-mail address.
    #[error("{address:?} is not an e-mail address: {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why.
        reason: &'static str,
    },
    /// The address already belongs to an account or a list.
    #[error("address {address} is already used by an account or a list; remove it there first")]
    AddressTaken {
        /// The normalised address.
        address: String,
    },
    /// No mailbox with that id or name.
    #[error("no mailbox {mailbox}")]
    MailboxNotFound {
        /// The id or name asked for.
        mailbox: String,
    },
    /// A mailbox of that name exists already.
    #[error("mailbox {name:?} already exists")]
    MailboxExists {
        /// The name.
        name: String,
    },
    /// The mailbox name breaks a naming rule.
    #[error("mailbox name {name:?} is not allowed: {reason}")]
    InvalidMailboxName {
        /// The name as given.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// The mailbox has children; delete them first.
    #[error("mailbox {name:?} has child mailboxes; delete or move them first")]
    MailboxHasChildren {
        /// The name.
        name: String,
    },
    /// INBOX cannot be deleted or renamed.
    #[error("INBOX cannot be deleted or renamed")]
    InboxProtected,
    /// The mailbox has used every UID of its UIDVALIDITY.
    #[error("mailbox {name:?} has no UIDs left; recreate it to get a new UIDVALIDITY")]
    UidsExhausted {
        /// The name.
        name: String,
    },
    /// Storing the message would exceed the account's quota.
    #[error("quota exceeded: {used} of {quota} bytes used, message needs {needed}; raise the quota or expunge mail")]
    QuotaExceeded {
        /// Bytes in use.
        used: u64,
        /// Bytes the new message(s) need.
        needed: u64,
        /// The quota.
        quota: u64,
    },
    /// No message with that UID.
    #[error("no message with UID {uid} in that mailbox")]
    MessageNotFound {
        /// The UID.
        uid: u32,
    },
    /// The message's content is not what the caller last read (another
    /// writer replaced or re-encrypted it meanwhile).
    #[error("message UID {uid} changed while it was being processed; run the command again")]
    ContentChanged {
        /// The UID.
        uid: u32,
    },
    /// The certificate is already on the account.
    #[error("certificate {fingerprint} is already on this account")]
    DuplicateCertificate {
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// No certificate with that fingerprint on the account.
    #[error("no certificate {fingerprint} on this account; see `sealmail cert list`")]
    CertificateNotFound {
        /// The fingerprint asked for.
        fingerprint: Fingerprint,
    },
    /// The fingerprint given does not match the certificate's DER.
    #[error("fingerprint {given} does not match the certificate (SHA-256 of its DER is {actual})")]
    FingerprintMismatch {
        /// As given.
        given: Fingerprint,
        /// As computed.
        actual: Fingerprint,
    },
    /// The change would leave an account with encryption enabled and no
    /// active certificate.
    #[error("certificate {fingerprint} is the last active certificate of an account with encryption enabled; disable encryption or add a certificate first")]
    LastActiveCertificate {
        /// The certificate.
        fingerprint: Fingerprint,
    },
    /// Encryption cannot be enabled without an active certificate.
    #[error("encryption cannot be enabled: the account has no active certificate; add a certificate first")]
    NoActiveCertificate,
    /// No mailing list with that address.
    #[error("no mailing list {list}; see `sealmail list add`")]
    ListNotFound {
        /// The address.
        list: String,
    },
    /// The key pair is already on the list.
    #[error("list key {fingerprint} is already on this list")]
    DuplicateListKey {
        /// Its certificate's fingerprint.
        fingerprint: Fingerprint,
    },
    /// No app token with that id on the account.
    #[error("no app token {id} on this account; see `sealmail token list`")]
    AppTokenNotFound {
        /// The id asked for.
        id: String,
    },
    /// The account holds as many app tokens as it may.
    #[error(
        "the account already has {limit} app tokens; remove one first (`sealmail token remove`)"
    )]
    TooManyAppTokens {
        /// The limit.
        limit: usize,
    },
    /// An app token's name breaks a rule.
    #[error("app token name {name:?} is not allowed: {reason}")]
    InvalidAppTokenName {
        /// The name as given.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A password given to prove the account's own (server-side reading)
    /// is not its password.
    #[error("that is not the account's password; the key is wrapped under the account's own password, so give the one it logs in with")]
    WrongPassword,
    /// Server-side reading asked for with no private key held.
    #[error("server-side reading needs a private key; upload one matching an active certificate first (JMAP PrivateKey/set or `sealmail reading enable --key`)")]
    NoReadingKey,
    /// A private key for this certificate is already held.
    #[error("a private key for certificate {fingerprint} is already held; remove it first")]
    DuplicateReadingKey {
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
    },
    /// No private key held for this certificate.
    #[error("no private key held for certificate {fingerprint}; see `sealmail reading status`")]
    ReadingKeyNotFound {
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
    },
    /// Too many private keys held.
    #[error("an account holds at most {limit} private keys; remove one first")]
    TooManyReadingKeys {
        /// The limit.
        limit: usize,
    },
    /// A sealed list key does not open with this master key.
    #[error("list key {fingerprint} cannot be decrypted with this server's master.key; was master.key replaced?")]
    ListKeyUnreadable {
        /// Its certificate's fingerprint.
        fingerprint: Fingerprint,
    },
}

impl MailError {
    /// Whether the caller's request was at fault (exit code 1, a JMAP
    /// SetError), as opposed to the server or its disk (exit code 2).
    pub fn is_user_error(&self) -> bool {
        !matches!(
            self,
            MailError::Store(_) | MailError::MasterKey { .. } | MailError::ListKeyUnreadable { .. }
        )
    }
}

/// A record that failed to decode, as a [`StoreError::Corrupt`].
pub(crate) fn corrupt(cf: Cf, detail: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        cf,
        detail: detail.into(),
    }
}

/// A broken invariant of ours, as a [`StoreError::Bug`].
pub(crate) fn bug(detail: impl Into<String>) -> StoreError {
    StoreError::Bug {
        detail: detail.into(),
    }
}
