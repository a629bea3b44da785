//! The newcomer's path, end to end, with the real binary and real
//! clients: an account made with the CLI, two certificates uploaded over
//! JMAP (a key rotation), encryption turned on over JMAP, a message
//! delivered by `swaks` over LMTP, read back with Python's `imaplib`, and
//! opened by `openssl cms -decrypt` with either key — while the raw data
//! directory holds no trace of the body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use base64::Engine as _;
use serde_json::json;
use support::pki::pair;
use support::server::Server;
use support::tools::{found_in_files, openssl_decrypt, python, require, run};

const PASSWORD: &str = "newcomer password";

const IMAP_FETCH: &str = r#"
import imaplib, sys, base64
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
imap.select("INBOX", readonly=True)
typ, data = imap.fetch("1", "(BODY.PEEK[])")
assert typ == "OK", data
print(base64.b64encode(data[0][1]).decode())
imap.logout()
"#;

#[test]
fn upload_certificates_over_jmap_deliver_over_lmtp_read_over_imap() {
    require("swaks");
    let server = Server::start();
    let user = "alice@example.org";
    server.account_with_password(user, PASSWORD);

    let old = pair(user, 2048);
    let new = pair(user, 4096);
    let jmap = server.jmap(user, PASSWORD);
    for (i, k) in [&old, &new].iter().enumerate() {
        let pem = String::from_utf8(k.cert_pem()).unwrap();
        let set = jmap.call(
            "Certificate/set",
            json!({ "create": { format!("c{i}"): { "certificate": pem } } }),
        );
        assert!(
            set["created"][format!("c{i}")]["fingerprint"].is_string(),
            "{set}"
        );
    }
    let set = jmap.call(
        "EncryptionSettings/set",
        json!({ "update": { "singleton": { "isEnabled": true } } }),
    );
    assert!(
        set["updated"]["singleton"].is_object() || set["updated"]["singleton"].is_null(),
        "{set}"
    );
    assert!(set.get("notUpdated").is_none_or(|n| n.is_null()), "{set}");

    let marker = "NEWCOMER-BODY-3c1d9e-never-on-disk";
    let transcript = run(
        Command::new("swaks")
            .args([
                "--protocol",
                "LMTP",
                "--server",
                "127.0.0.1",
                "--port",
                &server.lmtp_port.to_string(),
            ])
            .args([
                "--from",
                "bob@example.net",
                "--to",
                user,
                "--h-Subject",
                "Welcome",
                "--body",
                marker,
            ]),
        b"",
    );
    assert!(String::from_utf8_lossy(&transcript).contains("250 2.0.0"));

    let fetched = python(IMAP_FETCH, &[&server.imap_port.to_string(), user, PASSWORD]);
    let message = base64::engine::general_purpose::STANDARD
        .decode(fetched.trim())
        .unwrap();
    assert!(String::from_utf8_lossy(&message).contains("Subject: Welcome"));
    for k in [&old, &new] {
        let inner = openssl_decrypt(&message, &k.cert, &k.key);
        assert!(
            String::from_utf8_lossy(&inner).contains(marker),
            "key {:?} does not open it",
            k.cert
        );
    }
    assert_eq!(
        found_in_files(&server.data_dir, marker.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );
}
