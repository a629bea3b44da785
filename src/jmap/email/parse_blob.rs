//! `Email/parse` (RFC 8621 §4.9): Email objects of blobs that are
//! messages but not Emails of the account, typically a forwarded
//! `message/rfc822` attachment.
//!
//! A blob is an upload of the account (RFC 8620 §6.1), a body part of
//! one of its Emails or uploads (`part_blob`), or an Email's own blob.
//! Stored bytes are read through `source::message_bytes` only. The parts
//! of a parsed message get blob ids one level below the parsed blob, so
//! that an attachment of a forwarded message downloads, and parses, in
//! turn. Parsing never fails a call: bytes that are no message are
//! `notParsable`, ids that name nothing of this account `notFound`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::super::call::{parse as parse_args, Call};
use super::super::error::Error;
use super::super::{ids, limits};
use super::body::Fetch;
use super::parse::{parsed_email, Wanted};
use super::part_blob::{self, Origin, PartBlob};
use super::source;
use super::MESSAGE_PROPERTIES;
use crate::store::{AccountId, BlobHash, MailStore, Message};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParseArgs {
    account_id: String,
    blob_ids: Vec<String>,
    #[serde(default)]
    properties: Option<Vec<String>>,
    #[serde(default)]
    body_properties: Option<Vec<String>>,
    #[serde(default)]
    fetch_text_body_values: bool,
    #[serde(default, rename = "fetchHTMLBodyValues")]
    fetch_html_body_values: bool,
    #[serde(default)]
    fetch_all_body_values: bool,
    #[serde(default)]
    max_body_value_bytes: usize,
}

/// What one asked blob id turned out to be.
enum Outcome {
    Parsed(Map<String, Value>),
    NotParsable,
    NotFound,
}

/// `Email/parse`.
pub(crate) async fn parse_blobs(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: ParseArgs = parse_args(args)?;
    let account_id = call.check_account(&args.account_id)?;
    if args.blob_ids.len() > limits::OBJECTS_IN_GET {
        return Err(Error::RequestTooLarge(format!(
            "at most {} blobIds per Email/parse",
            limits::OBJECTS_IN_GET
        )));
    }
    // RFC 8621 §4.9: the message's own properties, no record ones.
    let default: Vec<String> = MESSAGE_PROPERTIES.iter().map(|p| p.to_string()).collect();
    let props = args.properties.clone().unwrap_or(default);
    let fetch = Fetch {
        text: args.fetch_text_body_values,
        html: args.fetch_html_body_values,
        all: args.fetch_all_body_values,
        max_bytes: args.max_body_value_bytes,
    };
    let mut wanted = Wanted::of(&props, args.body_properties.as_deref(), fetch)?;
    // why: whether a blob is a message at all (`notParsable`) takes its
    // header, even when only `blobId` or `size` is asked.
    wanted.need = wanted.need.max(super::parse::Need::Header);
    let account = call.account.id;
    // why here: the uploads live outside the store; taken now, so the
    // blocking part needs nothing but the store.
    let uploads: Vec<Option<Arc<Vec<u8>>>> = args
        .blob_ids
        .iter()
        .map(|b| upload_of(call, account, b))
        .collect();
    let keys = call.reading.clone();
    let blob_ids = args.blob_ids.clone();
    let outcomes = call
        .blocking(move |s, id| {
            let mut out = Vec::with_capacity(blob_ids.len());
            let wanted_emails: HashSet<BlobHash> = blob_ids
                .iter()
                .zip(&uploads)
                .filter(|(b, u)| u.is_none() && PartBlob::parse(b, id).is_none())
                .filter_map(|(b, _)| ids::parse_blob(b))
                .collect();
            let stored = emails_holding(s, id, &wanted_emails)?;
            for (blob_id, upload) in blob_ids.iter().zip(&uploads) {
                let found = bytes_of(s, id, blob_id, upload.as_deref(), keys.as_deref(), &stored)?;
                out.push(match found {
                    None => Outcome::NotFound,
                    Some((raw, place)) => match parsed_email(blob_id, &raw, &wanted, &place) {
                        Some(obj) => Outcome::Parsed(obj),
                        None => Outcome::NotParsable,
                    },
                });
            }
            Ok(out)
        })
        .await?;
    let (mut parsed, mut not_parsable, mut not_found) = (Map::new(), Vec::new(), Vec::new());
    for (blob_id, outcome) in args.blob_ids.into_iter().zip(outcomes) {
        match outcome {
            Outcome::Parsed(obj) => {
                // why not `call::select`: that keeps `id`, which a parsed
                // blob does not have (§4.9: null, and only when asked).
                let shown: Map<String, Value> =
                    obj.into_iter().filter(|(k, _)| props.contains(k)).collect();
                parsed.insert(blob_id, Value::Object(shown));
            }
            Outcome::NotParsable => not_parsable.push(blob_id),
            Outcome::NotFound => not_found.push(blob_id),
        }
    }
    let or_null = |v: Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
    Ok(json!({
        "accountId": account_id,
        "parsed": if parsed.is_empty() { Value::Null } else { Value::Object(parsed) },
        "notParsable": or_null(not_parsable),
        "notFound": or_null(not_found),
    }))
}

/// The held upload a blob id names, directly or as the origin of a part.
fn upload_of(call: &Call, account: AccountId, blob_id: &str) -> Option<Arc<Vec<u8>>> {
    let uploads = &call.server.uploads;
    match PartBlob::parse(blob_id, account).map(|p| p.origin) {
        Some(Origin::Upload(hash)) => uploads.get(account, &ids::blob(hash)),
        Some(Origin::Email { .. }) => None,
        None => uploads.get(account, blob_id),
    }
}

/// The bytes `blob_id` names and where its parts are, or `None` when it
/// names nothing of the account: an upload (`upload`, taken beforehand),
/// a part, or the blob of one of its Emails (`stored`, by blob).
fn bytes_of(
    s: &MailStore,
    account: AccountId,
    blob_id: &str,
    upload: Option<&Vec<u8>>,
    keys: Option<&crate::reading::Unlocked>,
    stored: &HashMap<BlobHash, Message>,
) -> Result<Option<(Vec<u8>, PartBlob)>, Error> {
    if let Some(part) = PartBlob::parse(blob_id, account) {
        let bytes = part_blob::read(s, &part, upload.map(Vec::as_slice), keys)?;
        return Ok(bytes.map(|b| (b, part)));
    }
    let place = |origin| PartBlob {
        account,
        origin,
        path: Vec::new(),
    };
    if let (Some(data), Some(hash)) = (upload, ids::parse_blob(blob_id)) {
        return Ok(Some((data.clone(), place(Origin::Upload(hash)))));
    }
    let Some(m) = ids::parse_blob(blob_id).and_then(|h| stored.get(&h)) else {
        return Ok(None);
    };
    let origin = Origin::Email {
        email: m.email_id,
        blob: m.blob,
        decrypted: part_blob::decrypted_view(m, keys),
    };
    Ok(source::message_bytes(s, account, m, keys)?.map(|raw| (raw, place(origin))))
}

/// Messages per read of [`emails_holding`]'s scan.
const SCAN_PAGE: usize = 1024;

/// A message of the account holding each blob of `blobs` that one holds.
/// why a scan: no index maps a blob to its Email; this is the rare case
/// (a client parses an Email it could `Email/get`), done once per call,
/// a page of records at a time.
fn emails_holding(
    s: &MailStore,
    account: AccountId,
    blobs: &HashSet<BlobHash>,
) -> Result<HashMap<BlobHash, Message>, Error> {
    let mut found = HashMap::new();
    if blobs.is_empty() {
        return Ok(found);
    }
    for mailbox in s.list_mailboxes(account)? {
        let mut after = None;
        loop {
            let page = s.list_messages(account, mailbox.id, after, SCAN_PAGE)?;
            after = page.last().map(|m| m.uid);
            let full = page.len() == SCAN_PAGE;
            for m in page {
                if blobs.contains(&m.blob) {
                    found.entry(m.blob).or_insert(m);
                }
            }
            if found.len() == blobs.len() {
                return Ok(found);
            }
            if !full {
                break;
            }
        }
    }
    Ok(found)
}
