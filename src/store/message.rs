//! Messages and their blobs.
//!
//! A message record lives at `acct mbox uid`; its bytes live once per
//! account in the blob store under their SHA-256, with a reference count,
//! so copies share one blob and the blob goes when its last message is
//! expunged. Appending takes UIDNEXT and bumps it in the same batch as the
//! record, the blob, the modseq and the change-log entry: UIDs strictly
//! increase and are never reused within a UIDVALIDITY (RFC 9051 §2.3.1.1),
//! also across processes: each change is a transaction of its accounts
//! (`txn`), re-run from fresh reads when another writer took the UID
//! first.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use super::accounts::AccountRecord;
use super::error::{bug, corrupt, MailError};
use super::keys::{self, Key};
use super::log::{AuditKind, ChangeKind, ChangedObject, EmailChange};
use super::mail::MailStore;
use super::message_record::{EmailLocation, FlagChange, Message, NewMessage, ThreadMember};
use super::records::{AccountId, BlobHash, Mailbox, MailboxId, Uid};
use super::threads::{ThreadTally, Threader};
use super::txn::Tx;
use super::{Cf, Order};

/// Pending reference-count changes of one batch, per blob.
#[derive(Debug, Default)]
pub(crate) struct BlobDeltas(BTreeMap<BlobHash, i64>);

impl BlobDeltas {
    pub(crate) fn add(&mut self, blob: BlobHash, delta: i64) {
        *self.0.entry(blob).or_default() += delta;
    }
}

/// What a conditional flag change did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FlagsSet {
    /// Each changed UID with its new MODSEQ.
    pub changed: Vec<(Uid, u64)>,
    /// UIDs left alone because they changed after the `UNCHANGEDSINCE`
    /// MODSEQ.
    pub modified: Vec<Uid>,
}

impl MailStore {
    /// Appends a message to a mailbox: one atomic batch with the blob (if
    /// the account does not hold it yet), the record, the mailbox's
    /// UIDNEXT / HIGHESTMODSEQ / count, the account's usage and the change
    /// log entry. Returns the stored record (with its UID).
    pub fn append(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        msg: NewMessage<'_>,
    ) -> Result<Message, MailError> {
        self.append_many(vec![(id, mailbox, msg)])?
            .pop()
            .ok_or_else(|| bug("append_many lost its message").into())
    }

    /// Appends several messages, possibly to several accounts (a list
    /// fan-out), in one atomic batch and one WAL sync. All or nothing: if
    /// one item fails (unknown mailbox, quota), nothing is stored. Returns
    /// the stored records in input order.
    pub fn append_many(
        &self,
        items: Vec<(AccountId, MailboxId, NewMessage<'_>)>,
    ) -> Result<Vec<Message>, MailError> {
        self.append_many_audited(items, &[])
    }

    /// [`MailStore::append_many`] with audit events for the same
    /// accounts in the same batch: one synced write for a transaction's
    /// copies and their "stored encrypted" lines, instead of one more
    /// write per audit line.
    pub fn append_many_audited(
        &self,
        items: Vec<(AccountId, MailboxId, NewMessage<'_>)>,
        audits: &[(AccountId, AuditKind, &str)],
    ) -> Result<Vec<Message>, MailError> {
        let ids: Vec<AccountId> = items
            .iter()
            .map(|(id, ..)| *id)
            .chain(audits.iter().map(|(id, ..)| *id))
            .collect();
        // why one transaction for all: one synced write per chunk of a
        // fan-out; a conflict on any account re-runs the chunk's reads.
        let stored = self.update_accounts(&ids, |tx| self.stage(tx, &items, audits))?;
        for (m, (id, ..)) in stored.iter().zip(&items) {
            tracing::debug!(account = %id, mailbox = %m.mailbox, uid = %m.uid, bytes = m.size, "appended");
        }
        Ok(stored)
    }

    /// Adds the appends of `items` to `tx`, without writing it: part of a
    /// transaction of every account in `items`.
    pub(crate) fn stage_appends(
        &self,
        tx: &mut Tx,
        items: &[(AccountId, MailboxId, NewMessage<'_>)],
    ) -> Result<Vec<Message>, MailError> {
        self.stage(tx, items, &[])
    }

    /// [`MailStore::stage_appends`] plus `audits`, each in the account
    /// record the appends update (one read-modify-write per account).
    fn stage<'m>(
        &self,
        tx: &mut Tx,
        items: &[(AccountId, MailboxId, NewMessage<'m>)],
        audits: &[(AccountId, AuditKind, &str)],
    ) -> Result<Vec<Message>, MailError> {
        let mut accounts: BTreeMap<AccountId, AccountRecord> = BTreeMap::new();
        let mut mailboxes: BTreeMap<(AccountId, MailboxId), Mailbox> = BTreeMap::new();
        let mut blobs: BTreeMap<AccountId, (BlobDeltas, BTreeMap<BlobHash, &'m [u8]>)> =
            BTreeMap::new();
        // why read ahead: the records of every account and mailbox of the
        // chunk in two engine calls, instead of two per member (a round
        // trip each on PostgreSQL); one missing is reported in the loop.
        let ids: BTreeSet<AccountId> = items.iter().map(|(id, ..)| *id).collect();
        let boxes: BTreeSet<(AccountId, MailboxId)> =
            items.iter().map(|(id, mb, _)| (*id, *mb)).collect();
        let found = self.load_many(&ids.iter().map(|&id| Key::Account(id)).collect::<Vec<_>>())?;
        accounts.extend(
            ids.iter()
                .copied()
                .zip(found)
                .filter_map(|(id, r)| Some((id, r?))),
        );
        let keys: Vec<Key> = boxes.iter().map(|&(id, mb)| Key::Mailbox(id, mb)).collect();
        let found = self.load_many(&keys)?;
        mailboxes.extend(
            boxes
                .iter()
                .copied()
                .zip(found)
                .filter_map(|(k, m)| Some((k, m?))),
        );
        let mut stored = Vec::with_capacity(items.len());
        let mut threader = Threader::default();
        threader.prefetch(self, items.iter().map(|(id, _, m)| (*id, &m.headers)))?;
        let mut tally = ThreadTally::default();
        // Random keys: no account can hold them yet (no count to read).
        let mut fresh = BTreeSet::new();
        for &(id, mailbox, ref msg) in items {
            let blob = self.new_blob_key(msg.raw, msg.unique);
            if self.is_random_blob_key(msg.unique) {
                fresh.insert(blob);
            }
            let size = u64::try_from(msg.raw.len()).map_err(|_| bug("message size"))?;
            let rec = match accounts.entry(id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.account_record(id)?),
            };
            let mbox = match mailboxes.entry((id, mailbox)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.get_mailbox(id, mailbox)?),
            };
            self.check_quota(rec, size)?;
            let uid = take_uid(mbox)?;
            let email_id = Tx::next_change_id(rec)?;
            let thread_id = threader.assign(self, tx, id, &msg.headers, email_id)?;
            let message = Message {
                mailbox,
                uid,
                modseq: email_id,
                flags: msg.flags.clone(),
                internal_date: msg.internal_date,
                size,
                headers: msg.headers.clone(),
                blob,
                encrypted: msg.encrypted,
                email_id,
                thread_id,
            };
            let modseq = self.stage_new_email(tx, id, rec, &message, &mut tally)?;
            tx.put(&Key::Message(id, mailbox, uid), &message)?;
            let (deltas, new_blobs) = blobs.entry(id).or_default();
            deltas.add(blob, 1);
            new_blobs.insert(blob, msg.raw);
            mbox.highest_modseq = modseq;
            mbox.exists = mbox.exists.saturating_add(1);
            rec.used_bytes = rec.used_bytes.saturating_add(size);
            stored.push(message);
        }
        self.apply_blob_deltas_many(
            tx,
            blobs
                .iter()
                .map(|(&id, (deltas, new_blobs))| (id, deltas, new_blobs)),
            &fresh,
        )?;
        let time = super::mail::now_secs();
        for (id, kind, details) in audits {
            let rec = match accounts.entry(*id) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(self.account_record(*id)?),
            };
            tx.audit(*id, rec, time, *kind, (*details).to_string())?;
        }
        for ((id, mb), mbox) in &mailboxes {
            tx.put(&Key::Mailbox(*id, *mb), mbox)?;
        }
        for (id, rec) in &accounts {
            tx.put(&Key::Account(*id), rec)?;
        }
        Ok(stored)
    }

    /// Logs the creation of `msg` (whose `email_id` is the next change id
    /// of `rec`) and writes its `emails` and `threads` entries; returns
    /// the change id. The record itself is the caller's to put.
    pub(crate) fn stage_new_email(
        &self,
        tx: &mut Tx,
        id: AccountId,
        rec: &mut AccountRecord,
        msg: &Message,
        tally: &mut ThreadTally,
    ) -> Result<u64, MailError> {
        let thread_change = if msg.thread_id == msg.email_id {
            tally.add_new(id, msg.thread_id)
        } else {
            tally.add(self, id, msg.thread_id)?
        };
        let object = ChangedObject::Email(EmailChange::of(msg, Some(thread_change)));
        let modseq = tx.change(id, rec, ChangeKind::Created, object)?;
        if modseq != msg.email_id {
            return Err(bug("an Email id is not its creation's change id").into());
        }
        self.put_email_index(tx, id, msg)?;
        Ok(modseq)
    }

    /// Writes the `emails` and `threads` entries of `msg`.
    pub(crate) fn put_email_index(
        &self,
        tx: &mut Tx,
        id: AccountId,
        msg: &Message,
    ) -> Result<(), MailError> {
        let at = EmailLocation {
            mailbox: msg.mailbox,
            uid: msg.uid,
        };
        tx.put(&Key::Email(id, msg.email_id), &at)?;
        let member = ThreadMember {
            received_at: msg.internal_date,
        };
        tx.put(&Key::ThreadMember(id, msg.thread_id, msg.email_id), &member)
    }

    /// Where the Email `email` is now, if it exists.
    pub fn email_location(
        &self,
        id: AccountId,
        email: u64,
    ) -> Result<Option<(MailboxId, Uid)>, MailError> {
        Ok(self
            .load::<EmailLocation>(&Key::Email(id, email))?
            .map(|at| (at.mailbox, at.uid)))
    }

    /// The messages of the Emails `emails`, in their order (`None`: no
    /// such Email), in two engine reads.
    pub fn get_emails(
        &self,
        id: AccountId,
        emails: &[u64],
    ) -> Result<Vec<Option<Message>>, MailError> {
        let keys: Vec<Key> = emails.iter().map(|&e| Key::Email(id, e)).collect();
        let at = self.load_many::<EmailLocation>(&keys)?;
        let keys: Vec<Key> = at
            .iter()
            .flatten()
            .map(|a| Key::Message(id, a.mailbox, a.uid))
            .collect();
        let mut found = self.load_many::<Message>(&keys)?.into_iter();
        let mut out: Vec<Option<Message>> = at
            .iter()
            .map(|a| a.and_then(|_| found.next().flatten()))
            .collect();
        // why again: a move between the two reads leaves the location
        // pointing at the old place; read those once more.
        for ((a, slot), &email) in at.iter().zip(out.iter_mut()).zip(emails) {
            if a.is_some() && slot.is_none() {
                *slot = match self.email_location(id, email)? {
                    Some((mb, uid)) => self.load::<Message>(&Key::Message(id, mb, uid))?,
                    None => None,
                };
            }
        }
        Ok(out)
    }

    /// The Emails of thread `thread` with their receivedAt, in Email id
    /// order (empty: no such thread).
    pub fn thread_members(&self, id: AccountId, thread: u64) -> Result<Vec<(u64, i64)>, MailError> {
        let range = keys::thread_range(id, thread);
        let rows =
            self.scan_records::<ThreadMember>(Cf::Threads, &range, Order::Forward, usize::MAX)?;
        Ok(rows
            .into_iter()
            .filter_map(|(k, m)| match k {
                Key::ThreadMember(_, _, e) => Some((e, m.received_at)),
                _ => None,
            })
            .collect())
    }

    /// The message `uid` of a mailbox.
    pub fn get_message(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        uid: Uid,
    ) -> Result<Message, MailError> {
        self.load(&Key::Message(id, mailbox, uid))?
            .ok_or(MailError::MessageNotFound { uid: uid.get() })
    }

    /// Up to `limit` messages of a mailbox in UID order, starting after
    /// `after` (for paging: pass the last UID of the previous page).
    pub fn list_messages(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        after: Option<Uid>,
        limit: usize,
    ) -> Result<Vec<Message>, MailError> {
        let range = keys::messages_range(id, mailbox, after);
        let rows = self.scan_records::<Message>(Cf::Messages, &range, Order::Forward, limit)?;
        Ok(rows.into_iter().map(|(_, m)| m).collect())
    }

    /// The stored bytes of a message, exactly as appended.
    pub fn get_blob(&self, id: AccountId, blob: BlobHash) -> Result<Option<Vec<u8>>, MailError> {
        Ok(self.blobs.get(&Key::Blob(id, blob).encode())?)
    }

    /// The bytes `range` of a message's stored bytes (clamped to its
    /// length), without reading the rest: an IMAP partial fetch.
    pub fn get_blob_range(
        &self,
        id: AccountId,
        blob: BlobHash,
        range: std::ops::Range<u64>,
    ) -> Result<Option<Vec<u8>>, MailError> {
        Ok(self.blobs.get_range(&Key::Blob(id, blob).encode(), range)?)
    }

    /// Changes the flags of the given messages (missing UIDs are skipped);
    /// returns each changed UID with its new MODSEQ.
    pub fn set_flags(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
        change: &FlagChange,
    ) -> Result<Vec<(Uid, u64)>, MailError> {
        Ok(self
            .set_flags_unchanged_since(id, mailbox, uids, change, None)?
            .changed)
    }

    /// [`MailStore::set_flags`] with IMAP's `UNCHANGEDSINCE` (RFC 7162
    /// §3.1.3): a message whose MODSEQ is above `unchanged_since` is left
    /// alone and reported in [`FlagsSet::modified`]; the test and the
    /// change are one transaction, so a change made meanwhile by another
    /// session (or node) is never overwritten.
    pub fn set_flags_unchanged_since(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
        change: &FlagChange,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsSet, MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let mut mbox = self.get_mailbox(id, mailbox)?;
            let mut out = FlagsSet::default();
            for &uid in uids {
                let Some(mut msg) = self.load::<Message>(&Key::Message(id, mailbox, uid))? else {
                    continue;
                };
                if unchanged_since.is_some_and(|since| msg.modseq > since) {
                    out.modified.push(uid);
                    continue;
                }
                let flags = change.applied_to(&msg.flags);
                if flags == msg.flags {
                    continue;
                }
                msg.flags = flags;
                let object = ChangedObject::Email(EmailChange::of(&msg, None));
                msg.modseq = tx.change(id, &mut rec, ChangeKind::Updated, object)?;
                mbox.highest_modseq = msg.modseq;
                tx.put(&Key::Message(id, mailbox, uid), &msg)?;
                out.changed.push((uid, msg.modseq));
            }
            if !out.changed.is_empty() {
                tx.put(&Key::Mailbox(id, mailbox), &mbox)?;
                tx.put(&Key::Account(id), &rec)?;
            }
            Ok(out)
        })
    }

    /// Removes the given messages (missing UIDs are skipped); returns the
    /// UIDs removed. Their UIDs are not reused.
    pub fn expunge(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<Uid>, MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let mut mbox = self.get_mailbox(id, mailbox)?;
            let mut blobs = BlobDeltas::default();
            let mut removed = Vec::new();
            let mut tally = ThreadTally::default();
            for &uid in uids {
                let Some(msg) = self.load::<Message>(&Key::Message(id, mailbox, uid))? else {
                    continue;
                };
                self.remove_message(tx, id, &mut rec, &mut mbox, &msg, &mut tally)?;
                blobs.add(msg.blob, -1);
                rec.used_bytes = rec.used_bytes.saturating_sub(msg.size);
                removed.push(uid);
            }
            if !removed.is_empty() {
                self.apply_blob_deltas(tx, id, blobs, &BTreeMap::new())?;
                tx.put(&Key::Mailbox(id, mailbox), &mbox)?;
                tx.put(&Key::Account(id), &rec)?;
            }
            Ok(removed)
        })
    }

    /// Deletes a message record and its Email's `emails` and `threads`
    /// entries, logs it and updates its mailbox in memory.
    pub(super) fn remove_message(
        &self,
        tx: &mut Tx,
        id: AccountId,
        rec: &mut AccountRecord,
        mbox: &mut Mailbox,
        msg: &Message,
        tally: &mut ThreadTally,
    ) -> Result<(), MailError> {
        tx.delete(&Key::Message(id, mbox.id, msg.uid));
        mbox.highest_modseq = self.stage_email_removal(tx, id, rec, msg, tally)?;
        mbox.exists = mbox.exists.saturating_sub(1);
        Ok(())
    }

    /// Deletes the `emails` and `threads` entries of `msg` and logs its
    /// destruction; returns the change id. The record is the caller's.
    pub(super) fn stage_email_removal(
        &self,
        tx: &mut Tx,
        id: AccountId,
        rec: &mut AccountRecord,
        msg: &Message,
        tally: &mut ThreadTally,
    ) -> Result<u64, MailError> {
        tx.delete(&Key::Email(id, msg.email_id));
        tx.delete(&Key::ThreadMember(id, msg.thread_id, msg.email_id));
        let thread_change = tally.remove(self, id, msg.thread_id)?;
        let object = ChangedObject::Email(EmailChange::of(msg, Some(thread_change)));
        tx.change(id, rec, ChangeKind::Destroyed, object)
    }

    /// Writes the new reference counts of `deltas` into `tx`, deleting
    /// blobs that lose their last reference and storing the bytes from
    /// `new_blobs` of a blob whose count goes up from zero.
    pub(crate) fn apply_blob_deltas(
        &self,
        tx: &mut Tx,
        id: AccountId,
        deltas: BlobDeltas,
        new_blobs: &BTreeMap<BlobHash, &[u8]>,
    ) -> Result<(), MailError> {
        self.apply_blob_deltas_many(tx, [(id, &deltas, new_blobs)], &BTreeSet::new())
    }

    /// [`MailStore::apply_blob_deltas`] for several accounts, their old
    /// counts read in one engine call, except those of `fresh` (random
    /// keys made just now: no count exists).
    pub(crate) fn apply_blob_deltas_many<'a, 'm: 'a>(
        &self,
        tx: &mut Tx,
        all: impl IntoIterator<Item = (AccountId, &'a BlobDeltas, &'a BTreeMap<BlobHash, &'m [u8]>)>,
        fresh: &BTreeSet<BlobHash>,
    ) -> Result<(), MailError> {
        // (account, blob, delta, the bodies that account's change brings)
        type Change<'c, 'b> = (AccountId, BlobHash, i64, &'c BTreeMap<BlobHash, &'b [u8]>);
        let changes: Vec<Change<'_, '_>> = all
            .into_iter()
            .flat_map(|(id, deltas, new_blobs)| {
                deltas
                    .0
                    .iter()
                    .filter(|(_, delta)| **delta != 0)
                    .map(move |(blob, delta)| (id, *blob, *delta, new_blobs))
            })
            .collect();
        let keys: Vec<Key> = changes
            .iter()
            .map(|&(id, blob, ..)| Key::BlobRef(id, blob))
            .collect();
        let read: Vec<Key> = keys
            .iter()
            .zip(&changes)
            .filter(|(_, (_, blob, ..))| !fresh.contains(blob))
            .map(|(k, _)| k.clone())
            .collect();
        let mut counts = self.load_many::<u64>(&read)?.into_iter();
        for ((id, blob, delta, new_blobs), key) in changes.into_iter().zip(keys) {
            let old = if fresh.contains(&blob) {
                0
            } else {
                counts.next().flatten().unwrap_or(0)
            };
            let new = i128::from(old) + i128::from(delta);
            if new <= 0 {
                if new < 0 {
                    return Err(
                        corrupt(Cf::BlobRefs, format!("blob {blob} count below zero")).into(),
                    );
                }
                tx.delete(&key);
                tx.delete_blob(&Key::Blob(id, blob));
                continue;
            }
            if old == 0 {
                let Some(bytes) = new_blobs.get(&blob) else {
                    return Err(corrupt(
                        Cf::BlobRefs,
                        format!("blob {blob} referenced but missing"),
                    )
                    .into());
                };
                tx.put_blob(&Key::Blob(id, blob), bytes);
            }
            let new = u64::try_from(new).map_err(|_| bug("blob count overflow"))?;
            tx.put(&key, &new)?;
        }
        Ok(())
    }
}

pub(super) fn take_uid(mbox: &mut Mailbox) -> Result<Uid, MailError> {
    let uid = mbox.uid_next;
    mbox.uid_next = uid.next().ok_or_else(|| MailError::UidsExhausted {
        name: mbox.name.clone(),
    })?;
    Ok(uid)
}

impl MailStore {
    /// The account's own quota, or the store's default.
    pub fn effective_quota(&self, account: &crate::store::Account) -> Option<u64> {
        account.quota_bytes.or(self.default_quota)
    }

    pub(super) fn check_quota(&self, rec: &AccountRecord, needed: u64) -> Result<(), MailError> {
        check_quota(
            rec.quota_bytes.or(self.default_quota),
            rec.used_bytes,
            needed,
        )
    }
}

fn check_quota(quota: Option<u64>, used: u64, needed: u64) -> Result<(), MailError> {
    match quota {
        Some(quota) if used.saturating_add(needed) > quota => Err(MailError::QuotaExceeded {
            used,
            needed,
            quota,
        }),
        _ => Ok(()),
    }
}
