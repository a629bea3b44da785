//! The commit hook: every committed change of an account is announced on
//! the [`Notifier`], naming the JMAP data types it touched.
//!
//! why here and not in the protocol layers: every change of an account
//! already goes through [`Tx::change`] (it numbers the change in the log
//! that `*/changes` and IMAP MODSEQ read), and every transaction commits
//! in one place (`txn::MailStore::transact`). Announcing from there
//! covers each writer — IMAP STORE/EXPUNGE/MOVE, JMAP `/set`, LMTP
//! deliveries and list fan-outs, the management API behind the CLI —
//! without one of them being able to forget; and the notifier's bus
//! carries the same announcement to the other nodes on a shared store.
//!
//! The announcement is made after the commit succeeded (a retried
//! attempt announces nothing), so a listener that rereads the store sees
//! the change. The notifier is attached by the ingest pipeline
//! (`Ingest::new`), the one place that holds both; a store without one
//! (offline CLI commands, migrations) announces nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError};

use super::log::{ChangeKind, ChangedObject};
use super::mail::MailStore;
use super::records::AccountId;
use super::txn::Tx;
use crate::notify::{DataTypes, Notifier};

/// What a transaction will announce once committed.
#[derive(Debug, Default)]
pub(crate) struct Announced(BTreeMap<AccountId, DataTypes>);

impl Tx {
    /// Notes that the batch changes `object` of account `id`.
    pub(crate) fn announce(&mut self, id: AccountId, object: &ChangedObject, kind: ChangeKind) {
        *self.announced.0.entry(id).or_default() |= DataTypes::of(object, kind);
    }
}

impl MailStore {
    /// Announces every later commit on `notifier` (replacing the one
    /// attached before, if any: the latest pipeline over the store).
    pub fn set_notifier(&self, notifier: Arc<Notifier>) {
        let mut slot = self
            .notifier
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *slot = Some(notifier);
    }

    /// Announces a committed transaction's changes.
    pub(crate) fn announce_committed(&self, announced: Announced) {
        if announced.0.is_empty() {
            return;
        }
        let notifier = self
            .notifier
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(notifier) = notifier {
            for (id, types) in announced.0 {
                notifier.notify(id, types);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commits_are_announced_with_their_types_and_failures_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = MailStore::open(dir.path()).unwrap();
        let notifier = Arc::new(Notifier::new());
        store.set_notifier(Arc::clone(&notifier));
        let account = store.add_account("a@example.org", None, &[]).unwrap();
        let mut rx = notifier.subscribe(account.id);
        store.create_mailbox(account.id, "Work").unwrap();
        assert_eq!(rx.try_recv().unwrap(), DataTypes::MAILBOX);
        assert!(store.create_mailbox(account.id, "Work").is_err());
        assert!(rx.try_recv().is_err(), "a refused change is not announced");
    }
}
