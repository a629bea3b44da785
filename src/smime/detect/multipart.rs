//! The two multipart forms an encrypted message may take, checked on the
//! raw body: PGP/MIME (RFC 3156 §4) and a `multipart/mixed` that only
//! wraps one `.p7m` part.
//!
//! why an own boundary scan: mail-parser hides the preamble and the
//! epilogue, where clear text can hide, and its full parse of a deeply
//! nested message is costly. This scan is one linear pass over the lines,
//! recognises only the strict delimiter lines of RFC 2046 §5.1.1 (a line
//! that a laxer reader would also take for a delimiter lands inside a
//! part here, where the strict content checks reject it), and never
//! descends: a nested multipart is a part that is not blank, nothing more.

use super::header::{self, Encoding};
use super::{armour, cms_body};

/// The pieces of a multipart body.
struct Parts<'a> {
    preamble: &'a [u8],
    parts: Vec<&'a [u8]>,
    epilogue: &'a [u8],
}

/// Whether `body` is exactly RFC 3156 PGP/MIME: a `Version: 1` control
/// part and one armoured PGP MESSAGE, nothing else around them.
pub(super) fn is_pgp_mime(body: &[u8], boundary: &str, protocol: Option<&str>) -> bool {
    if !protocol.is_some_and(|p| p.trim().eq_ignore_ascii_case("application/pgp-encrypted")) {
        return false;
    }
    let Some(parts) = split(body, boundary.as_bytes()) else {
        return false;
    };
    let [control, data] = parts.parts.as_slice() else {
        return false;
    };
    is_blank(parts.preamble)
        && is_blank(parts.epilogue)
        && part_is(control, "pgp-encrypted", |b| {
            b.trim_ascii() == b"Version: 1"
        })
        && part_is(data, "octet-stream", armour::is_one_message)
}

/// Whether `body` is one `.p7m` part holding a complete EnvelopedData,
/// every other part and the preamble and epilogue blank.
pub(super) fn is_p7m_wrapper(body: &[u8], boundary: &str) -> bool {
    let Some(parts) = split(body, boundary.as_bytes()) else {
        return false;
    };
    if !is_blank(parts.preamble) || !is_blank(parts.epilogue) {
        return false;
    }
    let mut p7m = 0usize;
    for part in &parts.parts {
        let Some(head) = header::read(part).filter(|h| h.only_content_fields()) else {
            return false;
        };
        if is_blank(head.body) {
            continue;
        }
        let Some(content) = head.content() else {
            return false;
        };
        let (main, sub) = (content.media.0.as_str(), content.media.1.as_str());
        let labelled = main == "application"
            && (matches!(sub, "pkcs7-mime" | "x-pkcs7-mime")
                || sub == "octet-stream" && content.p7m_name);
        if !labelled || !cms_body(head.body, content.encoding) {
            return false;
        }
        p7m += 1;
    }
    p7m == 1
}

/// A part of type `application/<sub>`, untransformed, with only content
/// fields and a body that `body_ok`.
fn part_is(part: &[u8], sub: &str, body_ok: impl Fn(&[u8]) -> bool) -> bool {
    let Some(head) = header::read(part).filter(|h| h.only_content_fields()) else {
        return false;
    };
    head.content().is_some_and(|c| {
        c.media.0 == "application" && c.media.1 == sub && c.encoding == Encoding::Identity
    }) && body_ok(head.body)
}

fn is_blank(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_whitespace)
}

/// Splits `body` at the delimiter lines of `boundary`; `None` without a
/// close delimiter or with an empty boundary.
fn split<'a>(body: &'a [u8], boundary: &[u8]) -> Option<Parts<'a>> {
    if boundary.is_empty() {
        return None;
    }
    let mut preamble = None;
    let mut parts = Vec::new();
    // Where the current part's content starts.
    let mut open: Option<usize> = None;
    let mut pos = 0;
    while pos < body.len() {
        let rest = body.get(pos..)?;
        let line_len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = rest.get(..line_len)?;
        let text = line.strip_suffix(b"\n").unwrap_or(line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        let kind = delimiter(text.trim_ascii_end(), boundary);
        if kind != Delimiter::None {
            // The line break before a delimiter belongs to it.
            let before = body.get(..pos)?;
            let before = before.strip_suffix(b"\n").unwrap_or(before);
            let before = before.strip_suffix(b"\r").unwrap_or(before);
            match open {
                None => preamble = Some(before),
                Some(start) => parts.push(body.get(start..before.len().max(start))?),
            }
            if kind == Delimiter::Close {
                return Some(Parts {
                    preamble: preamble?,
                    parts,
                    epilogue: body.get(pos + line_len..)?,
                });
            }
            open = Some(pos + line_len);
        }
        pos += line_len;
    }
    None
}

#[derive(PartialEq, Eq)]
enum Delimiter {
    None,
    Open,
    Close,
}

fn delimiter(text: &[u8], boundary: &[u8]) -> Delimiter {
    let Some(rest) = text
        .strip_prefix(b"--")
        .and_then(|t| t.strip_prefix(boundary))
    else {
        return Delimiter::None;
    };
    match rest {
        b"" => Delimiter::Open,
        b"--" => Delimiter::Close,
        _ => Delimiter::None,
    }
}
