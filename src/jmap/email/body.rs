//! The body of an Email object (RFC 8621 §4.1.4): `bodyStructure`,
//! `textBody`, `htmlBody`, `attachments`, `hasAttachment`, `preview` and
//! `bodyValues`, each EmailBodyPart with the `bodyProperties` asked.
//!
//! Every non-multipart part has a `blobId` (a [`PartBlob`] one level
//! below the message's own place) whose download is the part's decoded
//! octets, and its `size` is their length. An encrypted message is what
//! it is on disk: one `application/pkcs7-mime` part, its only attachment,
//! whose blob is the CMS structure (`smime.p7m`); `textBody`/`htmlBody`
//! are empty, `bodyValues` is `{}` and `preview` is `""`. The server
//! cannot read it, and says nothing it would have to guess.
//!
//! The walks stop at [`MAX_DEPTH`]: a deeper multipart is one opaque
//! `application/octet-stream` part (listed among the attachments) whose
//! blob is its raw body, and no part below it is served (see
//! [`crate::mime`]).

use mail_parser::{HeaderValue, MessagePart, MimeHeaders, PartType};
use serde_json::{json, Map, Value};

use super::super::error::Error;
use super::headers::{all_headers, check_count, HeaderProperty};
use super::part_blob::{leaf_content, PartBlob};
use crate::mime::MAX_DEPTH;

/// The `bodyProperties` when none are asked (RFC 8621 §4.2).
const DEFAULT_BODY_PROPERTIES: &[&str] = &[
    "partId",
    "blobId",
    "size",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
];

/// The EmailBodyPart properties (RFC 8621 §4.1.4) besides `header:*`.
const PART_PROPERTIES: &[&str] = &[
    "partId",
    "blobId",
    "size",
    "headers",
    "name",
    "type",
    "charset",
    "disposition",
    "cid",
    "language",
    "location",
    "subParts",
];

/// Characters of `preview` (RFC 8621 §4.1.4: at most 256).
const PREVIEW_CHARS: usize = 256;

/// Which EmailBodyPart properties to return.
#[derive(Debug, Clone)]
pub(crate) struct BodyProperties {
    plain: Vec<&'static str>,
    headers: Vec<HeaderProperty>,
}

impl BodyProperties {
    /// `asked`, or the default list; an unknown property or a malformed
    /// `header:` form is `invalidArguments`.
    pub(crate) fn parse(asked: Option<&[String]>) -> Result<Self, Error> {
        let Some(asked) = asked else {
            return Ok(Self {
                plain: DEFAULT_BODY_PROPERTIES.to_vec(),
                headers: Vec::new(),
            });
        };
        let mut out = Self {
            plain: Vec::new(),
            headers: Vec::new(),
        };
        for p in asked {
            if let Some(h) = HeaderProperty::parse(p)? {
                out.headers.push(h);
            } else if let Some(known) = PART_PROPERTIES.iter().find(|k| **k == p) {
                out.plain.push(known);
            } else {
                return Err(Error::InvalidArguments(format!(
                    "unknown body property {p:?} (RFC 8621 §4.1.4)"
                )));
            }
        }
        check_count(out.headers.len())?;
        Ok(out)
    }

    fn has(&self, name: &str) -> bool {
        self.plain.contains(&name)
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

/// How to show the parts of one message.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    /// The properties of each part.
    pub(crate) props: &'a BodyProperties,
    /// Where the message is: its parts' blobs are one level below.
    pub(crate) place: &'a PartBlob,
    /// Whether the message is stored encrypted (shown as one part).
    pub(crate) encrypted: bool,
    /// The body values to fetch.
    pub(crate) fetch: Fetch,
}

/// The body properties of `parsed` (parsed from `raw`) into `obj`.
pub(crate) fn body_properties(
    obj: &mut Map<String, Value>,
    parsed: &mail_parser::Message<'_>,
    raw: &[u8],
    parts: Parts<'_>,
) {
    let depths = crate::mime::part_depths(parsed);
    let depth = |id: u32| depths.get(id as usize).copied().unwrap_or(0);
    let part = |id: u32| {
        parsed
            .part(id)
            .map(|p| part_object(parsed, raw, id, p, depth(id), parts))
    };
    let list = |ids: &[u32]| -> Vec<Value> { ids.iter().filter_map(|&i| part(i)).collect() };
    obj.insert("bodyStructure".into(), part(0).unwrap_or(Value::Null));
    if parts.encrypted {
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
    let fetch = parts.fetch;
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

/// An EmailBodyPart (RFC 8621 §4.1.4) with the asked properties, and
/// `subParts` for multiparts down to [`MAX_DEPTH`], where a multipart is
/// one opaque part. `subParts` is always there for a multipart: without
/// it `bodyStructure` says nothing of the structure.
fn part_object(
    msg: &mail_parser::Message<'_>,
    raw: &[u8],
    id: u32,
    p: &MessagePart<'_>,
    depth: usize,
    parts: Parts<'_>,
) -> Value {
    let props = parts.props;
    let cut = depth >= MAX_DEPTH && is_multipart(p);
    let ctype = p.content_type().filter(|_| !cut);
    let mime = match ctype {
        _ if cut => "application/octet-stream".to_string(),
        Some(c) => {
            format!("{}/{}", c.ctype(), c.subtype().unwrap_or("octet-stream")).to_lowercase()
        }
        None => "text/plain".to_string(),
    };
    let content = leaf_content(raw, p, depth);
    let mut obj = Map::new();
    for &name in &props.plain {
        let value = match name {
            "partId" => json!(id.to_string()),
            "blobId" => match (&content, parts.place.child(id)) {
                (Some(_), Some(blob)) => json!(blob.id()),
                _ => Value::Null,
            },
            "size" => json!(content.as_ref().map_or(0, |c| c.len())),
            "headers" => all_headers(raw, &p.headers),
            "name" => json!(p.attachment_name()),
            "type" => json!(mime),
            "charset" => json!(ctype
                .and_then(|c| c.attribute("charset"))
                .map(str::to_string)
                .or_else(|| mime.starts_with("text/").then(|| "us-ascii".to_string()))),
            "disposition" => json!(p.content_disposition().map(|d| d.ctype().to_lowercase())),
            "cid" => json!(p.content_id()),
            "language" => match p.content_language() {
                HeaderValue::Text(t) => json!([t]),
                HeaderValue::TextList(l) => json!(l),
                _ => Value::Null,
            },
            "location" => json!(p.content_location()),
            // why: added below for multiparts only.
            _ => continue,
        };
        obj.insert(name.into(), value);
    }
    for h in &props.headers {
        obj.insert(h.key.clone(), h.value(raw, &p.headers));
    }
    if let (PartType::Multipart(children), false) = (&p.body, cut) {
        // why: recursion is bounded by MAX_DEPTH (the `cut` above).
        let subs: Vec<Value> = children
            .iter()
            .filter_map(|&c| {
                msg.part(c)
                    .map(|cp| part_object(msg, raw, c, cp, depth + 1, parts))
            })
            .collect();
        obj.insert("subParts".into(), json!(subs));
    } else if props.has("subParts") {
        obj.insert("subParts".into(), Value::Null);
    }
    Value::Object(obj)
}
