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

#[cfg(test)]
mod tests {
    use super::MAX_KEPT;
    use crate::store::MailStore;

    fn store() -> (tempfile::TempDir, MailStore) {
        let dir = tempfile::tempdir().unwrap();
        let mail = MailStore::open(dir.path()).unwrap();
        (dir, mail)
    }

    /// RFC 3501 §6.3.6: kept on DELETE of a subscribed mailbox only,
    /// taken back by CREATE (parents too), ended by unsubscribe_name, and
    /// removed with the account.
    #[test]
    fn kept_taken_back_and_ended() {
        let (_dir, mail) = store();
        let id = mail.add_account("a@example.org", None, &[]).unwrap().id;
        let sub = mail.create_mailbox(id, "p/sub").unwrap();
        let plain = mail.create_mailbox(id, "plain").unwrap();
        mail.set_subscribed(id, plain.id, false).unwrap();
        mail.delete_mailbox(id, sub.id).unwrap();
        mail.delete_mailbox(id, plain.id).unwrap();
        let parent = mail.mailbox_by_name(id, "p").unwrap();
        mail.delete_mailbox(id, parent.id).unwrap();
        let kept = mail.subscriptions_without_mailbox(id).unwrap();
        assert_eq!(kept, ["p/sub", "p"]);
        let again = mail.create_mailbox(id, "p/sub").unwrap();
        assert!(again.subscribed);
        assert!(mail.subscriptions_without_mailbox(id).unwrap().is_empty());
        mail.delete_mailbox(id, again.id).unwrap();
        assert!(mail.unsubscribe_name(id, "p/sub").unwrap());
        assert!(!mail.unsubscribe_name(id, "p/sub").unwrap());
        mail.create_mailbox(id, "x").unwrap();
        let x = mail.mailbox_by_name(id, "x").unwrap();
        mail.delete_mailbox(id, x.id).unwrap();
        assert_eq!(mail.subscriptions_without_mailbox(id).unwrap(), ["x"]);
        mail.remove_account(id).unwrap();
        assert!(mail.subscriptions_without_mailbox(id).unwrap().is_empty());
    }

    /// Creating and deleting in a loop keeps at most MAX_KEPT names.
    #[test]
    fn bounded() {
        let (_dir, mail) = store();
        let id = mail.add_account("a@example.org", None, &[]).unwrap().id;
        for i in 0..=MAX_KEPT {
            let m = mail.create_mailbox(id, &format!("m{i}")).unwrap();
            mail.delete_mailbox(id, m.id).unwrap();
        }
        let kept = mail.subscriptions_without_mailbox(id).unwrap();
        assert_eq!(kept.len(), MAX_KEPT);
        assert_eq!(kept.first().map(String::as_str), Some("m1"));
    }
}
