//! New-mail notifications: the ingest pipeline announces every change to
//! an account's mail, IMAP IDLE and JMAP push listen.
//!
//! One `tokio::sync::broadcast` channel per account that has listeners;
//! a lagging listener only learns "something changed" and rereads, which
//! is all IDLE needs.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::broadcast;

use crate::store::AccountId;

/// Capacity of each account's channel; listeners that fall further behind
/// get `Lagged` and resynchronise from the store.
const CHANNEL_CAPACITY: usize = 64;

/// Fan-out of change notifications per account.
#[derive(Debug, Default)]
pub struct Notifier {
    // why: a std Mutex, held only to look up or insert a sender, never
    // across an await.
    channels: Mutex<HashMap<AccountId, broadcast::Sender<()>>>,
}

impl Notifier {
    /// A notifier with no listeners.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens for changes of `account`.
    pub fn subscribe(&self, account: AccountId) -> broadcast::Receiver<()> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels
            .entry(account)
            .or_insert_with(|| broadcast::channel(CHANNEL_CAPACITY).0)
            .subscribe()
    }

    /// Announces a change of `account` to its listeners, if any.
    pub fn notify(&self, account: AccountId) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = channels.get(&account) {
            if tx.send(()).is_err() {
                // No listener left: forget the channel.
                channels.remove(&account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_of_one_account_hear_only_it() {
        let n = Notifier::new();
        let mut a = n.subscribe(AccountId(1));
        let mut b = n.subscribe(AccountId(2));
        n.notify(AccountId(1));
        assert!(a.recv().await.is_ok());
        assert!(b.try_recv().is_err());
    }
}
