//! Bringing existing mail under encryption: the import markers of
//! `sealmail import` and the in-place content swap of `sealmail
//! reencrypt`.
//!
//! Both are built for being interrupted and run again. An import writes
//! its marker (`imports`: `acct hash` of the source bytes) in the same
//! batch as the message, so after a crash either both exist or neither
//! does, and a re-run skips exactly what was stored. A re-encryption
//! replaces one message's blob in one batch — new blob, record, old
//! blob's count (and the blob itself at zero), used bytes, change log —
//! and refuses when the record no longer points at the blob the caller
//! encrypted, so a concurrent change is never overwritten.
//!
//! Replacing content under an existing UID bends IMAP's rule that a
//! UID's content never changes (RFC 9051 §2.3.1.1): a client that cached
//! the plaintext keeps it, one that did not fetches the S/MIME version.
//! The change is logged (`Updated`), so JMAP clients and CONDSTORE see a
//! new MODSEQ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{bug, MailError};
use super::keys::Key;
use super::log::{ChangeKind, ChangedObject, EmailChange};
use super::mail::MailStore;
use super::message::BlobDeltas;
use super::message_record::{Message, NewMessage};
use super::records::{AccountId, BlobHash, MailboxId, Record, Uid};

/// Value of [`super::Cf::Imports`]: where the imported message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ImportRecord {
    pub(crate) mailbox: MailboxId,
    pub(crate) uid: Uid,
}

impl Record for ImportRecord {
    const VERSION: u8 = 1;
}

impl MailStore {
    /// Whether a message whose source bytes hash to `source` was imported
    /// into the account before (a cheap check before encrypting it).
    pub fn is_imported(&self, id: AccountId, source: BlobHash) -> Result<bool, MailError> {
        Ok(self
            .load::<ImportRecord>(&Key::Import(id, source))?
            .is_some())
    }

    /// Appends `msg` as [`MailStore::append`] does and records the import
    /// marker `source` (SHA-256 of the message as read from the operator's
    /// file, before any hook changed it) in the same batch. Returns `None`,
    /// storing nothing, when that marker exists already.
    pub fn append_imported(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        source: BlobHash,
        msg: NewMessage<'_>,
    ) -> Result<Option<Message>, MailError> {
        let marker = Key::Import(id, source);
        let items = [(id, mailbox, msg)];
        self.update_account(id, |tx| {
            if self.load::<ImportRecord>(&marker)?.is_some() {
                return Ok(None);
            }
            let stored = self
                .stage_appends(tx, &items)?
                .pop()
                .ok_or_else(|| bug("stage_appends lost its message"))?;
            let record = ImportRecord {
                mailbox,
                uid: stored.uid,
            };
            tx.put(&marker, &record)?;
            Ok(Some(stored))
        })
    }

    /// Replaces the content of message `uid` with `raw` in one batch,
    /// keeping its UID, flags, internal date, clear header fields and
    /// mailbox; the old blob loses a reference (and goes at zero), the
    /// account's used bytes follow the new size, and the change is
    /// logged with a new MODSEQ. Refuses with
    /// [`MailError::ContentChanged`] when the record no longer points at
    /// `expected`. The quota is not checked: growing by the S/MIME
    /// overhead must not stop existing mail from being encrypted.
    pub fn replace_content(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        uid: Uid,
        expected: BlobHash,
        raw: &[u8],
        encrypted: bool,
    ) -> Result<Message, MailError> {
        // why not unique: a replacement equal to another message of the
        // account may share its body (plaintext restored by a decrypt).
        let blob = self.new_blob_key(raw, false);
        let size = u64::try_from(raw.len()).map_err(|_| bug("message size"))?;
        let msg = self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let mut mbox = self.get_mailbox(id, mailbox)?;
            let mut msg = self.get_message(id, mailbox, uid)?;
            if msg.blob != expected {
                return Err(MailError::ContentChanged { uid: uid.get() });
            }
            let mut deltas = BlobDeltas::default();
            deltas.add(msg.blob, -1);
            deltas.add(blob, 1);
            self.apply_blob_deltas(tx, id, deltas, &BTreeMap::from([(blob, raw)]))?;
            rec.used_bytes = rec.used_bytes.saturating_sub(msg.size).saturating_add(size);
            let object = ChangedObject::Email(EmailChange::of(&msg, None));
            msg.modseq = tx.change(id, &mut rec, ChangeKind::Updated, object)?;
            msg.blob = blob;
            msg.size = size;
            msg.encrypted = encrypted;
            mbox.highest_modseq = msg.modseq;
            tx.put(&Key::Message(id, mailbox, uid), &msg)?;
            tx.put(&Key::Mailbox(id, mailbox), &mbox)?;
            tx.put(&Key::Account(id), &rec)?;
            Ok(msg)
        })?;
        tracing::debug!(account = %id, mailbox = %mailbox, uid = %uid, bytes = size, "content replaced");
        Ok(msg)
    }

    /// Asks the engine to drop deleted values from its files now (see
    /// [`super::Store::compact`]).
    pub fn compact(&self) -> Result<(), MailError> {
        self.store.compact()?;
        Ok(self.blobs.compact()?)
    }

    /// Routine housekeeping (see [`super::Store::maintain`]); the server
    /// runs it every hour.
    pub fn maintain(&self) -> Result<(), MailError> {
        self.store.maintain()?;
        self.collect_orphans()?;
        Ok(self.blobs.maintain()?)
    }

    /// Gives back memory the engine holds for data it has on disk, once
    /// writes have stopped for a while (see
    /// [`super::Store::release_memory_when_quiet`]); the server calls it
    /// every few seconds.
    pub fn release_memory_when_quiet(&self) -> Result<(), MailError> {
        Ok(self.store.release_memory_when_quiet()?)
    }
}
