//! Recognising a message that is already encrypted, so that it is stored
//! as it is and never encrypted twice.
//!
//! A message passes through unchanged only when its whole body *is* the
//! encrypted object (ARCHITECTURE.md, "Data flow"):
//! - `application/pkcs7-mime` or `application/x-pkcs7-mime`, or
//!   `application/octet-stream` named `*.p7m` (RFC 8551 §3.2.2), whose
//!   decoded body is exactly one complete CMS EnvelopedData or
//!   AuthEnvelopedData ([`cms`]);
//! - `multipart/encrypted` that is exactly RFC 3156 PGP/MIME ([`multipart`]);
//! - a `multipart/mixed` body whose only non-blank part is such a `.p7m`
//!   (some clients wrap the S/MIME part that way);
//! - a `text/plain` body that is one armoured PGP MESSAGE ([`armour`]).
//!
//! why proof and not labels: whatever passes here is stored as it came, so
//! clear text anywhere in it (a preamble, an epilogue, another part, text
//! after the armour or after the CMS object, an unreadable header line)
//! would reach the disk of an opted-in account. Anything not proven is
//! encrypted like any other message; the cost of a false "no" is one
//! more layer of encryption, the cost of a false "yes" is plaintext.
//!
//! Every check here is a linear pass over the bytes with bounded nesting:
//! no full MIME parse, no recursion on attacker-controlled depth.

mod armour;
mod cms;
mod header;
mod multipart;

use self::header::Encoding;
use super::split::Split;

/// How a message was found to be already encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AlreadyEncrypted {
    /// S/MIME enveloped or authEnveloped data: `application/(x-)pkcs7-mime`
    /// or an `application/octet-stream` named `*.p7m`.
    Smime,
    /// `multipart/encrypted` in the PGP/MIME form of RFC 3156.
    MultipartEncrypted,
    /// A body that is only a `.p7m` attachment.
    P7mAttachment,
    /// Inline PGP armour.
    InlinePgp,
}

/// Says whether `split` (of `raw`) is already encrypted, and how; `None`
/// unless the whole body is proven to be the encrypted object.
pub fn already_encrypted(raw: &[u8], split: &Split<'_>) -> Option<AlreadyEncrypted> {
    let head = header::read(raw)?;
    // why: the sealer encrypts what `split` calls the body; if the two
    // readings of the header disagree, nothing is proven.
    if head.body.len() != split.body.len() || split.separator.is_empty() {
        return None;
    }
    let content = head.content()?;
    let body = head.body;
    let identity = content.encoding == Encoding::Identity;
    match (content.media.0.as_str(), content.media.1.as_str()) {
        ("application", "pkcs7-mime" | "x-pkcs7-mime") => {
            cms_body(body, content.encoding).then_some(AlreadyEncrypted::Smime)
        }
        ("application", "octet-stream") if content.p7m_name => {
            cms_body(body, content.encoding).then_some(AlreadyEncrypted::Smime)
        }
        ("multipart", "encrypted") if identity => {
            let boundary = content.boundary.as_deref()?;
            multipart::is_pgp_mime(body, boundary, content.protocol.as_deref())
                .then_some(AlreadyEncrypted::MultipartEncrypted)
        }
        ("multipart", "mixed") if identity => {
            let boundary = content.boundary.as_deref()?;
            multipart::is_p7m_wrapper(body, boundary).then_some(AlreadyEncrypted::P7mAttachment)
        }
        ("text", "plain") if identity => {
            armour::is_one_message(body).then_some(AlreadyEncrypted::InlinePgp)
        }
        _ => None,
    }
}

/// Whether `body`, decoded per its transfer encoding, is exactly one
/// complete EnvelopedData or AuthEnvelopedData ContentInfo.
fn cms_body(body: &[u8], encoding: Encoding) -> bool {
    match encoding {
        Encoding::Base64 => decode_base64_strict(body).is_some_and(|der| cms::is_enveloped(&der)),
        Encoding::Identity => {
            // A binary body may end in the line break that ends the message.
            let trimmed = body
                .strip_suffix(b"\r\n")
                .or_else(|| body.strip_suffix(b"\n"));
            cms::is_enveloped(body) || trimmed.is_some_and(cms::is_enveloped)
        }
        Encoding::Other => false,
    }
}

/// Base64 with nothing but the alphabet, line breaks and blanks, and `=`
/// only as padding at the end; `None` on any other byte.
///
/// why line by line and SIMD: this runs on every sealed copy (the
/// fail-closed check reads what the hook chain returned), and a per-byte
/// loop over a 64 KiB message's base64 cost more than its AES; lines are
/// copied whole and `base64-simd` checks the alphabet and padding while
/// decoding.
fn decode_base64_strict(body: &[u8]) -> Option<Vec<u8>> {
    let mut compact = Vec::with_capacity(body.len());
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', body).chain(std::iter::once(body.len())) {
        let line = body.get(start..end)?;
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if memchr::memchr2(b' ', b'\t', line).is_some() {
            compact.extend(line.iter().filter(|&&b| b != b' ' && b != b'\t'));
        } else {
            compact.extend_from_slice(line);
        }
    }
    base64_simd::STANDARD.decode_to_vec(&compact).ok()
}

#[cfg(test)]
mod tests;
