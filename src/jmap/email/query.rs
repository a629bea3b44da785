//! `Email/query` (RFC 8621 §4.4): filter conditions and operators here,
//! sorting and `collapseThreads` in `sort`, `Email/queryChanges` in
//! `changes`, `SearchSnippet/get` (RFC 8621 §5) in `snippet`.
//!
//! Text conditions compare text as a reader sees it, the same way IMAP
//! SEARCH does ([`crate::mime::search`]: RFC 2047 words, transfer
//! encodings and charsets decoded, case ignored in every script). `from`,
//! `to`, `cc`, `bcc`, `subject` and `header` look in the header fields,
//! which stay clear on encrypted messages too; `body` looks in the text
//! parts and `text` in both (RFC 8621 §4.4.1). The body of an encrypted
//! message is S/MIME ciphertext the server cannot read, so `body` never
//! matches it and `text` matches only its header fields — unless the
//! account has server-side reading on, when the message is searched as
//! `email::source` presents it (decrypted). The
//! `...InThreadHaveKeyword` conditions look at every Email of the
//! message's thread, in any mailbox.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::super::call::{parse as parse_args, query_response, Call, QueryArgs};
use super::super::error::Error;
use super::super::ids;
use super::all_messages;
use crate::mime::search::{address_text, body_text, header_text, Needle};
use crate::reading::Unlocked;
use crate::smime::Split;
use crate::store::{AccountId, MailStore, Message};

mod changes;
mod snippet;
mod sort;

pub(crate) use changes::query_changes;
pub(crate) use snippet::snippet_get;

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
    /// The Emails of its thread (itself among them).
    thread: &'a [&'a Message],
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
    /// encrypted one (ciphertext). A message server-side reading presents
    /// decrypted is clear here (`email::source::presented`).
    fn body(&self) -> Option<String> {
        if self.msg.encrypted {
            return None;
        }
        self.raw.map(body_text)
    }
}

/// Whether `m` has keyword `k` (RFC 8621 §4.1.1: case-insensitive).
fn keyword(m: &Message, k: &str) -> bool {
    let f = &m.flags;
    match k.to_ascii_lowercase().as_str() {
        "$seen" => f.seen,
        "$answered" => f.answered,
        "$flagged" => f.flagged,
        "$draft" => f.draft,
        _ => f.keywords.iter().any(|have| have.eq_ignore_ascii_case(k)),
    }
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

    /// Whether it looks at other Emails of the thread.
    fn on_thread(&self) -> bool {
        self.all_in_thread_have_keyword.is_some()
            || self.some_in_thread_have_keyword.is_some()
            || self.none_in_thread_have_keyword.is_some()
    }

    /// Whether it looks only at what never changes for an Email (not its
    /// mailbox, not keywords).
    fn immutable(&self) -> bool {
        self.in_mailbox.is_none()
            && self.in_mailbox_other_than.is_none()
            && self.has_keyword.is_none()
            && self.not_keyword.is_none()
            && !self.on_thread()
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
        let thread = |k: &String, all: bool| {
            let mut members = c.thread.iter().chain(c.thread.is_empty().then_some(&m));
            if all {
                members.all(|t| keyword(t, k))
            } else {
                members.any(|t| keyword(t, k))
            }
        };
        let keyword_ok = self.has_keyword.as_ref().is_none_or(|k| keyword(m, k))
            && self.not_keyword.as_ref().is_none_or(|k| !keyword(m, k))
            && self
                .all_in_thread_have_keyword
                .as_ref()
                .is_none_or(|k| thread(k, true))
            && self
                .some_in_thread_have_keyword
                .as_ref()
                .is_none_or(|k| thread(k, false))
            && self
                .none_in_thread_have_keyword
                .as_ref()
                .is_none_or(|k| !thread(k, false));
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

    /// Conditions and operators in it.
    fn size(&self) -> usize {
        match self {
            Filter::Operator { conditions, .. } => {
                conditions.iter().fold(1, |n, f| n.saturating_add(f.size()))
            }
            Filter::Condition(_) => 1,
        }
    }

    /// Whether some condition is true of `pred`.
    fn any(&self, pred: &impl Fn(&Condition) -> bool) -> bool {
        match self {
            Filter::Operator { conditions, .. } => conditions.iter().any(|f| f.any(pred)),
            Filter::Condition(c) => pred(c),
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

/// Most conditions and operators in one filter. why: each is evaluated
/// for every message of the account, so a filter of a few MiB (within
/// `maxSizeRequest`) would otherwise cost billions of comparisons;
/// no client needs more than a few dozen.
const MAX_FILTER: usize = 256;

/// What an `Email/query` asks for, parsed and checked: the same for
/// `Email/queryChanges`, which runs it again.
#[derive(Debug)]
pub(super) struct Spec {
    filter: Option<Filter>,
    sort: Vec<sort::Comparator>,
    collapse: bool,
}

impl Spec {
    /// From the `filter`, `sort` and `collapseThreads` arguments.
    fn parse(args: &Map<String, Value>) -> Result<Spec, Error> {
        let filter: Option<Filter> = match args.get("filter") {
            None | Some(Value::Null) => None,
            Some(f) => Some(
                serde_json::from_value(f.clone())
                    .map_err(|e| Error::UnsupportedFilter(format!("Email filter: {e}")))?,
            ),
        };
        if let Some(f) = &filter {
            if f.size() > MAX_FILTER {
                return Err(Error::UnsupportedFilter(format!(
                    "the filter has over {MAX_FILTER} conditions and operators; \
                     split the query"
                )));
            }
            f.check()?;
        }
        let collapse = match args.get("collapseThreads") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::InvalidArguments(format!(
                    "collapseThreads must be a boolean, not {other}"
                )))
            }
        };
        Ok(Spec {
            filter,
            sort: sort::parse(args.get("sort"))?,
            collapse,
        })
    }

    /// Whether an Email's place in the results depends on the other
    /// Emails of its thread.
    fn on_thread(&self) -> bool {
        self.collapse
            || self.sort.iter().any(sort::Comparator::on_thread)
            || self
                .filter
                .as_ref()
                .is_some_and(|f| f.any(&Condition::on_thread))
    }

    /// Whether filter and sort look only at what never changes for an
    /// Email (RFC 8620 §5.6 `upToId`).
    fn immutable(&self) -> bool {
        !self.collapse
            && self.sort.iter().all(sort::Comparator::immutable)
            && !self
                .filter
                .as_ref()
                .is_some_and(|f| f.any(&|c: &Condition| !c.immutable()))
    }

    /// The whole result, sorted (and collapsed).
    fn run(
        &self,
        s: &MailStore,
        id: AccountId,
        keys: Option<&Unlocked>,
    ) -> Result<Vec<Message>, Error> {
        let all = all_messages(s, id)?;
        let threads = sort::threads(&all);
        let mut keep = vec![true; all.len()];
        if let Some(f) = &self.filter {
            let raw = f.needs_raw();
            for (m, k) in all.iter().zip(keep.iter_mut()) {
                // why one message at a time: a body search over a whole
                // account holds one message's bytes, not all of them.
                let shown = if raw {
                    super::source::presented(s, id, m.clone(), keys)?
                } else {
                    None
                };
                let (msg, bytes) = match &shown {
                    Some((msg, bytes)) => (msg, Some(bytes.as_slice())),
                    None => (m, None),
                };
                let c = Candidate {
                    msg,
                    raw: bytes,
                    thread: threads.get(&m.thread_id).map_or(&[][..], Vec::as_slice),
                };
                *k = f.matches(&c);
            }
        }
        let kept: Vec<Message> = all
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(m, _)| m.clone())
            .collect();
        Ok(sort::sort(kept, &self.sort, &threads, self.collapse))
    }
}

/// `accountNotFound` for another account's `accountId`, before anything
/// else of the arguments is looked at (a missing one is left to the
/// typed parse: `invalidArguments`).
fn own_account(call: &Call, args: &Map<String, Value>) -> Result<(), Error> {
    match args.get("accountId").and_then(Value::as_str) {
        Some(a) => call.check_account(a).map(drop),
        None => Ok(()),
    }
}

/// `Email/query`.
pub(crate) async fn query(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    own_account(call, &args)?;
    let spec = Spec::parse(&args)?;
    let args: QueryArgs = parse_args(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let keys = call.reading.clone();
    let (state, all) = call
        .blocking(move |s, id| {
            // why the state first: a change that lands while the query
            // runs is then reported again by queryChanges, never missed.
            let state = s.account(id)?.modseq.to_string();
            Ok((state, spec.run(s, id, keys.as_deref())?))
        })
        .await?;
    let acct = call.account.id;
    let ids = all.iter().map(|m| ids::email(acct, m.email_id)).collect();
    let mut out = query_response(account_id, state, &args, ids)?;
    if let Some(obj) = out.as_object_mut() {
        obj.insert("canCalculateChanges".into(), Value::Bool(true));
    }
    Ok(out)
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
