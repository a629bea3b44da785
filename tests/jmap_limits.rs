//! JMAP cannot be shut off for others, against the real binary: failed
//! logins wait longer per recent failure from the same address (like
//! IMAP) and are logged, and request and upload slots belong to an
//! authenticated account, so that one account's stalled requests leave
//! the others served. What one request can make the server build is
//! bounded: result references by the size they expand to, the response
//! by its bytes, held uploads by their number.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::json;

use support::server::Server;

fn server_with(accounts: &[&str]) -> Server {
    let server = Server::start();
    for a in accounts {
        server.account_with_password(a, "pw");
    }
    server
}

fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .unwrap()
}

/// Three wrong passwords in a row from 127.0.0.2: each 401 comes later
/// than the one before (1 s, 2 s, 4 s at least); a client at another
/// address logs in at once meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_slowed_per_address() {
    let server = server_with(&["alice@example.org"]);
    let session = format!("http://127.0.0.1:{}/jmap/session", server.jmap_port);
    let guesser = client_from([127, 0, 0, 2]);
    let mut waits = Vec::new();
    for user in [
        "alice@example.org",
        "nobody@example.org",
        "alice@example.org",
    ] {
        let started = Instant::now();
        let resp = guesser
            .get(&session)
            .basic_auth(user, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        waits.push(started.elapsed());
    }
    // Lower bounds only: a sleep is never shorter than asked.
    assert!(waits[0] >= Duration::from_secs(1), "{waits:?}");
    assert!(waits[2] >= Duration::from_secs(4), "{waits:?}");
    let ok = client_from([127, 0, 0, 1])
        .get(&session)
        .basic_auth("alice@example.org", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// Eight API requests of mallory that announce a body and never send it
/// hold mallory's slots only: alice is served, mallory's ninth request is
/// told the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_requests_of_one_account_leave_the_others_served() {
    let server = server_with(&["alice@example.org", "mallory@example.org"]);
    let basic = |user: &str| base64::engine::general_purpose::STANDARD.encode(format!("{user}:pw"));
    let stalled: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.jmap_port)).unwrap();
            write!(
                s,
                "POST /jmap/api HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {}\r\n\
                 Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{",
                basic("mallory@example.org")
            )
            .unwrap();
            s
        })
        .collect();
    // Let the server authenticate all eight and start waiting for bodies.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let api = format!("http://127.0.0.1:{}/jmap/api", server.jmap_port);
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [["Mailbox/get", {}, "0"]]
    });
    let http = reqwest::Client::new();
    let alice = http
        .post(&api)
        .basic_auth("alice@example.org", Some("pw"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(alice.status(), 200, "{}", alice.text().await.unwrap());
    let mallory = http
        .post(&api)
        .basic_auth("mallory@example.org", Some("pw"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(mallory.status(), 400);
    let problem: serde_json::Value = mallory.json().await.unwrap();
    assert_eq!(problem["limit"], "maxConcurrentRequests", "{problem}");
    drop(stalled);
}

fn api_url(server: &Server) -> String {
    format!("http://127.0.0.1:{}/jmap/api", server.jmap_port)
}

async fn post(server: &Server, user: &str, calls: serde_json::Value) -> reqwest::Response {
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": calls,
    });
    reqwest::Client::new()
        .post(api_url(server))
        .basic_auth(user, Some("pw"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The JMAP account id of `user` (password "pw"), from the session.
async fn account_id(server: &Server, user: &str) -> String {
    let url = format!("http://127.0.0.1:{}/jmap/session", server.jmap_port);
    let session: serde_json::Value = reqwest::Client::new()
        .get(url)
        .basic_auth(user, Some("pw"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `n` arguments `#r0`.. that each reference `path` of call `of`.
fn references(n: usize, of: &str, path: &str) -> serde_json::Value {
    let mut args = serde_json::Map::new();
    for i in 0..n {
        let r = json!({"resultOf": of, "name": "Core/echo", "path": path});
        args.insert(format!("#r{i}"), r);
    }
    serde_json::Value::Object(args)
}

/// A 3 KB request whose references would expand to 32 MB (20 KB, 40
/// times, 40 times again) is refused as a whole with the `limit` error
/// naming maxSizeRequest (RFC 8620 §3.6.1); one reference to more values
/// than maxObjectsInGet fails its call with `requestTooLarge`, and the
/// server answers normally afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_references_cannot_amplify_a_request() {
    let server = server_with(&["alice@example.org"]);
    let calls = json!([
        ["Core/echo", {"v": "x".repeat(20_000)}, "c0"],
        ["Core/echo", references(40, "c0", "/v"), "c1"],
        ["Core/echo", references(40, "c1", ""), "c2"],
    ]);
    let resp = post(&server, "alice@example.org", calls).await;
    assert_eq!(resp.status(), 413);
    let problem: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        problem["type"], "urn:ietf:params:jmap:error:limit",
        "{problem}"
    );
    assert_eq!(problem["limit"], "maxSizeRequest", "{problem}");

    let ids: Vec<String> = (0..600).map(|i| format!("e{i}")).collect();
    let calls = json!([
        ["Core/echo", {"ids": ids}, "c0"],
        ["Core/echo", {"#ids": {"resultOf": "c0", "name": "Core/echo", "path": "/ids"}}, "c1"],
        ["Core/echo", {"#v": {"resultOf": "c0", "name": "Core/echo", "path": "/ids/599"}}, "c2"],
    ]);
    let resp = post(&server, "alice@example.org", calls).await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let r = &answer["methodResponses"];
    assert_eq!(r[1][0], "error", "{}", r[1]);
    assert_eq!(r[1][1]["type"], "requestTooLarge", "{}", r[1]);
    assert_eq!(r[2][1], json!({"v": "e599"}), "later calls still run");
}

/// Three `Email/get` calls that each return a 6 MB message body: the
/// first two are answered, the third would take the response past
/// 16 MiB and gets `requestTooLarge` instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_of_one_request_is_bounded() {
    let server = server_with(&["alice@example.org"]);
    let line = format!("{}\r\n", "y".repeat(76));
    let message = format!(
        "From: a@example.net\r\nTo: alice@example.org\r\nSubject: big\r\n\
         Content-Type: text/plain\r\n\r\n{}",
        line.repeat(6_000_000 / line.len())
    );
    let reply = server.lmtp_send("alice@example.org", message.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
    let account = account_id(&server, "alice@example.org").await;
    let query = json!([["Email/query", {"accountId": account}, "q"]]);
    let found: serde_json::Value = post(&server, "alice@example.org", query)
        .await
        .json()
        .await
        .unwrap();
    let ids = found["methodResponses"][0][1]["ids"].clone();
    assert_eq!(ids.as_array().map(Vec::len), Some(1), "{found}");
    let get = json!({"accountId": account, "ids": ids,
        "properties": ["bodyValues"], "fetchAllBodyValues": true});
    let calls = json!([
        ["Email/get", get, "g0"],
        ["Email/get", get, "g1"],
        ["Email/get", get, "g2"],
    ]);
    let resp = post(&server, "alice@example.org", calls).await;
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let r = &answer["methodResponses"];
    assert_eq!(r[0][0], "Email/get");
    assert_eq!(r[1][0], "Email/get");
    assert_eq!(r[2][0], "error");
    assert_eq!(r[2][1]["type"], "requestTooLarge", "{}", r[2][1]);
}

/// 1,001 small uploads of one account: the oldest is dropped (RFC 8620
/// §6.1: delete unreferenced uploads when over quota), the newest is
/// held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_uploads_are_capped_in_number() {
    let server = server_with(&["alice@example.org"]);
    let account = account_id(&server, "alice@example.org").await;
    let base = format!("http://127.0.0.1:{}/jmap", server.jmap_port);
    let http = reqwest::Client::new();
    let mut blobs = Vec::new();
    for i in 0..1001 {
        let resp = http
            .post(format!("{base}/upload/{account}/"))
            .basic_auth("alice@example.org", Some("pw"))
            .body(format!("upload {i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: serde_json::Value = resp.json().await.unwrap();
        blobs.push(v["blobId"].as_str().unwrap().to_string());
    }
    let status = |blob: String| {
        let url = format!("{base}/download/{account}/{blob}/x");
        let req = http.get(url).basic_auth("alice@example.org", Some("pw"));
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(status(blobs[0].clone()).await, 404, "the oldest is gone");
    assert_eq!(status(blobs[1].clone()).await, 200);
    assert_eq!(status(blobs[1000].clone()).await, 200);
}

/// Four uploads of mallory that announce a body and stall hold mallory's
/// upload slots only: alice uploads, mallory's fifth is told the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_uploads_of_one_account_leave_the_others_uploading() {
    let server = server_with(&["alice@example.org", "mallory@example.org"]);
    let alice = account_id(&server, "alice@example.org").await;
    let mallory = account_id(&server, "mallory@example.org").await;
    let basic = base64::engine::general_purpose::STANDARD.encode("mallory@example.org:pw");
    let stalled: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.jmap_port)).unwrap();
            write!(
                s,
                "POST /jmap/upload/{mallory}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                 Authorization: Basic {basic}\r\nContent-Length: 1000\r\n\r\nabc"
            )
            .unwrap();
            s
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let upload = |user: &'static str, account: String| {
        let url = format!(
            "http://127.0.0.1:{}/jmap/upload/{account}/",
            server.jmap_port
        );
        let req = reqwest::Client::new()
            .post(url)
            .basic_auth(user, Some("pw"))
            .body("hello");
        async move { req.send().await.unwrap() }
    };
    let ok = upload("alice@example.org", alice.clone()).await;
    assert_eq!(ok.status(), 201, "{}", ok.text().await.unwrap());
    let refused = upload("mallory@example.org", mallory.clone()).await;
    assert_eq!(refused.status(), 400);
    let problem: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(
        problem["type"], "urn:ietf:params:jmap:error:limit",
        "{problem}"
    );
    assert_eq!(problem["limit"], "maxConcurrentUpload", "{problem}");
    drop(stalled);
}

/// From 127.0.0.3: two wrong passwords for victim, a right one for the
/// guesser's own account, a third wrong one for victim. Each failure is
/// logged with its source and login name (never the password), and the
/// own login did not clear the guesses at victim: the third waits 4 s,
/// as the log says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_logged_and_ones_own_login_keeps_the_count() {
    let server = server_with(&["victim@example.org", "mallory@example.org"]);
    let session = format!("http://127.0.0.1:{}/jmap/session", server.jmap_port);
    let guesser = client_from([127, 0, 0, 3]);
    for (user, password, status) in [
        ("victim@example.org", "guess-one", 401),
        ("victim@example.org", "guess-two", 401),
        ("mallory@example.org", "pw", 200),
        ("victim@example.org", "guess-three", 401),
    ] {
        let resp = guesser
            .get(&session)
            .basic_auth(user, Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), status, "{user}");
    }
    let log = std::fs::read_to_string(server.scratch.path().join("server.log")).unwrap();
    let failures: Vec<&str> = log.lines().filter(|l| l.contains("failed login")).collect();
    assert_eq!(failures.len(), 3, "{failures:#?}");
    for line in &failures {
        assert!(line.contains("source=127.0.0.3"), "{line}");
        assert!(line.contains(r#"user="victim@example.org""#), "{line}");
        assert!(line.contains("jmap"), "{line}");
    }
    assert!(failures[2].contains("delay_ms=4000"), "{}", failures[2]);
    assert!(!log.contains("guess-"), "a password reached the log");
}
