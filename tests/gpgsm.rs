//! GnuPG's `gpgsm` decrypts what sealmail stores, with each key of a
//! rotation set (each key alone in its own GnuPG home, imported from
//! PKCS#12 as a user would), and gives back the inner entity byte for byte.
//!
//! gpgsm reads CMS, not MIME: like a mail client using it (KMail, mutt's
//! gpgme backend) the test hands it the base64 body of the S/MIME message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use sealmail::smime::{Envelope, Recipient, Sealed};
use sealmail_plugin_api::ContentCipher;
use support::gpgsm::GpgHome;
use support::messages::{self, TestMessage};
use support::pki::{pair, KeyPair};
use support::tools::{body_of, run_unchecked};

fn seal_for(keys: &[&KeyPair], cipher: ContentCipher, m: &TestMessage) -> Vec<u8> {
    let recipients = keys
        .iter()
        .map(|k| Recipient::from_der(&k.cert_der()).unwrap())
        .collect();
    match Envelope::new(recipients, cipher)
        .unwrap()
        .seal(&m.raw())
        .unwrap()
    {
        Sealed::Encrypted(out) => out,
        other => panic!("not encrypted: {other:?}"),
    }
}

fn check_with_each_key(keys: &[&KeyPair], cipher: ContentCipher) {
    let homes: Vec<GpgHome> = keys.iter().map(|k| GpgHome::with_key(k)).collect();
    for m in [
        messages::plain_text("\r\n"),
        messages::utf8_8bit(),
        messages::multipart_binary(),
        messages::headers_only(),
    ] {
        let sealed = seal_for(keys, cipher, &m);
        for (home, key) in homes.iter().zip(keys) {
            let inner = home.decrypt(&sealed);
            assert!(
                inner == m.inner(),
                "{}: gpgsm with {} gave another inner entity",
                m.name,
                key.email
            );
        }
    }
}

#[test]
fn gpgsm_opens_aes256_with_each_of_two_keys() {
    let a = pair("alice@example.org", 2048);
    let b = pair("alice.new@example.org", 4096);
    check_with_each_key(&[&a, &b], ContentCipher::Aes256Cbc);
}

#[test]
fn gpgsm_opens_aes128_with_each_of_three_keys() {
    let a = pair("alice@example.org", 2048);
    let b = pair("alice.new@example.org", 4096);
    let c = pair("alice.third@example.org", 2048);
    check_with_each_key(&[&a, &b, &c], ContentCipher::Aes128Cbc);
}

#[test]
fn gpgsm_refuses_a_message_not_for_its_key() {
    let a = pair("alice@example.org", 2048);
    let mallory = pair("mallory@example.net", 2048);
    let home = GpgHome::with_key(&mallory);
    let sealed = seal_for(
        &[&a],
        ContentCipher::Aes256Cbc,
        &messages::plain_text("\r\n"),
    );
    let body = home.dir.path().join("other.b64");
    std::fs::write(&body, body_of(&sealed)).unwrap();
    let out = run_unchecked(
        home.gpgsm()
            .args(["--assume-base64", "--decrypt"])
            .arg(&body),
        b"x\n",
    );
    let status = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.contains("DECRYPTION_FAILED") && !status.contains("DECRYPTION_OKAY"),
        "{status}"
    );
}
