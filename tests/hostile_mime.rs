//! No message crashes the server: hostile MIME structure delivered over
//! LMTP (Python's `smtplib.LMTP`) to the real binary, then read back over
//! JMAP and with Python's `imaplib` — a 20,000-level nested multipart
//! (1.4 MB; it overflowed the stack on Email/get), a 40,000-level
//! `message/rfc822` chain (it overflowed inside mail-parser), a 100-level
//! multipart (walked down to the depth limit, deeper shown opaque), 10,000
//! sibling parts and a 200 KB header field (served in full). After every step the server
//! process still runs and answers sensibly; at the end a normal message is
//! delivered and read as usual.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::pki::pair;
use support::server::Server;
use support::tools::python;

const PASSWORD: &str = "hostile mime";

/// The depth limit of `sealmail::mime::MAX_DEPTH`, as a client sees it.
const MAX_DEPTH: usize = sealmail::mime::MAX_DEPTH;

/// `n` multiparts nested one in the other around one text part.
fn nested_multipart(n: usize) -> Vec<u8> {
    let mut s = String::from(
        "From: mallory@example.net\r\nTo: alice@example.org\r\nSubject: deep\r\n\
         Message-ID: <deep@example.net>\r\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n"
        ));
    }
    s.push_str("Content-Type: text/plain\r\n\r\nhello from the bottom\r\n");
    for i in (0..n).rev() {
        s.push_str(&format!("--b{i}--\r\n"));
    }
    s.into_bytes()
}

/// `n` `message/rfc822` parts, each the whole body of the one before.
fn nested_rfc822(n: usize) -> Vec<u8> {
    let mut s =
        String::from("From: mallory@example.net\r\nTo: alice@example.org\r\nSubject: chain\r\n");
    s.push_str(&"Content-Type: message/rfc822\r\n\r\n".repeat(n));
    s.push_str("Subject: in\r\n\r\nhello from the bottom\r\n");
    s.into_bytes()
}

/// One multipart/mixed with `n` text parts.
fn siblings(n: usize) -> Vec<u8> {
    let mut s = String::from(
        "From: mallory@example.net\r\nTo: alice@example.org\r\nSubject: wide\r\n\
         Content-Type: multipart/mixed; boundary=B\r\n\r\n",
    );
    for i in 0..n {
        s.push_str(&format!(
            "--B\r\nContent-Type: text/plain\r\n\r\npart {i} hello\r\n"
        ));
    }
    s.push_str("--B--\r\n");
    s.into_bytes()
}

/// A message whose Subject is one `bytes`-long line.
fn long_header(bytes: usize) -> Vec<u8> {
    format!(
        "From: mallory@example.net\r\nTo: alice@example.org\r\nSubject: {}\r\n\r\nhello\r\n",
        "x".repeat(bytes)
    )
    .into_bytes()
}

fn normal() -> Vec<u8> {
    b"From: bob@example.net\r\nTo: alice@example.org\r\nSubject: normal\r\n\r\nnormal hello\r\n"
        .to_vec()
}

/// Delivers `data` to `to` with Python's smtplib.LMTP (through a file:
/// the message is larger than an argument may be).
fn deliver(server: &Server, to: &str, data: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message.eml");
    std::fs::write(&path, data).unwrap();
    let sent = python(
        r#"
import smtplib, sys
lmtp = smtplib.LMTP("127.0.0.1", int(sys.argv[1]))
refused = lmtp.sendmail("x@example.net", [sys.argv[2]], open(sys.argv[3], "rb").read())
assert not refused, refused
lmtp.quit()
print("sent")
"#,
        &[&server.lmtp_port.to_string(), to, path.to_str().unwrap()],
    );
    assert_eq!(sent.trim(), "sent");
    assert_alive(server, "the delivery");
}

/// Panics unless the server process still runs (a crashed child is a
/// zombie until reaped: state `Z`, or gone).
fn assert_alive(server: &Server, after: &str) {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.pid()));
    let state = stat
        .as_deref()
        .ok()
        .and_then(|s| s.rsplit_once(") "))
        .and_then(|(_, rest)| rest.chars().next());
    assert!(
        matches!(state, Some(s) if s != 'Z' && s != 'X'),
        "the server died after {after} (state {state:?}); its log: {}",
        log_tail(server)
    );
}

fn log_tail(server: &Server) -> String {
    let log = std::fs::read_to_string(server.scratch.path().join("server.log")).unwrap_or_default();
    let start = log.len().saturating_sub(2000);
    log.get(start..).unwrap_or_default().to_string()
}

fn account(server: &Server, user: &str) {
    server.account_with_password(user, PASSWORD);
}

/// Every Email of `user` with the body properties, after each call
/// checking the server lives; returns the Emails with subject `subject`.
fn jmap_emails(server: &Server, user: &str, subject: &str) -> Vec<Value> {
    let jmap = server.jmap(user, PASSWORD);
    // Metadata alone first: it needs no parsing at all.
    let meta = jmap.call(
        "Email/get",
        json!({ "ids": null, "properties": ["id", "keywords", "size"] }),
    );
    assert_alive(server, "Email/get of metadata");
    assert!(
        meta["list"].as_array().is_some_and(|l| !l.is_empty()),
        "{meta}"
    );
    let got = jmap.call(
        "Email/get",
        json!({
            "ids": null,
            "properties": ["id", "subject", "from", "bodyStructure", "textBody", "htmlBody",
                           "attachments", "hasAttachment", "bodyValues", "preview"],
            "fetchAllBodyValues": true,
            "maxBodyValueBytes": 100,
        }),
    );
    assert_alive(server, "Email/get of the body properties");
    let list = got["list"].as_array().unwrap_or_else(|| panic!("{got}"));
    let found: Vec<Value> = list
        .iter()
        .filter(|e| e["subject"] == subject)
        .cloned()
        .collect();
    assert_eq!(found.len(), 1, "{got}");
    found
}

/// The depth of a JMAP bodyStructure, walked with a stack.
fn body_depth(part: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(part, 0)];
    while let Some((p, d)) = stack.pop() {
        deepest = deepest.max(d);
        for sub in p["subParts"].as_array().into_iter().flatten() {
            stack.push((sub, d + 1));
        }
    }
    deepest
}

/// The deepest part of a bodyStructure, following the first subPart.
fn deepest_first(part: &Value) -> &Value {
    let mut p = part;
    while let Some(sub) = p["subParts"].get(0) {
        p = sub;
    }
    p
}

const IMAP_STEPS: &str = r#"
import imaplib, json, sys
port, user, password, subject = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
typ, _ = imap.select("INBOX", readonly=True)
assert typ == "OK"
typ, data = imap.search(None, "SUBJECT", subject)
assert typ == "OK", data
seq = data[0].split()[0].decode()
deep = ".".join(["1"] * 100)
out = {}
def flat(data):
    parts = []
    for d in data:
        if isinstance(d, tuple):
            parts.append(d[0].decode("latin-1") + "<%d bytes>" % len(d[1]))
        elif d is not None:
            parts.append(d.decode("latin-1"))
    return "".join(parts)
for name, items in [("flags", "(FLAGS UID)"), ("bodystructure", "(BODYSTRUCTURE)"),
                    ("body", "(BODY)"), ("envelope", "(ENVELOPE)"),
                    ("all", "(BODY.PEEK[])"), ("text", "(BODY.PEEK[TEXT])"),
                    ("header", "(BODY.PEEK[HEADER])"), ("one", "(BODY.PEEK[1])"),
                    ("one_mime", "(BODY.PEEK[1.MIME])"), ("one_text", "(BODY.PEEK[1.TEXT])"),
                    ("deep", "(BODY.PEEK[%s])" % deep), ("deep_mime", "(BODY.PEEK[%s.MIME])" % deep)]:
    typ, data = imap.fetch(seq, items)
    assert typ == "OK", (name, typ, data)
    out[name] = flat(data)
for name, key in [("search_text", "TEXT"), ("search_body", "BODY")]:
    typ, data = imap.search(None, key, "hello")
    assert typ == "OK", (name, typ, data)
    out[name] = data[0].decode().split()
out["seq"] = seq
typ, _ = imap.noop()
assert typ == "OK"
imap.logout()
print(json.dumps(out))
"#;

/// Runs the IMAP steps on the message with `subject`; checks the server
/// lives afterwards. Each FETCH and SEARCH must answer OK (the script
/// asserts it).
fn imap_steps(server: &Server, user: &str, subject: &str) -> Value {
    let out = python(
        IMAP_STEPS,
        &[&server.imap_port.to_string(), user, PASSWORD, subject],
    );
    assert_alive(server, "the IMAP fetches");
    serde_json::from_str(&out).unwrap()
}

/// Checks an IMAP FETCH response line is well formed — quoted strings,
/// literals and parentheses balance — and returns its deepest nesting.
fn list_depth(line: &str) -> usize {
    let bytes = line.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0);
    while let Some(&b) = bytes.get(i) {
        match b {
            b'(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b')' => depth = depth.checked_sub(1).expect("unbalanced )"),
            b'"' => {
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    assert_eq!(depth, 0, "unbalanced ( in {line}");
    deepest
}

fn assert_imap_sensible(r: &Value) {
    let seq = r["seq"].as_str().unwrap();
    for key in ["bodystructure", "body"] {
        let line = r[key].as_str().unwrap();
        // FETCH ( BODYSTRUCTURE ( part levels ... ) )
        let depth = list_depth(line);
        assert!(depth <= MAX_DEPTH + 2, "{key} nests {depth} deep: {line}");
        assert!(line.starts_with(&format!("{seq} (")), "{line}");
    }
    assert!(r["all"].as_str().unwrap().contains("BODY[] {"), "{r}");
    for key in ["search_text", "search_body"] {
        assert!(
            r[key].as_array().unwrap().iter().any(|s| s == seq),
            "{key} finds the message: {r}"
        );
    }
}

#[test]
fn a_20000_level_multipart_is_served_over_jmap_and_imap() {
    let server = Server::start();
    account(&server, "alice@example.org");
    let deep = nested_multipart(20_000);
    assert!(deep.len() > 1_300_000);
    deliver(&server, "alice@example.org", &deep);

    let email = &jmap_emails(&server, "alice@example.org", "deep")[0];
    // Too deep to walk: the body is one opaque part, still downloadable.
    assert_eq!(email["bodyStructure"]["type"], "application/octet-stream");
    assert!(body_depth(&email["bodyStructure"]) <= MAX_DEPTH);
    assert_eq!(email["hasAttachment"], true);
    assert_eq!(email["textBody"], json!([]));
    assert_eq!(email["from"][0]["email"], "mallory@example.net");

    let r = imap_steps(&server, "alice@example.org", "deep");
    assert_imap_sensible(&r);
    let bs = r["bodystructure"].as_str().unwrap().to_ascii_lowercase();
    assert!(bs.contains("\"application\" \"octet-stream\""), "{bs}");
    assert!(r["envelope"].as_str().unwrap().contains("\"deep\""), "{r}");
    assert!(r["deep"].as_str().unwrap().contains("<"), "{r}");

    wide_and_long_are_served(&server);

    deliver(&server, "alice@example.org", &normal());
    let normal = &jmap_emails(&server, "alice@example.org", "normal")[0];
    assert_eq!(
        normal["preview"].as_str().map(str::trim),
        Some("normal hello")
    );
    let r = imap_steps(&server, "alice@example.org", "normal");
    assert!(r["text"].as_str().unwrap().contains("<14 bytes>"), "{r}");
}

/// 10,000 sibling parts and a 200 KB Subject are served in full (the
/// limits count depth and containers, not parts or bytes), next to the
/// hostile message.
fn wide_and_long_are_served(server: &Server) {
    deliver(server, "alice@example.org", &siblings(10_000));
    deliver(server, "alice@example.org", &long_header(200_000));

    let email = &jmap_emails(server, "alice@example.org", "wide")[0];
    let subs = email["bodyStructure"]["subParts"].as_array().unwrap();
    assert_eq!(subs.len(), 10_000);
    assert_eq!(email["textBody"].as_array().unwrap().len(), 10_000);
    let r = imap_steps(server, "alice@example.org", "wide");
    assert_imap_sensible(&r);

    let jmap = server.jmap("alice@example.org", PASSWORD);
    let got = jmap.call(
        "Email/get",
        json!({ "ids": null, "properties": ["subject", "preview"] }),
    );
    assert_alive(server, "Email/get of the long header");
    let long = got["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"].as_str().is_some_and(|s| s.len() == 200_000));
    assert!(
        long.is_some_and(|e| e["preview"].as_str().map(str::trim) == Some("hello")),
        "{got}"
    );
    let fetched = python(
        IMAP_STEPS,
        &[
            &server.imap_port.to_string(),
            "alice@example.org",
            PASSWORD,
            "xxxxxxxx",
        ],
    );
    assert_alive(server, "the IMAP fetches of the long header");
    let r: Value = serde_json::from_str(&fetched).unwrap();
    assert_imap_sensible(&r);
}

#[test]
fn a_40000_level_rfc822_chain_is_served_over_jmap_and_imap() {
    let server = Server::start();
    account(&server, "alice@example.org");
    deliver(&server, "alice@example.org", &nested_rfc822(40_000));

    let email = &jmap_emails(&server, "alice@example.org", "chain")[0];
    assert_eq!(email["bodyStructure"]["type"], "application/octet-stream");
    let r = imap_steps(&server, "alice@example.org", "chain");
    assert_imap_sensible(&r);

    deliver(&server, "alice@example.org", &normal());
    jmap_emails(&server, "alice@example.org", "normal");
}

#[test]
fn a_100_level_multipart_is_walked_to_the_limit_and_opaque_below() {
    let server = Server::start();
    account(&server, "alice@example.org");
    deliver(&server, "alice@example.org", &nested_multipart(100));

    let email = &jmap_emails(&server, "alice@example.org", "deep")[0];
    let structure = &email["bodyStructure"];
    assert_eq!(structure["type"], "multipart/mixed");
    assert_eq!(body_depth(structure), MAX_DEPTH);
    let cut = deepest_first(structure);
    assert_eq!(cut["type"], "application/octet-stream", "{cut}");
    // The cut-off container is an attachment; the text below it is not served.
    let attachments = email["attachments"].as_array().unwrap();
    assert!(
        attachments.iter().any(|a| a["partId"] == cut["partId"]),
        "{email}"
    );
    assert_eq!(email["textBody"], json!([]));

    let r = imap_steps(&server, "alice@example.org", "deep");
    assert_imap_sensible(&r);
    let bs = r["bodystructure"].as_str().unwrap();
    // `seq (BODYSTRUCTURE (` then one level per part: the opaque leaf sits
    // at depth MAX_DEPTH, two lists in.
    assert_eq!(list_depth(bs), MAX_DEPTH + 2, "{bs}");
    assert!(bs
        .to_ascii_lowercase()
        .contains("\"application\" \"octet-stream\""));
    // BODY[1.1...] (100 levels) is the opaque part at the limit: its bytes.
    assert!(r["deep"].as_str().unwrap().contains(" {"), "{r}");
}

#[test]
fn lists_and_encrypted_accounts_take_the_20000_level_multipart() {
    let server = Server::start();
    account(&server, "alice@example.org");
    account(&server, "carol@example.org");
    let carol = pair("carol@example.org", 2048);
    server.ok(&[
        "cert",
        "add",
        "carol@example.org",
        carol.cert.to_str().unwrap(),
    ]);
    server.ok(&["encryption", "enable", "carol@example.org"]);
    server.ok(&[
        "list",
        "add",
        "team@example.org",
        "--member",
        "alice@example.org",
        "--member",
        "carol@example.org",
    ]);
    let deep = nested_multipart(20_000);
    deliver(&server, "team@example.org", &deep);
    deliver(&server, "carol@example.org", &deep);

    jmap_emails(&server, "alice@example.org", "deep");
    let r = imap_steps(&server, "alice@example.org", "deep");
    assert_imap_sensible(&r);
    let jmap = server.jmap("carol@example.org", PASSWORD);
    let got = jmap.call(
        "Email/get",
        json!({ "ids": null, "properties": ["subject", "bodyStructure", "textBody", "preview"],
                "fetchAllBodyValues": true }),
    );
    assert_alive(&server, "Email/get on the encrypted account");
    let list = got["list"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{got}");
    let fetched = python(
        IMAP_STEPS,
        &[
            &server.imap_port.to_string(),
            "carol@example.org",
            PASSWORD,
            "deep",
        ],
    );
    assert_alive(&server, "the IMAP fetches on the encrypted account");
    let r: Value = serde_json::from_str(&fetched).unwrap();
    list_depth(r["bodystructure"].as_str().unwrap());

    deliver(&server, "team@example.org", &normal());
    jmap_emails(&server, "alice@example.org", "normal");
}
