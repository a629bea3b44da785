//! Push over an event source (RFC 8620 §7.3, Server-Sent Events): a
//! `StateChange` (§7.1) whenever the account changes, and `ping` events
//! at the interval the client asks for.
//!
//! What changed comes from the [`crate::notify::Notifier`], on which the
//! store announces every committed change of the account with the data
//! types it touched (`store::announce`): new mail, flag changes, moves
//! and expunges from IMAP, `/set` of any type, certificate and encryption
//! changes made with the CLI, and the same from other nodes on a shared
//! store. A change a client made itself through `/set` is pushed too:
//! RFC 8620 does not exempt it, and the user's other clients need it.
//!
//! An event names only the types that changed, each with the account's
//! state (every type's state is the one account counter); the `types`
//! parameter (`*` or a comma-separated list of type names) keeps only
//! those, and a change of none of them sends nothing. Announcements that
//! queue up while one is being read are merged into one event.
//!
//! The body is fed by a task through an mpsc channel, so it ends when the
//! client goes away (the send fails) or after the first event with
//! `closeafter=state`. The WebSocket push (`ws`) shares [`next_change`]
//! and [`state_change`].

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use hyper::body::Frame;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};

use super::auth::{authenticate, Peer};
use super::{ids, Server};
use crate::notify::DataTypes;
use crate::store::{Account, AccountId};

/// Shortest ping interval honoured (seconds), as §7.3 allows.
const MIN_PING: u64 = 5;

/// Query of `eventSourceUrl`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventQuery {
    #[serde(default)]
    types: Option<String>,
    #[serde(default)]
    closeafter: Option<String>,
    #[serde(default)]
    ping: Option<u64>,
}

/// The types a `types` parameter asks for: all for `*` or none given,
/// else the named ones (names this server does not push are ignored).
fn wanted_types(types: Option<&str>) -> DataTypes {
    match types.map(str::trim) {
        None | Some("*") => DataTypes::ALL,
        Some(list) => DataTypes::from_names(list.split(',').map(str::trim)),
    }
}

/// A response body fed by a channel.
#[derive(Debug)]
struct EventBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for EventBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

/// `GET /jmap/eventsource/?types=&closeafter=&ping=`.
pub(crate) async fn handle(
    State(server): State<Arc<Server>>,
    Query(query): Query<EventQuery>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let account = match authenticate(&server, &headers, peer).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    // why here and not in the task: a change right after the response
    // headers must not be missed.
    let changes = server.ctx.notifier.subscribe(account.id);
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(feed(server, account, query, changes, tx));
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::new(EventBody(rx)),
    )
        .into_response()
}

/// Writes events until the client leaves.
async fn feed(
    server: Arc<Server>,
    account: Account,
    query: EventQuery,
    mut changes: broadcast::Receiver<DataTypes>,
    tx: mpsc::Sender<Bytes>,
) {
    let close_after_state = query.closeafter.as_deref() == Some("state");
    let wanted = wanted_types(query.types.as_deref());
    let ping = query.ping.filter(|p| *p > 0).map(|p| p.max(MIN_PING));
    let mut ticker = tokio::time::interval(Duration::from_secs(ping.unwrap_or(3600)));
    ticker.tick().await;
    loop {
        let event = tokio::select! {
            changed = next_change(&mut changes) => {
                let Some(changed) = changed else { return };
                let types = changed & wanted;
                if types.is_empty() {
                    continue;
                }
                let Some(state) = account_state(&server, account.id).await else {
                    return;
                };
                let data = state_change(account.id, types, state);
                format!("event: state\ndata: {}\n\n", Value::Object(data))
            }
            _ = ticker.tick(), if ping.is_some() => {
                format!("event: ping\ndata: {}\n\n", json!({ "interval": ping }))
            }
        };
        let is_state = event.starts_with("event: state");
        if tx.send(Bytes::from(event)).await.is_err() || (is_state && close_after_state) {
            return;
        }
    }
}

/// The types of the next announcement, merged with those already queued
/// behind it (a listener that lagged: every type); `None` once no
/// announcement can come any more.
pub(crate) async fn next_change(changes: &mut broadcast::Receiver<DataTypes>) -> Option<DataTypes> {
    use broadcast::error::{RecvError, TryRecvError};
    let mut types = match changes.recv().await {
        Ok(t) => t,
        Err(RecvError::Lagged(_)) => DataTypes::ALL,
        Err(RecvError::Closed) => return None,
    };
    loop {
        match changes.try_recv() {
            Ok(t) => types |= t,
            Err(TryRecvError::Lagged(_)) => types |= DataTypes::ALL,
            Err(TryRecvError::Empty | TryRecvError::Closed) => return Some(types),
        }
    }
}

/// The account's state now (its change counter); `None` when it cannot
/// be read (the account is gone).
pub(crate) async fn account_state(server: &Server, id: AccountId) -> Option<u64> {
    let store = Arc::clone(&server.ctx.store);
    tokio::task::spawn_blocking(move || store.account(id).map(|a| a.modseq))
        .await
        .ok()?
        .ok()
}

/// A `StateChange` object (RFC 8620 §7.1) naming `types` of `account`,
/// each at `state`.
pub(crate) fn state_change(account: AccountId, types: DataTypes, state: u64) -> Map<String, Value> {
    let state = state.to_string();
    let changed: Map<String, Value> = types
        .names()
        .map(|t| (t.to_string(), json!(state)))
        .collect();
    let mut out = Map::new();
    out.insert("@type".into(), json!("StateChange"));
    out.insert("changed".into(), json!({ ids::account(account): changed }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_parameter_selects_types() {
        assert_eq!(wanted_types(None), DataTypes::ALL);
        assert_eq!(wanted_types(Some("*")), DataTypes::ALL);
        assert_eq!(
            wanted_types(Some("Email, Mailbox")),
            DataTypes::EMAIL | DataTypes::MAILBOX
        );
        assert!(wanted_types(Some("")).is_empty());
        assert!(wanted_types(Some("email,Nope,*x")).is_empty());
    }

    #[tokio::test]
    async fn queued_announcements_merge_and_a_lag_means_everything() {
        let (tx, mut rx) = broadcast::channel(2);
        tx.send(DataTypes::EMAIL).unwrap();
        tx.send(DataTypes::CERTIFICATE).unwrap();
        assert_eq!(
            next_change(&mut rx).await,
            Some(DataTypes::EMAIL | DataTypes::CERTIFICATE)
        );
        for _ in 0..3 {
            tx.send(DataTypes::EMAIL).unwrap();
        }
        assert_eq!(next_change(&mut rx).await, Some(DataTypes::ALL));
        drop(tx);
        assert_eq!(next_change(&mut rx).await, None);
    }

    #[test]
    fn a_state_change_names_only_the_changed_types() {
        let change = state_change(AccountId(7), DataTypes::CERTIFICATE, 42);
        assert_eq!(
            Value::Object(change),
            json!({ "@type": "StateChange", "changed": { "a7": { "Certificate": "42" } } })
        );
    }
}
