//! Stable Email ids (RFC 8621 §4.1.1) and threads (RFC 8621 §3) against
//! the real `sealmail serve`, on RocksDB and on PostgreSQL: mail arrives
//! over LMTP (Python `smtplib.LMTP`), is moved and copied over IMAP
//! (Python `imaplib`) and over JMAP, and JMAP `Email/*`, `Mailbox/changes`
//! and `Thread/*` are read as a client reads them (RFC 8620 §5.1, §5.2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};

use support::postgres::{test_db, TestDb};
use support::server::{JmapUser, Server};
use support::tools::python;

const PASSWORD: &str = "a good password";

/// The storage engine a test runs on.
#[derive(Clone, Copy)]
enum Engine {
    Rocks,
    Postgres,
}

/// What a PostgreSQL server needs kept until it stops: its database and
/// its (otherwise empty) data directory.
type PgHold = Option<(TestDb, tempfile::TempDir)>;

/// A server on `engine` with the accounts `users`.
fn start(engine: Engine, users: &[&str]) -> (Server, PgHold) {
    let (server, hold) = match engine {
        Engine::Rocks => (Server::start(), None),
        Engine::Postgres => {
            let db = test_db();
            let env = [
                ("SEALMAIL_STORE_ENGINE", "postgres"),
                ("SEALMAIL_STORE_URL", db.url.as_str()),
                ("SEALMAIL_STORE_POOL_SIZE", "4"),
            ];
            let dir = tempfile::tempdir().unwrap();
            let server = Server::start_with_env(dir.path(), &env);
            (server, Some((db, dir)))
        }
    };
    for u in users {
        server.account_with_password(u, PASSWORD);
    }
    (server, hold)
}

fn mail(subject: &str, id: &str, parent: &[&str]) -> Vec<u8> {
    let mut out = format!(
        "From: carol@example.net\r\nTo: alice@example.org\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n"
    );
    if let Some(last) = parent.last() {
        out.push_str(&format!("In-Reply-To: <{last}>\r\n"));
        let refs: Vec<String> = parent.iter().map(|p| format!("<{p}>")).collect();
        out.push_str(&format!("References: {}\r\n", refs.join(" ")));
    }
    out.push_str("\r\nHello.\r\n");
    out.into_bytes()
}

fn deliver(server: &Server, to: &str, data: &[u8]) {
    let reply = server.lmtp_send(to, data);
    assert!(reply.starts_with("250"), "{reply}");
}

fn state(user: &JmapUser) -> String {
    user.call("Email/get", json!({ "ids": [] }))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

fn mailbox(user: &JmapUser, role: &str) -> String {
    let q = user.call("Mailbox/query", json!({ "filter": { "role": role } }));
    q["ids"][0].as_str().unwrap().to_string()
}

/// The Email ids of the account, oldest first.
fn email_ids(user: &JmapUser) -> Vec<String> {
    let q = user.call(
        "Email/query",
        json!({ "sort": [{ "property": "receivedAt", "isAscending": true }] }),
    );
    serde_json::from_value(q["ids"].clone()).unwrap()
}

fn get(user: &JmapUser, ids: &[&str], props: &[&str]) -> Value {
    user.call("Email/get", json!({ "ids": ids, "properties": props }))
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = serde_json::from_value(v.clone()).unwrap();
    out.sort();
    out
}

fn jmap_move_keeps_the_email_id(engine: Engine) {
    let (server, _db) = start(engine, &["alice@example.org"]);
    deliver(&server, "alice@example.org", &mail("Plans", "p@x", &[]));
    let alice = server.jmap("alice@example.org", PASSWORD);
    let (inbox, archive) = (mailbox(&alice, "inbox"), mailbox(&alice, "archive"));
    let id = email_ids(&alice).remove(0);
    let before = state(&alice);
    let mailbox_state = alice.call("Mailbox/get", json!({ "ids": [] }))["state"].clone();

    let set = alice.call(
        "Email/set",
        json!({ "update": { id.clone(): { "mailboxIds": { archive.clone(): true } } } }),
    );
    assert_eq!(set["updated"], json!({ id.clone(): null }), "{set}");

    let got = get(&alice, &[&id], &["id", "mailboxIds"]);
    assert_eq!(
        got["list"][0]["mailboxIds"],
        json!({ archive.clone(): true })
    );
    let ch = alice.call("Email/changes", json!({ "sinceState": before }));
    assert_eq!(
        (&ch["created"], &ch["updated"], &ch["destroyed"]),
        (&json!([]), &json!([id]), &json!([])),
        "{ch}"
    );
    let ch = alice.call("Mailbox/changes", json!({ "sinceState": mailbox_state }));
    let mut both = vec![inbox, archive];
    both.sort();
    assert_eq!(sorted(&ch["updated"]), both, "{ch}");
    assert_eq!(ch["created"], json!([]));
}

#[test]
fn rfc8621_4_1_1_a_jmap_move_keeps_the_email_id_rocksdb() {
    jmap_move_keeps_the_email_id(Engine::Rocks);
}

#[test]
fn rfc8621_4_1_1_a_jmap_move_keeps_the_email_id_postgres() {
    jmap_move_keeps_the_email_id(Engine::Postgres);
}

/// UID MOVE of the first INBOX message and UID COPY of the second, both
/// to Archive; prints nothing.
const IMAP_MOVE_COPY: &str = r#"
import imaplib, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
typ, data = m.select("INBOX")
assert typ == "OK", data
typ, data = m.uid("SEARCH", None, "ALL")
first, second = data[0].split()
typ, data = m.uid("MOVE", first, "Archive")
assert typ == "OK", data
typ, data = m.uid("COPY", second, "Archive")
assert typ == "OK", data
m.logout()
"#;

fn imap_move_keeps_the_id_and_copy_makes_a_new_one(engine: Engine) {
    let (server, _db) = start(engine, &["alice@example.org"]);
    deliver(&server, "alice@example.org", &mail("One", "1@x", &[]));
    deliver(&server, "alice@example.org", &mail("Two", "2@x", &[]));
    let alice = server.jmap("alice@example.org", PASSWORD);
    let archive = mailbox(&alice, "archive");
    let before_ids = email_ids(&alice);
    let (one, two) = (before_ids[0].clone(), before_ids[1].clone());
    let before = state(&alice);

    python(
        IMAP_MOVE_COPY,
        &[&server.imap_port.to_string(), "alice@example.org", PASSWORD],
    );

    let got = get(&alice, &[&one], &["mailboxIds", "subject"]);
    assert_eq!(
        got["list"][0]["mailboxIds"],
        json!({ archive.clone(): true })
    );
    assert_eq!(got["list"][0]["subject"], "One");
    let now = email_ids(&alice);
    assert_eq!(now.len(), 3);
    let copy: Vec<&String> = now.iter().filter(|i| **i != one && **i != two).collect();
    let copy = copy[0].clone();
    let got = get(
        &alice,
        &[&two, &copy],
        &["mailboxIds", "subject", "threadId"],
    );
    assert_eq!(got["list"][1]["mailboxIds"], json!({ archive: true }));
    assert_eq!(got["list"][1]["subject"], "Two");
    assert_eq!(
        got["list"][0]["threadId"], got["list"][1]["threadId"],
        "a copy is a new Email in its original's thread"
    );
    let ch = alice.call("Email/changes", json!({ "sinceState": before }));
    assert_eq!(
        (&ch["created"], &ch["updated"], &ch["destroyed"]),
        (&json!([copy]), &json!([one]), &json!([])),
        "{ch}"
    );
}

#[test]
fn rfc8621_4_1_1_imap_uid_move_keeps_the_email_id_and_copy_makes_a_new_one_rocksdb() {
    imap_move_keeps_the_id_and_copy_makes_a_new_one(Engine::Rocks);
}

#[test]
fn rfc8621_4_1_1_imap_uid_move_keeps_the_email_id_and_copy_makes_a_new_one_postgres() {
    imap_move_keeps_the_id_and_copy_makes_a_new_one(Engine::Postgres);
}

fn ids_are_per_account(engine: Engine) {
    let (server, _db) = start(engine, &["alice@example.org", "bob@example.org"]);
    for who in ["alice@example.org", "bob@example.org"] {
        deliver(&server, who, &mail("Plans", "p@x", &[]));
    }
    let alice = server.jmap("alice@example.org", PASSWORD);
    let bob = server.jmap("bob@example.org", PASSWORD);
    let (a, b) = (email_ids(&alice), email_ids(&bob));
    assert_ne!(a, b, "the same message in two accounts has two ids");
    let theirs = get(&bob, &[&b[0]], &["threadId"]);
    let thread = theirs["list"][0]["threadId"].as_str().unwrap().to_string();
    let got = get(&alice, &[&b[0]], &["id"]);
    assert_eq!(got["notFound"], json!([b[0]]), "{got}");
    let got = alice.call("Thread/get", json!({ "ids": [thread] }));
    assert_eq!(got["notFound"], json!([thread]), "{got}");
    let set = alice.call("Email/set", json!({ "destroy": [b[0]] }));
    assert_eq!(set["notDestroyed"][&b[0]]["type"], "notFound", "{set}");
    assert_eq!(get(&bob, &[&b[0]], &["id"])["list"][0]["id"], json!(b[0]));
}

#[test]
fn rfc8620_1_2_ids_differ_across_accounts_and_stay_private_rocksdb() {
    ids_are_per_account(Engine::Rocks);
}

#[test]
fn rfc8620_1_2_ids_differ_across_accounts_and_stay_private_postgres() {
    ids_are_per_account(Engine::Postgres);
}

fn thread_of(user: &JmapUser, id: &str) -> String {
    get(user, &[id], &["threadId"])["list"][0]["threadId"]
        .as_str()
        .unwrap()
        .to_string()
}

fn replies_share_a_thread(engine: Engine) {
    let (server, _db) = start(engine, &["alice@example.org"]);
    let alice = server.jmap("alice@example.org", PASSWORD);
    let start_state = state(&alice);
    deliver(&server, "alice@example.org", &mail("Plans", "p@x", &[]));
    let after_parent = state(&alice);
    deliver(
        &server,
        "alice@example.org",
        &mail("Re: Plans", "r1@x", &["p@x"]),
    );
    deliver(
        &server,
        "alice@example.org",
        &mail("RE: Re: plans", "r2@x", &["p@x", "r1@x"]),
    );
    // Same subject, no link: a thread of its own.
    deliver(&server, "alice@example.org", &mail("Plans", "n@x", &[]));
    // A link but another subject: a thread of its own too.
    deliver(
        &server,
        "alice@example.org",
        &mail("Holidays", "h@x", &["p@x"]),
    );

    let ids = email_ids(&alice);
    let threads: Vec<String> = ids.iter().map(|i| thread_of(&alice, i)).collect();
    assert_eq!(threads[0], threads[1]);
    assert_eq!(threads[0], threads[2]);
    assert_ne!(threads[3], threads[0], "an unrelated namesake");
    assert_ne!(threads[4], threads[0], "a link with another subject");
    assert_ne!(threads[4], threads[3]);

    let got = alice.call(
        "Thread/get",
        json!({ "ids": [threads[0], threads[3], "t0-1"] }),
    );
    assert_eq!(
        got["list"][0],
        json!({ "id": threads[0], "emailIds": [ids[0], ids[1], ids[2]] }),
        "emailIds sorted by receivedAt: {got}"
    );
    assert_eq!(got["list"][1]["emailIds"], json!([ids[3]]));
    assert_eq!(got["notFound"], json!(["t0-1"]));
    assert_eq!(got["state"], json!(state(&alice)));

    // RFC 8620 §5.2: created from before the first message; updated after.
    let ch = alice.call("Thread/changes", json!({ "sinceState": start_state }));
    let mut want = vec![threads[0].clone(), threads[3].clone(), threads[4].clone()];
    want.sort();
    assert_eq!(sorted(&ch["created"]), want, "{ch}");
    assert_eq!((&ch["updated"], &ch["destroyed"]), (&json!([]), &json!([])));
    let ch = alice.call("Thread/changes", json!({ "sinceState": after_parent }));
    assert_eq!(ch["updated"], json!([threads[0]]), "{ch}");
    assert_eq!(ch["newState"], json!(state(&alice)));
    assert_eq!(ch["hasMoreChanges"], json!(false));
    // maxChanges pages through, oldest first.
    let ch = alice.call(
        "Thread/changes",
        json!({ "sinceState": after_parent, "maxChanges": 1 }),
    );
    assert_eq!(
        (&ch["updated"], &ch["hasMoreChanges"]),
        (&json!([threads[0]]), &json!(true))
    );

    // Keywords leave threads alone; the last Email going destroys one.
    let before_destroy = state(&alice);
    let set = alice.call(
        "Email/set",
        json!({ "update": { ids[0].clone(): { "keywords/$seen": true } }, "destroy": [ids[3]] }),
    );
    assert_eq!(set["destroyed"], json!([ids[3]]), "{set}");
    let ch = alice.call("Thread/changes", json!({ "sinceState": before_destroy }));
    assert_eq!(
        (&ch["updated"], &ch["destroyed"]),
        (&json!([]), &json!([threads[3]])),
        "{ch}"
    );
    let got = alice.call("Thread/get", json!({ "ids": [threads[3]] }));
    assert_eq!(got["notFound"], json!([threads[3]]));
}

#[test]
fn rfc8621_3_replies_share_a_thread_and_a_namesake_does_not_rocksdb() {
    replies_share_a_thread(Engine::Rocks);
}

#[test]
fn rfc8621_3_replies_share_a_thread_and_a_namesake_does_not_postgres() {
    replies_share_a_thread(Engine::Postgres);
}

/// An account with encryption at rest: the stored message is S/MIME, and
/// threading reads the header fields left in clear on its outer header.
#[test]
fn rfc8621_3_encrypted_replies_thread_by_their_clear_outer_header() {
    let (server, _db) = start(Engine::Rocks, &[]);
    server.encrypted_account("alice@example.org");
    let out = server.cli(
        &["account", "passwd", "alice@example.org", "--password-stdin"],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    deliver(&server, "alice@example.org", &mail("Plans", "p@x", &[]));
    deliver(
        &server,
        "alice@example.org",
        &mail("Re: Plans", "r@x", &["p@x"]),
    );
    let stored = server.inbox("alice@example.org");
    assert!(
        stored
            .iter()
            .all(|m| String::from_utf8_lossy(m).contains("application/pkcs7-mime")),
        "stored encrypted"
    );
    let alice = server.jmap("alice@example.org", PASSWORD);
    let ids = email_ids(&alice);
    assert_eq!(thread_of(&alice, &ids[0]), thread_of(&alice, &ids[1]));
}
