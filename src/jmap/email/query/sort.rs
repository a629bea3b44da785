//! Sorting and thread collapsing for `Email/query` (RFC 8621 §4.4.2,
//! §4.4.3; comparators and `collation` per RFC 8620 §5.5).
//!
//! Each message's sort values are computed once (one parse of a field at
//! most, not one per comparison), then the list is sorted by the
//! comparators in order, and ties by Email id, ascending: a total order
//! that depends on nothing a change of another Email can move, which is
//! what lets `Email/queryChanges` diff results (see `changes`).
//!
//! What each property compares:
//! - `receivedAt`, `size`: the record's values.
//! - `sentAt`: the `Date` header field; a message without one, or with
//!   one that does not parse as an RFC 5322 date, sorts by its
//!   `receivedAt` instead (as IMAP SORT does, RFC 5256 §3 "DATE").
//! - `from`, `to`: the display name of the first address of the field,
//!   else its address, else the empty string (RFC 8621 §4.4.2); RFC 2047
//!   words decoded.
//! - `subject`: the base subject (RFC 5256 §2.1, reduced as threading
//!   reduces it: `Re:`, `Fwd:`, `Fw:`, `[list]` prefixes and a trailing
//!   `(fwd)` removed, white space collapsed). That reduction also lower-
//!   cases, so a subject sort is case-insensitive under every collation.
//! - `hasKeyword`, `someInThreadHaveKeyword`, `allInThreadHaveKeyword`
//!   (with `keyword`): false before true when ascending.
//!
//! Collations (RFC 4790 names, announced in the session's
//! `collationAlgorithms`): `i;octet` compares the UTF-8 bytes,
//! `i;ascii-casemap` folds ASCII letters only, and `i;unicode-casemap`
//! (the default, RFC 8620 §5.5 asks for a Unicode-aware one) folds every
//! letter to lower case with [`crate::mime::search::fold`], an
//! approximation of RFC 5051 (which also decomposes, NFKD; not done:
//! "é" precomposed and "e" + combining accent compare different). Any
//! other collation, and any other property, is `unsupportedSort`.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::super::super::error::Error;
use super::keyword;
use crate::mime::search::{decode_field, fold};
use crate::store::{base_subject, Message};

/// The collations accepted; the session announces the same
/// (`collationAlgorithms`, `jmap::session`).
const COLLATIONS: [&str; 3] = ["i;ascii-casemap", "i;octet", "i;unicode-casemap"];

/// One comparator as a client sends it (RFC 8620 §5.5, RFC 8621 §4.4.2).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Wire {
    property: String,
    #[serde(default = "yes")]
    is_ascending: bool,
    #[serde(default)]
    collation: Option<String>,
    #[serde(default)]
    keyword: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Collation {
    Octet,
    Ascii,
    Unicode,
}

impl Collation {
    fn key(self, s: &str) -> String {
        match self {
            Collation::Octet => s.to_string(),
            Collation::Ascii => s.to_ascii_lowercase(),
            Collation::Unicode => fold(s),
        }
    }
}

/// What a comparator sorts by.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Property {
    ReceivedAt,
    SentAt,
    Size,
    From,
    To,
    Subject,
    HasKeyword(String),
    SomeInThread(String),
    AllInThread(String),
}

/// One parsed comparator.
#[derive(Debug, Clone)]
pub(super) struct Comparator {
    property: Property,
    ascending: bool,
    collation: Collation,
}

impl Comparator {
    /// Whether it sorts by something a change of another Email of the
    /// same thread can change.
    pub(super) fn on_thread(&self) -> bool {
        matches!(
            self.property,
            Property::SomeInThread(_) | Property::AllInThread(_)
        )
    }

    /// Whether it sorts only by what never changes for an Email.
    pub(super) fn immutable(&self) -> bool {
        !matches!(
            self.property,
            Property::HasKeyword(_) | Property::SomeInThread(_) | Property::AllInThread(_)
        )
    }
}

/// Most comparators in one sort. why: each is computed for every
/// message; past a handful they cannot change the order of real mail.
const MAX_COMPARATORS: usize = 16;

/// The comparators of the `sort` argument (absent or null: none).
pub(super) fn parse(sort: Option<&Value>) -> Result<Vec<Comparator>, Error> {
    let wire: Vec<Wire> = match sort {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| Error::InvalidArguments(format!("sort: {e}")))?,
    };
    if wire.len() > MAX_COMPARATORS {
        return Err(Error::InvalidArguments(format!(
            "sort has {} comparators, at most {MAX_COMPARATORS}",
            wire.len()
        )));
    }
    wire.into_iter().map(comparator).collect()
}

fn comparator(w: Wire) -> Result<Comparator, Error> {
    let collation = match w.collation.as_deref() {
        None | Some("i;unicode-casemap") => Collation::Unicode,
        Some("i;ascii-casemap") => Collation::Ascii,
        Some("i;octet") => Collation::Octet,
        Some(other) => {
            return Err(Error::UnsupportedSort(format!(
                "collation {other:?} is not supported; use one of {}",
                COLLATIONS.join(", ")
            )))
        }
    };
    let needs_keyword = |w: &Wire| {
        w.keyword.clone().ok_or_else(|| {
            Error::InvalidArguments(format!("sorting by {} needs a \"keyword\"", w.property))
        })
    };
    let property = match w.property.as_str() {
        "receivedAt" => Property::ReceivedAt,
        "sentAt" => Property::SentAt,
        "size" => Property::Size,
        "from" => Property::From,
        "to" => Property::To,
        "subject" => Property::Subject,
        "hasKeyword" => Property::HasKeyword(needs_keyword(&w)?),
        "someInThreadHaveKeyword" => Property::SomeInThread(needs_keyword(&w)?),
        "allInThreadHaveKeyword" => Property::AllInThread(needs_keyword(&w)?),
        other => {
            return Err(Error::UnsupportedSort(format!(
                "cannot sort Emails by {other:?}; sortable: receivedAt, sentAt, size, from, \
                 to, subject, hasKeyword, someInThreadHaveKeyword, allInThreadHaveKeyword"
            )))
        }
    };
    Ok(Comparator {
        property,
        ascending: w.is_ascending,
        collation,
    })
}

/// One sort value of one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    Int(i64),
    Text(String),
    Bool(bool),
}

/// The Emails of each thread among the messages considered.
pub(super) type Threads<'a> = HashMap<u64, Vec<&'a Message>>;

/// Groups `all` by thread.
pub(super) fn threads(all: &[Message]) -> Threads<'_> {
    let mut out: Threads<'_> = HashMap::new();
    for m in all {
        out.entry(m.thread_id).or_default().push(m);
    }
    out
}

fn value(c: &Comparator, m: &Message, thread: &[&Message]) -> SortValue {
    let h = &m.headers;
    match &c.property {
        Property::ReceivedAt => SortValue::Int(m.internal_date),
        Property::Size => SortValue::Int(i64::try_from(m.size).unwrap_or(i64::MAX)),
        Property::SentAt => SortValue::Int(sent_at(h.date.as_deref()).unwrap_or(m.internal_date)),
        Property::From => SortValue::Text(c.collation.key(&first_address(h.from.as_deref()))),
        Property::To => SortValue::Text(c.collation.key(&first_address(h.to.as_deref()))),
        Property::Subject => SortValue::Text(
            c.collation
                .key(&base_subject(h.subject.as_deref().unwrap_or_default())),
        ),
        Property::HasKeyword(k) => SortValue::Bool(keyword(m, k)),
        Property::SomeInThread(k) => SortValue::Bool(thread.iter().any(|t| keyword(t, k))),
        Property::AllInThread(k) => SortValue::Bool(thread.iter().all(|t| keyword(t, k))),
    }
}

/// Unix seconds of a `Date` field value, if it is an RFC 5322 date.
fn sent_at(date: Option<&str>) -> Option<i64> {
    let d = mail_parser::DateTime::parse_rfc822(date?.trim())?;
    d.is_valid().then(|| d.to_timestamp())
}

/// The name of the first address of an address field, else its address,
/// else "" (RFC 8621 §4.4.2).
fn first_address(field: Option<&str>) -> String {
    let Some(value) = field else {
        return String::new();
    };
    let mut raw = b"From: ".to_vec();
    raw.extend_from_slice(value.as_bytes());
    raw.extend_from_slice(b"\r\n\r\n");
    let parser = mail_parser::MessageParser::new().with_address_headers();
    let parsed = crate::mime::parse_headers(&parser, &raw);
    let first = parsed
        .as_ref()
        .and_then(|p| p.from())
        .and_then(|a| a.first());
    match first {
        Some(a) => a
            .name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .or(a.address.as_deref())
            .unwrap_or_default()
            .trim()
            .to_string(),
        None => decode_field(value.as_bytes()),
    }
}

/// `all` sorted by `comparators`, then by Email id; with `collapse`, only
/// the first Email of each thread (RFC 8621 §4.4.3).
pub(super) fn sort(
    all: Vec<Message>,
    comparators: &[Comparator],
    threads: &Threads<'_>,
    collapse: bool,
) -> Vec<Message> {
    let mut keyed: Vec<(Vec<SortValue>, Message)> = all
        .into_iter()
        .map(|m| {
            let thread = threads.get(&m.thread_id).map_or(&[][..], Vec::as_slice);
            let values = comparators.iter().map(|c| value(c, &m, thread)).collect();
            (values, m)
        })
        .collect();
    keyed.sort_by(|(va, a), (vb, b)| {
        comparators
            .iter()
            .zip(va.iter().zip(vb))
            .map(|(c, (x, y))| {
                let o = x.cmp(y);
                if c.ascending {
                    o
                } else {
                    o.reverse()
                }
            })
            .find(|o| *o != Ordering::Equal)
            .unwrap_or_else(|| a.email_id.cmp(&b.email_id))
    });
    let mut seen = HashSet::new();
    keyed
        .into_iter()
        .map(|(_, m)| m)
        .filter(|m| !collapse || seen.insert(m.thread_id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_address_prefers_the_name() {
        assert_eq!(
            first_address(Some("=?UTF-8?Q?J=C3=BCrgen?= <j@x.org>, a@y.org")),
            "Jürgen"
        );
        assert_eq!(first_address(Some("<b@x.org>")), "b@x.org");
        assert_eq!(first_address(Some("team: c@x.org, d@x.org;")), "c@x.org");
        assert_eq!(first_address(None), "");
    }

    #[test]
    fn sent_at_reads_the_zone_and_rejects_garbage() {
        assert_eq!(sent_at(Some("Thu, 1 Jan 1970 01:00:00 +0100")), Some(0));
        assert_eq!(sent_at(Some("yesterday")), None);
        assert_eq!(sent_at(None), None);
    }

    #[test]
    fn collations_and_unknowns() {
        let one = |v: Value| parse(Some(&Value::Array(vec![v])));
        assert!(one(serde_json::json!({"property": "subject", "collation": "i;basic"})).is_err());
        assert!(one(serde_json::json!({"property": "bogus"})).is_err());
        assert!(one(serde_json::json!({"property": "hasKeyword"})).is_err());
        assert!(one(serde_json::json!({"property": "from", "collation": "i;octet"})).is_ok());
        assert_eq!(Collation::Unicode.key("ÄBC"), "äbc");
        assert_eq!(Collation::Ascii.key("ÄBC"), "Äbc");
    }
}
