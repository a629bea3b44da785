//! Mail a client stores itself (IMAP APPEND, JMAP `Email/import`) is
//! encrypted by default for an account with encryption enabled, against
//! the real server: plain `encryption enable` (no flags) and each door
//! stores S/MIME that `openssl cms -decrypt` opens, with no plaintext in
//! the data directory; `--append-in-clear` stores the client's bytes as
//! sent. `Email/set` create (a message composed from JSON) is a third
//! door, encrypted the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::pki::{pair, KeyPair};
use support::server::Server;
use support::tools::{found_in_files, openssl_decrypt};

const PASSWORD: &str = "append pw";

/// An account with a password and a certificate; returns its key pair.
fn account(server: &Server, email: &str) -> KeyPair {
    let keys = pair(email, 2048);
    server.account_with_password(email, PASSWORD);
    server.ok(&["cert", "add", email, keys.cert.to_str().unwrap()]);
    keys
}

fn draft(from: &str, marker: &str) -> String {
    format!("From: {from}\r\nTo: someone@example.net\r\nSubject: draft\r\n\r\n{marker}\r\n")
}

fn encrypt_on_append(server: &Server, email: &str) -> serde_json::Value {
    let status: serde_json::Value =
        serde_json::from_str(&server.ok(&["encryption", "status", email, "--json"])).unwrap();
    status["encryptOnAppend"].clone()
}

#[test]
fn appended_mail_is_encrypted_by_default() {
    let server = Server::start();
    let email = "alice@example.org";
    let keys = account(&server, email);
    server.ok(&["encryption", "enable", email]);
    assert_eq!(encrypt_on_append(&server, email), true);

    let markers = [
        "APPENDED-DRAFT-SECRET-6f01c2",
        "IMPORTED-SENT-SECRET-93ab7e",
        "SET-CREATE-SECRET-20d4f8",
    ];
    server.imap_append(email, PASSWORD, &draft(email, markers[0]));
    let jmap = server.jmap(email, PASSWORD);
    let inbox =
        jmap.call("Mailbox/query", json!({ "filter": { "role": "inbox" } }))["ids"][0].clone();
    let inbox = inbox.as_str().unwrap();
    let blob = jmap.upload(draft(email, markers[1]).into_bytes());
    let imported = jmap.call(
        "Email/import",
        json!({ "emails": { "e1": { "blobId": blob, "mailboxIds": { inbox: true } } } }),
    );
    assert!(imported["created"]["e1"]["id"].is_string(), "{imported}");
    let created = jmap.call(
        "Email/set",
        json!({ "create": { "c1": {
            "mailboxIds": { inbox: true },
            "subject": "draft",
            "bodyValues": { "b": { "value": markers[2] } },
            "textBody": [{ "partId": "b", "type": "text/plain" }],
        } } }),
    );
    assert!(created["created"]["c1"]["id"].is_string(), "{created}");

    let stored = server.inbox(email);
    assert_eq!(stored.len(), 3, "the APPEND, the import and the create");
    let mut opened = String::new();
    for raw in &stored {
        assert!(
            String::from_utf8_lossy(raw).contains("application/pkcs7-mime"),
            "stored in clear:\n{}",
            String::from_utf8_lossy(raw)
        );
        opened.push_str(&String::from_utf8_lossy(&openssl_decrypt(
            raw, &keys.cert, &keys.key,
        )));
    }
    assert!(opened.contains(markers[0]), "the APPEND did not arrive");
    assert!(opened.contains(markers[1]), "the import did not arrive");
    assert!(opened.contains(markers[2]), "the create did not arrive");
    for m in markers {
        let hits = found_in_files(&server.data_dir, m.as_bytes());
        assert!(hits.is_empty(), "{m} in clear at {hits:?}");
    }
}

#[test]
fn append_in_clear_stores_the_clients_bytes_as_sent() {
    let server = Server::start();
    let email = "bob@example.org";
    account(&server, email);
    server.ok(&["encryption", "enable", email, "--append-in-clear"]);
    assert_eq!(encrypt_on_append(&server, email), false);
    let marker = "CLEAR-BY-CHOICE-MARKER-5a7e31";
    let sent = draft(email, marker);
    server.imap_append(email, PASSWORD, &sent);
    assert_eq!(server.inbox(email), vec![sent.into_bytes()]);
    assert!(
        !found_in_files(&server.data_dir, marker.as_bytes()).is_empty(),
        "the opt-out stores the draft as sent, readable on disk"
    );

    // Enabling again without the flag turns append encryption back on;
    // the old flag is still accepted and changes nothing.
    server.ok(&["encryption", "enable", email, "--encrypt-on-append"]);
    assert_eq!(encrypt_on_append(&server, email), true);
}
