//! A cursor over the bytes of one IMAP command that imap-codec refused,
//! for the parsers of our own (`list_command`, `append_command`): the
//! tokens of RFC 9051 §9 they share, each failing with where it stopped
//! and what the grammar wanted there. Never panics, whatever the bytes.

use imap_next::imap_types::core::Tag;
use imap_next::server::Error as ProtocolError;

/// A message imap-next refused as malformed, split at its tag: where the
/// parsers of our own look for the commands imap-codec does not parse.
#[derive(Debug)]
pub(crate) struct Refused<'a> {
    pub(crate) tag: Tag<'static>,
    /// The command after the tag and its space, literals and line ending
    /// included.
    pub(crate) command: &'a [u8],
    /// The whole message, tag included.
    pub(crate) whole: &'a [u8],
}

/// `e` split at its tag; `None` when it is not a malformed message or
/// does not start with a valid tag.
pub(crate) fn refused(e: &ProtocolError) -> Option<Refused<'_>> {
    let ProtocolError::MalformedMessage { discarded_bytes } = e else {
        return None;
    };
    let whole = discarded_bytes.declassify();
    let space = whole.iter().position(|&b| b == b' ')?;
    let tag = Tag::try_from(whole.get(..space)?.to_vec()).ok()?;
    Some(Refused {
        tag,
        command: whole.get(space + 1..)?,
        whole,
    })
}

/// Where parsing stopped and what the grammar wanted there; each parser
/// turns it into its own error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    /// What the grammar wanted.
    pub(crate) what: &'static str,
    /// Offset in the command.
    pub(crate) at: usize,
}

/// The command's bytes and the offset reached.
#[derive(Debug)]
pub(crate) struct Cursor<'a> {
    input: &'a [u8],
    /// Offset of the next byte.
    pub(crate) at: usize,
}

/// A [`Cursor`] for one grammar whose errors are `E`: each parser adds its
/// own tokens in an `impl` of its instance.
#[derive(Debug)]
pub(crate) struct Tokens<'a, E> {
    cursor: Cursor<'a>,
    error: std::marker::PhantomData<E>,
}

impl<'a, E: From<Expected>> Tokens<'a, E> {
    /// Tokens from the start of `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self {
            cursor: Cursor::new(input),
            error: std::marker::PhantomData,
        }
    }

    /// What the grammar wanted at the current offset, as `E`.
    pub(crate) fn expected(&self, what: &'static str) -> E {
        self.cursor.expected(what).into()
    }
}

impl<'a, E> std::ops::Deref for Tokens<'a, E> {
    type Target = Cursor<'a>;
    fn deref(&self) -> &Self::Target {
        &self.cursor
    }
}

impl<E> std::ops::DerefMut for Tokens<'_, E> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.cursor
    }
}

/// RFC 9051 §9 ATOM-CHAR, plus `]` (ASTRING-CHAR) when `resp` is set.
pub(crate) fn atom_char(b: u8, resp: bool) -> bool {
    match b {
        0..=0x1f | 0x7f..=0xff => false,
        b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' => false,
        b']' => resp,
        _ => true,
    }
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { input, at: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    /// Whether the next byte is `b`; it is consumed if so.
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    /// What the grammar wanted at the current offset.
    pub(crate) fn expected(&self, what: &'static str) -> Expected {
        Expected { what, at: self.at }
    }

    /// The bytes from `start` to the current offset.
    pub(crate) fn since(&self, start: usize) -> Vec<u8> {
        self.input.get(start..self.at).unwrap_or_default().to_vec()
    }

    /// The bytes left, line ending included.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.input.get(self.at..).unwrap_or_default()
    }

    pub(crate) fn sp(&mut self) -> Result<(), Expected> {
        if self.eat(b' ') {
            Ok(())
        } else {
            Err(self.expected("a space"))
        }
    }

    /// The bytes for which `keep` holds, from here on (empty when none).
    pub(crate) fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.at += 1;
        }
        self.input.get(start..self.at).unwrap_or_default()
    }

    /// ATOM-CHARs: a command or option name (empty when none).
    pub(crate) fn word(&mut self) -> Vec<u8> {
        self.take_while(|b| atom_char(b, false)).to_vec()
    }

    /// A quoted string at `"`, its content; 8-bit bytes pass (UTF-8
    /// names, RFC 9051 §9).
    pub(crate) fn quoted(&mut self) -> Result<Vec<u8>, Expected> {
        if !self.eat(b'"') {
            return Err(self.expected("\""));
        }
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    match self.peek() {
                        Some(b @ (b'"' | b'\\')) => out.push(b),
                        _ => return Err(self.expected("\\\" or \\\\ in a quoted string")),
                    }
                }
                Some(b'\r' | b'\n' | 0) | None => {
                    return Err(self.expected("the end of the quoted string"))
                }
                Some(b) => out.push(b),
            }
            self.at += 1;
        }
    }

    /// `"{" number ["+"] "}" CRLF *OCTET` (RFC 9051 §9, RFC 7888), its
    /// bytes; a literal8's `~` is the caller's.
    pub(crate) fn literal(&mut self) -> Result<Vec<u8>, Expected> {
        if !self.eat(b'{') {
            return Err(self.expected("{"));
        }
        let digits = self.take_while(|b| b.is_ascii_digit());
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.len() <= 10)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| self.expected("a literal length"))?;
        self.eat(b'+');
        if !self.eat(b'}') {
            return Err(self.expected("}"));
        }
        // why LF alone too: the session accepts bare LF line endings.
        self.eat(b'\r');
        if !self.eat(b'\n') {
            return Err(self.expected("a line end after the literal length"));
        }
        let end = self.at.checked_add(len).filter(|&e| e <= self.input.len());
        let bytes = end
            .and_then(|e| self.input.get(self.at..e))
            .ok_or_else(|| self.expected("the literal's bytes"))?
            .to_vec();
        self.at += len;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_literals() {
        let mut c = Cursor::new(b"\"a\\\"b\" {3}\r\nxyz {2+}\nab");
        assert_eq!(c.quoted().unwrap(), b"a\"b");
        c.sp().unwrap();
        assert_eq!(c.literal().unwrap(), b"xyz");
        c.sp().unwrap();
        assert_eq!(c.literal().unwrap(), b"ab");
        assert_eq!(c.rest(), b"");
    }

    #[test]
    fn broken_input_says_where() {
        for (input, what, at) in [
            (&b"\"abc"[..], "the end of the quoted string", 4),
            (b"\"a\\x\"", "\\\" or \\\\ in a quoted string", 3),
            (b"{99999999999}\r\n", "a literal length", 12),
            (b"{5}\r\nabc", "the literal's bytes", 5),
            (b"{3x", "}", 2),
        ] {
            let mut c = Cursor::new(input);
            let e = if input.starts_with(b"\"") {
                c.quoted().unwrap_err()
            } else {
                c.literal().unwrap_err()
            };
            assert_eq!((e.what, e.at), (what, at), "{input:?}");
        }
    }
}
