//! Push over the event source (RFC 8620 §7.3) for every type, against
//! the real `sealmail serve`: a flag change made over IMAP by another
//! connection, `Mailbox/set`, `Certificate/set`, `EncryptionSettings/set`
//! and a certificate added with the CLI each push a `StateChange` (§7.1)
//! naming the types that changed, at the account's new state; the
//! `types` parameter filters them (also for the jmap-client crate, which
//! cannot read types it does not know); another account's changes never
//! reach the stream; IMAP IDLE (RFC 2177) hears a change made over
//! JMAP; and on a shared PostgreSQL store a change made through one node
//! is pushed, with its type, by another. The event stream is read raw
//! (reqwest), IMAP is Python's `imaplib`, the CLI is the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read as _;
use std::process::{Command, Stdio};

use serde_json::json;

use support::imap::wait_for_line;
use support::jmap::Client;
use support::pki::pair;
use support::postgres::test_db;
use support::push::{account, changed, create_mailbox, state, Events, WAIT};
use support::server::Server;
use support::tools::{python, require};

const A: &str = "alice@example.org";
const B: &str = "bob@example.org";

/// A message in `user`'s INBOX, appended over IMAP.
fn append_over_imap(s: &Server, user: &str, password: &str) {
    let out = python(
        r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, _ = m.append('INBOX', None, None, b'From: x@example.net\r\nSubject: hi\r\n\r\nhello\r\n')
print(typ)
"#,
        &[&s.imap_port.to_string(), user, password],
    );
    assert_eq!(out.trim(), "OK");
}

#[tokio::test]
async fn a_flag_change_over_imap_from_another_connection_is_pushed() {
    let s = Server::start();
    let alice = account(&s, A, "alice-pw").await;
    append_over_imap(&s, A, "alice-pw");
    let mut events = Events::open(&alice, "types=*&closeafter=no&ping=0").await;
    let out = python(
        r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
m.select('INBOX')
typ, _ = m.store('1', '+FLAGS', '(\\Flagged)')
print(typ)
"#,
        &[&s.imap_port.to_string(), A, "alice-pw"],
    );
    assert_eq!(out.trim(), "OK");
    let change = events.next_state(WAIT).await.expect("a StateChange");
    assert_eq!(change["@type"], "StateChange", "{change}");
    let (types, states) = changed(&change, &alice.account_id);
    // A flag changes the Email and its mailbox's counts; no thread gains
    // or loses an Email, and nothing else moved.
    assert_eq!(types, ["Email", "Mailbox"], "{change}");
    let now = state(&alice).await;
    assert!(states.iter().all(|s| *s == now), "{change} vs {now}");
    let (_, got) = alice
        .call(
            "Email/query",
            json!({ "filter": { "hasKeyword": "$flagged" } }),
        )
        .await;
    assert_eq!(got["ids"].as_array().unwrap().len(), 1, "{got}");
}

#[tokio::test]
async fn mailbox_set_is_pushed_also_to_the_client_that_made_it() {
    let s = Server::start();
    let alice = account(&s, A, "alice-pw").await;
    let mut events = Events::open(&alice, "types=*&closeafter=state&ping=0").await;
    let new_state = create_mailbox(&alice, "Projects").await;
    let change = events.next_state(WAIT).await.expect("a StateChange");
    let (types, states) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Mailbox"], "{change}");
    assert_eq!(states, [new_state]);
    // closeafter=state: the stream ends after the event (§7.3).
    assert!(events.next_state(WAIT).await.is_none());
}

#[tokio::test]
async fn certificate_set_and_encryption_settings_set_are_pushed() {
    let s = Server::start();
    let alice = account(&s, A, "alice-pw").await;
    let key = pair(A, 2048);
    let mut events = Events::open(&alice, "types=*&ping=0").await;
    let (_, set) = alice
        .call(
            "Certificate/set",
            json!({ "create": { "c": {
                "certificate": String::from_utf8(key.cert_pem()).unwrap(),
                "description": "laptop" } } }),
        )
        .await;
    assert!(set["created"]["c"]["id"].is_string(), "{set}");
    let change = events.next_state(WAIT).await.expect("a StateChange");
    let (types, states) = changed(&change, &alice.account_id);
    // The settings' `warnings` follow the certificates.
    assert_eq!(types, ["Certificate", "EncryptionSettings"], "{change}");
    assert_eq!(states[0], set["newState"].as_str().unwrap());

    let (_, set) = alice
        .call(
            "EncryptionSettings/set",
            json!({ "update": { "singleton": { "isEnabled": true } } }),
        )
        .await;
    assert!(set["updated"].get("singleton").is_some(), "{set}");
    assert!(set["notUpdated"].is_null(), "{set}");
    let change = events.next_state(WAIT).await.expect("a StateChange");
    let (types, states) = changed(&change, &alice.account_id);
    assert_eq!(types, ["EncryptionSettings"], "{change}");
    assert_eq!(states, [state(&alice).await]);
}

#[tokio::test]
async fn a_certificate_added_with_the_cli_is_pushed() {
    let s = Server::start();
    let alice = account(&s, A, "alice-pw").await;
    let key = pair(A, 2048);
    let mut events = Events::open(&alice, "types=Certificate&ping=0").await;
    s.ok(&["cert", "add", A, key.cert.to_str().unwrap()]);
    let change = events.next_state(WAIT).await.expect("a StateChange");
    let (types, states) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Certificate"], "{change}");
    assert_eq!(states, [state(&alice).await]);
}

#[tokio::test]
async fn the_types_parameter_keeps_only_the_types_asked_for() {
    let s = Server::start();
    let alice = account(&s, A, "alice-pw").await;
    let key = pair(A, 2048);
    let mut certs = Events::open(&alice, "types=Certificate&ping=0").await;
    let mut mail = Events::open(&alice, "types=Email,Mailbox,NoSuchType&ping=0").await;
    // A mailbox change, which only `mail` wants, then a certificate
    // change, which only `certs` wants: each stream's first event is
    // its own change.
    let mailbox_state = create_mailbox(&alice, "Receipts").await;
    s.ok(&["cert", "add", A, key.cert.to_str().unwrap()]);
    let change = certs.next_state(WAIT).await.expect("a StateChange");
    let (types, states) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Certificate"], "{change}");
    assert_eq!(states, [state(&alice).await]);
    let change = mail.next_state(WAIT).await.expect("a StateChange");
    let (types, _) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Mailbox"], "{change}");
    assert_eq!(
        change["changed"][&alice.account_id]["Mailbox"],
        mailbox_state
    );
    // Nothing the certificate did reaches `mail`.
    assert!(mail
        .next_state(std::time::Duration::from_millis(500))
        .await
        .is_none());
}

#[tokio::test]
async fn another_accounts_changes_never_reach_the_stream() {
    let s = Server::start();
    let alice = account(&s, A, "alice-pw").await;
    let bob = account(&s, B, "bob-pw").await;
    let mut events = Events::open(&alice, "types=*&ping=0").await;
    create_mailbox(&bob, "Bob's").await;
    s.ok(&["cert", "add", B, pair(B, 2048).cert.to_str().unwrap()]);
    // Bob's id given by Alice is refused, and changes nothing.
    let (name, got) = alice
        .call(
            "Mailbox/set",
            json!({ "accountId": bob.account_id, "create": { "m": { "name": "x" } } }),
        )
        .await;
    assert_eq!(name, "error");
    assert_eq!(got["type"], "accountNotFound", "{got}");
    let alice_state = create_mailbox(&alice, "Alice's").await;
    let change = events.next_state(WAIT).await.expect("a StateChange");
    let (types, states) = changed(&change, &alice.account_id);
    assert_eq!(types, ["Mailbox"], "{change}");
    assert_eq!(states, [alice_state]);
}

#[test]
fn imap_idle_hears_a_flag_change_made_over_jmap() {
    require("python3");
    let s = Server::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let alice = rt.block_on(account(&s, A, "alice-pw"));
    append_over_imap(&s, A, "alice-pw");
    let script = r#"
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
m.select('INBOX')
sock = m.sock
sock.sendall(b'I1 IDLE\r\n')
f = sock.makefile('rb')
assert f.readline().startswith(b'+')
print('IDLING', flush=True)
sock.settimeout(10)
print(f.readline().decode().strip(), flush=True)
sock.sendall(b'DONE\r\n')
print(f.readline().decode().strip(), flush=True)
"#;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("idle.py");
    std::fs::write(&path, script).unwrap();
    let mut child = Command::new("python3")
        .arg(&path)
        .args([&s.imap_port.to_string(), A, "alice-pw"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = wait_for_line(&mut child, "IDLING");
    rt.block_on(async {
        // A certificate change first: nothing IMAP shows, so IDLE says
        // nothing of it; then a keyword set over JMAP.
        s.ok(&["cert", "add", A, pair(A, 2048).cert.to_str().unwrap()]);
        let (_, q) = alice.call("Email/query", json!({})).await;
        let id = q["ids"][0].as_str().unwrap().to_string();
        let (_, set) = alice
            .call(
                "Email/set",
                json!({ "update": { id.clone(): { "keywords/$flagged": true } } }),
            )
            .await;
        assert!(set["updated"].get(&id).is_some(), "{set}");
    });
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    let mut lines = rest.lines();
    let push = lines.next().unwrap();
    assert!(
        push.starts_with("* 1 FETCH (") && push.contains("\\Flagged"),
        "{rest}"
    );
    assert!(lines.next().unwrap().starts_with("I1 OK"), "{rest}");
}

#[tokio::test]
async fn a_change_through_one_node_is_pushed_with_its_type_by_another() {
    let db = test_db();
    let env = [
        ("SEALMAIL_STORE_ENGINE", "postgres"),
        ("SEALMAIL_STORE_URL", db.url.as_str()),
        ("SEALMAIL_STORE_POOL_SIZE", "4"),
    ];
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_with_env(a_dir.path(), &env);
    let b = Server::start_with_env(b_dir.path(), &env);
    let on_b = account(&b, A, "alice-pw").await;
    let mut events = Events::open(&on_b, "types=Certificate,Mailbox&ping=0").await;
    // Through node A: the CLI (its management socket) and the JMAP API.
    a.ok(&["cert", "add", A, pair(A, 2048).cert.to_str().unwrap()]);
    let change = events
        .next_state(WAIT)
        .await
        .expect("a StateChange on node B");
    let (types, _) = changed(&change, &on_b.account_id);
    assert_eq!(types, ["Certificate"], "{change}");
    let on_a = Client {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{}", a.jmap_port),
        user: A.into(),
        password: "alice-pw".into(),
        account_id: on_b.account_id.clone(),
    };
    let new_state = create_mailbox(&on_a, "From A").await;
    let change = events
        .next_state(WAIT)
        .await
        .expect("a StateChange on node B");
    let (types, states) = changed(&change, &on_b.account_id);
    assert_eq!(types, ["Mailbox"], "{change}");
    assert_eq!(states, [new_state]);
}

#[tokio::test]
async fn a_real_client_library_follows_the_pushes_it_asked_for() {
    use futures_util::StreamExt as _;
    use jmap_client::event_source::PushNotification;
    use jmap_client::DataType;

    let s = Server::start();
    let alice = account(&s, A, "alice-pw").await;
    append_over_imap(&s, A, "alice-pw");
    let library = jmap_client::client::Client::new()
        .credentials((A, "alice-pw"))
        .follow_redirects(["127.0.0.1"])
        .connect(&alice.base)
        .await
        .unwrap();
    // The jmap-client crate knows no Certificate type: an event naming
    // one would be an error on its stream, so the filter must hold.
    let mut stream = library
        .event_source(
            Some([DataType::Email, DataType::Mailbox]),
            false,
            None,
            None,
        )
        .await
        .unwrap();
    s.ok(&["cert", "add", A, pair(A, 2048).cert.to_str().unwrap()]);
    let (_, q) = alice.call("Email/query", json!({})).await;
    let id = q["ids"][0].as_str().unwrap().to_string();
    let (_, set) = alice
        .call(
            "Email/set",
            json!({ "update": { id.clone(): { "keywords/$seen": true } } }),
        )
        .await;
    assert!(set["updated"].get(&id).is_some(), "{set}");
    let pushed = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a push in time")
        .expect("the stream is open")
        .expect("a push the library can read");
    let PushNotification::StateChange(mut changes) = pushed else {
        panic!("not a state change: {pushed:?}");
    };
    let mine = changes.account_changes(&alice.account_id).unwrap();
    let now = state(&alice).await;
    assert_eq!(mine.get(&DataType::Email), Some(&now));
    assert_eq!(mine.get(&DataType::Mailbox), Some(&now));
    assert_eq!(mine.len(), 2, "{mine:?}");
}
