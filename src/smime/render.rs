//! Rendering the outer S/MIME message (RFC 8551 §3.3): the clear header
//! fields as they came, then the fixed `Content-*` fields of ARCHITECTURE.md,
//! then the CMS object in base64 lines of 76 characters (RFC 2045 §6.8).

use super::split::{field_name, Split};

/// Characters per base64 line (RFC 2045 §6.8 allows at most 76).
const LINE_CHARS: usize = 76;
/// Input bytes per full base64 line.
const LINE_BYTES: usize = LINE_CHARS / 4 * 3;

/// The outer S/MIME message for `split`, carrying the DER CMS object that
/// `write_cms` writes (base64-encoded as it is written); `smime_type` is
/// `enveloped-data` or `authEnveloped-data`.
pub(crate) fn render_smime<E>(
    split: &Split<'_>,
    smime_type: &[u8],
    write_cms: impl FnOnce(&mut Base64Lines<'_>) -> Result<(), E>,
) -> Result<Vec<u8>, E> {
    let eol = split.eol;
    let header_len: usize = split.outer.iter().map(|f| f.len() + eol.len()).sum();
    // why: the body's base64 is about 4/3 of the inner entity, plus line
    // ends and the CMS overhead; one allocation for nearly every message.
    let body = split.inner_len() / 3 * 4;
    let lines = body / LINE_CHARS + 16;
    let mut out = Vec::with_capacity(header_len + 1024 + body + lines * eol.len());
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
    let mut content_type = b"Content-Type: application/pkcs7-mime; smime-type=".to_vec();
    content_type.extend_from_slice(smime_type);
    content_type.push(b';');
    push_line(&content_type);
    push_line(b"\tname=\"smime.p7m\"");
    push_line(b"Content-Disposition: attachment; filename=\"smime.p7m\"");
    push_line(b"Content-Transfer-Encoding: base64");
    push_line(b"");
    let mut lines = Base64Lines {
        out: &mut out,
        eol,
        pending: [0; LINE_BYTES],
        pending_len: 0,
    };
    write_cms(&mut lines)?;
    lines.finish();
    Ok(out)
}

/// A [`der::Writer`] that appends what it is given as base64 lines of
/// [`LINE_CHARS`], each ended by `eol`; [`Base64Lines::finish`] writes the
/// last, shorter line.
pub(crate) struct Base64Lines<'a> {
    out: &'a mut Vec<u8>,
    eol: &'a [u8],
    /// Bytes of a line not complete yet.
    pending: [u8; LINE_BYTES],
    pending_len: usize,
}

impl Base64Lines<'_> {
    fn finish(self) {
        write_base64_lines(self.out, &self.pending[..self.pending_len], self.eol);
    }
}

impl der::Writer for Base64Lines<'_> {
    fn write(&mut self, mut slice: &[u8]) -> der::Result<()> {
        if self.pending_len > 0 {
            let take = (LINE_BYTES - self.pending_len).min(slice.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&slice[..take]);
            self.pending_len += take;
            slice = &slice[take..];
            if self.pending_len < LINE_BYTES {
                return Ok(());
            }
            write_base64_lines(self.out, &self.pending, self.eol);
            self.pending_len = 0;
        }
        let whole = slice.len() / LINE_BYTES * LINE_BYTES;
        write_base64_lines(self.out, &slice[..whole], self.eol);
        let rest = &slice[whole..];
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
        Ok(())
    }
}

/// Full lines encoded at once into a scratch buffer.
const BLOCK_LINES: usize = 32;

/// Appends `data` as base64 in lines of [`LINE_CHARS`], each ended by `eol`.
///
/// why this shape: base64 was a tenth of the CPU of a list fan-out
/// (benches/RESULTS.md). `base64-simd` encodes many lines in one call (per
/// 57-byte line, its scalar tail and the call cost dominate), and the lines
/// are copied into place as fixed-size arrays instead of two small
/// `extend_from_slice` calls each.
pub(crate) fn write_base64_lines(out: &mut Vec<u8>, data: &[u8], eol: &[u8]) {
    let (lines, tail) = data.as_chunks::<LINE_BYTES>();
    match eol {
        b"\r\n" => full_lines::<{ LINE_CHARS + 2 }>(out, lines, eol),
        b"\n" => full_lines::<{ LINE_CHARS + 1 }>(out, lines, eol),
        _ => {
            for line in lines {
                encode_line(out, line, eol);
            }
        }
    }
    if !tail.is_empty() {
        encode_line(out, tail, eol);
    }
}

/// One line of at most [`LINE_BYTES`] input bytes.
fn encode_line(out: &mut Vec<u8>, data: &[u8], eol: &[u8]) {
    let mut line = [0u8; LINE_CHARS];
    let encoded = base64_simd::STANDARD.encode(data, base64_simd::Out::from_slice(&mut line));
    out.extend_from_slice(encoded);
    out.extend_from_slice(eol);
}

/// Full lines, each `N` bytes with its `eol` (`N - LINE_CHARS` bytes).
fn full_lines<const N: usize>(out: &mut Vec<u8>, lines: &[[u8; LINE_BYTES]], eol: &[u8]) {
    let start = out.len();
    out.resize(start + lines.len() * N, 0);
    let (dst, _) = out[start..].as_chunks_mut::<N>();
    let mut scratch = [0u8; LINE_CHARS * BLOCK_LINES];
    for (src, dst) in lines.chunks(BLOCK_LINES).zip(dst.chunks_mut(BLOCK_LINES)) {
        let encoded = base64_simd::STANDARD.encode(
            src.as_flattened(),
            base64_simd::Out::from_slice(&mut scratch),
        );
        let (encoded, _) = encoded.as_chunks::<LINE_CHARS>();
        for (line, slot) in encoded.iter().zip(dst) {
            let (text, end) = slot.split_at_mut(LINE_CHARS);
            text.copy_from_slice(line);
            end.copy_from_slice(eol);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_the_base64_crate_at_every_block_edge() {
        use base64::Engine as _;
        let engine = &base64::engine::general_purpose::STANDARD;
        let sizes: [u32; 10] = [0, 1, 56, 57, 58, 114, 57 * 32, 57 * 32 + 1, 57 * 33, 5000];
        for n in sizes {
            let data: Vec<u8> = (0..n)
                .map(|i: u32| i.wrapping_mul(31).to_le_bytes()[0])
                .collect();
            for eol in [&b"\r\n"[..], b"\n", b"|"] {
                let mut expected = Vec::new();
                for chunk in data.chunks(LINE_BYTES) {
                    expected.extend_from_slice(engine.encode(chunk).as_bytes());
                    expected.extend_from_slice(eol);
                }
                let mut out = b"head".to_vec();
                write_base64_lines(&mut out, &data, eol);
                assert_eq!(&out[4..], &expected[..], "{n} bytes, eol {eol:?}");
            }
        }
    }

    #[test]
    fn writes_in_any_pieces_give_the_same_lines() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = Vec::new();
        write_base64_lines(&mut whole, &data, b"\r\n");
        for cuts in [vec![1, 56, 57, 58, 500], vec![3; 300], vec![114, 0, 1000]] {
            let mut out = Vec::new();
            let mut lines = Base64Lines {
                out: &mut out,
                eol: b"\r\n",
                pending: [0; LINE_BYTES],
                pending_len: 0,
            };
            let mut rest = data.as_slice();
            for cut in cuts {
                let (piece, tail) = rest.split_at(cut.min(rest.len()));
                der::Writer::write(&mut lines, piece).unwrap();
                rest = tail;
            }
            der::Writer::write(&mut lines, rest).unwrap();
            lines.finish();
            assert_eq!(out, whole);
        }
    }

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
