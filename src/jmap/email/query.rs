//! `Email/query` (RFC 8621 §4.4): filter conditions and operators, sort
//! by `receivedAt` or `size`.
//!
//! Text conditions compare text as a reader sees it, the same way IMAP
//! SEARCH does ([`crate::mime::search`]: RFC 2047 words, transfer
//! encodings and charsets decoded, case ignored in every script). `from`,
//! `to`, `cc`, `bcc`, `subject` and `header` look in the header fields,
//! which stay clear on encrypted messages too; `body` looks in the text
//! parts and `text` in both (RFC 8621 §4.4.1). The body of an encrypted
//! message is S/MIME ciphertext the server cannot read, so `body` never
//! matches it and `text` matches only its header fields.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::super::call::{direction, parse as parse_args, query_response, Call, QueryArgs};
use super::super::error::Error;
use super::super::ids;
use super::all_messages;
use crate::mime::search::{address_text, body_text, header_text, Needle};
use crate::smime::Split;
use crate::store::Message;

/// A filter: a condition or an operator over filters.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Filter {
    Operator {
        operator: Op,
        conditions: Vec<Filter>,
    },
    Condition(Box<Condition>),
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Op {
    And,
    Or,
    Not,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Condition {
    in_mailbox: Option<String>,
    in_mailbox_other_than: Option<Vec<String>>,
    before: Option<String>,
    after: Option<String>,
    min_size: Option<u64>,
    max_size: Option<u64>,
    has_keyword: Option<String>,
    not_keyword: Option<String>,
    all_in_thread_have_keyword: Option<String>,
    some_in_thread_have_keyword: Option<String>,
    none_in_thread_have_keyword: Option<String>,
    text: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cc: Option<String>,
    bcc: Option<String>,
    subject: Option<String>,
    body: Option<String>,
    header: Option<Vec<String>>,
}

/// Header fields the store indexes, so that a `header` condition on them
/// needs no read of the message.
const INDEXED: [&str; 8] = [
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
];

/// Unix seconds of a UTCDate (`2024-01-31T12:00:00Z`, fraction allowed).
pub(crate) fn parse_utc_date(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix('z'))?;
    let (date, time_part) = s.split_once(['T', 't'])?;
    let mut d = date.splitn(3, '-').map(str::parse::<i32>);
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let hms = time_part.split('.').next()?;
    let mut t = hms.splitn(3, ':').map(str::parse::<u8>);
    let (h, mi, se) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let month = time::Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date = time::Date::from_calendar_date(y, month, u8::try_from(da).ok()?).ok()?;
    let time = time::Time::from_hms(h, mi, se).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, time)
            .assume_utc()
            .unix_timestamp(),
    )
}

/// An indexed unstructured field (subject, ids) holding `needle` once
/// decoded.
fn contains(field: Option<&String>, needle: &str) -> bool {
    field.is_some_and(|f| Needle::new(needle.as_bytes()).is_in_field(f.as_bytes()))
}

/// An indexed address field holding `needle` in an address or a name
/// (comments, groups and encoded words resolved as for IMAP).
fn has_address(field: Option<&String>, needle: &str) -> bool {
    field.is_some_and(|f| Needle::new(needle.as_bytes()).is_in(&address_text(f.as_bytes())))
}

/// What a condition looks at: the record always; the stored bytes when
/// the filter needs them ([`Filter::needs_raw`]).
struct Candidate<'a> {
    msg: &'a Message,
    raw: Option<&'a [u8]>,
}

impl Candidate<'_> {
    /// Bcc, which the store does not index.
    fn bcc(&self, needle: &str) -> bool {
        let Some(raw) = self.raw else {
            return false;
        };
        let n = Needle::new(needle.as_bytes());
        let split = Split::new(raw);
        let found = split
            .field_values(b"bcc")
            .any(|v| n.is_in(&address_text(v)));
        found
    }

    /// The decoded text of a clear message's parts; nothing for an
    /// encrypted one (ciphertext).
    fn body(&self) -> Option<String> {
        if self.msg.encrypted {
            return None;
        }
        self.raw.map(body_text)
    }
}

fn has_keyword(m: &Message, k: &str) -> bool {
    super::parse::keywords(&m.flags).contains_key(&k.to_lowercase())
}

impl Condition {
    fn check(&self) -> Result<(), Error> {
        for d in [&self.before, &self.after].into_iter().flatten() {
            if parse_utc_date(d).is_none() {
                return Err(Error::InvalidArguments(format!("{d:?} is not a UTCDate")));
            }
        }
        Ok(())
    }

    fn needs_raw(&self) -> bool {
        self.text.is_some()
            || self.body.is_some()
            || self.bcc.is_some()
            || self
                .header
                .as_ref()
                .and_then(|h| h.first())
                .is_some_and(|name| !INDEXED.contains(&name.to_lowercase().as_str()))
    }

    fn matches(&self, c: &Candidate<'_>) -> bool {
        let m = c.msg;
        let h = &m.headers;
        let date = |d: &Option<String>| d.as_deref().and_then(parse_utc_date);
        let mailbox = ids::mailbox(m.mailbox);
        let keyword_ok = [
            &self.has_keyword,
            &self.all_in_thread_have_keyword,
            &self.some_in_thread_have_keyword,
        ]
        .into_iter()
        .flatten()
        .all(|k| has_keyword(m, k))
            && [&self.not_keyword, &self.none_in_thread_have_keyword]
                .into_iter()
                .flatten()
                .all(|k| !has_keyword(m, k));
        keyword_ok
            && self.in_mailbox.as_ref().is_none_or(|b| *b == mailbox)
            && self
                .in_mailbox_other_than
                .as_ref()
                .is_none_or(|l| !l.contains(&mailbox))
            && date(&self.before).is_none_or(|t| m.internal_date < t)
            && date(&self.after).is_none_or(|t| m.internal_date >= t)
            && self.min_size.is_none_or(|s| m.size >= s)
            && self.max_size.is_none_or(|s| m.size < s)
            && self
                .from
                .as_ref()
                .is_none_or(|t| has_address(h.from.as_ref(), t))
            && self
                .to
                .as_ref()
                .is_none_or(|t| has_address(h.to.as_ref(), t))
            && self
                .cc
                .as_ref()
                .is_none_or(|t| has_address(h.cc.as_ref(), t))
            && self.bcc.as_ref().is_none_or(|t| c.bcc(t))
            && self
                .subject
                .as_ref()
                .is_none_or(|t| contains(h.subject.as_ref(), t))
            && self.body.as_ref().is_none_or(|t| {
                c.body()
                    .is_some_and(|b| Needle::new(t.as_bytes()).is_in(&b))
            })
            && self.text.as_ref().is_none_or(|t| text_matches(c, t))
            && self.header.as_ref().is_none_or(|hv| header_matches(c, hv))
    }
}

/// `text`: every header field (decoded) or the body's text.
fn text_matches(c: &Candidate<'_>, text: &str) -> bool {
    let n = Needle::new(text.as_bytes());
    let h = &c.msg.headers;
    [&h.from, &h.to, &h.cc].iter().any(|f| {
        f.as_ref()
            .is_some_and(|f| n.is_in(&address_text(f.as_bytes())))
    }) || contains(h.subject.as_ref(), text)
        || c.raw.is_some_and(|raw| n.is_in(&header_text(raw)))
        || c.body().is_some_and(|b| n.is_in(&b))
}

/// `header: [name]` or `[name, value]`: the indexed fields from the
/// record, any other field from the stored header (each of its
/// occurrences).
fn header_matches(c: &Candidate<'_>, cond: &[String]) -> bool {
    let h = &c.msg.headers;
    let Some(name) = cond.first() else {
        return false;
    };
    if !INDEXED.contains(&name.to_lowercase().as_str()) {
        let Some(raw) = c.raw else {
            return false;
        };
        let split = Split::new(raw);
        let mut values = split.field_values(name.as_bytes());
        let found = match cond.get(1) {
            None => values.next().is_some(),
            Some(v) => {
                let n = Needle::new(v.as_bytes());
                values.any(|f| n.is_in_field(f))
            }
        };
        return found;
    }
    let field = match name.to_lowercase().as_str() {
        "from" => &h.from,
        "to" => &h.to,
        "cc" => &h.cc,
        "subject" => &h.subject,
        "date" => &h.date,
        "message-id" => &h.message_id,
        "in-reply-to" => &h.in_reply_to,
        "references" => &h.references,
        _ => return false,
    };
    match cond.get(1) {
        None => field.is_some(),
        Some(v) if matches!(name.to_lowercase().as_str(), "from" | "to" | "cc") => {
            has_address(field.as_ref(), v)
        }
        Some(v) => contains(field.as_ref(), v),
    }
}

impl Filter {
    fn check(&self) -> Result<(), Error> {
        match self {
            Filter::Operator { conditions, .. } => conditions.iter().try_for_each(Filter::check),
            Filter::Condition(c) => c.check(),
        }
    }

    /// Whether some condition needs the stored bytes, not only the record.
    fn needs_raw(&self) -> bool {
        match self {
            Filter::Operator { conditions, .. } => conditions.iter().any(Filter::needs_raw),
            Filter::Condition(c) => c.needs_raw(),
        }
    }

    fn matches(&self, m: &Candidate<'_>) -> bool {
        match self {
            Filter::Operator {
                operator: Op::And,
                conditions,
            } => conditions.iter().all(|f| f.matches(m)),
            Filter::Operator {
                operator: Op::Or,
                conditions,
            } => conditions.iter().any(|f| f.matches(m)),
            Filter::Operator {
                operator: Op::Not,
                conditions,
            } => !conditions.iter().any(|f| f.matches(m)),
            Filter::Condition(c) => c.matches(m),
        }
    }
}

/// `Email/query`.
pub(crate) async fn query(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: QueryArgs = parse_args(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let filter: Option<Filter> = match &args.filter {
        None | Some(Value::Null) => None,
        Some(f) => Some(
            serde_json::from_value(f.clone())
                .map_err(|e| Error::UnsupportedFilter(format!("Email filter: {e}")))?,
        ),
    };
    if let Some(f) = &filter {
        f.check()?;
    }
    let (state, mut all) = call
        .blocking(move |s, id| {
            let state = s.account(id)?.modseq.to_string();
            let mut all = all_messages(s, id)?;
            if let Some(f) = &filter {
                let raw = f.needs_raw();
                let mut kept = Vec::with_capacity(all.len());
                for m in all {
                    // why one message at a time: a body search over a whole
                    // account holds one message's bytes, not all of them.
                    let bytes = if raw { s.get_blob(id, m.blob)? } else { None };
                    let c = Candidate {
                        msg: &m,
                        raw: bytes.as_deref(),
                    };
                    if f.matches(&c) {
                        kept.push(m);
                    }
                }
                all = kept;
            }
            Ok((state, all))
        })
        .await?;
    all.sort_by_key(|m| (m.internal_date, m.mailbox, m.uid));
    for comparator in args.sort.iter().flatten().rev() {
        let dir = direction(comparator.is_ascending);
        match comparator.property.as_str() {
            "receivedAt" => all.sort_by(|a, b| dir(a.internal_date.cmp(&b.internal_date))),
            "size" => all.sort_by(|a, b| dir(a.size.cmp(&b.size))),
            other => return Err(Error::UnsupportedSort(format!("cannot sort by {other}"))),
        }
    }
    let acct = call.account.id;
    let ids = all.iter().map(|m| ids::email(acct, m.email_id)).collect();
    query_response(account_id, state, &args, ids)
}

#[cfg(test)]
mod tests {
    use super::parse_utc_date;

    #[test]
    fn utc_dates() {
        assert_eq!(parse_utc_date("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_utc_date("2024-02-29T12:00:01.5Z"),
            Some(1_709_208_001)
        );
        assert_eq!(parse_utc_date("2024-02-30T00:00:00Z"), None);
        assert_eq!(parse_utc_date("2024-01-01T00:00:00+01:00"), None);
    }
}
