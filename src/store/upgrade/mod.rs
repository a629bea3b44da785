//! Versioned migrations of the stored data, run when the store opens.
//!
//! `meta "data_version"` (absent: 0) says which shape the records have.
//! Opening brings it to [`DATA_VERSION`], step by step; each step is
//! idempotent and made of ordinary transactions of the accounts (`txn`),
//! so an interrupted run resumes where it stopped, and two PostgreSQL
//! nodes opening the same database at once both finish with the same
//! result (a record one of them upgraded is skipped by the other, read
//! again inside its transaction).
//!
//! Step 1 (Email ids, RFC 8621 §4.1.1, and threads, §3): every message
//! record of version 1 gets an Email id, allocated as a change id of its
//! account (the account's modseq is bumped, without a log entry, so no
//! id is ever given twice), a thread (`threads` module, in mailbox and
//! UID order) and its `emails`, `threads` and `message_ids` entries.
//! Change-log entries written before keep naming `mailbox uid`: JMAP
//! `Email/changes` and `Thread/changes` from a state before the upgrade
//! answer `cannotCalculateChanges`, and the client fetches afresh.
//!
//! Every node sharing a PostgreSQL database must run this version or a
//! later one: an older one cannot read version 2 message records (it
//! says so, naming the record version, instead of guessing).

use super::error::MailError;
use super::keys::{self, Key};
use super::mail::MailStore;
use super::message_record::MessageV1;
use super::records::{decode, AccountId, MailboxId, Record, Uid};
use super::threads::Threader;
use super::txn::Tx;
use super::{Batch, Cf, Order};

/// The shape this sealmail writes.
pub(crate) const DATA_VERSION: u32 = 1;

/// Message records read per page, and upgraded per transaction.
const PAGE: usize = 500;

impl MailStore {
    /// Brings the stored data to the shape this sealmail writes (module
    /// doc); a no-op when it is there already. Called by every open.
    pub fn upgrade(&self) -> Result<(), MailError> {
        let found = self.load::<u32>(&Key::DataVersion)?.unwrap_or(0);
        if found >= DATA_VERSION {
            return Ok(());
        }
        let mut upgraded = 0u64;
        for account in self.list_accounts()? {
            upgraded += self.upgrade_account(account.id)?;
        }
        let mut batch = Batch::new();
        batch.put(
            Cf::Meta,
            Key::DataVersion.encode(),
            super::records::encode(&DATA_VERSION)?,
        );
        self.store.write(batch)?;
        tracing::info!(
            from = found,
            to = DATA_VERSION,
            messages = upgraded,
            "stored data upgraded"
        );
        Ok(())
    }

    /// Step 1 for one account; returns how many records it upgraded.
    fn upgrade_account(&self, id: AccountId) -> Result<u64, MailError> {
        let mut done = 0u64;
        for mailbox in self.list_mailboxes(id)? {
            let mut after: Option<Uid> = None;
            loop {
                let range = keys::messages_range(id, mailbox.id, after);
                let rows = self
                    .store
                    .scan(Cf::Messages, &range, Order::Forward, PAGE)?;
                let mut old = Vec::new();
                for (key, value) in &rows {
                    let Some(Key::Message(_, _, uid)) = Key::decode(Cf::Messages, key) else {
                        continue;
                    };
                    after = Some(uid);
                    if value.first() == Some(&<MessageV1 as Record>::VERSION) {
                        old.push(uid);
                    }
                }
                if !old.is_empty() {
                    done += self
                        .update_account(id, |tx| self.upgrade_messages(tx, id, mailbox.id, &old))?;
                }
                if rows.len() < PAGE {
                    break;
                }
            }
        }
        Ok(done)
    }

    fn upgrade_messages(
        &self,
        tx: &mut Tx,
        id: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<u64, MailError> {
        let mut rec = self.account_record(id)?;
        let mut threader = Threader::default();
        let mut done = 0;
        for &uid in uids {
            let key = Key::Message(id, mailbox, uid);
            let Some(bytes) = self.store.get(Cf::Messages, &key.encode())? else {
                continue;
            };
            if bytes.first() != Some(&<MessageV1 as Record>::VERSION) {
                continue;
            }
            let old: MessageV1 = decode(Cf::Messages, &bytes)?;
            let email_id = Tx::next_change_id(&rec)?;
            rec.modseq = email_id;
            let thread_id = threader.assign(self, tx, id, &old.headers, email_id)?;
            let msg = old.upgraded(email_id, thread_id);
            tx.put(&key, &msg)?;
            self.put_email_index(tx, id, &msg)?;
            done += 1;
        }
        if done > 0 {
            tx.put(&Key::Account(id), &rec)?;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
