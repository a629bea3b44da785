//! COPY and MOVE of messages between mailboxes of one account (IMAP COPY
//! RFC 9051 §6.4.7, MOVE RFC 6851, JMAP `Email/set` `mailboxIds`).
//!
//! # Shape
//!
//! A copy shares the blob of its original (one more reference) and gets a
//! new UID and MODSEQ in the target, and is a new Email with an Email id
//! of its own (RFC 8621 §4.1.1: a stored message is in exactly one
//! mailbox here, so a copy cannot be the same Email in two mailboxes);
//! it joins its original's thread. A move keeps the Email id and thread:
//! its record moves to the target's new UID, `emails` follows it, and the
//! change log gets one `Updated` entry naming both mailboxes, so JMAP
//! sees an update, not a destroy and a create.
//!
//! `COPY 1:*` of a mailbox of millions
//! of messages must not build one write batch of millions of records
//! (issue 14 item 7: 1.2 GiB at 2 million), so the UIDs are written in
//! batches of [`BATCH`], each one a transaction of the account (`txn`),
//! re-run from fresh reads of its messages when another writer of the
//! account commits in between. Atomicity of the whole COPY against the
//! quota (RFC 9208 §4.2: a COPY over quota copies nothing) is kept by
//! checking the quota for the total size before the first batch; every
//! batch checks again for its own messages, so the quota is never
//! exceeded. A COPY of up to [`BATCH`] messages is one transaction, so
//! it is atomic against the quota whatever else runs. For a longer one,
//! the account lock held across its batches keeps the writers of this
//! process out in between; a delivery through *another* process sharing
//! the engine can still take the room between two batches, and then a
//! later batch fails with `QuotaExceeded` after earlier ones were
//! written. A crash in the middle leaves the batches written so far too
//! (each message whole, in one place for MOVE): like a client's COPY
//! interrupted by a dropped connection, it is safe to repeat.

use std::collections::BTreeMap;

use super::error::MailError;
use super::keys::Key;
use super::log::{ChangeKind, ChangedObject, EmailChange};
use super::mail::MailStore;
use super::message::{take_uid, BlobDeltas};
use super::message_record::{EmailLocation, Message};
use super::records::{AccountId, MailboxId, Uid};
use super::threads::ThreadTally;
use super::txn::{Scope, Tx};

/// Messages per write batch.
const BATCH: usize = 1000;

impl MailStore {
    /// Copies messages to another mailbox (IMAP COPY); returns
    /// `(source UID, new UID)` pairs for UIDPLUS `COPYUID`, in UID order.
    /// Over the quota: `QuotaExceeded` and nothing copied.
    pub fn copy_messages(
        &self,
        id: AccountId,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
    ) -> Result<Vec<(Uid, Uid)>, MailError> {
        self.transfer(id, from, uids, to, false)
    }

    /// Moves messages to another mailbox (IMAP MOVE): in each batch the
    /// copies appear and the originals go together.
    pub fn move_messages(
        &self,
        id: AccountId,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
    ) -> Result<Vec<(Uid, Uid)>, MailError> {
        self.transfer(id, from, uids, to, true)
    }

    fn transfer(
        &self,
        id: AccountId,
        from: MailboxId,
        uids: &[Uid],
        to: MailboxId,
        remove_source: bool,
    ) -> Result<Vec<(Uid, Uid)>, MailError> {
        // why the lock across all batches: see the module doc (it keeps
        // this process's deliveries out between the quota check and the
        // batches); each batch takes no lock of its own (`transact`).
        let _acct = self.lock_account(id);
        self.get_mailbox(id, from)?;
        self.get_mailbox(id, to)?;
        if from == to && remove_source {
            return Ok(Vec::new());
        }
        let mut uids = uids.to_vec();
        uids.sort_unstable();
        uids.dedup();
        if !remove_source {
            self.check_copy_quota(id, from, &uids)?;
        }
        let mut pairs = Vec::with_capacity(uids.len());
        for batch in uids.chunks(BATCH) {
            let done = self.transact(&[Scope::Account(id)], |tx| {
                self.transfer_batch(tx, id, (from, to), batch, remove_source)
            })?;
            pairs.extend(done);
        }
        Ok(pairs)
    }

    /// `QuotaExceeded` unless the account can hold copies of all of
    /// `uids` (sizes read a batch at a time).
    fn check_copy_quota(
        &self,
        id: AccountId,
        from: MailboxId,
        uids: &[Uid],
    ) -> Result<(), MailError> {
        let rec = self.account_record(id)?;
        let mut needed: u64 = 0;
        for batch in uids.chunks(BATCH) {
            for m in self.messages_by_uid(id, from, batch)? {
                needed = needed.saturating_add(m.size);
            }
        }
        self.check_quota(&rec, needed)
    }

    /// Stages one batch: the copies of `uids` (those that still exist),
    /// and for a move the removal of the originals, with the account,
    /// mailboxes and blob counts. Returns `(source UID, new UID)` pairs.
    fn transfer_batch(
        &self,
        tx: &mut Tx,
        id: AccountId,
        (from, to): (MailboxId, MailboxId),
        uids: &[Uid],
        remove_source: bool,
    ) -> Result<Vec<(Uid, Uid)>, MailError> {
        let messages = self.messages_by_uid(id, from, uids)?;
        let mut pairs = Vec::with_capacity(messages.len());
        if messages.is_empty() {
            return Ok(pairs);
        }
        let mut rec = self.account_record(id)?;
        let mut src = self.get_mailbox(id, from)?;
        let mut dst = self.get_mailbox(id, to)?;
        let mut blobs = BlobDeltas::default();
        let mut tally = ThreadTally::default();
        for msg in messages {
            let new_uid = take_uid(&mut dst)?;
            pairs.push((msg.uid, new_uid));
            let modseq = if remove_source {
                tx.delete(&Key::Message(id, from, msg.uid));
                let moved = Message {
                    mailbox: to,
                    uid: new_uid,
                    ..msg
                };
                let change = EmailChange {
                    moved_from: Some(from),
                    ..EmailChange::of(&moved, None)
                };
                let object = ChangedObject::Email(change);
                let modseq = tx.change(id, &mut rec, ChangeKind::Updated, object)?;
                let at = EmailLocation {
                    mailbox: to,
                    uid: new_uid,
                };
                tx.put(&Key::Email(id, moved.email_id), &at)?;
                tx.put(&Key::Message(id, to, new_uid), &Message { modseq, ..moved })?;
                src.highest_modseq = modseq;
                src.exists = src.exists.saturating_sub(1);
                modseq
            } else {
                // why again: cheap, and a second guard should the up-front
                // check ever be bypassed.
                self.check_quota(&rec, msg.size)?;
                rec.used_bytes = rec.used_bytes.saturating_add(msg.size);
                blobs.add(msg.blob, 1);
                let email_id = Tx::next_change_id(&rec)?;
                let copy = Message {
                    mailbox: to,
                    uid: new_uid,
                    modseq: email_id,
                    email_id,
                    ..msg
                };
                let modseq = self.stage_new_email(tx, id, &mut rec, &copy, &mut tally)?;
                tx.put(&Key::Message(id, to, new_uid), &copy)?;
                modseq
            };
            dst.highest_modseq = modseq;
            dst.exists = dst.exists.saturating_add(1);
        }
        self.apply_blob_deltas(tx, id, blobs, &BTreeMap::new())?;
        if from != to {
            tx.put(&Key::Mailbox(id, from), &src)?;
        }
        tx.put(&Key::Mailbox(id, to), &dst)?;
        tx.put(&Key::Account(id), &rec)?;
        Ok(pairs)
    }
}
