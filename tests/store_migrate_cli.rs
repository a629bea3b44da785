//! `sealmail store migrate` as the operator runs it: the real binary on a
//! real data directory, with and without a server holding it.
//!
//! This build has no PostgreSQL engine yet, so the end-to-end copy is
//! tested in `store::engine_copy` (RocksDB into RocksDB); here the command
//! line's refusals and messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Output;

use support::pki::tempdir;
use support::server::{binary, Server};
use support::tools::run_unchecked;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn migrate(data_dir: &std::path::Path, to: &str) -> Output {
    let mut cmd = binary();
    cmd.args(["store", "migrate", "--to", to])
        .arg("--data-dir")
        .arg(data_dir);
    run_unchecked(&mut cmd, b"")
}

#[test]
fn a_running_server_makes_migrate_refuse() {
    let server = Server::start();
    server.ok(&["account", "add", "alice@example.org"]);
    let out = migrate(
        &server.data_dir,
        "postgres://sealmail@127.0.0.1:5432/sealmail",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stop the server first"),
        "{}",
        stderr(&out)
    );
    // The server still runs and still has its data.
    assert!(server
        .ok(&["account", "list"])
        .contains("alice@example.org"));
}

/// Lists INBOX over IMAP as `UIDVALIDITY`, then `UID FLAGS BODY` lines.
const IMAP_STATE: &str = r#"
import imaplib, json, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
typ, data = m.select("INBOX")
assert typ == "OK", data
validity = m.response("UIDVALIDITY")[1][0].decode()
typ, data = m.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
out = [validity]
for item in data:
    if isinstance(item, tuple):
        out.append(item[0].decode() + " " + item[1].decode("utf-8", "replace"))
m.logout()
print(json.dumps(out))
"#;

/// Every Email's id and threadId over JMAP (RFC 8621 §4.1.1: ids that a
/// move of the whole store must keep), oldest first.
fn jmap_ids(server: &Server) -> serde_json::Value {
    let alice = server.jmap("alice@example.org", "a good password");
    let q = alice.call(
        "Email/query",
        serde_json::json!({ "sort": [{ "property": "receivedAt" }] }),
    );
    let got = alice.call(
        "Email/get",
        serde_json::json!({ "ids": q["ids"], "properties": ["threadId", "subject"] }),
    );
    got["list"].clone()
}

fn imap_state(server: &Server) -> Vec<String> {
    let out = support::tools::python(
        IMAP_STATE,
        &[
            &server.imap_port.to_string(),
            "alice@example.org",
            "a good password",
        ],
    );
    serde_json::from_str(out.lines().last().unwrap()).unwrap()
}

#[test]
fn a_stopped_rocksdb_installation_moves_to_postgres_and_imap_sees_the_same_mailbox() {
    let dir = tempdir();
    let mut server = Server::start_on(dir.path());
    server.account_with_password("alice@example.org", "a good password");
    for i in 0..3 {
        // The second and third reply to the first: one thread.
        let msg = format!(
            "From: s@example.net\r\nTo: alice@example.org\r\nSubject: {}moved\r\nMessage-ID: <m{i}@x>\r\nIn-Reply-To: <m0@x>\r\n\r\nMOVE-MARKER-{i}\r\n",
            if i == 0 { "" } else { "Re: " }
        );
        assert!(server
            .lmtp_send("alice@example.org", msg.as_bytes())
            .starts_with("250"));
    }
    let before = imap_state(&server);
    assert_eq!(before.len(), 4, "{before:?}");
    let ids_before = jmap_ids(&server);
    assert_eq!(ids_before[0]["threadId"], ids_before[2]["threadId"]);
    assert!(server.terminate().success());

    // An unreachable database: an engine error that never prints the
    // URL's password, and the lock released for the next run.
    let unreachable = migrate(
        dir.path(),
        "postgres://sealmail:s3cret@127.0.0.1:1/sealmail",
    );
    assert_eq!(
        unreachable.status.code(),
        Some(2),
        "{}",
        stderr(&unreachable)
    );
    assert!(
        !stderr(&unreachable).contains("s3cret"),
        "{}",
        stderr(&unreachable)
    );

    let db = support::postgres::test_db();
    let out = migrate(dir.path(), &db.url);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout).into_owned() + &stderr(&out);
    assert!(said.contains("blobs"), "the verification table: {said}");
    assert!(!said.contains("DIFFERS"), "{said}");

    // A second run finds the target complete and refuses to copy again.
    let again = migrate(dir.path(), &db.url);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));

    // The server on PostgreSQL, in a fresh data directory: the same
    // UIDVALIDITY, UIDs, flags and bytes, so IMAP clients do not resync.
    let node = tempdir();
    let moved = Server::start_with_env(
        node.path(),
        &[
            ("SEALMAIL_STORE_ENGINE", "postgres"),
            ("SEALMAIL_STORE_URL", db.url.as_str()),
        ],
    );
    assert_eq!(imap_state(&moved), before);
    assert_eq!(
        jmap_ids(&moved),
        ids_before,
        "Email and Thread ids moved too"
    );
    assert_eq!(db.psql("SELECT count(*) FROM blobs WHERE off = 0"), "3");
}

#[test]
fn other_url_schemes_and_missing_stores_are_user_errors() {
    let dir = tempdir();
    let mut server = Server::start_on(dir.path());
    assert!(server.terminate().success());
    let out = migrate(dir.path(), "mysql://root@localhost/mail");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--to postgres://"),
        "{}",
        stderr(&out)
    );

    let empty = tempdir();
    let out = migrate(empty.path(), "postgres://localhost/mail");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no sealmail store"),
        "{}",
        stderr(&out)
    );
    assert!(!empty.path().join("db").exists(), "nothing created");
}

#[test]
fn help_explains_the_procedure() {
    let out = run_unchecked(binary().args(["store", "migrate", "--help"]), b"");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    for words in [
        "Stop the server first",
        "resumable",
        "SHA-256",
        "master key file",
        "store.engine = \"postgres\"",
    ] {
        assert!(help.contains(words), "{words:?} missing from:\n{help}");
    }
}
