//! Rendering the outer S/MIME message (RFC 8551 §3.3): the clear header
//! fields as they came, then the fixed `Content-*` fields of ARCHITECTURE.md,
//! then the CMS object in base64 lines of 76 characters (RFC 2045 §6.8).

use super::split::{field_name, Split};

/// Characters per base64 line (RFC 2045 §6.8 allows at most 76).
const LINE_CHARS: usize = 76;
/// Input bytes per full base64 line.
const LINE_BYTES: usize = LINE_CHARS / 4 * 3;

/// The outer S/MIME message for `split`, carrying the DER `cms` object.
pub(crate) fn render_smime(split: &Split<'_>, cms: &[u8]) -> Vec<u8> {
    let eol = split.eol;
    let header_len: usize = split.outer.iter().map(|f| f.len() + eol.len()).sum();
    let lines = cms.len().div_ceil(LINE_BYTES);
    let mut out = Vec::with_capacity(header_len + 256 + lines * (LINE_CHARS + eol.len()));
    let mut has_mime_version = false;
    for field in &split.outer {
        has_mime_version |= field_name(field).eq_ignore_ascii_case(b"mime-version");
        out.extend_from_slice(field);
        if !field.ends_with(b"\n") {
            out.extend_from_slice(eol);
        }
    }
    let mut push_line = |line: &[u8]| {
        out.extend_from_slice(line);
        out.extend_from_slice(eol);
    };
    if !has_mime_version {
        push_line(b"MIME-Version: 1.0");
    }
    push_line(b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data;");
    push_line(b"\tname=\"smime.p7m\"");
    push_line(b"Content-Disposition: attachment; filename=\"smime.p7m\"");
    push_line(b"Content-Transfer-Encoding: base64");
    push_line(b"");
    write_base64_lines(&mut out, cms, eol);
    out
}

/// Appends `data` as base64 in lines of [`LINE_CHARS`], each ended by `eol`.
///
/// why `base64-simd`: the `base64` crate's scalar encoder was a tenth of
/// the CPU of a list fan-out (benches/RESULTS.md).
pub(crate) fn write_base64_lines(out: &mut Vec<u8>, data: &[u8], eol: &[u8]) {
    let engine = &base64_simd::STANDARD;
    let mut line = [0u8; LINE_CHARS];
    out.reserve(data.len().div_ceil(LINE_BYTES) * (LINE_CHARS + eol.len()));
    for chunk in data.chunks(LINE_BYTES) {
        // A chunk of at most 57 bytes encodes to at most 76 characters.
        let encoded = engine.encode(chunk, base64_simd::Out::from_slice(&mut line));
        out.extend_from_slice(encoded);
        out.extend_from_slice(eol);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_76_characters() {
        let mut out = Vec::new();
        write_base64_lines(&mut out, &[7u8; 200], b"\r\n");
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<usize> = text.split("\r\n").map(str::len).collect();
        // 200 bytes = 3 * 57 + 29: three full lines, then 29 bytes -> 40 chars.
        assert_eq!(lines, vec![76, 76, 76, 40, 0]);
    }
}
