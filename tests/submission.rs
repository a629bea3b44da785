//! Sending over JMAP (RFC 8621 §7) through a real Postfix as the relay
//! (`submission.relay`), which hands the mail back to sealmail over LMTP
//! for the local recipients, as an operator's MTA would.
//!
//! - RFC 8621 §4.6: `Email/set` create composes the message from JSON
//!   (non-ASCII subject and names, a text body with a line holding a lone
//!   dot, an uploaded attachment with a non-ASCII name).
//! - RFC 8621 §7.5: `EmailSubmission/set` with `"#creationId"`, the
//!   implicit `Email/set` of `onSuccessUpdateEmail` (Drafts → Sent,
//!   `$draft` cleared), `Bcc` removed from what is sent but delivered,
//!   STARTTLS to the relay (Postfix logs the TLS session).
//! - At rest: the sender's Sent copy is S/MIME that opens with her key;
//!   the marker is in no file of the data directory.
//! - Refusals: `forbiddenFrom`, `forbiddenMailFrom`, an address built to
//!   inject SMTP, another account's Email, a stored encrypted Email the
//!   server cannot read, recipients the relay refuses (some or all), header
//!   injection through `Email/set`; and no capability without a relay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "submission/auth.rs"]
mod auth;

use std::process::Command;
use std::time::{Duration, Instant};

use mail_parser::MimeHeaders as _;
use serde_json::{json, Value};
use support::postfix::{final_status, Postfix, DELIVERY_TIMEOUT};
use support::server::{free_port, JmapUser, Server};
use support::tools::{found_in_files, openssl_decrypt, run};

const PASSWORD: &str = "correct horse battery";
const ALICE: &str = "alice@example.org";
const BOB: &str = "bob@example.org";
const CAROL: &str = "carol@example.org";
/// A recipient the test relay refuses at RCPT.
const BLOCKED: &str = "blocked@example.org";

/// Postfix relaying for loopback, with STARTTLS (a certificate made here)
/// and one address it refuses; example.org goes to sealmail's LMTP port.
fn relay(lmtp_port: u16, extra: Vec<(&'static str, String)>) -> Postfix {
    Postfix::start_prepared(lmtp_port, move |root| {
        let (cert, key) = (root.join("smtpd.crt"), root.join("smtpd.key"));
        let access = root.join("recipient_access");
        std::fs::write(
            &access,
            format!("{BLOCKED} REJECT refused by the test relay\n"),
        )
        .unwrap();
        run(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=mx.test", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert),
            b"",
        );
        let mut settings = vec![
            ("smtpd_tls_cert_file", cert.display().to_string()),
            ("smtpd_tls_key_file", key.display().to_string()),
            ("smtpd_tls_security_level", "may".to_string()),
            ("smtpd_tls_loglevel", "1".to_string()),
            (
                "smtpd_recipient_restrictions",
                format!("check_recipient_access texthash:{}, permit_mynetworks, reject_unauth_destination", access.display()),
            ),
        ];
        settings.extend(extra);
        settings
    })
}

struct Setup {
    server: Server,
    postfix: Postfix,
    _dir: tempfile::TempDir,
}

/// sealmail with `submission.relay` pointing at a Postfix that delivers
/// example.org back into it; alice, bob and carol encrypted, all with
/// passwords.
fn setup() -> (Setup, Vec<support::pki::KeyPair>) {
    setup_in(tempfile::tempdir().unwrap(), &[], Vec::new())
}

/// [`setup`] in `dir`, with more server environment and more Postfix
/// settings.
fn setup_in(
    dir: tempfile::TempDir,
    env: &[(&str, &str)],
    postfix: Vec<(&'static str, String)>,
) -> (Setup, Vec<support::pki::KeyPair>) {
    let lmtp_port = free_port();
    let postfix = relay(lmtp_port, postfix);
    let lmtp = format!("127.0.0.1:{lmtp_port}");
    let relay_at = format!("127.0.0.1:{}", postfix.smtp_port);
    let mut envs = vec![
        ("SEALMAIL_LMTP_LISTEN", lmtp.as_str()),
        ("SEALMAIL_SUBMISSION_RELAY", relay_at.as_str()),
    ];
    envs.extend_from_slice(env);
    let server = Server::start_with_env(&dir.path().join("data"), &envs);
    let keys = [ALICE, BOB, CAROL]
        .iter()
        .map(|who| {
            let keys = support::pki::pair(who, 2048);
            server.account_with_password(who, PASSWORD);
            server.ok(&["cert", "add", who, keys.cert.to_str().unwrap()]);
            server.ok(&["encryption", "enable", who]);
            keys
        })
        .collect();
    let setup = Setup {
        server,
        postfix,
        _dir: dir,
    };
    (setup, keys)
}

/// The ids of the mailboxes with `role`.
fn role(user: &JmapUser, role: &str) -> String {
    let boxes = user.call("Mailbox/get", json!({}));
    boxes["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["role"] == role)
        .unwrap_or_else(|| panic!("no {role} mailbox: {boxes}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn identity(user: &JmapUser) -> Value {
    let got = user.calls(json!([["Identity/get", {}, "i"]]));
    assert_eq!(got[0][0], "Identity/get", "{got:?}");
    got[0][1]["list"][0].clone()
}

/// Waits until `who`'s INBOX holds `n` messages.
fn inbox_of(setup: &Setup, who: &str, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let got = setup.server.inbox(who);
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{who} has {} of {n} messages after {DELIVERY_TIMEOUT:?}\nmaillog:\n{}",
            got.len(),
            setup.postfix.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_jmap_client_sends_through_postfix_and_the_sent_copy_stays_encrypted() {
    let (setup, keys) = setup();
    let alice = setup.server.jmap(ALICE, PASSWORD);
    assert!(
        alice.session["capabilities"]["urn:ietf:params:jmap:submission"].is_object(),
        "RFC 8621 §1.3.3: the submission capability is advertised: {}",
        alice.session
    );
    let (drafts, sent) = (role(&alice, "drafts"), role(&alice, "sent"));
    let me = identity(&alice);
    assert_eq!(me["email"], ALICE, "{me}");
    let marker = "SUBMISSION-MARKER-7f31c9";
    let attachment = b"attached bytes \x00\x01\x02 binary".to_vec();
    let blob = alice.upload(attachment.clone());
    let got = alice.calls(json!([
        ["Email/set", {"create": {"draft": {
            "mailboxIds": {drafts.clone(): true},
            "keywords": {"$draft": true, "$seen": true},
            "from": [{"name": "Alice Ärger", "email": ALICE}],
            "to": [{"name": "Bob", "email": BOB}],
            "bcc": [{"email": CAROL}],
            "subject": "Grüße aus Köln",
            "textBody": [{"partId": "t", "type": "text/plain"}],
            "bodyValues": {"t": {"value": format!("{marker}\n.\nthe line above is a lone dot\n")}},
            "attachments": [{"blobId": blob, "type": "application/octet-stream", "name": "Bericht ü.bin", "disposition": "attachment"}],
        }}}, "e"],
        ["EmailSubmission/set", {
            "create": {"s": {"identityId": me["id"], "emailId": "#draft"}},
            "onSuccessUpdateEmail": {"#s": {
                format!("mailboxIds/{sent}"): true,
                format!("mailboxIds/{drafts}"): null,
                "keywords/$draft": null,
            }},
        }, "s"],
    ]));
    assert_eq!(got[0][0], "Email/set", "{got:?}");
    let email_id = got[0][1]["created"]["draft"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{got:?}"))
        .to_string();
    assert_eq!(got[1][0], "EmailSubmission/set", "{got:?}");
    let submission = &got[1][1]["created"]["s"];
    assert_eq!(submission["undoStatus"], "final", "{got:?}");
    assert_eq!(submission["emailId"], email_id.as_str());
    let rcpts: Vec<&str> = submission["envelope"]["rcptTo"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["email"].as_str().unwrap())
        .collect();
    assert_eq!(rcpts, vec![BOB, CAROL], "To then Bcc: {submission}");
    assert_eq!(
        submission["deliveryStatus"][BOB]["delivered"], "queued",
        "{submission}"
    );
    // RFC 8621 §7.5: the implicit Email/set follows, with the same call id.
    assert_eq!(got[2][0], "Email/set", "{got:?}");
    assert_eq!(got[2][2], "s");
    assert!(got[2][1]["updated"].get(&email_id).is_some(), "{got:?}");

    let bob = inbox_of(&setup, BOB, 1).remove(0);
    let carol = inbox_of(&setup, CAROL, 1).remove(0);
    for (who, stored, pair) in [(BOB, &bob, &keys[1]), (CAROL, &carol, &keys[2])] {
        assert!(
            !contains(stored, marker.as_bytes()),
            "{who}'s copy is stored in clear"
        );
        // The seal keeps the header outside (subject, addresses) and
        // encrypts the `Content-*` fields with the body.
        let outer = mail_parser::MessageParser::default()
            .parse(stored.as_slice())
            .unwrap();
        assert_eq!(outer.subject(), Some("Grüße aus Köln"), "{who}");
        assert!(outer.header("Bcc").is_none(), "{who}: Bcc was sent");
        let clear = openssl_decrypt(stored, &pair.cert, &pair.key);
        let text = String::from_utf8_lossy(&clear).into_owned();
        let inner = mail_parser::MessageParser::default().parse(&clear).unwrap();
        let body = inner.body_text(0).unwrap().replace("\r\n", "\n");
        assert!(
            body.contains(&format!("{marker}\n.\nthe line above")),
            "{who}: the lone dot did not survive SMTP:\n{text}"
        );
        let att = inner
            .attachment(0)
            .unwrap_or_else(|| panic!("{who}: no attachment:\n{text}"));
        assert_eq!(att.attachment_name(), Some("Bericht ü.bin"));
        assert_eq!(att.contents(), attachment.as_slice());
    }
    let log = setup.postfix.log();
    assert!(
        log.contains("TLS connection established from"),
        "STARTTLS was not used:\n{log}"
    );
    for rcpt in [BOB, CAROL] {
        assert!(
            final_status(&log, rcpt).is_some_and(|l| l.iter().any(|l| l.contains("status=sent"))),
            "{rcpt}:\n{log}"
        );
    }

    let in_sent = setup.server.export_named(ALICE, "Sent");
    assert_eq!(
        in_sent.len(),
        1,
        "onSuccessUpdateEmail moved the draft to Sent"
    );
    assert!(setup.server.export_named(ALICE, "Drafts").is_empty());
    let stored = &in_sent[0].1;
    assert!(
        !contains(stored, marker.as_bytes()),
        "the Sent copy is in clear"
    );
    let clear = openssl_decrypt(stored, &keys[0].cert, &keys[0].key);
    assert!(contains(&clear, marker.as_bytes()));
    assert!(
        contains(stored, b"Bcc: carol@example.org"),
        "the sender's copy keeps Bcc"
    );
    let kw = alice.call(
        "Email/get",
        json!({"ids": [email_id], "properties": ["keywords"]}),
    );
    assert_eq!(kw["list"][0]["keywords"], json!({"$seen": true}), "{kw}");
    let found = found_in_files(&setup.server.data_dir, marker.as_bytes());
    assert!(found.is_empty(), "plaintext on disk: {found:?}");
}

/// One create + submit request of `user` with `email` and `submission`
/// objects; returns the method responses.
fn submit(user: &JmapUser, email: Value, submission: Value) -> Vec<Value> {
    user.calls(json!([
        ["Email/set", {"create": {"m": email}}, "e"],
        ["EmailSubmission/set", {"create": {"s": submission}}, "s"],
    ]))
}

fn not_created(got: &[Value]) -> Value {
    got[1][1]["notCreated"]["s"].clone()
}

#[test]
fn submissions_that_would_forge_inject_or_leak_are_refused() {
    let (setup, _keys) = setup();
    let alice = setup.server.jmap(ALICE, PASSWORD);
    let bob = setup.server.jmap(BOB, PASSWORD);
    let drafts = role(&alice, "drafts");
    let me = identity(&alice);
    let draft = |from: &str, to: &str| {
        json!({
            "mailboxIds": {drafts.clone(): true},
            "from": [{"email": from}],
            "to": [{"email": to}],
            "subject": "hostile",
            "textBody": [{"partId": "t"}],
            "bodyValues": {"t": {"value": "x"}},
        })
    };
    let by = |email: &str| json!({"identityId": me["id"], "emailId": email});

    let got = submit(&alice, draft(BOB, CAROL), by("#m"));
    assert_eq!(not_created(&got)["type"], "forbiddenFrom", "{got:?}");

    let mut forged = by("#m");
    forged["envelope"] = json!({"mailFrom": {"email": BOB}, "rcptTo": [{"email": CAROL}]});
    let got = submit(&alice, draft(ALICE, CAROL), forged);
    assert_eq!(not_created(&got)["type"], "forbiddenMailFrom", "{got:?}");

    let mut injected = by("#m");
    injected["envelope"] = json!({"mailFrom": {"email": ALICE}, "rcptTo": [{"email": "carol@example.org>\r\nRCPT TO:<x@example.org"}]});
    let got = submit(&alice, draft(ALICE, CAROL), injected);
    assert_eq!(not_created(&got)["type"], "invalidRecipients", "{got:?}");

    let mut smuggled = draft(ALICE, CAROL);
    smuggled["subject"] = json!("hi\r\nBcc: mallory@example.net");
    let got = alice.call("Email/set", json!({"create": {"m": smuggled}}));
    assert_eq!(got["notCreated"]["m"]["type"], "invalidProperties", "{got}");

    // Another account's Email: bob's draft, named by alice.
    let bobs = bob.call("Email/set", json!({"create": {"b": {
        "mailboxIds": {role(&bob, "drafts"): true}, "from": [{"email": BOB}], "to": [{"email": CAROL}],
        "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "bob's secret"}}}}}));
    let bobs_id = bobs["created"]["b"]["id"].as_str().unwrap().to_string();
    let got = alice.call(
        "EmailSubmission/set",
        json!({"create": {"s": by(&bobs_id)}}),
    );
    assert_eq!(got["notCreated"]["s"]["type"], "invalidProperties", "{got}");

    // A stored draft of an encrypted account, sent in a later request:
    // the server cannot read it.
    let stored = alice.call("Email/set", json!({"create": {"m": draft(ALICE, CAROL)}}));
    let stored_id = stored["created"]["m"]["id"].as_str().unwrap().to_string();
    let got = alice.call(
        "EmailSubmission/set",
        json!({"create": {"s": by(&stored_id)}}),
    );
    assert_eq!(got["notCreated"]["s"]["type"], "forbidden", "{got}");
    assert!(
        got["notCreated"]["s"]["description"]
            .as_str()
            .unwrap()
            .contains("same request"),
        "{got}"
    );

    // The relay refuses one recipient: the others are sent; all: nothing is.
    let mut two = draft(ALICE, CAROL);
    two["cc"] = json!([{"email": BLOCKED}]);
    let got = submit(&alice, two, by("#m"));
    let status = &got[1][1]["created"]["s"]["deliveryStatus"];
    assert_eq!(status[CAROL]["delivered"], "queued", "{got:?}");
    assert_eq!(status[BLOCKED]["delivered"], "no", "{got:?}");
    assert!(
        status[BLOCKED]["smtpReply"]
            .as_str()
            .unwrap()
            .starts_with("554"),
        "{got:?}"
    );
    let got = submit(&alice, draft(ALICE, BLOCKED), by("#m"));
    assert_eq!(not_created(&got)["type"], "invalidRecipients", "{got:?}");
    assert_eq!(
        not_created(&got)["invalidRecipients"],
        json!([BLOCKED]),
        "{got:?}"
    );

    assert_eq!(
        inbox_of(&setup, CAROL, 1).len(),
        1,
        "only the accepted submission arrived"
    );
    assert!(
        setup.server.inbox(BOB).is_empty(),
        "nothing forged reached bob"
    );
}

/// RFC 8621 §7 with an independent client: Python's jmapc, over HTTPS
/// (the only scheme it speaks), the way its own example sends mail.
#[test]
fn jmapc_sends_and_moves_the_draft_to_sent() {
    support::tools::require("python3");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = support::imap::server_cert(dir.path(), "localhost");
    let tls_port = free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let (setup, keys) = setup_in(
        dir,
        &[
            ("SEALMAIL_TLS_CERT", cert.to_str().unwrap()),
            ("SEALMAIL_TLS_KEY", key.to_str().unwrap()),
            ("SEALMAIL_JMAP_TLS_LISTEN", &listen),
        ],
        Vec::new(),
    );
    let marker = "JMAPC-SUBMISSION-MARKER-51e0";
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/jmapc_send.py");
    let out = run(
        Command::new("python3")
            .arg(script)
            .args([
                &format!("localhost:{tls_port}"),
                ALICE,
                PASSWORD,
                BOB,
                marker,
            ])
            .env("REQUESTS_CA_BUNDLE", &cert),
        b"",
    );
    let seen: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(seen["identity"], ALICE, "{seen}");
    assert_eq!(seen["undo_status"], "final", "{seen}");
    assert_eq!(seen["delivered"], json!({BOB: "queued"}), "{seen}");
    let bob = inbox_of(&setup, BOB, 1).remove(0);
    let clear = openssl_decrypt(&bob, &keys[1].cert, &keys[1].key);
    assert!(
        contains(&clear, marker.as_bytes()),
        "{}",
        String::from_utf8_lossy(&clear)
    );
    // why either: the at-rest seal keeps some header fields outside.
    let whole = [bob.as_slice(), &clear].concat();
    assert!(
        contains(&whole, b"X-Sent-With: jmapc"),
        "{}",
        String::from_utf8_lossy(&whole)
    );
    assert_eq!(
        setup.server.export_named(ALICE, "Sent").len(),
        1,
        "moved to Sent"
    );
    assert!(setup.server.export_named(ALICE, "Drafts").is_empty());
}

/// A stored draft of an encrypted account, sent in a later request, is
/// sent decrypted when the account has server-side reading on (the keys
/// unlocked by this request's password); the copy on disk stays S/MIME.
#[test]
fn a_saved_encrypted_draft_is_sent_later_with_server_side_reading() {
    let (setup, keys) = setup();
    let out = setup.server.cli(
        &[
            "reading",
            "enable",
            ALICE,
            "--key",
            keys[0].key.to_str().unwrap(),
            "--password-stdin",
        ],
        format!("{PASSWORD}\n").as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alice = setup.server.jmap(ALICE, PASSWORD);
    let marker = "SAVED-DRAFT-MARKER-c07a";
    let saved = alice.call(
        "Email/set",
        json!({"create": {"d": {
        "mailboxIds": {role(&alice, "drafts"): true},
        "from": [{"email": ALICE}], "to": [{"email": BOB}], "subject": "saved",
        "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": marker}}}}}),
    );
    let id = saved["created"]["d"]["id"].as_str().unwrap().to_string();
    let drafts = setup.server.export_named(ALICE, "Drafts");
    assert!(
        !contains(&drafts[0].1, marker.as_bytes()),
        "the draft is stored in clear"
    );
    let me = identity(&alice);
    let got = alice.call(
        "EmailSubmission/set",
        json!({"create": {"s": {"identityId": me["id"], "emailId": id}}}),
    );
    assert_eq!(got["created"]["s"]["undoStatus"], "final", "{got}");
    let bob = inbox_of(&setup, BOB, 1).remove(0);
    let clear = openssl_decrypt(&bob, &keys[1].cert, &keys[1].key);
    assert!(
        contains(&clear, marker.as_bytes()),
        "{}",
        String::from_utf8_lossy(&clear)
    );
    assert!(found_in_files(&setup.server.data_dir, marker.as_bytes()).is_empty());
}

/// A relay that floods: a reply of endless continuation lines, or an
/// EHLO reply line that never ends. The submission fails with
/// `serverFail` naming what was wrong; the server keeps serving.
#[test]
fn a_flooding_relay_fails_the_submission_and_nothing_else() {
    use std::io::Write as _;
    let floods: [(&[u8], Vec<u8>); 2] = [
        (b"", b"220-more\r\n".repeat(1000)),
        (b"220 hi\r\n", vec![b'x'; 64 * 1024]),
    ];
    for (greeting, chunk) in floods {
        let relay = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = relay.local_addr().unwrap().port();
        let peer = std::thread::spawn(move || {
            let (mut conn, _) = relay.accept().unwrap();
            let _ = conn.write_all(greeting);
            for _ in 0..200 {
                if conn.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let relay_at = format!("127.0.0.1:{port}");
        let server = Server::start_with_env(
            &dir.path().join("data"),
            &[("SEALMAIL_SUBMISSION_RELAY", relay_at.as_str())],
        );
        server.account_with_password(ALICE, PASSWORD);
        let alice = server.jmap(ALICE, PASSWORD);
        let me = identity(&alice);
        let got = alice.calls(json!([
            ["Email/set", {"create": {"m": {
                "mailboxIds": {role(&alice, "drafts"): true},
                "from": [{"email": ALICE}], "to": [{"email": BOB}],
                "textBody": [{"partId": "t"}], "bodyValues": {"t": {"value": "x"}}}}}, "e"],
            ["EmailSubmission/set", {"create": {"s": {"identityId": me["id"], "emailId": "#m"}}}, "s"],
        ]));
        let refused = &got[1][1]["notCreated"]["s"];
        assert_eq!(refused["type"], "serverFail", "{got:?}");
        let why = refused["description"].as_str().unwrap();
        assert!(why.contains("broke the SMTP protocol"), "{why}");
        let boxes = alice.call("Mailbox/get", json!({}));
        assert!(
            boxes["list"].as_array().is_some_and(|l| !l.is_empty()),
            "{boxes}"
        );
        drop(server);
        let _ = peer.join();
    }
}

#[test]
fn without_a_relay_there_is_no_submission_capability() {
    let server = Server::start();
    server.account_with_password(ALICE, PASSWORD);
    let alice = server.jmap(ALICE, PASSWORD);
    assert!(
        alice.session["capabilities"]
            .get("urn:ietf:params:jmap:submission")
            .is_none(),
        "{}",
        alice.session
    );
    let got = alice.calls(json!([["EmailSubmission/set", {"create": {}}, "s"]]));
    assert_eq!(got[0][0], "error");
    assert_eq!(got[0][1]["type"], "unknownMethod", "{got:?}");
}
