//! Push over an event source (RFC 8620 §7.3, Server-Sent Events): a
//! `StateChange` whenever the [`crate::notify::Notifier`] announces new
//! mail for the account, and `ping` events at the interval the client
//! asks for.
//!
//! The notifier speaks when mail arrives (LMTP delivery, IMAP APPEND,
//! `Email/import`); every type's state is the one account counter, so one
//! event names the new state for all of them. Changes a client makes
//! through `/set` are not pushed: that client already has their result.
//!
//! The body is fed by a task through an mpsc channel, so it ends when the
//! client goes away (the send fails) or after the first event with
//! `closeafter=state`.

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
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::auth::{authenticate, Peer};
use super::{ids, Server};
use crate::store::Account;

/// Types named in a StateChange.
const TYPES: [&str; 5] = [
    "Mailbox",
    "Email",
    "Thread",
    "Certificate",
    "EncryptionSettings",
];
/// Shortest ping interval honoured (seconds), as §7.3 allows.
const MIN_PING: u64 = 5;

/// Query of `eventSourceUrl`.
#[derive(Debug, Deserialize)]
pub(crate) struct EventQuery {
    #[serde(default)]
    closeafter: Option<String>,
    #[serde(default)]
    ping: Option<u64>,
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
    mut changes: broadcast::Receiver<()>,
    tx: mpsc::Sender<Bytes>,
) {
    let close_after_state = query.closeafter.as_deref() == Some("state");
    let ping = query.ping.filter(|p| *p > 0).map(|p| p.max(MIN_PING));
    let mut ticker = tokio::time::interval(Duration::from_secs(ping.unwrap_or(3600)));
    ticker.tick().await;
    loop {
        let event = tokio::select! {
            r = changes.recv() => match r {
                Ok(()) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    match state_change(&server, &account).await {
                        Some(e) => e,
                        None => return,
                    }
                }
                Err(_) => return,
            },
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

async fn state_change(server: &Server, account: &Account) -> Option<String> {
    let store = Arc::clone(&server.ctx.store);
    let id = account.id;
    let state = tokio::task::spawn_blocking(move || store.account(id).map(|a| a.modseq))
        .await
        .ok()?
        .ok()?
        .to_string();
    let changed: serde_json::Map<String, serde_json::Value> = TYPES
        .iter()
        .map(|t| (t.to_string(), json!(state)))
        .collect();
    let data = json!({
        "@type": "StateChange",
        "changed": { ids::account(account.id): changed },
    });
    Some(format!("event: state\ndata: {data}\n\n"))
}
