//! The [`ChangeBus`] of nodes sharing one PostgreSQL store: PostgreSQL's
//! `LISTEN`/`NOTIFY` on the channel `sealmail_changes`.
//!
//! Each node publishes `NODE:ACCOUNT:TYPES` (decimal; `TYPES` the bits of
//! [`DataTypes`]) for every announcement and listens on a connection of
//! its own; what another node announced is handed to
//! [`Notifier::notify_local`], its own echo is ignored. A payload without
//! `:TYPES` (a node of an older version during an upgrade) means every
//! type. A
//! notification is delivered only to sessions connected when it is sent,
//! so a listener that lost its connection wakes every local listener once
//! it is back (they reread the store), and so does an overflow of the
//! outgoing queue (`*` is "every account").
//!
//! why NOTIFY and not a table the nodes poll: NOTIFY is sent at commit,
//! costs no writes, and wakes an IDLE on another node within milliseconds.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::poll_fn;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{ChangeBus, DataTypes, Notifier};
use crate::store::AccountId;

/// The channel name.
const CHANNEL: &str = "sealmail_changes";

/// Announcements queued for sending before the queue counts as overflowed.
const QUEUE: usize = 65_536;

/// Wait before reconnecting after the server went away.
const RECONNECT: Duration = Duration::from_secs(1);

/// Publishes this node's announcements; see the module documentation.
#[derive(Debug)]
pub struct PgBus {
    node: u64,
    queue: mpsc::Sender<(AccountId, DataTypes)>,
    overflowed: Arc<std::sync::atomic::AtomicBool>,
}

impl ChangeBus for PgBus {
    fn publish(&self, account: AccountId, types: DataTypes) {
        if self.queue.try_send((account, types)).is_err() {
            self.overflowed
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl PgBus {
    /// Starts the bus for `notifier` on the server at `url` (two
    /// connections: one listens, one sends) and installs it. Must run
    /// inside the tokio runtime; reconnects by itself for ever.
    pub fn install(url: &str, notifier: &Arc<Notifier>) {
        let node = rand::random::<u64>();
        let (queue, rx) = mpsc::channel(QUEUE);
        let overflowed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        tokio::spawn(listen(url.to_owned(), node, Arc::downgrade(notifier)));
        tokio::spawn(send(url.to_owned(), node, rx, Arc::clone(&overflowed)));
        let bus = PgBus {
            node,
            queue,
            overflowed,
        };
        if notifier.set_bus(Box::new(bus)).is_err() {
            tracing::warn!("a change bus was already installed; the PostgreSQL bus is not used");
        }
    }

    /// This node's id in the payloads.
    pub fn node(&self) -> u64 {
        self.node
    }
}

/// The payload for `types` of `account` from `node`, or for every account.
fn payload(node: u64, account: Option<(AccountId, DataTypes)>) -> String {
    match account {
        Some((a, types)) => format!("{node}:{}:{}", a.0, types.bits()),
        None => format!("{node}:*"),
    }
}

/// What a payload asks of this node: `None` for our own echo or garbage,
/// `Some(None)` for every account.
fn parse(payload: &str, me: u64) -> Option<Option<(AccountId, DataTypes)>> {
    let (node, rest) = payload.split_once(':')?;
    if node.parse::<u64>().ok()? == me {
        return None;
    }
    if rest == "*" {
        return Some(None);
    }
    let (account, types) = match rest.split_once(':') {
        Some((account, bits)) => (account, DataTypes::from_bits(bits.parse().ok()?)),
        None => (rest, DataTypes::ALL),
    };
    account
        .parse::<u32>()
        .ok()
        .map(|a| Some((AccountId(a), types)))
}

async fn listen(url: String, me: u64, notifier: Weak<Notifier>) {
    loop {
        match listen_once(&url, me, &notifier).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "change bus: listening connection lost; reconnecting")
            }
        }
        tokio::time::sleep(RECONNECT).await;
        let Some(n) = notifier.upgrade() else { return };
        // why: announcements sent while we were away are lost for us.
        n.notify_all_local();
    }
}

/// Listens until the connection fails (`Err`) or the notifier is gone.
async fn listen_once(
    url: &str,
    me: u64,
    notifier: &Weak<Notifier>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        while let Some(message) = poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        return Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    while let Some(text) = rx.recv().await {
        let Some(n) = notifier.upgrade() else {
            return Ok(());
        };
        match parse(&text, me) {
            Some(Some((account, types))) => n.notify_local(account, types),
            Some(None) => n.notify_all_local(),
            None => {}
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

async fn send(
    url: String,
    me: u64,
    mut rx: mpsc::Receiver<(AccountId, DataTypes)>,
    overflowed: Arc<std::sync::atomic::AtomicBool>,
) {
    let mut pending: Vec<String> = Vec::new();
    loop {
        let client = match tokio_postgres::connect(&url, NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                client
            }
            Err(e) => {
                tracing::warn!(error = %e, "change bus: cannot connect to send; retrying");
                tokio::time::sleep(RECONNECT).await;
                continue;
            }
        };
        // why: PostgreSQL gives a transaction that notifies a transaction
        // id, so its commit waits for a WAL flush, which the deliveries'
        // own synced commits then queue behind. A notification carries no
        // data (a crash loses the queued ones anyway, and listeners reread
        // the store on reconnect), so this connection's commits need not
        // wait. Nothing else is written on it.
        if let Err(e) = client.batch_execute("SET synchronous_commit TO off").await {
            tracing::warn!(error = %e, "change bus: cannot set up the sending connection; reconnecting");
            tokio::time::sleep(RECONNECT).await;
            continue;
        }
        loop {
            if pending.is_empty() {
                let Some(first) = rx.recv().await else { return };
                let mut accounts = vec![first];
                while let Ok(next) = rx.try_recv() {
                    accounts.push(next);
                }
                let accounts = merged(accounts);
                if overflowed.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    pending.push(payload(me, None));
                }
                pending.extend(accounts.into_iter().map(|a| payload(me, Some(a))));
            }
            let sent = client
                .execute(
                    "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                    &[&CHANNEL, &pending],
                )
                .await;
            match sent {
                Ok(_) => pending.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, "change bus: sending failed; reconnecting");
                    break;
                }
            }
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// One entry per account, with the union of its types, in account order.
fn merged(mut announced: Vec<(AccountId, DataTypes)>) -> Vec<(AccountId, DataTypes)> {
    announced.sort_unstable_by_key(|(a, _)| *a);
    let mut out: Vec<(AccountId, DataTypes)> = Vec::with_capacity(announced.len());
    for (account, types) in announced {
        match out.last_mut() {
            Some((last, union)) if *last == account => *union |= types,
            _ => out.push((account, types)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_our_echo_is_ignored() {
        let email = (AccountId(42), DataTypes::EMAIL);
        assert_eq!(parse(&payload(7, Some(email)), 8), Some(Some(email)));
        assert_eq!(parse(&payload(7, None), 8), Some(None));
        assert_eq!(parse(&payload(7, Some(email)), 7), None);
        // An older node's payload names no types: every type.
        assert_eq!(
            parse("7:42", 8),
            Some(Some((AccountId(42), DataTypes::ALL)))
        );
        for junk in [
            "",
            "7",
            "x:1",
            "7:",
            "7:-1",
            "7:99999999999",
            "7:1:",
            "7:1:x",
            "7:1:256",
        ] {
            assert_eq!(parse(junk, 8), None, "{junk}");
        }
    }

    #[test]
    fn queued_announcements_merge_per_account() {
        let (a, b) = (AccountId(1), AccountId(2));
        assert_eq!(
            merged(vec![
                (b, DataTypes::EMAIL),
                (a, DataTypes::CERTIFICATE),
                (b, DataTypes::MAILBOX),
            ]),
            vec![
                (a, DataTypes::CERTIFICATE),
                (b, DataTypes::EMAIL | DataTypes::MAILBOX)
            ]
        );
    }
}
