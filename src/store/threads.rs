//! Threads (RFC 8621 §3): which thread a new message joins, and what a
//! change does to its thread's membership.
//!
//! # Joining
//!
//! RFC 8621 §3 leaves the algorithm to the server and suggests the
//! Message-ID / In-Reply-To / References fields, with the base subject as
//! a guard. Here a new message joins the thread of the first of these,
//! in this order, that `message_ids` knows with the same base subject
//! (RFC 5256 §2.1, reduced: `Re:`, `Fwd:`, `Fw:` and `[list]` prefixes,
//! a trailing `(fwd)`, case and white space do not count): its own
//! Message-ID (a reply stored earlier named it), its In-Reply-To, then
//! its References from the nearest back. Otherwise it starts a thread
//! whose id is its own Email id. Then its own Message-ID and every one it
//! refers to that `message_ids` does not know yet are recorded for its
//! thread, so that a parent arriving after its reply still joins it.
//!
//! The fields are those of the stored record's clear header fields, which
//! for an S/MIME-stored message are the outer header's (ARCHITECTURE.md:
//! From, Subject, Message-ID, ... stay in clear).
//!
//! Not done, on purpose: two existing threads are never merged when a
//! later message links them (it joins the first match; the other thread
//! stays as it is), and entries of `message_ids` stay when their message
//! goes, so a late reply to a deleted message still joins its thread.
//! Both keep every thread id stable once given, which JMAP clients rely
//! on (a merge would change the `threadId` of stored Emails).
//!
//! # Membership
//!
//! `threads` holds one key per member (`acct thread email`), so
//! `Thread/get` is one prefix scan. [`ThreadTally`] tells, for the change
//! log, whether an added member is its thread's first (`Created`) and a
//! removed one its last (`Destroyed`), counting the pending changes of
//! the transaction on top of what is stored, with a scan bounded by them.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::error::MailError;
use super::keys::{self, Key};
use super::log::ChangeKind;
use super::mail::MailStore;
use super::message_record::{HeaderFields, ThreadRef};
use super::records::AccountId;
use super::txn::Tx;
use super::{Cf, Order};

/// Membership changes of one transaction, per thread.
#[derive(Debug, Default)]
pub(crate) struct ThreadTally {
    delta: BTreeMap<(AccountId, u64), i64>,
}

impl ThreadTally {
    /// Counts the first member of a thread whose id is new (the Email id
    /// of the message that starts it): `Created`, with no read.
    pub(crate) fn add_new(&mut self, id: AccountId, thread: u64) -> ChangeKind {
        *self.delta.entry((id, thread)).or_default() += 1;
        ChangeKind::Created
    }

    /// Counts one more member of `thread`; `Created` if it had none.
    pub(crate) fn add(
        &mut self,
        s: &MailStore,
        id: AccountId,
        thread: u64,
    ) -> Result<ChangeKind, MailError> {
        let delta = self.delta.entry((id, thread)).or_default();
        let was_empty = *delta <= 0 && !at_least(s, id, thread, 1 - *delta)?;
        *delta += 1;
        Ok(if was_empty {
            ChangeKind::Created
        } else {
            ChangeKind::Updated
        })
    }

    /// Counts one member less of `thread`; `Destroyed` if none is left.
    pub(crate) fn remove(
        &mut self,
        s: &MailStore,
        id: AccountId,
        thread: u64,
    ) -> Result<ChangeKind, MailError> {
        let delta = self.delta.entry((id, thread)).or_default();
        *delta -= 1;
        let empty = *delta <= 0 && !at_least(s, id, thread, 1 - *delta)?;
        Ok(if empty {
            ChangeKind::Destroyed
        } else {
            ChangeKind::Updated
        })
    }
}

/// Whether `thread` has at least `n` stored members.
fn at_least(s: &MailStore, id: AccountId, thread: u64, n: i64) -> Result<bool, MailError> {
    let n = usize::try_from(n).unwrap_or(0);
    if n == 0 {
        return Ok(true);
    }
    let range = keys::thread_range(id, thread);
    Ok(s.store.scan(Cf::Threads, &range, Order::Forward, n)?.len() >= n)
}

/// What threading reads and writes in one transaction: the `message_ids`
/// entries read (`None`: absent) and those written, so that two messages
/// of one batch see each other.
#[derive(Debug, Default)]
pub(crate) struct Threader {
    known: BTreeMap<(AccountId, [u8; 32]), Option<ThreadRef>>,
}

/// The Message-IDs a message's thread is looked up by, in order, and its
/// own (first) Message-ID.
struct Links {
    own: Option<[u8; 32]>,
    lookups: Vec<[u8; 32]>,
    subject: u64,
}

fn links(headers: &HeaderFields) -> Links {
    let own = headers
        .message_id
        .as_deref()
        .and_then(|v| msg_ids(v).into_iter().next());
    let mut lookups: Vec<[u8; 32]> = own.iter().copied().collect();
    if let Some(v) = headers.in_reply_to.as_deref() {
        lookups.extend(msg_ids(v));
    }
    if let Some(v) = headers.references.as_deref() {
        lookups.extend(msg_ids(v).into_iter().rev());
    }
    let mut seen = std::collections::BTreeSet::new();
    lookups.retain(|h| seen.insert(*h));
    Links {
        own,
        lookups,
        subject: subject_hash(headers.subject.as_deref().unwrap_or("")),
    }
}

impl Threader {
    /// Reads the `message_ids` entries every message of `items` looks
    /// up, in one engine call (one round trip on PostgreSQL).
    pub(crate) fn prefetch<'h>(
        &mut self,
        s: &MailStore,
        items: impl IntoIterator<Item = (AccountId, &'h HeaderFields)>,
    ) -> Result<(), MailError> {
        let mut wanted: Vec<(AccountId, [u8; 32])> = Vec::new();
        for (id, headers) in items {
            for h in links(headers).lookups {
                if !self.known.contains_key(&(id, h)) && !wanted.contains(&(id, h)) {
                    wanted.push((id, h));
                }
            }
        }
        let keys: Vec<Key> = wanted
            .iter()
            .map(|&(id, h)| Key::MessageIdRef(id, h))
            .collect();
        let found = s.load_many::<ThreadRef>(&keys)?;
        self.known.extend(wanted.into_iter().zip(found));
        Ok(())
    }

    fn lookup(
        &mut self,
        s: &MailStore,
        id: AccountId,
        h: [u8; 32],
    ) -> Result<Option<ThreadRef>, MailError> {
        if let Some(known) = self.known.get(&(id, h)) {
            return Ok(*known);
        }
        let found = s.load::<ThreadRef>(&Key::MessageIdRef(id, h))?;
        self.known.insert((id, h), found);
        Ok(found)
    }

    /// The thread of a new message with these header fields and Email id
    /// `email`, recording its Message-IDs in `tx` (module doc).
    pub(crate) fn assign(
        &mut self,
        s: &MailStore,
        tx: &mut Tx,
        id: AccountId,
        headers: &HeaderFields,
        email: u64,
    ) -> Result<u64, MailError> {
        let links = links(headers);
        let mut thread = None;
        for &h in &links.lookups {
            if let Some(r) = self.lookup(s, id, h)? {
                if r.subject == links.subject {
                    thread = Some(r.thread_id);
                    break;
                }
            }
        }
        let thread_id = thread.unwrap_or(email);
        let entry = ThreadRef {
            thread_id,
            subject: links.subject,
        };
        for h in links.lookups.iter().copied().chain(links.own) {
            if self.lookup(s, id, h)?.is_none() {
                tx.put(&Key::MessageIdRef(id, h), &entry)?;
                self.known.insert((id, h), Some(entry));
            }
        }
        Ok(thread_id)
    }
}

/// The SHA-256 of each `<msg-id>` in a Message-ID, In-Reply-To or
/// References field (RFC 5322 §3.6.4); a field without angle brackets
/// counts as one id, trimmed.
fn msg_ids(field: &str) -> Vec<[u8; 32]> {
    let mut out = Vec::new();
    let mut rest = field;
    while let Some(start) = rest.find('<') {
        let after = rest.get(start + 1..).unwrap_or("");
        let Some(end) = after.find('>') else { break };
        let id = after.get(..end).unwrap_or("").trim();
        if !id.is_empty() {
            out.push(Sha256::digest(id.as_bytes()).into());
        }
        rest = after.get(end + 1..).unwrap_or("");
    }
    if out.is_empty() && !field.contains('<') {
        let id = field.trim();
        if !id.is_empty() && !id.contains(char::is_whitespace) {
            out.push(Sha256::digest(id.as_bytes()).into());
        }
    }
    out
}

/// The first 8 bytes of the SHA-256 of [`base_subject`].
fn subject_hash(raw: &str) -> u64 {
    let digest = Sha256::digest(base_subject(raw).as_bytes());
    let mut head = [0u8; 8];
    head.copy_from_slice(digest.get(..8).unwrap_or(&[0; 8]));
    u64::from_be_bytes(head)
}

/// The base subject (RFC 5256 §2.1, reduced; module doc) of a raw
/// Subject field, RFC 2047 encoded words decoded.
pub(crate) fn base_subject(raw: &str) -> String {
    let decoded = decode_subject(raw);
    let mut s: String = decoded
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    loop {
        let before = s.len();
        if let Some(rest) = s.strip_suffix("(fwd)") {
            s = rest.trim_end().to_string();
        }
        s = strip_leader(&s).to_string();
        if s.len() == before {
            return s;
        }
    }
}

/// `s` without one leading `re:`, `fwd:`, `fw:` (each optionally with a
/// `[blob]` before the colon) or `[blob]` (when something follows it).
fn strip_leader(s: &str) -> &str {
    let s = s.trim_start();
    for tag in ["re", "fwd", "fw"] {
        if let Some(rest) = s.strip_prefix(tag) {
            let rest = rest.trim_start();
            let rest = match rest.strip_prefix('[') {
                Some(r) => r.find(']').and_then(|i| r.get(i + 1..)).unwrap_or(rest),
                None => rest,
            };
            if let Some(rest) = rest.trim_start().strip_prefix(':') {
                return rest.trim_start();
            }
        }
    }
    if let Some(r) = s.strip_prefix('[') {
        if let Some(rest) = r.find(']').and_then(|i| r.get(i + 1..)) {
            if !rest.trim().is_empty() {
                return rest.trim_start();
            }
        }
    }
    s
}

fn decode_subject(raw: &str) -> String {
    if !raw.contains("=?") {
        return raw.to_string();
    }
    let mut bytes = b"Subject: ".to_vec();
    bytes.extend(raw.as_bytes());
    bytes.extend(b"\r\n\r\n");
    mail_parser::MessageParser::default()
        .parse_headers(&bytes[..])
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_else(|| raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subject_drops_reply_and_forward_marks() {
        for (raw, want) in [
            ("Lunch plans", "lunch plans"),
            ("Re: Lunch plans", "lunch plans"),
            ("RE: re: Fwd: Lunch  plans", "lunch plans"),
            ("[team] Re: Lunch plans (fwd)", "lunch plans"),
            ("Re[2]: Lunch plans", "lunch plans"),
            ("=?UTF-8?Q?Re=3A_Caf=C3=A9?=", "café"),
            ("[only]", "[only]"),
        ] {
            assert_eq!(base_subject(raw), want, "{raw}");
        }
    }

    #[test]
    fn msg_ids_reads_every_bracketed_id() {
        let h = |s: &str| -> [u8; 32] { Sha256::digest(s.as_bytes()).into() };
        assert_eq!(
            msg_ids("<a@x> (comment)\r\n <b@y>"),
            vec![h("a@x"), h("b@y")]
        );
        assert_eq!(msg_ids(" bare@id "), vec![h("bare@id")]);
        assert!(msg_ids("").is_empty());
        assert!(msg_ids("<unclosed").is_empty());
    }
}
