//! `sealmail backup DIR` and `sealmail restore DIR` against the real
//! server: a backup taken while mail keeps arriving over LMTP holds every
//! message acknowledged before it started, whole, and after a restore
//! into a fresh data directory a new server serves them over IMAP, and
//! `openssl cms -decrypt` opens them with the account's key. What a backup
//! must never hold (the master key, plaintext of an encrypted account)
//! and what the two commands refuse are checked on the real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use support::pki::{pair, tempdir, KeyPair};
use support::server::{binary, Server};
use support::tools::{found_in_files, lf, openssl_decrypt, python, run_unchecked};

const ALICE: &str = "alice@example.org";
const PASSWORD: &str = "backup test password";
/// In every body, never in a header: what must not be on disk in clear.
const SECRET: &str = "BODY-SECRET-PLAINTEXT";

/// Alice with a password (for IMAP), a fresh certificate and encryption on.
fn encrypted_alice(server: &Server) -> KeyPair {
    let keys = pair(ALICE, 2048);
    server.account_with_password(ALICE, PASSWORD);
    server.ok(&["cert", "add", ALICE, keys.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", ALICE]);
    keys
}

/// Message `n`: its marker in the clear Subject, the secret in the body;
/// every other one larger than the segment threshold (16 KiB).
fn message(n: usize) -> (String, Vec<u8>) {
    let marker = format!("BACKUP-MARKER-{n:05}");
    let size = if n.is_multiple_of(2) { 1024 } else { 40 * 1024 };
    let mut body = format!("{SECRET} {marker}\r\n");
    while body.len() < size {
        body.push_str(&format!("{marker} line of filler text for the body\r\n"));
    }
    let raw = format!("From: load@example.net\r\nTo: {ALICE}\r\nSubject: {marker}\r\n\r\n{body}");
    (marker, raw.into_bytes())
}

/// The body of message `marker` as it was sent.
fn body_of_marker(marker: &str) -> Vec<u8> {
    let n: usize = marker.trim_start_matches("BACKUP-MARKER-").parse().unwrap();
    let raw = message(n).1;
    support::tools::body_of(&raw).to_vec()
}

/// Delivers messages to alice from a thread until stopped; each
/// acknowledged one is recorded with the moment its 250 was read.
struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(String, Instant)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (marker, raw) = message(n);
                    n += 1;
                    let ok = support::lmtp::deliver_raw(port, ALICE, &raw);
                    assert!(ok.as_ref().is_ok_and(|ok| *ok), "delivery failed: {ok:?}");
                    acked.lock().unwrap().push((marker, Instant::now()));
                }
            })
        };
        Self {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Stops the deliveries; every acknowledgement with its moment.
    fn finish(mut self) -> Vec<(String, Instant)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.acked.lock().unwrap().clone()
    }
}

/// Runs `sealmail backup DIR` against `server`.
fn backup(server: &Server, dir: &Path) -> std::process::Output {
    server.cli(&["backup", dir.to_str().unwrap()], b"")
}

/// Runs `sealmail restore DIR --data-dir DATA` with `extra` arguments.
fn restore(dir: &Path, data_dir: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = binary();
    cmd.arg("restore")
        .arg(dir)
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra);
    run_unchecked(&mut cmd, b"")
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A server with encrypted alice holding `count` messages, and a backup
/// of it taken at rest.
fn backed_up(count: usize) -> (Server, tempfile::TempDir) {
    let server = Server::start();
    encrypted_alice(&server);
    for n in 0..count {
        let (_, raw) = message(n);
        assert!(support::lmtp::deliver_raw(server.lmtp_port, ALICE, &raw).unwrap());
    }
    let out = tempdir();
    let done = backup(&server, out.path());
    assert!(done.status.success(), "backup failed: {}", stderr(&done));
    (server, out)
}

const FETCH_ALL: &str = r#"
import base64, imaplib, json, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
typ, _ = imap.select("INBOX", readonly=True)
assert typ == "OK"
typ, data = imap.uid("SEARCH", None, "ALL")
out = []
for uid in data[0].split():
    typ, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    assert typ == "OK", fetched
    out.append(base64.b64encode(fetched[0][1]).decode())
imap.logout()
print(json.dumps(out))
"#;

/// Every message of alice's INBOX, read over IMAP with Python's imaplib.
fn imap_inbox(server: &Server) -> Vec<Vec<u8>> {
    let out = python(FETCH_ALL, &[&server.imap_port.to_string(), ALICE, PASSWORD]);
    let list: Vec<String> = serde_json::from_str(out.trim()).unwrap();
    list.iter()
        .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
        .collect()
}

/// The marker in the clear Subject of a stored message.
fn marker_of(stored: &[u8]) -> String {
    let text = String::from_utf8_lossy(stored);
    text.lines()
        .find_map(|l| l.strip_prefix("Subject: "))
        .expect("a Subject")
        .trim()
        .to_string()
}

#[test]
fn mail_acknowledged_before_an_online_backup_is_restored_whole_and_decrypts() {
    let mut server = Server::start();
    let keys = encrypted_alice(&server);
    let load = Load::start(server.lmtp_port);
    let deadline = Instant::now() + Duration::from_secs(60);
    while load.acked() < 60 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = tempdir();
    let dir = out.path().join("backup");
    let started = Instant::now();
    let done = backup(&server, &dir);
    let ended = Instant::now();
    std::thread::sleep(Duration::from_millis(300));
    let acked = load.finish();
    assert!(done.status.success(), "backup failed: {}", stderr(&done));
    let before: Vec<&String> = acked
        .iter()
        .filter(|(_, at)| *at < started)
        .map(|(m, _)| m)
        .collect();
    let during = acked
        .iter()
        .filter(|(_, at)| *at >= started && *at <= ended)
        .count();
    assert!(before.len() >= 60, "the load barely ran: {}", before.len());
    let after = acked.iter().filter(|(_, at)| *at > ended).count();
    assert!(
        during + after > 0,
        "no delivery was acknowledged once the backup had started: delivery stopped"
    );
    eprintln!(
        "{} acknowledged before the backup, {during} during it, {after} after",
        before.len()
    );
    server.terminate();

    let fresh = tempdir();
    let restored = restore(&dir, fresh.path(), &[]);
    assert!(
        restored.status.success(),
        "restore failed: {}",
        stderr(&restored)
    );
    let server = Server::start_on(fresh.path());
    let stored = imap_inbox(&server);
    let mut seen = std::collections::BTreeSet::new();
    for bytes in &stored {
        let marker = marker_of(bytes);
        let inner = lf(&openssl_decrypt(bytes, &keys.cert, &keys.key));
        assert!(
            inner.ends_with(&lf(&body_of_marker(&marker))),
            "{marker} is not whole after the restore"
        );
        assert!(seen.insert(marker.clone()), "{marker} is stored twice");
    }
    let missing: Vec<&&String> = before.iter().filter(|m| !seen.contains(**m)).collect();
    assert!(
        missing.is_empty(),
        "{} messages acknowledged before the backup are missing after the restore: {missing:?}",
        missing.len()
    );
}

#[test]
fn a_backup_holds_neither_the_master_key_nor_plaintext_of_an_encrypted_account() {
    let (server, out) = backed_up(6);
    let key = std::fs::read(server.data_dir.join("master.key")).unwrap();
    assert_eq!(key.len(), 32);
    assert!(found_in_files(out.path(), &key).is_empty());
    let manifest = std::fs::read_to_string(out.path().join("manifest.json")).unwrap();
    assert!(!manifest.contains("master"), "{manifest}");
    assert!(out.path().join("segments").read_dir().unwrap().count() > 0);
    assert_eq!(
        found_in_files(out.path(), SECRET.as_bytes()),
        Vec::<std::path::PathBuf>::new(),
        "plaintext of an encrypted account in the backup"
    );
    // The needle is a fair one: it is in the data the server received.
    assert!(String::from_utf8(message(0).1).unwrap().contains(SECRET));
}

#[test]
fn a_tampered_backup_is_refused_naming_the_file() {
    let (_server, out) = backed_up(4);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
    let victim = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap().to_string())
        .find(|p| p.starts_with("segments/"))
        .unwrap();
    let path = out.path().join(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(&path, bytes).unwrap();
    let fresh = tempdir();
    let refused = restore(out.path(), fresh.path(), &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains(&victim), "{}", stderr(&refused));
    assert!(!fresh.path().join("db").exists(), "nothing is restored");
}

#[test]
fn restore_refuses_the_data_directory_of_a_running_server() {
    let (server, out) = backed_up(1);
    let refused = restore(out.path(), &server.data_dir, &["--replace"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("running"), "{}", stderr(&refused));
    // The server still serves its mail.
    assert_eq!(imap_inbox(&server).len(), 1);
}

#[test]
fn backup_refuses_a_directory_that_is_not_empty() {
    let (server, _) = backed_up(1);
    let out = tempdir();
    let outside = tempdir();
    std::os::unix::fs::symlink(outside.path(), out.path().join("db")).unwrap();
    let refused = backup(&server, out.path());
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("not empty"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(outside.path().read_dir().unwrap().count(), 0);
    assert_eq!(out.path().read_dir().unwrap().count(), 1);
}

/// Every Email of alice's with its id and threadId over JMAP, oldest
/// first.
fn jmap_ids(server: &Server) -> serde_json::Value {
    let alice = server.jmap(ALICE, PASSWORD);
    let q = alice.call(
        "Email/query",
        serde_json::json!({ "sort": [{ "property": "receivedAt" }] }),
    );
    let got = alice.call(
        "Email/get",
        serde_json::json!({ "ids": q["ids"], "properties": ["threadId", "mailboxIds"] }),
    );
    got["list"].clone()
}

/// RFC 8621 §4.1.1: Email ids never change, also not across a backup
/// and a restore; nor do thread ids.
#[test]
fn a_restore_keeps_email_and_thread_ids() {
    let mut server = Server::start();
    server.account_with_password(ALICE, PASSWORD);
    for (id, parent) in [("a@x", None), ("b@x", Some("a@x")), ("c@x", None)] {
        let refs = parent.map_or(String::new(), |p| format!("In-Reply-To: <{p}>\r\n"));
        let subject = if parent.is_some() {
            "Re: Plans"
        } else {
            "Plans"
        };
        let raw = format!(
            "From: s@example.net\r\nTo: {ALICE}\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n{refs}\r\nbody\r\n"
        );
        assert!(server.lmtp_send(ALICE, raw.as_bytes()).starts_with("250"));
    }
    let before = jmap_ids(&server);
    assert_eq!(before[0]["threadId"], before[1]["threadId"]);
    assert_ne!(before[0]["threadId"], before[2]["threadId"]);
    let out = tempdir();
    let dir = out.path().join("backup");
    let done = backup(&server, &dir);
    assert!(done.status.success(), "backup failed: {}", stderr(&done));
    server.terminate();
    let fresh = tempdir();
    let restored = restore(&dir, fresh.path(), &[]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    let server = Server::start_on(fresh.path());
    assert_eq!(jmap_ids(&server), before);
}
