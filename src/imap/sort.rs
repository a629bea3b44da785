//! SORT and UID SORT (RFC 5256 §3) with SORT=DISPLAY (RFC 5957).
//!
//! imap-codec parses the command; the search criteria run through the
//! ordinary SEARCH ([`Session::search_matches`]), then the records of the
//! matches are read a batch at a time and ordered by the sort keys:
//!
//! - ARRIVAL: the internal date; SIZE: RFC822.SIZE as served (with
//!   server-side reading the decrypted size, as FETCH says);
//! - DATE: the `Date:` field in UTC, the internal date when it is
//!   missing or unreadable (RFC 5256 §2.2);
//! - SUBJECT: the base subject (RFC 5256 §2.1, [`base_subject`]) of the
//!   decoded field;
//! - FROM, TO, CC: the local part (addr-mailbox) of the field's first
//!   address, a group's name when it starts with a group (RFC 5256 §3);
//! - DISPLAYFROM, DISPLAYTO: the first address's display name, its
//!   addr-spec when it has none (RFC 5957 §3).
//!
//! Strings compare case-insensitively (i;ascii-casemap, upper-cased, so
//! `_` sorts after the letters as in Dovecot); a missing field is the
//! empty string. Messages equal on every key stay in mailbox order
//! (RFC 5256 §3). Only the clear header fields of the store's record are
//! used, so an encrypted message sorts as its clear header says.

use std::cmp::Ordering;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;

use imap_next::imap_types::extensions::sort::{SortCriterion, SortKey};
use imap_next::imap_types::response::Data;
use imap_next::imap_types::search::SearchKey;
use mail_parser::MessageParser;

use super::error::ImapError;
use super::fetch::load;
use super::selected::Selected;
use super::session::{Done, Session};
use crate::mime::search::decode_field;
use crate::store::Message;

/// Records read per store call.
const SORT_BATCH: usize = 512;

/// One key's value for one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Number(i64),
    Text(String),
}

impl Session {
    /// SORT / UID SORT: `* SORT` with the matches in sort order.
    pub(crate) async fn sort(
        &mut self,
        keys: &[SortCriterion],
        charset: &str,
        criteria: &[SearchKey<'static>],
        uid: bool,
    ) -> Result<Done, ImapError> {
        let (numbers, highest) = self.sort_matches(keys, charset, criteria, uid).await?;
        self.conn.data(Data::Sort(numbers, highest));
        self.sync(uid).await?;
        Ok(Done::ok("SORT completed"))
    }

    /// The matches of a SORT in sort order (sequence numbers, or UIDs
    /// with `uid`), and with a MODSEQ key the highest MODSEQ among them;
    /// also for ESORT and SORT contexts (`esearch`, `context`).
    pub(crate) async fn sort_matches(
        &mut self,
        keys: &[SortCriterion],
        charset: &str,
        criteria: &[SearchKey<'static>],
        uid: bool,
    ) -> Result<(Vec<NonZeroU32>, Option<NonZeroU64>), ImapError> {
        let (found, highest) = self.search_matches(Some(charset), criteria, false).await?;
        let keys: Arc<Vec<SortCriterion>> = Arc::new(keys.to_vec());
        let mut keyed: Vec<(Vec<Value>, usize)> = Vec::with_capacity(found.len());
        let indexes: Vec<usize> = found
            .iter()
            .filter_map(|n| usize::try_from(n.get()).ok()?.checked_sub(1))
            .collect();
        // why the bytes with server-side reading: SIZE is the size
        // served, known once the message is decrypted (as for LARGER).
        let content = self.reading.is_some() && keys.iter().any(|k| k.key == SortKey::Size);
        let reading = if content { self.reading_keys() } else { None };
        for chunk in indexes.chunks(SORT_BATCH) {
            let Some((id, mbox, wanted)) = self.wanted(chunk)? else {
                break;
            };
            let keys = Arc::clone(&keys);
            let reading = reading.clone();
            // why the CPU pool: parsing address and subject fields of
            // a whole mailbox is CPU work, shared as SEARCH's scans are.
            let batch = self
                .with_store_cpu(move |s| {
                    let loaded = load(s, id, mbox, &wanted, content, reading.as_deref())?;
                    Ok(loaded
                        .iter()
                        .map(|l| (values(&keys, &l.msg), l.index))
                        .collect::<Vec<_>>())
                })
                .await?;
            keyed.extend(batch);
        }
        keyed.sort_by(|a, b| compare(&keys, &a.0, &b.0).then(a.1.cmp(&b.1)));
        let numbers: Vec<NonZeroU32> = match self.selected.as_ref() {
            Some(sel) => keyed
                .iter()
                .filter_map(|(_, i)| {
                    if uid {
                        sel.messages.get(*i).map(|k| k.uid.0)
                    } else {
                        Some(Selected::seq(*i))
                    }
                })
                .collect(),
            None => Vec::new(),
        };
        Ok((numbers, highest))
    }
}

/// The order of two messages' key values under `keys` (REVERSE turns
/// one key's order around, RFC 5256 §3).
fn compare(keys: &[SortCriterion], a: &[Value], b: &[Value]) -> Ordering {
    for (i, key) in keys.iter().enumerate() {
        let order = a.get(i).cmp(&b.get(i));
        let order = if key.reverse { order.reverse() } else { order };
        if order != Ordering::Equal {
            return order;
        }
    }
    Ordering::Equal
}

/// The values of `keys` for `m`.
fn values(keys: &[SortCriterion], m: &Message) -> Vec<Value> {
    let h = &m.headers;
    keys.iter()
        .map(|k| match k.key {
            SortKey::Arrival => Value::Number(m.internal_date),
            SortKey::Size => Value::Number(i64::try_from(m.size).unwrap_or(i64::MAX)),
            SortKey::Date => Value::Number(
                h.date
                    .as_deref()
                    .and_then(|d| mail_parser::DateTime::parse_rfc822(d.trim()))
                    .map_or(m.internal_date, |d| d.to_timestamp()),
            ),
            SortKey::Subject => Value::Text(casemap(&base_subject(
                &h.subject
                    .as_deref()
                    .map(|s| decode_field(s.as_bytes()))
                    .unwrap_or_default(),
            ))),
            SortKey::From => Value::Text(casemap(&mailbox(h.from.as_deref()))),
            SortKey::To => Value::Text(casemap(&mailbox(h.to.as_deref()))),
            SortKey::Cc => Value::Text(casemap(&mailbox(h.cc.as_deref()))),
            SortKey::DisplayFrom => Value::Text(casemap(&display(h.from.as_deref()))),
            SortKey::DisplayTo => Value::Text(casemap(&display(h.to.as_deref()))),
        })
        .collect()
}

/// Upper case, for the i;ascii-casemap comparison (other scripts fold
/// the same way, so a string still equals itself whatever its case).
pub(crate) fn casemap(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_uppercase();
    }
    s.chars().flat_map(char::to_uppercase).collect()
}

/// The first entry of an address field.
enum First {
    /// A group's name (the field starts with a group).
    Group(String),
    /// A mailbox: display name and addr-spec.
    Mailbox(Option<String>, Option<String>),
}

fn first(value: Option<&str>) -> Option<First> {
    let value = value?;
    let mut field = b"To: ".to_vec();
    field.extend_from_slice(value.as_bytes());
    field.extend_from_slice(b"\r\n\r\n");
    let parser = MessageParser::new().with_address_headers();
    let msg = crate::mime::parse_headers(&parser, &field)?;
    let parsed = msg.root_part().headers.first()?.value.as_address()?;
    let mailbox = |a: &mail_parser::Addr<'_>| {
        First::Mailbox(
            a.name.as_deref().map(str::to_string),
            a.address.as_deref().map(str::to_string),
        )
    };
    match parsed {
        mail_parser::Address::List(list) => list.first().map(mailbox),
        mail_parser::Address::Group(groups) => {
            let group = groups.first()?;
            match group.name.as_deref() {
                Some(name) => Some(First::Group(name.to_string())),
                // why: mail-parser keeps addresses outside any group in a
                // nameless group.
                None => group.addresses.first().map(mailbox),
            }
        }
    }
}

/// The addr-mailbox (local part) of the field's first address, or the
/// name of the group it starts with (RFC 5256 §3, as ENVELOPE shows it).
fn mailbox(value: Option<&str>) -> String {
    match first(value) {
        Some(First::Group(name)) => name,
        Some(First::Mailbox(_, Some(email))) => {
            let email = email.rsplit_once(':').map_or(email.as_str(), |(_, e)| e);
            email
                .rsplit_once('@')
                .map_or(email, |(local, _)| local)
                .to_string()
        }
        Some(First::Mailbox(name, None)) => name.unwrap_or_default(),
        None => String::new(),
    }
}

/// RFC 5957 §3: the display name of the first address, its addr-spec
/// when it has none (a group: its name).
fn display(value: Option<&str>) -> String {
    match first(value) {
        Some(First::Group(name)) => name,
        Some(First::Mailbox(Some(name), _)) if !name.trim().is_empty() => name,
        Some(First::Mailbox(_, email)) => email.unwrap_or_default(),
        None => value
            .map(|v| decode_field(v.as_bytes()))
            .unwrap_or_default(),
    }
}

/// The base subject of RFC 5256 §2.1 of a decoded subject: whitespace
/// runs made one space, then trailing `(fwd)`, leading `Re:`, `Fw:`,
/// `Fwd:` (each with an optional `[blob]` before the colon), leading
/// `[blob]`s that do not leave the subject empty, and a `[fwd: ...]`
/// wrapper removed, until none remains.
pub(crate) fn base_subject(decoded: &str) -> String {
    base_subject_reply(decoded).0
}

/// [`base_subject`], and whether extracting it removed a `Re:`, `Fw:`,
/// `Fwd:`, `(fwd)` or `[fwd: ...]`: the message is a reply or forward
/// (RFC 5256 §2.1, used by THREAD=REFERENCES step 5).
pub(crate) fn base_subject_reply(decoded: &str) -> (String, bool) {
    let mut reply = false;
    // Step 1: tabs and line breaks are white space; runs become one space.
    let mut s: String = decoded.split_whitespace().collect::<Vec<_>>().join(" ");
    loop {
        // Step 2: subj-trailer = "(fwd)" / WSP, repeatedly.
        loop {
            let trimmed = s.trim_end();
            let len = trimmed.len();
            if len >= 5 && trimmed.is_char_boundary(len - 5) {
                if let Some(tail) = trimmed.get(len - 5..) {
                    if tail.eq_ignore_ascii_case("(fwd)") {
                        reply = true;
                        s = trimmed.get(..len - 5).unwrap_or_default().to_string();
                        continue;
                    }
                }
            }
            s = trimmed.to_string();
            break;
        }
        // Steps 3 to 5: subj-leader and subj-blob, repeatedly.
        loop {
            let t = s.trim_start();
            if let Some(rest) = strip_refwd(t) {
                reply = true;
                s = rest.to_string();
                continue;
            }
            if let Some(rest) = strip_blob(t) {
                if !rest.trim().is_empty() {
                    s = rest.to_string();
                    continue;
                }
            }
            s = t.to_string();
            break;
        }
        // Step 6: "[fwd:" base "]".
        let wrapped = s.len() >= 6
            && s.get(..5).is_some_and(|h| h.eq_ignore_ascii_case("[fwd:"))
            && s.ends_with(']');
        if wrapped {
            reply = true;
            s = s.get(5..s.len() - 1).unwrap_or_default().to_string();
            continue;
        }
        return (s, reply);
    }
}

/// `subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"` at the start
/// of `s` (leading white space already gone): what follows it.
fn strip_refwd(s: &str) -> Option<&str> {
    let lower = |n: usize| s.get(..n).map(str::to_ascii_lowercase);
    let mut candidates = Vec::new();
    if lower(2).as_deref() == Some("re") {
        candidates.push(2);
    }
    if lower(3).as_deref() == Some("fwd") {
        candidates.push(3);
    }
    if lower(2).as_deref() == Some("fw") {
        candidates.push(2);
    }
    candidates.into_iter().find_map(|n| {
        let rest = s.get(n..)?.trim_start_matches([' ', '\t']);
        let rest = strip_blob(rest).unwrap_or(rest);
        rest.strip_prefix(':')
    })
}

/// `subj-blob = "[" *BLOBCHAR "]" *WSP` at the start of `s`: what follows.
fn strip_blob(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('[')?;
    let end = inner.find([']', '['])?;
    let rest = inner.get(end..)?.strip_prefix(']')?;
    Some(rest.trim_start_matches([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 5256 §2.1, with imaptest's sort-subject cases.
    #[test]
    fn base_subjects() {
        for (subject, base) in [
            ("a", "a"),
            ("[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)", "b"),
            ("Re: [FWD: c]", "c"),
            ("[xyz]", "[xyz]"),
            ("", ""),
            (" ", ""),
            ("Ad: Re: Ad: Re: Ad: x", "Ad: Re: Ad: Re: Ad: x"),
            ("re: [fwd: [fwd: re: [fwd: babylon]]]", "babylon"),
            ("Re [PATCH]: x\t  y", "x y"),
            ("Fwd:", ""),
            ("Grüße (fwd)", "Grüße"),
            ("ü(fwd)", "ü"),
        ] {
            assert_eq!(base_subject(subject), base, "{subject:?}");
        }
    }

    #[test]
    fn first_addresses() {
        assert_eq!(mailbox(Some("user2@domain2.org (foo bar)")), "user2");
        assert_eq!(mailbox(Some("user2: blah@domain1.org;")), "user2");
        assert_eq!(mailbox(Some("foo bar <a@b.c>, z@y")), "a");
        assert_eq!(mailbox(None), "");
        assert_eq!(display(Some("=?iso-8859-1?q?foo_aar?= <e@f.g>")), "foo aar");
        assert_eq!(display(Some("b@c.d")), "b@c.d");
        assert_eq!(display(Some("empty:;")), "empty");
    }
}
