//! Generated MIME messages survive seal → decrypt, and every copy gets a
//! fresh content key and IV.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientInfo};
use der::{Decode, DecodePem};
use proptest::prelude::*;
use rsa::pkcs8::DecodePrivateKey;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use sealmail::smime::{smime_payload, Decryptor, Envelope, Recipient, Sealed};
use sealmail_plugin_api::ContentCipher;
use support::messages::TestMessage;
use support::pki::pair;
use x509_cert::Certificate;

fn alice_envelope(cipher: ContentCipher) -> (Envelope, Decryptor) {
    let k = pair("alice@example.org", 2048);
    let cert = Certificate::from_pem(k.cert_pem()).unwrap();
    let env = Envelope::new(vec![Recipient::from_certificate(&cert).unwrap()], cipher).unwrap();
    let dec = Decryptor::from_pem(&String::from_utf8(k.key_pem()).unwrap(), Some(&cert)).unwrap();
    (env, dec)
}

fn sealed(env: &Envelope, raw: &[u8]) -> Vec<u8> {
    match env.seal(raw).unwrap() {
        Sealed::Encrypted(b) => b,
        other => panic!("not encrypted: {other:?}"),
    }
}

/// A MIME message from generated parts.
fn arb_message() -> impl Strategy<Value = TestMessage> {
    let field = ("[A-Z][a-z]{1,8}(-[A-Z][a-z]{1,6})?", "[ -~]{0,60}");
    let content = prop_oneof![
        Just(vec![]),
        Just(vec![
            "Content-Type: text/plain; charset=utf-8".to_string(),
            "Content-Transfer-Encoding: 8bit".to_string()
        ]),
        Just(vec![
            "Content-Type: multipart/mixed;".to_string(),
            " boundary=\"b\"".to_string()
        ]),
        Just(vec!["Content-Transfer-Encoding: binary".to_string()]),
        Just(vec!["content-type: application/octet-stream".to_string()]),
    ];
    (
        proptest::collection::vec(field, 0..6),
        content,
        proptest::collection::vec(any::<u8>(), 0..3000),
        any::<bool>(),
    )
        .prop_filter_map(
            "no header may look like a Content-* field",
            |(fields, content, body, crlf)| {
                if fields
                    .iter()
                    .any(|(n, _)| n.to_ascii_lowercase().starts_with("content-"))
                {
                    return None;
                }
                let eol = if crlf { "\r\n" } else { "\n" };
                Some(TestMessage {
                    name: "generated",
                    outer: fields
                        .iter()
                        .map(|(n, v)| format!("{n}: {v}{eol}"))
                        .collect(),
                    content: content.iter().map(|l| format!("{l}{eol}")).collect(),
                    body,
                    eol,
                    has_separator: true,
                })
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn seal_then_decrypt_gives_the_inner_entity(m in arb_message(), aes128 in any::<bool>()) {
        let cipher = if aes128 { ContentCipher::Aes128Cbc } else { ContentCipher::Aes256Cbc };
        let (env, dec) = alice_envelope(cipher);
        let raw = m.raw();
        let out = sealed(&env, &raw);
        prop_assert!(out.starts_with(m.outer.as_bytes()));
        prop_assert_eq!(dec.decrypt_message(&out).unwrap(), m.inner());
    }
}

/// The content key and IV of one sealed message, unwrapped with the raw
/// `rsa` crate rather than with sealmail's decryptor.
fn content_key_and_iv(smime: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let k = pair("alice@example.org", 2048);
    let key = RsaPrivateKey::from_pkcs8_pem(&String::from_utf8(k.key_pem()).unwrap()).unwrap();
    let info = ContentInfo::from_der(&smime_payload(smime).unwrap()).unwrap();
    let env: EnvelopedData = info.content.decode_as().unwrap();
    let RecipientInfo::Ktri(ktri) = env.recip_infos.0.iter().next().unwrap() else {
        panic!("expected key transport");
    };
    let cek = key
        .decrypt(Pkcs1v15Encrypt, ktri.enc_key.as_bytes())
        .unwrap();
    let iv = env
        .encrypted_content
        .content_enc_alg
        .parameters
        .unwrap()
        .value()
        .to_vec();
    (cek, iv)
}

#[test]
fn every_copy_has_its_own_content_key_and_iv() {
    let (env, _) = alice_envelope(ContentCipher::Aes256Cbc);
    let raw = support::messages::plain_text("\r\n").raw();
    let copies: Vec<(Vec<u8>, Vec<u8>)> = (0..8)
        .map(|_| content_key_and_iv(&sealed(&env, &raw)))
        .collect();
    for (i, a) in copies.iter().enumerate() {
        assert_eq!(a.0.len(), 32, "AES-256 key");
        for b in &copies[i + 1..] {
            assert_ne!(a.0, b.0, "two copies share a content key");
            assert_ne!(a.1, b.1, "two copies share an IV");
        }
    }
    let (env128, _) = alice_envelope(ContentCipher::Aes128Cbc);
    assert_eq!(
        content_key_and_iv(&sealed(&env128, &raw)).0.len(),
        16,
        "AES-128 key"
    );
}
