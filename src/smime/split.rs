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
//! why our own splitter instead of mail-parser's offsets: its header-only
//! parse reports no body offset and silently drops lines it cannot read
//! (a field without a colon), and here no byte may be lost or moved. The
//! grammar needed is only RFC 5322 §2.2 (a field starts at a non-blank
//! line, continues on lines that start with SP or HTAB, and the header ends
//! at the first empty line), which this module covers with property tests
//! and a fuzz target.

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
    /// The empty line that ended the header, when there was one.
    pub separator: &'a [u8],
    /// Everything after the empty line.
    pub body: &'a [u8],
    /// The line ending the message uses (`\r\n` or `\n`), taken from its
    /// first line.
    pub eol: &'static [u8],
}

impl<'a> Split<'a> {
    /// Splits `raw`. Never fails: any byte sequence is a message whose
    /// header may be empty.
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
        self.outer
            .iter()
            .chain(self.content_fields.iter())
            .find(|f| field_name(f).eq_ignore_ascii_case(name))
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

/// Length of the field that starts `s` and whose first line is
/// `first_line_len` long: continuation lines start with SP or HTAB.
fn field_len(s: &[u8], first_line_len: usize) -> usize {
    let mut len = first_line_len;
    while let Some(rest) = s.get(len..) {
        match rest.first() {
            Some(b' ' | b'\t') => len += next_line_len(rest),
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
    fn a_line_without_colon_stays_in_the_clear_header() {
        let s = Split::new(b"From: a\r\ngarbage line\r\nTo: b\r\n\r\nx");
        assert_eq!(
            s.outer,
            vec![&b"From: a\r\n"[..], b"garbage line\r\n", b"To: b\r\n"]
        );
        assert_eq!(field_name(b"garbage line\r\n"), b"");
        assert_eq!(field_name(b"Content-Type : x"), b"Content-Type");
    }

    proptest! {
        /// Every input byte lands in exactly one part, in order.
        #[test]
        fn nothing_is_lost(raw in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = Split::new(&raw);
            let header_len: usize = s.outer.iter().chain(&s.content_fields).map(|f| f.len()).sum();
            prop_assert_eq!(header_len + s.separator.len() + s.body.len(), raw.len());
            prop_assert!(raw.ends_with(s.body));
        }

        /// Fields made of header-ish lines are split where they were joined.
        #[test]
        fn fields_round_trip(
            fields in proptest::collection::vec(("[A-Za-z-]{1,12}", "[ -~]{0,30}", proptest::option::of("[ -~]{0,20}")), 0..8),
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
