//! SEARCH and UID SEARCH (RFC 9051 §6.4.4).
//!
//! Flags, dates, sizes, UIDs and sequence numbers are answered from the
//! snapshot; FROM, TO, CC, SUBJECT and the `Date:` of SENT* from the clear
//! header fields the store indexed. HEADER, BCC, BODY and TEXT read the
//! stored message. Text is compared as a reader sees it
//! ([`crate::mime::search`]: RFC 2047 words, transfer encodings and
//! charsets decoded, case ignored in every script), the same way JMAP's
//! filters compare it. Header fields are clear also on encrypted
//! messages and are searched there too (TEXT looks in them); the body of
//! an encrypted message is ciphertext, so BODY matches nothing there and
//! TEXT only its header (the server cannot read the body, by design).
//! Only UTF-8 and US-ASCII search strings are accepted (`NO
//! [BADCHARSET]` otherwise).

use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;

use imap_next::imap_types::response::Data;
use imap_next::imap_types::search::SearchKey;

use super::condstore::wire_modseq;
use super::dates::{day_start, header_day, DAY_SECONDS};
use super::error::{ImapError, SEARCH_CHARSETS};
use super::fetch::load;
use super::selected::Selected;
use super::session::{Done, Session};
use super::snapshot::{contains, Known};
use crate::mime::search::{address_text, body_text, header_text, Needle};
use crate::smime::Split;
use crate::store::{MailStore, Message};

/// Messages whose records (and, for content keys, bytes) are loaded per
/// store call.
const SEARCH_BATCH: usize = 256;

/// One message as a search sees it: the snapshot entry always, the
/// record only when a key needs it.
struct Candidate<'a> {
    known: Known,
    msg: Option<&'a Message>,
    seq: u32,
    raw: Option<&'a [u8]>,
    largest_seq: NonZeroU32,
    largest_uid: NonZeroU32,
}

impl Session {
    /// SEARCH / UID SEARCH. The snapshot is walked a batch at a time; the
    /// answer is kept as one number per match (4 bytes), and records are
    /// read only when a key needs more than UIDs, sequence numbers and
    /// system flags.
    pub(crate) async fn search(
        &mut self,
        charset: Option<&str>,
        criteria: &[SearchKey<'static>],
        uid: bool,
    ) -> Result<Done, ImapError> {
        let (found, highest) = self.search_matches(charset, criteria, uid).await?;
        self.conn.data(Data::Search(found, highest));
        self.sync(uid).await?;
        Ok(Done::ok("SEARCH completed"))
    }

    /// The matches of a SEARCH (sequence numbers, or UIDs with `uid`), in
    /// ascending order, and with a MODSEQ key the highest MODSEQ among
    /// them (RFC 7162 §3.1.5); also for ESEARCH and SORT (`sort`).
    pub(crate) async fn search_matches(
        &mut self,
        charset: Option<&str>,
        criteria: &[SearchKey<'static>],
        uid: bool,
    ) -> Result<(Vec<NonZeroU32>, Option<NonZeroU64>), ImapError> {
        if let Some(charset) = charset {
            if !SEARCH_CHARSETS
                .iter()
                .any(|c| c.eq_ignore_ascii_case(charset))
            {
                return Err(ImapError::BadCharset {
                    charset: charset.to_string(),
                });
            }
        }
        let modseq_key = criteria.iter().any(has_modseq);
        if modseq_key {
            self.enable_condstore();
            // why: MODSEQ is answered from the snapshot, which must show
            // other sessions' changes; they are told first as FETCH.
            self.sync(false).await?;
        }
        let Some(sel) = self.selected.as_ref() else {
            return Ok((Vec::new(), None));
        };
        // why sizes too with server-side reading: LARGER and SMALLER
        // compare the size served, known once the message is decrypted.
        let reading = self.reading.is_some();
        let content = criteria.iter().any(|k| needs_content(k, reading));
        let record = content || criteria.iter().any(needs_record);
        let count = sel.messages.len();
        let bounds = Bounds {
            largest_seq: Selected::seq(count.saturating_sub(1)),
            largest_uid: sel.messages.last().map_or(NonZeroU32::MIN, |m| m.uid.0),
            uid,
        };
        let criteria: Arc<Vec<SearchKey<'static>>> = Arc::new(criteria.to_vec());
        let mut found: Vec<NonZeroU32> = Vec::new();
        let mut start = 0;
        while start < count {
            let chunk: Vec<usize> = (start..count.min(start + SEARCH_BATCH)).collect();
            start += SEARCH_BATCH;
            if record {
                found.extend(
                    self.search_batch(&chunk, content, Arc::clone(&criteria), bounds)
                        .await?,
                );
                continue;
            }
            let Some(sel) = self.selected.as_ref() else {
                break;
            };
            for i in chunk {
                if let Some(&known) = sel.messages.get(i) {
                    found.extend(bounds.check(&criteria, i, known, None, None));
                }
            }
        }
        // RFC 7162 §3.1.5: with MODSEQ in the criteria, the answer carries
        // the highest MODSEQ of the messages found.
        let highest = if modseq_key {
            self.selected.as_ref().and_then(|sel| {
                found
                    .iter()
                    .filter_map(|n| {
                        let k = if uid {
                            let at = sel.messages.binary_search_by_key(n, |k| k.uid.0).ok()?;
                            sel.messages.get(at)?
                        } else {
                            sel.messages
                                .get(usize::try_from(n.get()).ok()?.checked_sub(1)?)?
                        };
                        Some(k.modseq)
                    })
                    .max()
                    .map(wire_modseq)
            })
        } else {
            None
        };
        Ok((found, highest))
    }

    /// The matches among the messages at `chunk` that need their records
    /// (and with `content` their bytes), found on the blocking pool; a
    /// batch that scans message bytes holds a slot of the CPU pool too.
    async fn search_batch(
        &self,
        chunk: &[usize],
        content: bool,
        criteria: Arc<Vec<SearchKey<'static>>>,
        bounds: Bounds,
    ) -> Result<Vec<NonZeroU32>, ImapError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(Vec::new());
        };
        let known: Vec<Option<Known>> = chunk
            .iter()
            .map(|&i| sel.messages.get(i).copied())
            .collect();
        let first = chunk.first().copied().unwrap_or(0);
        let Some((id, mbox, wanted)) = self.wanted(chunk)? else {
            return Ok(Vec::new());
        };
        let keys = if content { self.reading_keys() } else { None };
        let work = move |s: &MailStore| {
            let loaded = load(s, id, mbox, &wanted, content, keys.as_deref())?;
            // A message expunged meanwhile has no record: no match.
            Ok(loaded
                .iter()
                .filter_map(|l| {
                    let known = (*known.get(l.index.checked_sub(first)?)?)?;
                    bounds.check(&criteria, l.index, known, Some(&l.msg), l.raw.as_deref())
                })
                .collect())
        };
        if content {
            self.with_store_cpu(work).await
        } else {
            self.with_store(work).await
        }
    }
}

/// What every candidate of one SEARCH is compared with.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    largest_seq: NonZeroU32,
    largest_uid: NonZeroU32,
    /// UID SEARCH: answer UIDs, not sequence numbers.
    uid: bool,
}

impl Bounds {
    /// The number to answer for the message at `index` if it matches.
    fn check(
        &self,
        criteria: &[SearchKey<'static>],
        index: usize,
        known: Known,
        msg: Option<&Message>,
        raw: Option<&[u8]>,
    ) -> Option<NonZeroU32> {
        let c = Candidate {
            known,
            msg,
            seq: Selected::seq(index).get(),
            raw,
            largest_seq: self.largest_seq,
            largest_uid: self.largest_uid,
        };
        criteria
            .iter()
            .all(|k| matches(k, &c))
            .then_some(if self.uid {
                known.uid.0
            } else {
                Selected::seq(index)
            })
    }
}

/// Whether `key` needs the stored record (dates, sizes, header fields,
/// keywords) rather than the snapshot alone.
fn needs_record(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::All
        | SearchKey::SequenceSet(_)
        | SearchKey::Uid(_)
        | SearchKey::Answered
        | SearchKey::Unanswered
        | SearchKey::Deleted
        | SearchKey::Undeleted
        | SearchKey::Draft
        | SearchKey::Undraft
        | SearchKey::Flagged
        | SearchKey::Unflagged
        | SearchKey::Seen
        | SearchKey::Unseen
        | SearchKey::New
        | SearchKey::Old
        | SearchKey::Recent
        | SearchKey::ModSequence { .. } => false,
        SearchKey::Not(k) => needs_record(k),
        SearchKey::Or(a, b) => needs_record(a) || needs_record(b),
        SearchKey::And(keys) => keys.as_ref().iter().any(needs_record),
        _ => true,
    }
}

/// Whether `key` uses MODSEQ (a CONDSTORE enabling command, RFC 7162 §3.1).
pub(super) fn has_modseq(key: &SearchKey<'_>) -> bool {
    match key {
        SearchKey::ModSequence { .. } => true,
        SearchKey::Not(k) => has_modseq(k),
        SearchKey::Or(a, b) => has_modseq(a) || has_modseq(b),
        SearchKey::And(keys) => keys.as_ref().iter().any(has_modseq),
        _ => false,
    }
}

fn needs_content(key: &SearchKey<'_>, reading: bool) -> bool {
    match key {
        SearchKey::Body(_) | SearchKey::Text(_) | SearchKey::Bcc(_) | SearchKey::Header(..) => true,
        SearchKey::Larger(_) | SearchKey::Smaller(_) => reading,
        SearchKey::Not(k) => needs_content(k, reading),
        SearchKey::Or(a, b) => needs_content(a, reading) || needs_content(b, reading),
        SearchKey::And(keys) => keys.as_ref().iter().any(|k| needs_content(k, reading)),
        _ => false,
    }
}

fn needle(s: &impl AsRef<[u8]>) -> Needle {
    Needle::new(s.as_ref())
}

/// An indexed unstructured field (SUBJECT) holding the needle once decoded.
fn field(value: Option<&String>, needle: &Needle) -> bool {
    value.is_some_and(|v| needle.is_in_field(v.as_bytes()))
}

fn matches(key: &SearchKey<'_>, c: &Candidate<'_>) -> bool {
    let f = c.known.flags;
    match key {
        SearchKey::All => true,
        SearchKey::And(keys) => keys.as_ref().iter().all(|k| matches(k, c)),
        SearchKey::Not(k) => !matches(k, c),
        SearchKey::Or(a, b) => matches(a, c) || matches(b, c),
        SearchKey::SequenceSet(set) => contains(set, c.seq, c.largest_seq),
        SearchKey::Uid(set) => contains(set, c.known.uid.get(), c.largest_uid),
        SearchKey::Answered => f.answered(),
        SearchKey::Unanswered => !f.answered(),
        SearchKey::Deleted => f.deleted(),
        SearchKey::Undeleted => !f.deleted(),
        SearchKey::Draft => f.draft(),
        SearchKey::Undraft => !f.draft(),
        SearchKey::Flagged => f.flagged(),
        SearchKey::Unflagged => !f.flagged(),
        SearchKey::Seen => f.seen(),
        SearchKey::Unseen => !f.seen(),
        SearchKey::New => f.recent() && !f.seen(),
        SearchKey::Old => !f.recent(),
        SearchKey::Recent => f.recent(),
        // RFC 7162 §3.1.5: MODSEQ n finds the messages changed at or after n.
        SearchKey::ModSequence { modseq, .. } => c.known.modseq >= *modseq,
        key => c.msg.is_some_and(|m| matches_record(key, m, c)),
    }
}

/// The keys answered from the stored record.
fn matches_record(key: &SearchKey<'_>, m: &Message, c: &Candidate<'_>) -> bool {
    let day = |d| day_start(d);
    match key {
        SearchKey::Keyword(k) => m
            .flags
            .keywords
            .iter()
            .any(|x| x.eq_ignore_ascii_case(k.as_ref())),
        SearchKey::Unkeyword(k) => !m
            .flags
            .keywords
            .iter()
            .any(|x| x.eq_ignore_ascii_case(k.as_ref())),
        SearchKey::Larger(n) => m.size > u64::from(*n),
        SearchKey::Smaller(n) => m.size < u64::from(*n),
        SearchKey::Before(d) => m.internal_date < day(d),
        SearchKey::On(d) => (day(d)..day(d) + DAY_SECONDS).contains(&m.internal_date),
        SearchKey::Since(d) => m.internal_date >= day(d),
        SearchKey::SentBefore(d) => sent(m).is_some_and(|t| t < day(d)),
        SearchKey::SentOn(d) => sent(m) == Some(day(d)),
        SearchKey::SentSince(d) => sent(m).is_some_and(|t| t >= day(d)),
        SearchKey::From(s) => address(m.headers.from.as_ref(), &needle(s)),
        SearchKey::To(s) => address(m.headers.to.as_ref(), &needle(s)),
        SearchKey::Cc(s) => address(m.headers.cc.as_ref(), &needle(s)),
        SearchKey::Subject(s) => field(m.headers.subject.as_ref(), &needle(s)),
        SearchKey::Bcc(s) => bcc(c, &needle(s)),
        SearchKey::Header(name, s) => header(c, name.as_ref(), &needle(s)),
        SearchKey::Body(s) => body(m, c).is_some_and(|b| needle(s).is_in(&b)),
        // TEXT is header and body; an encrypted message's body cannot be
        // read, its clear header can (the README lists what is not
        // searchable).
        SearchKey::Text(s) => {
            let n = needle(s);
            c.raw.is_some_and(|raw| n.is_in(&header_text(raw)))
                || body(m, c).is_some_and(|b| n.is_in(&b))
        }
        _ => false,
    }
}

/// The day of the `Date:` field as written (see [`header_day`]).
fn sent(m: &Message) -> Option<i64> {
    header_day(m.headers.date.as_deref()?)
}

/// HEADER name value: any field `name` (each of them when it repeats)
/// whose unfolded value contains `value`; an empty value matches every
/// message that has the field.
fn header(c: &Candidate<'_>, name: &[u8], value: &Needle) -> bool {
    let Some(raw) = c.raw else {
        return false;
    };
    let split = Split::new(raw);
    let found = split.field_values(name).any(|v| value.is_in_field(v));
    found
}

/// FROM, TO, CC: the addresses of the indexed field (see
/// [`crate::mime::search::address_text`]: comments and groups resolved).
fn address(value: Option<&String>, needle: &Needle) -> bool {
    value.is_some_and(|v| needle.is_in(&address_text(v.as_bytes())))
}

/// BCC, which the store does not index: read from the stored header.
fn bcc(c: &Candidate<'_>, needle: &Needle) -> bool {
    let Some(raw) = c.raw else {
        return false;
    };
    let split = Split::new(raw);
    let found = split
        .field_values(b"bcc")
        .any(|v| needle.is_in(&address_text(&unfold(v))));
    found
}

/// A field value without its folding line breaks (RFC 5322 §2.2.3).
fn unfold(value: &[u8]) -> Vec<u8> {
    value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect()
}

/// The searchable body: the decoded text of a clear message's parts
/// ([`body_text`]), nothing for an encrypted one.
fn body(m: &Message, c: &Candidate<'_>) -> Option<String> {
    if m.encrypted {
        return None;
    }
    Some(body_text(c.raw?))
}
