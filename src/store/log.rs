//! The per-account change log and audit log.
//!
//! The change log gives every change of an account a number from one
//! monotonic counter (the account's modseq): JMAP state strings are that
//! number, `*/changes` reads the entries after a given state, and IMAP
//! MODSEQ / HIGHESTMODSEQ values come from the same counter (RFC 7162
//! only needs them to increase per mailbox). The audit log records
//! security-relevant events, latest first on query; certificate and
//! settings changes write theirs in the same batch as the change itself,
//! and the server records deliveries with [`MailStore::record_audit`].
//! Both logs grow until the account is removed (no retention yet).

use serde::{Deserialize, Serialize};

use super::accounts::AccountRecord;
use super::error::{bug, MailError};
use super::keys::{self, Key};
use super::mail::{now_secs, MailStore};
use super::records::{fp_bytes, AccountId, MailboxId, Record, Uid};
use super::txn::Tx;
use super::{Cf, Order};
use crate::certs::Fingerprint;

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChangeKind {
    /// It was created.
    Created,
    /// It was modified.
    Updated,
    /// It was destroyed.
    Destroyed,
}

/// Which object changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ChangedObject {
    /// The account itself (aliases, password, quota).
    Account,
    /// A mailbox.
    Mailbox(MailboxId),
    /// A message, as logged before Email ids existed (data version 0):
    /// only read, never written now. `Email/changes` over such an entry
    /// is `cannotCalculateChanges` (its id is not the Email's).
    Message {
        /// Its mailbox.
        mailbox: MailboxId,
        /// Its UID.
        uid: Uid,
    },
    /// A certificate.
    Certificate(#[serde(with = "fp_bytes")] Fingerprint),
    /// The encryption settings.
    Settings,
    /// A message, by its Email id (RFC 8621 §4.1.1). A move is one
    /// `Updated` entry naming both mailboxes.
    Email(EmailChange),
}

/// What changed of one Email: [`ChangedObject::Email`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EmailChange {
    /// Its Email id.
    pub email: u64,
    /// Its Thread id.
    pub thread: u64,
    /// Its mailbox (after a move: the new one).
    pub mailbox: MailboxId,
    /// Its UID there.
    pub uid: Uid,
    /// The mailbox it left, for a move.
    pub moved_from: Option<MailboxId>,
    /// What the change did to its thread's `emailIds`: `Created` (the
    /// thread's first Email), `Destroyed` (its last went), `Updated` (one
    /// more or one less); `None` when they stay as they were (keywords,
    /// a move).
    pub thread_change: Option<ChangeKind>,
}

impl EmailChange {
    /// A change of `msg` in place (no move).
    pub(crate) fn of(msg: &super::Message, thread_change: Option<ChangeKind>) -> Self {
        Self {
            email: msg.email_id,
            thread: msg.thread_id,
            mailbox: msg.mailbox,
            uid: msg.uid,
            moved_from: None,
            thread_change,
        }
    }
}

/// One change-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Change {
    /// Change id = the account's modseq after the change.
    pub id: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// To what.
    pub object: ChangedObject,
}

impl Record for Change {
    const VERSION: u8 = 1;
}

/// Kind of an audit event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AuditKind {
    /// A certificate was added.
    CertificateAdded,
    /// A certificate was removed.
    CertificateRemoved,
    /// A certificate was activated.
    CertificateActivated,
    /// A certificate was deactivated.
    CertificateDeactivated,
    /// Encryption at rest was enabled.
    EncryptionEnabled,
    /// Encryption at rest was disabled.
    EncryptionDisabled,
    /// A delivery was stored encrypted.
    DeliveryEncrypted,
    /// A delivery was refused (the reason is in the details).
    DeliveryRefused,
    /// An app token was created (its id and name in the details).
    AppTokenAdded,
    /// An app token was removed.
    AppTokenRemoved,
    /// A private key was handed over for server-side reading.
    ReadingKeyAdded,
    /// A private key for server-side reading was removed.
    ReadingKeyRemoved,
    /// Server-side reading was switched on.
    ReadingEnabled,
    /// Server-side reading was switched off.
    ReadingDisabled,
}

/// One audit-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// Sequence number, increasing per account.
    pub seq: u64,
    /// When, unix seconds.
    pub time: i64,
    /// What.
    pub kind: AuditKind,
    /// Free text (fingerprint, reason, message id); never message content.
    pub details: String,
}

impl Record for AuditEvent {
    const VERSION: u8 = 1;
}

impl Tx {
    /// Logs an audit event in the batch.
    pub(crate) fn audit(
        &mut self,
        id: AccountId,
        rec: &mut AccountRecord,
        time: i64,
        kind: AuditKind,
        details: String,
    ) -> Result<(), MailError> {
        rec.audit_seq = rec
            .audit_seq
            .checked_add(1)
            .ok_or_else(|| bug("audit seq overflow"))?;
        let event = AuditEvent {
            seq: rec.audit_seq,
            time,
            kind,
            details,
        };
        self.put(&Key::Audit(id, rec.audit_seq), &event)
    }
}

impl MailStore {
    /// Up to `limit` changes after change id `since` (0: from the start),
    /// oldest first. The account's current state is [`super::Account::modseq`].
    pub fn changes_since(
        &self,
        id: AccountId,
        since: u64,
        limit: usize,
    ) -> Result<Vec<Change>, MailError> {
        let range = keys::changes_after(id, since);
        let rows = self.scan_records::<Change>(Cf::Changes, &range, Order::Forward, limit)?;
        Ok(rows.into_iter().map(|(_, c)| c).collect())
    }

    /// The latest `limit` audit events, latest first.
    pub fn audit_events(&self, id: AccountId, limit: usize) -> Result<Vec<AuditEvent>, MailError> {
        let range = keys::account_range(id);
        let rows = self.scan_records::<AuditEvent>(Cf::Audit, &range, Order::Reverse, limit)?;
        Ok(rows.into_iter().map(|(_, e)| e).collect())
    }

    /// Records an audit event (deliveries: encrypted, refused with reason).
    /// `details` must not hold message content or secrets.
    pub fn record_audit(
        &self,
        id: AccountId,
        kind: AuditKind,
        details: &str,
    ) -> Result<(), MailError> {
        let time = now_secs();
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            tx.audit(id, &mut rec, time, kind, details.to_string())?;
            tx.put(&Key::Account(id), &rec)
        })
    }
}
