//! `Email/query` (RFC 8621 §4.4): filter conditions and operators, sort
//! by `receivedAt` or `size`.
//!
//! Text conditions (`text`, `from`, `to`, `cc`, `subject`, `header`) match
//! the header fields only, case-insensitively: the server cannot read the
//! body of an encrypted message, and searching only plaintext bodies would
//! make results depend on a setting the client does not see. `body` is
//! therefore an `unsupportedFilter`.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::super::call::{direction, parse as parse_args, query_response, Call, QueryArgs};
use super::super::error::Error;
use super::super::ids;
use super::all_messages;
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
    subject: Option<String>,
    header: Option<Vec<String>>,
}

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

fn contains(field: Option<&String>, needle: &str) -> bool {
    field.is_some_and(|f| f.to_lowercase().contains(&needle.to_lowercase()))
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

    fn matches(&self, m: &Message) -> bool {
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
                .is_none_or(|t| contains(h.from.as_ref(), t))
            && self.to.as_ref().is_none_or(|t| contains(h.to.as_ref(), t))
            && self.cc.as_ref().is_none_or(|t| contains(h.cc.as_ref(), t))
            && self
                .subject
                .as_ref()
                .is_none_or(|t| contains(h.subject.as_ref(), t))
            && self.text.as_ref().is_none_or(|t| {
                [&h.from, &h.to, &h.cc, &h.subject]
                    .iter()
                    .any(|f| contains(f.as_ref(), t))
            })
            && self.header.as_ref().is_none_or(|hv| header_matches(m, hv))
    }
}

/// `header: [name]` or `[name, value]` against the clear fields the store
/// indexes.
fn header_matches(m: &Message, cond: &[String]) -> bool {
    let h = &m.headers;
    let Some(name) = cond.first() else {
        return false;
    };
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

    fn matches(&self, m: &Message) -> bool {
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
        Some(f) => Some(serde_json::from_value(f.clone()).map_err(|e| {
            Error::UnsupportedFilter(format!(
                "Email filter: {e} (body text is not searchable here)"
            ))
        })?),
    };
    if let Some(f) = &filter {
        f.check()?;
    }
    let (state, mut all) = call
        .blocking(|s, id| Ok((s.account(id)?.modseq.to_string(), all_messages(s, id)?)))
        .await?;
    if let Some(f) = &filter {
        all.retain(|m| f.matches(m));
    }
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
