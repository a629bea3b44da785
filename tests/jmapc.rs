//! An independent JMAP client, Python's `jmapc` (PyPI; installed by
//! `scripts/install-deps.sh`), against the real `sealmail serve` over
//! HTTPS (jmapc speaks only `https://`): the session (RFC 8620 §2),
//! `Mailbox/get` (RFC 8621 §2.1), `Email/query` + `Email/get` with a
//! back-reference (RFC 8620 §3.7), `Thread/get` (RFC 8621 §3.1), push over
//! the event source (RFC 8620 §7.3), `Email/changes` after a delivery and
//! after a keyword change (RFC 8620 §5.2), `Email/set` keywords (RFC 8621
//! §4.6) and `SearchSnippet/get` (RFC 8621 §5.1). The client script is
//! `tests/tools/jmapc_drive.py`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::imap::server_cert;
use support::server::{free_port, Server};
use support::tools::{require, run};

const USER: &str = "alice@example.org";
const PASSWORD: &str = "alice's password";

#[test]
fn jmapc_syncs_threads_changes_keywords_snippets_and_push() {
    require("python3");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_cert(dir.path(), "localhost");
    let tls_port = free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[
            ("SEALMAIL_TLS_CERT", cert.to_str().unwrap()),
            ("SEALMAIL_TLS_KEY", key.to_str().unwrap()),
            ("SEALMAIL_JMAP_TLS_LISTEN", &listen),
        ],
    );
    server.account_with_password(USER, PASSWORD);
    let first = format!(
        "From: bob@example.net\r\nTo: {USER}\r\nSubject: plans\r\nMessage-ID: <plans@example.net>\r\n\r\nShall we?\r\n"
    );
    let reply = format!(
        "From: bob@example.net\r\nTo: {USER}\r\nSubject: Re: plans\r\nMessage-ID: <re-plans@example.net>\r\nIn-Reply-To: <plans@example.net>\r\n\r\nYes.\r\n"
    );
    for m in [first, reply] {
        assert!(server.lmtp_send(USER, m.as_bytes()).starts_with("250"));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/jmapc_drive.py");
    let out = run(
        Command::new("python3")
            .arg(script)
            .args([
                &format!("localhost:{tls_port}"),
                USER,
                PASSWORD,
                &server.lmtp_port.to_string(),
            ])
            .env("REQUESTS_CA_BUNDLE", &cert),
        b"",
    );
    let seen: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(!seen["account"].as_str().unwrap().is_empty(), "{seen}");
    let boxes = seen["mailboxes"].to_string();
    assert!(
        boxes.contains(r#"["Inbox","inbox"]"#) || boxes.contains(r#"["INBOX","inbox"]"#),
        "{seen}"
    );
    assert_eq!(seen["subjects"], serde_json::json!(["Re: plans", "plans"]));
    assert_eq!(seen["threads"], 1, "a reply joins its thread: {seen}");
    assert_eq!(seen["thread_members"], 2);
    assert_eq!(seen["push"], true, "the delivery was pushed: {seen}");
    assert_eq!(seen["created"], 1, "{seen}");
    assert_eq!(
        seen["updated"],
        serde_json::json!([seen["first"].clone()]),
        "{seen}"
    );
    assert_eq!(seen["snippet"], "<mark>third</mark> message", "{seen}");
}
