//! The push tests' peers against the real `sealmail serve`: accounts with
//! a JMAP client each, an event-source reader (RFC 8620 §7.3, read raw
//! from the response so every byte the server sends is checked) and a
//! WebSocket client (tokio-tungstenite, RFC 8887).

use std::time::Duration;

use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::jmap::Client;
use super::server::Server;

pub const CORE: &str = "urn:ietf:params:jmap:core";
pub const MAIL: &str = "urn:ietf:params:jmap:mail";
pub const ENCRYPTION: &str = "urn:sealmail:params:jmap:encryption";
pub const WEBSOCKET: &str = "urn:ietf:params:jmap:websocket";

/// How long a test waits for something the server should send at once.
pub const WAIT: Duration = Duration::from_secs(10);

/// An account `email` with `password` on `server`, and a JMAP client
/// for it (the account id read from the session).
pub async fn account(server: &Server, email: &str, password: &str) -> Client {
    server.account_with_password(email, password);
    let mut client = Client {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{}", server.jmap_port),
        user: email.to_string(),
        password: password.to_string(),
        account_id: String::new(),
    };
    let session: Value = client
        .get("/.well-known/jmap")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    client.account_id = session["primaryAccounts"][MAIL]
        .as_str()
        .unwrap()
        .to_string();
    client
}

/// The account's current state, as `Mailbox/get` says.
pub async fn state(client: &Client) -> String {
    let (_, got) = client.call("Mailbox/get", json!({ "ids": [] })).await;
    got["state"].as_str().unwrap().to_string()
}

/// Creates the mailbox `name`; returns the new state `Mailbox/set` gives.
pub async fn create_mailbox(client: &Client, name: &str) -> String {
    let (_, set) = client
        .call(
            "Mailbox/set",
            json!({ "create": { "m": { "name": name, "parentId": null } } }),
        )
        .await;
    assert!(set["created"]["m"]["id"].is_string(), "{set}");
    set["newState"].as_str().unwrap().to_string()
}

/// An open event source.
pub struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// Opens `eventSourceUrl` with `query`; the server listens for
    /// changes once the response has started.
    pub async fn open(client: &Client, query: &str) -> Self {
        let response = client
            .get(&format!("/jmap/eventsource/?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The data of the next `state` event (pings skipped); `None` when
    /// none came within `wait` or the stream ended.
    pub async fn next_state(&mut self, wait: Duration) -> Option<Value> {
        let read = async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let event: String = self.buffer.drain(..end + 2).collect();
                    let mut kind = "";
                    let mut data = "";
                    for line in event.lines() {
                        if let Some(k) = line.strip_prefix("event: ") {
                            kind = k;
                        } else if let Some(d) = line.strip_prefix("data: ") {
                            data = d;
                        } else {
                            assert!(line.is_empty(), "unexpected line {line:?} in {event:?}");
                        }
                    }
                    match kind {
                        "state" => return serde_json::from_str(data).ok(),
                        "ping" => continue,
                        other => panic!("unknown event {other:?}: {event:?}"),
                    }
                }
                let chunk = self.response.chunk().await.ok()??;
                self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            }
        };
        tokio::time::timeout(wait, read).await.ok().flatten()
    }
}

/// The types a `StateChange` names for `account_id`, sorted, and the
/// states they map to.
pub fn changed(change: &Value, account_id: &str) -> (Vec<String>, Vec<String>) {
    let accounts = change["changed"].as_object().unwrap();
    assert_eq!(
        accounts.keys().collect::<Vec<_>>(),
        vec![account_id],
        "{change}"
    );
    let types = accounts[account_id].as_object().unwrap();
    let mut names: Vec<String> = types.keys().cloned().collect();
    names.sort();
    let states = types
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (names, states)
}

/// A WebSocket to the server.
pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/jmap/ws` with `authorization` (a whole header value), offering
/// `protocol`, and `extra` headers; the handshake's error as it is.
pub async fn ws_connect(
    server: &Server,
    authorization: Option<&str>,
    protocol: Option<&str>,
    extra: &[(&str, &str)],
) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let url = format!("ws://127.0.0.1:{}/jmap/ws", server.jmap_port);
    let mut request = url.into_client_request().unwrap();
    let headers = request.headers_mut();
    if let Some(auth) = authorization {
        headers.insert("authorization", HeaderValue::from_str(auth).unwrap());
    }
    if let Some(p) = protocol {
        headers.insert("sec-websocket-protocol", HeaderValue::from_str(p).unwrap());
    }
    for (name, value) in extra {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes());
        headers.insert(name.unwrap(), HeaderValue::from_str(value).unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(ws, _)| ws)
}

/// `Basic` credentials of `user` with `password`.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A JMAP WebSocket of `client`, handshake checked.
pub async fn ws_open(server: &Server, client: &Client) -> Ws {
    let auth = basic(&client.user, &client.password);
    ws_connect(server, Some(&auth), Some("jmap"), &[])
        .await
        .unwrap()
}
