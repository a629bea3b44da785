//! Server-side reading (ARCHITECTURE.md "Server-side reading"), against
//! the real `sealmail` binary: Python's `imaplib` (a client with no S/MIME
//! support) reads and searches mail delivered encrypted once the user has
//! handed over their key; JMAP `Email/get` returns its text; the data
//! directory, the debug log and the temp directory still hold no
//! plaintext while sessions are open; the key is stored only sealed; and
//! taking the key away (disable, password reset, PrivateKey/set destroy)
//! works at once, in sessions already open.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "reading/jmap.rs"]
mod jmap;

use std::process::{Command, Output};

use serde_json::json;
use support::pki::{pair, KeyPair};
use support::server::Server;
use support::tools::{found_in_files, python, run};

const PASSWORD: &str = "correct horse";
const USER: &str = "reader@example.org";

fn message(marker: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@example.net>\r\nTo: {USER}\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= {marker}\r\n\
         Message-ID: <{marker}@example.net>\r\nDate: Mon, 7 Dec 2026 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\nThe secret word is {marker}-body.\r\nBye.\r\n"
    )
    .into_bytes()
}

/// A server with `USER` (password, certificate, encryption on) and one
/// message delivered to it, stored as S/MIME.
fn encrypted_user_with_mail(marker: &str) -> (Server, KeyPair) {
    let server = Server::start();
    server.account_with_password(USER, PASSWORD);
    let keys = pair(USER, 2048);
    server.ok(&["cert", "add", USER, keys.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", USER]);
    let reply = server.lmtp_send(USER, &message(marker));
    assert!(reply.starts_with("250"), "{reply}");
    let stored = server.inbox(USER);
    assert!(String::from_utf8_lossy(&stored[0]).contains("application/pkcs7-mime"));
    (server, keys)
}

/// `sealmail reading enable USER --key KEY --password-stdin` with
/// `password` on standard input.
fn reading_enable(server: &Server, key: &std::path::Path, password: &str) -> Output {
    let key = key.to_str().unwrap();
    server.cli(
        &["reading", "enable", USER, "--key", key, "--password-stdin"],
        format!("{password}\n").as_bytes(),
    )
}

fn enable_reading(server: &Server, keys: &KeyPair) -> String {
    let out = reading_enable(server, &keys.key, PASSWORD);
    assert!(
        out.status.success(),
        "reading enable: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Logs in with imaplib, runs FETCH and SEARCH, prints what it saw as JSON.
const READ: &str = r#"
import imaplib, json, sys
port, user, password, word = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
imap.select("INBOX")
typ, data = imap.fetch("1", "(RFC822.SIZE BODYSTRUCTURE BODY.PEEK[])")
assert typ == "OK", data
meta = data[0][0].decode()
body = data[0][1]
size = int(meta.split("RFC822.SIZE ")[1].split()[0].rstrip(")"))
typ, found = imap.search(None, "BODY", word)
typ2, text = imap.search(None, "TEXT", word)
print(json.dumps({"meta": meta, "body": body.decode("utf-8", "replace"), "len": len(body),
                  "size": size, "body_search": found[0].decode(), "text_search": text[0].decode()}))
imap.logout()
"#;

/// Logs in, reads the message decrypted, says `ready` and stays logged
/// in until its standard input closes.
const HOLD_OPEN: &str = r#"
import imaplib, sys
port, user, password, word = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
imap.select("INBOX")
typ, data = imap.fetch("1", "(BODY.PEEK[])")
assert word.encode() in data[0][1]
print("ready", flush=True)
sys.stdin.read()
imap.logout()
"#;

fn read(server: &Server, user: &str, password: &str, word: &str) -> serde_json::Value {
    let out = python(READ, &[&server.imap_port.to_string(), user, password, word]);
    serde_json::from_str(&out).unwrap()
}

#[test]
fn imaplib_reads_and_searches_mail_delivered_encrypted() {
    let marker = "ZEBRA7431";
    let (server, keys) = encrypted_user_with_mail(marker);
    let word = format!("{marker}-body");
    let before = read(&server, USER, PASSWORD, &word);
    assert!(before["body"]
        .as_str()
        .unwrap()
        .contains("application/pkcs7-mime"));
    assert!(!before["body"].as_str().unwrap().contains(&word));
    assert_eq!(
        before["body_search"], "",
        "the server cannot read the body yet"
    );

    let said = enable_reading(&server, &keys);
    assert!(said.contains("enabled"), "{said}");
    let after = read(&server, USER, PASSWORD, &word);
    let body = after["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("The secret word is {marker}-body.")),
        "{body}"
    );
    assert!(
        body.contains("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?="),
        "clear header kept: {body}"
    );
    assert!(!body.contains("pkcs7"), "{body}");
    assert_eq!(
        after["size"], after["len"],
        "RFC822.SIZE is the size served"
    );
    let meta = after["meta"].as_str().unwrap().to_ascii_lowercase();
    assert!(meta.contains("(\"text\" \"plain\""), "{meta}");
    assert_eq!(after["body_search"], "1");
    assert_eq!(after["text_search"], "1");

    // What the disk holds is unchanged: S/MIME, and no trace of the body
    // in the data directory, the debug log or the temp directory, also
    // while a session that reads it decrypted is open.
    let mut open_session = Command::new("python3")
        .arg("-c")
        .arg(HOLD_OPEN)
        .args([&server.imap_port.to_string(), USER, PASSWORD, &word])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(open_session.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    for place in [server.data_dir.as_path(), server.scratch.path()] {
        let hits = found_in_files(place, word.as_bytes());
        assert!(
            hits.is_empty(),
            "plaintext at {hits:?} while a session reads"
        );
    }
    drop(open_session.stdin.take());
    assert!(open_session.wait().unwrap().success());
    let stored = server.inbox(USER);
    assert!(String::from_utf8_lossy(&stored[0]).contains("application/pkcs7-mime"));
    let status = server.ok(&["reading", "status", USER, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["enabled"], true);
    assert_eq!(status["keys"].as_array().unwrap().len(), 1);
    for place in [server.data_dir.as_path(), server.scratch.path()] {
        let hits = found_in_files(place, format!("{marker}-body").as_bytes());
        assert!(hits.is_empty(), "plaintext at {hits:?}");
    }
}

#[test]
fn the_key_is_stored_only_sealed() {
    let marker = "OKAPI5120";
    let (server, keys) = encrypted_user_with_mail(marker);
    enable_reading(&server, &keys);
    // The key's PKCS#8 DER, and its PEM text, appear nowhere in the data
    // directory or the log.
    let der = run(
        Command::new("openssl").args([
            "pkey",
            "-in",
            keys.key.to_str().unwrap(),
            "-outform",
            "DER",
        ]),
        b"",
    );
    let pem = String::from_utf8(keys.key_pem()).unwrap();
    let pem_line = pem.lines().nth(3).unwrap().to_string();
    for place in [server.data_dir.as_path(), server.scratch.path()] {
        for needle in [&der[der.len() - 64..], pem_line.as_bytes()] {
            let hits = found_in_files(place, needle);
            assert!(hits.is_empty(), "key material at {hits:?}");
        }
    }
    // The process keeps keys out of core dumps.
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.pid())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    assert!(core.split_whitespace().nth(4) == Some("0"), "{core}");
    // Another account, even with the same password, reads nothing of it.
    server.account_with_password("other@example.org", PASSWORD);
    let other = server.jmap("other@example.org", PASSWORD);
    let got = other.call("PrivateKey/get", json!({"ids": null}));
    assert_eq!(got["list"], json!([]));
}

/// Stays logged in (on the node at PORT), has reading disabled through
/// the CLI of DATA_DIR's server, and waits up to WAIT seconds (0: not at
/// all) for the open session to serve the message as stored (S/MIME);
/// prints `ok`, or `still decrypted`.
const DISABLED_WHILE_OPEN: &str = r#"
import imaplib, subprocess, sys, time
port, user, password, word, binary, data_dir, wait = sys.argv[1:8]
imap = imaplib.IMAP4("127.0.0.1", int(port))
imap.login(user, password)
imap.select("INBOX")
def body():
    typ, data = imap.fetch("1", "(BODY.PEEK[])")
    return data[0][1].decode("utf-8", "replace")
assert word in body(), "reading works in the open session"
done = subprocess.run([binary, "reading", "disable", user, "--data-dir", data_dir],
                      capture_output=True, text=True)
assert done.returncode == 0, done.stderr
deadline = time.monotonic() + float(wait)
after = body()
while word in after and time.monotonic() < deadline:
    time.sleep(0.05)
    after = body()
print("ok" if word not in after and "pkcs7-mime" in after else "still decrypted")
imap.logout()
"#;

/// Runs [`DISABLED_WHILE_OPEN`]: a session on `reader`, the disable on
/// `writer`, waiting up to `wait` seconds.
fn disable_while_open(reader: &Server, writer: &Server, marker: &str, wait: &str) -> String {
    python(
        DISABLED_WHILE_OPEN,
        &[
            &reader.imap_port.to_string(),
            USER,
            PASSWORD,
            &format!("{marker}-body"),
            env!("CARGO_BIN_EXE_sealmail"),
            writer.data_dir.to_str().unwrap(),
            wait,
        ],
    )
}

#[test]
fn disabling_takes_effect_in_open_sessions() {
    let marker = "TAPIR2280";
    let (server, keys) = encrypted_user_with_mail(marker);
    enable_reading(&server, &keys);
    // On the node that made the change: with the very next command.
    let out = disable_while_open(&server, &server, marker, "0");
    assert_eq!(out.trim(), "ok");
    let status = server.ok(&["reading", "status", USER, "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["enabled"], false);
    assert_eq!(status["keys"], json!([]));
}

#[test]
fn an_operator_password_reset_drops_the_keys() {
    let marker = "LEMUR3391";
    let (server, keys) = encrypted_user_with_mail(marker);
    enable_reading(&server, &keys);
    let out = server.cli(
        &["account", "passwd", USER, "--password-stdin"],
        b"new password\n",
    );
    assert!(out.status.success());
    let status: serde_json::Value =
        serde_json::from_str(&server.ok(&["reading", "status", USER, "--json"])).unwrap();
    assert_eq!(status["keys"], json!([]));
    let word = format!("{marker}-body");
    let seen = read(&server, USER, "new password", &word);
    assert!(!seen["body"].as_str().unwrap().contains(&word));
}

#[test]
fn enabling_needs_the_accounts_password_and_a_matching_key() {
    let (server, keys) = encrypted_user_with_mail("HERON4410");
    let wrong = reading_enable(&server, &keys.key, "not the password");
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("password"));
    let stranger = pair("stranger@example.org", 2048);
    let mismatched = reading_enable(&server, &stranger.key, PASSWORD);
    assert_eq!(mismatched.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&mismatched.stderr).contains("matches none"));
    let garbage = support::pki::scratch().join("garbage.pem");
    std::fs::write(
        &garbage,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let broken = reading_enable(&server, &garbage, PASSWORD);
    assert_eq!(broken.status.code(), Some(1));
}

#[test]
fn an_app_token_made_with_the_password_reads_too() {
    let marker = "GECKO1188";
    let (server, keys) = encrypted_user_with_mail(marker);
    enable_reading(&server, &keys);
    let user = server.jmap(USER, PASSWORD);
    let made = user.call("AppToken/set", json!({"create": {"t": {"name": "phone"}}}));
    let secret = made["created"]["t"]["secret"].as_str().unwrap().to_string();
    let word = format!("{marker}-body");
    let seen = read(&server, USER, &secret, &word);
    assert!(seen["body"].as_str().unwrap().contains(&word), "{seen}");
    assert_eq!(seen["body_search"], "1");
    // A token the operator made (no password at hand) carries no copy,
    // and does not read through keys a password session unlocked.
    let token: serde_json::Value =
        serde_json::from_str(&server.ok(&["token", "add", USER, "--json"])).unwrap();
    let plain = token["secret"].as_str().unwrap().to_string();
    let _ = user.call("Mailbox/get", json!({"ids": null}));
    let seen = read(&server, USER, &plain, &word);
    assert!(!seen["body"].as_str().unwrap().contains(&word));
    let status: serde_json::Value =
        serde_json::from_str(&server.ok(&["reading", "status", USER, "--json"])).unwrap();
    assert_eq!(status["unlocked"], true, "a password request unlocked them");
    let jmap_plain = jmap::bearer_call(
        &server,
        &plain,
        json!(["Email/get", {"accountId": user.account_id, "ids": null,
                             "properties": ["bodyValues", "attachments"],
                             "fetchAllBodyValues": true}, "g"]),
    );
    let text = jmap_plain["list"].to_string();
    assert!(
        text.contains("smime.p7m") && !text.contains(&word),
        "{jmap_plain}"
    );
    let jmap_copy = jmap::bearer_call(
        &server,
        &secret,
        json!(["Email/get", {"accountId": user.account_id, "ids": null,
                             "properties": ["bodyValues"], "fetchAllBodyValues": true}, "g"]),
    );
    assert!(jmap_copy["list"].to_string().contains(&word), "{jmap_copy}");
}

/// Two nodes on one PostgreSQL (ARCHITECTURE.md "More than one machine"):
/// reading disabled through node A stops decryption in a session already
/// open on node B at once (through the change notifications), well
/// before B's once-a-minute sweep would.
#[test]
fn disabling_on_one_node_stops_reading_on_another() {
    let db = support::postgres::test_db();
    let node = |dir: &std::path::Path| {
        Server::start_with_env(
            dir,
            &[
                ("SEALMAIL_STORE_ENGINE", "postgres"),
                ("SEALMAIL_STORE_URL", db.url.as_str()),
                ("SEALMAIL_STORE_POOL_SIZE", "4"),
            ],
        )
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = node(dir_a.path());
    // Every node has the same master key (the README's "More than one
    // machine"): the keys are sealed with it.
    std::fs::copy(
        dir_a.path().join("master.key"),
        dir_b.path().join("master.key"),
    )
    .unwrap();
    let b = node(dir_b.path());
    a.account_with_password(USER, PASSWORD);
    let keys = pair(USER, 2048);
    a.ok(&["cert", "add", USER, keys.cert.to_str().unwrap()]);
    a.ok(&["encryption", "enable", USER]);
    let marker = "WOMBAT5151";
    assert!(a.lmtp_send(USER, &message(marker)).starts_with("250"));
    enable_reading(&a, &keys);
    // why a wait: the change reaches B through PostgreSQL's NOTIFY; 10 s
    // is well under B's once-a-minute sweep, which must not be what acts.
    let out = disable_while_open(&b, &a, marker, "10");
    assert_eq!(out.trim(), "ok");
}
