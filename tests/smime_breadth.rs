//! S/MIME breadth on the real server: every key transport (`--key-transport
//! pkcs1|oaep`) with every content encryption (`--algorithm
//! aes256|aes128|aes256-gcm|aes128-gcm`). Mail delivered over LMTP is
//! stored in the chosen form (checked with `openssl cms -cmsout -print`)
//! and `openssl cms -decrypt` opens it with each of the account's two keys
//! (a rotation). The same choices over JMAP (`keyTransport`, `algorithm`),
//! gpgsm on the combination GnuPG 2.2 opens, mail that OpenSSL sealed with
//! GCM stored as it came, and a list key that opens OAEP and GCM. Two
//! proptests compare the CMS forms with OpenSSL in process (the `openssl`
//! crate), both ways.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use serde_json::json;
use support::gpgsm::GpgHome;
use support::pki::{pair, KeyPair};
use support::server::Server;
use support::tools::{body_of, lf, openssl_decrypt, run};

const ALICE: &str = "alice@example.org";
const INNER: &str = "Content-Type: text/plain; charset=us-ascii\r\n\r\nbreadth body\r\n";

/// Alice's two key pairs: the old one and its successor.
fn alice_keys() -> (KeyPair, KeyPair) {
    (pair(ALICE, 2048), pair("alice.new@example.org", 3072))
}

/// A server where alice holds both certificates (the second under an
/// alias) and has encryption enabled with `enable_args`.
fn opted_in(keys: &(KeyPair, KeyPair), enable_args: &[&str]) -> Server {
    let server = Server::start();
    server.ok(&["account", "add", ALICE, "--alias", "alice.new@example.org"]);
    for k in [&keys.0, &keys.1] {
        server.ok(&["cert", "add", ALICE, k.cert.to_str().unwrap()]);
    }
    let mut enable = vec!["encryption", "enable", ALICE];
    enable.extend_from_slice(enable_args);
    server.ok(&enable);
    server
}

fn message() -> Vec<u8> {
    format!(
        "From: bob@example.net\r\nTo: {ALICE}\r\nSubject: breadth\r\nMIME-Version: 1.0\r\n{INNER}"
    )
    .into_bytes()
}

/// Delivers one message to alice and returns it as stored.
fn deliver_one(server: &Server, data: &[u8]) -> Vec<u8> {
    let reply = server.lmtp_send(ALICE, data);
    assert!(reply.starts_with("250"), "{reply}");
    let inbox = server.inbox(ALICE);
    assert_eq!(inbox.len(), 1);
    inbox.into_iter().next().unwrap()
}

/// `openssl cms -cmsout -print` of an S/MIME message.
fn cms_print(smime: &[u8]) -> String {
    String::from_utf8(run(
        Command::new("openssl").args(["cms", "-cmsout", "-print"]),
        smime,
    ))
    .unwrap()
}

/// Stores a message with `--algorithm algorithm --key-transport transport`
/// and checks its form and that each key opens it.
fn check(algorithm: &str, transport: &str) {
    let keys = alice_keys();
    let server = opted_in(
        &keys,
        &["--algorithm", algorithm, "--key-transport", transport],
    );
    let stored = deliver_one(&server, &message());
    let text = String::from_utf8_lossy(&stored);
    let gcm = algorithm.ends_with("-gcm");
    let smime_type = if gcm {
        "authEnveloped-data"
    } else {
        "enveloped-data"
    };
    assert!(
        text.contains(&format!("smime-type={smime_type};")),
        "{algorithm}: {text}"
    );
    let printed = cms_print(&stored);
    let content_type = if gcm {
        "id-smime-ct-authEnvelopedData"
    } else {
        "pkcs7-envelopedData"
    };
    assert!(
        printed.contains(&format!("contentType: {content_type}")),
        "{printed}"
    );
    let cipher = match algorithm {
        "aes256" => "aes-256-cbc",
        "aes128" => "aes-128-cbc",
        "aes256-gcm" => "aes-256-gcm",
        _ => "aes-128-gcm",
    };
    assert!(
        printed.contains(&format!("algorithm: {cipher} ")),
        "{printed}"
    );
    let key_alg = if transport == "oaep" {
        "rsaesOaep"
    } else {
        "rsaEncryption"
    };
    assert_eq!(
        printed.matches(&format!("algorithm: {key_alg} ")).count(),
        2,
        "one {key_alg} recipient per certificate: {printed}"
    );
    for k in [&keys.0, &keys.1] {
        let inner = openssl_decrypt(&stored, &k.cert, &k.key);
        assert_eq!(
            lf(&inner),
            lf(INNER.as_bytes()),
            "{algorithm}/{transport} with {}",
            k.email
        );
    }
}

#[test]
fn pkcs1_aes256_cbc_opens_with_openssl_and_each_key() {
    check("aes256", "pkcs1");
}

#[test]
fn pkcs1_aes128_cbc_opens_with_openssl_and_each_key() {
    check("aes128", "pkcs1");
}

#[test]
fn pkcs1_aes256_gcm_opens_with_openssl_and_each_key() {
    check("aes256-gcm", "pkcs1");
}

#[test]
fn pkcs1_aes128_gcm_opens_with_openssl_and_each_key() {
    check("aes128-gcm", "pkcs1");
}

#[test]
fn oaep_aes256_cbc_opens_with_openssl_and_each_key() {
    check("aes256", "oaep");
}

#[test]
fn oaep_aes128_cbc_opens_with_openssl_and_each_key() {
    check("aes128", "oaep");
}

#[test]
fn oaep_aes256_gcm_opens_with_openssl_and_each_key() {
    check("aes256-gcm", "oaep");
}

#[test]
fn oaep_aes128_gcm_opens_with_openssl_and_each_key() {
    check("aes128-gcm", "oaep");
}

/// gpgsm 2.2 (Debian 12) opens PKCS#1 v1.5 with CBC only (README, client
/// table): chosen explicitly, it opens with each key of the rotation.
#[test]
fn gpgsm_opens_explicit_pkcs1_cbc_with_each_key() {
    let keys = alice_keys();
    let server = opted_in(
        &keys,
        &["--algorithm", "aes128", "--key-transport", "pkcs1"],
    );
    let stored = deliver_one(&server, &message());
    for k in [&keys.0, &keys.1] {
        let inner = GpgHome::with_key(k).decrypt(&stored);
        assert_eq!(lf(&inner), lf(INNER.as_bytes()), "gpgsm with {}", k.email);
    }
}

#[test]
fn jmap_chooses_oaep_and_gcm_and_advertises_gcm() {
    let keys = alice_keys();
    let server = Server::start();
    server.account_with_password(ALICE, "breadth password");
    server.ok(&["cert", "add", ALICE, keys.0.cert.to_str().unwrap()]);
    let jmap = server.jmap(ALICE, "breadth password");
    let listed: Vec<&str> = jmap.session["accounts"][&jmap.account_id]["accountCapabilities"]
        ["urn:sealmail:params:jmap:encryption"]["algorithms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        listed.contains(&"AES-256-GCM") && listed.contains(&"AES-128-GCM"),
        "{listed:?}"
    );

    let got = jmap.call("EncryptionSettings/get", json!({"ids": null}));
    assert_eq!(got["list"][0]["keyTransport"], "RSAES-PKCS1-v1_5", "{got}");
    let set = jmap.call(
        "EncryptionSettings/set",
        json!({"update": {"singleton": {
            "isEnabled": true, "algorithm": "AES-256-GCM", "keyTransport": "RSAES-OAEP"}}}),
    );
    assert!(set["updated"].get("singleton").is_some(), "{set}");
    let got = jmap.call("EncryptionSettings/get", json!({"ids": null}));
    assert_eq!(got["list"][0]["algorithm"], "AES-256-GCM", "{got}");
    assert_eq!(got["list"][0]["keyTransport"], "RSAES-OAEP", "{got}");

    let bad = jmap.call(
        "EncryptionSettings/set",
        json!({"update": {"singleton": {"keyTransport": "RSAES-PSS"}}}),
    );
    assert_eq!(
        bad["notUpdated"]["singleton"]["type"], "invalidProperties",
        "{bad}"
    );
    assert_eq!(
        bad["notUpdated"]["singleton"]["properties"],
        json!(["keyTransport"]),
        "{bad}"
    );

    let status: serde_json::Value =
        serde_json::from_str(&server.ok(&["encryption", "status", ALICE, "--json"])).unwrap();
    assert_eq!(status["keyTransport"], "RSAES-OAEP", "{status}");

    let stored = deliver_one(&server, &message());
    let printed = cms_print(&stored);
    assert!(
        printed.contains("algorithm: rsaesOaep ") && printed.contains("algorithm: aes-256-gcm "),
        "{printed}"
    );
    let inner = openssl_decrypt(&stored, &keys.0.cert, &keys.0.key);
    assert_eq!(lf(&inner), lf(INNER.as_bytes()));
}

/// `openssl cms -encrypt` with GCM and OAEP for `cert`, as an S/MIME message.
fn openssl_gcm_oaep(cert: &KeyPair, to: &str) -> Vec<u8> {
    run(
        Command::new("openssl")
            .args([
                "cms",
                "-encrypt",
                "-aes-256-gcm",
                "-from",
                "bob@example.net",
                "-to",
                to,
            ])
            .args(["-subject", "sealed by openssl", "-recip"])
            .arg(&cert.cert)
            .args([
                "-keyopt",
                "rsa_padding_mode:oaep",
                "-keyopt",
                "rsa_oaep_md:sha256",
            ]),
        INNER.as_bytes(),
    )
}

#[test]
fn gcm_mail_sealed_by_openssl_is_stored_as_it_came() {
    let keys = alice_keys();
    let server = opted_in(&keys, &["--algorithm", "aes128-gcm"]);
    let sealed = openssl_gcm_oaep(&keys.1, ALICE);
    assert!(String::from_utf8_lossy(&sealed).contains("authEnveloped-data"));
    let stored = deliver_one(&server, &sealed);
    // why trimmed: smtplib ends data that lacks a final CRLF with one.
    let trimmed = |b: &[u8]| lf(b).trim_ascii_end().to_vec();
    assert_eq!(
        trimmed(body_of(&stored)),
        trimmed(body_of(&sealed)),
        "not encrypted twice"
    );
    let inner = openssl_decrypt(&stored, &keys.1.cert, &keys.1.key);
    assert_eq!(lf(&inner), lf(INNER.as_bytes()));
}

#[test]
fn a_list_key_opens_gcm_and_oaep_and_re_encrypts_per_member() {
    let keys = alice_keys();
    let team = pair("team@example.org", 2048);
    let server = opted_in(&keys, &[]);
    server.list_with_key("team@example.org", &[ALICE], &team);
    let sealed = openssl_gcm_oaep(&team, "team@example.org");
    let reply = server.lmtp_send("team@example.org", &sealed);
    assert!(reply.starts_with("250"), "{reply}");
    let inbox = server.inbox(ALICE);
    assert_eq!(inbox.len(), 1);
    let inner = openssl_decrypt(&inbox[0], &keys.0.cert, &keys.0.key);
    assert_eq!(
        lf(&inner),
        lf(INNER.as_bytes()),
        "opened by the list, sealed for alice"
    );
}

/// One OpenSSL-made RSA-2048 key and self-signed certificate for the
/// in-process comparisons (made once: key generation is the slow part).
struct OpensslPair {
    pkey: openssl::pkey::PKey<openssl::pkey::Private>,
    cert: openssl::x509::X509,
}

fn openssl_pair() -> &'static OpensslPair {
    static PAIR: std::sync::OnceLock<OpensslPair> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| {
        use openssl::{asn1, bn, hash, pkey, rsa, x509};
        let pkey = pkey::PKey::from_rsa(rsa::Rsa::generate(2048).unwrap()).unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "breadth").unwrap();
        let name = name.build();
        let mut b = x509::X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = bn::BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_not_before(&asn1::Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&asn1::Asn1Time::days_from_now(2).unwrap())
            .unwrap();
        b.set_pubkey(&pkey).unwrap();
        b.sign(&pkey, hash::MessageDigest::sha256()).unwrap();
        OpensslPair {
            pkey,
            cert: b.build(),
        }
    })
}

const CIPHERS: [sealmail_plugin_api::ContentCipher; 4] = [
    sealmail_plugin_api::ContentCipher::Aes256Cbc,
    sealmail_plugin_api::ContentCipher::Aes128Cbc,
    sealmail_plugin_api::ContentCipher::Aes256Gcm,
    sealmail_plugin_api::ContentCipher::Aes128Gcm,
];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// OpenSSL's CMS_decrypt opens what sealmail seals (our
    /// AuthEnvelopedData encoding and OAEP padding included), whatever the
    /// content.
    #[test]
    fn openssl_opens_every_form_we_seal(
        content in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
        cipher in 0usize..4,
        oaep in proptest::bool::ANY,
    ) {
        let pair = openssl_pair();
        let recipient = sealmail::smime::Recipient::from_der(&pair.cert.to_der().unwrap()).unwrap();
        let transport = if oaep {
            sealmail_plugin_api::KeyTransport::RsaOaep
        } else {
            sealmail_plugin_api::KeyTransport::RsaPkcs1v15
        };
        let envelope = sealmail::smime::Envelope::new(vec![recipient], CIPHERS[cipher])
            .unwrap()
            .with_key_transport(transport);
        let der = envelope.encrypt_der(&content).unwrap();
        let opened = openssl::cms::CmsContentInfo::from_der(&der)
            .unwrap()
            .decrypt(&pair.pkey, &pair.cert)
            .unwrap();
        proptest::prop_assert_eq!(opened, content);
    }

    /// sealmail opens what OpenSSL's CMS_encrypt seals with AES-GCM
    /// (AuthEnvelopedData) and AES-CBC.
    #[test]
    fn we_open_what_openssl_seals(
        content in proptest::collection::vec(proptest::num::u8::ANY, 0..3000),
        cipher in 0usize..4,
    ) {
        use openssl::symm::Cipher;
        let pair = openssl_pair();
        let openssl_cipher = [
            Cipher::aes_256_cbc(),
            Cipher::aes_128_cbc(),
            Cipher::aes_256_gcm(),
            Cipher::aes_128_gcm(),
        ][cipher];
        let mut certs = openssl::stack::Stack::new().unwrap();
        certs.push(pair.cert.clone()).unwrap();
        let flags = openssl::cms::CMSOptions::BINARY;
        let der = openssl::cms::CmsContentInfo::encrypt(&certs, &content, openssl_cipher, flags)
            .unwrap()
            .to_der()
            .unwrap();
        let key_pem = String::from_utf8(pair.pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let cert = <x509_cert::Certificate as der::Decode>::from_der(&pair.cert.to_der().unwrap()).unwrap();
        let decryptor = sealmail::smime::Decryptor::from_pem(&key_pem, Some(&cert)).unwrap();
        proptest::prop_assert_eq!(decryptor.decrypt_cms(&der).unwrap(), content);
    }
}
