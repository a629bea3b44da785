//! No injection through stored text (issue 13, item 4), against the real
//! `sealmail serve` binary: what a mail user stores cannot rewrite the
//! operator's terminal through the CLI, and what a sender writes cannot
//! add header fields to a message the server writes (the list's
//! certificate-missing notice).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

use support::pki::{pair, smime_extensions, tempdir, KeyPair};
use support::server::Server;
use support::tools::{require, run};

const PASSWORD: &str = "pw";
/// What an attacker would put in a description: a window title, a fake
/// table row, a colour.
const HOSTILE: &str = "\u{1b}]0;pwned\u{7}\r\nfake row\u{1b}[31m";

/// Bytes no terminal output of the CLI may carry raw: ESC, CR, BEL, NUL,
/// DEL, the C1 CSI (U+009B) and the bidi override U+202E.
fn assert_no_raw_controls(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    for bad in [
        '\u{1b}', '\r', '\u{7}', '\0', '\u{7f}', '\u{9b}', '\u{202e}',
    ] {
        assert!(!text.contains(bad), "{what} carries raw {bad:?}: {text:?}");
    }
}

/// A server with `alice@example.org` (who can log in) and her JMAP session.
fn with_alice() -> (Server, support::server::JmapUser) {
    let server = Server::start();
    server.account_with_password("alice@example.org", PASSWORD);
    let jmap = server.jmap("alice@example.org", PASSWORD);
    (server, jmap)
}

#[test]
fn jmap_refuses_a_description_with_control_characters() {
    let (server, jmap) = with_alice();
    let pem = String::from_utf8(pair("alice@example.org", 2048).cert_pem()).unwrap();
    let args = jmap.call(
        "Certificate/set",
        json!({ "create": { "c1": { "certificate": pem, "description": HOSTILE } } }),
    );
    let err = &args["notCreated"]["c1"];
    assert_eq!(err["type"], "invalidProperties", "{args}");
    assert_eq!(err["properties"], json!(["description"]), "{args}");
    assert!(
        err["description"]
            .as_str()
            .unwrap()
            .contains("control character"),
        "{args}"
    );
    let args = jmap.call(
        "Certificate/set",
        json!({ "create": { "c1": { "certificate": pem, "description": "x".repeat(201) } } }),
    );
    assert_eq!(
        args["notCreated"]["c1"]["type"], "invalidProperties",
        "{args}"
    );

    let args = jmap.call(
        "Certificate/set",
        json!({ "create": { "c1": { "certificate": pem, "description": "laptop, 2026 ✓" } } }),
    );
    let id = args["created"]["c1"]["id"].as_str().unwrap().to_string();
    let args = jmap.call(
        "Certificate/set",
        json!({ "update": { id.clone(): { "description": "ok\u{202e}exe.jpg" } } }),
    );
    assert_eq!(
        args["notUpdated"][&id]["type"], "invalidProperties",
        "{args}"
    );
    let listing = server.ok(&["cert", "list", "alice@example.org"]);
    assert!(listing.contains("laptop, 2026 ✓"), "{listing}");
    assert_no_raw_controls("cert list", listing.as_bytes());
}

#[test]
fn cert_add_refuses_a_description_with_control_characters() {
    let (server, _jmap) = with_alice();
    let cert = pair("alice@example.org", 2048).cert;
    let cert = cert.to_str().unwrap();
    for description in [HOSTILE.to_string(), "tab\there".into(), "y".repeat(201)] {
        let out = server.cli(
            &[
                "cert",
                "add",
                "alice@example.org",
                cert,
                "--description",
                &description,
            ],
            b"",
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{description:?}: {stderr}");
        assert!(stderr.contains("description"), "{stderr}");
        assert_no_raw_controls("the refusal", &out.stderr);
    }
    let listing = server.ok(&["cert", "list", "alice@example.org", "--json"]);
    assert_eq!(serde_json::from_str::<Value>(&listing).unwrap(), json!([]));
}

/// A certificate for `alice@example.org` whose subject CN reads
/// `evil<U+202E>gpj.exe` and whose SAN carries, next to her address, one
/// with a terminal escape sequence: a user can upload such a certificate.
fn hostile_cert(dir: &Path) -> KeyPair {
    require("openssl");
    let (cert, key) = (dir.join("hostile.crt"), dir.join("hostile.key"));
    let mut exts = smime_extensions("alice@example.org");
    exts[0] =
        "subjectAltName=email:alice@example.org,email:x\u{1b}]0;pwned\u{7}\u{1b}[31m@evil.example"
            .to_string();
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-nodes", "-utf8", "-days", "365"])
        .args(["-newkey", "rsa:2048", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", "/CN=evil\u{202e}gpj.exe\u{9b}31m"]);
    for e in &exts {
        cmd.args(["-addext", e]);
    }
    run(&mut cmd, b"");
    KeyPair {
        cert,
        key,
        email: "alice@example.org".into(),
    }
}

#[test]
fn cert_list_escapes_what_an_uploaded_certificate_carries() {
    let dir = tempdir();
    let (server, jmap) = with_alice();
    let pem = String::from_utf8(hostile_cert(dir.path()).cert_pem()).unwrap();
    let args = jmap.call(
        "Certificate/set",
        json!({ "create": { "c1": { "certificate": pem, "description": "uploaded" } } }),
    );
    assert!(args["created"]["c1"]["id"].is_string(), "{args}");

    let table = server.cli(&["cert", "list", "alice@example.org"], b"");
    assert!(table.status.success());
    assert_no_raw_controls("cert list", &table.stdout);
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(
        text.contains("x\\e]0;pwned\\a\\e[31m@evil.example"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2, "one header, one row: {text}");

    let json = server.cli(&["cert", "list", "alice@example.org", "--json"], b"");
    assert!(json.status.success());
    assert_no_raw_controls("cert list --json", &json.stdout);
    let certs: Value = serde_json::from_slice(&json.stdout).unwrap();
    let subject = certs[0]["subject"].as_str().unwrap();
    assert!(
        subject.contains("evil\u{202e}gpj.exe\u{9b}31m"),
        "the JSON value is unchanged: {subject:?}"
    );
    let emails = certs[0]["emailAddresses"].to_string();
    assert!(emails.contains("\\u001b]0;pwned"), "{emails}");
}

#[test]
fn a_list_notice_takes_no_field_from_a_hostile_message_id() {
    let server = Server::start();
    server.ok(&["account", "add", "bob@example.org"]);
    let list_key = pair("team@example.org", 2048);
    server.list_with_key("team@example.org", &["bob@example.org"], &list_key);
    let smime = run(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256", "-crlfeol"])
            .arg(&list_key.cert),
        b"Content-Type: text/plain\r\n\r\nthe plan\r\n",
    );
    // A folded Message-ID that carries a field-looking continuation (not
    // a valid msg-id, so no In-Reply-To), and a bare CR in the Subject
    // (made a line end at the door, so "X-Injected" is the original's own
    // field, which the notice does not carry).
    let head = "Message-ID: <m-1@example.net>\r\n Bcc: evil@example.net\r\n\
                Subject: plans\rX-Injected: 1\r\n";
    let reply = server.lmtp_send("team@example.org", &[head.as_bytes(), &smime].concat());
    assert!(reply.starts_with("250"), "{reply}");

    let inbox = server.inbox("bob@example.org");
    assert_eq!(inbox.len(), 1, "bob gets the notice");
    let notice = String::from_utf8(inbox[0].clone()).unwrap();
    assert!(notice.contains("x509-user-cert-missing"), "{notice}");
    let (header, body) = notice.split_once("\r\n\r\n").unwrap();
    for line in header.split("\r\n").chain(body.split("\r\n")) {
        assert!(
            !line.contains(['\r', '\n', '\u{7}']),
            "bare line end or control: {line:?}"
        );
    }
    for line in header.split("\r\n") {
        let name = line.split(':').next().unwrap().to_ascii_lowercase();
        assert!(
            !["bcc", "x-injected", "in-reply-to", "references"].contains(&name.as_str()),
            "{line:?} in the notice's header:\n{header}"
        );
    }
    assert!(!notice.contains("the plan"), "nothing of the content");
}
