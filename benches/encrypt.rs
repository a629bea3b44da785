//! Sealing cost: sealmail's S/MIME encryption next to OpenSSL doing the
//! same work in the same process, on the same input, in the same run.
//!
//! Why this shape: encryption at rest runs once per stored copy of every
//! message (a list fans one message out to many), so its cost decides
//! ingest throughput. OpenSSL is the reference a reader already trusts,
//! and running it in-process (the `openssl` crate) instead of the CLI keeps
//! process start-up and file I/O out of the comparison. The target
//! is ours ≤ 1.1× OpenSSL at 64 KiB.
//!
//! Input: an RFC 5322 message (From, To, Subject, Date, Message-ID,
//! MIME-Version, Content-Type text/plain) whose body is printable CRLF
//! text lines of exactly 4 KiB, 64 KiB or 1 MiB, sealed for 1 and for 3
//! RSA-2048 certificates (self-signed, made in-process), AES-256-CBC.
//!
//! Groups (what each side does is listed because the `openssl` crate has
//! no `SMIME_write_CMS`, so the OpenSSL S/MIME side is assembled here):
//!
//! - `cms_der`: the inner entity (bytes prepared once) → DER `ContentInfo`
//!   with EnvelopedData (RFC 5652 §6). Ours: [`Envelope::encrypt_der`].
//!   OpenSSL: `CMS_encrypt(certs, data, aes-256-cbc, CMS_BINARY)` +
//!   `i2d_CMS_ContentInfo`. `CMS_BINARY` makes OpenSSL copy the bytes as
//!   they are, which is what we do; without it OpenSSL would rewrite line
//!   endings first.
//! - `smime`: raw message → stored S/MIME message (RFC 8551 §3.3). Ours:
//!   [`Envelope::seal`] (split, already-encrypted check, CMS, base64 render).
//!   OpenSSL side: the same header split done by [`split_plain`] (unfolded
//!   fields of this fixed message only), `CMS_encrypt` + `i2d` as above,
//!   `EVP_EncodeBlock` (`openssl::base64::encode_block`) on the whole DER,
//!   cut into 76-character CRLF lines, behind the same outer header and
//!   `Content-*` fields our renderer writes. Setup checks that both outputs
//!   decrypt (with OpenSSL) to the same inner entity and carry the same
//!   header, so the two sides do the same work.
//! - `aes256cbc_1MiB`: raw AES-256-CBC with PKCS#7 padding, `cbc` +
//!   `aes` crates (what `cms` uses) against `EVP` via `symm::encrypt`. An
//!   `aes` crate within ~1.5× of OpenSSL is running AES-NI; the software
//!   fallback is several times slower. `benches/aesni.sh` confirms it from
//!   the binary and from `perf`.
//! - `parts_64KiB`: where one 64 KiB, 1-recipient seal spends its time:
//!   the split, the fixed envelope cost (RSA key transport + builder +
//!   DER of a 16-byte content), AES over the entity, and base64 lines.
//!
//! Run with `cargo bench --bench encrypt`; results and the machine they
//! came from are in `benches/RESULTS.md`.

// why: a bench binary panics on broken setup like a test does, and the
// `pub fn benches` that `criterion_group!` generates has no doc comment.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockEncryptMut as _, KeyIvInit as _};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::cms::{CMSOptions, CmsContentInfo};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::stack::Stack;
use openssl::symm::Cipher;
use openssl::x509::extension::{KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use sealmail::smime::{Envelope, Recipient, Sealed, Split};
use sealmail_plugin_api::ContentCipher;

/// Body sizes, with the label used in benchmark ids.
const SIZES: [(usize, &str); 3] = [(4 << 10, "4KiB"), (64 << 10, "64KiB"), (1 << 20, "1MiB")];
/// Recipient counts: a single account, and a small list or shared box.
const RECIPIENT_COUNTS: [usize; 2] = [1, 3];
/// Characters per base64 line (RFC 2045 §6.8), as our renderer writes.
const LINE_CHARS: usize = 76;
/// The `Content-*` fields of the outer message, as `render.rs` writes them.
const SMIME_FIELDS: &[u8] = b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data;\r\n\
\tname=\"smime.p7m\"\r\n\
Content-Disposition: attachment; filename=\"smime.p7m\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n";

/// A recipient's key pair, made in-process.
struct Party {
    key: PKey<Private>,
    cert: X509,
}

/// A self-signed RSA-2048 S/MIME encryption certificate for `email`.
fn party(email: &str) -> Party {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", email).unwrap();
    let name = name.build();
    let mut serial = BigNum::new().unwrap();
    serial.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .email(email)
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    let usage = KeyUsage::new()
        .critical()
        .key_encipherment()
        .build()
        .unwrap();
    b.append_extension(usage).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    Party {
        key,
        cert: b.build(),
    }
}

/// A plain-text RFC 5322 message whose body is exactly `body_bytes` of
/// printable CRLF lines.
fn message(body_bytes: usize) -> Vec<u8> {
    let mut raw = b"From: Alice Example <alice@example.org>\r\n\
To: Bob Example <bob@example.net>\r\n\
Subject: Quarterly report, figures and notes\r\n\
Date: Tue, 14 Apr 2026 09:30:00 +0200\r\n\
Message-ID: <20260414093000.4711@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=us-ascii\r\n\
\r\n"
        .to_vec();
    let header_len = raw.len();
    let mut n = 0u32;
    while raw.len() - header_len < body_bytes {
        n += 1;
        let line =
            format!("{n:06} The quick brown fox jumps over the lazy dog; figures 0123456789.\r\n");
        let room = body_bytes - (raw.len() - header_len);
        if line.len() <= room {
            raw.extend_from_slice(line.as_bytes());
        } else {
            // Fill the rest with a shorter line so the body is exact.
            raw.extend(std::iter::repeat_n(b'x', room.saturating_sub(2)));
            raw.extend_from_slice(&b"\r\n"[..room.min(2)]);
        }
    }
    raw
}

/// The header split for the OpenSSL side: outer fields and the inner
/// entity (`Content-*` fields, empty line, body). Enough for [`message`]'s
/// unfolded CRLF header; our [`Split`] handles any input.
fn split_plain(raw: &[u8]) -> (Vec<&[u8]>, Vec<u8>) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("message has a header")
        + 2;
    let mut outer = Vec::new();
    let mut inner = Vec::with_capacity(raw.len());
    for field in raw[..end].split_inclusive(|&b| b == b'\n') {
        if field.len() >= 8 && field[..8].eq_ignore_ascii_case(b"content-") {
            inner.extend_from_slice(field);
        } else {
            outer.push(field);
        }
    }
    inner.extend_from_slice(&raw[end..]);
    (outer, inner)
}

/// OpenSSL doing our job: `CMS_encrypt`, DER, base64 lines.
struct OpenSslSealer {
    certs: Stack<X509>,
}

impl OpenSslSealer {
    fn new(parties: &[Party]) -> Self {
        let mut certs = Stack::new().unwrap();
        for p in parties {
            certs.push(p.cert.clone()).unwrap();
        }
        Self { certs }
    }

    fn encrypt_der(&self, content: &[u8]) -> Vec<u8> {
        CmsContentInfo::encrypt(
            &self.certs,
            content,
            Cipher::aes_256_cbc(),
            CMSOptions::BINARY,
        )
        .unwrap()
        .to_der()
        .unwrap()
    }

    fn seal(&self, raw: &[u8]) -> Vec<u8> {
        let (outer, inner) = split_plain(raw);
        let b64 = openssl::base64::encode_block(&self.encrypt_der(&inner));
        let lines = b64.len().div_ceil(LINE_CHARS);
        let mut out =
            Vec::with_capacity(raw.len() / 8 + SMIME_FIELDS.len() + b64.len() + 2 * lines);
        for field in outer {
            out.extend_from_slice(field);
        }
        out.extend_from_slice(SMIME_FIELDS);
        for line in b64.as_bytes().chunks(LINE_CHARS) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// Both sides for one recipient set.
struct Sides {
    ours: Envelope,
    openssl: OpenSslSealer,
}

fn sides(parties: &[Party]) -> Sides {
    let recipients = parties
        .iter()
        .map(|p| Recipient::from_der(&p.cert.to_der().unwrap()).unwrap())
        .collect();
    Sides {
        ours: Envelope::new(recipients, ContentCipher::Aes256Cbc).unwrap(),
        openssl: OpenSslSealer::new(parties),
    }
}

fn sealed_bytes(sealed: Sealed) -> Vec<u8> {
    match sealed {
        Sealed::Encrypted(bytes) => bytes,
        other => panic!("a plain message came back as {other:?}"),
    }
}

/// Checks, outside the timed code, that both sides produce what the
/// other would: OpenSSL opens every DER and S/MIME output for every
/// recipient, and the outer headers are identical.
fn check_equivalent(parties: &[Party], s: &Sides, raw: &[u8]) {
    let (_, inner) = split_plain(raw);
    assert_eq!(
        Split::new(raw).inner_entity(),
        inner,
        "the two splits agree"
    );
    let ours_smime = sealed_bytes(s.ours.seal(raw).unwrap());
    let openssl_smime = s.openssl.seal(raw);
    let header = |m: &[u8]| {
        let end = m.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        m[..end].to_vec()
    };
    assert_eq!(header(&ours_smime), header(&openssl_smime));
    for der in [
        s.ours.encrypt_der(&inner).unwrap(),
        s.openssl.encrypt_der(&inner),
    ] {
        let cms = CmsContentInfo::from_der(&der).unwrap();
        for p in parties {
            assert_eq!(cms.decrypt(&p.key, &p.cert).unwrap(), inner);
        }
    }
    for smime in [&ours_smime, &openssl_smime] {
        let cms = CmsContentInfo::smime_read_cms(smime).unwrap();
        assert_eq!(
            cms.decrypt(&parties[0].key, &parties[0].cert).unwrap(),
            inner
        );
    }
}

fn parties() -> Vec<Party> {
    ["alice", "bob", "carol"]
        .iter()
        .map(|n| party(&format!("{n}@example.org")))
        .collect()
}

/// Gives 1 MiB inputs fewer samples so the whole run stays at a few minutes.
fn tune(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, size: usize) {
    group.sample_size(if size >= 1 << 20 { 30 } else { 50 });
}

fn bench_cms_and_smime(c: &mut Criterion) {
    let parties = parties();
    for (name, full) in [("cms_der", false), ("smime", true)] {
        let mut group = c.benchmark_group(name);
        for count in RECIPIENT_COUNTS {
            let s = sides(&parties[..count]);
            for (size, label) in SIZES {
                let raw = message(size);
                check_equivalent(&parties[..count], &s, &raw);
                let inner = Split::new(&raw).inner_entity();
                tune(&mut group, size);
                group.throughput(Throughput::Bytes(size as u64));
                let id = |side: &str| BenchmarkId::new(side, format!("{label}/{count}rcpt"));
                if full {
                    group.bench_function(id("ours"), |b| b.iter(|| s.ours.seal(black_box(&raw))));
                    group.bench_function(id("openssl"), |b| {
                        b.iter(|| s.openssl.seal(black_box(&raw)))
                    });
                } else {
                    group.bench_function(id("ours"), |b| {
                        b.iter(|| s.ours.encrypt_der(black_box(&inner)))
                    });
                    group.bench_function(id("openssl"), |b| {
                        b.iter(|| s.openssl.encrypt_der(black_box(&inner)))
                    });
                }
            }
        }
        group.finish();
    }
}

fn aes_crate_cbc(key: &[u8; 32], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<aes::Aes256>::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(data)
}

fn openssl_cbc(key: &[u8; 32], iv: &[u8; 16], data: &[u8]) -> Vec<u8> {
    openssl::symm::encrypt(Cipher::aes_256_cbc(), key, Some(iv), data).unwrap()
}

fn bench_aes(c: &mut Criterion) {
    let (key, iv) = ([0x42u8; 32], [0x24u8; 16]);
    let data = message(1 << 20);
    assert_eq!(
        aes_crate_cbc(&key, &iv, &data),
        openssl_cbc(&key, &iv, &data)
    );
    let mut group = c.benchmark_group("aes256cbc_1MiB");
    group.sample_size(30);
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("aes_crate", |b| {
        b.iter(|| aes_crate_cbc(&key, &iv, black_box(&data)))
    });
    group.bench_function("openssl", |b| {
        b.iter(|| openssl_cbc(&key, &iv, black_box(&data)))
    });
    group.finish();
}

/// Base64 in 76-character lines with the `base64` crate, 57 input bytes
/// per line: the loop of `render.rs`'s `write_base64_lines`, which is not
/// public.
fn base64_crate_lines(data: &[u8]) -> Vec<u8> {
    let engine = &base64::engine::general_purpose::STANDARD;
    let mut out = Vec::with_capacity(data.len() / 57 * 78 + 80);
    let mut line = [0u8; LINE_CHARS];
    for chunk in data.chunks(LINE_CHARS / 4 * 3) {
        let n = engine.encode_slice(chunk, &mut line).unwrap();
        out.extend_from_slice(&line[..n]);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn openssl_base64_lines(data: &[u8]) -> Vec<u8> {
    let b64 = openssl::base64::encode_block(data);
    let mut out = Vec::with_capacity(b64.len() + b64.len() / 38 + 2);
    for line in b64.as_bytes().chunks(LINE_CHARS) {
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bench_parts(c: &mut Criterion) {
    let parties = parties();
    let s = sides(&parties[..1]);
    let raw = message(64 << 10);
    let inner = Split::new(&raw).inner_entity();
    let der = s.ours.encrypt_der(&inner).unwrap();
    assert_eq!(base64_crate_lines(&der), openssl_base64_lines(&der));
    let (key, iv) = ([0x42u8; 32], [0x24u8; 16]);
    let small = [0x5au8; 16];
    let mut group = c.benchmark_group("parts_64KiB");
    group.sample_size(50);
    group.bench_function("split_inner_entity/ours", |b| {
        b.iter(|| Split::new(black_box(&raw)).inner_entity())
    });
    group.bench_function("split_inner_entity/openssl_side", |b| {
        b.iter(|| split_plain(black_box(&raw)))
    });
    group.bench_function("envelope_16B/ours", |b| {
        b.iter(|| s.ours.encrypt_der(black_box(&small)))
    });
    group.bench_function("envelope_16B/openssl", |b| {
        b.iter(|| s.openssl.encrypt_der(black_box(&small)))
    });
    group.bench_function("aes256cbc/aes_crate", |b| {
        b.iter(|| aes_crate_cbc(&key, &iv, black_box(&inner)))
    });
    group.bench_function("aes256cbc/openssl", |b| {
        b.iter(|| openssl_cbc(&key, &iv, black_box(&inner)))
    });
    group.bench_function("base64_lines/base64_crate", |b| {
        b.iter(|| base64_crate_lines(black_box(&der)))
    });
    group.bench_function("base64_lines/openssl", |b| {
        b.iter(|| openssl_base64_lines(black_box(&der)))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_cms_and_smime, bench_aes, bench_parts
}
criterion_main!(benches);
