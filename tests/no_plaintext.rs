//! No plaintext at rest: marked messages reach an opted-in account by
//! every door — LMTP delivery (small, and large enough for a segment
//! file), IMAP APPEND (encrypted by default), JMAP Email/import, and a list
//! that re-encrypts what was sent encrypted to it — and then the whole data directory, the server's debug log and its
//! temporary directory are read raw: zero hits. A control marker of an
//! account without encryption is found, so the scan can see plaintext.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use serde_json::json;
use support::pki::pair;
use support::server::Server;
use support::tools::{found_in_files, openssl_decrypt, require, run};

const PASSWORD: &str = "no plaintext";

fn message(marker: &str) -> Vec<u8> {
    format!("From: someone@example.net\r\nTo: alice@example.org\r\nSubject: by JMAP\r\n\r\n{marker}\r\n").into_bytes()
}

#[test]
fn every_door_leaves_only_ciphertext_on_disk() {
    require("swaks");
    let server = Server::start();
    let alice = pair("alice@example.org", 2048);
    let team_key = pair("team@example.org", 2048);
    server.account_with_password("alice@example.org", PASSWORD);
    server.ok(&[
        "cert",
        "add",
        "alice@example.org",
        alice.cert.to_str().unwrap(),
    ]);
    server.ok(&["encryption", "enable", "alice@example.org"]);
    server.ok(&["account", "add", "bob@example.org"]);
    server.ok(&[
        "list",
        "add",
        "team@example.org",
        "--member",
        "alice@example.org",
    ]);
    server.ok(&[
        "list",
        "key",
        "add",
        "team@example.org",
        "--cert",
        team_key.cert.to_str().unwrap(),
        "--key",
        team_key.key.to_str().unwrap(),
    ]);

    let markers = [
        "LMTP-SECRET-a81f20",
        "IMAP-APPEND-SECRET-77c0e1",
        "JMAP-IMPORT-SECRET-3b9d42",
        "LIST-REENCRYPTED-SECRET-c55a07",
        "LMTP-LARGE-SECRET-5d1e99",
    ];
    let lmtp = |to: &str, body: &str| {
        run(
            Command::new("swaks")
                .args([
                    "--protocol",
                    "LMTP",
                    "--server",
                    "127.0.0.1",
                    "--port",
                    &server.lmtp_port.to_string(),
                ])
                .args(["--from", "x@example.net", "--to", to, "--body", body]),
            b"",
        )
    };
    lmtp("alice@example.org", markers[0]);
    server.imap_append(
        "alice@example.org",
        PASSWORD,
        &format!(
            "From: alice@example.org\r\nTo: alice@example.org\r\nSubject: draft\r\n\r\n{}\r\n",
            markers[1]
        ),
    );

    let jmap = server.jmap("alice@example.org", PASSWORD);
    let inbox =
        jmap.call("Mailbox/query", json!({ "filter": { "role": "inbox" } }))["ids"][0].clone();
    let blob = jmap.upload(message(markers[2]));
    let imported = jmap.call("Email/import", json!({ "emails": { "e1": { "blobId": blob, "mailboxIds": { inbox.as_str().unwrap(): true } } } }));
    assert!(imported["created"]["e1"]["id"].is_string(), "{imported}");

    let inner = format!("Content-Type: text/plain\r\n\r\n{}\r\n", markers[3]);
    let smime = run(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256", "-subject", "to the list"])
            .arg(&team_key.cert),
        inner.as_bytes(),
    );
    let lmtp_data = |to: &str, data: &[u8]| {
        let reply = server.lmtp_send(to, data);
        assert!(reply.starts_with("250"), "{reply}");
    };
    lmtp_data("team@example.org", &smime);

    // Large messages are stored in segment files, not in the database.
    let lmtp_large = |to: &str, marker: &str| {
        let mut body =
            format!("From: x@example.net\r\nTo: {to}\r\nSubject: large\r\n\r\n{marker}\r\n");
        while body.len() < 200 * 1024 {
            body.push_str(&"y".repeat(76));
            body.push_str("\r\n");
        }
        lmtp_data(to, body.as_bytes());
    };
    lmtp_large("alice@example.org", markers[4]);

    let control = "CONTROL-CLEAR-MARKER-90e4";
    lmtp("bob@example.org", control);
    let large_control = "CONTROL-LARGE-MARKER-4b2c18";
    lmtp_large("bob@example.org", large_control);

    // Everything arrived, encrypted: export and open each with alice's key.
    let mut opened = String::new();
    for bytes in server.inbox("alice@example.org") {
        opened.push_str(&String::from_utf8_lossy(&openssl_decrypt(
            &bytes,
            &alice.cert,
            &alice.key,
        )));
    }
    for m in markers {
        assert!(opened.contains(m), "{m} did not arrive");
    }

    assert!(
        !found_in_files(&server.data_dir, control.as_bytes()).is_empty(),
        "the scan cannot see plaintext"
    );
    assert!(
        !found_in_files(&server.data_dir.join("segments"), large_control.as_bytes()).is_empty(),
        "the scan cannot see plaintext in segment files"
    );
    for m in markers {
        for place in [server.data_dir.as_path(), server.scratch.path()] {
            let hits = found_in_files(place, m.as_bytes());
            assert!(hits.is_empty(), "{m} in clear at {hits:?}");
        }
    }
}
