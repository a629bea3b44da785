//! Mailboxes with IMAP semantics (RFC 9051 §5.1, §6.3.4–6.3.6).
//!
//! Names are full paths with `/` as the hierarchy separator; `INBOX` is
//! case-insensitive and stored upper case. Creating `a/b/c` creates the
//! missing superiors, as RFC 9051 §6.3.4 suggests. Each mailbox gets a
//! fresh UIDVALIDITY from a per-account counter (seeded with the account's
//! creation time), so a name deleted and created again never reuses one.
//! Renaming moves the inferiors with it; renaming or deleting INBOX is
//! refused, and so is deleting a mailbox that has children (JMAP
//! `mailboxHasChild`). The naming rules are in `mailbox_name`.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use super::accounts::AccountRecord;
use super::error::{bug, MailError};
use super::keys::{self, Key};
use super::log::{ChangeKind, ChangedObject};
use super::mail::MailStore;
use super::mailbox_name::{fold_inbox, normalize_mailbox_name};
use super::records::{AccountId, Mailbox, MailboxId, MailboxRole, Record, Uid};
use super::txn::Tx;
use super::{Cf, Order};

/// Value of [`Cf::MailboxNames`].
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct MailboxIdRecord(pub(crate) MailboxId);

impl Record for MailboxIdRecord {
    const VERSION: u8 = 1;
}

impl MailStore {
    /// Adds a new mailbox `name` (already normalised, known to be free) to
    /// `tx`, allocating its id and UIDVALIDITY from `rec`.
    pub(crate) fn new_mailbox(
        &self,
        tx: &mut Tx,
        id: AccountId,
        rec: &mut AccountRecord,
        name: String,
        parent: Option<MailboxId>,
        role: Option<MailboxRole>,
    ) -> Result<Mailbox, MailError> {
        let mbox = MailboxId(rec.next_mailbox_id);
        rec.next_mailbox_id = mbox
            .0
            .checked_add(1)
            .ok_or_else(|| bug("mailbox ids exhausted"))?;
        let uid_validity = NonZeroU32::new(rec.next_uid_validity).unwrap_or(NonZeroU32::MIN);
        rec.next_uid_validity = uid_validity.get().wrapping_add(1).max(1);
        let modseq = tx.change(id, rec, ChangeKind::Created, ChangedObject::Mailbox(mbox))?;
        let mailbox = Mailbox {
            id: mbox,
            name,
            parent,
            uid_validity,
            uid_next: Uid::FIRST,
            highest_modseq: modseq,
            role,
            subscribed: true,
            exists: 0,
        };
        tx.put(&Key::Mailbox(id, mbox), &mailbox)?;
        tx.put(
            &Key::MailboxName(id, mailbox.name.clone()),
            &MailboxIdRecord(mbox),
        )?;
        Ok(mailbox)
    }

    /// Creates `name` and any missing superiors; returns the new mailbox.
    pub fn create_mailbox(&self, id: AccountId, name: &str) -> Result<Mailbox, MailError> {
        let name = normalize_mailbox_name(name)?;
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            if self.mailbox_id(id, &name)?.is_some() {
                return Err(MailError::MailboxExists { name: name.clone() });
            }
            let mut missing = Vec::new();
            for (i, _) in name.match_indices('/') {
                let path = name.get(..i).ok_or_else(|| bug("separator index"))?;
                if self.mailbox_id(id, path)?.is_none() {
                    missing.push(path.to_string());
                }
            }
            missing.push(name.clone());
            let parent = self.ensure_parents(tx, id, &mut rec, &name)?;
            let mailbox = self.new_mailbox(tx, id, &mut rec, name.clone(), parent, None)?;
            // A name subscribed before its mailbox was deleted is
            // subscribed again (`subscriptions`); new mailboxes are
            // subscribed anyway.
            self.stage_adopt(tx, id, &missing)?;
            tx.put(&Key::Account(id), &rec)?;
            Ok(mailbox)
        })
    }

    /// Creates the missing superiors of `name` in `tx`; returns the id of
    /// its direct parent.
    fn ensure_parents(
        &self,
        tx: &mut Tx,
        id: AccountId,
        rec: &mut AccountRecord,
        name: &str,
    ) -> Result<Option<MailboxId>, MailError> {
        let mut parent = None;
        for (i, _) in name.match_indices('/') {
            let path = name.get(..i).ok_or_else(|| bug("separator index"))?;
            parent = Some(match self.mailbox_id(id, path)? {
                Some(existing) => existing,
                None => {
                    self.new_mailbox(tx, id, rec, path.to_string(), parent, None)?
                        .id
                }
            });
        }
        Ok(parent)
    }

    /// Renames a mailbox and its inferiors.
    pub fn rename_mailbox(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        new_name: &str,
    ) -> Result<Mailbox, MailError> {
        let new_name = normalize_mailbox_name(new_name)?;
        self.update_account(id, |tx| self.stage_rename(tx, id, mailbox, &new_name))
    }

    /// Adds the rename of `mailbox` and its inferiors to `tx`.
    fn stage_rename(
        &self,
        tx: &mut Tx,
        id: AccountId,
        mailbox: MailboxId,
        new_name: &str,
    ) -> Result<Mailbox, MailError> {
        let mut rec = self.account_record(id)?;
        let mut root = self.get_mailbox(id, mailbox)?;
        let old_name = root.name.clone();
        if old_name == "INBOX" {
            return Err(MailError::InboxProtected);
        }
        if new_name == old_name {
            return Ok(root);
        }
        if new_name.starts_with(&format!("{old_name}/")) {
            return Err(MailError::InvalidMailboxName {
                name: new_name.to_string(),
                reason: "a mailbox cannot be moved under itself",
            });
        }
        if self.mailbox_id(id, new_name)?.is_some() {
            return Err(MailError::MailboxExists {
                name: new_name.to_string(),
            });
        }
        let children = self.scan_records::<MailboxIdRecord>(
            Cf::MailboxNames,
            &keys::children_range(id, &old_name),
            Order::Forward,
            usize::MAX,
        )?;
        root.parent = self.ensure_parents(tx, id, &mut rec, new_name)?;
        let mut moved = vec![(root, new_name.to_string())];
        for (_, MailboxIdRecord(child)) in children {
            let child = self.get_mailbox(id, child)?;
            let suffix = child
                .name
                .get(old_name.len()..)
                .unwrap_or_default()
                .to_string();
            moved.push((child, format!("{new_name}{suffix}")));
        }
        let mut renamed_root = None;
        for (mut mbox, name) in moved {
            tx.delete(&Key::MailboxName(id, mbox.name.clone()));
            mbox.name = name;
            tx.put(
                &Key::MailboxName(id, mbox.name.clone()),
                &MailboxIdRecord(mbox.id),
            )?;
            tx.change(
                id,
                &mut rec,
                ChangeKind::Updated,
                ChangedObject::Mailbox(mbox.id),
            )?;
            tx.put(&Key::Mailbox(id, mbox.id), &mbox)?;
            renamed_root.get_or_insert(mbox);
        }
        tx.put(&Key::Account(id), &rec)?;
        renamed_root.ok_or_else(|| bug("rename lost its root").into())
    }

    /// Deletes a mailbox and its messages (blobs whose last message goes
    /// are deleted too). Refused for INBOX and for a mailbox with children.
    pub fn delete_mailbox(&self, id: AccountId, mailbox: MailboxId) -> Result<(), MailError> {
        self.update_account(id, |tx| self.stage_delete_mailbox(tx, id, mailbox))
    }

    fn stage_delete_mailbox(
        &self,
        tx: &mut Tx,
        id: AccountId,
        mailbox: MailboxId,
    ) -> Result<(), MailError> {
        let mut rec = self.account_record(id)?;
        let mbox = self.get_mailbox(id, mailbox)?;
        if mbox.name == "INBOX" {
            return Err(MailError::InboxProtected);
        }
        let children = keys::children_range(id, &mbox.name);
        if !self
            .store
            .scan(Cf::MailboxNames, &children, Order::Forward, 1)?
            .is_empty()
        {
            return Err(MailError::MailboxHasChildren { name: mbox.name });
        }
        let mut blobs = super::message::BlobDeltas::default();
        let mut tally = super::threads::ThreadTally::default();
        for msg in self.list_messages(id, mailbox, None, usize::MAX)? {
            tx.delete(&Key::Message(id, mailbox, msg.uid));
            blobs.add(msg.blob, -1);
            rec.used_bytes = rec.used_bytes.saturating_sub(msg.size);
            self.stage_email_removal(tx, id, &mut rec, &msg, &mut tally)?;
        }
        self.apply_blob_deltas(tx, id, blobs, &Default::default())?;
        if mbox.subscribed {
            // RFC 3501 §6.3.6: the subscription stays (`subscriptions`).
            self.stage_orphan(tx, id, &mbox.name)?;
        }
        tx.delete(&Key::Mailbox(id, mailbox));
        tx.delete(&Key::MailboxName(id, mbox.name));
        tx.change(
            id,
            &mut rec,
            ChangeKind::Destroyed,
            ChangedObject::Mailbox(mailbox),
        )?;
        tx.put(&Key::Account(id), &rec)
    }

    /// Sets the subscribed flag.
    pub fn set_subscribed(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        subscribed: bool,
    ) -> Result<(), MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let mut mbox = self.get_mailbox(id, mailbox)?;
            mbox.subscribed = subscribed;
            tx.change(
                id,
                &mut rec,
                ChangeKind::Updated,
                ChangedObject::Mailbox(mailbox),
            )?;
            tx.put(&Key::Mailbox(id, mailbox), &mbox)?;
            tx.put(&Key::Account(id), &rec)
        })
    }

    /// The mailbox `mailbox` of the account.
    pub fn get_mailbox(&self, id: AccountId, mailbox: MailboxId) -> Result<Mailbox, MailError> {
        self.load(&Key::Mailbox(id, mailbox))?
            .ok_or_else(|| MailError::MailboxNotFound {
                mailbox: format!("#{mailbox}"),
            })
    }

    /// The mailbox called `name` (any case for INBOX).
    pub fn mailbox_by_name(&self, id: AccountId, name: &str) -> Result<Mailbox, MailError> {
        let not_found = || MailError::MailboxNotFound {
            mailbox: name.to_string(),
        };
        // why: no name rules here, so a mailbox an older version stored under
        // a name now refused can still be renamed or deleted.
        let mbox = self
            .mailbox_id(id, &fold_inbox(name))?
            .ok_or_else(not_found)?;
        self.get_mailbox(id, mbox)
    }

    /// Every mailbox of the account, in id order.
    pub fn list_mailboxes(&self, id: AccountId) -> Result<Vec<Mailbox>, MailError> {
        self.account_record(id)?;
        let rows = self.scan_records::<Mailbox>(
            Cf::Mailboxes,
            &keys::account_range(id),
            Order::Forward,
            usize::MAX,
        )?;
        Ok(rows.into_iter().map(|(_, m)| m).collect())
    }

    pub(crate) fn mailbox_id(
        &self,
        id: AccountId,
        name: &str,
    ) -> Result<Option<MailboxId>, MailError> {
        let rec = self.load::<MailboxIdRecord>(&Key::MailboxName(id, name.to_string()))?;
        Ok(rec.map(|r| r.0))
    }
}
