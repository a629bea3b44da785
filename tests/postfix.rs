//! A real Postfix delivers into sealmail over LMTP, configured as the
//! README tells an operator to (`virtual_mailbox_domains`,
//! `virtual_transport = lmtp:inet:...`).
//!
//! Postfix runs as a private instance (`support::postfix`). Mail
//! goes in with Python's `smtplib.SMTP`, is read back with `sealmail
//! export`, and Postfix's own log says what happened on the LMTP side.
//!
//! Postfix needs root to start (its master drops privileges to
//! `mail_owner`); the test fails with a message saying so otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::postfix::{final_status, Postfix, DELIVERY_TIMEOUT};
use support::server::Server;
use support::tools::{openssl_decrypt, python};

/// Sends one message to alice and bob and one to nobody through Postfix's
/// SMTP port; prints the refused recipients of each, as JSON.
const SEND: &str = r#"
import json, smtplib, sys
port, marker, eight_bit = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def message(n, to):
    return ("From: sender@example.net\r\nTo: " + to + "\r\nSubject: via postfix\r\n"
            "Message-ID: <" + str(n) + ".postfix-test@example.net>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            + marker + "\r\n" + eight_bit + "\r\n").encode("utf-8")
refused = []
smtp = smtplib.SMTP("127.0.0.1", port)
for n, rcpts in enumerate((["alice@example.org", "bob@example.org"], ["nobody@example.org"])):
    try:
        r = smtp.sendmail("sender@example.net", rcpts, message(n, ", ".join(rcpts)),
                          mail_options=["BODY=8BITMIME"])
    except smtplib.SMTPRecipientsRefused as e:
        r = e.recipients
    refused.append({k: [v[0], v[1].decode()] for k, v in r.items()})
smtp.quit()
print(json.dumps(refused))
"#;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits until alice and bob each hold a copy and Postfix has logged a
/// final status for all three recipients; asserts what the log says.
fn wait_delivered(server: &Server, postfix: &Postfix) -> (Vec<u8>, Vec<u8>) {
    // Postfix delivers asynchronously.
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let (mut a, mut b, log) = loop {
        let (a, b) = (
            server.inbox("alice@example.org"),
            server.inbox("bob@example.org"),
        );
        let log = postfix.log();
        let done = ["alice@example.org", "bob@example.org", "nobody@example.org"]
            .iter()
            .all(|r| final_status(&log, r).is_some());
        if !a.is_empty() && !b.is_empty() && done {
            break (a, b, log);
        }
        assert!(
            Instant::now() < deadline,
            "Postfix did not finish within {DELIVERY_TIMEOUT:?}: alice has {}, bob has {} \
             messages\nmaillog:\n{log}",
            a.len(),
            b.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!((a.len(), b.len()), (1, 1), "one copy each\nmaillog:\n{log}");
    assert_log(&log, server.lmtp_port);
    (a.remove(0), b.remove(0))
}

/// Postfix's view: alice and bob sent to sealmail's LMTP port, nobody
/// bounced on sealmail's own 550 5.1.1 (not on a Postfix-side lookup).
fn assert_log(log: &str, lmtp_port: u16) {
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{lmtp_port}");
    for rcpt in ["alice@example.org", "bob@example.org"] {
        let lines = final_status(log, rcpt).unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&relay) && l.contains("status=sent")),
            "{rcpt}: no `{relay}` with status=sent in\n{log}"
        );
    }
    let nobody = final_status(log, "nobody@example.org").unwrap();
    assert!(
        nobody
            .iter()
            .any(|l| l.contains("status=bounced") && l.contains("said: 550 5.1.1")),
        "nobody@example.org: expected a bounce on sealmail's 550 5.1.1 in\n{log}"
    );
}

#[test]
fn postfix_delivers_over_lmtp_encrypts_for_alice_and_bounces_the_unknown() {
    let server = Server::start();
    let alice = server.encrypted_account("alice@example.org");
    server.ok(&["account", "add", "bob@example.org"]);
    let postfix = Postfix::start(server.lmtp_port);

    let marker = "POSTFIX-MARKER-3c9e71d2";
    let eight_bit = "Grüße aus Köln — 8-bit ½ €";
    let out = python(SEND, &[&postfix.smtp_port.to_string(), marker, eight_bit]);
    let refused: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        refused,
        serde_json::json!([{}, {}]),
        "Postfix accepted every recipient (sealmail decides who exists)"
    );

    let (a, b) = wait_delivered(&server, &postfix);

    for (rcpt, stored) in [("alice@example.org", &a), ("bob@example.org", &b)] {
        let text = String::from_utf8_lossy(stored);
        assert!(
            text.contains(&format!("Delivered-To: {rcpt}")),
            "{rcpt}:\n{text}"
        );
        assert!(
            text.contains("Return-Path: <sender@example.net>"),
            "{rcpt}:\n{text}"
        );
    }

    let outer = String::from_utf8_lossy(&a);
    assert!(
        outer.contains("application/pkcs7-mime") || outer.contains("application/x-pkcs7-mime"),
        "alice's copy is not S/MIME:\n{outer}"
    );
    assert!(!contains(&a, marker.as_bytes()), "alice's body is in clear");
    let inner = openssl_decrypt(&a, &alice.cert, &alice.key);
    assert!(contains(&inner, marker.as_bytes()));
    assert!(
        contains(&inner, eight_bit.as_bytes()),
        "the 8-bit line did not survive Postfix and encryption byte for byte:\n{}",
        String::from_utf8_lossy(&inner)
    );

    assert!(contains(&b, marker.as_bytes()));
    assert!(
        contains(&b, eight_bit.as_bytes()),
        "bob's 8-bit line changed on the way:\n{}",
        String::from_utf8_lossy(&b)
    );
}
