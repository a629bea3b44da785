//! Search and sort contexts (RFC 5267 §4, CONTEXT=SEARCH and
//! CONTEXT=SORT): `SEARCH RETURN (UPDATE ...)` and `SORT RETURN (UPDATE
//! ...)` keep their result up to date while the mailbox stays selected,
//! and `CANCELUPDATE "tag"` ends that.
//!
//! A context is its command's criteria and its result as UIDs (in UID
//! order for SEARCH, in sort order for SORT), kept on the selection
//! ([`Selected::contexts`]) so SELECT, EXAMINE, CLOSE and UNSELECT end
//! it. Whenever the session tells its client about changes to the
//! mailbox (`Session::sync`: after commands, on NOOP and during IDLE)
//! and the mailbox changed, each context's search runs again and the
//! difference goes out as
//!
//! ```text
//! * ESEARCH (TAG "t") [UID] REMOVEFROM (pos set)   before the EXPUNGEs
//! * ESEARCH (TAG "t") [UID] ADDTO (pos set)        after EXISTS
//! ```
//!
//! so a sequence number in REMOVEFROM is the one the client knows until
//! the EXPUNGE that follows, and one in ADDTO is already counted by
//! EXISTS. A SEARCH context's position is 0 (the result is in mailbox
//! order, the client places the messages itself, as Dovecot does); a SORT
//! context names each message with its position: REMOVEFROM in
//! decreasing position in the old result, ADDTO in increasing position in
//! the new one, so that each pair is valid when the client applies it in
//! order (sort keys never change once a message is stored, so the
//! messages that stay keep their order).
//!
//! Rerunning costs a search per context per change, so a session keeps at
//! most [`MAX_CONTEXTS`]: the one more answers its result as usual with
//! `* NO [NOUPDATE "tag"]` (no updates will follow). So does a search
//! with a MODSEQ criterion (its result would change with every flag
//! change, and answering it needs a sync of its own), and a context whose
//! rerun fails is ended the same way.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::Pin;

use imap_next::imap_types::core::Tag;
use imap_next::imap_types::extensions::sort::SortCriterion;
use imap_next::imap_types::search::SearchKey;
use imap_next::server::Error as ProtocolError;
use tracing::{debug_span, Instrument};

use super::error::ImapError;
use super::esearch::{sequence_set, ExtendedSearch};
use super::selected::Selected;
use super::session::{Done, Session};

/// Most contexts with UPDATE one session keeps at a time (Dovecot keeps
/// 10 too).
pub(crate) const MAX_CONTEXTS: usize = 10;

/// One live search or sort.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The tag of the command that made it (its correlator).
    pub(crate) tag: String,
    /// UID SEARCH / UID SORT: updates name UIDs.
    uid: bool,
    charset: Option<String>,
    criteria: Vec<SearchKey<'static>>,
    sort: Option<Vec<SortCriterion>>,
    /// The result the client knows, as UIDs (UID order, or sort order).
    result: Vec<NonZeroU32>,
}

/// A future boxed to break the cycle sync → update → search → sync.
type Rerun<'a> = Pin<Box<dyn Future<Output = Result<Vec<NonZeroU32>, ImapError>> + Send + 'a>>;

impl Session {
    /// BAD when `tag` already names a live context (RFC 5267 §4.3: tags
    /// must not be reused).
    pub(crate) fn check_context_tag(&self, tag: &str) -> Result<(), ImapError> {
        let known = self
            .selected
            .as_ref()
            .is_some_and(|sel| sel.contexts.iter().any(|c| c.tag == tag));
        if known {
            return Err(ImapError::syntax(format!(
                "tag {tag} already names a search context; use a new tag"
            )));
        }
        Ok(())
    }

    /// Keeps the context of `cmd` (its result: `uids`), or says
    /// NOUPDATE when it cannot be kept.
    pub(crate) fn start_context(&mut self, tag: &str, cmd: &ExtendedSearch, uids: Vec<NonZeroU32>) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let refused = if cmd.criteria.iter().any(super::search::has_modseq) {
            Some("no updates for a search with MODSEQ")
        } else if sel.contexts.len() >= MAX_CONTEXTS {
            Some("too many search contexts with UPDATE (at most 10); CANCELUPDATE one first")
        } else {
            None
        };
        if let Some(text) = refused {
            self.conn.raw(noupdate(tag, text).as_bytes());
            return;
        }
        sel.contexts.push(Context {
            tag: tag.to_string(),
            uid: cmd.uid,
            charset: cmd.charset.clone(),
            criteria: cmd.criteria.clone(),
            sort: cmd.sort.clone(),
            result: uids,
        });
    }

    /// Before a sync changes the snapshot: its UIDs, when a context
    /// needs them for the sequence numbers of REMOVEFROM.
    pub(crate) fn context_before(&self) -> Option<Vec<NonZeroU32>> {
        let sel = self.selected.as_ref()?;
        if sel.contexts.is_empty() {
            return None;
        }
        Some(sel.messages.iter().map(|k| k.uid.0).collect())
    }

    /// After a sync changed the snapshot (`before`: its UIDs until then):
    /// the ESEARCH lines to send before the sync's responses (REMOVEFROM,
    /// NOUPDATE) and after them (ADDTO).
    pub(crate) async fn context_updates(
        &mut self,
        before: Option<Vec<NonZeroU32>>,
    ) -> (Vec<u8>, Vec<u8>) {
        let mut early = String::new();
        let mut late = String::new();
        let Some(before) = before else {
            return (Vec::new(), Vec::new());
        };
        let contexts = match self.selected.as_mut() {
            Some(sel) => std::mem::take(&mut sel.contexts),
            None => return (Vec::new(), Vec::new()),
        };
        let mut kept = Vec::with_capacity(contexts.len());
        for mut c in contexts {
            match self.rerun(&c).await {
                Ok(now) => {
                    if let Some(sel) = self.selected.as_ref() {
                        report(&c, &now, &before, sel, &mut early, &mut late);
                    }
                    c.result = now;
                    kept.push(c);
                }
                Err(e) => {
                    let text = format!("search context ended: {e}");
                    early.push_str(&noupdate(&c.tag, &text));
                }
            }
        }
        if let Some(sel) = self.selected.as_mut() {
            sel.contexts = kept;
        }
        (early.into_bytes(), late.into_bytes())
    }

    /// The context's result now, as UIDs.
    fn rerun<'a>(&'a mut self, c: &'a Context) -> Rerun<'a> {
        Box::pin(async move {
            match c.sort.as_deref() {
                Some(keys) => {
                    let charset = c.charset.as_deref().unwrap_or("UTF-8");
                    let (found, _) = self.sort_matches(keys, charset, &c.criteria, true).await?;
                    Ok(found)
                }
                None => {
                    let (mut found, _) = self
                        .search_matches(c.charset.as_deref(), &c.criteria, true)
                        .await?;
                    found.sort_unstable();
                    found.dedup();
                    Ok(found)
                }
            }
        })
    }

    /// CANCELUPDATE (RFC 5267 §4.3.5), parsed by [`refused_cancel_update`].
    pub(crate) async fn cancel_update(
        &mut self,
        tag: Tag<'static>,
        parsed: Result<Vec<String>, String>,
    ) {
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = "CANCELUPDATE");
        let started = std::time::Instant::now();
        let result: Result<Done, ImapError> = async {
            let tags = parsed.map_err(ImapError::syntax)?;
            self.account()?;
            self.check_token().await?;
            let sel = self.selected.as_mut().ok_or(ImapError::WrongState {
                command: "CANCELUPDATE",
                needed: "SELECT or EXAMINE a mailbox first",
            })?;
            if let Some(unknown) = tags
                .iter()
                .find(|t| !sel.contexts.iter().any(|c| &c.tag == *t))
            {
                let shown: String = unknown.chars().take(64).collect();
                return Err(ImapError::syntax(format!(
                    "no search context with tag {shown:?}"
                )));
            }
            sel.contexts.retain(|c| !tags.contains(&c.tag));
            Ok(Done::ok("CANCELUPDATE completed"))
        }
        .instrument(span.clone())
        .await;
        self.answer(tag, "CANCELUPDATE", started, &span, result);
    }
}

/// Appends the REMOVEFROM (to `early`) and ADDTO (to `late`) lines that
/// take the client from `c.result` to `now`. `before` is the snapshot's
/// UIDs until this sync, `sel` the snapshot after it.
fn report(
    c: &Context,
    now: &[NonZeroU32],
    before: &[NonZeroU32],
    sel: &Selected,
    early: &mut String,
    late: &mut String,
) {
    let old_set: HashSet<NonZeroU32> = c.result.iter().copied().collect();
    let new_set: HashSet<NonZeroU32> = now.iter().copied().collect();
    let number = |uid: NonZeroU32, within: &[NonZeroU32]| -> Option<NonZeroU32> {
        if c.uid {
            return Some(uid);
        }
        let i = within.binary_search(&uid).ok()?;
        Some(Selected::seq(i))
    };
    let after: Vec<NonZeroU32> = sel.messages.iter().map(|k| k.uid.0).collect();
    // (position, number) of each message that left and that came.
    let mut removed: Vec<(usize, NonZeroU32)> = c
        .result
        .iter()
        .enumerate()
        .filter(|(_, u)| !new_set.contains(u))
        .filter_map(|(i, &u)| Some((i + 1, number(u, before)?)))
        .collect();
    let added: Vec<(usize, NonZeroU32)> = now
        .iter()
        .enumerate()
        .filter(|(_, u)| !old_set.contains(u))
        .filter_map(|(i, &u)| Some((i + 1, number(u, &after)?)))
        .collect();
    if c.sort.is_some() {
        removed.reverse();
    }
    let kinds = [("REMOVEFROM", removed, early), ("ADDTO", added, late)];
    for (name, items, out) in kinds {
        if items.is_empty() {
            continue;
        }
        let _ = write!(out, "* ESEARCH (TAG \"{}\")", c.tag);
        if c.uid {
            out.push_str(" UID");
        }
        let pairs = if c.sort.is_some() {
            let each: Vec<String> = items.iter().map(|(p, n)| format!("{p} {n}")).collect();
            each.join(" ")
        } else {
            let mut numbers: Vec<NonZeroU32> = items.iter().map(|(_, n)| *n).collect();
            numbers.sort_unstable();
            format!("0 {}", sequence_set(&numbers))
        };
        let _ = write!(out, " {name} ({pairs})\r\n");
    }
}

/// `* NO [NOUPDATE "tag"] text` (RFC 5267 §4.3.4).
fn noupdate(tag: &str, text: &str) -> String {
    format!("* NO [NOUPDATE \"{tag}\"] {text}\r\n")
}

/// The tag and the parse of a refused message, when it is a CANCELUPDATE
/// (`tag SP "CANCELUPDATE" 1*(SP quoted) CRLF`); `None` for anything else.
pub(crate) fn refused_cancel_update(
    e: &ProtocolError,
) -> Option<(Tag<'static>, Result<Vec<String>, String>)> {
    let super::scan::Refused {
        tag, command: rest, ..
    } = super::scan::refused(e)?;
    let word = b"CANCELUPDATE";
    let head = rest.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let args = rest.get(word.len()..)?;
    if args
        .first()
        .is_some_and(|&b| b != b' ' && b != b'\r' && b != b'\n')
    {
        return None;
    }
    Some((tag, parse_tags(args)))
}

/// `1*(SP quoted)` and the line end.
fn parse_tags(mut rest: &[u8]) -> Result<Vec<String>, String> {
    let mut tags = Vec::new();
    loop {
        match rest {
            b"\r\n" | b"\n" if !tags.is_empty() => return Ok(tags),
            [b' ', b'"', tail @ ..] => {
                let (tag, after) = quoted(tail)?;
                tags.push(tag);
                rest = after;
            }
            _ => return Err("expected CANCELUPDATE followed by quoted tags".to_string()),
        }
    }
}

/// A quoted string's content (after its opening quote) and what follows.
fn quoted(bytes: &[u8]) -> Result<(String, &[u8]), String> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => {
                let text = String::from_utf8(out).map_err(|_| "a tag is not UTF-8")?;
                return Ok((text, bytes.get(i + 1..).unwrap_or_default()));
            }
            b'\\' => {
                out.extend(bytes.get(i + 1));
                i += 2;
            }
            b'\r' | b'\n' => break,
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    Err("unterminated quoted tag".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_update_tags() {
        assert_eq!(
            parse_tags(b" \"A1\" \"b\\\"2\"\r\n").unwrap(),
            vec!["A1".to_string(), "b\"2".to_string()]
        );
        assert!(parse_tags(b"\r\n").is_err());
        assert!(parse_tags(b" A1\r\n").is_err());
        assert!(parse_tags(b" \"A1\r\n").is_err());
        assert!(parse_tags(b" \"A1\" x\r\n").is_err());
    }
}
