//! An Email object (RFC 8621 §4.1) from a stored record and its bytes.
//!
//! The bytes are parsed with `mail-parser`. An encrypted message is what
//! it is on disk: its header fields are in clear, so addresses, subject
//! and dates are served, but its body is one `application/pkcs7-mime`
//! part: `bodyStructure` is that part, it is the only attachment,
//! `textBody`/`htmlBody` are empty, `bodyValues` is `{}` and `preview`
//! is `""`. The server cannot read it, and says nothing it would have to
//! guess.

use mail_parser::{Address, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};
use serde_json::{json, Map, Value};

use super::super::ids;
use crate::admin::api::utc;
use crate::store::{Flags, Message};

/// Which body values to fetch (`fetchTextBodyValues`, ...).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fetch {
    pub(crate) text: bool,
    pub(crate) html: bool,
    pub(crate) all: bool,
    /// 0: no limit.
    pub(crate) max_bytes: usize,
}

/// Characters of `preview` (RFC 8621 §4.1.4: at most 256).
const PREVIEW_CHARS: usize = 256;

/// JMAP keywords of stored flags (RFC 8621 §4.1.1; `\Deleted` has none).
pub(crate) fn keywords(flags: &Flags) -> Map<String, Value> {
    let mut out = Map::new();
    for (on, name) in [
        (flags.seen, "$seen"),
        (flags.answered, "$answered"),
        (flags.flagged, "$flagged"),
        (flags.draft, "$draft"),
    ] {
        if on {
            out.insert(name.into(), json!(true));
        }
    }
    for k in &flags.keywords {
        out.insert(k.to_lowercase(), json!(true));
    }
    out
}

/// Stored flags for a JMAP keyword set, keeping `\Deleted` from `old`.
pub(crate) fn flags_of(keywords: &[String], old: &Flags) -> Flags {
    let mut f = Flags {
        deleted: old.deleted,
        ..Flags::default()
    };
    for k in keywords {
        match k.to_lowercase().as_str() {
            "$seen" => f.seen = true,
            "$answered" => f.answered = true,
            "$flagged" => f.flagged = true,
            "$draft" => f.draft = true,
            other => {
                f.keywords.insert(other.to_string());
            }
        }
    }
    f
}

/// The metadata properties, which need no parsing.
pub(crate) fn metadata(msg: &Message) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(ids::email(msg.mailbox, msg.uid)));
    obj.insert("blobId".into(), json!(ids::blob(msg.blob)));
    obj.insert("threadId".into(), json!(ids::thread(msg.mailbox, msg.uid)));
    obj.insert(
        "mailboxIds".into(),
        json!({ ids::mailbox(msg.mailbox): true }),
    );
    obj.insert("keywords".into(), Value::Object(keywords(&msg.flags)));
    obj.insert("size".into(), json!(msg.size));
    obj.insert("receivedAt".into(), json!(utc(msg.internal_date)));
    obj
}

/// The whole Email object of `msg` with bytes `raw`.
pub(crate) fn email_object(msg: &Message, raw: &[u8], fetch: Fetch) -> Map<String, Value> {
    let mut obj = metadata(msg);
    let Some(parsed) = MessageParser::default().parse(raw) else {
        return obj;
    };
    let ids_of = |v: &HeaderValue<'_>| -> Value {
        match v {
            HeaderValue::Text(t) => json!([t]),
            HeaderValue::TextList(l) => json!(l),
            _ => Value::Null,
        }
    };
    obj.insert(
        "messageId".into(),
        parsed.message_id().map_or(Value::Null, |m| json!([m])),
    );
    obj.insert("inReplyTo".into(), ids_of(parsed.in_reply_to()));
    obj.insert("references".into(), ids_of(parsed.references()));
    for (name, value) in [
        ("from", parsed.from()),
        ("to", parsed.to()),
        ("cc", parsed.cc()),
        ("bcc", parsed.bcc()),
        ("replyTo", parsed.reply_to()),
        ("sender", parsed.sender()),
    ] {
        obj.insert(name.into(), value.map_or(Value::Null, addresses));
    }
    obj.insert(
        "subject".into(),
        parsed.subject().map_or(Value::Null, |s| json!(s)),
    );
    obj.insert(
        "sentAt".into(),
        parsed.date().map_or(Value::Null, |d| json!(d.to_rfc3339())),
    );
    let headers: Vec<Value> = parsed
        .headers_raw()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    obj.insert("headers".into(), json!(headers));
    body_properties(&mut obj, &parsed, msg.encrypted, fetch);
    obj
}

fn body_properties(
    obj: &mut Map<String, Value>,
    parsed: &mail_parser::Message<'_>,
    encrypted: bool,
    fetch: Fetch,
) {
    let part = |id: u32| parsed.part(id).map(|p| part_object(parsed, id, p));
    let list = |ids: &[u32]| -> Vec<Value> { ids.iter().filter_map(|&i| part(i)).collect() };
    obj.insert("bodyStructure".into(), part(0).unwrap_or(Value::Null));
    if encrypted {
        obj.insert("textBody".into(), json!([]));
        obj.insert("htmlBody".into(), json!([]));
        obj.insert("attachments".into(), json!(list(&[0])));
        obj.insert("hasAttachment".into(), json!(true));
        obj.insert("bodyValues".into(), json!({}));
        obj.insert("preview".into(), json!(""));
        return;
    }
    obj.insert("textBody".into(), json!(list(&parsed.text_body)));
    obj.insert("htmlBody".into(), json!(list(&parsed.html_body)));
    obj.insert("attachments".into(), json!(list(&parsed.attachments)));
    obj.insert(
        "hasAttachment".into(),
        json!(!parsed.attachments.is_empty()),
    );
    let preview = parsed
        .body_preview(PREVIEW_CHARS)
        .map(|p| p.chars().take(PREVIEW_CHARS).collect::<String>())
        .unwrap_or_default();
    obj.insert("preview".into(), json!(preview));
    let mut wanted: Vec<u32> = Vec::new();
    if fetch.text || fetch.all {
        wanted.extend(&parsed.text_body);
    }
    if fetch.html || fetch.all {
        wanted.extend(&parsed.html_body);
    }
    let mut values = Map::new();
    for id in wanted {
        if let Some(text) = parsed.part(id).and_then(MessagePart::text_contents) {
            values.insert(id.to_string(), body_value(text, fetch.max_bytes));
        }
    }
    obj.insert("bodyValues".into(), Value::Object(values));
}

fn body_value(text: &str, max: usize) -> Value {
    if max == 0 || text.len() <= max {
        return json!({ "value": text, "isEncodingProblem": false, "isTruncated": false });
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    json!({ "value": text.get(..end).unwrap_or_default(), "isEncodingProblem": false, "isTruncated": true })
}

fn addresses(a: &Address<'_>) -> Value {
    let list: Vec<Value> = a
        .iter()
        .map(|addr| json!({ "name": addr.name(), "email": addr.address() }))
        .collect();
    json!(list)
}

/// An EmailBodyPart (RFC 8621 §4.1.4); `subParts` for multiparts. Part
/// blobs are not separately downloadable: `blobId` is left out.
fn part_object(msg: &mail_parser::Message<'_>, id: u32, p: &MessagePart<'_>) -> Value {
    let ctype = p.content_type();
    let mime = ctype.map_or_else(
        || "text/plain".to_string(),
        |c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")).to_lowercase(),
    );
    let charset = ctype
        .and_then(|c| c.attribute("charset"))
        .map(str::to_string)
        .or_else(|| mime.starts_with("text/").then(|| "us-ascii".to_string()));
    let size = p.offset_end.saturating_sub(p.offset_body);
    let mut obj = json!({
        "partId": id.to_string(),
        "size": size,
        "type": mime,
        "charset": charset,
        "disposition": p.content_disposition().map(|d| d.ctype().to_string()),
        "name": p.attachment_name(),
        "cid": p.content_id(),
        "location": p.content_location(),
    });
    if let (PartType::Multipart(children), Some(map)) = (&p.body, obj.as_object_mut()) {
        let subs: Vec<Value> = children
            .iter()
            .filter_map(|&c| msg.part(c).map(|cp| part_object(msg, c, cp)))
            .collect();
        map.insert("subParts".into(), json!(subs));
    }
    obj
}
