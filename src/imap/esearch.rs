//! ESEARCH (RFC 4731): `SEARCH RETURN (MIN MAX COUNT ALL)` and its UID
//! form, answered with `* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n
//! ALL set`; ESORT (RFC 5267 §3): `SORT RETURN (...) (keys) charset
//! criteria`, answered the same way in sort order (MIN and MAX are the
//! first and last message in sort order, ALL lists them in that order);
//! the context options PARTIAL and UPDATE (RFC 5267 §4, options in
//! `return_opts`, live results in `context`).
//!
//! ```abnf
//! search             = "SEARCH" [search-return-opts] SP search-program
//! search-return-opts = SP "RETURN" SP "(" [search-return-opt
//!                      *(SP search-return-opt)] ")"
//! search-return-opt  = "MIN" / "MAX" / "ALL" / "COUNT" / ...
//! sort               = ["UID" SP] "SORT" search-return-opts SP
//!                      sort-criteria SP search-charset SP search-program
//! ```
//!
//! why here: imap-codec 2.0.0-alpha.10 parses SEARCH without RETURN only,
//! (and SORT without RETURN only), so either with RETURN arrives as a
//! message imap-codec refused (whole, literals included).
//! [`refused_search`] takes the return options off the front and hands
//! the rest, rewritten as a plain `tag [UID] SEARCH program` (or `SORT
//! (keys) charset program`), back to imap-codec: the criteria grammar is
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
use imap_next::imap_types::extensions::sort::SortCriterion;
use imap_next::imap_types::search::SearchKey;
use imap_next::imap_types::IntoStatic as _;
use imap_next::server::Error as ProtocolError;
use tracing::{debug_span, Instrument};

use super::condstore::wire_modseq;
use super::error::ImapError;
use super::return_opts::parse_returns;
use super::session::{Done, Session};

pub(crate) use super::return_opts::Returns;

/// A SEARCH with RETURN, its criteria parsed by imap-codec.
#[derive(Debug, Clone)]
pub(crate) struct ExtendedSearch {
    pub(crate) uid: bool,
    pub(crate) returns: Returns,
    pub(crate) charset: Option<String>,
    pub(crate) criteria: Vec<SearchKey<'static>>,
    /// SORT RETURN (ESORT): the sort keys.
    pub(crate) sort: Option<Vec<SortCriterion>>,
}

/// The tag and the parse of a refused message, when it is a SEARCH or
/// SORT with RETURN (`tag SP ["UID" SP] "SEARCH" SP "RETURN" ...`); `None` for
/// anything else (answered as any refused message).
pub(crate) fn refused_search(
    e: &ProtocolError,
) -> Option<(Tag<'static>, Result<ExtendedSearch, String>)> {
    let super::scan::Refused {
        tag,
        command: mut rest,
        ..
    } = super::scan::refused(e)?;
    let parsed = parse_search_return(tag.inner().as_bytes(), &mut rest)?;
    Some((tag, parsed))
}

/// The parse of `rest` (a command after its tag) when it is `["UID" SP]
/// ("SEARCH" / "SORT") SP "RETURN" ...`; `None` for any other command.
pub(crate) fn parse_search_return(
    tag: &[u8],
    rest: &mut &[u8],
) -> Option<Result<ExtendedSearch, String>> {
    let uid = strip_word(rest, b"UID ");
    let sort = if strip_word(rest, b"SEARCH ") {
        false
    } else if strip_word(rest, b"SORT ") {
        true
    } else {
        return None;
    };
    if !strip_word(rest, b"RETURN ") {
        return None;
    }
    Some(parse(tag, uid, sort, rest))
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

/// The return options and criteria after `RETURN ` (of SORT with `sort`).
fn parse(tag: &[u8], uid: bool, sort: bool, rest: &[u8]) -> Result<ExtendedSearch, String> {
    let inner = rest.strip_prefix(b"(").ok_or("expected ( after RETURN")?;
    let close = inner
        .iter()
        .position(|&b| b == b')')
        .ok_or("expected ) after the RETURN options")?;
    let returns = parse_returns(inner.get(..close).unwrap_or_default())?;
    let program = inner
        .get(close + 1..)
        .and_then(|p| p.strip_prefix(b" "))
        .ok_or("expected search criteria after the RETURN options")?;
    let mut plain = tag.to_vec();
    plain.extend_from_slice(match (uid, sort) {
        (true, true) => b" UID SORT ",
        (false, true) => b" SORT ",
        (true, false) => b" UID SEARCH ",
        (false, false) => b" SEARCH ",
    });
    plain.extend_from_slice(program);
    if !plain.ends_with(b"\r\n") {
        // A bare LF end (accepted by the session's relaxed line ends).
        if plain.last() == Some(&b'\n') {
            plain.pop();
        }
        plain.extend_from_slice(b"\r\n");
    }
    let bad = || {
        if sort {
            "invalid sort criteria, charset or search criteria".to_string()
        } else {
            "invalid search criteria".to_string()
        }
    };
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
            sort: None,
        }),
        CommandBody::Sort {
            sort_criteria,
            charset,
            search_criteria,
            ..
        } => Ok(ExtendedSearch {
            uid,
            returns,
            charset: Some(charset.as_ref().to_string()),
            criteria: search_criteria.as_ref().to_vec(),
            sort: Some(sort_criteria.as_ref().to_vec()),
        }),
        _ => Err(bad()),
    }
}

impl Session {
    /// A SEARCH with RETURN that [`refused_search`] parsed: answered as
    /// any command is (span, metrics, OK or NO/BAD with its reason).
    pub(crate) async fn search_extended(
        &mut self,
        tag: Tag<'static>,
        parsed: Result<ExtendedSearch, String>,
    ) {
        let name = match &parsed {
            Ok(cmd) if cmd.sort.is_some() => "SORT",
            _ => "SEARCH",
        };
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = name);
        let started = std::time::Instant::now();
        let result: Result<Done, ImapError> = async {
            let cmd = parsed.map_err(ImapError::syntax)?;
            self.account()?;
            self.check_token().await?;
            if self.selected.is_none() {
                return Err(ImapError::WrongState {
                    command: name,
                    needed: "SELECT or EXAMINE a mailbox first",
                });
            }
            self.esearch(&tag, cmd).await
        }
        .instrument(span.clone())
        .await;
        self.answer(tag, name, started, &span, result);
    }

    async fn esearch(
        &mut self,
        tag: &Tag<'static>,
        cmd: ExtendedSearch,
    ) -> Result<Done, ImapError> {
        if cmd.returns.update {
            self.check_context_tag(tag.inner())?;
        }
        let matched = match cmd.sort.as_deref() {
            Some(keys) => {
                let charset = cmd.charset.as_deref().unwrap_or("UTF-8");
                self.sort_matches(keys, charset, &cmd.criteria, cmd.uid)
                    .await
            }
            None => self
                .search_matches(cmd.charset.as_deref(), &cmd.criteria, cmd.uid)
                .await
                .map(|(mut found, highest)| {
                    found.sort_unstable();
                    found.dedup();
                    (found, highest)
                }),
        };
        let (found, highest) = match matched {
            Ok(m) => m,
            Err(e) => {
                // RFC 5182 §2.1: a failed SEARCH with SAVE empties `$`.
                if cmd.returns.save {
                    self.save(Vec::new());
                }
                return Err(e);
            }
        };
        let r = cmd.returns;
        if r.save {
            self.save_found(&found, r, cmd.uid);
        }
        let done = if cmd.sort.is_some() {
            "SORT completed"
        } else {
            "SEARCH completed"
        };
        if !r.answers() {
            // RFC 5182 §2.4: SAVE alone answers no ESEARCH.
            self.sync(cmd.uid).await?;
            return Ok(Done::ok("SEARCH completed, result saved"));
        }
        // RFC 7162 §3.1.5: MODSEQ of the messages the answer names.
        let modseq = match highest {
            Some(_) => self.highest_named(&found, cmd.returns, cmd.uid),
            None => None,
        };
        let line = esearch_line(tag.inner(), cmd.uid, cmd.returns, &found, modseq);
        self.conn.raw(line.as_bytes());
        if r.update {
            let uids = self.uids_of(&found, cmd.uid);
            self.start_context(tag.inner(), &cmd, uids);
        }
        self.sync(cmd.uid).await?;
        Ok(Done::ok(done))
    }

    /// SAVE (RFC 5182 §2.4): keeps what `found` the answer names as `$`;
    /// with MIN or MAX but neither ALL nor COUNT, only those.
    fn save_found(&mut self, found: &[NonZeroU32], r: Returns, uid: bool) {
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
            found.to_vec()
        };
        let uids = self.uids_of(&kept, uid);
        self.save(uids);
    }

    /// Keeps `uids` as the selection's `$` (RFC 5182).
    fn save(&mut self, mut uids: Vec<NonZeroU32>) {
        uids.sort_unstable();
        uids.dedup();
        if let Some(sel) = self.selected.as_mut() {
            sel.saved = uids;
        }
    }

    /// The UIDs of `found` (sequence numbers unless `uid`), in its order.
    pub(crate) fn uids_of(&self, found: &[NonZeroU32], uid: bool) -> Vec<NonZeroU32> {
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
        } else if let Some(partial) = returns.partial {
            partial.of(found).iter().collect()
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

/// The ESEARCH response line (CRLF included) for `found` (ascending, or
/// in sort order for ESORT).
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
    if let Some(partial) = returns.partial {
        let part = partial.of(found);
        let set = if part.is_empty() {
            "NIL".to_string()
        } else {
            sequence_set(part)
        };
        let _ = write!(line, " PARTIAL ({}:{} {set})", partial.low, partial.high);
    }
    if let Some(modseq) = modseq.filter(|_| !found.is_empty()) {
        let _ = write!(line, " MODSEQ {modseq}");
    }
    line.push_str("\r\n");
    line
}

/// `found` (no repeats) as a sequence set in its order: ascending runs
/// as `a:b` (a sort order stays as it is: `5,3:4,2,1`).
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
            ..Returns::default()
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
        let ok = parse(b"a", false, false, b"() CHARSET UTF-8 SUBJECT x\r\n").unwrap();
        assert!(ok.returns.all && !ok.returns.min);
        assert_eq!(ok.charset.as_deref(), Some("UTF-8"));
        let ok = parse(b"a", true, false, b"(min COUNT) 1:*\n").unwrap();
        assert!(ok.returns.min && ok.returns.count && !ok.returns.all && ok.uid);
        assert!(parse(b"a", false, false, b"(MIN MIN) ALL\r\n").is_err());
        assert!(parse(b"a", false, false, b"(FOO) ALL\r\n").is_err());
        assert!(parse(b"a", false, false, b"(MIN)\r\n").is_err());
        assert!(parse(b"a", false, false, b"(MIN) NOTAKEY\r\n").is_err());
        assert!(parse(b"a", false, false, b"MIN ALL\r\n").is_err());
        assert!(parse(b"a", false, false, b"(MIN) ALL\r\nb NOOP\r\n").is_err());
        let sort = parse(
            b"a",
            true,
            true,
            b"(MIN PARTIAL 4:2) (REVERSE ARRIVAL) us-ascii ALL\r\n",
        )
        .unwrap();
        assert!(sort.uid && sort.returns.min && sort.sort.is_some_and(|k| k.len() == 1));
        assert!(parse(b"a", false, true, b"(MIN) ALL\r\n").is_err());
        assert!(parse(b"a", false, true, b"(MIN) (ARRIVAL) ALL\r\n").is_err());
    }

    #[test]
    fn partial_in_sort_order() {
        let r = Returns {
            partial: super::super::return_opts::Partial::parse(b"1:6").ok(),
            ..Returns::default()
        };
        assert_eq!(
            esearch_line("t", false, r, &nums(&[5, 3, 4, 2, 1]), None),
            "* ESEARCH (TAG \"t\") PARTIAL (1:6 5,3:4,2,1)\r\n"
        );
        assert_eq!(
            esearch_line("t", true, r, &[], None),
            "* ESEARCH (TAG \"t\") UID PARTIAL (1:6 NIL)\r\n"
        );
    }
}
