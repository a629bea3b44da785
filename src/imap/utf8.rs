//! UTF-8 mailbox names (UTF8=ACCEPT, RFC 6855 §3; IMAP4rev2, RFC 9051
//! §5.1) and APPEND's `UTF8 (~{n}...)` form (RFC 6855 §4).
//!
//! The handlers read names as an IMAP4rev1 client spells them (modified
//! UTF-7, `mailboxes::from_wire`). In a session that enabled UTF-8 names,
//! [`respell`] rewrites each name of a command into modified UTF-7 before
//! a handler sees it: an exact round trip (`mutf7::decode(encode(s)) ==
//! s`), so no handler needs to know the session's mode, and a `&` in a
//! UTF-8 name is a plain `&`. On the way out `mailboxes::wire_name` sends
//! such a session UTF-8 (as quoted strings) and every other session
//! modified UTF-7, so a client that did not enable it never receives an
//! 8-bit byte in a mailbox name.
//!
//! A session without UTF-8 names that sends one as a quoted string gets
//! BAD (RFC 6855 §3: the client must enable UTF8=ACCEPT first). A name
//! sent with 8-bit bytes in a literal is still taken as UTF-8, as before
//! UTF8=ACCEPT existed here. Invalid UTF-8 in a quoted string (overlong
//! forms, surrogates, a lone byte) fails imap-codec's parse: BAD.

use imap_codec::decode::Decoder as _;
use imap_codec::CommandCodec;
use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::core::{AString, IString, Tag};
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox};
use imap_next::imap_types::IntoStatic as _;
use imap_next::server::Error as ProtocolError;
use tracing::{debug_span, Instrument as _};

use super::error::ImapError;
use super::list_command::ListCommand;
use super::mutf7;
use super::session::{Done, Session};

/// The BAD text for a UTF-8 quoted name before ENABLE.
const ENABLE_FIRST: &str = "a mailbox name in UTF-8 needs ENABLE UTF8=ACCEPT first \
     (RFC 6855 section 3); without it, spell the name in modified UTF-7 (RFC 3501 section 5.1.3)";

/// `body` with its mailbox names as the handlers read them: respelled
/// from UTF-8 into modified UTF-7 when `utf8`; otherwise as sent, but a
/// UTF-8 quoted name is refused.
pub(crate) fn respell(
    body: CommandBody<'static>,
    utf8: bool,
) -> Result<CommandBody<'static>, ImapError> {
    let name = |m| {
        if utf8 {
            to_rev1(m)
        } else {
            quoted_utf8_refused(m)
        }
    };
    Ok(match body {
        CommandBody::Create { mailbox } => CommandBody::Create {
            mailbox: name(mailbox)?,
        },
        CommandBody::Delete { mailbox } => CommandBody::Delete {
            mailbox: name(mailbox)?,
        },
        CommandBody::Rename { from, to } => CommandBody::Rename {
            from: name(from)?,
            to: name(to)?,
        },
        CommandBody::Subscribe { mailbox } => CommandBody::Subscribe {
            mailbox: name(mailbox)?,
        },
        CommandBody::Unsubscribe { mailbox } => CommandBody::Unsubscribe {
            mailbox: name(mailbox)?,
        },
        CommandBody::GetQuotaRoot { mailbox } => CommandBody::GetQuotaRoot {
            mailbox: name(mailbox)?,
        },
        // why LIST and LSUB are left alone without UTF-8 names: a UTF-8
        // pattern was matched as UTF-8 before (`list_command`), and a
        // pattern only selects what is listed.
        CommandBody::List {
            reference,
            mailbox_wildcard,
        } if utf8 => CommandBody::List {
            reference: to_rev1(reference)?,
            mailbox_wildcard: pattern_to_rev1(mailbox_wildcard)?,
        },
        CommandBody::Lsub {
            reference,
            mailbox_wildcard,
        } if utf8 => CommandBody::Lsub {
            reference: to_rev1(reference)?,
            mailbox_wildcard: pattern_to_rev1(mailbox_wildcard)?,
        },
        other => respell_with_arguments(other, name)?,
    })
}

/// [`respell`] for the commands with a mailbox and other arguments.
fn respell_with_arguments(
    body: CommandBody<'static>,
    name: impl Fn(Mailbox<'static>) -> Result<Mailbox<'static>, ImapError>,
) -> Result<CommandBody<'static>, ImapError> {
    Ok(match body {
        CommandBody::Select {
            mailbox,
            parameters,
        } => CommandBody::Select {
            mailbox: name(mailbox)?,
            parameters,
        },
        CommandBody::Examine {
            mailbox,
            parameters,
        } => CommandBody::Examine {
            mailbox: name(mailbox)?,
            parameters,
        },
        CommandBody::Status {
            mailbox,
            item_names,
        } => CommandBody::Status {
            mailbox: name(mailbox)?,
            item_names,
        },
        CommandBody::Append {
            mailbox,
            flags,
            date,
            message,
        } => CommandBody::Append {
            mailbox: name(mailbox)?,
            flags,
            date,
            message,
        },
        CommandBody::Copy {
            sequence_set,
            mailbox,
            uid,
        } => CommandBody::Copy {
            sequence_set,
            mailbox: name(mailbox)?,
            uid,
        },
        CommandBody::Move {
            sequence_set,
            mailbox,
            uid,
        } => CommandBody::Move {
            sequence_set,
            mailbox: name(mailbox)?,
            uid,
        },
        other => other,
    })
}

/// An extended LIST's reference and patterns respelled as [`respell`]
/// does (when `utf8`).
pub(crate) fn respell_list(mut cmd: ListCommand, utf8: bool) -> ListCommand {
    if utf8 {
        cmd.reference = bytes_to_rev1(std::mem::take(&mut cmd.reference));
        for p in &mut cmd.patterns {
            *p = bytes_to_rev1(std::mem::take(p));
        }
    }
    cmd
}

/// UTF-8 `bytes` in modified UTF-7; bytes that are not UTF-8 stay as
/// they are, for `mailboxes::from_wire` to refuse with its reason.
fn bytes_to_rev1(bytes: Vec<u8>) -> Vec<u8> {
    match String::from_utf8(bytes) {
        Ok(text) => mutf7::encode(&text).into_bytes(),
        Err(e) => e.into_bytes(),
    }
}

fn to_rev1(mailbox: Mailbox<'static>) -> Result<Mailbox<'static>, ImapError> {
    let Mailbox::Other(other) = mailbox else {
        return Ok(Mailbox::Inbox);
    };
    let respelled = bytes_to_rev1(other.as_ref().to_vec());
    Mailbox::try_from(respelled)
        .map_err(|_| ImapError::syntax("mailbox name cannot be read; send it as a literal"))
}

fn pattern_to_rev1(pattern: ListMailbox<'static>) -> Result<ListMailbox<'static>, ImapError> {
    let bytes = match &pattern {
        ListMailbox::Token(t) => t.as_ref().to_vec(),
        ListMailbox::String(s) => s.as_ref().to_vec(),
    };
    let respelled = String::from_utf8_lossy(&bytes_to_rev1(bytes)).into_owned();
    ListMailbox::try_from(respelled)
        .map_err(|_| ImapError::syntax("LIST pattern cannot be read; send it as a literal"))
}

fn quoted_utf8_refused(mailbox: Mailbox<'static>) -> Result<Mailbox<'static>, ImapError> {
    match &mailbox {
        Mailbox::Other(other)
            if matches!(other.inner(), AString::String(IString::QuotedUtf8(_))) =>
        {
            Err(ImapError::syntax(ENABLE_FIRST))
        }
        _ => Ok(mailbox),
    }
}

/// The literal header of APPEND's UTF8 form, after its mailbox, flags and
/// date (RFC 6855 §4: `append-data =/ "UTF8" SP "(" literal8 ")"`).
const UTF8_DATA: &[u8] = b" UTF8 (~{";

/// Candidate headers tried: the real one is the first unless the name
/// or a flag contains the same bytes; a bound on work for crafted input.
const MAX_CANDIDATES: usize = 4;

/// The tag and parse of a refused message when it is an APPEND with the
/// UTF8 data form; `None` for anything else.
pub(crate) fn refused_append(
    e: &ProtocolError,
) -> Option<(Tag<'static>, Result<CommandBody<'static>, String>)> {
    let super::scan::Refused {
        tag,
        command,
        whole: bytes,
    } = super::scan::refused(e)?;
    let word = command.get(..7)?;
    if !word.eq_ignore_ascii_case(b"APPEND ") || find_ci(bytes, UTF8_DATA).next().is_none() {
        return None;
    }
    Some((tag, parse_append(bytes)))
}

/// `tag APPEND ... UTF8 (~{n}CRLF data)CRLF` as the plain `tag APPEND ...
/// ~{n}CRLF data CRLF` parsed by imap-codec (whose APPEND takes literal8).
fn parse_append(bytes: &[u8]) -> Result<CommandBody<'static>, String> {
    let syntax = || {
        "APPEND syntax: APPEND mailbox [(flags)] [date-time] UTF8 (~{size}CRLF message) \
         (RFC 6855 section 4)"
            .to_string()
    };
    let line = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .ok_or_else(syntax)?;
    let data_end = line.strip_suffix(b")").ok_or_else(syntax)?.len();
    for start in find_ci(line, UTF8_DATA).take(MAX_CANDIDATES) {
        let Some((size, plus, data_at)) = literal8_header(line, start + UTF8_DATA.len()) else {
            continue;
        };
        if data_at.checked_add(size) != Some(data_end) {
            continue;
        }
        let (Some(head), Some(data)) = (line.get(..start), line.get(data_at..data_end)) else {
            continue;
        };
        let mut plain = head.to_vec();
        plain.extend_from_slice(
            format!(" ~{{{size}{}}}\r\n", if plus { "+" } else { "" }).as_bytes(),
        );
        plain.extend_from_slice(data);
        plain.extend_from_slice(b"\r\n");
        if let Ok((rest, command)) = CommandCodec::default().decode(&plain) {
            let body = command.into_static().body;
            if rest.is_empty() && matches!(body, CommandBody::Append { .. }) {
                return Ok(body);
            }
        }
    }
    Err(syntax())
}

/// `n [+] } CRLF` at `at` (after `~{`): the size, whether non-synchronising,
/// and where the data starts.
fn literal8_header(line: &[u8], at: usize) -> Option<(usize, bool, usize)> {
    let rest = line.get(at..)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 10 {
        return None;
    }
    let size: u32 = std::str::from_utf8(rest.get(..digits)?)
        .ok()?
        .parse()
        .ok()?;
    let mut i = digits;
    let plus = rest.get(i) == Some(&b'+');
    i += usize::from(plus);
    let after = rest.get(i..)?;
    let skip = if after.starts_with(b"}\r\n") {
        3
    } else if after.starts_with(b"}\n") {
        2
    } else {
        return None;
    };
    Some((usize::try_from(size).ok()?, plus, at + i + skip))
}

/// Where `needle` occurs in `hay`, ASCII case ignored.
fn find_ci<'h>(hay: &'h [u8], needle: &'h [u8]) -> impl Iterator<Item = usize> + 'h {
    hay.windows(needle.len())
        .enumerate()
        .filter(move |(_, w)| w.eq_ignore_ascii_case(needle))
        .map(|(i, _)| i)
}

impl Session {
    /// APPEND's UTF8 form that [`refused_append`] parsed: only after
    /// UTF-8 was enabled; then run as any APPEND.
    pub(crate) async fn utf8_append(
        &mut self,
        tag: Tag<'static>,
        parsed: Result<CommandBody<'static>, String>,
    ) {
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = "APPEND");
        let started = std::time::Instant::now();
        let result: Result<Done, ImapError> = async {
            let body = parsed.map_err(ImapError::syntax)?;
            self.account()?;
            if !self.enabled.utf8_names() {
                return Err(ImapError::syntax(
                    "APPEND's UTF8 form needs ENABLE UTF8=ACCEPT first (RFC 6855 section 4)",
                ));
            }
            self.dispatch(body).await
        }
        .instrument(span.clone())
        .await;
        self.answer(tag, "APPEND", started, &span, result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(wire: &[u8]) -> Result<Vec<u8>, String> {
        match parse_append(wire)? {
            CommandBody::Append { message, .. } => Ok(match message {
                imap_next::imap_types::extensions::binary::LiteralOrLiteral8::Literal(l) => {
                    l.into_inner().into_owned()
                }
                imap_next::imap_types::extensions::binary::LiteralOrLiteral8::Literal8(l) => {
                    l.data.into_owned()
                }
            }),
            _ => Err("not an APPEND".into()),
        }
    }

    #[test]
    fn utf8_append_forms() {
        assert_eq!(
            append(b"a APPEND INBOX UTF8 (~{5}\r\nhello)\r\n").unwrap(),
            b"hello"
        );
        assert_eq!(
            append(b"a APPEND INBOX (\\Seen) utf8 (~{5+}\r\nh\x00llo)\n").unwrap(),
            b"h\x00llo"
        );
        // The same bytes inside the message do not confuse the parse.
        let msg = b"x UTF8 (~{1}\r\ny";
        let mut wire = format!("a APPEND INBOX UTF8 (~{{{}}}\r\n", msg.len()).into_bytes();
        wire.extend_from_slice(msg);
        wire.extend_from_slice(b")\r\n");
        assert_eq!(append(&wire).unwrap(), msg);
        for bad in [
            &b"a APPEND INBOX UTF8 (~{5}\r\nhello\r\n"[..],
            b"a APPEND INBOX UTF8 (~{9}\r\nhello)\r\n",
            b"a APPEND INBOX UTF8 (~{99999999999}\r\nhello)\r\n",
            b"a APPEND UTF8 (~{5}\r\nhello)\r\n",
            b"a APPEND INBOX UTF8 ({5}\r\nhello)\r\n",
        ] {
            assert!(append(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn names_round_trip_through_the_rev1_spelling() {
        for name in ["Entwürfe", "Tom & Jerry", "Entw&APw-rfe", "日本語/子", "a"] {
            let respelled = bytes_to_rev1(name.as_bytes().to_vec());
            let text = String::from_utf8(respelled).unwrap();
            assert!(text.is_ascii());
            assert_eq!(mutf7::decode(&text).unwrap(), name);
        }
        assert_eq!(bytes_to_rev1(vec![0xff, b'a']), vec![0xff, b'a']);
    }
}
