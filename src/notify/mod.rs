//! Change notifications: the store announces every committed change of
//! an account (its commit hook, `store::announce`), IMAP IDLE and JMAP
//! push (event source, WebSocket) listen.
//!
//! One `tokio::sync::broadcast` channel per account that has listeners,
//! carrying the [`DataTypes`] each change touched; a lagging listener
//! only learns "something changed" and rereads (as if every type had
//! changed), which is all IDLE and a push need.
//!
//! Several nodes on one shared store: a [`ChangeBus`] carries every
//! announcement to the other nodes, whose bus calls
//! [`Notifier::notify_local`] there (the PostgreSQL engine's bus is
//! `LISTEN`/`NOTIFY`). Listeners cannot tell a local change from a remote
//! one, and need not: both mean "reread the store".

mod pg_bus;
mod types;

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use tokio::sync::broadcast;

use crate::store::AccountId;

pub use pg_bus::PgBus;
pub use types::DataTypes;

/// Capacity of each account's channel; listeners that fall further behind
/// get `Lagged` and resynchronise from the store.
const CHANNEL_CAPACITY: usize = 64;

/// Carries announcements to the other nodes sharing the store.
pub trait ChangeBus: Send + Sync + std::fmt::Debug {
    /// Tells the other nodes that `types` of `account` changed. Must not
    /// block: an announcement that cannot be sent now is queued or
    /// dropped (the other nodes' listeners also resynchronise on
    /// reconnect).
    fn publish(&self, account: AccountId, types: DataTypes);
}

/// Fan-out of change notifications per account.
#[derive(Debug, Default)]
pub struct Notifier {
    // why: a std Mutex, held only to look up or insert a sender, never
    // across an await.
    channels: Mutex<HashMap<AccountId, broadcast::Sender<DataTypes>>>,
    bus: OnceLock<Box<dyn ChangeBus>>,
}

impl Notifier {
    /// A notifier with no listeners.
    pub fn new() -> Self {
        Self::default()
    }

    /// Listens for changes of `account`: each message names the types
    /// that changed (`Lagged`: assume all of them).
    pub fn subscribe(&self, account: AccountId) -> broadcast::Receiver<DataTypes> {
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

    /// Announces a change of `types` of `account` to its listeners on
    /// this node and, through the bus, on the others. The store's commit
    /// hook calls it; nothing else needs to.
    pub fn notify(&self, account: AccountId, types: DataTypes) {
        self.notify_local(account, types);
        if let Some(bus) = self.bus.get() {
            bus.publish(account, types);
        }
    }

    /// Wakes every listener of every account on this node: after the bus
    /// lost its connection, announcements may have been missed.
    pub fn notify_all_local(&self) {
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for tx in channels.values() {
            let _ = tx.send(DataTypes::ALL);
        }
    }

    /// Announces a change of `account` to its listeners on this node only
    /// (what a bus does with another node's announcement).
    pub fn notify_local(&self, account: AccountId, types: DataTypes) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = channels.get(&account) {
            if tx.send(types).is_err() {
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
        n.notify(AccountId(1), DataTypes::CERTIFICATE);
        assert_eq!(a.recv().await.unwrap(), DataTypes::CERTIFICATE);
        assert!(b.try_recv().is_err());
    }

    #[derive(Debug, Default)]
    struct Recorded(Mutex<Vec<(AccountId, DataTypes)>>);

    impl ChangeBus for std::sync::Arc<Recorded> {
        fn publish(&self, account: AccountId, types: DataTypes) {
            self.0.lock().unwrap().push((account, types));
        }
    }

    #[tokio::test]
    async fn announcements_reach_the_bus_but_remote_ones_are_not_echoed() {
        let n = Notifier::new();
        let sent = std::sync::Arc::new(Recorded::default());
        n.set_bus(Box::new(sent.clone())).unwrap();
        let mut a = n.subscribe(AccountId(1));
        n.notify(AccountId(1), DataTypes::EMAIL);
        n.notify_local(AccountId(1), DataTypes::MAILBOX);
        assert_eq!(a.recv().await.unwrap(), DataTypes::EMAIL);
        assert_eq!(a.recv().await.unwrap(), DataTypes::MAILBOX);
        assert_eq!(
            *sent.0.lock().unwrap(),
            vec![(AccountId(1), DataTypes::EMAIL)]
        );
        assert!(n.set_bus(Box::new(sent.clone())).is_err());
        n.notify_all_local();
        assert_eq!(a.recv().await.unwrap(), DataTypes::ALL);
    }
}
