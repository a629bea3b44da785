//! `Email/set` (RFC 8621 §4.6) and `Email/import` (§4.8).
//!
//! `Email/set` creates Emails from JSON (`compose`), updates `keywords`
//! and `mailboxIds` (whole or by patch path, `keywords/$seen`) and
//! destroys. A stored
//! message is in exactly one mailbox, so `mailboxIds` must name one; a
//! move keeps the Email's id (RFC 8621 §4.1.1) and is an update.
//!
//! `Email/import` hands the uploaded bytes to [`Ingest::append`]
//! (`crate::ingest::Ingest::append`), which runs the hook chain when the
//! account has `encryptOnAppend`: what is stored may be the S/MIME form,
//! so the returned `blobId` and `size` are those of the stored message.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::super::call::{parse as parse_args, Call};
use super::super::error::Error;
use super::super::ids;
use super::super::set::{object, SetArgs, SetOutcome};
use super::find;
use super::parse::{flags_of, keywords};
use super::query::parse_utc_date;
use crate::ingest::Append;
use crate::store::{FlagChange, MailboxId};

/// `Email/set`.
pub(crate) async fn set(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: SetArgs = parse_args(args)?;
    let mut out = SetOutcome::begin(call, &args).await?;
    for (cid, obj) in args.create.unwrap_or_default() {
        let r = create(call, obj).await;
        out.created(call, cid, r);
    }
    for (id, patch) in args.update.unwrap_or_default() {
        let r = update(call, &id, patch).await;
        out.updated(id, r);
    }
    for id in args.destroy.unwrap_or_default() {
        let r = destroy(call, &id).await;
        out.destroyed(id, r);
    }
    out.finish(call).await
}

/// Applies a set-or-patch of a `String → true` map property.
fn patched(
    current: Map<String, Value>,
    patch: &Map<String, Value>,
    prop: &str,
) -> Result<Option<Vec<String>>, Error> {
    let bad = |why: String| Error::InvalidProperties {
        properties: vec![prop.to_string()],
        description: why,
    };
    let mut set = match patch.get(prop) {
        Some(Value::Object(whole)) => whole.clone(),
        Some(_) => return Err(bad(format!("{prop} must be an object of `name: true`"))),
        None => current,
    };
    let mut touched = patch.contains_key(prop);
    let prefix = format!("{prop}/");
    for (path, v) in patch {
        let Some(key) = path.strip_prefix(&prefix) else {
            continue;
        };
        touched = true;
        match v {
            Value::Bool(true) => set.insert(key.to_string(), json!(true)),
            Value::Null | Value::Bool(false) => set.remove(key),
            _ => return Err(bad(format!("{path} must be true or null"))),
        };
    }
    if !touched {
        return Ok(None);
    }
    if set.values().any(|v| *v != json!(true)) {
        return Err(bad(format!("every value of {prop} must be true")));
    }
    Ok(Some(set.keys().cloned().collect()))
}

fn one_mailbox(call: &Call, list: &[String]) -> Result<MailboxId, Error> {
    let bad = |why: &str| Error::InvalidProperties {
        properties: vec!["mailboxIds".into()],
        description: why.to_string(),
    };
    let [only] = list else {
        return Err(bad(
            "a message is in exactly one mailbox on this server; name one in mailboxIds",
        ));
    };
    ids::parse_mailbox(&call.resolve_id(only)?).ok_or_else(|| bad("no such mailbox"))
}

async fn update(call: &Call, id: &str, patch: Value) -> Result<Option<Value>, Error> {
    let patch = object(patch)?;
    let allowed = |k: &String| {
        k == "keywords"
            || k == "mailboxIds"
            || k.starts_with("keywords/")
            || k.starts_with("mailboxIds/")
    };
    if let Some(bad) = patch.keys().find(|k| !allowed(k)) {
        return Err(Error::InvalidProperties {
            properties: vec![bad.clone()],
            description: format!("{bad} cannot be changed; keywords and mailboxIds can"),
        });
    }
    let email = id.to_string();
    let msg = call
        .blocking(move |s, acct| find(s, acct, &email))
        .await?
        .ok_or(Error::NotFound)?;
    let new_keywords = patched(keywords(&msg.flags), &patch, "keywords")?;
    let current_box = json!({ ids::mailbox(msg.mailbox): true });
    let current_box = current_box.as_object().cloned().unwrap_or_default();
    let target = match patched(current_box, &patch, "mailboxIds")? {
        Some(list) => Some(one_mailbox(call, &list)?),
        None => None,
    };
    call.blocking(move |s, acct| {
        if let Some(k) = new_keywords {
            let flags = flags_of(&k, &msg.flags);
            s.set_flags(acct, msg.mailbox, &[msg.uid], &FlagChange::Replace(flags))?;
        }
        match target {
            Some(to) if to != msg.mailbox => {
                s.get_mailbox(acct, to)?;
                if s.move_messages(acct, msg.mailbox, &[msg.uid], to)?
                    .is_empty()
                {
                    return Err(Error::NotFound);
                }
                Ok(None)
            }
            _ => Ok(None),
        }
    })
    .await
}

async fn destroy(call: &Call, id: &str) -> Result<(), Error> {
    let email = id.to_string();
    call.blocking(move |s, acct| {
        let msg = find(s, acct, &email)?.ok_or(Error::NotFound)?;
        if s.expunge(acct, msg.mailbox, &[msg.uid])?.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(())
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportArgs {
    account_id: String,
    #[serde(default)]
    if_in_state: Option<String>,
    emails: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct EmailImport {
    blob_id: String,
    mailbox_ids: Map<String, Value>,
    #[serde(default)]
    keywords: Map<String, Value>,
    #[serde(default)]
    received_at: Option<String>,
}

/// `Email/import`.
pub(crate) async fn import(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: ImportArgs = parse_args(args)?;
    let as_set = SetArgs {
        account_id: args.account_id,
        if_in_state: args.if_in_state,
        create: Some(args.emails.clone()),
        update: None,
        destroy: None,
        extra: Map::new(),
    };
    let mut out = SetOutcome::begin(call, &as_set).await?;
    for (cid, obj) in args.emails {
        let r = import_one(call, obj).await;
        out.created(call, cid, r);
    }
    let mut response = out.finish(call).await?;
    if let Some(obj) = response.as_object_mut() {
        for key in ["updated", "destroyed", "notUpdated", "notDestroyed"] {
            obj.remove(key);
        }
    }
    Ok(response)
}

/// Creates an Email from JSON (`compose`), stored through the hook chain
/// as an import is; the client's bytes are kept for this request
/// (`Call::composed`), for an `EmailSubmission` of it.
async fn create(call: &mut Call, obj: Value) -> Result<Value, Error> {
    let mut obj = object(obj)?;
    let boxes: Vec<String> = match obj.remove("mailboxIds") {
        Some(Value::Object(m)) => m
            .into_iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .map(|(k, _)| k)
            .collect(),
        _ => {
            return Err(Error::InvalidProperties {
                properties: vec!["mailboxIds".into()],
                description: "mailboxIds is required: the mailbox to store the Email in".into(),
            })
        }
    };
    let boxes: Vec<String> = boxes
        .iter()
        .map(|b| call.resolve_id(b))
        .collect::<Result<_, _>>()?;
    let mailbox = one_mailbox(call, &boxes)?;
    let keywords: Vec<String> = match obj.remove("keywords") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(m)) => m
            .into_iter()
            .filter(|(_, on)| on.as_bool() == Some(true))
            .map(|(k, _)| k)
            .collect(),
        Some(_) => {
            return Err(Error::InvalidProperties {
                properties: vec!["keywords".into()],
                description: "keywords is an object of keyword: true".into(),
            })
        }
    };
    let internal_date = received_at(obj.remove("receivedAt"))?;
    let raw = std::sync::Arc::new(super::compose::compose(call, &obj).await?);
    let (created, email_id) = store(call, mailbox, &keywords, internal_date, raw.to_vec()).await?;
    call.composed.insert(email_id, raw);
    Ok(created)
}

/// Stores `raw` through the hook chain (`Ingest::append`); returns the
/// created Email's `id`, `blobId`, `threadId` and `size`, and its number.
async fn store(
    call: &Call,
    mailbox: MailboxId,
    keywords: &[String],
    internal_date: i64,
    raw: Vec<u8>,
) -> Result<(Value, u64), Error> {
    call.blocking(move |s, acct| Ok(s.get_mailbox(acct, mailbox)?))
        .await?;
    let append = Append {
        account: call.account.id,
        mailbox,
        flags: flags_of(keywords, &Default::default()),
        internal_date,
        source: sealmail_plugin_api::Source::JmapImport,
    };
    let msg = call.server.ctx.ingest.append(append, raw).await?;
    let acct = call.account.id;
    let created = json!({
        "id": ids::email(acct, msg.email_id),
        "blobId": ids::blob(msg.blob),
        "threadId": ids::thread(acct, msg.thread_id),
        "size": msg.size,
    });
    Ok((created, msg.email_id))
}

/// `receivedAt` of a create, or now.
fn received_at(v: Option<Value>) -> Result<i64, Error> {
    match v {
        None | Some(Value::Null) => Ok(time::OffsetDateTime::now_utc().unix_timestamp()),
        Some(Value::String(d)) => parse_utc_date(&d).ok_or_else(|| Error::InvalidProperties {
            properties: vec!["receivedAt".into()],
            description: format!("{d:?} is not a UTCDate"),
        }),
        Some(_) => Err(Error::InvalidProperties {
            properties: vec!["receivedAt".into()],
            description: "receivedAt is a UTCDate string".into(),
        }),
    }
}

async fn import_one(call: &Call, obj: Value) -> Result<Value, Error> {
    let req: EmailImport = serde_json::from_value(obj).map_err(|e| Error::InvalidProperties {
        properties: Vec::new(),
        description: e.to_string(),
    })?;
    let boxes: Vec<String> = req.mailbox_ids.keys().cloned().collect();
    let mailbox = one_mailbox(call, &boxes)?;
    let keywords: Vec<String> = req.keywords.keys().cloned().collect();
    let internal_date = received_at(req.received_at.clone().map(Value::String))?;
    let raw = match call.server.uploads.get(call.account.id, &req.blob_id) {
        Some(d) => d.to_vec(),
        None => {
            let hash =
                ids::parse_blob(&req.blob_id).ok_or(Error::BlobNotFound(req.blob_id.clone()))?;
            call.blocking(move |s, acct| Ok(s.get_blob(acct, hash)?))
                .await?
                .ok_or(Error::BlobNotFound(req.blob_id.clone()))?
        }
    };
    Ok(store(call, mailbox, &keywords, internal_date, raw).await?.0)
}
