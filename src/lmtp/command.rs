//! LMTP command grammar: RFC 5321 §4.1.1 commands with the RFC 2033 §4.1
//! LHLO in place of HELO/EHLO, and the MAIL parameters we advertise, SIZE
//! (RFC 1870) and BODY (RFC 6152).
//!
//! ```text
//! lhlo = "LHLO" SP ( Domain / address-literal ) CRLF
//! mail = "MAIL FROM:" Reverse-path [SP Mail-parameters] CRLF
//! rcpt = "RCPT TO:" Forward-path [SP Rcpt-parameters] CRLF
//! Reverse-path = Path / "<>"
//! Path = "<" [ A-d-l ":" ] Mailbox ">"
//! esmtp-param = esmtp-keyword ["=" esmtp-value]
//! ```
//!
//! Parsing is pure: one line (without its line end) in, a [`Command`] or
//! the [`ProtocolError`] to answer with out. Two leniencies that real
//! clients need: verbs are case-insensitive, and a space after `FROM:` /
//! `TO:` is accepted.

use super::reply::ProtocolError;

/// Longest path, brackets included (RFC 5321 §4.5.3.1.3).
const MAX_PATH_OCTETS: usize = 256;

/// The value of `BODY=` (RFC 6152 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    SevenBit,
    EightBitMime,
}

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Command {
    Lhlo(String),
    Mail {
        from: String,
        size: Option<u64>,
        body: Option<Body>,
    },
    Rcpt(String),
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy,
}

impl Command {
    /// Parses one command line, its CRLF / LF already removed.
    pub(crate) fn parse(line: &[u8]) -> Result<Self, ProtocolError> {
        let (verb, rest) = match line.iter().position(|&b| b == b' ') {
            Some(i) => (line.get(..i).unwrap_or_default(), line.get(i + 1..)),
            None => (line, None),
        };
        let rest = match rest {
            None => None,
            Some(r) if r.is_ascii() => std::str::from_utf8(r).ok(),
            Some(_) => return Err(ProtocolError::Syntax("command arguments must be ASCII")),
        };
        let verb = verb.to_ascii_uppercase();
        match (verb.as_slice(), rest) {
            (b"LHLO", Some(arg)) if !arg.trim().is_empty() => Ok(Self::Lhlo(arg.trim().to_owned())),
            (b"LHLO", _) => Err(ProtocolError::Syntax("LHLO needs the client's host name")),
            (b"HELO" | b"EHLO", _) => Err(ProtocolError::NotLmtp),
            (b"MAIL", arg) => parse_mail(arg.unwrap_or_default()),
            (b"RCPT", arg) => parse_rcpt(arg.unwrap_or_default()),
            (b"DATA", None) => Ok(Self::Data),
            (b"RSET", None) => Ok(Self::Rset),
            (b"QUIT", None) => Ok(Self::Quit),
            (b"DATA" | b"RSET" | b"QUIT", Some(_)) => {
                Err(ProtocolError::Syntax("this command takes no arguments"))
            }
            // why: RFC 5321 §4.1.1.9 says a NOOP argument is ignored.
            (b"NOOP", _) => Ok(Self::Noop),
            (b"VRFY", Some(arg)) if !arg.trim().is_empty() => Ok(Self::Vrfy),
            (b"VRFY", _) => Err(ProtocolError::Syntax("VRFY needs an argument")),
            (b"EXPN" | b"HELP" | b"TURN" | b"ETRN" | b"BDAT" | b"STARTTLS" | b"AUTH", _) => {
                Err(ProtocolError::NotImplemented)
            }
            _ => Err(ProtocolError::UnknownCommand),
        }
    }

    /// The command as a client would send it, without CRLF; the inverse of
    /// [`Command::parse`] (used by the round-trip property tests).
    #[cfg(test)]
    pub(crate) fn to_line(&self) -> String {
        match self {
            Self::Lhlo(domain) => format!("LHLO {domain}"),
            Self::Mail { from, size, body } => {
                let mut line = format!("MAIL FROM:<{from}>");
                if let Some(size) = size {
                    line.push_str(&format!(" SIZE={size}"));
                }
                match body {
                    Some(Body::SevenBit) => line.push_str(" BODY=7BIT"),
                    Some(Body::EightBitMime) => line.push_str(" BODY=8BITMIME"),
                    None => {}
                }
                line
            }
            Self::Rcpt(to) => format!("RCPT TO:<{to}>"),
            Self::Data => "DATA".into(),
            Self::Rset => "RSET".into(),
            Self::Noop => "NOOP".into(),
            Self::Quit => "QUIT".into(),
            Self::Vrfy => "VRFY postmaster".into(),
        }
    }
}

fn parse_mail(arg: &str) -> Result<Command, ProtocolError> {
    let rest = strip_prefix_ci(arg, "FROM:")
        .ok_or(ProtocolError::Syntax("expected MAIL FROM:<address>"))?;
    let (from, params) = split_path(rest).map_err(ProtocolError::BadSender)?;
    if !from.is_empty() && !from.contains('@') {
        return Err(ProtocolError::BadSender("expected local-part@domain or <>"));
    }
    let (mut size, mut body) = (None, None);
    for param in params.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match key.to_ascii_uppercase().as_str() {
            "SIZE" => size = Some(parse_size(value)?),
            "BODY" => body = Some(parse_body(value)?),
            _ => return Err(ProtocolError::UnknownParameter(key.to_ascii_uppercase())),
        }
    }
    Ok(Command::Mail { from, size, body })
}

fn parse_rcpt(arg: &str) -> Result<Command, ProtocolError> {
    let rest =
        strip_prefix_ci(arg, "TO:").ok_or(ProtocolError::Syntax("expected RCPT TO:<address>"))?;
    let (to, params) = split_path(rest).map_err(ProtocolError::BadRecipient)?;
    if to.is_empty() {
        return Err(ProtocolError::BadRecipient(
            "the null path <> is not a recipient",
        ));
    }
    if let Some(param) = params.split(' ').find(|p| !p.is_empty()) {
        let key = param.split_once('=').map_or(param, |(k, _)| k);
        return Err(ProtocolError::UnknownParameter(key.to_ascii_uppercase()));
    }
    Ok(Command::Rcpt(to))
}

/// `SIZE=` value: 1*20DIGIT (RFC 1870 §4), within u64.
fn parse_size(value: &str) -> Result<u64, ProtocolError> {
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ProtocolError::Syntax("SIZE takes a decimal byte count"));
    }
    value
        .parse()
        .map_err(|_| ProtocolError::Syntax("SIZE value out of range"))
}

fn parse_body(value: &str) -> Result<Body, ProtocolError> {
    match value.to_ascii_uppercase().as_str() {
        "7BIT" => Ok(Body::SevenBit),
        "8BITMIME" => Ok(Body::EightBitMime),
        _ => Err(ProtocolError::Syntax("BODY takes 7BIT or 8BITMIME")),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| {
        s.get(prefix.len()..)
            .unwrap_or_default()
            .trim_start_matches(' ')
    })
}

/// Splits `<path> params` into the mailbox (brackets and any source route
/// removed, RFC 5321 §4.1.1.3 says to ignore it) and the parameter text.
/// A `>` inside a quoted local part does not end the path.
fn split_path(s: &str) -> Result<(String, &str), &'static str> {
    let inner = s
        .strip_prefix('<')
        .ok_or("the address must be in <angle brackets>")?;
    let (mut quoted, mut escaped, mut end) = (false, false, None);
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ' ' if !quoted => return Err("space in the address"),
            '>' if !quoted => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or("missing closing >")?;
    let path = inner.get(..end).unwrap_or_default();
    let params = inner.get(end + 1..).unwrap_or_default();
    if !params.is_empty() && !params.starts_with(' ') {
        return Err("expected a space after the address");
    }
    if path.len() + 2 > MAX_PATH_OCTETS {
        return Err("address longer than 256 octets (RFC 5321 4.5.3.1.3)");
    }
    if path.bytes().any(|b| b.is_ascii_control()) {
        return Err("control characters in the address");
    }
    let mailbox = match path.strip_prefix('@') {
        Some(route) => route.split_once(':').ok_or("bad source route")?.1,
        None => path,
    };
    Ok((mailbox.to_owned(), params))
}
