//! Bringing existing mail in and under encryption, end to end with the
//! real binary: `sealmail import` of a Maildir and of an mbox file, and
//! `sealmail reencrypt` of mail stored before encryption was enabled;
//! results checked through `sealmail export`, `openssl cms -decrypt` and
//! a raw scan of the data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::pki::{pair, tempdir, KeyPair};
use support::server::Server;
use support::tools::{found_in_files, lf, openssl_decrypt, run};

fn opted_in(server: &Server, email: &str) -> KeyPair {
    let k = pair(email, 2048);
    server.ok(&["account", "add", email]);
    server.ok(&["cert", "add", email, k.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", email]);
    k
}

/// Writes `raw` into the Maildir `dir` as `sub/name` with mtime `date`.
fn put(dir: &Path, sub: &str, name: &str, raw: &[u8], date: i64) {
    let path = dir.join(sub).join(name);
    std::fs::write(&path, raw).unwrap();
    run(
        Command::new("touch")
            .arg("-d")
            .arg(format!("@{date}"))
            .arg(&path),
        b"",
    );
}

fn maildir() -> tempfile::TempDir {
    let dir = tempdir();
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
    }
    dir
}

/// Three messages: 8-bit text (seen), 2 MiB of binary (flagged,
/// answered; over the management API's usual 1 MiB body limit), and one
/// in new/ with no flags. `marker` is in the bodies only (encrypted),
/// `subject` in a clear header. Returns `(date, flags, message)` in date
/// order.
fn three_messages(dir: &Path, marker: &str, subject: &str) -> Vec<(i64, &'static str, Vec<u8>)> {
    let text = format!(
        "From: a@example.net\r\nSubject: eight bit\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Grüße, {marker}\r\n"
    )
    .into_bytes();
    let mut binary = format!(
        "From: b@example.net\r\nSubject: binary {subject}\r\n\
         Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    )
    .into_bytes();
    // The marker in a large message too: large blobs live in segment files.
    binary.extend(format!("{marker}\r\n").bytes());
    binary.extend((0..2 * 1024 * 1024).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8));
    let plain =
        format!("From: c@example.net\r\nSubject: new\r\n\r\nplain {marker}\r\n").into_bytes();
    put(dir, "cur", "1600000001.M1P1.old:2,S", &text, 1_600_000_001);
    put(
        dir,
        "cur",
        "1600000002.M2P1.old:2,FR",
        &binary,
        1_600_000_002,
    );
    put(dir, "new", "1600000003.M3P1.old", &plain, 1_600_000_003);
    vec![
        (1_600_000_001, "S", text),
        (1_600_000_002, "FR", binary),
        (1_600_000_003, "", plain),
    ]
}

/// The inner entity the S/MIME copy of `raw` must decrypt to: the
/// `Content-*` fields (or the RFC 2045 default), a blank line, the body.
fn inner_entity(raw: &[u8]) -> Vec<u8> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let (header, body) = (&raw[..split + 2], &raw[split + 4..]);
    let fields: Vec<&[u8]> = header
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.to_ascii_lowercase().starts_with(b"content-"))
        .collect();
    let mut out = if fields.is_empty() {
        b"Content-Type: text/plain; charset=us-ascii\r\n".to_vec()
    } else {
        fields.concat()
    };
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[test]
fn maildir_import_is_encrypted_keeps_flags_and_dates_and_runs_once() {
    let server = Server::start();
    let alice = opted_in(&server, "alice@example.org");
    let dir = maildir();
    let marker = "IMPORT-MARKER-3e91d0";
    let messages = three_messages(dir.path(), marker, "first");
    let path = dir.path().to_str().unwrap();
    let out = server.ok(&["import", "alice@example.org", path]);
    assert!(
        out.contains("imported 3, already there 0, refused 0"),
        "{out}"
    );

    let stored = server.export_named("alice@example.org", "INBOX");
    assert_eq!(stored.len(), 3);
    for ((name, bytes), (date, flags, raw)) in stored.iter().zip(&messages) {
        assert!(name.starts_with(&format!("{date}.u")), "{name}");
        assert!(name.ends_with(&format!(":2,{flags}")), "{name}");
        let inner = openssl_decrypt(bytes, &alice.cert, &alice.key);
        assert_eq!(lf(&inner), lf(&inner_entity(raw)), "{name}");
    }
    assert_eq!(
        found_in_files(&server.data_dir, marker.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );

    let again = server.ok(&["import", "alice@example.org", path]);
    assert!(
        again.contains("imported 0, already there 3, refused 0"),
        "{again}"
    );
    assert_eq!(server.export_named("alice@example.org", "INBOX").len(), 3);
}

#[test]
fn mbox_import_unescapes_from_lines_into_a_new_mailbox() {
    let server = Server::start();
    server.ok(&["account", "add", "bob@example.org"]);
    let dir = tempdir();
    let mbox = dir.path().join("old.mbox");
    std::fs::write(
        &mbox,
        "From someone@example.net Sat Jan  3 01:05:34 1996\n\
         Subject: one\n\n>From the start, a quoted line.\n>>From stays once quoted.\n\n\
         From other@example.net Tue Jul 23 19:39:23 2002\n\
         Subject: two\n\nsecond\n\n",
    )
    .unwrap();
    let out = server.ok(&[
        "import",
        "bob@example.org",
        mbox.to_str().unwrap(),
        "--mailbox",
        "Old/2002",
    ]);
    assert!(
        out.contains("imported 2, already there 0, refused 0"),
        "{out}"
    );
    let stored = server.export_named("bob@example.org", "Old/2002");
    assert_eq!(stored.len(), 2);
    let by_uid = |uid: &str| {
        let (name, bytes) = stored.iter().find(|(n, _)| n.contains(uid)).unwrap();
        (name.clone(), String::from_utf8_lossy(bytes).into_owned())
    };
    let (name, first) = by_uid(".u1.");
    assert!(
        name.starts_with("820631134."),
        "date of the From line: {name}"
    );
    assert_eq!(
        first,
        "Subject: one\r\n\r\nFrom the start, a quoted line.\r\n>From stays once quoted.\r\n"
    );
    let (name, second) = by_uid(".u2.");
    assert!(name.starts_with("1027453163."), "{name}");
    assert_eq!(second, "Subject: two\r\n\r\nsecond\r\n");
}

#[test]
fn import_of_something_that_is_neither_maildir_nor_mbox_exits_1() {
    let server = Server::start();
    server.ok(&["account", "add", "bob@example.org"]);
    let dir = tempdir();
    let out = server.cli(
        &["import", "bob@example.org", dir.path().to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Maildir"));
    let missing = dir.path().join("missing");
    let out = server.cli(
        &["import", "bob@example.org", missing.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn reencrypt_encrypts_plaintext_in_place_and_a_second_run_does_nothing() {
    let server = Server::start();
    let email = "carol@example.org";
    server.ok(&["account", "add", email]);
    let dir = maildir();
    let marker = "REENCRYPT-MARKER-c0ffee";
    let messages = three_messages(dir.path(), marker, "first");
    let path = dir.path().to_str().unwrap();
    server.ok(&["import", email, path]);
    // Import markers are per account: the same files into another
    // mailbox would be "already there", so Archive gets other messages.
    let archive = maildir();
    let archived = three_messages(archive.path(), &format!("{marker}-archive"), "second");
    let archive_path = archive.path().to_str().unwrap();
    server.ok(&["import", email, archive_path, "--mailbox", "Archive"]);
    let before_inbox = server.export_named(email, "INBOX");
    let before_archive = server.export_named(email, "Archive");
    assert!(
        String::from_utf8_lossy(&before_inbox[0].1).contains(marker),
        "stored in clear"
    );

    assert!(
        !found_in_files(&server.data_dir, marker.as_bytes()).is_empty(),
        "control: before the run the raw scan finds the plaintext"
    );
    let carol = pair(email, 2048);
    server.ok(&["cert", "add", email, carol.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", email]);
    let out = server.ok(&["reencrypt", email]);
    assert!(out.contains("encrypted 6 messages"), "{out}");

    let expected = [
        ("INBOX", &before_inbox, &messages),
        ("Archive", &before_archive, &archived),
    ];
    for (mailbox, before, messages) in expected {
        let after = server.export_named(email, mailbox);
        let names =
            |v: &Vec<(String, Vec<u8>)>| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&after),
            names(before),
            "UIDs, dates and flags kept in {mailbox}"
        );
        for ((name, bytes), (_, _, raw)) in after.iter().zip(messages) {
            let inner = openssl_decrypt(bytes, &carol.cert, &carol.key);
            assert_eq!(lf(&inner), lf(&inner_entity(raw)), "{mailbox}/{name}");
        }
    }
    // The plaintext blobs are gone from the database files: the compaction
    // after the run flushed every column family (retiring the WAL files
    // that held them) and rewrote the blob files.
    assert_eq!(
        found_in_files(&server.data_dir, marker.as_bytes()),
        Vec::<std::path::PathBuf>::new()
    );

    let snapshot = server.export_named(email, "INBOX");
    let again = server.ok(&["reencrypt", email]);
    assert!(again.contains("encrypted 0 messages"), "{again}");
    assert_eq!(
        server.export_named(email, "INBOX"),
        snapshot,
        "second run changes nothing"
    );
}

#[test]
fn reencrypt_without_encryption_enabled_exits_1_and_says_what_to_do() {
    let server = Server::start();
    server.ok(&["account", "add", "dave@example.org"]);
    let out = server.cli(&["reencrypt", "dave@example.org"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("enable encryption first: sealmail encryption enable dave@example.org"),
        "{err}"
    );
}
