//! Mail in, end to end: the real `sealmail serve` binary, delivered to by
//! `swaks` and Python's `smtplib.LMTP`, managed by the CLI, and the data
//! directory read raw afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::lmtp::transaction;
use support::pki::pair;
use support::server::Server;
use support::tools::{found_in_files, openssl_decrypt, python, require, run};

fn swaks(port: u16, to: &str, body: &str) -> String {
    require("swaks");
    let out = run(
        Command::new("swaks")
            .args([
                "--protocol",
                "LMTP",
                "--server",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .args([
                "--from",
                "sender@example.net",
                "--to",
                to,
                "--h-Subject",
                "swaks test",
                "--body",
                body,
            ]),
        b"",
    );
    String::from_utf8_lossy(&out).into_owned()
}

fn opted_in(server: &Server, email: &str, bits: u32) -> support::pki::KeyPair {
    let k = pair(email, bits);
    server.ok(&["account", "add", email]);
    server.ok(&["cert", "add", email, k.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", email]);
    k
}

#[test]
fn swaks_delivery_to_an_opted_in_account_is_stored_as_smime_only() {
    let server = Server::start();
    let alice = opted_in(&server, "alice@example.org", 2048);
    server.ok(&["account", "add", "bob@example.org"]);
    let secret = "SECRET-MARKER-7f3a9c-body-of-alice";
    let clear = "CLEAR-MARKER-51be02-body-of-bob";
    let transcript = swaks(server.lmtp_port, "alice@example.org", secret);
    assert!(transcript.contains("250 2.0.0"), "{transcript}");
    swaks(server.lmtp_port, "bob@example.org", clear);

    let stored = server.inbox("alice@example.org");
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8_lossy(&stored[0]);
    assert!(
        text.contains("Subject: swaks test"),
        "subject stays in clear"
    );
    assert!(text.contains("Delivered-To: alice@example.org"));
    let inner = openssl_decrypt(&stored[0], &alice.cert, &alice.key);
    assert!(String::from_utf8_lossy(&inner).contains(secret));

    // Raw bytes of the whole data directory: the control marker of the
    // plaintext account is there (the scan works), the secret is not.
    assert!(
        !found_in_files(&server.data_dir, clear.as_bytes()).is_empty(),
        "scan found the control marker nowhere"
    );
    assert_eq!(
        found_in_files(&server.data_dir, secret.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
}

const SMTPLIB: &str = r#"
import json, smtplib, sys
port = int(sys.argv[1])
msg = "From: sender@example.net\r\nTo: x\r\nSubject: smtplib test\r\n\r\n" + sys.argv[2] + "\r\n"
lmtp = smtplib.LMTP("127.0.0.1", port)
code, _ = lmtp.ehlo_or_helo_if_needed() or (None, None)
try:
    refused = lmtp.sendmail("sender@example.net", ["alice@example.org", "nobody@example.org", "bob@example.org"], msg)
except smtplib.SMTPRecipientsRefused as e:
    refused = e.recipients
lmtp.quit()
print(json.dumps({k: [v[0], v[1].decode()] for k, v in refused.items()}))
"#;

#[test]
fn smtplib_lmtp_gets_550_for_an_unknown_recipient_and_delivers_the_others() {
    let server = Server::start();
    let alice = opted_in(&server, "alice@example.org", 2048);
    server.ok(&["account", "add", "bob@example.org"]);
    let out = python(
        SMTPLIB,
        &[&server.lmtp_port.to_string(), "hello from smtplib"],
    );
    let refused: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(refused["nobody@example.org"][0], 550, "{refused}");
    assert!(refused["nobody@example.org"][1]
        .as_str()
        .unwrap()
        .contains("5.1.1"));
    assert_eq!(refused.as_object().unwrap().len(), 1);
    let a = server.inbox("alice@example.org");
    assert!(
        String::from_utf8_lossy(&openssl_decrypt(&a[0], &alice.cert, &alice.key))
            .contains("hello from smtplib")
    );
    let b = server.inbox("bob@example.org");
    assert!(String::from_utf8_lossy(&b[0]).contains("hello from smtplib"));
}

#[test]
fn one_reply_per_recipient_and_one_for_a_whole_list() {
    let server = Server::start();
    let alice = opted_in(&server, "alice@example.org", 2048);
    server.ok(&["account", "add", "bob@example.org"]);
    server.ok(&[
        "list",
        "add",
        "team@example.org",
        "--member",
        "alice@example.org",
        "--member",
        "bob@example.org",
    ]);
    let replies = transaction(
        server.lmtp_port,
        &["team@example.org", "bob@example.org"],
        b"Subject: list test\r\n\r\nto the list\r\n",
    )
    .data;
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[0].starts_with("250 2.0.0") && replies[0].contains("2 members"),
        "{replies:?}"
    );
    assert!(replies[1].starts_with("250 2.0.0"), "{replies:?}");
    let a = server.inbox("alice@example.org");
    assert_eq!(a.len(), 1);
    assert!(
        String::from_utf8_lossy(&openssl_decrypt(&a[0], &alice.cert, &alice.key))
            .contains("to the list")
    );
    assert_eq!(
        server.inbox("bob@example.org").len(),
        2,
        "one from the list, one direct"
    );
}
