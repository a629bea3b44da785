//! JMAP over WebSocket (RFC 8887) against the real `sealmail serve`, with
//! tokio-tungstenite as the client: the session advertises the endpoint
//! (§3); the handshake needs the API's credentials (401 before any
//! upgrade), the `jmap` subprotocol (§4.2) and no foreign page's origin;
//! a `Request` gets its `Response` with the `requestId` echoed (§4.3.2,
//! §4.3.3), several side by side; garbage gets `RequestError`s (§4.3.4)
//! and the connection goes on; a message over `maxSizeRequest` closes it
//! (1009) and the server stays up; push is enabled and disabled
//! (§4.3.5.2, §4.3.5.3), catches up from a `pushState`, and never carries
//! another account's changes; an open WebSocket keeps counting against
//! the listener's connection caps, and is closed (1001) when the server
//! stops.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use support::jmap::Client;
use support::pki::pair;
use support::push::{
    account, basic, changed, create_mailbox, state, ws_connect, ws_open, Ws, CORE, MAIL, WAIT,
    WEBSOCKET,
};
use support::server::Server;

const A: &str = "alice@example.org";
const B: &str = "bob@example.org";
/// The API's `maxSizeRequest`, as the session announces it.
const MAX_SIZE_REQUEST: usize = 10 * 1024 * 1024;

async fn send(ws: &mut Ws, message: Value) {
    ws.send(Message::text(message.to_string())).await.unwrap();
}

/// The next text message as JSON (pings and pongs skipped).
async fn next(ws: &mut Ws) -> Value {
    let read = async {
        loop {
            match ws.next().await.expect("the connection is open").unwrap() {
                Message::Text(t) => return serde_json::from_str::<Value>(t.as_str()).unwrap(),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("a message in time")
}

fn echo(id: &str) -> Value {
    json!({ "@type": "Request", "id": id, "using": [CORE],
        "methodCalls": [["Core/echo", { "hello": id }, "c0"]] })
}

async fn setup() -> (Server, Client) {
    let s = Server::start();
    let alice = account(&s, A, "alice-pw").await;
    (s, alice)
}

#[tokio::test]
async fn the_session_advertises_the_endpoint_with_push() {
    let (s, alice) = setup().await;
    let session: Value = alice
        .get("/.well-known/jmap")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        session["capabilities"][WEBSOCKET],
        json!({ "url": format!("ws://127.0.0.1:{}/jmap/ws", s.jmap_port), "supportsPush": true })
    );
}

#[tokio::test]
async fn a_request_gets_its_response_with_the_request_id() {
    let (s, alice) = setup().await;
    let mut ws = ws_open(&s, &alice).await;
    send(&mut ws, echo("R1")).await;
    let response = next(&mut ws).await;
    assert_eq!(response["@type"], "Response", "{response}");
    assert_eq!(response["requestId"], "R1");
    assert_eq!(
        response["methodResponses"],
        json!([["Core/echo", { "hello": "R1" }, "c0"]])
    );
    assert!(response["sessionState"].is_string());
    // A real method, and a request without an id gets no requestId.
    send(
        &mut ws,
        json!({ "@type": "Request", "using": [CORE, MAIL],
            "methodCalls": [["Mailbox/get", { "accountId": alice.account_id }, "m"]] }),
    )
    .await;
    let response = next(&mut ws).await;
    assert!(response.get("requestId").is_none(), "{response}");
    let list = response["methodResponses"][0][1]["list"]
        .as_array()
        .unwrap();
    assert!(list.iter().any(|m| m["role"] == "inbox"), "{response}");
    // The closing handshake (RFC 6455 §5.5.1): our Close is answered.
    ws.close(None).await.unwrap();
    let reply = tokio::time::timeout(WAIT, ws.next()).await.unwrap();
    assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");
}

#[tokio::test]
async fn requests_run_side_by_side_and_pair_by_request_id() {
    let (s, alice) = setup().await;
    let mut ws = ws_open(&s, &alice).await;
    let ids: BTreeSet<String> = (0..10).map(|i| format!("R{i}")).collect();
    for id in &ids {
        send(&mut ws, echo(id)).await;
    }
    let mut answered = BTreeSet::new();
    for _ in 0..ids.len() {
        let response = next(&mut ws).await;
        assert_eq!(response["@type"], "Response", "{response}");
        let id = response["requestId"].as_str().unwrap().to_string();
        assert_eq!(response["methodResponses"][0][1]["hello"], id.as_str());
        assert!(answered.insert(id), "answered twice: {response}");
    }
    assert_eq!(answered, ids);
}

/// The handshake's HTTP status, when it is refused.
async fn refused(
    s: &Server,
    auth: Option<&str>,
    protocol: Option<&str>,
    extra: &[(&str, &str)],
) -> u16 {
    match ws_connect(s, auth, protocol, extra).await {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Ok(_) => panic!("the handshake was accepted"),
        Err(e) => panic!("not an HTTP refusal: {e}"),
    }
}

#[tokio::test]
async fn the_handshake_needs_credentials_the_subprotocol_and_our_origin() {
    let (s, _alice) = setup().await;
    // RFC 8887 §4.2: authenticated as the API is; refused before upgrading.
    assert_eq!(refused(&s, None, Some("jmap"), &[]).await, 401);
    let wrong = basic(A, "wrong");
    assert_eq!(refused(&s, Some(&wrong), Some("jmap"), &[]).await, 401);
    assert_eq!(
        refused(&s, Some("Bearer smt_nosuchtoken"), Some("jmap"), &[]).await,
        401
    );
    let good = basic(A, "alice-pw");
    assert_eq!(refused(&s, Some(&good), None, &[]).await, 400);
    assert_eq!(refused(&s, Some(&good), Some("chat"), &[]).await, 400);
    // A page of another site cannot open it with the user's credentials.
    let evil = [("origin", "https://evil.example")];
    assert_eq!(refused(&s, Some(&good), Some("jmap"), &evil).await, 403);
    let own = format!("http://127.0.0.1:{}", s.jmap_port);
    let mut ws = ws_connect(&s, Some(&good), Some("jmap"), &[("origin", &own)])
        .await
        .unwrap();
    send(&mut ws, echo("ok")).await;
    assert_eq!(next(&mut ws).await["requestId"], "ok");
}

#[tokio::test]
async fn an_app_token_opens_it_as_bearer() {
    let (s, alice) = setup().await;
    let (status, out) = alice
        .request(&json!({
            "using": [CORE, "urn:sealmail:params:jmap:auth"],
            "methodCalls": [["AppToken/set", { "accountId": alice.account_id,
                "create": { "t": { "name": "ws client" } } }, "t"]],
        }))
        .await;
    assert_eq!(status, 200, "{out}");
    let set = &out["methodResponses"][0][1];
    let secret = set["created"]["t"]["secret"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {secret}");
    let mut ws = ws_connect(&s, Some(&bearer), Some("jmap"), &[])
        .await
        .unwrap();
    send(&mut ws, echo("T1")).await;
    assert_eq!(next(&mut ws).await["requestId"], "T1");
    // Revoked: the next request ends the connection (policy, 1008).
    let id = set["created"]["t"]["id"].as_str().unwrap().to_string();
    s.ok(&["token", "remove", A, &id]);
    send(&mut ws, echo("T2")).await;
    let closed = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(Message::Text(t))) => panic!("answered after revocation: {t}"),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(CloseCode::Policy));
}

#[tokio::test]
async fn garbage_gets_request_errors_and_the_connection_goes_on() {
    let (s, alice) = setup().await;
    let mut ws = ws_open(&s, &alice).await;
    // RFC 8887 §4.4's own example of a message that is not JSON.
    ws.send(Message::text(
        "The quick brown fox jumps over the lazy dog.",
    ))
    .await
    .unwrap();
    let error = next(&mut ws).await;
    assert_eq!(error["@type"], "RequestError", "{error}");
    assert_eq!(error["requestId"], Value::Null);
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:notJSON");
    assert_eq!(error["status"], 400);
    ws.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await["type"],
        "urn:ietf:params:jmap:error:notJSON"
    );
    for (junk, id) in [
        (json!([1, 2]), Value::Null),
        (json!({ "id": "X1" }), json!("X1")),
        (json!({ "@type": "Nonsense", "id": "X2" }), json!("X2")),
        (
            json!({ "@type": "Request", "id": "X3", "using": 5 }),
            json!("X3"),
        ),
        (
            json!({ "@type": "WebSocketPushEnable", "dataTypes": "Email" }),
            Value::Null,
        ),
    ] {
        send(&mut ws, junk.clone()).await;
        let error = next(&mut ws).await;
        assert_eq!(error["@type"], "RequestError", "{junk} -> {error}");
        assert_eq!(
            error["type"], "urn:ietf:params:jmap:error:notRequest",
            "{junk}"
        );
        assert_eq!(error["requestId"], id, "{junk}");
    }
    // A session limit is a RequestError `limit` naming it.
    let calls: Vec<Value> = (0..40)
        .map(|i| json!(["Core/echo", {}, format!("c{i}")]))
        .collect();
    send(
        &mut ws,
        json!({ "@type": "Request", "id": "big", "using": [CORE], "methodCalls": calls }),
    )
    .await;
    let error = next(&mut ws).await;
    assert_eq!(error["type"], "urn:ietf:params:jmap:error:limit", "{error}");
    assert_eq!(error["limit"], "maxCallsInRequest");
    assert_eq!(error["requestId"], "big");
    send(&mut ws, echo("still")).await;
    assert_eq!(next(&mut ws).await["requestId"], "still");
}

#[tokio::test]
async fn a_message_over_max_size_request_closes_the_connection() {
    let (s, alice) = setup().await;
    let ws = ws_open(&s, &alice).await;
    let huge = format!(
        "{{\"@type\":\"Request\",\"using\":[],\"methodCalls\":[],\"pad\":\"{}\"}}",
        "x".repeat(MAX_SIZE_REQUEST)
    );
    let (mut sink, mut stream) = ws.split();
    // why on a task: the server stops reading, so the send may fail.
    let sender = tokio::spawn(async move {
        let _ = sink.send(Message::text(huge)).await;
    });
    let outcome = tokio::time::timeout(WAIT, async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(Message::Text(t))) => panic!("the oversized message was answered: {t}"),
                Some(Ok(_)) => continue,
                // A reset may overtake the close frame.
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the connection ends");
    if let Some(code) = outcome {
        assert_eq!(code, CloseCode::Size);
    }
    let _ = sender.await;
    // The server is still there for everyone.
    let mut ws = ws_open(&s, &alice).await;
    send(&mut ws, echo("after")).await;
    assert_eq!(next(&mut ws).await["requestId"], "after");
}

#[tokio::test]
async fn push_is_enabled_for_the_types_asked_and_disabled() {
    let (s, alice) = setup().await;
    let mut ws = ws_open(&s, &alice).await;
    send(
        &mut ws,
        json!({ "@type": "WebSocketPushEnable", "dataTypes": ["Certificate", "Mailbox"] }),
    )
    .await;
    // The enable is answered by nothing; a request after it is answered
    // after it was handled.
    send(&mut ws, echo("on")).await;
    assert_eq!(next(&mut ws).await["requestId"], "on");
    let new_state = create_mailbox(&alice, "Pushed").await;
    let change = next(&mut ws).await;
    assert_eq!(change["@type"], "StateChange", "{change}");
    let (types, states) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Mailbox"]);
    assert_eq!(states, std::slice::from_ref(&new_state));
    // RFC 8887 §4.3.5.1: the push carries a pushState.
    assert_eq!(change["pushState"], new_state);
    // A change of a type not asked for is not pushed; the next push is
    // the certificate's.
    let (_, set) = alice
        .call(
            "EncryptionSettings/set",
            json!({ "update": { "singleton": { "encryptOnAppend": false } } }),
        )
        .await;
    assert!(set["notUpdated"].is_null(), "{set}");
    s.ok(&["cert", "add", A, pair(A, 2048).cert.to_str().unwrap()]);
    let change = next(&mut ws).await;
    let (types, _) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Certificate"], "{change}");
    // Disabled: nothing more comes.
    send(&mut ws, json!({ "@type": "WebSocketPushDisable" })).await;
    send(&mut ws, echo("off")).await;
    assert_eq!(next(&mut ws).await["requestId"], "off");
    create_mailbox(&alice, "Silent").await;
    send(&mut ws, echo("quiet")).await;
    let response = next(&mut ws).await;
    assert_eq!(
        response["requestId"], "quiet",
        "pushed after disable: {response}"
    );
}

#[tokio::test]
async fn a_push_state_catches_up_on_what_was_missed() {
    let (s, alice) = setup().await;
    let before = state(&alice).await;
    s.ok(&["cert", "add", A, pair(A, 2048).cert.to_str().unwrap()]);
    let mut ws = ws_open(&s, &alice).await;
    send(
        &mut ws,
        json!({ "@type": "WebSocketPushEnable", "dataTypes": null, "pushState": before }),
    )
    .await;
    let change = next(&mut ws).await;
    assert_eq!(change["@type"], "StateChange", "{change}");
    let (types, _) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Certificate", "EncryptionSettings"], "{change}");
    let now = state(&alice).await;
    assert_eq!(change["pushState"], now);
    // Up to date: nothing to catch up on.
    send(
        &mut ws,
        json!({ "@type": "WebSocketPushEnable", "dataTypes": null, "pushState": now }),
    )
    .await;
    send(&mut ws, echo("current")).await;
    assert_eq!(next(&mut ws).await["requestId"], "current");
    // A pushState that is not ours: everything may have changed.
    send(
        &mut ws,
        json!({ "@type": "WebSocketPushEnable", "dataTypes": ["Email"], "pushState": "x9" }),
    )
    .await;
    let change = next(&mut ws).await;
    let (types, _) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Email"], "{change}");
}

#[tokio::test]
async fn another_accounts_data_is_never_pushed_nor_served() {
    let (s, alice) = setup().await;
    let bob = account(&s, B, "bob-pw").await;
    let mut ws = ws_open(&s, &alice).await;
    send(
        &mut ws,
        json!({ "@type": "WebSocketPushEnable", "dataTypes": null }),
    )
    .await;
    create_mailbox(&bob, "Bob's secrets").await;
    s.ok(&["cert", "add", B, pair(B, 2048).cert.to_str().unwrap()]);
    // Bob's account id over Alice's connection.
    send(
        &mut ws,
        json!({ "@type": "Request", "id": "peek", "using": [CORE, MAIL],
            "methodCalls": [["Mailbox/get", { "accountId": bob.account_id }, "m"]] }),
    )
    .await;
    let response = next(&mut ws).await;
    assert_eq!(response["requestId"], "peek", "{response}");
    assert_eq!(response["methodResponses"][0][0], "error");
    assert_eq!(response["methodResponses"][0][1]["type"], "accountNotFound");
    assert!(!response.to_string().contains("Bob's secrets"));
    let alice_state = create_mailbox(&alice, "Alice's").await;
    let change = next(&mut ws).await;
    let (types, states) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Mailbox"], "{change}");
    assert_eq!(states, [alice_state]);
}

#[tokio::test]
async fn an_open_websocket_counts_against_the_connection_caps() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_env(
        dir.path(),
        &[("SEALMAIL_JMAP_MAX_CONNECTIONS_PER_SOURCE", "2")],
    );
    s.account_with_password(A, "alice-pw");
    // why: the start-up probes' connections must be gone first.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let auth = basic(A, "alice-pw");
    let connect = || ws_connect(&s, Some(&auth), Some("jmap"), &[]);
    let first = connect().await.unwrap();
    let _second = connect().await.unwrap();
    match connect().await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 503),
        Ok(_) => panic!("a third connection from one address was admitted"),
        Err(e) => panic!("not an HTTP refusal: {e}"),
    }
    // Closing one gives its place back.
    drop(first);
    let deadline = std::time::Instant::now() + WAIT;
    let mut third = loop {
        match connect().await {
            Ok(ws) => break ws,
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the freed place was not given back: {e}"),
        }
    };
    send(&mut third, echo("third")).await;
    assert_eq!(next(&mut third).await["requestId"], "third");
}

#[tokio::test]
async fn the_server_closes_websockets_when_it_stops() {
    let (mut s, alice) = setup().await;
    let mut ws = ws_open(&s, &alice).await;
    send(&mut ws, echo("before")).await;
    assert_eq!(next(&mut ws).await["requestId"], "before");
    let stopping = tokio::task::spawn_blocking(move || {
        let status = s.terminate();
        (s, status)
    });
    let frame = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| f.code),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the connection ends");
    assert_eq!(frame, Some(CloseCode::Away));
    let (_s, status) = stopping.await.unwrap();
    assert!(status.success(), "{status}");
}
