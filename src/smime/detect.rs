//! Recognising a message that is already encrypted, so that it is stored
//! as it is and never encrypted twice.
//!
//! Recognised (ARCHITECTURE.md, "Data flow"):
//! - `application/pkcs7-mime` or `application/x-pkcs7-mime` whose content
//!   really is CMS EnvelopedData or AuthEnvelopedData (RFC 8551 §3.2);
//! - `multipart/encrypted` (RFC 1847, PGP/MIME RFC 3156);
//! - a `multipart/mixed` body whose only non-blank part is a `.p7m`
//!   attachment (some clients wrap the S/MIME part that way);
//! - inline PGP armour (`-----BEGIN PGP MESSAGE-----`) as a text body.
//!
//! why the content of a pkcs7-mime part is checked: a label alone could
//! carry plaintext past the encryption of an opted-in account; a message
//! that says it is enveloped but is not gets encrypted like any other.

use base64::Engine as _;
use mail_parser::{MessageParser, MessagePart, MimeHeaders, PartType};

use super::split::Split;

/// `id-envelopedData`, 1.2.840.113549.1.7.3, as DER content octets.
const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// `id-ct-authEnvelopedData`, 1.2.840.113549.1.9.16.1.23.
const OID_AUTH_ENVELOPED_DATA: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];
const PGP_ARMOUR: &[u8] = b"-----BEGIN PGP MESSAGE-----";

/// How a message was found to be already encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlreadyEncrypted {
    /// S/MIME `application/(x-)pkcs7-mime` enveloped or authEnveloped data.
    Smime,
    /// `multipart/encrypted` (PGP/MIME and friends).
    MultipartEncrypted,
    /// A body that is only a `.p7m` attachment.
    P7mAttachment,
    /// Inline PGP armour.
    InlinePgp,
}

/// Says whether `split` (of `raw`) is already encrypted, and how.
pub fn already_encrypted(raw: &[u8], split: &Split<'_>) -> Option<AlreadyEncrypted> {
    let header_len = raw.len() - split.body.len() - split.separator.len();
    let header = MessageParser::new().parse_headers(&raw[..header_len]);
    let ctype = header.as_ref().and_then(|m| m.content_type());
    let (main, sub) = match ctype {
        Some(ct) => (
            ct.ctype().to_ascii_lowercase(),
            ct.subtype().unwrap_or_default().to_ascii_lowercase(),
        ),
        None => ("text".to_owned(), "plain".to_owned()),
    };
    match (main.as_str(), sub.as_str()) {
        ("application", "pkcs7-mime" | "x-pkcs7-mime") => {
            is_enveloped_body(split.body).then_some(AlreadyEncrypted::Smime)
        }
        ("multipart", "encrypted") => Some(AlreadyEncrypted::MultipartEncrypted),
        ("multipart", "mixed") => {
            only_p7m_attachment(raw).then_some(AlreadyEncrypted::P7mAttachment)
        }
        ("text", "plain") => {
            starts_with_pgp_armour(split.body).then_some(AlreadyEncrypted::InlinePgp)
        }
        _ => None,
    }
}

/// Whether `body` (base64 or binary) begins a CMS ContentInfo whose
/// contentType is enveloped or authEnveloped data.
fn is_enveloped_body(body: &[u8]) -> bool {
    is_enveloped_der(body) || is_enveloped_der(&decode_base64_prefix(body, 96))
}

/// Decodes up to `max_chars` base64 characters from the start of `body`,
/// skipping line breaks and blanks.
fn decode_base64_prefix(body: &[u8], max_chars: usize) -> Vec<u8> {
    let chars: Vec<u8> = body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .take(max_chars)
        .collect();
    let usable = chars.len() / 4 * 4;
    base64::engine::general_purpose::STANDARD
        .decode(&chars[..usable])
        .unwrap_or_default()
}

/// Checks `SEQUENCE { OBJECT IDENTIFIER (enveloped|authEnveloped), ...`
/// with BER or DER lengths.
fn is_enveloped_der(bytes: &[u8]) -> bool {
    let Some((&0x30, rest)) = bytes.split_first() else {
        return false;
    };
    let Some(rest) = skip_length(rest) else {
        return false;
    };
    let Some((&0x06, rest)) = rest.split_first() else {
        return false;
    };
    let Some((&oid_len, oid)) = rest.split_first() else {
        return false;
    };
    let Some(oid) = oid.get(..usize::from(oid_len)) else {
        return false;
    };
    oid == OID_ENVELOPED_DATA || oid == OID_AUTH_ENVELOPED_DATA
}

/// Skips a BER length (short, long up to 4 octets, or indefinite).
fn skip_length(bytes: &[u8]) -> Option<&[u8]> {
    let (&first, rest) = bytes.split_first()?;
    match first {
        0x00..=0x80 => Some(rest),
        0x81..=0x84 => rest.get(usize::from(first & 0x7f)..),
        _ => None,
    }
}

fn starts_with_pgp_armour(body: &[u8]) -> bool {
    body.trim_ascii_start().starts_with(PGP_ARMOUR)
}

/// A multipart/mixed whose parts are one `.p7m` and otherwise blank text.
fn only_p7m_attachment(raw: &[u8]) -> bool {
    let Some(message) = MessageParser::new().parse(raw) else {
        return false;
    };
    let Some(children) = message.root_part().sub_parts() else {
        return false;
    };
    let mut p7m = 0;
    for id in children {
        let Some(part) = message.part(*id) else {
            return false;
        };
        if is_p7m(part) {
            p7m += 1;
        } else if !is_blank_text(part) {
            return false;
        }
    }
    p7m == 1
}

fn is_p7m(part: &MessagePart<'_>) -> bool {
    let named_p7m = part
        .attachment_name()
        .is_some_and(|n| n.to_ascii_lowercase().ends_with(".p7m"));
    let pkcs7_type = part.content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("application")
            && ct.subtype().is_some_and(|s| {
                s.eq_ignore_ascii_case("pkcs7-mime") || s.eq_ignore_ascii_case("x-pkcs7-mime")
            })
    });
    let contents = part.contents();
    (named_p7m || pkcs7_type) && is_enveloped_der(contents)
}

fn is_blank_text(part: &MessagePart<'_>) -> bool {
    matches!(&part.body, PartType::Text(t) if t.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detect(raw: &[u8]) -> Option<AlreadyEncrypted> {
        already_encrypted(raw, &Split::new(raw))
    }

    // A DER prefix of a real EnvelopedData ContentInfo, base64:
    // `openssl cms -encrypt ... -outform DER | head -c 48 | base64`.
    const ENVELOPED_B64: &str = "MIIBxQYJKoZIhvcNAQcDoIIBtjCCAbICAQAxggFtMIIBaQIBADBRMDkxFzAVBgNV";

    #[test]
    fn smime_enveloped_is_recognised_by_content() {
        let raw = format!(
            "From: a\r\nContent-Type: application/x-pkcs7-mime; smime-type=enveloped-data; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{ENVELOPED_B64}\r\n"
        );
        assert_eq!(detect(raw.as_bytes()), Some(AlreadyEncrypted::Smime));
    }

    #[test]
    fn a_pkcs7_label_on_plaintext_is_not_trusted() {
        let raw = b"From: a\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n\r\nsecret plaintext\r\n";
        assert_eq!(detect(raw), None);
    }

    #[test]
    fn pgp_forms() {
        assert_eq!(
            detect(b"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x\r\n\r\n--x--\r\n"),
            Some(AlreadyEncrypted::MultipartEncrypted)
        );
        assert_eq!(
            detect(
                b"Subject: s\n\n\n-----BEGIN PGP MESSAGE-----\n\nhQEM\n-----END PGP MESSAGE-----\n"
            ),
            Some(AlreadyEncrypted::InlinePgp)
        );
        assert_eq!(
            detect(b"Subject: s\n\nquoting -----BEGIN PGP MESSAGE----- later\n"),
            None
        );
    }

    #[test]
    fn a_lone_p7m_attachment() {
        let raw = format!(
            "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\r\n--b\r\nContent-Type: application/octet-stream; name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n{ENVELOPED_B64}\r\n--b--\r\n"
        );
        assert_eq!(
            detect(raw.as_bytes()),
            Some(AlreadyEncrypted::P7mAttachment)
        );
        let with_text = raw.replace("\r\n\r\n\r\n--b", "\r\n\r\nhello\r\n--b");
        assert_eq!(detect(with_text.as_bytes()), None);
    }

    #[test]
    fn plain_messages_are_not_encrypted() {
        assert_eq!(detect(b"Subject: x\r\n\r\nhello"), None);
        assert_eq!(detect(b""), None);
        assert_eq!(detect(b"\x00\xff\x30\x80"), None);
    }
}
