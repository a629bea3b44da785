//! An Email object (RFC 8621 §4.1) from a stored record and its bytes.
//!
//! The bytes are parsed with `mail-parser`. An encrypted message is what
//! it is on disk: its header fields are in clear, so addresses, subject
//! and dates are served, but its body is one `application/pkcs7-mime`
//! part: `bodyStructure` is that part, it is the only attachment,
//! `textBody`/`htmlBody` are empty, `bodyValues` is `{}` and `preview`
//! is `""`. The server cannot read it, and says nothing it would have to
//! guess.
//!
//! Only what a request asks for is computed ([`Need`]): metadata alone
//! reads nothing, header properties parse the header alone, and only the
//! body properties parse the MIME parts. Those walks stop at
//! [`MAX_DEPTH`]: a deeper multipart is one opaque
//! `application/octet-stream` part (listed among the attachments), and no
//! part below it is served (see [`crate::mime`]).

use mail_parser::{Address, HeaderValue, MessageParser, MessagePart, MimeHeaders, PartType};
use serde_json::{json, Map, Value};

use super::super::ids;
use crate::admin::api::utc;
use crate::mime::MAX_DEPTH;
use crate::store::{AccountId, Flags, Message};

/// Properties read from the parsed header (RFC 8621 §4.1.2, §4.1.3).
const HEADER_PROPERTIES: &[&str] = &[
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
    "headers",
];

/// Properties read from the MIME parts (RFC 8621 §4.1.4).
const BODY_PROPERTIES: &[&str] = &[
    "bodyStructure",
    "textBody",
    "htmlBody",
    "attachments",
    "hasAttachment",
    "preview",
    "bodyValues",
];

/// How much of the stored message a request's properties need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Need {
    /// Ids, keywords, size, dates: the record alone, no bytes read.
    Metadata,
    /// Addresses, subject, header fields: the header alone.
    Header,
    /// Body structure, body parts, values, preview: the MIME parts.
    Body,
}

impl Need {
    /// What the properties `props` need.
    pub(crate) fn of(props: &[String]) -> Self {
        let any = |list: &[&str]| props.iter().any(|p| list.contains(&p.as_str()));
        if any(BODY_PROPERTIES) {
            Need::Body
        } else if any(HEADER_PROPERTIES) {
            Need::Header
        } else {
            Need::Metadata
        }
    }
}

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
pub(crate) fn metadata(account: AccountId, msg: &Message) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(ids::email(account, msg.email_id)));
    obj.insert("blobId".into(), json!(ids::blob(msg.blob)));
    obj.insert(
        "threadId".into(),
        json!(ids::thread(account, msg.thread_id)),
    );
    obj.insert(
        "mailboxIds".into(),
        json!({ ids::mailbox(msg.mailbox): true }),
    );
    obj.insert("keywords".into(), Value::Object(keywords(&msg.flags)));
    obj.insert("size".into(), json!(msg.size));
    obj.insert("receivedAt".into(), json!(utc(msg.internal_date)));
    obj
}

/// The Email object of `msg` with bytes `raw`, as far as `need` goes.
pub(crate) fn email_object(
    account: AccountId,
    msg: &Message,
    raw: &[u8],
    fetch: Fetch,
    need: Need,
) -> Map<String, Value> {
    let mut obj = metadata(account, msg);
    let parser = MessageParser::default();
    let parsed = match need {
        Need::Metadata => return obj,
        Need::Header => crate::mime::parse_headers(&parser, raw),
        Need::Body => crate::mime::parse(&parser, raw),
    };
    let Some(parsed) = parsed else {
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
    if need == Need::Body {
        body_properties(&mut obj, &parsed, msg.encrypted, fetch);
    }
    obj
}

fn body_properties(
    obj: &mut Map<String, Value>,
    parsed: &mail_parser::Message<'_>,
    encrypted: bool,
    fetch: Fetch,
) {
    let depths = crate::mime::part_depths(parsed);
    let depth = |id: u32| depths.get(id as usize).copied().unwrap_or(0);
    let part = |id: u32| {
        parsed
            .part(id)
            .map(|p| part_object(parsed, id, p, depth(id)))
    };
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
    let shown = |ids: &[u32]| -> Vec<u32> {
        ids.iter()
            .copied()
            .filter(|&i| depth(i) <= MAX_DEPTH)
            .collect()
    };
    let (text, html) = (shown(&parsed.text_body), shown(&parsed.html_body));
    let mut attachments = shown(&parsed.attachments);
    attachments.extend((0..parsed.parts.len()).filter_map(|i| {
        let id = u32::try_from(i).ok()?;
        let cut = depth(id) == MAX_DEPTH && is_multipart(parsed.part(id)?);
        cut.then_some(id)
    }));
    obj.insert("textBody".into(), json!(list(&text)));
    obj.insert("htmlBody".into(), json!(list(&html)));
    obj.insert("attachments".into(), json!(list(&attachments)));
    obj.insert("hasAttachment".into(), json!(!attachments.is_empty()));
    // why: mail-parser previews its first text (or HTML) body part; below
    // the depth limit that part is not served, so neither is its preview.
    let first_shown = parsed.text_body.first().or(parsed.html_body.first());
    let preview = first_shown
        .filter(|&&i| depth(i) <= MAX_DEPTH)
        .and_then(|_| parsed.body_preview(PREVIEW_CHARS))
        .map(|p| p.chars().take(PREVIEW_CHARS).collect::<String>())
        .unwrap_or_default();
    obj.insert("preview".into(), json!(preview));
    let mut wanted: Vec<u32> = Vec::new();
    if fetch.text || fetch.all {
        wanted.extend(&text);
    }
    if fetch.html || fetch.all {
        wanted.extend(&html);
    }
    let mut values = Map::new();
    for id in wanted {
        if let Some(text) = parsed.part(id).and_then(MessagePart::text_contents) {
            values.insert(id.to_string(), body_value(text, fetch.max_bytes));
        }
    }
    obj.insert("bodyValues".into(), Value::Object(values));
}

fn is_multipart(p: &MessagePart<'_>) -> bool {
    matches!(p.body, PartType::Multipart(_))
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

/// An EmailBodyPart (RFC 8621 §4.1.4); `subParts` for multiparts down to
/// [`MAX_DEPTH`], where a multipart is one opaque part. Part blobs are not
/// separately downloadable: `blobId` is left out.
fn part_object(
    msg: &mail_parser::Message<'_>,
    id: u32,
    p: &MessagePart<'_>,
    depth: usize,
) -> Value {
    let cut = depth >= MAX_DEPTH && is_multipart(p);
    let ctype = p.content_type().filter(|_| !cut);
    let mime = match ctype {
        _ if cut => "application/octet-stream".to_string(),
        Some(c) => {
            format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")).to_lowercase()
        }
        None => "text/plain".to_string(),
    };
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
    if let (PartType::Multipart(children), Some(map), false) = (&p.body, obj.as_object_mut(), cut) {
        // why: recursion is bounded by MAX_DEPTH (the `cut` above).
        let subs: Vec<Value> = children
            .iter()
            .filter_map(|&c| msg.part(c).map(|cp| part_object(msg, c, cp, depth + 1)))
            .collect();
        map.insert("subParts".into(), json!(subs));
    }
    obj
}
