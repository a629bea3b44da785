//! Our decryptor opens what `openssl cms -encrypt` produces: AES-256 and
//! AES-128, DER and streamed BER (indefinite lengths, chunked content),
//! `application/pkcs7-mime` and `application/x-pkcs7-mime`, base64 S/MIME
//! and binary DER.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use sealmail::smime::{smime_payload, Decryptor};
use support::messages;
use support::pki::{pair, KeyPair};
use support::tools::{run, with_content_type};
use x509_cert::der::DecodePem;
use x509_cert::Certificate;

fn decryptor(k: &KeyPair, with_cert: bool) -> Decryptor {
    let cert = Certificate::from_pem(k.cert_pem()).unwrap();
    let key = String::from_utf8(k.key_pem()).unwrap();
    Decryptor::from_pem(&key, with_cert.then_some(&cert)).unwrap()
}

/// `openssl cms -encrypt` of `content` to `keys`, with extra `args`.
fn openssl_encrypt(content: &[u8], keys: &[&KeyPair], args: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new("openssl");
    cmd.args(["cms", "-encrypt", "-binary"]).args(args);
    for k in keys {
        cmd.arg(&k.cert);
    }
    run(&mut cmd, content)
}

fn content() -> Vec<u8> {
    // Over openssl's streaming chunk size, so -stream writes several chunks.
    let mut m = messages::multipart_binary().inner();
    m.extend(b"filler line to pass the streaming buffer size\r\n".repeat(3000));
    m
}

#[test]
fn every_cipher_stream_and_content_type() {
    let alice = pair("alice@example.org", 2048);
    let content = content();
    for cipher in ["-aes256", "-aes128"] {
        for stream in [false, true] {
            let mut args = vec![cipher];
            if stream {
                args.push("-stream");
            }
            let smime = openssl_encrypt(&content, &[&alice], &args);
            let payload = smime_payload(&smime).unwrap();
            assert_eq!(payload[0], 0x30);
            assert_eq!(
                payload[1] == 0x80,
                stream,
                "-stream should give an indefinite length"
            );
            for ctype in ["application/pkcs7-mime", "application/x-pkcs7-mime"] {
                let msg = with_content_type(&smime, ctype);
                for with_cert in [true, false] {
                    let plain = decryptor(&alice, with_cert).decrypt_message(&msg).unwrap();
                    assert!(
                        plain == content,
                        "{cipher} stream={stream} {ctype} cert={with_cert}"
                    );
                }
            }
        }
    }
}

#[test]
fn binary_der_and_ber_objects() {
    let alice = pair("alice@example.org", 2048);
    let content = content();
    for args in [
        &["-aes256", "-outform", "DER"][..],
        &["-aes128", "-stream", "-outform", "DER"][..],
    ] {
        let der = openssl_encrypt(&content, &[&alice], args);
        assert_eq!(
            decryptor(&alice, true).decrypt_cms(&der).unwrap(),
            content,
            "{args:?}"
        );
    }
}

#[test]
fn each_key_of_a_multi_recipient_message() {
    let keys = [
        pair("alice@example.org", 2048),
        pair("alice.new@example.org", 4096),
        pair("bob@example.org", 2048),
    ];
    let refs: Vec<&KeyPair> = keys.iter().collect();
    let content = messages::utf8_8bit().inner();
    let smime = openssl_encrypt(&content, &refs, &["-aes256", "-stream"]);
    for k in &keys {
        assert_eq!(decryptor(k, true).decrypt_message(&smime).unwrap(), content);
        assert_eq!(
            decryptor(k, false).decrypt_message(&smime).unwrap(),
            content
        );
    }
}

#[test]
fn a_stranger_gets_a_clear_error() {
    let alice = pair("alice@example.org", 2048);
    let mallory = pair("mallory@example.net", 2048);
    let smime = openssl_encrypt(
        b"Content-Type: text/plain\r\n\r\nhi\r\n",
        &[&alice],
        &["-aes256"],
    );
    let err = decryptor(&mallory, true)
        .decrypt_message(&smime)
        .unwrap_err();
    assert!(
        err.to_string().contains("encrypted for other certificates"),
        "{err}"
    );
    let err = decryptor(&alice, true)
        .decrypt_message(b"Subject: x\r\n\r\nplain")
        .unwrap_err();
    assert!(err.to_string().contains("not S/MIME encrypted"), "{err}");
}

#[test]
fn truncated_or_corrupted_input_is_an_error_not_a_panic() {
    let alice = pair("alice@example.org", 2048);
    let der = openssl_encrypt(
        b"Content-Type: text/plain\r\n\r\nhi\r\n",
        &[&alice],
        &["-aes256", "-stream", "-outform", "DER"],
    );
    let d = decryptor(&alice, true);
    for cut in [1, 10, der.len() / 2, der.len() - 1] {
        assert!(d.decrypt_cms(&der[..cut]).is_err(), "cut at {cut}");
    }
    let mut flipped = der.clone();
    let last = flipped.len() - 5;
    flipped[last] ^= 0xff;
    let _ = d.decrypt_cms(&flipped);
}
