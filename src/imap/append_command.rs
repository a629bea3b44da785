//! The APPEND command with MULTIAPPEND (RFC 3502), CATENATE (RFC 4469)
//! and BINARY's `literal8` (RFC 3516):
//!
//! ```abnf
//! append         = "APPEND" SP mailbox 1*append-message
//! append-message = append-opts SP append-data
//! append-opts    = [SP flag-list] [SP date-time]
//! append-data    = literal / literal8 / "CATENATE" SP "(" cat-part
//!                  *(SP cat-part) ")"
//! cat-part       = "TEXT" SP (literal / literal8) / "URL" SP astring
//! ```
//!
//! why a parser of our own: imap-codec 2.0.0-alpha.10 parses APPEND with
//! exactly one message and no CATENATE, so the session hands an APPEND
//! that imap-codec refused (the whole message, literals included, as
//! imap-next collected it) to [`parse`]. The mailbox and each message's
//! flags and date are kept as sent and handed back to imap-codec
//! ([`AppendMessage::codec_form`]), which validates them as for a plain
//! APPEND. A NUL in a plain literal is refused (RFC 9051 §4.3: only
//! `literal8` may carry one).

/// Messages one APPEND may carry: far above what a client sends at once
/// (a folder upload goes in batches), low enough that a command of
/// empty messages cannot make the server do unbounded work.
pub(crate) const MAX_MESSAGES: usize = 1000;

/// Parts of one CATENATE: RFC 4469 sets no limit; each URL is a store
/// read, so the count is bounded.
pub(crate) const MAX_CATENATE_PARTS: usize = 100;

/// A parsed APPEND command (after the tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppendCommand {
    /// The mailbox as sent: atom, quoted string or literal, verbatim.
    pub(crate) mailbox: Vec<u8>,
    /// The messages, at least one.
    pub(crate) messages: Vec<AppendMessage>,
}

/// One message of an APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppendMessage {
    /// The flag list and date as sent, each followed by a space (empty
    /// when the message had neither).
    pub(crate) options: Vec<u8>,
    /// Its content.
    pub(crate) data: AppendData,
}

/// A message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AppendData {
    /// A literal (`binary`: a `literal8`).
    Literal { bytes: Vec<u8>, binary: bool },
    /// CATENATE's parts, at least one.
    Catenate(Vec<CatPart>),
}

/// One part of a CATENATE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CatPart {
    /// `TEXT` literal (`binary`: a `literal8`).
    Text { bytes: Vec<u8>, binary: bool },
    /// `URL`, as sent (without quotes).
    Url(Vec<u8>),
}

impl AppendMessage {
    /// A plain APPEND of this message's flags and date into `mailbox`
    /// with an empty literal: what imap-codec parses to give them typed.
    pub(crate) fn codec_form(&self, mailbox: &[u8]) -> Vec<u8> {
        let mut out = b"x APPEND ".to_vec();
        out.extend_from_slice(mailbox);
        out.push(b' ');
        out.extend_from_slice(&self.options);
        out.extend_from_slice(b"{0}\r\n\r\n");
        out
    }
}

/// Why an APPEND was refused (answered with BAD).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AppendSyntaxError {
    /// Not an APPEND command at all.
    #[error("not an APPEND command")]
    NotAppend,
    /// The grammar above was not followed.
    #[error("APPEND syntax: expected {expected} at byte {at} (RFC 3502, RFC 4469)")]
    Expected {
        /// What the grammar wanted there.
        expected: &'static str,
        /// Offset in the command.
        at: usize,
    },
    /// A NUL byte in a plain literal.
    #[error("a NUL byte in a literal: send binary content as literal8 (~{{n}}, RFC 3516)")]
    NulInLiteral,
    /// Over [`MAX_MESSAGES`].
    #[error("more than {MAX_MESSAGES} messages in one APPEND; send them in several")]
    TooManyMessages,
    /// Over [`MAX_CATENATE_PARTS`].
    #[error("more than {MAX_CATENATE_PARTS} parts in one CATENATE")]
    TooManyParts,
}

/// Parses `input`, a whole APPEND command after its tag and space (line
/// ending and literals included). Never panics, whatever the bytes.
pub(crate) fn parse(input: &[u8]) -> Result<AppendCommand, AppendSyntaxError> {
    let mut c = Cursor { input, at: 0 };
    if !c.word().eq_ignore_ascii_case(b"APPEND") {
        return Err(AppendSyntaxError::NotAppend);
    }
    c.sp()?;
    let start = c.at;
    c.astring()?;
    let mailbox = c.since(start);
    let mut messages = Vec::new();
    loop {
        if messages.len() == MAX_MESSAGES {
            return Err(AppendSyntaxError::TooManyMessages);
        }
        c.sp()?;
        let start = c.at;
        if c.peek() == Some(b'(') {
            c.flag_list()?;
            c.sp()?;
        }
        if c.peek() == Some(b'"') {
            c.quoted()?;
            c.sp()?;
        }
        let options = c.since(start);
        let data = c.append_data()?;
        messages.push(AppendMessage { options, data });
        if c.line_end() {
            return Ok(AppendCommand { mailbox, messages });
        }
    }
}

struct Cursor<'a> {
    input: &'a [u8],
    at: usize,
}

/// RFC 9051 §9 ATOM-CHAR, plus `]` (ASTRING-CHAR) when `resp` is set.
fn atom_char(b: u8, resp: bool) -> bool {
    match b {
        0..=0x1f | 0x7f..=0xff => false,
        b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' => false,
        b']' => resp,
        _ => true,
    }
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.input.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn since(&self, start: usize) -> Vec<u8> {
        self.input.get(start..self.at).unwrap_or_default().to_vec()
    }

    fn expected(&self, expected: &'static str) -> AppendSyntaxError {
        AppendSyntaxError::Expected {
            expected,
            at: self.at,
        }
    }

    fn sp(&mut self) -> Result<(), AppendSyntaxError> {
        if self.eat(b' ') {
            Ok(())
        } else {
            Err(self.expected("a space"))
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.at += 1;
        }
        self.input.get(start..self.at).unwrap_or_default()
    }

    fn word(&mut self) -> Vec<u8> {
        self.take_while(|b| atom_char(b, false)).to_vec()
    }

    /// `astring = 1*ASTRING-CHAR / string`, its content.
    fn astring(&mut self) -> Result<Vec<u8>, AppendSyntaxError> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(false),
            _ => {
                let atom = self.take_while(|b| atom_char(b, true)).to_vec();
                if atom.is_empty() {
                    return Err(self.expected("a mailbox name or URL"));
                }
                Ok(atom)
            }
        }
    }

    /// `"(" [flag *(SP flag)] ")"`, checked only for its characters
    /// here (imap-codec checks each flag).
    fn flag_list(&mut self) -> Result<(), AppendSyntaxError> {
        self.at += 1;
        self.take_while(|b| atom_char(b, false) || b == b'\\' || b == b' ' || b == b'*');
        if self.eat(b')') {
            Ok(())
        } else {
            Err(self.expected("a flag or ) ending the flag list"))
        }
    }

    /// A quoted string; 8-bit bytes pass.
    fn quoted(&mut self) -> Result<Vec<u8>, AppendSyntaxError> {
        self.at += 1;
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

    /// `["~"] "{" number ["+"] "}" CRLF *OCTET` (RFC 9051 §9, RFC 7888,
    /// RFC 3516); the `~` already eaten when `binary`.
    fn literal(&mut self, binary: bool) -> Result<Vec<u8>, AppendSyntaxError> {
        if !self.eat(b'{') {
            return Err(self.expected("{"));
        }
        let digits = self.take_while(|b| b.is_ascii_digit());
        let len: Option<usize> = std::str::from_utf8(digits)
            .ok()
            .filter(|d| !d.is_empty() && d.len() <= 10)
            .and_then(|d| d.parse().ok());
        let len = len.ok_or_else(|| self.expected("a literal length"))?;
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
        if !binary && bytes.contains(&0) {
            return Err(AppendSyntaxError::NulInLiteral);
        }
        self.at += len;
        Ok(bytes)
    }

    /// A literal or literal8: its bytes and whether it was a literal8.
    fn any_literal(&mut self) -> Result<(Vec<u8>, bool), AppendSyntaxError> {
        let binary = self.eat(b'~');
        Ok((self.literal(binary)?, binary))
    }

    fn append_data(&mut self) -> Result<AppendData, AppendSyntaxError> {
        if matches!(self.peek(), Some(b'{' | b'~')) {
            let (bytes, binary) = self.any_literal()?;
            return Ok(AppendData::Literal { bytes, binary });
        }
        if !self.word().eq_ignore_ascii_case(b"CATENATE") {
            return Err(self.expected("a literal or CATENATE"));
        }
        self.sp()?;
        if !self.eat(b'(') {
            return Err(self.expected("( opening the CATENATE parts"));
        }
        let mut parts = Vec::new();
        loop {
            if parts.len() == MAX_CATENATE_PARTS {
                return Err(AppendSyntaxError::TooManyParts);
            }
            parts.push(self.cat_part()?);
            if self.eat(b')') {
                return Ok(AppendData::Catenate(parts));
            }
            self.sp()?;
        }
    }

    fn cat_part(&mut self) -> Result<CatPart, AppendSyntaxError> {
        let word = self.word().to_ascii_uppercase();
        match word.as_slice() {
            b"TEXT" => {
                self.sp()?;
                let (bytes, binary) = self.any_literal()?;
                Ok(CatPart::Text { bytes, binary })
            }
            b"URL" => {
                self.sp()?;
                Ok(CatPart::Url(self.astring()?))
            }
            _ => Err(self.expected("TEXT or URL")),
        }
    }

    /// Whether the command ends here (CRLF or LF, then nothing).
    fn line_end(&mut self) -> bool {
        let rest = self.input.get(self.at..).unwrap_or_default();
        rest == b"\r\n" || rest == b"\n"
    }
}

#[cfg(test)]
mod tests;
