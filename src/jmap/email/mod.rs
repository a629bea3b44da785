//! Emails and threads (RFC 8621 §3, §4): `Email/get|changes` and
//! `Thread/get|changes` here, `Email/query` in `query`, `Email/set` and
//! `Email/import` in `set`, the Email object itself in `parse`.
//!
//! An Email is one stored (mailbox, UID) record; its thread holds just it.

mod parse;
mod query;
mod set;

use serde::Deserialize;
use serde_json::{json, Map, Value};

pub(crate) use query::query;
pub(crate) use set::{import, set};

use super::call::{get_response, parse as parse_args, select, Call, GetArgs};
use super::changes::changes as log_changes;
use super::error::Error;
use super::{ids, limits};
use crate::store::{AccountId, ChangedObject, MailStore, Message};
use parse::{email_object, Fetch, Need};

/// The properties returned when `properties` is null (RFC 8621 §4.2).
const DEFAULT_PROPERTIES: &[&str] = &[
    "id",
    "blobId",
    "threadId",
    "mailboxIds",
    "keywords",
    "size",
    "receivedAt",
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
    let Some((mailbox, uid)) = ids::parse_email(email) else {
        return Ok(None);
    };
    match s.get_message(id, mailbox, uid) {
        Ok(m) => Ok(Some(m)),
        Err(crate::store::MailError::MessageNotFound { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
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
    let wanted = args.base.ids.clone();
    let default: Vec<String> = DEFAULT_PROPERTIES.iter().map(|p| p.to_string()).collect();
    let props = args.base.properties.clone().unwrap_or(default);
    let need = Need::of(&props);
    let (state, found, not_found) = call
        .blocking(move |s, id| {
            let state = s.account(id)?.modseq.to_string();
            let (msgs, missing) = match wanted {
                None => (all_messages(s, id)?, Vec::new()),
                Some(w) => {
                    let (mut msgs, mut missing) = (Vec::new(), Vec::new());
                    for e in w {
                        match find(s, id, &e)? {
                            Some(m) => msgs.push(m),
                            None => missing.push(e),
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
                let raw = match need {
                    Need::Metadata => Vec::new(),
                    Need::Header | Need::Body => s.get_blob(id, m.blob)?.unwrap_or_default(),
                };
                found.push(email_object(&m, &raw, fetch, need));
            }
            Ok((state, found, missing))
        })
        .await?;
    let list = found.into_iter().map(|o| select(o, Some(&props))).collect();
    Ok(get_response(account_id, state, list, not_found))
}

/// `Thread/get`: the thread of an Email holds that Email only.
pub(crate) async fn thread_get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse_args(args)?;
    let account_id = args.check(call)?;
    let wanted = args.ids.clone().unwrap_or_default();
    let (state, list, not_found) = call
        .blocking(move |s, id| {
            let state = s.account(id)?.modseq.to_string();
            let (mut list, mut missing) = (Vec::new(), Vec::new());
            for t in wanted {
                let msg = match ids::parse_thread(&t) {
                    Some((m, u)) => find(s, id, &ids::email(m, u))?,
                    None => None,
                };
                match msg {
                    Some(m) => {
                        list.push(json!({ "id": t, "emailIds": [ids::email(m.mailbox, m.uid)] }))
                    }
                    None => missing.push(t),
                }
            }
            Ok((state, list, missing))
        })
        .await?;
    Ok(get_response(account_id, state, list, not_found))
}

/// `Email/changes`.
pub(crate) async fn changes(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    log_changes(call, args, |change| match &change.object {
        ChangedObject::Message { mailbox, uid } => vec![(ids::email(*mailbox, *uid), change.kind)],
        _ => Vec::new(),
    })
    .await
}

/// `Thread/changes`.
pub(crate) async fn thread_changes(
    call: &mut Call,
    args: Map<String, Value>,
) -> Result<Value, Error> {
    log_changes(call, args, |change| match &change.object {
        ChangedObject::Message { mailbox, uid } => vec![(ids::thread(*mailbox, *uid), change.kind)],
        _ => Vec::new(),
    })
    .await
}
