//! THREAD and UID THREAD (RFC 5256 §3 to §5) with the ORDEREDSUBJECT
//! and REFERENCES algorithms.
//!
//! imap-codec parses the command; the search criteria run through the
//! ordinary SEARCH ([`Session::search_matches`]) and only the matches
//! are threaded. Their records are read a batch at a time, as SORT reads
//! them: the sent date (the `Date:` field, else the internal date), the
//! decoded `Subject:`, `Message-ID:`, `References:` and `In-Reply-To:`.
//! These are the clear header fields every record keeps, also for an
//! encrypted message, so threading needs no decryption. The algorithms
//! are pure ([`forest`], [`references`]); the `* THREAD` line is written
//! here (imap-types' `Thread` is a recursive type, and a hostile mailbox
//! can make a thread as deep as it is large).

mod forest;
mod links;
mod references;

use std::num::NonZeroU32;

use imap_next::imap_types::extensions::thread::ThreadingAlgorithm;
use imap_next::imap_types::search::SearchKey;

use self::forest::Entry;
use super::error::ImapError;
use super::fetch::load;
use super::selected::Selected;
use super::session::{Done, Session};
use crate::mime::search::decode_field;
use crate::store::Message;

/// Records read per store call.
const THREAD_BATCH: usize = 512;

/// The algorithms of the `THREAD=` capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    OrderedSubject,
    References,
}

impl Session {
    /// THREAD / UID THREAD: `* THREAD` with the matches' threads.
    pub(crate) async fn thread(
        &mut self,
        algorithm: &ThreadingAlgorithm<'_>,
        charset: &str,
        criteria: &[SearchKey<'static>],
        uid: bool,
    ) -> Result<Done, ImapError> {
        let algorithm = match algorithm {
            ThreadingAlgorithm::OrderedSubject => Algorithm::OrderedSubject,
            ThreadingAlgorithm::References => Algorithm::References,
            ThreadingAlgorithm::Other(other) => {
                return Err(ImapError::syntax(format!(
                    "unknown threading algorithm {:?}; use REFERENCES or ORDEREDSUBJECT",
                    other.as_ref()
                )))
            }
        };
        let (found, _) = self.search_matches(Some(charset), criteria, false).await?;
        let entries = self.thread_entries(&found, uid).await?;
        // why the CPU pool: threading a large mailbox is CPU work.
        let line = self
            .with_store_cpu(move |_| {
                let forest = match algorithm {
                    Algorithm::OrderedSubject => forest::ordered_subject(&entries),
                    Algorithm::References => references::references(&entries),
                };
                Ok(forest.response(&entries))
            })
            .await?;
        self.conn.raw(&line);
        self.sync(uid).await?;
        Ok(Done::ok("THREAD completed"))
    }

    /// The entries of the messages `found` (sequence numbers, ascending),
    /// in mailbox order, named by UID when `uid`.
    async fn thread_entries(
        &self,
        found: &[NonZeroU32],
        uid: bool,
    ) -> Result<Vec<Entry>, ImapError> {
        let indexes: Vec<usize> = found
            .iter()
            .filter_map(|n| usize::try_from(n.get()).ok()?.checked_sub(1))
            .collect();
        let mut entries: Vec<(usize, Entry)> = Vec::with_capacity(indexes.len());
        for chunk in indexes.chunks(THREAD_BATCH) {
            let Some((id, mbox, wanted)) = self.wanted(chunk)? else {
                break;
            };
            let numbers: Vec<(usize, NonZeroU32)> = match self.selected.as_ref() {
                Some(sel) => chunk
                    .iter()
                    .filter_map(|&i| {
                        let n = if uid {
                            sel.messages.get(i)?.uid.0
                        } else {
                            Selected::seq(i)
                        };
                        Some((i, n))
                    })
                    .collect(),
                None => Vec::new(),
            };
            let batch = self
                .with_store_cpu(move |s| {
                    let loaded = load(s, id, mbox, &wanted, false, None)?;
                    Ok(loaded
                        .iter()
                        .filter_map(|l| {
                            let at = numbers.binary_search_by_key(&l.index, |n| n.0).ok()?;
                            let number = numbers.get(at)?.1;
                            Some((l.index, entry(number, &l.msg)))
                        })
                        .collect::<Vec<_>>())
                })
                .await?;
            entries.extend(batch);
        }
        entries.sort_by_key(|e| e.0);
        Ok(entries.into_iter().map(|e| e.1).collect())
    }
}

/// What threading needs of `m`, named `number` in the response.
fn entry(number: NonZeroU32, m: &Message) -> Entry {
    let h = &m.headers;
    let sent = h
        .date
        .as_deref()
        .and_then(|d| mail_parser::DateTime::parse_rfc822(d.trim()))
        .map_or(m.internal_date, |d| d.to_timestamp());
    let mut references = h.references.as_deref().map(msg_ids).unwrap_or_default();
    if references.is_empty() {
        references = h
            .in_reply_to
            .as_deref()
            .map(msg_ids)
            .unwrap_or_default()
            .into_iter()
            .take(1)
            .collect();
    }
    Entry {
        number,
        sent,
        subject: h
            .subject
            .as_deref()
            .map(|s| decode_field(s.as_bytes()))
            .unwrap_or_default(),
        message_id: h
            .message_id
            .as_deref()
            .and_then(|v| msg_ids(v).into_iter().next()),
        references,
    }
}

/// The `<id-left@id-right>` message ids of a Message-ID, References or
/// In-Reply-To field (RFC 5322 §3.6.4), white space (folding) removed;
/// one without `@` is not a message id and is skipped, as Dovecot does.
fn msg_ids(field: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = field;
    while let Some(start) = rest.find('<') {
        let after = rest.get(start + 1..).unwrap_or_default();
        let Some(end) = after.find('>') else { break };
        let id: String = after
            .get(..end)
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if id.contains('@') {
            out.push(id);
        }
        rest = after.get(end + 1..).unwrap_or_default();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_read_leniently() {
        assert_eq!(msg_ids("<a@b> <c@d>"), ["a@b", "c@d"]);
        assert_eq!(msg_ids(" <a@\r\n b>(comment) junk <nope> <x@y"), ["a@b"]);
        assert!(msg_ids("a@b").is_empty());
        assert!(msg_ids("").is_empty());
    }
}
