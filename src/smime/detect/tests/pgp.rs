#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Inline armour and PGP/MIME: real `gpg` output, and the framing of it
//! built by hand where a test needs a variant.

use base64::Engine as _;

use super::detect;
use crate::smime::detect::AlreadyEncrypted;

fn pgp_block() -> String {
    // A PKESK packet (tag 1, old format) then an SEIPD packet (tag 18,
    // new format): the framing of `gpg --encrypt --armor` output.
    let mut data = vec![0x84, 0x03, 3, 0, 0];
    data.extend_from_slice(&[0xd2, 0x04, 1, 2, 3, 4]);
    let mut crc: u32 = 0x00b7_04ce;
    for &b in &data {
        crc ^= u32::from(b) << 16;
        for _ in 0..8 {
            crc <<= 1;
            if crc & 0x0100_0000 != 0 {
                crc ^= 0x0186_4cfb;
            }
        }
    }
    let sum = base64::engine::general_purpose::STANDARD.encode(&crc.to_be_bytes()[1..]);
    format!(
        "-----BEGIN PGP MESSAGE-----\r\nVersion: test\r\n\r\n{}\r\n={sum}\r\n-----END PGP MESSAGE-----\r\n",
        base64::engine::general_purpose::STANDARD.encode(&data)
    )
}

fn pgp_mime(preamble: &str, extra_part: &str, epilogue: &str) -> Vec<u8> {
    format!(
        "From: a\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b1\"\r\n\r\n{preamble}--b1\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b1\r\nContent-Type: application/octet-stream; name=encrypted.asc\r\n\r\n{}\r\n{extra_part}--b1--\r\n{epilogue}",
        pgp_block()
    )
    .into_bytes()
}

#[test]
fn pgp_mime_is_proven_only_when_exact() {
    assert_eq!(
        detect(&pgp_mime("", "", "")),
        Some(AlreadyEncrypted::MultipartEncrypted)
    );
    assert_eq!(
        detect(&pgp_mime("\r\n  \r\n", "", "\r\n")),
        Some(AlreadyEncrypted::MultipartEncrypted)
    );
    assert_eq!(detect(&pgp_mime("secret preamble\r\n", "", "")), None);
    assert_eq!(detect(&pgp_mime("", "", "secret epilogue\r\n")), None);
    let third = "--b1\r\nContent-Type: text/plain\r\n\r\nsecret third part\r\n";
    assert_eq!(detect(&pgp_mime("", third, "")), None);
    let no_protocol = String::from_utf8(pgp_mime("", "", ""))
        .unwrap()
        .replace("protocol=\"application/pgp-encrypted\"; ", "");
    assert_eq!(detect(no_protocol.as_bytes()), None);
    let unclosed = b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n--x\r\n";
    assert_eq!(detect(unclosed), None);
}

#[test]
fn inline_armour_is_proven_only_alone() {
    let block = pgp_block();
    let raw = |body: &str| format!("Subject: s\r\n\r\n{body}").into_bytes();
    assert_eq!(detect(&raw(&block)), Some(AlreadyEncrypted::InlinePgp));
    assert_eq!(
        detect(&raw(&format!("\r\n\r\n{block}\r\n "))),
        Some(AlreadyEncrypted::InlinePgp)
    );
    assert_eq!(detect(&raw(&format!("{block}secret after END\r\n"))), None);
    assert_eq!(detect(&raw(&format!("secret before\r\n{block}"))), None);
    let comment = block.replace("Version: test", "Comment: a secret comment");
    assert_eq!(detect(&raw(&comment)), None);
    let bad_sum = block.replace("\r\n=", "\r\n=AAAA\r\n=");
    assert_eq!(detect(&raw(&bad_sum)), None);
    // Radix-64 that is not an encrypted message: plain words.
    let words = "-----BEGIN PGP MESSAGE-----\r\n\r\nAttackAtDawnBringThePlans\r\n-----END PGP MESSAGE-----\r\n";
    assert_eq!(detect(&raw(words)), None);
    assert_eq!(
        detect(b"Subject: s\n\nquoting -----BEGIN PGP MESSAGE----- later\n"),
        None
    );
}

/// `printf x | gpg --batch --trust-model always -e -a -r f@example.org`
/// for a `gpg --quick-gen-key 'f <f@example.org>' rsa1024 encr` key.
const GPG_ENCRYPTED: &str = "-----BEGIN PGP MESSAGE-----

hIwDAMg/8ekOM8ABA/9GxcP8ZYxqMv0sCozEJrwyiYqHjQgdao4anbXBgp0bbP+Q
xYGPfTCjhWGsxo+qtuZAgrKD/sONKIpB2h4n9HDPgSawTzGPqbqaBQaB9rnmLlBf
OO47xWqEnDgF/3UYhBrV/IIbt6p9qaqW1Pmdhur2En0n3pkHdaE9SwuJIs9C8tI8
AVGLsN0DDxL9QTM6WbbdByqmODwEoNPCDMRGutSzZyHuk7LUPPyVE8Ty8hyV0rIs
xb4TzTWfHF4HcmlL
=NlrJ
-----END PGP MESSAGE-----
";

/// `printf x | gpg --batch -a --symmetric --pinentry-mode loopback --passphrase p`
const GPG_SYMMETRIC: &str = "-----BEGIN PGP MESSAGE-----

jA0ECQMCOkpXaw70h0//0jYBbIXnyvkS0iaea3ZZ7cNT4Hwb0alc9q7KM/ll26aK
WYiG23+EO25QJyMI3kTm/UoE5hUyNJY=
=I2qX
-----END PGP MESSAGE-----
";

/// `printf 'secret stored' | gpg --batch --store -a --compress-algo none`:
/// a "PGP MESSAGE" that is a literal data packet, clear text in radix-64.
const GPG_STORED_CLEAR: &str = "-----BEGIN PGP MESSAGE-----

yxNiAGsU2N1zZWNyZXQgc3RvcmVk
=kL8a
-----END PGP MESSAGE-----
";

#[test]
fn real_gpg_armour() {
    let raw = |body: &str| format!("Subject: s\n\n{body}").into_bytes();
    assert_eq!(
        detect(&raw(GPG_ENCRYPTED)),
        Some(AlreadyEncrypted::InlinePgp)
    );
    assert_eq!(
        detect(&raw(GPG_SYMMETRIC)),
        Some(AlreadyEncrypted::InlinePgp)
    );
    assert_eq!(detect(&raw(GPG_STORED_CLEAR)), None);
    let pgp_mime = format!(
        "Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\n\n--x\nContent-Type: application/pgp-encrypted\n\nVersion: 1\n--x\nContent-Type: application/octet-stream\n\n{GPG_ENCRYPTED}--x--\n"
    );
    assert_eq!(
        detect(pgp_mime.as_bytes()),
        Some(AlreadyEncrypted::MultipartEncrypted)
    );
    // One radix-64 character changed: the checksum no longer matches.
    let flipped = GPG_ENCRYPTED.replacen("hIwD", "hIwE", 1);
    assert_eq!(detect(&raw(&flipped)), None);
}
