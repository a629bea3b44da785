//! An Email object (RFC 8621 §4.1) from a stored record and its bytes,
//! or (`Email/parse`, §4.9) from a blob's bytes alone.
//!
//! The bytes are parsed with `mail-parser`; the body properties are in
//! `body`, the `header:` forms in `headers`. An encrypted message is what
//! it is on disk: its header fields are in clear, so addresses, subject
//! and dates are served, but its body is one `application/pkcs7-mime`
//! part (see `body`).
//!
//! Only what a request asks for is computed ([`Need`]): metadata alone
//! reads nothing, header properties parse the header alone, and only the
//! body properties parse the MIME parts.

use mail_parser::{HeaderValue, MessageParser};
use serde_json::{json, Map, Value};

use super::super::error::Error;
use super::super::ids;
use super::body::{body_properties, BodyProperties, Fetch, Parts};
use super::headers::{addresses, check_count, HeaderProperty};
use super::part_blob::{Origin, PartBlob};
use crate::admin::api::utc;
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
        } else if any(HEADER_PROPERTIES) || props.iter().any(|p| p.starts_with("header:")) {
            Need::Header
        } else {
            Need::Metadata
        }
    }
}

/// What one `Email/get` or `Email/parse` asks of every Email.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    /// How much of the bytes to read.
    pub(crate) need: Need,
    /// The body values to fetch.
    pub(crate) fetch: Fetch,
    /// The EmailBodyPart properties.
    pub(crate) body: BodyProperties,
    /// The `header:` properties of the Email.
    pub(crate) headers: Vec<HeaderProperty>,
}

impl Wanted {
    /// What `props` and `body_props` ask; a malformed `header:` property
    /// or an unknown body property is `invalidArguments`.
    pub(crate) fn of(
        props: &[String],
        body_props: Option<&[String]>,
        fetch: Fetch,
    ) -> Result<Self, Error> {
        let mut headers = Vec::new();
        for p in props {
            headers.extend(HeaderProperty::parse(p)?);
        }
        check_count(headers.len())?;
        Ok(Self {
            need: Need::of(props),
            fetch,
            body: BodyProperties::parse(body_props)?,
            headers,
        })
    }
}

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

/// The Email object of `msg` with bytes `raw`, as far as `wanted` goes.
/// `decrypted` says whether `raw` is the message decrypted (server-side
/// reading): then its parts are shown, and their blob ids say so.
pub(crate) fn email_object(
    account: AccountId,
    msg: &Message,
    raw: &[u8],
    wanted: &Wanted,
    decrypted: bool,
) -> Map<String, Value> {
    let mut obj = metadata(account, msg);
    let place = PartBlob {
        account,
        origin: Origin::Email {
            email: msg.email_id,
            blob: msg.blob,
            decrypted,
        },
        path: Vec::new(),
    };
    let encrypted = msg.encrypted && !decrypted;
    parsed_properties(&mut obj, raw, wanted, &place, encrypted);
    obj
}

/// The Email object `Email/parse` makes of the blob `blob_id` with bytes
/// `raw` at `place` (RFC 8621 §4.9: no id, mailboxIds, keywords or
/// receivedAt; no threadId, as it is not computed), or `None` when the
/// bytes are no message.
pub(crate) fn parsed_email(
    blob_id: &str,
    raw: &[u8],
    wanted: &Wanted,
    place: &PartBlob,
) -> Option<Map<String, Value>> {
    let parser = MessageParser::default();
    crate::mime::parse_headers(&parser, raw)?;
    let mut obj = Map::new();
    for key in ["id", "threadId", "mailboxIds", "keywords", "receivedAt"] {
        obj.insert(key.into(), Value::Null);
    }
    obj.insert("blobId".into(), json!(blob_id));
    obj.insert("size".into(), json!(raw.len()));
    parsed_properties(&mut obj, raw, wanted, place, false);
    Some(obj)
}

/// The header and body properties of the message `raw`, whose parts'
/// blobs are below `place`.
fn parsed_properties(
    obj: &mut Map<String, Value>,
    raw: &[u8],
    wanted: &Wanted,
    place: &PartBlob,
    encrypted: bool,
) {
    let parser = MessageParser::default();
    let parsed = match wanted.need {
        Need::Metadata => return,
        Need::Header => crate::mime::parse_headers(&parser, raw),
        Need::Body => crate::mime::parse(&parser, raw),
    };
    let Some(parsed) = parsed else {
        return;
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
    let root = parsed.parts.first().map_or(&[][..], |p| &p.headers[..]);
    for h in &wanted.headers {
        obj.insert(h.key.clone(), h.value(raw, root));
    }
    if wanted.need == Need::Body {
        let parts = Parts {
            props: &wanted.body,
            place,
            encrypted,
            fetch: wanted.fetch,
        };
        body_properties(obj, &parsed, raw, parts);
    }
}
