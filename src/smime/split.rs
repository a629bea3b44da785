//! Splitting an RFC 5322 message into the header fields that stay in clear
//! and the inner MIME entity that gets encrypted.
//!
//! The inner entity is the root's `Content-*` fields followed by the body,
//! byte for byte as they arrived: after decrypting, a client sees exactly
//! what the sender wrote (RFC 8551 §3.1 wraps a MIME entity; RFC 2045 §9
//! makes every `Content-*` field part of the entity). Every other field
//! (From, To, Subject, Received, ...) stays outside so that IMAP ENVELOPE,
//! threading and header search keep working.
//!
//! Only well-formed fields may stay outside, because the outer header is
//! stored in clear. The header is the longest run of such fields from the
//! start; it ends at the first empty line, or at the first line that is
//! not a field: that line and everything after it are the body, so they
//! are encrypted. A field is (RFC 5322 §2.2, §3.6.8)
//!
//! ```text
//! field  = name ":" text eol *(WSP text eol)   ; WSP = SP / HTAB
//! name   = 1*(%d33-57 / %d59-126)              ; no blank before the colon
//! text   = *(%d9 / %d32-126 / %d128-255)       ; no CR, LF, NUL or other control
//! ```
//!
//! This is Python's `email` feed parser (`headerRE`) made stricter: a
//! leading continuation line, a `From ` line, a line starting with `:` or
//! holding a control character end the header instead of being dropped or
//! kept, so no byte a strict reader would not show as a header field is
//! ever in clear. A bare CR inside a line also ends the header (callers
//! normalise line ends first, see [`super::to_crlf`]).
//!
//! why our own splitter instead of mail-parser's offsets: its header-only
//! parse reports no body offset and silently drops lines it cannot read
//! (a field without a colon), and here no byte may be lost or moved. The
//! module has property tests, `tests/at_rest_property.rs` checks it against
//! Python's reader, and `fuzz/fuzz_targets/header_split.rs` fuzzes it.

/// The default content type of RFC 2045 §5.2, made explicit in an inner
/// entity that had no `Content-Type` field.
pub(crate) const DEFAULT_CONTENT_TYPE: &[u8] = b"Content-Type: text/plain; charset=us-ascii";

/// A message split into its parts. All slices borrow from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<'a> {
    /// Header fields that stay in clear, each with its folded lines and
    /// its line ending, in their original order.
    pub outer: Vec<&'a [u8]>,
    /// The root's `Content-*` fields, raw, in their original order.
    pub content_fields: Vec<&'a [u8]>,
    /// The empty line that ended the header; empty when the header ended
    /// at a line that is not a field, or at the end of the input.
    pub separator: &'a [u8],
    /// Everything after the header: after the empty line, or from the
    /// first line that is not a well-formed field.
    pub body: &'a [u8],
    /// The line ending the message uses (`\r\n` or `\n`), taken from its
    /// first line.
    pub eol: &'static [u8],
}

impl<'a> Split<'a> {
    /// Splits `raw`. Never fails: any byte sequence is a message whose
    /// header may be empty. Every byte of `raw` lands in exactly one of
    /// `outer`, `content_fields`, `separator` and `body`, in order.
    ///
    /// ```
    /// let s = sealmail::smime::Split::new(b"Subject: hi\r\nContent-Type: text/plain\r\n\r\nbody");
    /// assert_eq!(s.outer, vec![&b"Subject: hi\r\n"[..]]);
    /// assert_eq!(s.inner_entity(), b"Content-Type: text/plain\r\n\r\nbody");
    /// ```
    pub fn new(raw: &'a [u8]) -> Self {
        let eol = line_ending(raw);
        let mut outer = Vec::new();
        let mut content_fields = Vec::new();
        let mut pos = 0;
        let (separator, body) = loop {
            let Some(rest) = raw.get(pos..) else {
                break (&raw[raw.len()..], &raw[raw.len()..]);
            };
            if rest.is_empty() {
                break (rest, rest);
            }
            let line_len = next_line_len(rest);
            let line = &rest[..line_len];
            if is_blank_line(line) {
                break (line, &rest[line_len..]);
            }
            if !is_field_start(line) {
                break (&rest[..0], rest);
            }
            let field_len = field_len(rest, line_len);
            let field = &rest[..field_len];
            if is_content_field(field) {
                content_fields.push(field);
            } else {
                outer.push(field);
            }
            pos += field_len;
        };
        Split {
            outer,
            content_fields,
            separator,
            body,
            eol,
        }
    }

    /// Whether the root declares a `Content-Type`.
    pub fn has_content_type(&self) -> bool {
        self.content_fields
            .iter()
            .any(|f| field_name(f).eq_ignore_ascii_case(b"content-type"))
    }

    /// The value of the first root field named `name` (case-insensitive),
    /// raw, with folding kept.
    pub fn field_value(&self, name: &[u8]) -> Option<&'a [u8]> {
        self.field_values(name).next()
    }

    /// The values of every root field named `name` (case-insensitive),
    /// raw, with folding kept: clear fields first, then `Content-*` ones,
    /// each group in message order.
    pub fn field_values<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = &'a [u8]> + 's {
        self.outer
            .iter()
            .chain(self.content_fields.iter())
            .filter(move |f| field_name(f).eq_ignore_ascii_case(name))
            .map(|f| field_value(f))
    }

    /// The inner MIME entity: `Content-*` fields, the empty line, the body.
    /// A `Content-Type: text/plain; charset=us-ascii` field is added when
    /// the message has none, so that the entity says what RFC 2045's
    /// default would have meant.
    pub fn inner_entity(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.inner_len());
        self.write_inner_entity(&mut out);
        out
    }

    /// An upper bound of the length of [`Split::inner_entity`].
    pub(crate) fn inner_len(&self) -> usize {
        let fields: usize = self.content_fields.iter().map(|f| f.len() + 2).sum();
        fields + DEFAULT_CONTENT_TYPE.len() + 4 + self.body.len()
    }

    fn write_inner_entity(&self, out: &mut Vec<u8>) {
        if !self.has_content_type() {
            out.extend_from_slice(DEFAULT_CONTENT_TYPE);
            out.extend_from_slice(self.eol);
        }
        for field in &self.content_fields {
            out.extend_from_slice(field);
            if !field.ends_with(b"\n") {
                out.extend_from_slice(self.eol);
            }
        }
        if self.separator.is_empty() {
            out.extend_from_slice(self.eol);
        } else {
            out.extend_from_slice(self.separator);
        }
        out.extend_from_slice(self.body);
    }
}

/// The line ending of the first line: `\r\n` unless that line ends in a
/// bare `\n`.
fn line_ending(raw: &[u8]) -> &'static [u8] {
    match raw.iter().position(|&b| b == b'\n') {
        Some(i) if i > 0 && raw.get(i - 1) == Some(&b'\r') => b"\r\n",
        Some(_) => b"\n",
        None => b"\r\n",
    }
}

/// Length of the first line of `s`, its line ending included.
fn next_line_len(s: &[u8]) -> usize {
    s.iter()
        .position(|&b| b == b'\n')
        .map_or(s.len(), |i| i + 1)
}

fn is_blank_line(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// Whether `line` (with its line ending) starts a well-formed field:
/// a name of printable ASCII without blanks, right before a colon, and a
/// clean line.
fn is_field_start(line: &[u8]) -> bool {
    let name_len = line
        .iter()
        .position(|&b| !matches!(b, 33..=57 | 59..=126))
        .unwrap_or(line.len());
    name_len > 0 && line.get(name_len) == Some(&b':') && is_clean_line(line)
}

/// Whether `line`, apart from its final `\r\n` or `\n`, holds no CR, LF,
/// NUL, DEL or other control character except HTAB.
fn is_clean_line(line: &[u8]) -> bool {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    !text.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Length of the field that starts `s` and whose first line is
/// `first_line_len` long: continuation lines start with SP or HTAB, are
/// clean and hold text; an unclean or blank-looking one ends the header
/// (the caller sees a line that is not a field start). why blank-looking
/// lines end it: some readers take a whitespace-only line for the empty
/// line and show what follows as body, and the already-encrypted detector
/// reads headers the same way.
fn field_len(s: &[u8], first_line_len: usize) -> usize {
    let mut len = first_line_len;
    while let Some(rest) = s.get(len..) {
        let line_len = next_line_len(rest);
        match rest.first() {
            Some(b' ' | b'\t')
                if is_clean_line(&rest[..line_len])
                    && !rest[..line_len].trim_ascii().is_empty() =>
            {
                len += line_len
            }
            _ => break,
        }
    }
    len
}

/// The field name: everything before the colon, trailing blanks removed.
/// A line without a colon has no name.
pub(crate) fn field_name(field: &[u8]) -> &[u8] {
    let first_line = &field[..next_line_len(field)];
    match first_line.iter().position(|&b| b == b':') {
        Some(i) => field[..i].trim_ascii_end(),
        None => b"",
    }
}

/// The raw value of a field: after the colon, line ending removed.
fn field_value(field: &[u8]) -> &[u8] {
    let value = match field.iter().position(|&b| b == b':') {
        Some(i) => &field[i + 1..],
        None => b"",
    };
    value.trim_ascii()
}

fn is_content_field(field: &[u8]) -> bool {
    let name = field_name(field);
    name.len() > 8 && name[..8].eq_ignore_ascii_case(b"content-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_content_fields_from_clear_fields() {
        let raw = b"From: a@x\r\nSubject: hi\r\n there\r\nContent-Type: text/plain;\r\n charset=utf-8\r\nMIME-Version: 1.0\r\ncontent-transfer-encoding: 8bit\r\n\r\nbody\r\n";
        let s = Split::new(raw);
        assert_eq!(
            s.outer,
            vec![
                &b"From: a@x\r\n"[..],
                b"Subject: hi\r\n there\r\n",
                b"MIME-Version: 1.0\r\n"
            ]
        );
        assert_eq!(s.content_fields.len(), 2);
        assert_eq!(s.body, b"body\r\n");
        assert_eq!(
            s.inner_entity(),
            b"Content-Type: text/plain;\r\n charset=utf-8\r\ncontent-transfer-encoding: 8bit\r\n\r\nbody\r\n"
        );
        assert_eq!(s.field_value(b"subject"), Some(&b"hi\r\n there"[..]));
    }

    #[test]
    fn no_content_type_gets_the_rfc2045_default() {
        let s = Split::new(b"From: a\nSubject: b\n\nhello\n");
        assert_eq!(s.eol, b"\n");
        assert_eq!(
            s.inner_entity(),
            b"Content-Type: text/plain; charset=us-ascii\n\nhello\n"
        );
    }

    #[test]
    fn headers_only_and_no_header() {
        let s = Split::new(b"From: a\r\nSubject: b");
        assert_eq!(s.outer.len(), 2);
        assert!(s.body.is_empty());
        assert_eq!(
            s.inner_entity(),
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        );
        let s = Split::new(b"\r\njust a body");
        assert!(s.outer.is_empty());
        assert_eq!(s.body, b"just a body");
        let s = Split::new(b"");
        assert!(s.outer.is_empty() && s.body.is_empty());
    }

    #[test]
    fn a_line_without_colon_ends_the_header() {
        let s = Split::new(b"From: a\r\ngarbage line\r\nTo: b\r\n\r\nx");
        assert_eq!(s.outer, vec![&b"From: a\r\n"[..]]);
        assert!(s.separator.is_empty());
        assert_eq!(s.body, b"garbage line\r\nTo: b\r\n\r\nx");
        assert_eq!(
            s.inner_entity(),
            b"Content-Type: text/plain; charset=us-ascii\r\n\r\ngarbage line\r\nTo: b\r\n\r\nx"
        );
    }

    #[test]
    fn malformed_lines_end_the_header() {
        for (raw, outer) in [
            // No empty line: the body's first line is no field.
            (&b"Subject: a\r\nhello world\r\n"[..], 1),
            (b"Subject : blank before colon\r\n\r\n", 0),
            (b"X-A: 1\r\nBad Name: space in name\r\n\r\n", 1),
            (b" leading continuation\r\nSubject: a\r\n\r\n", 0),
            (b"From alice Mon Jan 1 2024\r\nSubject: a\r\n\r\n", 0),
            (b":no name\r\n\r\n", 0),
            (b"Subject: a\rbare CR inside\r\n\r\n", 0),
            (b"Subject: nul\0inside\r\n\r\n", 0),
            (b"Subject: a\r\n fold with \x1b escape\r\n\r\n", 1),
            (b"Subject: a\r\n \r\nX-Secret: b\r\n\r\n", 1),
            (b"Subject: \xc3\xa9t\xc3\xa9\r\n\r\n", 1),
        ] {
            let s = Split::new(raw);
            assert_eq!(s.outer.len(), outer, "{:?}", String::from_utf8_lossy(raw));
            let kept: usize = s.outer.iter().map(|f| f.len()).sum();
            let inner = s.inner_entity();
            let rest = &raw[kept..];
            assert!(inner.ends_with(rest.strip_prefix(s.separator).unwrap_or(rest)));
        }
    }

    proptest! {
        /// Every input byte lands in exactly one part, in order.
        #[test]
        fn nothing_is_lost(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = Split::new(&raw);
            let header_len: usize = s.outer.iter().chain(&s.content_fields).map(|f| f.len()).sum();
            prop_assert_eq!(header_len + s.separator.len() + s.body.len(), raw.len());
            prop_assert!(raw.ends_with(s.body));
            for field in s.outer.iter().chain(&s.content_fields) {
                prop_assert!(is_field_start(&field[..next_line_len(field)]));
            }
        }

        /// Fields made of header-ish lines are split where they were joined.
        #[test]
        fn fields_round_trip(
            fields in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}", proptest::option::of("[!-~][ -~]{0,19}")), 0..8),
            body in "[ -~\r\n]{0,100}",
            crlf in any::<bool>(),
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut raw = String::new();
            for (name, value, cont) in &fields {
                raw.push_str(&format!("{name}: {value}{eol}"));
                if let Some(c) = cont { raw.push_str(&format!(" {c}{eol}")); }
            }
            raw.push_str(eol);
            raw.push_str(&body);
            let s = Split::new(raw.as_bytes());
            prop_assert_eq!(s.outer.len() + s.content_fields.len(), fields.len());
            prop_assert_eq!(s.body, body.as_bytes());
        }
    }
}
