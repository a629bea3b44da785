//! New-mail notifications: the ingest pipeline announces every change to
//! an account's mail, IMAP IDLE and JMAP push listen.
//!
//! One `tokio::sync::broadcast` channel per account that has listeners;
//! a lagging listener only learns "something changed" and rereads, which
//! is all IDLE needs.
//!
//! Several nodes on one shared store: a [`ChangeBus`] carries every
//! announcement to the other nodes, whose bus calls
//! [`Notifier::notify_local`] there (the PostgreSQL engine's bus is
//! `LISTEN`/`NOTIFY`). Listeners cannot tell a local change from a remote
//! one, and need not: both mean "reread the store".

mod pg_bus;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tokio::sync::broadcast;

use crate::store::AccountId;

pub use pg_bus::PgBus;

/// Capacity of each account's channel; listeners that fall further behind
/// get `Lagged` and resynchronise from the store.
const CHANNEL_CAPACITY: usize = 64;

/// Carries announcements to the other nodes sharing the store.
pub trait ChangeBus: Send + Sync + std::fmt::Debug {
    /// Tells the other nodes that `account` changed. Must not block: an
    /// announcement that cannot be sent now is queued or dropped (the
    /// other nodes' listeners also resynchronise on reconnect).
    fn publish(&self, account: AccountId);
}

/// Fan-out of change notifications per account.
#[derive(Debug, Default)]
pub struct Notifier {
    // why: a std Mutex, held only to look up or insert a sender, never
    // across an await.
    channels: Mutex<HashMap<AccountId, broadcast::Sender<()>>>,
    bus: OnceLock<Box<dyn ChangeBus>>,
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

    /// Sends every later announcement to the other nodes through `bus`
    /// too. Set once, at start; a second bus is refused (returned).
    pub fn set_bus(&self, bus: Box<dyn ChangeBus>) -> Result<(), Box<dyn ChangeBus>> {
        self.bus.set(bus)
    }

    /// Announces a change of `account` to its listeners on this node and,
    /// through the bus, on the others.
    pub fn notify(&self, account: AccountId) {
        self.notify_local(account);
        if let Some(bus) = self.bus.get() {
            bus.publish(account);
        }
    }

    /// Wakes every listener of every account on this node: after the bus
    /// lost its connection, announcements may have been missed.
    pub fn notify_all_local(&self) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for tx in channels.values() {
            let _ = tx.send(());
        }
    }

    /// Announces a change of `account` to its listeners on this node only
    /// (what a bus does with another node's announcement).
    pub fn notify_local(&self, account: AccountId) {
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

    #[derive(Debug, Default)]
    struct Recorded(Mutex<Vec<AccountId>>);

    impl ChangeBus for std::sync::Arc<Recorded> {
        fn publish(&self, account: AccountId) {
            self.0.lock().unwrap().push(account);
        }
    }

    #[tokio::test]
    async fn announcements_reach_the_bus_but_remote_ones_are_not_echoed() {
        let n = Notifier::new();
        let sent = std::sync::Arc::new(Recorded::default());
        n.set_bus(Box::new(sent.clone())).unwrap();
        let mut a = n.subscribe(AccountId(1));
        n.notify(AccountId(1));
        n.notify_local(AccountId(1));
        assert!(a.recv().await.is_ok());
        assert!(a.recv().await.is_ok());
        assert_eq!(*sent.0.lock().unwrap(), vec![AccountId(1)]);
        assert!(n.set_bus(Box::new(sent.clone())).is_err());
        n.notify_all_local();
        assert!(a.recv().await.is_ok());
    }
}
