//! SEARCHRES (RFC 5182): `SEARCH RETURN (SAVE)` keeps the result, and
//! `$` stands for it in a later command's sequence set or search
//! criteria.
//!
//! The saved result is the messages' UIDs, kept on the selection
//! ([`Selected::saved`]), so SELECT, EXAMINE, CLOSE and UNSELECT reset it
//! (RFC 5182 §2.1) and an expunged message drops out of it (§2.2).
//!
//! why a rewrite: imap-codec does not know `$`, so a command that uses
//! it arrives refused (the whole message). [`refused_with_saved`] puts
//! the saved set in place of each `$` token (outside quoted strings and
//! literals): in a UID command the UIDs, in FETCH, STORE, COPY and MOVE
//! the sequence numbers, in SEARCH and SORT criteria the search key
//! `UID set` (`NOT ALL` when the result is empty); then imap-codec parses
//! the command as if the client had written it out. FETCH, STORE, COPY
//! or MOVE (UID or not) on an empty `$` does nothing and answers OK once
//! the rest of the command parses (§2.1: `$` is then the empty set, which
//! IMAP cannot write).

use std::num::NonZeroU32;

use imap_codec::decode::Decoder as _;
use imap_codec::CommandCodec;
use imap_next::imap_types::command::Command;
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::IntoStatic as _;
use imap_next::server::Error as ProtocolError;

use super::esearch::{parse_search_return, sequence_set, ExtendedSearch};
use super::selected::Selected;

/// A refused command that used `$`, rewritten.
pub(crate) enum Rewritten {
    /// Parsed by imap-codec once `$` was replaced: run as any command.
    Command(Command<'static>),
    /// A SEARCH with RETURN (parsed by `esearch`).
    Search(Tag<'static>, Result<ExtendedSearch, String>),
    /// A command on an empty `$` that has nothing to do: tagged OK.
    Empty(Tag<'static>),
    /// Not a valid command even with `$` replaced: tagged BAD.
    Bad(Tag<'static>),
}

/// Whether a refused message uses `$` with a mailbox selected.
pub(crate) fn uses_saved(e: &ProtocolError, sel: Option<&Selected>) -> bool {
    match e {
        ProtocolError::MalformedMessage { discarded_bytes } if sel.is_some() => {
            !dollar_tokens(discarded_bytes.declassify()).is_empty()
        }
        _ => false,
    }
}

/// The rewrite of a refused message that uses `$`, with a mailbox
/// selected; `None` when it has no `$` token (or no tag, or no mailbox
/// is selected: then it is answered as any refused message).
pub(crate) fn refused_with_saved(e: &ProtocolError, sel: Option<&Selected>) -> Option<Rewritten> {
    let ProtocolError::MalformedMessage { discarded_bytes } = e else {
        return None;
    };
    let sel = sel?;
    let bytes = discarded_bytes.declassify();
    let dollars = dollar_tokens(bytes);
    if dollars.is_empty() {
        return None;
    }
    let space = bytes.iter().position(|&b| b == b' ')?;
    let tag = Tag::try_from(bytes.get(..space)?.to_vec()).ok()?;
    let mut words = bytes
        .get(space + 1..)?
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n');
    let first = words.next()?.to_ascii_uppercase();
    let uid = first == b"UID";
    let command = if uid {
        words.next()?.to_ascii_uppercase()
    } else {
        first
    };
    let search = command == b"SEARCH" || command == b"SORT";
    let uids: Vec<NonZeroU32> = sel
        .saved
        .iter()
        .copied()
        .filter(|u| sel.messages.binary_search_by_key(u, |k| k.uid.0).is_ok())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() + 64);
    let mut from = 0;
    let mut empty = false;
    for at in dollars {
        let replacement = if search {
            // A `UID $` key becomes the whole key.
            let before = bytes.get(..at).unwrap_or_default();
            let keyed = before.len() >= 4
                && before
                    .get(before.len() - 4..)
                    .is_some_and(|w| w.eq_ignore_ascii_case(b"UID "));
            let start = if keyed { at - 4 } else { at };
            out.extend_from_slice(bytes.get(from..start).unwrap_or_default());
            if uids.is_empty() {
                "NOT ALL".to_string()
            } else {
                format!("UID {}", sequence_set(&uids))
            }
        } else {
            out.extend_from_slice(bytes.get(from..at).unwrap_or_default());
            let numbers: Vec<NonZeroU32> = if uid {
                uids.clone()
            } else {
                uids.iter()
                    .filter_map(|u| {
                        let i = sel.messages.binary_search_by_key(u, |k| k.uid.0).ok()?;
                        Some(Selected::seq(i))
                    })
                    .collect()
            };
            if numbers.is_empty() {
                // A stand-in, so that the rest is still checked.
                empty = true;
                "1".to_string()
            } else {
                sequence_set(&numbers)
            }
        };
        out.extend_from_slice(replacement.as_bytes());
        from = at + 1;
    }
    out.extend_from_slice(bytes.get(from..).unwrap_or_default());
    if search {
        let mut rest = out.get(space + 1..).unwrap_or_default();
        if let Some(parsed) = parse_search_return(bytes.get(..space)?, &mut rest) {
            return Some(Rewritten::Search(tag, parsed));
        }
    }
    if !out.ends_with(b"\r\n") {
        if out.last() == Some(&b'\n') {
            out.pop();
        }
        out.extend_from_slice(b"\r\n");
    }
    match CommandCodec::default().decode(&out) {
        Ok(([], _)) if empty => Some(Rewritten::Empty(tag)),
        Ok(([], command)) => Some(Rewritten::Command(command.into_static())),
        _ => Some(Rewritten::Bad(tag)),
    }
}

/// The offsets of the `$` tokens of `bytes`: a `$` between a space or
/// `(` and a space, `)` or the line end, outside quoted strings and
/// literals.
fn dollar_tokens(bytes: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut quoted = false;
    while let Some(&b) = bytes.get(i) {
        if quoted {
            match b {
                b'\\' => i += 1,
                b'"' => quoted = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'{' => {
                // A literal `{n}` or `{n+}` at a line end: skip its bytes.
                let digits: Vec<u8> = bytes
                    .get(i + 1..)
                    .unwrap_or_default()
                    .iter()
                    .copied()
                    .take_while(u8::is_ascii_digit)
                    .collect();
                let mut j = i + 1 + digits.len();
                if bytes.get(j) == Some(&b'+') {
                    j += 1;
                }
                let closed = !digits.is_empty() && bytes.get(j) == Some(&b'}');
                let n: Option<usize> = std::str::from_utf8(&digits)
                    .ok()
                    .and_then(|d| d.parse().ok());
                if let (true, Some(n)) = (closed, n) {
                    j += 1;
                    if bytes.get(j) == Some(&b'\r') {
                        j += 1;
                    }
                    if bytes.get(j) == Some(&b'\n') {
                        i = j.saturating_add(1).saturating_add(n);
                        continue;
                    }
                }
            }
            b'$' => {
                let before = i.checked_sub(1).and_then(|p| bytes.get(p));
                let after = bytes.get(i + 1);
                if matches!(before, Some(b' ' | b'('))
                    && matches!(after, Some(b' ' | b')' | b'\r' | b'\n'))
                {
                    out.push(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dollar_tokens;

    #[test]
    fn dollars_outside_strings_and_literals() {
        assert_eq!(dollar_tokens(b"a FETCH $ FLAGS\r\n"), vec![8]);
        assert_eq!(dollar_tokens(b"a SEARCH SUBJECT \"$ \" $\r\n"), vec![22]);
        assert_eq!(
            dollar_tokens(b"a SEARCH SUBJECT {3}\r\n $ (OR $ 1)\r\n"),
            vec![29]
        );
        assert_eq!(dollar_tokens(b"a SEARCH $5 x$ \r\n"), Vec::<usize>::new());
    }
}
