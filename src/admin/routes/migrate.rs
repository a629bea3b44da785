//! Migration routes: `POST /accounts/{email}/import` (one message of
//! `sealmail import` per call) and `GET|POST /accounts/{email}/reencrypt`
//! (status, then one page of `sealmail reencrypt` per call), plus
//! `POST /compact`.
//!
//! Both go through [`Ingest`], so the hook chain — and with it the
//! encrypt-at-rest hook and its fail-closed rule — treats them like any
//! delivery. Re-encryption is paged by a cursor (mailbox id, UID) that the
//! client passes back, so each call does a bounded amount of work and a
//! client that stops can start over: encrypted messages are skipped.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use sealmail_plugin_api::Source;

use super::{account, blocking, decode_base64, AdminState, ApiError, Store};
use crate::admin::api::{
    ImportRequest, ImportResult, ReencryptCursor, ReencryptPage, ReencryptRequest, ReencryptStatus,
};
use crate::ingest::Append;
use crate::store::{AccountId, Flags, MailError, MailStore, MailboxId, Message, Uid};

/// Most messages one re-encryption call encrypts: each costs one RSA
/// operation per certificate and a write, so 200 keep a call to seconds.
const MAX_PAGE: u32 = 200;
/// Most records one re-encryption call examines, so that a long run of
/// already encrypted messages also ends the call in bounded time.
const SCAN_BUDGET: usize = 20_000;
/// Records read per store scan.
const SCAN_CHUNK: usize = 1024;

/// The request body limit of the import route: a message of the maximum
/// size, base64-encoded (4/3), plus room for the JSON around it.
pub(super) fn import_body_limit(max_message_bytes: u64) -> usize {
    let encoded = max_message_bytes.saturating_mul(4) / 3 + 64 * 1024;
    usize::try_from(encoded).unwrap_or(usize::MAX)
}

pub(super) async fn import_message(
    State(state): State<AdminState>,
    Path(email): Path<String>,
    Json(req): Json<ImportRequest>,
) -> Result<Json<ImportResult>, ApiError> {
    let raw = decode_base64("data", &req.data)?;
    let size = u64::try_from(raw.len()).unwrap_or(u64::MAX);
    if size > state.max_message_bytes {
        return Err(ApiError::BadRequest(format!(
            "{}: message is {size} bytes, over limits.max_message_size ({}); raise the limit or leave it out",
            req.source, state.max_message_bytes
        )));
    }
    let store = Arc::clone(state.ingest.store());
    let name = req.mailbox.clone();
    let (id, mailbox) = blocking(store, move |s| {
        let a = account(s, &email)?;
        Ok((a.id, ensure_mailbox(s, a.id, &name)?))
    })
    .await?;
    let append = Append {
        account: id,
        mailbox,
        flags: flags_from_maildir(&req.maildir_flags),
        internal_date: req.internal_date.unwrap_or_else(now),
        source: Source::Migration,
    };
    let stored = state.ingest.import(append, raw).await?;
    Ok(Json(ImportResult {
        uid: stored.as_ref().map(|m| m.uid.get()),
        encrypted: stored.as_ref().is_some_and(|m| m.encrypted),
    }))
}

/// The mailbox `name`, created when missing.
fn ensure_mailbox(s: &MailStore, id: AccountId, name: &str) -> Result<MailboxId, ApiError> {
    match s.mailbox_by_name(id, name) {
        Ok(m) => Ok(m.id),
        Err(MailError::MailboxNotFound { .. }) => match s.create_mailbox(id, name) {
            Ok(m) => Ok(m.id),
            // why: another import created it between the two calls.
            Err(MailError::MailboxExists { .. }) => Ok(s.mailbox_by_name(id, name)?.id),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

/// Maildir info letters as flags (Maildir spec: `:2,` then letters).
fn flags_from_maildir(letters: &str) -> Flags {
    let has = |c| letters.contains(c);
    Flags {
        seen: has('S'),
        answered: has('R'),
        flagged: has('F'),
        deleted: has('T'),
        draft: has('D'),
        keywords: Default::default(),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The account `email`, refused unless it has encryption enabled.
fn opted_in(s: &MailStore, email: &str) -> Result<AccountId, ApiError> {
    let a = account(s, email)?;
    if !s.encryption_settings(a.id)?.enabled {
        return Err(ApiError::BadRequest(format!(
            "encryption is not enabled for {}; enable encryption first: sealmail encryption enable {}",
            a.address, a.address
        )));
    }
    Ok(a.id)
}

pub(super) async fn reencrypt_status(
    State(store): Store,
    Path(email): Path<String>,
) -> Result<Json<ReencryptStatus>, ApiError> {
    blocking(store, move |s| {
        let id = opted_in(s, &email)?;
        let (mut plaintext, mut total) = (0, 0);
        for mbox in s.list_mailboxes(id)? {
            for_each_message(s, id, mbox.id, None, |m| {
                total += 1;
                plaintext += u64::from(!m.encrypted);
                true
            })?;
        }
        Ok(Json(ReencryptStatus { plaintext, total }))
    })
    .await
}

pub(super) async fn reencrypt_page(
    State(state): State<AdminState>,
    Path(email): Path<String>,
    Json(req): Json<ReencryptRequest>,
) -> Result<Json<ReencryptPage>, ApiError> {
    let limit = usize::try_from(req.limit.clamp(1, MAX_PAGE)).unwrap_or(1);
    let store = Arc::clone(state.ingest.store());
    let (id, plan) = blocking(store, move |s| {
        let id = opted_in(s, &email)?;
        Ok((id, next_plaintext(s, id, req.cursor, limit)?))
    })
    .await?;
    let mut page = ReencryptPage {
        encrypted: 0,
        skipped: 0,
        cursor: plan.cursor,
    };
    for (mailbox, uid) in plan.todo {
        match state.ingest.reencrypt(id, mailbox, uid).await? {
            Some(_) => page.encrypted += 1,
            None => page.skipped += 1,
        }
    }
    Ok(Json(page))
}

/// One page of a re-encryption run.
struct Plan {
    /// Plaintext messages to encrypt.
    todo: Vec<(MailboxId, Uid)>,
    /// Where the next page starts; none: the account is done.
    cursor: Option<ReencryptCursor>,
}

/// Up to `limit` plaintext messages after `cursor`, in mailbox-id then
/// UID order, and where to continue.
fn next_plaintext(
    s: &MailStore,
    id: AccountId,
    cursor: Option<ReencryptCursor>,
    limit: usize,
) -> Result<Plan, ApiError> {
    let mut todo = Vec::new();
    let mut examined = 0;
    let mut stop = None;
    let start = cursor.map_or(0, |c| c.mailbox);
    for mbox in s.list_mailboxes(id)?.iter().filter(|m| m.id.0 >= start) {
        let after = cursor
            .filter(|c| c.mailbox == mbox.id.0)
            .and_then(|c| Uid::new(c.uid));
        for_each_message(s, id, mbox.id, after, |m| {
            examined += 1;
            if !m.encrypted {
                todo.push((mbox.id, m.uid));
            }
            if todo.len() >= limit || examined >= SCAN_BUDGET {
                stop = Some(ReencryptCursor {
                    mailbox: mbox.id.0,
                    uid: m.uid.get(),
                });
            }
            stop.is_none()
        })?;
        if stop.is_some() {
            break;
        }
    }
    Ok(Plan { todo, cursor: stop })
}

/// Calls `f` on the messages of a mailbox after `after`, in UID order,
/// reading them in chunks, until `f` returns `false`.
fn for_each_message(
    s: &MailStore,
    id: AccountId,
    mailbox: MailboxId,
    mut after: Option<Uid>,
    mut f: impl FnMut(&Message) -> bool,
) -> Result<(), ApiError> {
    loop {
        let chunk = s.list_messages(id, mailbox, after, SCAN_CHUNK)?;
        for m in &chunk {
            if !f(m) {
                return Ok(());
            }
            after = Some(m.uid);
        }
        if chunk.len() < SCAN_CHUNK {
            return Ok(());
        }
    }
}

/// Drops deleted values (plaintext replaced by `reencrypt`) from the
/// engine's files now.
pub(super) async fn compact(State(store): Store) -> Result<StatusCode, ApiError> {
    blocking(store, |s| {
        s.compact()?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
