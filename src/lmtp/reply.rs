//! Replies on the wire (RFC 5321 §4.2, enhanced status codes RFC 2034 /
//! RFC 3463) and the single place where a peer's protocol fault becomes a
//! reply ([`ProtocolError::reply`]).
//!
//! Formatting never trusts its input: a [`Reply`] may come from a
//! [`Delivery`](super::Delivery) implementation, so a code outside 200–599,
//! a malformed enhanced status or control characters in the text are
//! repaired here rather than put on the wire, and every line is kept under
//! the 512-octet reply-line limit of RFC 5321 §4.5.3.1.5.

/// One SMTP/LMTP reply: code, enhanced status (RFC 3463) and text.
///
/// An empty `status` means "no enhanced status code", as RFC 2034 §3
/// requires for the greeting and the LHLO reply. A `text` with several
/// lines (separated by `\n`) becomes a multi-line reply (RFC 5321 §4.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Three-digit reply code, 200–599.
    pub code: u16,
    /// Enhanced status code such as `"2.1.5"`, or empty.
    pub status: String,
    /// Human-readable text; `\n` separates lines.
    pub text: String,
}

impl Reply {
    /// A reply with `code`, enhanced `status` (e.g. `"2.1.5"`) and `text`.
    pub fn new(code: u16, status: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            code,
            status: status.into(),
            text: text.into(),
        }
    }

    /// Whether this is a positive completion reply (2xx).
    pub fn is_positive(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// Appends the reply in wire form to `out`, repairing what would make
    /// it malformed (see the module docs).
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        let (code, status) = if (200..=599).contains(&self.code) {
            (self.code, self.status.as_str())
        } else {
            // why: a Delivery bug must not put a non-reply on the wire; a
            // temporary failure makes the MTA retry instead of bouncing.
            (451, "4.3.0")
        };
        let status = if status_is_valid(status, code) {
            status
        } else {
            ""
        };
        let mut lines = self.text.split('\n').peekable();
        while let Some(line) = lines.next() {
            let sep = if lines.peek().is_some() { '-' } else { ' ' };
            let mut wire = format!("{code}{sep}");
            if !status.is_empty() {
                wire.push_str(status);
                wire.push(' ');
            }
            push_text(&mut wire, line);
            out.extend_from_slice(wire.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// The reply in wire form.
    #[cfg(test)]
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }
}

/// Longest text we put on one reply line: RFC 5321 §4.5.3.1.5 allows 512
/// octets per reply line including code, status and CRLF.
const MAX_REPLY_TEXT: usize = 480;

fn push_text(wire: &mut String, line: &str) {
    let mut used = 0;
    for c in line.trim_end_matches('\r').chars() {
        used += c.len_utf8();
        if used > MAX_REPLY_TEXT {
            break;
        }
        // why: only printable ASCII is safe in a reply; anything else could
        // forge a line break or confuse a strict client.
        wire.push(if c == ' ' || c.is_ascii_graphic() {
            c
        } else {
            '?'
        });
    }
}

/// `class "." subject "." detail` (RFC 3463 §2), the class matching the
/// reply code's first digit (RFC 2034 §4).
fn status_is_valid(status: &str, code: u16) -> bool {
    let parts: Vec<&str> = status.split('.').collect();
    let numeric = |s: &&str| !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    parts.len() == 3
        && parts.iter().all(numeric)
        && parts.first().and_then(|c| c.parse::<u16>().ok()) == Some(code / 100)
}

/// What the peer did wrong, as opposed to what the mail store decided
/// (those come back from [`Delivery`](super::Delivery) as [`Reply`]s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProtocolError {
    #[error("unknown command; this LMTP server knows LHLO MAIL RCPT DATA RSET NOOP VRFY QUIT")]
    UnknownCommand,
    #[error("command not implemented")]
    NotImplemented,
    #[error("this is an LMTP server (RFC 2033): send LHLO instead of HELO/EHLO")]
    NotLmtp,
    #[error("bad sequence of commands: {0}")]
    BadSequence(&'static str),
    #[error("syntax error: {0}")]
    Syntax(&'static str),
    #[error("bad sender address syntax: {0}")]
    BadSender(&'static str),
    #[error("bad recipient address syntax: {0}")]
    BadRecipient(&'static str),
    #[error("parameter {0} not recognised; this server supports SIZE and BODY on MAIL only")]
    UnknownParameter(String),
    #[error("line too long: command lines are limited to 512 octets (RFC 5321 4.5.3.1.4)")]
    LineTooLong,
    #[error("too many recipients: at most {0} per message; send the rest in a new transaction")]
    TooManyRecipients(usize),
    #[error("message is {size} bytes, over the limit of {limit} bytes; send a smaller message")]
    MessageTooLarge { size: u64, limit: u64 },
    #[error("no valid recipients: every RCPT was refused")]
    NoValidRecipients,
    #[error("too many errors, closing connection")]
    TooManyErrors,
    #[error("idle timeout, closing connection")]
    IdleTimeout,
    #[error("server shutting down, try again later")]
    ShuttingDown,
}

impl ProtocolError {
    /// The one mapping from a peer fault to its wire reply.
    pub(crate) fn reply(&self) -> Reply {
        let (code, status) = match self {
            Self::UnknownCommand => (500, "5.5.2"),
            Self::NotImplemented => (502, "5.5.1"),
            Self::NotLmtp => (500, "5.5.1"),
            Self::BadSequence(_) | Self::NoValidRecipients => (503, "5.5.1"),
            Self::Syntax(_) => (501, "5.5.4"),
            Self::BadSender(_) => (501, "5.1.7"),
            Self::BadRecipient(_) => (501, "5.1.3"),
            Self::UnknownParameter(_) => (555, "5.5.4"),
            Self::LineTooLong => (500, "5.5.6"),
            Self::TooManyRecipients(_) => (452, "4.5.3"),
            Self::MessageTooLarge { .. } => (552, "5.3.4"),
            Self::TooManyErrors => (421, "4.7.0"),
            Self::IdleTimeout => (421, "4.4.2"),
            Self::ShuttingDown => (421, "4.3.2"),
        };
        Reply::new(code, status, self.to_string())
    }

    /// Whether this fault counts towards the consecutive-error limit: a
    /// client that merely sends more recipients than we take is not
    /// misbehaving (RFC 5321 §4.5.3.1.10 expects it to retry the rest).
    pub(crate) fn counts_as_error(&self) -> bool {
        !matches!(
            self,
            Self::TooManyRecipients(_) | Self::MessageTooLarge { .. }
        )
    }
}
