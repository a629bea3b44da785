//! The real `sealmail serve` on `store.engine = "postgres"`, against a
//! real PostgreSQL server (a database of its own on the test cluster):
//! accounts made with the CLI, mail delivered over LMTP, read back over
//! IMAP with Python's imaplib — by a second server process on another
//! data directory sharing the same database, as a second node would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::postgres::test_db;
use support::server::Server;
use support::tools::python;

/// Logs in over IMAP and prints the INBOX's messages as JSON strings.
const IMAP_READ: &str = r#"
import imaplib, json, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
typ, data = m.select("INBOX")
assert typ == "OK", data
typ, data = m.uid("SEARCH", None, "ALL")
out = []
for uid in data[0].split():
    typ, parts = m.uid("FETCH", uid, "(BODY.PEEK[])")
    out.append(parts[0][1].decode("utf-8", "replace"))
m.logout()
print(json.dumps(out))
"#;

fn imap_inbox(port: u16, user: &str, password: &str) -> Vec<String> {
    let out = python(IMAP_READ, &[&port.to_string(), user, password]);
    serde_json::from_str(out.trim()).unwrap()
}

#[test]
fn two_servers_on_one_postgres_database_deliver_and_read() {
    let db = test_db();
    let env = [
        ("SEALMAIL_STORE_ENGINE", "postgres"),
        ("SEALMAIL_STORE_URL", db.url.as_str()),
        ("SEALMAIL_STORE_POOL_SIZE", "4"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_with_env(dir_a.path(), &env);
    let added = a.cli(
        &["account", "add", "alice@example.org", "--password-stdin"],
        b"a good password\n",
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    let b = Server::start_with_env(dir_b.path(), &env);
    let listed = b.ok(&["account", "list"]);
    assert!(
        listed.contains("alice@example.org"),
        "node b sees node a's account: {listed}"
    );

    let message = b"From: sender@example.net\r\nTo: alice@example.org\r\nSubject: over postgres\r\nMessage-ID: <pg-1@example.net>\r\n\r\nBODY-MARKER-4b1d on PostgreSQL\r\n";
    let reply = a.lmtp_send("alice@example.org", message);
    assert!(reply.starts_with("250"), "{reply}");

    for node in [&a, &b] {
        let inbox = imap_inbox(node.imap_port, "alice@example.org", "a good password");
        assert_eq!(inbox.len(), 1, "{inbox:?}");
        assert!(inbox[0].contains("Subject: over postgres"), "{}", inbox[0]);
        assert!(
            inbox[0].contains("BODY-MARKER-4b1d on PostgreSQL"),
            "{}",
            inbox[0]
        );
    }

    // The mail is in PostgreSQL, not in either data directory.
    assert_eq!(db.psql("SELECT count(*) FROM blobs WHERE off = 0"), "1");
    assert_eq!(
        db.psql("SELECT count(*) FROM (SELECT string_agg(value, '' ORDER BY off) AS body FROM blobs GROUP BY key) b WHERE position('BODY-MARKER-4b1d' in body) > 0"),
        "1"
    );
    for dir in [dir_a.path(), dir_b.path()] {
        assert!(!dir.join("db").exists(), "no RocksDB in {}", dir.display());
        assert!(dir.join("admin.sock").exists());
    }

    // A second delivery through node b gets the next UID, and node a
    // serves it after a restart.
    let second = b"From: sender@example.net\r\nTo: alice@example.org\r\nSubject: second\r\n\r\nsecond body\r\n";
    assert!(b.lmtp_send("alice@example.org", second).starts_with("250"));
    drop(a);
    let a = Server::start_with_env(dir_a.path(), &env);
    let inbox = imap_inbox(a.imap_port, "alice@example.org", "a good password");
    assert_eq!(inbox.len(), 2);
    assert!(inbox[1].contains("Subject: second"));
}

#[test]
fn serve_with_an_unreachable_database_exits_with_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("postgres://mail:hunter2@127.0.0.1:{port}/sealmail");
    let out = support::server::binary()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("SEALMAIL_STORE_ENGINE", "postgres")
        .env("SEALMAIL_STORE_URL", &url)
        .env("SEALMAIL_LMTP_LISTEN", "127.0.0.1:0")
        .env("SEALMAIL_IMAP_LISTEN", "127.0.0.1:0")
        .env("SEALMAIL_JMAP_LISTEN", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot connect to PostgreSQL"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("hunter2"), "the password leaked: {stderr}");
}
