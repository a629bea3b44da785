//! Several `sealmail serve` nodes on one PostgreSQL database (issue #16,
//! item 4), each a real server process with its own data directory:
//! an IMAP IDLE and a JMAP EventSource on node B wake for a delivery made
//! through node A (PostgreSQL LISTEN/NOTIFY); concurrent deliveries to one
//! mailbox through both nodes get unique, increasing UIDs and none is
//! lost; a certificate added on A encrypts B's next delivery; kill -9 of
//! a node under load loses no acknowledged message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use support::postgres::{test_db, TestDb};
use support::server::Server;
use support::tools::{openssl_decrypt, python};

const USER: &str = "alice@example.org";
const PASSWORD: &str = "a good password";

fn node(db: &TestDb) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &[
            ("SEALMAIL_STORE_ENGINE", "postgres"),
            ("SEALMAIL_STORE_URL", db.url.as_str()),
            ("SEALMAIL_STORE_POOL_SIZE", "4"),
        ],
    );
    (dir, server)
}

fn message(subject: &str) -> Vec<u8> {
    format!(
        "From: s@example.net\r\nTo: {USER}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@example.net>\r\n\r\nbody of {subject}\r\n"
    )
    .into_bytes()
}

/// Waits in IMAP IDLE on INBOX; prints `IDLING` once idling, then the
/// first untagged line the server pushes (or `TIMEOUT` after 20 s).
const IDLE: &str = r#"
import imaplib, sys, socket
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
m.select("INBOX")
m.sock.sendall(b"I1 IDLE\r\n")
f = m.sock.makefile("rb")
assert f.readline().startswith(b"+")
print("IDLING", flush=True)
m.sock.settimeout(20)
try:
    print(f.readline().decode().strip(), flush=True)
except socket.timeout:
    print("TIMEOUT", flush=True)
"#;

/// Opens the JMAP EventSource; prints `LISTENING` once the response
/// started, then the first `event:` line (or `TIMEOUT` after 20 s).
const EVENTS: &str = r#"
import base64, socket, sys, urllib.request
req = urllib.request.Request(
    "http://127.0.0.1:%s/jmap/eventsource/?types=*&closeafter=state&ping=0" % sys.argv[1],
    headers={"Authorization": "Basic " + base64.b64encode(("%s:%s" % (sys.argv[2], sys.argv[3])).encode()).decode()})
resp = urllib.request.urlopen(req, timeout=20)
assert resp.status == 200, resp.status
print("LISTENING", flush=True)
try:
    while True:
        line = resp.readline().decode()
        if not line or line.startswith("event:"):
            print(line.strip() or "CLOSED", flush=True)
            break
except socket.timeout:
    print("TIMEOUT", flush=True)
"#;

fn spawn_python(script: &str, args: &[&str]) -> Child {
    let file = tempfile::Builder::new().suffix(".py").tempfile().unwrap();
    std::fs::write(file.path(), script).unwrap();
    let (_, path) = file.keep().unwrap();
    Command::new("python3")
        .arg(path)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads `child`'s lines until `ready`, and returns the reader.
fn ready(child: &mut Child, marker: &str) -> BufReader<std::process::ChildStdout> {
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(reader.read_line(&mut line).unwrap() > 0, "no {marker}");
        if line.trim() == marker {
            return reader;
        }
    }
}

fn next_line(reader: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.trim().to_string()
}

#[test]
fn idle_and_event_source_on_node_b_wake_for_a_delivery_through_node_a() {
    let db = test_db();
    let (_a_dir, a) = node(&db);
    let (_b_dir, b) = node(&db);
    a.account_with_password(USER, PASSWORD);
    let port = b.imap_port.to_string();
    let mut idle = spawn_python(IDLE, &[&port, USER, PASSWORD]);
    let mut idle_out = ready(&mut idle, "IDLING");
    let jmap_port = b.jmap_port.to_string();
    let mut events = spawn_python(EVENTS, &[&jmap_port, USER, PASSWORD]);
    let mut events_out = ready(&mut events, "LISTENING");

    let reply = a.lmtp_send(USER, &message("wake-b"));
    assert!(reply.starts_with("250"), "{reply}");

    assert_eq!(next_line(&mut idle_out), "* 1 EXISTS", "IDLE on node B");
    assert_eq!(
        next_line(&mut events_out),
        "event: state",
        "EventSource on node B"
    );
    idle.kill().ok();
    events.wait().unwrap();
}

/// `UID SEARCH ALL` and the subjects, in UID order, over IMAP.
const UIDS: &str = r#"
import imaplib, json, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, data = m.select("INBOX")
typ, data = m.uid("FETCH", "1:*", "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
out = []
for item in data:
    if isinstance(item, tuple):
        uid = int(item[0].split(b"UID ")[1].split()[0])
        out.append([uid, item[1].decode().strip()])
status = m.status("INBOX", "(UIDNEXT MESSAGES)")[1][0].decode()
print(json.dumps({"messages": out, "status": status}))
"#;

#[test]
fn concurrent_deliveries_through_both_nodes_get_unique_increasing_uids() {
    const EACH: usize = 25;
    let db = test_db();
    let (_a_dir, a) = node(&db);
    let (_b_dir, b) = node(&db);
    a.account_with_password(USER, PASSWORD);
    let (a, b) = (Arc::new(a), Arc::new(b));
    let senders: Vec<_> = [("a", Arc::clone(&a)), ("b", Arc::clone(&b))]
        .into_iter()
        .map(|(name, server)| {
            std::thread::spawn(move || {
                for i in 0..EACH {
                    let reply = server.lmtp_send(USER, &message(&format!("{name}-{i}")));
                    assert!(reply.starts_with("250"), "{reply}");
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    for server in [&a, &b] {
        let out = python(UIDS, &[&server.imap_port.to_string(), USER, PASSWORD]);
        let seen: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let messages = seen["messages"].as_array().unwrap();
        assert_eq!(messages.len(), 2 * EACH, "{seen}");
        let uids: Vec<u64> = messages.iter().map(|m| m[0].as_u64().unwrap()).collect();
        assert!(uids.windows(2).all(|w| w[0] < w[1]), "{uids:?}");
        assert_eq!(uids, (1..=2 * EACH as u64).collect::<Vec<_>>());
        let mut subjects: Vec<String> = messages
            .iter()
            .map(|m| m[1].as_str().unwrap().to_string())
            .collect();
        subjects.sort();
        subjects.dedup();
        assert_eq!(subjects.len(), 2 * EACH, "every message once: {subjects:?}");
        let status = seen["status"].as_str().unwrap();
        assert!(
            status.contains(&format!("UIDNEXT {}", 2 * EACH + 1)),
            "{status}"
        );
    }
}

#[test]
fn a_certificate_added_on_node_a_encrypts_the_next_delivery_on_node_b() {
    let db = test_db();
    let (_a_dir, a) = node(&db);
    let (_b_dir, b) = node(&db);
    let keys = a.encrypted_account("carol@example.org");
    let reply = b.lmtp_send(
        "carol@example.org",
        b"From: s@example.net\r\nTo: carol@example.org\r\nSubject: sealed\r\n\r\nNODE-B-SECRET-BODY\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let stored = b.inbox("carol@example.org");
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].windows(18).any(|w| w == b"NODE-B-SECRET-BODY"),
        "stored in clear by node B"
    );
    let clear = openssl_decrypt(&stored[0], &keys.cert, &keys.key);
    assert!(String::from_utf8_lossy(&clear).contains("NODE-B-SECRET-BODY"));
    assert_eq!(
        db.psql(
            "SELECT count(*) FROM (SELECT string_agg(value, '' ORDER BY off) AS body FROM blobs GROUP BY key) b WHERE position('NODE-B-SECRET-BODY'::bytea in body) > 0"
        ),
        "0",
        "no plaintext body in the database"
    );
}

#[test]
fn kill_9_of_a_node_under_load_loses_no_acknowledged_message() {
    let db = test_db();
    let (_a_dir, a) = node(&db);
    let (_b_dir, b) = node(&db);
    a.account_with_password(USER, PASSWORD);
    let mut a = a;
    let port = a.lmtp_port;
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    let sender = std::thread::spawn(move || {
        let mut acked = Vec::new();
        // Python's LMTP client per message against node A's port, until
        // the node is gone.
        let scratch = tempfile::tempdir().unwrap();
        for i in 0..400 {
            let subject = format!("load-{i}");
            let path = scratch.path().join("m.eml");
            std::fs::write(&path, message(&subject)).unwrap();
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import smtplib,sys\nc=smtplib.LMTP('127.0.0.1',int(sys.argv[1]),timeout=10)\nc.sendmail('s@example.net',[sys.argv[2]],open(sys.argv[3],'rb').read())\nc.quit()",
                    &port.to_string(),
                    USER,
                    path.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            if out.status.success() {
                acked.push(subject);
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            } else if i > 5 {
                break;
            }
        }
        acked
    });
    // Kill in the middle of the load: after 20 acknowledgements, while
    // the sender is still sending.
    let started = std::time::Instant::now();
    while count.load(std::sync::atomic::Ordering::SeqCst) < 20 {
        assert!(
            started.elapsed().as_secs() < 120,
            "the load does not progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    a.kill();
    let acked = sender.join().unwrap();
    assert!(
        acked.len() > 5,
        "the load ran before the kill: {}",
        acked.len()
    );
    let out = python(UIDS, &[&b.imap_port.to_string(), USER, PASSWORD]);
    let seen: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let stored: Vec<String> = seen["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[1].as_str().unwrap().to_string())
        .collect();
    for subject in &acked {
        assert!(
            stored.iter().any(|s| s == &format!("Subject: {subject}")),
            "{subject} was acknowledged by node A but node B does not have it"
        );
    }
}

#[test]
fn after_postgres_drops_every_connection_deliveries_and_push_carry_on() {
    let db = test_db();
    let (_a_dir, a) = node(&db);
    let (_b_dir, b) = node(&db);
    a.account_with_password(USER, PASSWORD);
    let port = b.imap_port.to_string();
    let mut idle = spawn_python(IDLE, &[&port, USER, PASSWORD]);
    let mut idle_out = ready(&mut idle, "IDLING");

    // What a failover does to the nodes: every server connection of the
    // database ends at once (pool connections and both nodes' bus).
    let ended = db.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        db.name
    ));
    assert!(
        ended.parse::<u32>().unwrap() >= 2,
        "connections ended: {ended}"
    );

    let reply = a.lmtp_send(USER, &message("after-failover"));
    assert!(reply.starts_with("250"), "{reply}");
    assert_eq!(
        next_line(&mut idle_out),
        "* 1 EXISTS",
        "IDLE on node B after its bus reconnected"
    );
    idle.kill().ok();
    let out = python(UIDS, &[&b.imap_port.to_string(), USER, PASSWORD]);
    assert!(out.contains("Subject: after-failover"), "{out}");
}
