//! ESEARCH (RFC 4731): `SEARCH RETURN (MIN MAX COUNT ALL)` and its UID
//! form, answered with `* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n
//! ALL set`.
//!
//! ```abnf
//! search             = "SEARCH" [search-return-opts] SP search-program
//! search-return-opts = SP "RETURN" SP "(" [search-return-opt
//!                      *(SP search-return-opt)] ")"
//! search-return-opt  = "MIN" / "MAX" / "ALL" / "COUNT"
//! ```
//!
//! why here: imap-codec 2.0.0-alpha.10 parses SEARCH without RETURN only,
//! so a SEARCH with RETURN arrives as a message imap-codec refused
//! (whole, literals included). [`refused_search`] takes the return
//! options off the front and hands the rest, rewritten as a plain `tag
//! [UID] SEARCH program`, back to imap-codec: the criteria grammar is
//! imap-codec's, not a second one. The ESEARCH line itself is written
//! here ([`esearch_line`]), as imap-codec has no such response.
//!
//! `RETURN ()` means ALL (RFC 4731 §3.1); MIN, MAX and ALL are left out
//! when nothing matched, COUNT is 0 then. With a MODSEQ criterion the
//! answer ends with `MODSEQ n`, the highest MODSEQ of the messages the
//! answer names (RFC 7162 §3.1.5). An option given twice, an unknown
//! option, or criteria imap-codec refuses are a tagged BAD.

use std::fmt::Write as _;
use std::num::{NonZeroU32, NonZeroU64};

use imap_codec::decode::Decoder as _;
use imap_codec::CommandCodec;
use imap_next::imap_types::command::CommandBody;
use imap_next::imap_types::core::Tag;
use imap_next::imap_types::search::SearchKey;
use imap_next::imap_types::IntoStatic as _;
use imap_next::server::Error as ProtocolError;
use tracing::{debug_span, Instrument};

use super::condstore::wire_modseq;
use super::error::ImapError;
use super::session::{Done, Session};

/// What `RETURN (...)` asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Returns {
    pub(crate) min: bool,
    pub(crate) max: bool,
    pub(crate) count: bool,
    pub(crate) all: bool,
    /// SEARCHRES (RFC 5182 §2.4): keep the result for `$`.
    pub(crate) save: bool,
}

/// A SEARCH with RETURN, its criteria parsed by imap-codec.
#[derive(Debug, Clone)]
pub(crate) struct ExtendedSearch {
    pub(crate) uid: bool,
    pub(crate) returns: Returns,
    pub(crate) charset: Option<String>,
    pub(crate) criteria: Vec<SearchKey<'static>>,
}

/// The tag and the parse of a refused message, when it is a SEARCH with
/// RETURN (`tag SP ["UID" SP] "SEARCH" SP "RETURN" ...`); `None` for
/// anything else (answered as any refused message).
pub(crate) fn refused_search(
    e: &ProtocolError,
) -> Option<(Tag<'static>, Result<ExtendedSearch, String>)> {
    let ProtocolError::MalformedMessage { discarded_bytes } = e else {
        return None;
    };
    let bytes = discarded_bytes.declassify();
    let space = bytes.iter().position(|&b| b == b' ')?;
    let tag_bytes = bytes.get(..space)?;
    let tag = Tag::try_from(tag_bytes.to_vec()).ok()?;
    let mut rest = bytes.get(space + 1..)?;
    Some((tag, parse_search_return(tag_bytes, &mut rest)?))
}

/// The parse of `rest` (a command after its tag) when it is `["UID" SP]
/// "SEARCH" SP "RETURN" ...`; `None` for any other command.
pub(crate) fn parse_search_return(
    tag: &[u8],
    rest: &mut &[u8],
) -> Option<Result<ExtendedSearch, String>> {
    let uid = strip_word(rest, b"UID ");
    if !strip_word(rest, b"SEARCH ") || !strip_word(rest, b"RETURN ") {
        return None;
    }
    Some(parse(tag, uid, rest))
}

/// Removes `word` (case-insensitively) from the front of `rest`.
fn strip_word(rest: &mut &[u8], word: &[u8]) -> bool {
    match rest.get(..word.len()) {
        Some(w) if w.eq_ignore_ascii_case(word) => {
            *rest = rest.get(word.len()..).unwrap_or_default();
            true
        }
        _ => false,
    }
}

/// The return options and criteria after `RETURN `.
fn parse(tag: &[u8], uid: bool, rest: &[u8]) -> Result<ExtendedSearch, String> {
    let inner = rest.strip_prefix(b"(").ok_or("expected ( after RETURN")?;
    let close = inner
        .iter()
        .position(|&b| b == b')')
        .ok_or("expected ) after the RETURN options")?;
    let options = inner.get(..close).unwrap_or_default();
    let mut returns = Returns::default();
    if !options.is_empty() {
        for word in options.split(|&b| b == b' ') {
            let flag = match word.to_ascii_uppercase().as_slice() {
                b"MIN" => &mut returns.min,
                b"MAX" => &mut returns.max,
                b"COUNT" => &mut returns.count,
                b"ALL" => &mut returns.all,
                b"SAVE" => &mut returns.save,
                other => {
                    return Err(format!(
                        "unknown RETURN option {} (MIN, MAX, COUNT, ALL, SAVE)",
                        shown(other)
                    ))
                }
            };
            if *flag {
                return Err(format!("RETURN option {} given twice", shown(word)));
            }
            *flag = true;
        }
    }
    // RFC 4731 §3.1: an empty list means ALL.
    if returns == Returns::default() {
        returns.all = true;
    }
    let program = inner
        .get(close + 1..)
        .and_then(|p| p.strip_prefix(b" "))
        .ok_or("expected search criteria after the RETURN options")?;
    let mut plain = tag.to_vec();
    plain.extend_from_slice(if uid { b" UID SEARCH " } else { b" SEARCH " });
    plain.extend_from_slice(program);
    if !plain.ends_with(b"\r\n") {
        // A bare LF end (accepted by the session's relaxed line ends).
        if plain.last() == Some(&b'\n') {
            plain.pop();
        }
        plain.extend_from_slice(b"\r\n");
    }
    let bad = || "invalid search criteria".to_string();
    let (remainder, command) = CommandCodec::default().decode(&plain).map_err(|_| bad())?;
    if !remainder.is_empty() {
        return Err(bad());
    }
    match command.into_static().body {
        CommandBody::Search {
            charset, criteria, ..
        } => Ok(ExtendedSearch {
            uid,
            returns,
            charset: charset.map(|c| c.as_ref().to_string()),
            criteria: criteria.as_ref().to_vec(),
        }),
        _ => Err(bad()),
    }
}

/// A word of the command for an error text, cut short.
fn shown(word: &[u8]) -> String {
    let word = word.get(..32).unwrap_or(word);
    String::from_utf8_lossy(word).into_owned()
}

impl Session {
    /// A SEARCH with RETURN that [`refused_search`] parsed: answered as
    /// any command is (span, metrics, OK or NO/BAD with its reason).
    pub(crate) async fn search_extended(
        &mut self,
        tag: Tag<'static>,
        parsed: Result<ExtendedSearch, String>,
    ) {
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = "SEARCH");
        let started = std::time::Instant::now();
        let result: Result<Done, ImapError> = async {
            let cmd = parsed.map_err(ImapError::syntax)?;
            self.account()?;
            self.check_token().await?;
            if self.selected.is_none() {
                return Err(ImapError::WrongState {
                    command: "SEARCH",
                    needed: "SELECT or EXAMINE a mailbox first",
                });
            }
            self.esearch(&tag, cmd).await
        }
        .instrument(span.clone())
        .await;
        self.answer(tag, "SEARCH", started, &span, result);
    }

    async fn esearch(
        &mut self,
        tag: &Tag<'static>,
        cmd: ExtendedSearch,
    ) -> Result<Done, ImapError> {
        let matched = self
            .search_matches(cmd.charset.as_deref(), &cmd.criteria, cmd.uid)
            .await;
        let (mut found, highest) = match matched {
            Ok(m) => m,
            Err(e) => {
                // RFC 5182 §2.1: a failed SEARCH with SAVE empties `$`.
                if cmd.returns.save {
                    self.save(Vec::new());
                }
                return Err(e);
            }
        };
        found.sort_unstable();
        found.dedup();
        if cmd.returns.save {
            let r = cmd.returns;
            // RFC 5182 §2.4: with MIN or MAX but neither ALL nor COUNT,
            // only those are kept.
            let kept: Vec<NonZeroU32> = if (r.min || r.max) && !(r.all || r.count) {
                let mut v: Vec<NonZeroU32> = Vec::new();
                if r.min {
                    v.extend(found.first());
                }
                if r.max {
                    v.extend(found.last());
                }
                v
            } else {
                found.clone()
            };
            let uids = self.uids_of(&kept, cmd.uid);
            self.save(uids);
            // RFC 5182 §2.4: SAVE alone answers no ESEARCH.
            if !(r.min || r.max || r.all || r.count) {
                self.sync(cmd.uid).await?;
                return Ok(Done::ok("SEARCH completed, result saved"));
            }
        }
        // RFC 7162 §3.1.5: MODSEQ of the messages the answer names.
        let modseq = match highest {
            Some(_) => self.highest_named(&found, cmd.returns, cmd.uid),
            None => None,
        };
        let line = esearch_line(tag.inner(), cmd.uid, cmd.returns, &found, modseq);
        self.conn.raw(line.as_bytes());
        self.sync(cmd.uid).await?;
        Ok(Done::ok("SEARCH completed"))
    }

    /// Keeps `uids` as the selection's `$` (RFC 5182).
    fn save(&mut self, mut uids: Vec<NonZeroU32>) {
        uids.sort_unstable();
        uids.dedup();
        if let Some(sel) = self.selected.as_mut() {
            sel.saved = uids;
        }
    }

    /// The UIDs of `found` (sequence numbers unless `uid`).
    fn uids_of(&self, found: &[NonZeroU32], uid: bool) -> Vec<NonZeroU32> {
        if uid {
            return found.to_vec();
        }
        let Some(sel) = self.selected.as_ref() else {
            return Vec::new();
        };
        found
            .iter()
            .filter_map(|n| {
                let i = usize::try_from(n.get()).ok()?.checked_sub(1)?;
                sel.messages.get(i).map(|k| k.uid.0)
            })
            .collect()
    }

    /// The highest MODSEQ among the messages an ESEARCH answer names:
    /// all of them with ALL or COUNT, else the MIN and MAX ones.
    fn highest_named(
        &self,
        found: &[NonZeroU32],
        returns: Returns,
        uid: bool,
    ) -> Option<NonZeroU64> {
        let sel = self.selected.as_ref()?;
        let modseq = |n: &NonZeroU32| {
            let known = if uid {
                let at = sel.messages.binary_search_by_key(n, |k| k.uid.0).ok()?;
                sel.messages.get(at)?
            } else {
                sel.messages
                    .get(usize::try_from(n.get()).ok()?.checked_sub(1)?)?
            };
            Some(known.modseq)
        };
        let named: Vec<&NonZeroU32> = if returns.all || returns.count {
            found.iter().collect()
        } else {
            let mut v = Vec::new();
            if returns.min {
                v.extend(found.first());
            }
            if returns.max {
                v.extend(found.last());
            }
            v
        };
        named.into_iter().filter_map(modseq).max().map(wire_modseq)
    }
}

/// The ESEARCH response line (CRLF included) for `found` (ascending).
pub(crate) fn esearch_line(
    tag: &str,
    uid: bool,
    returns: Returns,
    found: &[NonZeroU32],
    modseq: Option<NonZeroU64>,
) -> String {
    // A tag has no quote or backslash (RFC 9051 §9 tag), so it is quoted
    // as it is.
    let mut line = format!("* ESEARCH (TAG \"{tag}\")");
    if uid {
        line.push_str(" UID");
    }
    if let (Some(min), Some(max)) = (found.first(), found.last()) {
        if returns.min {
            let _ = write!(line, " MIN {min}");
        }
        if returns.max {
            let _ = write!(line, " MAX {max}");
        }
    }
    if returns.count {
        let _ = write!(line, " COUNT {}", found.len());
    }
    if returns.all && !found.is_empty() {
        let _ = write!(line, " ALL {}", sequence_set(found));
    }
    if let Some(modseq) = modseq.filter(|_| !found.is_empty()) {
        let _ = write!(line, " MODSEQ {modseq}");
    }
    line.push_str("\r\n");
    line
}

/// `found` (ascending, no repeats) as a sequence set: runs as `a:b`.
pub(crate) fn sequence_set(found: &[NonZeroU32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while let Some(&start) = found.get(i) {
        let mut end = start;
        while let Some(&next) = found.get(i + 1) {
            if next.get() != end.get().saturating_add(1) {
                break;
            }
            end = next;
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if end == start {
            let _ = write!(out, "{start}");
        } else {
            let _ = write!(out, "{start}:{end}");
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nums(v: &[u32]) -> Vec<NonZeroU32> {
        v.iter().filter_map(|&n| NonZeroU32::new(n)).collect()
    }

    #[test]
    fn sets_are_runs() {
        assert_eq!(sequence_set(&nums(&[1, 2, 3, 5, 7, 8])), "1:3,5,7:8");
        assert_eq!(sequence_set(&nums(&[4])), "4");
        assert_eq!(sequence_set(&[]), "");
    }

    #[test]
    fn lines_follow_rfc_4731() {
        let all = Returns {
            min: true,
            max: true,
            count: true,
            all: true,
            save: false,
        };
        assert_eq!(
            esearch_line("A1", true, all, &nums(&[2, 3, 9]), None),
            "* ESEARCH (TAG \"A1\") UID MIN 2 MAX 9 COUNT 3 ALL 2:3,9\r\n"
        );
        assert_eq!(
            esearch_line("A1", false, all, &[], None),
            "* ESEARCH (TAG \"A1\") COUNT 0\r\n"
        );
    }

    #[test]
    fn return_options_parse() {
        let ok = parse(b"a", false, b"() CHARSET UTF-8 SUBJECT x\r\n").unwrap();
        assert!(ok.returns.all && !ok.returns.min);
        assert_eq!(ok.charset.as_deref(), Some("UTF-8"));
        let ok = parse(b"a", true, b"(min COUNT) 1:*\n").unwrap();
        assert!(ok.returns.min && ok.returns.count && !ok.returns.all && ok.uid);
        assert!(parse(b"a", false, b"(MIN MIN) ALL\r\n").is_err());
        assert!(parse(b"a", false, b"(FOO) ALL\r\n").is_err());
        assert!(parse(b"a", false, b"(MIN)\r\n").is_err());
        assert!(parse(b"a", false, b"(MIN) NOTAKEY\r\n").is_err());
        assert!(parse(b"a", false, b"MIN ALL\r\n").is_err());
        assert!(parse(b"a", false, b"(MIN) ALL\r\nb NOOP\r\n").is_err());
    }
}
