//! An encrypted account's mail over IMAP: served exactly as stored (the
//! S/MIME message), decryptable with `openssl cms -decrypt`, structured as
//! `application/pkcs7-mime`, and honestly unsearchable by body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::imap::ImapServer;
use support::messages;
use support::tools::openssl_decrypt;

#[test]
fn an_encrypted_message_is_fetched_as_stored_and_decrypts_with_openssl() {
    let s = ImapServer::start();
    let (account, keys) = s.encrypted_account("carol@example.org", "carol-pw");
    let m = messages::multipart_alternative();
    s.deliver("carol@example.org", &m.raw());
    let stored = s.stored(account, "INBOX").remove(0);
    let dir = tempfile::tempdir().unwrap();
    let fetched_path = dir.path().join("fetched.eml");
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
typ, data = m.fetch('1', '(BODY.PEEK[] BODYSTRUCTURE ENVELOPE)')
open(args[2], 'wb').write(data[0][1])
out['meta'] = s(data[0][0]) + s(data[1])
typ, data = m.search(None, 'BODY', 'Plain')
out['body_search'] = s(data[0])
typ, data = m.search(None, 'TEXT', 'Plain')
out['text_search'] = s(data[0])
typ, data = m.search(None, 'FROM', 'sender')
out['from_search'] = s(data[0])
m.logout()
"#,
        &[
            "carol@example.org",
            "carol-pw",
            fetched_path.to_str().unwrap(),
        ],
    );
    let fetched = std::fs::read(&fetched_path).unwrap();
    assert_eq!(fetched, stored, "served exactly as stored");
    assert_eq!(openssl_decrypt(&fetched, &keys.cert, &keys.key), m.inner());
    let meta = out["meta"].as_str().unwrap().to_ascii_uppercase();
    assert!(meta.contains("\"APPLICATION\" \"PKCS7-MIME\""), "{meta}");
    assert_eq!(out["body_search"], "");
    assert_eq!(out["text_search"], "");
    assert_eq!(out["from_search"], "1");
}
