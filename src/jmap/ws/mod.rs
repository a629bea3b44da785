//! JMAP over WebSocket (RFC 8887): API requests and push on one
//! long-lived connection at `/jmap/ws`, advertised in the session as the
//! capability `urn:ietf:params:jmap:websocket` (§3) with `supportsPush`.
//!
//! # Handshake (§4.2)
//!
//! An HTTP/1.1 `GET` with `Upgrade: websocket` that offers the
//! subprotocol `jmap`, authenticated as every API request is (`auth`:
//! Basic or Bearer): wrong credentials get the same 401 before anything
//! is upgraded, a handshake without `jmap` a 400. A browser opens a
//! WebSocket without the same-origin rules of `fetch`, and sends a user's
//! cached Basic credentials with it, so a handshake from another site's
//! page is refused (403) as a state-changing request is (`guard`).
//!
//! # Messages (§4.3)
//!
//! Each text message is one JSON object (`messages`). A `Request` runs
//! through the HTTP API's own execution (`api::execute`): the same
//! methods and limits, and it takes one of the account's request slots
//! (`maxConcurrentRequests`, shared with HTTP). Requests run side by
//! side, up to [`CONCURRENT_PER_CONNECTION`]; beyond that the connection
//! stops reading until one finishes, so a client that pipelines waits
//! instead of being refused. Responses may thus come in another order;
//! `requestId` pairs them (§4.3.3). A message over `maxSizeRequest` closes
//! the connection with 1009 (its text is never read whole); a binary
//! message gets a `notJSON` `RequestError`.
//!
//! RFC 8887 lets the handshake's credentials stand for the connection's
//! life; here each `Request` checks them again (the authentication cache
//! makes that two reads), so a changed password, a removed account or a
//! revoked app token ends the connection (1008) at its next request, as
//! it would end the HTTP client's access.
//!
//! # Push (§4.3.5)
//!
//! `WebSocketPushEnable` subscribes to the account's announcements (the
//! ones the event source pushes, `events`), filtered to `dataTypes`;
//! each push is a `StateChange` with `pushState`, the account's state.
//! Given the `pushState` the client last saw, the changes since then are
//! pushed at once, their types read from the change log.
//!
//! # Liveness
//!
//! The server pings every [`PING_INTERVAL`]; a connection that has had
//! nothing in flight and sent nothing (not even a pong) for
//! [`IDLE_TIMEOUT`] is closed, and so is one whose client takes no
//! message for [`SEND_TIMEOUT`]. The connection keeps its place among the
//! listener's connections while open (`listen::Held`) and is closed
//! (1001) when the server stops.

mod messages;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc, watch, OwnedSemaphorePermit, Semaphore};

use super::auth::{authenticate, Peer};
use super::error::Problem;
use super::events::{account_state, next_change, state_change};
use super::listen::{Held, Stopping};
use super::origin::Origin;
use super::{api, guard, limits, Server};
use crate::notify::DataTypes;
use crate::store::{Account, AccountId, MailError};
use messages::ClientMessage;

/// The endpoint.
pub(crate) const PATH: &str = "/jmap/ws";
/// The subprotocol (RFC 8887 §6.1).
const SUBPROTOCOL: &str = "jmap";
/// Requests of one connection in flight at once. why below the account's
/// `maxConcurrentRequests`: one busy connection leaves slots for the
/// user's other clients.
const CONCURRENT_PER_CONNECTION: usize = 4;
/// How often the server pings.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Longest wait for the client to take a message. why: a client that
/// stops reading would otherwise hold the connection, and the responses
/// queued for it, until TCP gives up.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Silence after which a connection with nothing in flight is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Change-log entries read to answer a `pushState`; past that, every
/// type is said to have changed.
const CATCH_UP_ENTRIES: usize = 10_000;

/// The `url` of the capability for a session whose URLs start with
/// `base` (`http://` or `https://`): the same place with `ws://` or
/// `wss://` (RFC 8887 §3).
pub(crate) fn url(base: &str) -> String {
    let rest = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")));
    let base = rest.unwrap_or_else(|| base.to_string());
    format!("{base}{PATH}")
}

/// The capability object (RFC 8887 §3).
pub(crate) fn capability(base: &str) -> Value {
    json!({ "url": url(base), "supportsPush": true })
}

/// `GET /jmap/ws`: the handshake.
pub(crate) async fn handle(
    State(server): State<Arc<Server>>,
    peer: Peer,
    Extension(origin): Extension<Origin>,
    held: Option<Extension<Held>>,
    stopping: Option<Extension<Stopping>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let account = match authenticate(&server, &headers, peer).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let advertised = origin.base_url().ok();
    if let Err(p) = guard::same_origin(&headers, advertised.as_deref()) {
        return p.into_response();
    }
    let upgrade = match upgrade {
        Ok(u) => u.protocols([SUBPROTOCOL]),
        Err(rejection) => return rejection.into_response(),
    };
    if upgrade.selected_protocol().is_none() {
        return Problem::not_request(
            "JMAP over WebSocket needs the subprotocol \"jmap\" (Sec-WebSocket-Protocol: jmap)",
        )
        .into_response();
    }
    let mut auth = HeaderMap::new();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        auth.insert(header::AUTHORIZATION, value.clone());
    }
    let conn = Arc::new(Conn {
        server,
        account,
        auth,
        peer,
    });
    let held = held.map(|Extension(h)| h);
    let stopping = stopping.map(|Extension(Stopping(rx))| rx);
    upgrade
        .max_message_size(limits::SIZE_REQUEST)
        .max_frame_size(limits::SIZE_REQUEST)
        .on_upgrade(move |socket| serve(conn, socket, held, stopping))
}

/// What every request of a connection needs.
#[derive(Debug)]
struct Conn {
    server: Arc<Server>,
    account: Account,
    /// The handshake's `Authorization`, checked again per request.
    auth: HeaderMap,
    peer: Peer,
}

/// What the request tasks hand to the connection.
#[derive(Debug)]
enum Outgoing {
    /// A message to send.
    Text(String),
    /// The credentials no longer hold: close.
    Unauthorized,
}

/// Push, once enabled: the announcements and the types asked for.
#[derive(Debug)]
struct Push {
    changes: broadcast::Receiver<DataTypes>,
    types: DataTypes,
}

/// What woke the connection.
enum Step {
    Incoming(Option<Result<Message, axum::Error>>),
    Outgoing(Outgoing),
    Changed(Option<DataTypes>),
    Tick,
    Stop,
}

/// Serves one upgraded connection to its end. `_held` keeps it counted
/// by the listener.
async fn serve(
    conn: Arc<Conn>,
    mut socket: WebSocket,
    _held: Option<Held>,
    mut stopping: Option<watch::Receiver<bool>>,
) {
    let permits = Arc::new(Semaphore::new(CONCURRENT_PER_CONNECTION));
    let (out_tx, mut out_rx) = mpsc::channel(CONCURRENT_PER_CONNECTION);
    let mut push: Option<Push> = None;
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    let mut heard = Instant::now();
    loop {
        let step = tokio::select! {
            incoming = socket.recv(), if permits.available_permits() > 0 => Step::Incoming(incoming),
            Some(out) = out_rx.recv() => Step::Outgoing(out),
            changed = next_push(&mut push) => Step::Changed(changed),
            _ = ping.tick() => Step::Tick,
            () = stopped(&mut stopping) => Step::Stop,
        };
        let reply = match step {
            Step::Incoming(None) => return,
            Step::Incoming(Some(Err(e))) => {
                if is_too_big(e) {
                    let reason = format!(
                        "message over maxSizeRequest ({} bytes)",
                        limits::SIZE_REQUEST
                    );
                    close(&mut socket, close_code::SIZE, &reason).await;
                }
                return;
            }
            Step::Incoming(Some(Ok(message))) => {
                heard = Instant::now();
                match message {
                    Message::Text(text) => {
                        let action = Action {
                            conn: &conn,
                            permits: &permits,
                            out: &out_tx,
                        };
                        action.on_text(text.as_str(), &mut push).await
                    }
                    Message::Binary(_) => Some(messages::request_error(
                        None,
                        &Problem::not_json(
                            "binary messages are not JMAP: send the JSON request as a text message",
                        ),
                    )),
                    // why not return: the next read sends tungstenite's
                    // queued reply and then ends the stream.
                    Message::Close(_) => None,
                    Message::Ping(_) | Message::Pong(_) => None,
                }
            }
            Step::Outgoing(Outgoing::Text(text)) => Some(text),
            Step::Outgoing(Outgoing::Unauthorized) => {
                close(
                    &mut socket,
                    close_code::POLICY,
                    "the credentials no longer hold; reconnect",
                )
                .await;
                return;
            }
            Step::Changed(None) => {
                push = None;
                None
            }
            Step::Changed(Some(changed)) => {
                let types = push.as_ref().map_or(DataTypes::NONE, |p| p.types) & changed;
                if types.is_empty() {
                    None
                } else {
                    let Some(state) = account_state(&conn.server, conn.account.id).await else {
                        close(&mut socket, close_code::POLICY, "the account is gone").await;
                        return;
                    };
                    Some(push_message(conn.account.id, types, state))
                }
            }
            Step::Tick => {
                let idle = permits.available_permits() == CONCURRENT_PER_CONNECTION;
                if idle && heard.elapsed() > IDLE_TIMEOUT {
                    close(&mut socket, close_code::AWAY, "idle for too long").await;
                    return;
                }
                if !send(&mut socket, Message::Ping(Default::default())).await {
                    return;
                }
                None
            }
            Step::Stop => {
                close(&mut socket, close_code::AWAY, "server shutting down").await;
                return;
            }
        };
        if let Some(text) = reply {
            if !send(&mut socket, Message::text(text)).await {
                return;
            }
        }
    }
}

/// What handling a text message needs of the connection.
struct Action<'a> {
    conn: &'a Arc<Conn>,
    permits: &'a Arc<Semaphore>,
    out: &'a mpsc::Sender<Outgoing>,
}

impl Action<'_> {
    /// Handles one text message; returns what to send at once.
    async fn on_text(&self, text: &str, push: &mut Option<Push>) -> Option<String> {
        match messages::parse(text) {
            Err(refused) => Some(messages::request_error(refused.id, &refused.problem)),
            Ok(ClientMessage::Request { id, request }) => {
                let server = &self.conn.server;
                let (Ok(permit), Some(slot)) = (
                    Arc::clone(self.permits).try_acquire_owned(),
                    server.request_slots.try_acquire(self.conn.account.id),
                ) else {
                    let detail = format!(
                        "at most {} API requests of one account at once; retry when one has finished",
                        limits::CONCURRENT_REQUESTS
                    );
                    return Some(messages::request_error(
                        id,
                        &Problem::limit("maxConcurrentRequests", detail),
                    ));
                };
                let task = Task {
                    conn: Arc::clone(self.conn),
                    out: self.out.clone(),
                    permits: (permit, slot),
                };
                tokio::spawn(task.run(id, request, text.len()));
                None
            }
            Ok(ClientMessage::PushEnable { types, push_state }) => {
                let account = self.conn.account.id;
                // why subscribe before reading the state: a change in
                // between is pushed rather than missed.
                let changes = match push.take() {
                    Some(p) => p.changes,
                    None => self.conn.server.ctx.notifier.subscribe(account),
                };
                *push = Some(Push { changes, types });
                let since = push_state?;
                let (state, changed) = catch_up(&self.conn.server, account, since).await?;
                let types = changed & types;
                (!types.is_empty()).then(|| push_message(account, types, state))
            }
            Ok(ClientMessage::PushDisable) => {
                *push = None;
                None
            }
        }
    }
}

/// One request, run on a task of its own.
struct Task {
    conn: Arc<Conn>,
    out: mpsc::Sender<Outgoing>,
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl Task {
    async fn run(self, id: Option<String>, request: Value, bytes: usize) {
        let Task { conn, out, permits } = self;
        let account = match authenticate(&conn.server, &conn.auth, conn.peer).await {
            Ok(a) if a.id == conn.account.id => a,
            _ => {
                drop(permits);
                let _ = out.send(Outgoing::Unauthorized).await;
                return;
            }
        };
        let text = match api::execute(&conn.server, account, &conn.auth, request, bytes).await {
            Ok(response) => messages::response(id, response),
            Err(problem) => messages::request_error(id, &problem),
        };
        // why before sending: the connection reads again once a permit
        // is free, and it looks when this message wakes it.
        drop(permits);
        let _ = out.send(Outgoing::Text(text)).await;
    }
}

/// The account's state and the types changed since `since` (a
/// `pushState` the client sent: hostile); `None` when the store cannot
/// say (the account is gone).
async fn catch_up(server: &Server, account: AccountId, since: String) -> Option<(u64, DataTypes)> {
    let store = Arc::clone(&server.ctx.store);
    let read = move || -> Result<(u64, DataTypes), MailError> {
        let state = store.account(account)?.modseq;
        let changed = match since.parse::<u64>() {
            Ok(s) if s == state => DataTypes::NONE,
            Ok(s) if s < state => {
                let log = store.changes_since(account, s, CATCH_UP_ENTRIES)?;
                if log.len() >= CATCH_UP_ENTRIES {
                    DataTypes::ALL
                } else {
                    log.iter()
                        .fold(DataTypes::NONE, |t, c| t | DataTypes::of(&c.object, c.kind))
                }
            }
            // Not a state of ours (or from the future): everything.
            _ => DataTypes::ALL,
        };
        Ok((state, changed))
    };
    tokio::task::spawn_blocking(read).await.ok()?.ok()
}

/// A pushed `StateChange` (RFC 8887 §4.3.5.1): the event source's, with
/// `pushState`.
fn push_message(account: AccountId, types: DataTypes, state: u64) -> String {
    let mut change = state_change(account, types, state);
    change.insert("pushState".into(), json!(state.to_string()));
    Value::Object(change).to_string()
}

/// The next announcement's types, once push is on.
async fn next_push(push: &mut Option<Push>) -> Option<DataTypes> {
    match push {
        Some(p) => next_change(&mut p.changes).await,
        None => std::future::pending().await,
    }
}

/// Returns when the server stops.
async fn stopped(stopping: &mut Option<watch::Receiver<bool>>) {
    if let Some(rx) = stopping {
        if rx.wait_for(|stop| *stop).await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// Whether a read failed because the message passed the size limit.
fn is_too_big(e: axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error;
    matches!(
        e.into_inner().downcast::<Error>().map(|e| *e),
        Ok(Error::Capacity(_))
    )
}

/// Sends `message`; `false` when the connection failed or the client
/// did not take it within [`SEND_TIMEOUT`] (it stopped reading).
async fn send(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// Sends a close frame; the connection ends after it either way.
async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    send(socket, Message::Close(Some(frame))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_follows_the_scheme_of_the_session() {
        assert_eq!(url("http://127.0.0.1:8080"), "ws://127.0.0.1:8080/jmap/ws");
        assert_eq!(
            url("https://mail.example.org"),
            "wss://mail.example.org/jmap/ws"
        );
    }
}
