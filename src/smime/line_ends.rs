//! One line-ending convention for stored mail: every bare LF and bare CR
//! becomes CRLF (RFC 5322 §2.1: "lines ... delimited by CRLF", and CR and
//! LF "MUST only occur together as CRLF").
//!
//! why at every way in and not only when sealing: a strict reader
//! (Python's `email`, most clients) ends a line at a bare CR or LF, while a
//! CRLF-only reader does not, so the two disagree about where the header
//! ends and what a clear header field holds. After this, the splitter, the
//! reader and every client see the same lines, and what clients fetch has
//! one convention whether the account is encrypted or not.
//!
//! One exception: a message that declares `Content-Transfer-Encoding:
//! binary` anywhere (RFC 3030, RFC 3516 literal8) keeps its body as it
//! is, because there CR and LF are data, not line ends; its header (up to
//! the first empty line as a CR/LF/CRLF reader sees it) is normalised
//! all the same, so the splitter still sees the reader's lines.

use std::borrow::Cow;

/// `raw` with every bare `\n` and bare `\r` turned into `\r\n` (in the
/// header only when the message has binary content); borrowed when there
/// is nothing to change (the common case: LMTP DATA arrives with CRLF).
///
/// ```
/// use sealmail::smime::to_crlf;
/// assert_eq!(to_crlf(b"a\nb\rc\r\n").as_ref(), b"a\r\nb\r\nc\r\n");
/// assert!(matches!(to_crlf(b"a\r\nb"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn to_crlf(raw: &[u8]) -> Cow<'_, [u8]> {
    match normalised(raw) {
        Some(out) => Cow::Owned(out),
        None => Cow::Borrowed(raw),
    }
}

/// [`to_crlf`] for an owned message: `raw` itself when nothing changes.
pub fn into_crlf(raw: Vec<u8>) -> Vec<u8> {
    normalised(&raw).unwrap_or(raw)
}

/// The normalised message, or `None` when it is `raw` itself.
fn normalised(raw: &[u8]) -> Option<Vec<u8>> {
    if is_crlf_only(raw) {
        return None;
    }
    if !declares_binary(raw) {
        return Some(rewrite(raw));
    }
    let (head, body) = raw.split_at(header_end(raw));
    if is_crlf_only(head) {
        return None;
    }
    let mut out = rewrite(head);
    out.extend_from_slice(body);
    Some(out)
}

/// The end of the first empty line (CR, LF or CRLF ended), or the end.
fn header_end(raw: &[u8]) -> usize {
    let mut start = 0;
    while let Some(off) = raw
        .get(start..)
        .and_then(|r| memchr::memchr2(b'\r', b'\n', r))
    {
        let at = start + off;
        let crlf = raw.get(at) == Some(&b'\r') && raw.get(at + 1) == Some(&b'\n');
        let end = if crlf { at + 2 } else { at + 1 };
        if at == start {
            return end;
        }
        start = end;
    }
    raw.len()
}

/// Whether a line of `raw` is `Content-Transfer-Encoding: binary` (any
/// case, blanks around the colon): the root or some part has binary
/// content.
fn declares_binary(raw: &[u8]) -> bool {
    const NAME: &[u8] = b"content-transfer-encoding";
    raw.split(|&b| b == b'\n' || b == b'\r').any(|line| {
        let (Some(name), Some(rest)) = (line.get(..NAME.len()), line.get(NAME.len()..)) else {
            return false;
        };
        let value = rest
            .trim_ascii_start()
            .strip_prefix(b":")
            .unwrap_or_default();
        name.eq_ignore_ascii_case(NAME)
            && value
                .trim_ascii_start()
                .get(..6)
                .is_some_and(|v| v.eq_ignore_ascii_case(b"binary"))
    })
}

/// Whether every `\n` follows a `\r` and there are as many `\r` as `\n`
/// (so every `\r` precedes a `\n`). Two vectorised scans, one hit a line.
fn is_crlf_only(raw: &[u8]) -> bool {
    let mut lf = 0usize;
    for i in memchr::memchr_iter(b'\n', raw) {
        if i == 0 || raw.get(i - 1) != Some(&b'\r') {
            return false;
        }
        lf += 1;
    }
    memchr::memchr_iter(b'\r', raw).count() == lf
}

fn rewrite(raw: &[u8]) -> Vec<u8> {
    // why the slack: a bare-LF message grows by one byte a line.
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 32 + 2);
    let mut start = 0;
    let mut skip_lf = false;
    for i in memchr::memchr2_iter(b'\r', b'\n', raw) {
        let byte = raw.get(i).copied();
        if skip_lf && i == start && byte == Some(b'\n') {
            // The `\n` of a `\r\n` whose `\r` was just written as `\r\n`.
            skip_lf = false;
            start = i + 1;
            continue;
        }
        out.extend_from_slice(raw.get(start..i).unwrap_or_default());
        out.extend_from_slice(b"\r\n");
        start = i + 1;
        skip_lf = byte == Some(b'\r');
    }
    out.extend_from_slice(raw.get(start..).unwrap_or_default());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mixed_line_ends_become_crlf() {
        assert_eq!(to_crlf(b"\n").as_ref(), b"\r\n");
        assert_eq!(to_crlf(b"\r").as_ref(), b"\r\n");
        assert_eq!(to_crlf(b"\r\r\n\n").as_ref(), b"\r\n\r\n\r\n");
        assert_eq!(to_crlf(b"a\n\rb").as_ref(), b"a\r\n\r\nb");
        assert_eq!(to_crlf(b"x\r").as_ref(), b"x\r\n");
        assert!(matches!(to_crlf(b""), Cow::Borrowed(_)));
        assert!(matches!(to_crlf(b"no line end"), Cow::Borrowed(_)));
    }

    #[test]
    fn binary_content_keeps_its_body() {
        let raw = b"Subject: a\nContent-Transfer-Encoding:  Binary\n\n\x00\r\x01\n\r\n";
        assert_eq!(
            to_crlf(raw).as_ref(),
            b"Subject: a\r\nContent-Transfer-Encoding:  Binary\r\n\r\n\x00\r\x01\n\r\n"
        );
        let crlf_head = b"Subject: a\r\nContent-Transfer-Encoding: binary\r\n\r\n\r\x01\n";
        assert!(matches!(to_crlf(crlf_head), Cow::Borrowed(_)));
        // A part's binary declaration counts; a header ended by CR CR LF
        // is the reader's line end and then the empty line.
        let raw = b"Subject: a\r\r\n--b\ncontent-transfer-encoding : binary\n\n\x02\r";
        assert_eq!(
            to_crlf(raw).as_ref(),
            b"Subject: a\r\n\r\n--b\ncontent-transfer-encoding : binary\n\n\x02\r"
        );
        // Not a declaration: the body is normalised.
        assert_eq!(
            to_crlf(b"Subject: binary\n\nContent-Transfer-Encoding: 8bit\n").as_ref(),
            b"Subject: binary\r\n\r\nContent-Transfer-Encoding: 8bit\r\n"
        );
    }

    /// The line structure a CR/LF/CRLF reader sees (Python's
    /// `str.splitlines` on those three): the reference for the rewrite.
    fn lines(raw: &[u8]) -> Vec<&[u8]> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < raw.len() {
            match raw[i] {
                b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                    out.push(&raw[start..i]);
                    i += 2;
                    start = i;
                }
                b'\r' | b'\n' => {
                    out.push(&raw[start..i]);
                    i += 1;
                    start = i;
                }
                _ => i += 1,
            }
        }
        out.push(&raw[start..]);
        out
    }

    proptest! {
        /// The output is CRLF only, has the same lines as the input, and
        /// is the input itself when that was CRLF only already (inputs
        /// declaring binary content aside: their bytes are not drawn).
        #[test]
        fn same_lines_crlf_only(raw in proptest::collection::vec(
            prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()], 0..200)
        ) {
            let out = to_crlf(&raw);
            prop_assert!(is_crlf_only(&out));
            prop_assert_eq!(lines(&raw), lines(&out));
            if is_crlf_only(&raw) {
                prop_assert!(matches!(out, Cow::Borrowed(_)));
            }
            prop_assert!(matches!(to_crlf(&out), Cow::Borrowed(_)));
        }
    }
}
