//! SEARCH and UID SEARCH (RFC 9051 §6.4.4).
//!
//! Flags, dates, sizes, UIDs and sequence numbers are answered from the
//! snapshot; FROM, TO, CC, SUBJECT and the `Date:` of SENT* from the clear
//! header fields the store indexed. HEADER, BCC, BODY and TEXT read the
//! stored message: headers are clear also on encrypted messages, but the
//! body of an encrypted message is ciphertext, so BODY and TEXT honestly
//! match nothing there (the server cannot read it, by design).
//! Substring matches are case-insensitive (ASCII).

use std::num::NonZeroU32;

use imap_next::imap_types::response::Data;
use imap_next::imap_types::search::SearchKey;

use super::dates::{day_start, header_date, DAY_SECONDS};
use super::error::ImapError;
use super::selected::{contains, Selected};
use super::session::{Done, Session};
use crate::smime::Split;
use crate::store::Message;

/// Messages whose bytes are loaded per store call while searching content.
const SEARCH_BATCH: usize = 256;

/// One message as a search sees it.
struct Candidate<'a> {
    msg: &'a Message,
    seq: u32,
    raw: Option<&'a [u8]>,
    largest_seq: NonZeroU32,
    largest_uid: NonZeroU32,
}

impl Session {
    /// SEARCH / UID SEARCH.
    pub(crate) async fn search(
        &mut self,
        criteria: &[SearchKey<'static>],
        uid: bool,
    ) -> Result<Done, ImapError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Done::ok("SEARCH completed"));
        };
        let content = criteria.iter().any(needs_content);
        let count = sel.messages.len();
        let largest_seq = Selected::seq(count.saturating_sub(1));
        let largest_uid = sel.messages.last().map_or(NonZeroU32::MIN, |m| m.uid.0);
        let mut found = Vec::new();
        let all: Vec<usize> = (0..count).collect();
        for chunk in all.chunks(SEARCH_BATCH) {
            let blobs = if content {
                self.load_blobs(chunk).await?
            } else {
                vec![None; chunk.len()]
            };
            let Some(sel) = self.selected.as_ref() else {
                break;
            };
            for (&i, raw) in chunk.iter().zip(&blobs) {
                let Some(msg) = sel.messages.get(i) else {
                    continue;
                };
                let c = Candidate {
                    msg,
                    seq: Selected::seq(i).get(),
                    raw: raw.as_deref(),
                    largest_seq,
                    largest_uid,
                };
                if criteria.iter().all(|k| matches(k, &c)) {
                    found.push(if uid { msg.uid.0 } else { Selected::seq(i) });
                }
            }
        }
        #[allow(clippy::useless_conversion)]
        self.conn.data(Data::Search(found.into()));
        self.sync(uid).await?;
        Ok(Done::ok("SEARCH completed"))
    }
}

fn needs_content(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::Body(_) | SearchKey::Text(_) | SearchKey::Bcc(_) | SearchKey::Header(..) => true,
        SearchKey::Not(k) => needs_content(k),
        SearchKey::Or(a, b) => needs_content(a) || needs_content(b),
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_content),
        _ => false,
    }
}

fn text(s: &impl AsRef<[u8]>) -> String {
    String::from_utf8_lossy(s.as_ref()).into_owned()
}

/// Case-insensitive (ASCII) substring test.
fn has(haystack: &[u8], needle: &str) -> bool {
    let needle = needle.as_bytes();
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn field(value: Option<&String>, needle: &str) -> bool {
    value.is_some_and(|v| has(v.as_bytes(), needle))
}

fn matches(key: &SearchKey<'_>, c: &Candidate<'_>) -> bool {
    let m = c.msg;
    let f = &m.flags;
    let day = |d| day_start(d);
    match key {
        SearchKey::All => true,
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(k, c)),
        SearchKey::Not(k) => !matches(k, c),
        SearchKey::Or(a, b) => matches(a, c) || matches(b, c),
        SearchKey::SequenceSet(set) => contains(set, c.seq, c.largest_seq),
        SearchKey::Uid(set) => contains(set, m.uid.get(), c.largest_uid),
        SearchKey::Answered => f.answered,
        SearchKey::Unanswered => !f.answered,
        SearchKey::Deleted => f.deleted,
        SearchKey::Undeleted => !f.deleted,
        SearchKey::Draft => f.draft,
        SearchKey::Undraft => !f.draft,
        SearchKey::Flagged => f.flagged,
        SearchKey::Unflagged => !f.flagged,
        SearchKey::Seen => f.seen,
        SearchKey::Unseen => !f.seen,
        // No \Recent in this server: NEW is UNSEEN, RECENT is nothing.
        SearchKey::New => false,
        SearchKey::Old => true,
        SearchKey::Recent => false,
        SearchKey::Keyword(k) => f
            .keywords
            .iter()
            .any(|x| x.eq_ignore_ascii_case(k.as_ref())),
        SearchKey::Unkeyword(k) => !f
            .keywords
            .iter()
            .any(|x| x.eq_ignore_ascii_case(k.as_ref())),
        SearchKey::Larger(n) => m.size > u64::from(*n),
        SearchKey::Smaller(n) => m.size < u64::from(*n),
        SearchKey::Before(d) => m.internal_date < day(d),
        SearchKey::On(d) => (day(d)..day(d) + DAY_SECONDS).contains(&m.internal_date),
        SearchKey::Since(d) => m.internal_date >= day(d),
        SearchKey::SentBefore(d) => sent(m).is_some_and(|t| t < day(d)),
        SearchKey::SentOn(d) => {
            sent(m).is_some_and(|t| (day(d)..day(d) + DAY_SECONDS).contains(&t))
        }
        SearchKey::SentSince(d) => sent(m).is_some_and(|t| t >= day(d)),
        SearchKey::From(s) => field(m.headers.from.as_ref(), &text(s)),
        SearchKey::To(s) => field(m.headers.to.as_ref(), &text(s)),
        SearchKey::Cc(s) => field(m.headers.cc.as_ref(), &text(s)),
        SearchKey::Subject(s) => field(m.headers.subject.as_ref(), &text(s)),
        SearchKey::Bcc(s) => header(c, "bcc", &text(s)),
        SearchKey::Header(name, s) => header(c, &text(name), &text(s)),
        SearchKey::Body(s) => body(c).is_some_and(|b| has(b, &text(s))),
        // TEXT is header and body; an encrypted body cannot be read, and
        // matching its clear header alone would pretend otherwise.
        SearchKey::Text(s) => !m.encrypted && c.raw.is_some_and(|raw| has(raw, &text(s))),
    }
}

fn sent(m: &Message) -> Option<i64> {
    header_date(m.headers.date.as_deref()?)
}

/// HEADER name value: any field `name` whose value contains `value`
/// (an empty value matches every message that has the field).
fn header(c: &Candidate<'_>, name: &str, value: &str) -> bool {
    let Some(raw) = c.raw else {
        return false;
    };
    let split = Split::new(raw);
    split
        .field_value(name.to_ascii_lowercase().as_bytes())
        .is_some_and(|v| has(v, value))
}

/// The searchable body: the stored body of a clear message, nothing for
/// an encrypted one.
fn body<'a>(c: &Candidate<'a>) -> Option<&'a [u8]> {
    if c.msg.encrypted {
        return None;
    }
    Some(Split::new(c.raw?).body)
}
