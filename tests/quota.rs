//! The account quota (`limits.account_quota`) against the real binary,
//! at every way in: LMTP answers 452 4.2.2 when the mailbox is full and
//! 552 5.2.2 for a message larger than the whole quota (RFC 3463), IMAP
//! APPEND and COPY `NO [OVERQUOTA]`, JMAP `Email/import` `overQuota`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;

use support::server::Server;
use support::tools::python;

const PASSWORD: &str = "pw";

/// One LMTP transaction with a message of `size` bytes; prints the reply
/// to DATA.
const LMTP: &str = r#"
import socket, sys
port, rcpt, size = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=30)
f = s.makefile("rb")
def reply():
    while True:
        line = f.readline().decode()
        if line[3:4] != "-":
            return line.strip()
reply()
s.sendall(b"LHLO test\r\n"); reply()
s.sendall(b"MAIL FROM:<x@example.net>\r\n"); reply()
s.sendall(("RCPT TO:<%s>\r\n" % rcpt).encode()); reply()
s.sendall(b"DATA\r\n"); reply()
body = b"Subject: fill\r\n\r\n" + b"x" * (size - 19) + b"\r\n"
s.sendall(body + b".\r\n")
print(reply())
s.sendall(b"QUIT\r\n")
"#;

fn deliver(server: &Server, size: usize) -> String {
    python(
        LMTP,
        &[
            &server.lmtp_port.to_string(),
            "alice@example.org",
            &size.to_string(),
        ],
    )
    .trim()
    .to_string()
}

const IMAP: &str = r#"
import imaplib, sys
imap = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
imap.login("alice@example.org", "pw")
typ, data = imap.append("INBOX", None, None, b"Subject: more\r\n\r\n" + b"y" * 2000 + b"\r\n")
print(typ, data[0].decode())
imap.select("INBOX")
typ, data = imap.copy("1", "INBOX")
print(typ, data[0].decode())
imap.logout()
"#;

#[test]
fn a_full_account_is_refused_at_every_door() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[("SEALMAIL_LIMITS_ACCOUNT_QUOTA", "5000")]);
    server.account_with_password("alice@example.org", PASSWORD);

    assert!(deliver(&server, 2000).starts_with("250"));
    assert!(deliver(&server, 2000).starts_with("250"));
    let full = deliver(&server, 2000);
    assert!(full.starts_with("452 4.2.2"), "{full}");
    let too_big = deliver(&server, 6000);
    assert!(too_big.starts_with("552 5.2.2"), "{too_big}");

    let imap = python(IMAP, &[&server.imap_port.to_string()]);
    let lines: Vec<&str> = imap.lines().collect();
    assert!(lines[0].starts_with("NO [OVERQUOTA]"), "{imap}");
    assert!(lines[1].starts_with("NO [OVERQUOTA]"), "{imap}");

    let jmap = server.jmap("alice@example.org", PASSWORD);
    let inbox =
        jmap.call("Mailbox/query", json!({ "filter": { "role": "inbox" } }))["ids"][0].clone();
    let blob = jmap.upload(format!("Subject: j\r\n\r\n{}\r\n", "z".repeat(2000)).into_bytes());
    let imported = jmap.call(
        "Email/import",
        json!({ "emails": { "e1": { "blobId": blob, "mailboxIds": { inbox.as_str().unwrap(): true } } } }),
    );
    assert_eq!(
        imported["notCreated"]["e1"]["type"], "overQuota",
        "{imported}"
    );
    assert_eq!(server.inbox("alice@example.org").len(), 2);

    // The operator raises alice's own quota: delivery works again; back
    // to the default, it is refused again.
    server.ok(&["account", "quota", "alice@example.org", "1MiB"]);
    assert!(deliver(&server, 2000).starts_with("250"));
    server.ok(&["account", "quota", "alice@example.org", "default"]);
    assert!(deliver(&server, 2000).starts_with("452"));
    let bad = server.cli(&["account", "quota", "alice@example.org", "lots"], b"");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a size"));
}
