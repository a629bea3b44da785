//! JMAP cannot be shut off for others, against the real binary: failed
//! logins wait longer per recent failure from the same address (like
//! IMAP), and request slots belong to an authenticated account, so that
//! one account's stalled requests leave the others served.
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
