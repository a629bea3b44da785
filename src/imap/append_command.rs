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

use super::scan::{self, atom_char, Expected};

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
    let mut c = Cursor::new(input);
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

/// The shared cursor (`scan`) with the APPEND grammar's own tokens.
type Cursor<'a> = scan::Tokens<'a, AppendSyntaxError>;

impl From<Expected> for AppendSyntaxError {
    fn from(e: Expected) -> Self {
        Self::Expected {
            expected: e.what,
            at: e.at,
        }
    }
}

impl Cursor<'_> {
    /// `astring = 1*ASTRING-CHAR / string`, its content.
    fn astring(&mut self) -> Result<Vec<u8>, AppendSyntaxError> {
        match self.peek() {
            Some(b'"') => Ok(self.quoted()?),
            Some(b'{') => self.literal_of(false),
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

    /// `["~"] "{" number ["+"] "}" CRLF *OCTET` (RFC 9051 §9, RFC 7888,
    /// RFC 3516); the `~` already eaten when `binary`. A NUL is refused
    /// in a plain literal.
    fn literal_of(&mut self, binary: bool) -> Result<Vec<u8>, AppendSyntaxError> {
        let bytes = self.literal()?;
        if !binary && bytes.contains(&0) {
            return Err(AppendSyntaxError::NulInLiteral);
        }
        Ok(bytes)
    }

    /// A literal or literal8: its bytes and whether it was a literal8.
    fn any_literal(&mut self) -> Result<(Vec<u8>, bool), AppendSyntaxError> {
        let binary = self.eat(b'~');
        Ok((self.literal_of(binary)?, binary))
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
        let rest = self.rest();
        rest == b"\r\n" || rest == b"\n"
    }
}

#[cfg(test)]
mod tests;
