//! Sealed messages open with the real `openssl cms -decrypt`, with every
//! key of a rotation set, byte for byte; the clear header is untouched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use sealmail::smime::{Envelope, Recipient, Sealed};
use sealmail_plugin_api::ContentCipher;
use support::messages::{self, TestMessage};
use support::pki::{pair, KeyPair};
use support::tools::{openssl_decrypt, run, with_content_type};

/// Rotation sets of one, two and three certificates, RSA 2048 and 4096.
fn rotation_sets() -> Vec<Vec<KeyPair>> {
    let a = pair("alice@example.org", 2048);
    let b = pair("alice.new@example.org", 4096);
    let c = pair("alice.third@example.org", 2048);
    vec![vec![a.clone()], vec![a.clone(), b.clone()], vec![a, b, c]]
}

fn envelope(keys: &[KeyPair], cipher: ContentCipher) -> Envelope {
    let recipients = keys
        .iter()
        .map(|k| Recipient::from_der(&k.cert_der()).unwrap())
        .collect();
    Envelope::new(recipients, cipher).unwrap()
}

fn seal(env: &Envelope, raw: &[u8]) -> Vec<u8> {
    match env.seal(raw).unwrap() {
        Sealed::Encrypted(out) => out,
        other => panic!("expected encryption, got {other:?}"),
    }
}

/// Seals `m` for every rotation set and cipher; every key opens it.
fn check_message(m: &TestMessage) {
    for keys in rotation_sets() {
        for cipher in [ContentCipher::Aes256Cbc, ContentCipher::Aes128Cbc] {
            let sealed = seal(&envelope(&keys, cipher), &m.raw());
            assert!(
                sealed.starts_with(m.outer.as_bytes()),
                "{}: clear header fields changed",
                m.name
            );
            assert_outer_content_fields(&sealed, m.eol);
            assert_cipher(&sealed, cipher);
            for key in &keys {
                let inner = openssl_decrypt(&sealed, &key.cert, &key.key);
                assert!(
                    inner == m.inner(),
                    "{}: {} certs, {cipher}: openssl with {} gave a different inner entity:\n{}",
                    m.name,
                    keys.len(),
                    key.email,
                    String::from_utf8_lossy(&inner[..inner.len().min(400)])
                );
            }
        }
    }
}

fn assert_outer_content_fields(sealed: &[u8], eol: &str) {
    let text = String::from_utf8_lossy(sealed);
    let header = text.split(&format!("{eol}{eol}")).next().unwrap();
    assert!(header.contains("Content-Type: application/pkcs7-mime; smime-type=enveloped-data;"));
    assert!(header.contains("name=\"smime.p7m\""));
    assert!(header.contains("Content-Disposition: attachment; filename=\"smime.p7m\""));
    assert!(header.contains("Content-Transfer-Encoding: base64"));
    assert_eq!(header.matches("MIME-Version:").count(), 1, "{header}");
    let body = text.split(&format!("{eol}{eol}")).nth(1).unwrap();
    assert!(body.split(eol).all(|l| l.len() <= 76));
}

/// `openssl cms -cmsout -print` names the content-encryption algorithm.
fn assert_cipher(sealed: &[u8], cipher: ContentCipher) {
    let printed = run(
        Command::new("openssl").args(["cms", "-cmsout", "-print"]),
        sealed,
    );
    let printed = String::from_utf8_lossy(&printed);
    let want = match cipher {
        ContentCipher::Aes128Cbc => "aes-128-cbc",
        _ => "aes-256-cbc",
    };
    assert!(printed.contains(want), "expected {want} in:\n{printed}");
}

#[test]
fn plain_text_crlf() {
    check_message(&messages::plain_text("\r\n"));
}

#[test]
fn plain_text_lf() {
    check_message(&messages::plain_text("\n"));
}

#[test]
fn utf8_8bit_body_and_encoded_word_subject() {
    check_message(&messages::utf8_8bit());
}

#[test]
fn multipart_alternative_with_html() {
    check_message(&messages::multipart_alternative());
}

#[test]
fn multipart_mixed_with_binary_attachment() {
    check_message(&messages::multipart_binary());
}

#[test]
fn headers_only() {
    check_message(&messages::headers_only());
}

#[test]
fn no_mime_headers_get_explicit_text_plain() {
    check_message(&messages::no_mime_headers());
}

#[test]
fn folded_headers() {
    check_message(&messages::folded_headers());
}

#[test]
fn ten_mib_message() {
    let m = messages::ten_mib();
    let keys = &rotation_sets()[2];
    let sealed = seal(&envelope(keys, ContentCipher::Aes256Cbc), &m.raw());
    assert!(sealed.starts_with(m.outer.as_bytes()));
    for key in keys {
        assert!(
            openssl_decrypt(&sealed, &key.cert, &key.key) == m.inner(),
            "10 MiB differs for {}",
            key.email
        );
    }
}

#[test]
fn an_outsider_key_cannot_open_it() {
    let keys = &rotation_sets()[1];
    let sealed = seal(
        &envelope(keys, ContentCipher::Aes256Cbc),
        &messages::plain_text("\r\n").raw(),
    );
    let mallory = pair("mallory@example.net", 2048);
    let out = support::tools::run_unchecked(
        Command::new("openssl")
            .args(["cms", "-decrypt", "-recip"])
            .arg(&mallory.cert)
            .arg("-inkey")
            .arg(&mallory.key),
        &sealed,
    );
    assert!(
        !out.status.success(),
        "an outsider's key decrypted the message"
    );
}

#[test]
fn already_encrypted_messages_pass_unchanged() {
    let keys = &rotation_sets()[0];
    let env = envelope(keys, ContentCipher::Aes256Cbc);
    let m = messages::plain_text("\r\n");
    // Our own output, sealed again.
    let once = seal(&env, &m.raw());
    assert!(matches!(
        env.seal(&once).unwrap(),
        Sealed::AlreadyEncrypted(_)
    ));
    // openssl's S/MIME output, both content types.
    let other = pair("bob@example.org", 2048);
    for ctype in ["application/pkcs7-mime", "application/x-pkcs7-mime"] {
        let mut cmd = Command::new("openssl");
        cmd.args(["cms", "-encrypt", "-aes256", "-subject", "hi"])
            .arg(&other.cert);
        let smime = with_content_type(&run(&mut cmd, &m.inner()), ctype);
        assert!(
            matches!(env.seal(&smime).unwrap(), Sealed::AlreadyEncrypted(_)),
            "{ctype} was encrypted twice"
        );
    }
    // PGP/MIME and inline PGP.
    let pgp_mime = format!("From: a\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n--x\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--x\r\nContent-Type: application/octet-stream\r\n\r\n{}--x--\r\n", messages::PGP_MESSAGE);
    assert!(matches!(
        env.seal(pgp_mime.as_bytes()).unwrap(),
        Sealed::AlreadyEncrypted(_)
    ));
    let inline = format!("From: a\r\nSubject: s\r\n\r\n{}", messages::PGP_MESSAGE);
    assert!(matches!(
        env.seal(inline.as_bytes()).unwrap(),
        Sealed::AlreadyEncrypted(_)
    ));
}
