//! The ingest pipeline on a real RocksDB store: what ends up on disk for
//! opted-in accounts, others, and lists (the Sympa rules), checked with
//! the `openssl` command line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use sealmail::ingest::{DeliverError, Delivered};
use sealmail::manage;
use sealmail::store::{AuditKind, BlobHash};
use support::mailstore::TestStore;
use support::messages;
use support::pki::{pair, KeyPair};
use support::tools::{crlf, lf, openssl_decrypt, run, run_unchecked, with_content_type};

fn recipients_named(smime: &[u8]) -> usize {
    let printed = run(
        Command::new("openssl").args(["cms", "-cmsout", "-print"]),
        smime,
    );
    String::from_utf8_lossy(&printed).matches("d.ktri:").count()
}

fn cannot_open(smime: &[u8], k: &KeyPair) -> bool {
    let out = run_unchecked(
        Command::new("openssl")
            .args(["cms", "-decrypt", "-recip"])
            .arg(&k.cert)
            .arg("-inkey")
            .arg(&k.key),
        smime,
    );
    !out.status.success()
}

#[test]
fn an_opted_in_account_gets_smime_for_each_of_its_keys() {
    let t = TestStore::new();
    let old = pair("alice@example.org", 2048);
    let new = pair("alice@example.org", 4096);
    let id = t.account("alice@example.org", &[&old, &new], true);
    let m = messages::multipart_binary();
    let results = t.deliver(&["alice@example.org"], &m.raw());
    assert!(
        matches!(results[0], Ok(Delivered::Account { encrypted: true })),
        "{results:?}"
    );
    let stored = t.inbox(id);
    assert_eq!(stored.len(), 1);
    let text = String::from_utf8_lossy(&stored[0]);
    assert!(text
        .starts_with("Return-Path: <sender@example.net>\r\nDelivered-To: alice@example.org\r\n"));
    assert!(text.contains("Subject: Report with attachment"));
    assert!(!text.contains("See attachment."), "body in clear");
    for k in [&old, &new] {
        assert_eq!(openssl_decrypt(&stored[0], &k.cert, &k.key), m.inner());
    }
    let audit = t.store.audit_events(id, 10).unwrap();
    assert!(audit.iter().any(|e| e.kind == AuditKind::DeliveryEncrypted));
    // A fresh S/MIME copy equals no other message: it is not hashed.
    let (key, raw) = &t.inbox_blobs(id)[0];
    assert_ne!(*key, BlobHash::of(raw));
}

#[test]
fn an_account_without_encryption_gets_the_bytes_as_sent() {
    let t = TestStore::new();
    let id = t.account("bob@example.org", &[], false);
    let mut data = messages::utf8_8bit().raw();
    data.extend_from_slice(b"\x00\x01\xff binary tail\r\n");
    t.deliver(&["bob@example.org"], &data)[0].as_ref().unwrap();
    let stored = t.inbox(id);
    let prefix = b"Return-Path: <sender@example.net>\r\nDelivered-To: bob@example.org\r\n";
    assert_eq!(&stored[0][..prefix.len()], prefix);
    assert_eq!(&stored[0][prefix.len()..], &data[..]);
}

#[test]
fn already_encrypted_mail_is_not_encrypted_twice() {
    let t = TestStore::new();
    let alice = pair("alice@example.org", 2048);
    let id = t.account("alice@example.org", &[&alice], true);
    let smime = run(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256", "-subject", "pre-encrypted"])
            .arg(&alice.cert),
        &messages::plain_text("\r\n").inner(),
    );
    t.deliver(&["alice@example.org"], &smime)[0]
        .as_ref()
        .unwrap();
    let stored = t.inbox(id);
    assert!(
        stored[0].ends_with(&crlf(&smime)),
        "stored as sent (with CRLF line ends), after the trace fields"
    );
    assert_eq!(
        openssl_decrypt(&stored[0], &alice.cert, &alice.key),
        messages::plain_text("\r\n").inner()
    );
    // Stored as it came, so content-addressed: a second delivery shares it.
    t.deliver(&["alice@example.org"], &smime)[0]
        .as_ref()
        .unwrap();
    let blobs = t.inbox_blobs(id);
    assert_eq!(blobs[0].0, BlobHash::of(&blobs[0].1));
    assert_eq!(blobs[0].0, blobs[1].0);
}

#[test]
fn no_usable_certificate_means_a_temporary_failure_and_nothing_stored() {
    let t = TestStore::new();
    let alice = pair("alice@example.org", 2048);
    let id = t.account("alice@example.org", &[&alice], true);
    // Time passes: the only certificate is now expired. Stored directly,
    // as the rules would refuse to add an expired one.
    let dir = support::pki::tempdir();
    let expired = support::cert_corpus::dated(
        dir.path(),
        "alice@example.org",
        "20200101000000Z",
        "20210301000000Z",
    );
    let parsed = sealmail::certs::parse(&std::fs::read(expired).unwrap())
        .unwrap()
        .remove(0);
    t.store
        .add_certificate(id, manage::new_certificate(&parsed, "expired"))
        .unwrap();
    let fp = sealmail::certs::parse(&alice.cert_pem()).unwrap()[0].fingerprint();
    t.store.remove_certificate(id, fp).unwrap();
    let results = t.deliver(&["alice@example.org"], &messages::plain_text("\r\n").raw());
    let err = results[0].as_ref().unwrap_err();
    assert_eq!(err.code(), (451, "4.7.0".to_string()), "{err}");
    assert!(err.to_string().contains("no usable certificate"), "{err}");
    assert!(t.inbox(id).is_empty(), "nothing stored");
    let audit = t.store.audit_events(id, 10).unwrap();
    assert!(audit.iter().any(
        |e| e.kind == AuditKind::DeliveryRefused && e.details.contains("no usable certificate")
    ));
}

#[test]
fn without_the_encrypt_hook_an_opted_in_copy_fails_closed() {
    let t = TestStore::with_chain(&[]);
    let alice = pair("alice@example.org", 2048);
    let id = t.account("alice@example.org", &[&alice], true);
    let results = t.deliver(&["alice@example.org"], &messages::plain_text("\r\n").raw());
    assert!(
        matches!(results[0], Err(DeliverError::NotEncrypted { .. })),
        "{results:?}"
    );
    assert!(t.inbox(id).is_empty());
}

#[test]
fn one_recipient_failing_leaves_the_others_alone() {
    let t = TestStore::with_chain(&[]);
    let alice = pair("alice@example.org", 2048);
    let a = t.account("alice@example.org", &[&alice], true);
    let b = t.account("bob@example.org", &[], false);
    let results = t.deliver(
        &["alice@example.org", "nobody@example.org", "bob@example.org"],
        &messages::plain_text("\r\n").raw(),
    );
    assert!(results[0].is_err());
    assert_eq!(results[1].as_ref().unwrap_err().code().0, 550);
    assert!(results[2].is_ok());
    assert!(t.inbox(a).is_empty());
    assert_eq!(t.inbox(b).len(), 1);
}

fn list_with_three_members(t: &TestStore) -> (KeyPair, KeyPair, KeyPair) {
    let alice = pair("alice@example.org", 2048);
    let carol = pair("carol@example.org", 2048);
    let list_key = pair("team@example.org", 2048);
    t.account("alice@example.org", &[&alice], true);
    t.account("bob@example.org", &[], false);
    t.account("carol@example.org", &[&carol], false);
    let members: Vec<String> = ["alice@example.org", "bob@example.org", "carol@example.org"]
        .map(String::from)
        .to_vec();
    t.store
        .create_list("team@example.org", "owner-team@example.org", &members)
        .unwrap();
    manage::add_list_key(
        &t.store,
        "team@example.org",
        &list_key.cert_pem(),
        &String::from_utf8(list_key.key_pem()).unwrap(),
    )
    .unwrap();
    (alice, carol, list_key)
}

fn inbox_of(t: &TestStore, email: &str) -> Vec<Vec<u8>> {
    let account = t.store.account_by_address(email).unwrap();
    t.inbox(account.id)
}

#[test]
fn plaintext_to_a_list_is_encrypted_for_opted_in_members_only() {
    let t = TestStore::new();
    let (alice, carol, _) = list_with_three_members(&t);
    let m = messages::plain_text("\r\n");
    let results = t.deliver(&["team@example.org"], &m.raw());
    assert!(
        matches!(
            results[0],
            Ok(Delivered::List {
                copies: 3,
                notices: 0,
                skipped: 0
            })
        ),
        "{results:?}"
    );
    let a = &inbox_of(&t, "alice@example.org")[0];
    assert_eq!(openssl_decrypt(a, &alice.cert, &alice.key), m.inner());
    assert_eq!(
        recipients_named(a),
        1,
        "alice's copy names only alice's certificate"
    );
    assert!(cannot_open(a, &carol));
    let b = &inbox_of(&t, "bob@example.org")[0];
    assert!(b.ends_with(&m.raw()));
    let c = &inbox_of(&t, "carol@example.org")[0];
    assert!(
        c.ends_with(&m.raw()),
        "carol has a certificate but did not opt in"
    );
}

#[test]
fn mail_encrypted_to_the_list_is_reencrypted_per_member_and_never_stored_in_clear() {
    let t = TestStore::new();
    let (alice, carol, list_key) = list_with_three_members(&t);
    let m = messages::utf8_8bit();
    let inner = m.inner();
    let mut cmd = Command::new("openssl");
    cmd.args([
        "cms",
        "-encrypt",
        "-aes256",
        "-subject",
        "Secret plans",
        "-stream",
    ])
    .arg(&list_key.cert);
    let smime = run(&mut cmd, &inner);
    let smime = [b"Message-ID: <secret-1@example.net>\r\n".to_vec(), smime].concat();
    let results = t.deliver(&["team@example.org"], &smime);
    assert!(
        matches!(
            results[0],
            Ok(Delivered::List {
                copies: 3,
                notices: 1,
                skipped: 0
            })
        ),
        "{results:?}"
    );

    let a = &inbox_of(&t, "alice@example.org")[0];
    assert_eq!(openssl_decrypt(a, &alice.cert, &alice.key), inner);
    assert!(
        cannot_open(a, &list_key),
        "re-encrypted for the member, not the list"
    );
    let c = &inbox_of(&t, "carol@example.org")[0];
    assert_eq!(
        openssl_decrypt(c, &carol.cert, &carol.key),
        inner,
        "carol has a certificate: encrypted although she did not opt in"
    );

    let notice = String::from_utf8(inbox_of(&t, "bob@example.org")[0].clone()).unwrap();
    assert!(notice.contains("x509-user-cert-missing"));
    assert!(notice.contains("From: owner-team@example.org"));
    assert!(notice.contains("Secret plans"), "quotes the subject");
    assert!(
        notice.contains("<secret-1@example.net>"),
        "quotes the message id"
    );
    for word in ["Grüße", "München", "Ελληνικά"] {
        assert!(!notice.contains(word), "notice leaks the content: {word}");
    }
}

/// RFC 8551 §3.2.2: S/MIME labelled `application/octet-stream` with a
/// `.p7m` name is opened by the list's key like `application/pkcs7-mime`.
#[test]
fn an_octet_stream_p7m_to_the_list_is_reencrypted_per_member() {
    let t = TestStore::new();
    let (alice, _, list_key) = list_with_three_members(&t);
    let inner = messages::plain_text("\r\n").inner();
    let smime = run(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256", "-crlfeol"])
            .arg(&list_key.cert),
        &inner,
    );
    let smime = with_content_type(&smime, "application/octet-stream");
    assert!(String::from_utf8_lossy(&smime).contains("application/octet-stream; smime-type"));
    let results = t.deliver(&["team@example.org"], &smime);
    assert!(
        matches!(results[0], Ok(Delivered::List { notices: 1, .. })),
        "{results:?}"
    );
    let a = &inbox_of(&t, "alice@example.org")[0];
    assert_eq!(lf(&openssl_decrypt(a, &alice.cert, &alice.key)), lf(&inner));
    assert!(cannot_open(a, &list_key), "re-encrypted for the member");
}

#[test]
fn mail_encrypted_for_someone_else_reaches_every_member_intact() {
    let t = TestStore::new();
    list_with_three_members(&t);
    let outsider = pair("outsider@example.net", 2048);
    let smime = run(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256"])
            .arg(&outsider.cert),
        &messages::plain_text("\r\n").inner(),
    );
    let results = t.deliver(&["team@example.org"], &smime);
    assert!(
        matches!(
            results[0],
            Ok(Delivered::List {
                copies: 3,
                notices: 0,
                ..
            })
        ),
        "{results:?}"
    );
    for member in ["alice@example.org", "bob@example.org", "carol@example.org"] {
        assert!(inbox_of(&t, member)[0].ends_with(&crlf(&smime)), "{member}");
    }
}

#[test]
fn the_cert_missing_notice_text_is_configurable() {
    let t = TestStore::with_notice_template("Dear {member}: {list} got \"{subject}\" ({message_id}) encrypted. [{marker}]\nUpload a certificate.\n");
    let (_, _, list_key) = list_with_three_members(&t);
    let smime = run(
        Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256", "-subject", "Quarterly"])
            .arg(&list_key.cert),
        b"Content-Type: text/plain\r\n\r\nsecret\r\n",
    );
    let smime = [b"Message-ID: <q-1@example.net>\r\n".to_vec(), smime].concat();
    t.deliver(&["team@example.org"], &smime)[0]
        .as_ref()
        .unwrap();
    let notice = String::from_utf8(inbox_of(&t, "bob@example.org")[0].clone()).unwrap();
    assert!(
        notice.contains("Dear bob@example.org: team@example.org got \"Quarterly\" (<q-1@example.net>) encrypted. [x509-user-cert-missing]\r\nUpload a certificate.\r\n"),
        "{notice}"
    );
    assert!(!notice.contains("secret"));
}
