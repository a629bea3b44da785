//! Emails and threads (RFC 8621 §3, §4): `Email/get|changes` and
//! `Thread/get|changes` here, `Email/query` in `query`, `Email/set` and
//! `Email/import` in `set`, `Email/parse` in `parse_blob`, the Email
//! object itself in `parse` (its body in `body`, header forms in
//! `headers`), body-part blobs in `part_blob`.
//!
//! An Email is one stored message record, named by its stable Email id
//! (the store's `emails` index says where it is now); its Thread is the
//! store's thread (`store::threads`): `Thread/get` lists the members by
//! receivedAt, `Thread/changes` follows the log's thread changes.

mod body;
mod compose;
mod headers;
mod parse;
mod parse_blob;
pub(crate) mod part_blob;
mod query;
mod set;
pub(crate) mod source;

use serde::Deserialize;
use serde_json::{json, Map, Value};

pub(crate) use parse_blob::parse_blobs;
pub(crate) use query::{query, query_changes, snippet_get};
pub(crate) use set::{import, set};

use super::call::{get_response, parse as parse_args, select, Call, GetArgs};
use super::changes::changes as log_changes;
use super::error::Error;
use super::{ids, limits};
use crate::store::{AccountId, ChangedObject, MailStore, Message};
use body::Fetch;
use parse::{email_object, Need, Wanted};

/// The properties of the stored record that `Email/get` returns when
/// `properties` is null (RFC 8621 §4.2), before [`MESSAGE_PROPERTIES`].
const RECORD_PROPERTIES: &[&str] = &[
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
];

/// The properties read from the message itself that `Email/get` (after
/// [`RECORD_PROPERTIES`]) and `Email/parse` (alone, RFC 8621 §4.9)
/// return by default.
pub(super) const MESSAGE_PROPERTIES: &[&str] = &[
    "messageId",
    "inReplyTo",
    "references",
    "sender",
    "from",
    "to",
    "cc",
    "bcc",
    "replyTo",
    "subject",
    "sentAt",
    "hasAttachment",
    "preview",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
];

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmailGetArgs {
    #[serde(flatten)]
    base: GetArgs,
    #[serde(default)]
    fetch_text_body_values: bool,
    #[serde(default, rename = "fetchHTMLBodyValues")]
    fetch_html_body_values: bool,
    #[serde(default)]
    fetch_all_body_values: bool,
    #[serde(default)]
    max_body_value_bytes: usize,
    #[serde(default)]
    body_properties: Option<Vec<String>>,
}

/// Every message of the account, mailbox by mailbox.
pub(crate) fn all_messages(s: &MailStore, id: AccountId) -> Result<Vec<Message>, Error> {
    let mut out = Vec::new();
    for m in s.list_mailboxes(id)? {
        out.extend(s.list_messages(id, m.id, None, usize::MAX)?);
    }
    Ok(out)
}

/// The message an Email id names, if it exists.
pub(crate) fn find(s: &MailStore, id: AccountId, email: &str) -> Result<Option<Message>, Error> {
    Ok(find_many(s, id, &[email.to_string()])?.pop().flatten())
}

/// The messages Email ids name, in their order (`None`: no such Email
/// in this account), in two engine reads.
pub(crate) fn find_many(
    s: &MailStore,
    id: AccountId,
    emails: &[String],
) -> Result<Vec<Option<Message>>, Error> {
    let parsed: Vec<Option<u64>> = emails.iter().map(|e| ids::parse_email(e, id)).collect();
    let numbers: Vec<u64> = parsed.iter().flatten().copied().collect();
    let mut found = s.get_emails(id, &numbers)?.into_iter();
    Ok(parsed
        .iter()
        .map(|p| p.and_then(|_| found.next().flatten()))
        .collect())
}

/// `Email/get`.
pub(crate) async fn get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: EmailGetArgs = parse_args(args)?;
    let account_id = args.base.check(call)?;
    let fetch = Fetch {
        text: args.fetch_text_body_values,
        html: args.fetch_html_body_values,
        all: args.fetch_all_body_values,
        max_bytes: args.max_body_value_bytes,
    };
    let asked = args.base.ids.clone();
    let default: Vec<String> = RECORD_PROPERTIES
        .iter()
        .chain(MESSAGE_PROPERTIES)
        .map(|p| p.to_string())
        .collect();
    let props = args.base.properties.clone().unwrap_or(default);
    let wanted = Wanted::of(&props, args.body_properties.as_deref(), fetch)?;
    let keys = call.reading.clone();
    let (state, found, not_found) = call
        .blocking(move |s, id| {
            let state = s.account(id)?.modseq.to_string();
            let (msgs, missing) = match asked {
                None => (all_messages(s, id)?, Vec::new()),
                Some(w) => {
                    let (mut msgs, mut missing) = (Vec::new(), Vec::new());
                    for (e, m) in w.iter().zip(find_many(s, id, &w)?) {
                        match m {
                            Some(m) => msgs.push(m),
                            None => missing.push(e.clone()),
                        }
                    }
                    (msgs, missing)
                }
            };
            if msgs.len() > limits::OBJECTS_IN_GET {
                return Err(Error::RequestTooLarge(
                    "too many Emails; ask for ids".into(),
                ));
            }
            let mut found = Vec::with_capacity(msgs.len());
            for m in msgs {
                // why before presenting: the part ids say which view they
                // name, decided by the stored record and the keys.
                let decrypted = part_blob::decrypted_view(&m, keys.as_deref());
                let (m, raw) = match wanted.need {
                    Need::Metadata => (m, Vec::new()),
                    Need::Header | Need::Body => {
                        let shown = source::presented(s, id, m.clone(), keys.as_deref())?;
                        shown.unwrap_or((m, Vec::new()))
                    }
                };
                found.push(email_object(id, &m, &raw, &wanted, decrypted));
            }
            Ok((state, found, missing))
        })
        .await?;
    let list = found.into_iter().map(|o| select(o, Some(&props))).collect();
    Ok(get_response(account_id, state, list, not_found))
}

/// `Thread/get` (RFC 8621 §3.1): a thread's `emailIds` sorted by
/// receivedAt (then Email id), oldest first.
pub(crate) async fn thread_get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse_args(args)?;
    let account_id = args.check(call)?;
    let wanted = args.ids.clone().unwrap_or_default();
    let (state, list, not_found) = call
        .blocking(move |s, id| {
            let state = s.account(id)?.modseq.to_string();
            let (mut list, mut missing) = (Vec::new(), Vec::new());
            for t in wanted {
                let mut members = match ids::parse_thread(&t, id) {
                    Some(n) => s.thread_members(id, n)?,
                    None => Vec::new(),
                };
                if members.is_empty() {
                    missing.push(t);
                    continue;
                }
                members.sort_by_key(|&(email, received)| (received, email));
                let emails: Vec<String> = members
                    .iter()
                    .map(|&(email, _)| ids::email(id, email))
                    .collect();
                list.push(json!({ "id": t, "emailIds": emails }));
            }
            Ok((state, list, missing))
        })
        .await?;
    Ok(get_response(account_id, state, list, not_found))
}

/// `Email/changes` (RFC 8621 §4.3): a move is one update.
pub(crate) async fn changes(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let acct = call.account.id;
    log_changes(call, args, move |change| match &change.object {
        ChangedObject::Email(e) => Some(vec![(ids::email(acct, e.email), change.kind)]),
        ChangedObject::Message { .. } => None,
        _ => Some(Vec::new()),
    })
    .await
}

/// `Thread/changes` (RFC 8621 §3.2): a thread changes when an Email joins
/// or leaves it; created with its first Email, destroyed with its last.
pub(crate) async fn thread_changes(
    call: &mut Call,
    args: Map<String, Value>,
) -> Result<Value, Error> {
    let acct = call.account.id;
    log_changes(call, args, move |change| match &change.object {
        ChangedObject::Email(e) => Some(
            e.thread_change
                .map(|k| (ids::thread(acct, e.thread), k))
                .into_iter()
                .collect(),
        ),
        ChangedObject::Message { .. } => None,
        _ => Some(Vec::new()),
    })
    .await
}
