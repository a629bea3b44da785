//! Subscriptions that outlive their mailbox (RFC 3501 §6.3.6, RFC 9051
//! §6.3.7: the server "MUST NOT unilaterally remove an existing mailbox
//! name from the subscription list even if a mailbox by that name no
//! longer exists").
//!
//! A mailbox's own subscription is its record's `subscribed` flag (what
//! JMAP's `isSubscribed` shows). When a subscribed mailbox is deleted its
//! name moves to this per-account list, kept beside the account's
//! settings; IMAP LSUB and `LIST (SUBSCRIBED)` show it (the latter as
//! `\NonExistent`, RFC 5258 §3), UNSUBSCRIBE removes it, and creating a
//! mailbox of that name again takes the subscription back.

use serde::{Deserialize, Serialize};

use super::error::MailError;
use super::keys::Key;
use super::mail::MailStore;
use super::records::{AccountId, Record};
use super::txn::Tx;

/// Names kept per account; the oldest go first beyond this, so that
/// creating and deleting mailboxes in a loop cannot grow the record
/// without bound.
const MAX_KEPT: usize = 1000;

/// Value of [`Key::Subscriptions`]: subscribed names without a mailbox,
/// oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Orphans(pub(crate) Vec<String>);

impl Record for Orphans {
    const VERSION: u8 = 1;
}

impl MailStore {
    /// The names the account subscribed whose mailbox no longer exists.
    pub fn subscriptions_without_mailbox(&self, id: AccountId) -> Result<Vec<String>, MailError> {
        Ok(self
            .load::<Orphans>(&Key::Subscriptions(id))?
            .unwrap_or_default()
            .0)
    }

    /// Removes `name` from the subscriptions without a mailbox; whether
    /// it was there.
    pub fn unsubscribe_name(&self, id: AccountId, name: &str) -> Result<bool, MailError> {
        self.update_account(id, |tx| {
            let mut orphans = self.subscriptions_without_mailbox(id)?;
            let before = orphans.len();
            orphans.retain(|n| n != name);
            let found = orphans.len() != before;
            if found {
                tx.put(&Key::Subscriptions(id), &Orphans(orphans))?;
            }
            Ok(found)
        })
    }

    /// In `tx`: the subscribed mailbox `name` is being deleted.
    pub(crate) fn stage_orphan(
        &self,
        tx: &mut Tx,
        id: AccountId,
        name: &str,
    ) -> Result<(), MailError> {
        let mut orphans = self.subscriptions_without_mailbox(id)?;
        orphans.retain(|n| n != name);
        orphans.push(name.to_string());
        let over = orphans.len().saturating_sub(MAX_KEPT);
        orphans.drain(..over);
        tx.put(&Key::Subscriptions(id), &Orphans(orphans))
    }

    /// In `tx`: mailboxes called `names` are being created; those that
    /// were subscribed before are taken off the list. Returns them.
    pub(crate) fn stage_adopt(
        &self,
        tx: &mut Tx,
        id: AccountId,
        names: &[String],
    ) -> Result<Vec<String>, MailError> {
        let mut orphans = self.subscriptions_without_mailbox(id)?;
        let adopted: Vec<String> = orphans
            .iter()
            .filter(|n| names.contains(n))
            .cloned()
            .collect();
        if !adopted.is_empty() {
            orphans.retain(|n| !names.contains(n));
            tx.put(&Key::Subscriptions(id), &Orphans(orphans))?;
        }
        Ok(adopted)
    }
}
