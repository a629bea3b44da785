//! IDLE (RFC 2177, RFC 9051 §6.3.13): the session waits for either the
//! client's DONE or a change notification for its account, and on each
//! notification of a mail change (mailboxes, messages: by any session,
//! protocol or node) tells the client what changed (see `selected`).

use imap_next::imap_types::core::Tag;
use imap_next::imap_types::response::{CommandContinuationRequest, StatusKind};
use imap_next::server::Event;
use tokio::sync::broadcast;
use tracing::{debug, debug_span, Instrument};

use super::connection::{ConnectionError, Incoming};
use super::error::ImapError;
use super::session::{status, Session};
use crate::notify::DataTypes;

impl Session {
    /// RFC 2177: accept IDLE, push changes as they happen until DONE.
    pub(crate) async fn idle(&mut self, tag: Tag<'static>) -> Result<(), ConnectionError> {
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = "IDLE");
        if self.account.is_none() {
            let e = ImapError::WrongState {
                command: "IDLE",
                needed: "log in first",
            };
            let (kind, code) = e.reply();
            let _ = self
                .conn
                .server()
                .idle_reject(status(Some(tag), kind, code, &e.to_string()));
            return Ok(());
        }
        if let Ok(cont) = CommandContinuationRequest::basic(None, "idling") {
            let _ = self.conn.server().idle_accept(cont);
        }
        if let Err(e) = self.sync(true).instrument(span.clone()).await {
            self.reply_error(None, &e);
        }
        loop {
            let woke = self.wait_idle().await?;
            if let Some(event) = woke {
                if !matches!(event, Incoming::Event(Event::IdleDoneReceived)) {
                    debug!(parent: &span, "unexpected input while idling");
                }
                self.conn
                    .status(status(Some(tag), StatusKind::Ok, None, "IDLE terminated"));
                return Ok(());
            }
            if let Err(e) = self.sync(true).instrument(span.clone()).await {
                self.reply_error(None, &e);
            }
        }
    }

    /// `Some(input)` when the client spoke, `None` when the account changed.
    async fn wait_idle(&mut self) -> Result<Option<Incoming>, ConnectionError> {
        let changes = self.changes.as_mut();
        tokio::select! {
            incoming = self.conn.next(None) => Ok(Some(incoming?)),
            _ = recv_change(changes) => Ok(None),
            _ = self.stop.changed() => {
                self.bye("server shutting down").await?;
                Err(ConnectionError::Closed)
            }
        }
    }
}

/// Returns when mail of the account changed: a change of its mailboxes or
/// messages, not of its certificates or settings (nothing IMAP shows).
/// Lagged: maybe, so yes.
async fn recv_change(changes: Option<&mut broadcast::Receiver<DataTypes>>) {
    let Some(rx) = changes else {
        return std::future::pending().await;
    };
    loop {
        match rx.recv().await {
            Ok(types) if !types.intersects(DataTypes::MAIL) => continue,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return,
            // No sender left: nothing will be announced any more.
            Err(broadcast::error::RecvError::Closed) => std::future::pending().await,
        }
    }
}
