#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fixtures are made at test time with the `openssl` command line: a
//! throw-away self-signed certificate, and `openssl cms -encrypt` in the
//! forms real clients send (DER, BER `-stream`, S/MIME base64, AES-GCM
//! AuthEnvelopedData).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use base64::Engine as _;

use super::*;

fn detect(raw: &[u8]) -> Option<AlreadyEncrypted> {
    already_encrypted(raw, &Split::new(raw))
}

fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/install-deps.sh)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A certificate made once per test binary: `openssl req -x509`.
fn cert() -> &'static str {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, cert) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=detect",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
            b"",
        );
        (dir, cert)
    });
    cert.to_str().unwrap()
}

const INNER: &[u8] = b"Content-Type: text/plain\r\n\r\nthe secret inside\r\n";

fn encrypt(extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["cms", "-encrypt", "-binary"];
    args.extend_from_slice(extra);
    args.push(cert());
    openssl(&args, INNER)
}

fn der() -> Vec<u8> {
    encrypt(&["-aes256", "-outform", "DER"])
}

fn ber_stream() -> Vec<u8> {
    encrypt(&["-aes256", "-stream", "-outform", "DER"])
}

fn b64(bytes: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    lines.join("\r\n") + "\r\n"
}

fn pkcs7_message(ctype: &str, body: &str) -> Vec<u8> {
    format!("From: a@example.org\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Type: {ctype}\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}").into_bytes()
}

const PKCS7: &str = "application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m";

#[test]
fn der_ber_and_base64_envelopes_are_proven() {
    for cms in [der(), ber_stream()] {
        assert!(cms::is_enveloped(&cms));
        let raw = pkcs7_message(PKCS7, &b64(&cms));
        assert_eq!(detect(&raw), Some(AlreadyEncrypted::Smime));
        let xraw = pkcs7_message("application/x-pkcs7-mime", &b64(&cms));
        assert_eq!(detect(&xraw), Some(AlreadyEncrypted::Smime));
    }
    let binary = [
        &b"Content-Type: application/pkcs7-mime\r\n\r\n"[..],
        &der(),
        b"\r\n",
    ]
    .concat();
    assert_eq!(detect(&binary), Some(AlreadyEncrypted::Smime));
}

#[test]
fn openssl_smime_output_is_proven() {
    let smime = encrypt(&["-aes256"]);
    assert_eq!(detect(&smime), Some(AlreadyEncrypted::Smime));
    let mut with_text = smime.clone();
    with_text.extend_from_slice(b"\nclear text after the base64\n");
    assert_eq!(detect(&with_text), None);
}

#[test]
fn auth_enveloped_gcm_is_proven() {
    let cms = encrypt(&["-aes-256-gcm", "-outform", "DER"]);
    assert!(cms::is_enveloped(&cms), "AuthEnvelopedData from openssl");
    assert_eq!(
        detect(&pkcs7_message(PKCS7, &b64(&cms))),
        Some(AlreadyEncrypted::Smime)
    );
}

#[test]
fn truncated_or_trailing_bytes_are_not_proven() {
    for cms in [der(), ber_stream()] {
        for cut in [1, 2, 17, cms.len() / 2, cms.len() - 1] {
            assert!(!cms::is_enveloped(&cms[..cut]), "cut at {cut}");
        }
        for tail in [&b"\0"[..], b"\0\0", b"clear text", &cms] {
            let longer = [&cms[..], tail].concat();
            assert!(!cms::is_enveloped(&longer));
            assert_eq!(detect(&pkcs7_message(PKCS7, &b64(&longer))), None);
        }
    }
}

#[test]
fn clear_text_after_or_inside_the_base64_is_not_proven() {
    let body = b64(&der());
    for bad in [
        format!("{body}\r\nthe secret in clear\r\n"),
        format!("{body}SECRET"),
        format!("secret: {body}"),
        body.replacen("\r\n", "\r\n-- x --\r\n", 1),
    ] {
        assert_eq!(detect(&pkcs7_message(PKCS7, &bad)), None, "{bad}");
    }
}

#[test]
fn octet_stream_p7m_root_is_smime() {
    let body = b64(&der());
    for ctype in [
        "application/octet-stream; name=\"smime.p7m\"",
        "application/octet-stream; name=SMIME.P7M",
    ] {
        assert_eq!(
            detect(&pkcs7_message(ctype, &body)),
            Some(AlreadyEncrypted::Smime)
        );
    }
    assert_eq!(
        detect(&pkcs7_message(
            "application/octet-stream; name=a.bin",
            &body
        )),
        None
    );
    assert_eq!(
        detect(&pkcs7_message("application/octet-stream", &body)),
        None
    );
    let plain = b64(b"plain text, not an envelope");
    assert_eq!(
        detect(&pkcs7_message(
            "application/octet-stream; name=smime.p7m",
            &plain
        )),
        None
    );
}

#[test]
fn a_pkcs7_label_on_plaintext_is_not_trusted() {
    let raw = b"From: a\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nsecret plaintext\r\n";
    assert_eq!(detect(raw), None);
    // A valid CMS prefix followed by clear text.
    let cms = der();
    let prefix = b64(&cms[..64]);
    assert_eq!(
        detect(&pkcs7_message(PKCS7, &format!("{prefix}secret\r\n"))),
        None
    );
}

#[test]
fn a_malformed_header_line_is_not_passed_through() {
    let body = b64(&der());
    let raw = format!("From: a\r\nthis line is a secret\r\nContent-Type: {PKCS7}\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}");
    assert_eq!(detect(raw.as_bytes()), None);
    let twice = format!("Content-Type: {PKCS7}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{body}");
    assert_eq!(detect(twice.as_bytes()), None);
}

fn wrapper(blank_body: &str, preamble: &str) -> Vec<u8> {
    format!(
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n{preamble}--b\r\nContent-Type: text/plain\r\n\r\n{blank_body}\r\n--b\r\nContent-Type: application/octet-stream; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        b64(&der())
    )
    .into_bytes()
}

#[test]
fn a_lone_p7m_attachment() {
    assert_eq!(
        detect(&wrapper("", "")),
        Some(AlreadyEncrypted::P7mAttachment)
    );
    assert_eq!(detect(&wrapper("hello secret", "")), None);
    assert_eq!(detect(&wrapper("", "secret preamble\r\n")), None);
    let plain_p7m = String::from_utf8(wrapper("", "")).unwrap().replace(
        &b64(&der())[..40],
        "c2VjcmV0IHNlY3JldCBzZWNyZXQgc2VjcmV0IHNl",
    );
    assert_eq!(detect(plain_p7m.as_bytes()), None);
}

#[test]
fn deep_nesting_is_cheap_and_not_proven() {
    let depth = 20_000;
    let mut raw = String::from("Content-Type: multipart/mixed; boundary=b0\r\n\r\n");
    for i in 1..depth {
        raw.push_str(&format!(
            "--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n",
            i - 1
        ));
    }
    raw.push_str("--x\r\n");
    assert_eq!(detect(raw.as_bytes()), None);
    let deep_ber: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 10_000)
        .flatten()
        .collect();
    assert!(!cms::is_enveloped(&deep_ber));
}

#[test]
fn plain_messages_are_not_encrypted() {
    assert_eq!(detect(b"Subject: x\r\n\r\nhello"), None);
    assert_eq!(detect(b""), None);
    assert_eq!(detect(b"\x00\xff\x30\x80"), None);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    #[test]
    fn bytes_added_to_an_envelope_never_pass(
        which in 0usize..2,
        at in proptest::prelude::any::<proptest::sample::Index>(),
        extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
        insert in proptest::prelude::any::<bool>(),
    ) {
        let cms = fixtures()[which].clone();
        let pos = if insert { at.index(cms.len()) } else { cms.len() };
        let mut bad = cms.clone();
        bad.splice(pos..pos, extra.iter().copied());
        proptest::prop_assert!(!cms::is_enveloped(&bad));
        proptest::prop_assert_eq!(detect(&pkcs7_message(PKCS7, &b64(&bad))), None);
    }
}

fn fixtures() -> &'static [Vec<u8>; 2] {
    static F: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    F.get_or_init(|| [der(), ber_stream()])
}

/// DER tag-length-value.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap());
    } else {
        let be = u32::try_from(len).unwrap().to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | u8::try_from(4 - skip).unwrap());
        out.extend_from_slice(&be[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// A synthetic ContentInfo of `oid` with `recipients` key-transport
/// RecipientInfos and the given EncryptedContentInfo.
fn synthetic(oid: &[u8], recipients: usize, eci: &[u8]) -> Vec<u8> {
    let ktri = tlv(
        0x30,
        &[
            tlv(0x02, &[0]),
            tlv(0x80, &[7; 20]),
            tlv(
                0x30,
                &tlv(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
                ),
            ),
            tlv(0x04, &[9; 256]),
        ]
        .concat(),
    );
    let set: Vec<u8> = std::iter::repeat_n(ktri, recipients).flatten().collect();
    let enveloped = tlv(
        0x30,
        &[tlv(0x02, &[2]), tlv(0x31, &set), eci.to_vec()].concat(),
    );
    tlv(0x30, &[tlv(0x06, oid), tlv(0xa0, &enveloped)].concat())
}

const ID_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const ID_ENVELOPED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const ID_SIGNED: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02];

fn eci(content: Option<&[u8]>) -> Vec<u8> {
    let algorithm = tlv(
        0x30,
        &[
            tlv(
                0x06,
                &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a],
            ),
            tlv(0x04, &[1; 16]),
        ]
        .concat(),
    );
    let mut inner = [tlv(0x06, ID_DATA), algorithm].concat();
    if let Some(c) = content {
        inner.extend(tlv(0x80, c));
    }
    tlv(0x30, &inner)
}

#[test]
fn thousands_of_recipients_are_walked_in_one_pass() {
    // 8,000 RecipientInfos, about 2.4 MB: `der`'s sorting SetOf took
    // close to a minute on a message like this.
    let big = synthetic(ID_ENVELOPED, 8_000, &eci(Some(&[3; 64])));
    assert!(big.len() > 2_000_000);
    assert!(cms::is_enveloped(&big));
}

#[test]
fn the_enveloped_shape_is_required() {
    assert!(cms::is_enveloped(&synthetic(
        ID_ENVELOPED,
        1,
        &eci(Some(b"c"))
    )));
    // Signed data is not encrypted, whatever its shape.
    assert!(!cms::is_enveloped(&synthetic(
        ID_SIGNED,
        1,
        &eci(Some(b"c"))
    )));
    // No RecipientInfo, or detached content.
    assert!(!cms::is_enveloped(&synthetic(
        ID_ENVELOPED,
        0,
        &eci(Some(b"c"))
    )));
    assert!(!cms::is_enveloped(&synthetic(ID_ENVELOPED, 1, &eci(None))));
    // Clear text as the "encrypted" content's neighbour.
    let extra = [eci(Some(b"c")), tlv(0x04, b"clear text")].concat();
    assert!(!cms::is_enveloped(&synthetic(ID_ENVELOPED, 1, &extra)));
}

mod pgp;
