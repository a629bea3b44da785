//! The header of a message or body part, read strictly: only well-formed
//! fields (`name:` then value, folded continuations) up to an empty line.
//!
//! why strict: a message passed through as already encrypted is stored as
//! it arrived, header included. A line that is not a field (no colon, a
//! blank-looking continuation, a bare CR) is text some reader shows as
//! body, so it makes the message "not proven" and it gets encrypted.
//! Parameters of `Content-Type` and `Content-Disposition` are read by
//! mail-parser's header-only parse, which does not descend into the body.

use mail_parser::{MessageParser, MimeHeaders};

/// A header that is nothing but well-formed fields, and the body after it.
pub(super) struct Header<'a> {
    /// The names of the fields, in order.
    names: Vec<&'a [u8]>,
    /// The header lines and the empty line ending them.
    raw: &'a [u8],
    /// Everything after the empty line (empty when there was none).
    pub(super) body: &'a [u8],
}

/// How a body is transfer-encoded (RFC 2045 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    /// No field, `7bit`, `8bit` or `binary`: the bytes are the content.
    Identity,
    /// `base64`.
    Base64,
    /// Anything else (`quoted-printable`, unknown tokens).
    Other,
}

/// What the content fields of a header say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Content {
    /// Media type and subtype, lower case (`text/plain` when absent).
    pub(super) media: (String, String),
    pub(super) boundary: Option<String>,
    pub(super) protocol: Option<String>,
    /// A name or filename is present and every one given ends in `.p7m`.
    pub(super) p7m_name: bool,
    pub(super) encoding: Encoding,
}

impl Header<'_> {
    /// Whether every field is a `Content-*` field (what a body part of an
    /// encrypted message may carry; anything else is clear text).
    pub(super) fn only_content_fields(&self) -> bool {
        self.names.iter().all(|name| {
            name.get(..8)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"content-"))
        })
    }

    fn count(&self, name: &[u8]) -> usize {
        self.names
            .iter()
            .filter(|n| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The content description, or `None` when it is ambiguous (a field
    /// given twice, a `Content-Type` mail-parser cannot read).
    pub(super) fn content(&self) -> Option<Content> {
        let types = self.count(b"content-type");
        let encodings = self.count(b"content-transfer-encoding");
        if types > 1 || encodings > 1 || self.count(b"content-disposition") > 1 {
            return None;
        }
        let parsed = MessageParser::new().parse_headers(self.raw)?;
        let media = match (parsed.content_type(), types) {
            (Some(ct), 1) => (
                ct.ctype().to_ascii_lowercase(),
                ct.subtype()?.to_ascii_lowercase(),
            ),
            (None, 0) => ("text".to_owned(), "plain".to_owned()),
            _ => return None,
        };
        let ct_attr = |name: &str| {
            parsed
                .content_type()
                .and_then(|ct| ct.attribute(name))
                .map(str::to_owned)
        };
        let names = [
            ct_attr("name"),
            parsed
                .content_disposition()
                .and_then(|cd| cd.attribute("filename"))
                .map(str::to_owned),
        ];
        let p7m_name = names.iter().any(Option::is_some)
            && names
                .iter()
                .flatten()
                .all(|n| n.to_ascii_lowercase().ends_with(".p7m"));
        let encoding = match (encodings, parsed.content_transfer_encoding()) {
            (0, _) => Encoding::Identity,
            (_, Some(cte)) => match cte.trim().to_ascii_lowercase().as_str() {
                "7bit" | "8bit" | "binary" => Encoding::Identity,
                "base64" => Encoding::Base64,
                _ => Encoding::Other,
            },
            (_, None) => Encoding::Other,
        };
        Some(Content {
            media,
            boundary: ct_attr("boundary"),
            protocol: ct_attr("protocol"),
            p7m_name,
            encoding,
        })
    }
}

/// Reads the header of `entity`, or `None` when a line in it is not part
/// of a well-formed field.
pub(super) fn read(entity: &[u8]) -> Option<Header<'_>> {
    let mut names = Vec::new();
    let mut pos = 0;
    while pos < entity.len() {
        let rest = entity.get(pos..)?;
        let line_len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let line = rest.get(..line_len)?;
        let text = strip_eol(line)?;
        pos += line_len;
        if text.is_empty() {
            return Some(Header {
                names,
                raw: entity.get(..pos)?,
                body: entity.get(pos..)?,
            });
        }
        if text.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            // A continuation: it needs a field to continue, and text, as
            // a blank one ends the header for some readers.
            if names.is_empty() || text.trim_ascii().is_empty() {
                return None;
            }
            continue;
        }
        names.push(field_name(text)?);
    }
    Some(Header {
        names,
        raw: entity,
        body: entity.get(entity.len()..)?,
    })
}

/// A line without its LF (and a CR before it); `None` when a CR or NUL
/// stands anywhere else in it.
fn strip_eol(line: &[u8]) -> Option<&[u8]> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    (!text.iter().any(|&b| b == b'\r' || b == 0)).then_some(text)
}

/// The name of a field line (RFC 5322 §3.6.8: printable ASCII but the
/// colon, then a colon).
fn field_name(line: &[u8]) -> Option<&[u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = line.get(..colon)?;
    let printable = |b: &u8| (33..=126).contains(b);
    (!name.is_empty() && name.iter().all(printable)).then_some(name)
}
