//! APPEND of a `literal8` message (BINARY, RFC 3516 §4.4): its parts
//! in `Content-Transfer-Encoding: binary` (or holding NUL bytes) are
//! stored base64-encoded.
//!
//! why convert: RFC 3516 §4.4 lets a server "convert binary data to a
//! different content-transfer-encoding"; what it stores must stay a
//! valid RFC 5322 message, since FETCH BODY[] serves it to clients that
//! never asked for BINARY (a NUL in a plain literal is illegal, RFC 9051
//! §4.3), and the ingest pipeline turns bare CR and LF into CRLF, which
//! would change binary content. Dovecot does the same
//! (`istream-binary-converter`). FETCH BINARY[...] decodes the base64 and
//! gives the client its bytes back.

use base64::Engine as _;
use mail_parser::{MessageParser, MimeHeaders, PartType};

/// Line length of the base64 body (RFC 2045 §6.8 allows at most 76).
const LINE: usize = 76;

/// `raw` with each binary leaf part of the top-level message re-encoded
/// as base64 (its header's Content-Transfer-Encoding replaced); `raw`
/// itself when no part needs it.
pub(crate) fn to_seven_bit_safe(raw: Vec<u8>) -> Vec<u8> {
    let spans = binary_parts(&raw);
    if spans.is_empty() {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() * 4 / 3 + 64);
    let mut at = 0;
    for (header, body, end) in spans {
        out.extend_from_slice(raw.get(at..header).unwrap_or_default());
        rewrite_header(raw.get(header..body).unwrap_or_default(), &mut out);
        encode_body(raw.get(body..end).unwrap_or_default(), &mut out);
        at = end;
    }
    out.extend_from_slice(raw.get(at..).unwrap_or_default());
    out
}

/// `(header start, body start, body end)` of each leaf part to convert,
/// in order and not overlapping.
fn binary_parts(raw: &[u8]) -> Vec<(usize, usize, usize)> {
    let parser = MessageParser::new().with_mime_headers();
    let Some(msg) = crate::mime::parse(&parser, raw) else {
        return Vec::new();
    };
    let mut spans: Vec<(usize, usize, usize)> = Vec::new();
    for part in &msg.parts {
        if matches!(part.body, PartType::Multipart(_) | PartType::Message(_)) {
            continue;
        }
        let (header, body, end) = (
            part.offset_header as usize,
            part.offset_body as usize,
            (part.offset_end as usize).min(raw.len()),
        );
        if header > body || body > end {
            continue;
        }
        let cte = part
            .content_transfer_encoding()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let content = raw.get(body..end).unwrap_or_default();
        let convert = cte == "binary" || (cte != "base64" && content.contains(&0));
        let after_last = spans.last().is_none_or(|&(_, _, e)| header >= e);
        if convert && after_last {
            spans.push((header, body, end));
        }
    }
    spans
}

/// The header block `header` (fields, then the blank line) without its
/// Content-Transfer-Encoding field and with `base64` instead.
fn rewrite_header(header: &[u8], out: &mut Vec<u8>) {
    // Each field as (start, end), continuation lines included.
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while let Some(line) = header.get(at..).filter(|l| !l.is_empty()) {
        let end = line
            .iter()
            .position(|&b| b == b'\n')
            .map_or(header.len(), |p| at + p + 1);
        if line.starts_with(b"\r\n") || line.starts_with(b"\n") {
            break;
        }
        match fields.last_mut() {
            Some(last) if matches!(line.first(), Some(b' ' | b'\t')) => last.1 = end,
            _ => fields.push((at, end)),
        }
        at = end;
    }
    for field in fields.iter().filter_map(|&(a, b)| header.get(a..b)) {
        if !is_cte(field) {
            out.extend_from_slice(field);
            if !field.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n\r\n");
}

fn is_cte(field: &[u8]) -> bool {
    let name = b"content-transfer-encoding";
    field.len() > name.len()
        && field
            .get(..name.len())
            .is_some_and(|n| n.eq_ignore_ascii_case(name))
        && field
            .get(name.len()..)
            .and_then(|r| r.iter().find(|b| !matches!(b, b' ' | b'\t')))
            == Some(&b':')
}

/// `body` as base64 lines, CRLF-terminated except the last (the part's
/// end is followed by the CRLF of the next boundary, or ends the message).
fn encode_body(body: &[u8], out: &mut Vec<u8>) {
    let text = base64::engine::general_purpose::STANDARD.encode(body);
    for (i, line) in text.as_bytes().chunks(LINE).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_single_part_becomes_base64() {
        let raw = b"From: a@b\r\nContent-Transfer-Encoding: binary\r\n\r\n\0-\xe4\n\r\n\n".to_vec();
        let out = to_seven_bit_safe(raw);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "From: a@b\r\nContent-Transfer-Encoding: base64\r\n\r\nAC3kCg0KCg=="
        );
    }

    #[test]
    fn a_binary_part_of_a_multipart_is_converted_alone() {
        let raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nhello\r\n--x\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding:\r\n binary\r\n\r\n\0\x01\r\n--x--\r\n".to_vec();
        let text = String::from_utf8(to_seven_bit_safe(raw)).unwrap();
        assert!(text.contains("--x\r\n\r\nhello\r\n--x\r\n"), "{text}");
        assert!(
            text.contains("Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAE=\r\n--x--"),
            "{text}"
        );
    }

    #[test]
    fn text_without_nul_is_left_alone() {
        let raw = b"From: a@b\r\n\r\nplain \xe4 8-bit\r\n".to_vec();
        assert_eq!(to_seven_bit_safe(raw.clone()), raw);
    }
}
