//! `EmailSubmission/set` (RFC 8621 §7.5): sends an Email through the
//! operator's MTA (`crate::submission`, `submission.relay`).
//!
//! What is sent:
//! - an Email created from JSON earlier in the same request: the bytes the
//!   client composed (`Call::composed`), whatever the stored copy is;
//! - a stored Email in clear: its stored bytes;
//! - a stored Email the server keeps encrypted: decrypted when the
//!   account's keys are unlocked (server-side reading), otherwise refused
//!   (`forbidden`) with a description saying how to send it: the server
//!   cannot read what it stored for the user alone.
//!
//! Who may send as whom: `envelope.mailFrom` and every `From` address
//! must be addresses of the account (its Identities, `identity`);
//! otherwise `forbiddenMailFrom` / `forbiddenFrom`. Without `envelope`,
//! the envelope is the Identity's address and the To, Cc and Bcc
//! addresses (RFC 8621 §7). `Bcc` is removed before sending.
//!
//! Sending is synchronous: when the relay has accepted the message the
//! submission is created with `undoStatus` `final`; nothing is queued or
//! kept here, so `EmailSubmission/get` is not offered and `update` /
//! `destroy` of a submission answer `cannotUnsend` / `notFound`. After
//! the creates, `onSuccessUpdateEmail` and `onSuccessDestroyEmail` run
//! as an implicit `Email/set` whose response follows this one.

use std::sync::Arc;

use rand::RngCore as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{parse as parse_args, Call};
use super::email;
use super::error::{Error, JmapError};
use super::identity;
use super::ids;
use super::set::{SetArgs, SetOutcome};
use crate::submission::{is_envelope_address, SendError, Sent};

/// Most envelope recipients of one submission. why 100: RFC 5321
/// §4.5.3.1.8's minimum a relay must take in one transaction; a larger
/// audience is a mailing list's job.
pub(crate) const MAX_RECIPIENTS: usize = 100;

fn set_error(kind: &'static str, description: impl Into<String>) -> Error {
    Error::Set(Box::new(JmapError::new(kind, description.into())))
}

fn set_error_with(
    kind: &'static str,
    description: impl Into<String>,
    key: &str,
    value: Value,
) -> Error {
    Error::Set(Box::new(
        JmapError::new(kind, description.into()).with(key, value),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Create {
    identity_id: String,
    email_id: String,
    #[serde(default)]
    envelope: Option<Envelope>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Envelope {
    mail_from: EnvelopeAddress,
    rcpt_to: Vec<EnvelopeAddress>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvelopeAddress {
    email: String,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

/// `EmailSubmission/set`.
pub(crate) async fn set(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let Some(relay) = call.server.ctx.relay.clone() else {
        return Err(Error::UnknownMethod(
            "EmailSubmission/set: this server sends no mail (the operator has not set submission.relay)".into(),
        ));
    };
    let mut args: SetArgs = parse_args(args)?;
    let on_update = take_map(&mut args.extra, "onSuccessUpdateEmail")?;
    let on_destroy = take_list(&mut args.extra, "onSuccessDestroyEmail")?;
    if let Some(k) = args.extra.keys().next() {
        return Err(Error::InvalidArguments(format!("unknown argument {k}")));
    }
    let mut out = SetOutcome::begin(call, &args).await?;
    // Submission id → its Email id, for the onSuccess arguments.
    let mut sent: Vec<(String, String, String)> = Vec::new();
    for (cid, obj) in args.create.unwrap_or_default() {
        let r = create(call, &relay, obj).await;
        if let Ok(v) = &r {
            let id = v
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let email = v
                .get("emailId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            sent.push((cid.clone(), id, email));
        }
        out.created(call, cid, r);
    }
    for (id, _) in args.update.unwrap_or_default() {
        let e = set_error(
            "cannotUnsend",
            "the message was handed to the mail relay at once; it cannot be changed or cancelled",
        );
        out.updated(id, Err(e));
    }
    for id in args.destroy.unwrap_or_default() {
        out.destroyed(id, Err(Error::NotFound));
    }
    let response = out.finish(call).await?;
    follow_up(call, &sent, on_update, on_destroy).await;
    Ok(response)
}

fn take_map(extra: &mut Map<String, Value>, key: &str) -> Result<Map<String, Value>, Error> {
    match extra.remove(key) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m),
        Some(_) => Err(Error::InvalidArguments(format!("{key} is an object"))),
    }
}

fn take_list(extra: &mut Map<String, Value>, key: &str) -> Result<Vec<String>, Error> {
    match extra.remove(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v)
            .map_err(|_| Error::InvalidArguments(format!("{key} is a list of ids"))),
    }
}

/// The implicit `Email/set` of `onSuccessUpdateEmail` and
/// `onSuccessDestroyEmail` for the submissions that succeeded.
async fn follow_up(
    call: &mut Call,
    sent: &[(String, String, String)],
    on_update: Map<String, Value>,
    on_destroy: Vec<String>,
) {
    let email_of = |key: &str| {
        sent.iter()
            .find(|(cid, id, _)| key.strip_prefix('#') == Some(cid.as_str()) || key == id)
            .map(|(_, _, email)| email.clone())
    };
    let mut update = Map::new();
    for (key, patch) in on_update {
        if let Some(email) = email_of(&key) {
            update.insert(email, patch);
        }
    }
    let destroy: Vec<String> = on_destroy.iter().filter_map(|k| email_of(k)).collect();
    if update.is_empty() && destroy.is_empty() {
        return;
    }
    let mut args = Map::new();
    args.insert("accountId".into(), json!(ids::account(call.account.id)));
    if !update.is_empty() {
        args.insert("update".into(), Value::Object(update));
    }
    if !destroy.is_empty() {
        args.insert("destroy".into(), json!(destroy));
    }
    let response = match email::set(call, args).await {
        Ok(v) => ("Email/set".to_string(), v),
        Err(e) => ("error".to_string(), e.classify().to_json()),
    };
    call.follow_up.push(response);
}

async fn create(call: &Call, relay: &crate::submission::Relay, obj: Value) -> Result<Value, Error> {
    let req: Create = serde_json::from_value(obj).map_err(|e| Error::InvalidProperties {
        properties: Vec::new(),
        description: e.to_string(),
    })?;
    let account = call.blocking(|s, id| Ok(s.account(id)?)).await?;
    let identities = identity::of(&account);
    let ident = identities
        .iter()
        .find(|i| i.id == req.identity_id)
        .ok_or_else(|| Error::InvalidProperties {
            properties: vec!["identityId".into()],
            description: format!(
                "no Identity {:?} in this account; see Identity/get",
                req.identity_id
            ),
        })?;
    let own = |a: &str| identities.iter().any(|i| i.email.eq_ignore_ascii_case(a));
    let email_id = call.resolve_id(&req.email_id)?;
    let number = ids::parse_email(&email_id, call.account.id).ok_or_else(|| {
        set_error_with(
            "invalidProperties",
            format!("no Email {email_id} in this account"),
            "properties",
            json!(["emailId"]),
        )
    })?;
    let (record, raw) = message_to_send(call, &email_id, number).await?;
    let max = call.server.ctx.max_upload_bytes;
    if raw.len() as u64 > max {
        return Err(set_error_with(
            "tooLarge",
            format!(
                "the message is {} bytes, at most {max} can be sent",
                raw.len()
            ),
            "maxSize",
            json!(max),
        ));
    }
    let parsed = mail_parser::MessageParser::default().parse(raw.as_slice());
    let Some(parsed) = parsed else {
        return Err(set_error(
            "invalidEmail",
            "the Email cannot be parsed as a message",
        ));
    };
    let from: Vec<String> = addresses(parsed.from());
    if from.is_empty() {
        return Err(set_error_with(
            "invalidEmail",
            "the Email has no From address; set from",
            "properties",
            json!(["from"]),
        ));
    }
    if let Some(other) = from.iter().find(|a| !own(a)) {
        return Err(set_error("forbiddenFrom", format!("{other} in From is not an address of this account; send from one of its Identities")));
    }
    let (mail_from, rcpt_to) = match &req.envelope {
        Some(env) => {
            let params = std::iter::once(&env.mail_from).chain(&env.rcpt_to);
            if params
                .into_iter()
                .any(|a| a.parameters.as_ref().is_some_and(|p| !p.is_empty()))
            {
                return Err(Error::InvalidProperties {
                    properties: vec!["envelope".into()],
                    description:
                        "SMTP parameters in the envelope are not supported; send them as null"
                            .into(),
                });
            }
            (
                env.mail_from.email.clone(),
                env.rcpt_to.iter().map(|r| r.email.clone()).collect(),
            )
        }
        None => {
            let mut all = addresses(parsed.to());
            all.extend(addresses(parsed.cc()));
            all.extend(addresses(parsed.bcc()));
            (ident.email.clone(), all)
        }
    };
    if !own(&mail_from) {
        return Err(set_error("forbiddenMailFrom", format!("{mail_from} is not an address of this account; the envelope sender is one of its Identities")));
    }
    let mut rcpt_to: Vec<String> = rcpt_to;
    let mut seen = std::collections::HashSet::new();
    rcpt_to.retain(|r| seen.insert(r.to_ascii_lowercase()));
    if let Some(bad) = rcpt_to.iter().find(|r| !is_envelope_address(r)) {
        return Err(set_error_with(
            "invalidRecipients",
            format!("{bad:?} is not an address to send to"),
            "invalidRecipients",
            json!([bad]),
        ));
    }
    if rcpt_to.is_empty() {
        return Err(set_error(
            "noRecipients",
            "the Email has no To, Cc or Bcc address and the envelope names no recipient",
        ));
    }
    if rcpt_to.len() > MAX_RECIPIENTS {
        return Err(set_error_with(
            "tooManyRecipients",
            format!(
                "{} recipients, at most {MAX_RECIPIENTS} per submission",
                rcpt_to.len()
            ),
            "maxRecipients",
            json!(MAX_RECIPIENTS),
        ));
    }
    let message = without_bcc(&raw);
    let sent = relay
        .send(&mail_from, &rcpt_to, &message)
        .await
        .map_err(|e| relay_error(e, max))?;
    tracing::info!(
        account = %call.account.id,
        recipients = rcpt_to.len(),
        accepted = sent.rcpt.iter().filter(|r| r.accepted()).count(),
        tls = sent.tls,
        "message handed to the relay"
    );
    Ok(created(
        call, &req, &email_id, &record, &mail_from, &rcpt_to, &sent,
    ))
}

/// The created EmailSubmission object.
fn created(
    call: &Call,
    req: &Create,
    email_id: &str,
    record: &crate::store::Message,
    mail_from: &str,
    rcpt_to: &[String],
    sent: &Sent,
) -> Value {
    let mut r = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut r);
    let id: String = std::iter::once("S".to_string())
        .chain(r.iter().map(|b| format!("{b:02x}")))
        .collect();
    let status: Map<String, Value> = sent
        .rcpt
        .iter()
        .map(|r| {
            let delivered = if r.accepted() { "queued" } else { "no" };
            (
                r.address.clone(),
                json!({ "smtpReply": r.text, "delivered": delivered, "displayed": "unknown" }),
            )
        })
        .collect();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "id": id,
        "identityId": req.identity_id,
        "emailId": email_id,
        "threadId": ids::thread(call.account.id, record.thread_id),
        "envelope": {
            "mailFrom": { "email": mail_from, "parameters": null },
            "rcptTo": rcpt_to.iter().map(|r| json!({ "email": r, "parameters": null })).collect::<Vec<_>>(),
        },
        "sendAt": crate::admin::api::utc(now),
        "undoStatus": "final",
        "deliveryStatus": status,
        "dsnBlobIds": [],
        "mdnBlobIds": [],
    })
}

/// The record of Email `number` and the bytes to send for it (module doc).
async fn message_to_send(
    call: &Call,
    email_id: &str,
    number: u64,
) -> Result<(crate::store::Message, Arc<Vec<u8>>), Error> {
    let composed = call.composed.get(&number).cloned();
    let keys = call.reading.clone();
    let wanted = email_id.to_string();
    let found = call
        .blocking(move |s, id| {
            let Some(m) = email::find(s, id, &wanted)? else {
                return Ok(None);
            };
            if composed.is_some() {
                return Ok(Some((m, composed)));
            }
            let shown = email::source::presented(s, id, m.clone(), keys.as_deref())?;
            Ok(Some(match shown {
                Some((shown, raw)) if !shown.encrypted => (m, Some(Arc::new(raw))),
                _ => (m, None),
            }))
        })
        .await?;
    let not_found = || {
        set_error_with(
            "invalidProperties",
            format!("no Email {email_id} in this account"),
            "properties",
            json!(["emailId"]),
        )
    };
    let (record, raw) = found.ok_or_else(not_found)?;
    let raw = raw.ok_or_else(|| {
        set_error(
            "forbidden",
            "the Email is stored encrypted for this account, and the server holds no key to read it; \
             create the Email and submit it in the same request (Email/set create, then \
             EmailSubmission/set with \"#creationId\"), or turn on server-side reading",
        )
    })?;
    Ok((record, raw))
}

/// The addresses of an address header.
fn addresses(field: Option<&mail_parser::Address<'_>>) -> Vec<String> {
    field
        .map(|a| {
            a.iter()
                .filter_map(|a| a.address().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `raw` without its `Bcc` field (RFC 8621 §7.5: the server removes it).
fn without_bcc(raw: &[u8]) -> Vec<u8> {
    let end = crate::mime::header_end(raw);
    let mut out = Vec::with_capacity(raw.len());
    let mut dropping = false;
    for line in raw[..end].split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|&b| b == b' ' || b == b'\t');
        if !continuation {
            dropping = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"bcc:");
        }
        if !dropping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(&raw[end..]);
    out
}

/// The SetError for a failed hand-over.
fn relay_error(e: SendError, max: u64) -> Error {
    let text = e.to_string();
    match &e {
        SendError::NoRecipient(r) if !e.is_transient() => {
            let bad: Vec<&str> = r.iter().map(|r| r.address.as_str()).collect();
            set_error_with("invalidRecipients", text, "invalidRecipients", json!(bad))
        }
        SendError::Refused { code: 552, .. } => {
            set_error_with("tooLarge", text, "maxSize", json!(max))
        }
        SendError::Refused { .. } if !e.is_transient() => set_error("forbiddenToSend", text),
        _ => {
            tracing::warn!(error = %text, "submission failed at the relay");
            set_error("serverFail", text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcc_is_removed_with_its_continuation_lines() {
        let raw =
            b"From: a@b.c\r\nBcc: x@y.z,\r\n  w@y.z\r\nTo: t@y.z\r\n\r\nBcc: in the body stays\r\n";
        let out = without_bcc(raw);
        assert_eq!(
            out,
            b"From: a@b.c\r\nTo: t@y.z\r\n\r\nBcc: in the body stays\r\n".to_vec()
        );
    }
}
