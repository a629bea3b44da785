//! Sealing cost for an EC recipient next to an RSA one, each against
//! OpenSSL doing the same work in the same process and the same run
//! (issue #21, item 7: target ≤ 1.1× OpenSSL for each).
//!
//! Input: the inner entity of a 64 KiB text message (`Content-Type` field,
//! empty line, 64 KiB of printable CRLF lines), sealed AES-256-CBC for one
//! recipient with a self-signed certificate made in-process.
//!
//! - `seal_64KiB`: entity → DER `ContentInfo` with EnvelopedData. Ours:
//!   `Envelope::encrypt_der` (for P-256: ephemeral ECDH, X9.63 KDF with
//!   SHA-256, AES-256 key wrap, KeyAgreeRecipientInfo; for RSA-2048:
//!   PKCS#1 v1.5 key transport). OpenSSL: `CMS_encrypt(certs, data,
//!   aes-256-cbc, CMS_BINARY)` + `i2d_CMS_ContentInfo` (its defaults:
//!   SHA-1 KDF for EC, which costs the same as SHA-256 on 32 bytes).
//! - `ephemeral_ecdh_P-256`: the key agreement alone (a fresh key pair
//!   and the shared secret with a fixed public key), through `ring` (what
//!   sealing uses), the `p256` crate and OpenSSL (`EVP_PKEY_keygen` +
//!   `EVP_PKEY_derive`): why `ring` is used for P-256 and P-384.
//!
//! Run with `cargo bench --bench ec_seal`; results in `benches/RESULTS.md`.

// why: a bench binary panics on broken setup like a test does, and the
// `pub fn benches` that `criterion_group!` generates has no doc comment.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use sealmail::smime::{Decryptor, Envelope, Recipient};
use sealmail_plugin_api::ContentCipher;

/// A self-signed certificate for `key`.
fn certificate(key: &PKey<Private>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "bench@example.org")
        .unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(42).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    b.sign(key, MessageDigest::sha256()).unwrap();
    b.build()
}

/// The inner entity of a 64 KiB text message.
fn entity() -> Vec<u8> {
    let mut out = b"Content-Type: text/plain; charset=us-ascii\r\n\r\n".to_vec();
    let mut n = 0u32;
    while out.len() < 64 << 10 {
        n += 1;
        out.extend_from_slice(
            format!("{n:06} The quick brown fox jumps over the lazy dog; figures 0123456789.\r\n")
                .as_bytes(),
        );
    }
    out.truncate(64 << 10);
    out
}

fn seal(c: &mut Criterion) {
    let content = entity();
    let ec_group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let keys = [
        (
            "P-256",
            PKey::from_ec_key(EcKey::generate(&ec_group).unwrap()).unwrap(),
        ),
        (
            "RSA-2048",
            PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap(),
        ),
    ];
    let mut group = c.benchmark_group("seal_64KiB");
    group.throughput(Throughput::Bytes(content.len() as u64));
    group.measurement_time(Duration::from_secs(6));
    for (label, key) in &keys {
        let cert = certificate(key);
        let recipient = Recipient::from_der(&cert.to_der().unwrap()).unwrap();
        let envelope = Envelope::new(vec![recipient], ContentCipher::Aes256Cbc).unwrap();
        let mut certs = Stack::new().unwrap();
        certs.push(cert.clone()).unwrap();
        // Setup check: each side's output opens with the key, through
        // OpenSSL and through us.
        let ours = envelope.encrypt_der(&content).unwrap();
        let opened = CmsContentInfo::from_der(&ours)
            .unwrap()
            .decrypt(key, &cert)
            .unwrap();
        assert_eq!(opened, content);
        let theirs =
            CmsContentInfo::encrypt(&certs, &content, Cipher::aes_256_cbc(), CMSOptions::BINARY)
                .unwrap()
                .to_der()
                .unwrap();
        let key_pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        let decryptor = Decryptor::from_pem(&key_pem, None).unwrap();
        assert_eq!(decryptor.decrypt_cms(&theirs).unwrap(), content);

        group.bench_function(format!("{label}/ours"), |b| {
            b.iter(|| envelope.encrypt_der(black_box(&content)).unwrap())
        });
        group.bench_function(format!("{label}/openssl"), |b| {
            b.iter(|| {
                CmsContentInfo::encrypt(
                    &certs,
                    black_box(&content),
                    Cipher::aes_256_cbc(),
                    CMSOptions::BINARY,
                )
                .unwrap()
                .to_der()
                .unwrap()
            })
        });
    }
    group.finish();
}

fn ephemeral_ecdh(c: &mut Criterion) {
    use elliptic_curve::sec1::ToEncodedPoint as _;
    let peer_secret = p256::SecretKey::random(&mut rand_core::OsRng);
    let peer_public = peer_secret.public_key();
    let peer_point = peer_public.to_encoded_point(false).as_bytes().to_vec();
    let group_ec = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let peer_ossl = PKey::from_ec_key(
        EcKey::from_public_key(
            &group_ec,
            &openssl::ec::EcPoint::from_bytes(
                &group_ec,
                &peer_point,
                &mut openssl::bn::BigNumContext::new().unwrap(),
            )
            .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();

    let mut group = c.benchmark_group("ephemeral_ecdh_P-256");
    group.bench_function("ring", |b| {
        let rng = ring::rand::SystemRandom::new();
        b.iter(|| {
            let secret =
                ring::agreement::EphemeralPrivateKey::generate(&ring::agreement::ECDH_P256, &rng)
                    .unwrap();
            let public = secret.compute_public_key().unwrap();
            let peer =
                ring::agreement::UnparsedPublicKey::new(&ring::agreement::ECDH_P256, &peer_point);
            let z = ring::agreement::agree_ephemeral(secret, &peer, |z| z.to_vec()).unwrap();
            black_box((public.as_ref().len(), z))
        })
    });
    group.bench_function("p256_crate", |b| {
        b.iter(|| {
            let secret = p256::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
            let public = secret.public_key().to_encoded_point(false);
            let peer = p256::PublicKey::from_sec1_bytes(black_box(&peer_point)).unwrap();
            let z = secret.diffie_hellman(&peer).raw_secret_bytes().to_vec();
            black_box((public.len(), z))
        })
    });
    group.bench_function("openssl", |b| {
        b.iter(|| {
            let secret = PKey::from_ec_key(EcKey::generate(&group_ec).unwrap()).unwrap();
            let public = secret
                .ec_key()
                .unwrap()
                .public_key()
                .to_bytes(
                    &group_ec,
                    openssl::ec::PointConversionForm::UNCOMPRESSED,
                    &mut openssl::bn::BigNumContext::new().unwrap(),
                )
                .unwrap();
            let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&secret).unwrap();
            ctx.derive_init().unwrap();
            ctx.derive_set_peer(black_box(&peer_ossl)).unwrap();
            let mut z = Vec::new();
            ctx.derive_to_vec(&mut z).unwrap();
            black_box((public.len(), z))
        })
    });
    group.finish();
}

criterion_group!(benches, seal, ephemeral_ecdh);
criterion_main!(benches);
