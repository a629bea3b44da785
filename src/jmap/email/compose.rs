//! `Email/set` create (RFC 8621 §4.6): an Email object in JSON becomes an
//! RFC 5322 message. This is how JMAP clients write drafts and the mail
//! they send (`EmailSubmission`, RFC 8621 §7).
//!
//! Accepted: `mailboxIds`, `keywords`, `receivedAt`; the header
//! properties `messageId`, `inReplyTo`, `references`, `sender`, `from`,
//! `to`, `cc`, `bcc`, `replyTo`, `subject`, `sentAt` and `header:NAME`
//! (raw form, or `:asText`); the body either as `bodyStructure` or as
//! `textBody` / `htmlBody` / `attachments`, with `bodyValues` for text
//! parts and `blobId` (an upload, a stored message or a body part) for
//! the others. Anything else is `invalidProperties` naming it.
//!
//! What comes out is 7-bit: header text that is not ASCII becomes RFC
//! 2047 encoded words, parameters RFC 2231, text bodies quoted-printable
//! when needed, other bodies base64. Every value is checked for what
//! would start a new header field or part (CR, LF, a boundary), so a
//! client cannot smuggle fields into the message it sends.

use std::sync::Arc;

use rand::RngCore as _;
use serde_json::{Map, Value};

use super::super::call::Call;
use super::super::error::Error;
use super::super::ids;
use super::part_blob::{self, PartBlob};
use encode::{
    addresses, base64_lines, boundary, crlf, encoded_words, is_media_type, is_token, message_ids,
    parameter, text_body,
};

/// Deepest nesting of `subParts`.
const MAX_DEPTH: usize = 8;
/// Most body parts in one Email.
const MAX_PARTS: usize = 100;
/// Longest encoded line (RFC 5322 §2.1.1 allows 998; 76 is MIME's).
const LINE: usize = 76;

/// The header properties, in the order their fields are written.
const HEADER_PROPS: &[(&str, &str)] = &[
    ("from", "From"),
    ("sender", "Sender"),
    ("replyTo", "Reply-To"),
    ("to", "To"),
    ("cc", "Cc"),
    ("bcc", "Bcc"),
];

/// Properties create accepts besides the header ones and `header:*`.
const OTHER_PROPS: &[&str] = &[
    "mailboxIds",
    "keywords",
    "receivedAt",
    "messageId",
    "inReplyTo",
    "references",
    "subject",
    "sentAt",
    "bodyStructure",
    "bodyValues",
    "textBody",
    "htmlBody",
    "attachments",
];

fn bad(prop: &str, why: impl Into<String>) -> Error {
    Error::InvalidProperties {
        properties: vec![prop.to_string()],
        description: why.into(),
    }
}

/// The message `obj` describes, in CRLF; uploads and stored blobs it
/// names are read through `call`.
pub(crate) async fn compose(call: &Call, obj: &Map<String, Value>) -> Result<Vec<u8>, Error> {
    for key in obj.keys() {
        let known = OTHER_PROPS.contains(&key.as_str())
            || HEADER_PROPS.iter().any(|(p, _)| p == key)
            || key.starts_with("header:");
        if !known {
            return Err(bad(
                key,
                format!("{key} cannot be set when creating an Email (RFC 8621 §4.6)"),
            ));
        }
    }
    let mut head = String::new();
    header_fields(obj, &mut head)?;
    let body = body_tree(obj)?;
    let mut out = head.into_bytes();
    let mut parts = 0;
    write_part(call, obj, &body, &mut out, 0, &mut parts).await?;
    too_large(&out, call.server.ctx.max_upload_bytes)?;
    Ok(out)
}

/// `tooLarge` once `out` passes `max` (`limits.max_message_size`).
/// why checked as parts are added: a hundred parts naming one large
/// upload would otherwise be built whole in memory first.
fn too_large(out: &[u8], max: u64) -> Result<(), Error> {
    if out.len() as u64 <= max {
        return Ok(());
    }
    let e = super::super::error::JmapError::new(
        "tooLarge",
        format!("the message would be over {max} bytes, the largest this server stores"),
    );
    Err(Error::Set(Box::new(
        e.with("maxSize", serde_json::json!(max)),
    )))
}

/// The top-level header fields (all but the MIME ones of the body).
fn header_fields(obj: &Map<String, Value>, out: &mut String) -> Result<(), Error> {
    let date = match obj.get("sentAt") {
        None | Some(Value::Null) => time::OffsetDateTime::now_utc(),
        Some(Value::String(s)) => parse_date(s).ok_or_else(|| {
            bad(
                "sentAt",
                format!("{s:?} is not a Date (RFC 3339 with offset)"),
            )
        })?,
        Some(_) => return Err(bad("sentAt", "sentAt is a string")),
    };
    let date = date
        .format(&time::format_description::well_known::Rfc2822)
        .map_err(|_| bad("sentAt", "the date cannot be written in RFC 5322 form"))?;
    field(out, "Date", &date);
    for (prop, name) in HEADER_PROPS {
        if let Some(v) = obj.get(*prop).filter(|v| !v.is_null()) {
            let list = addresses(prop, v)?;
            if !list.is_empty() {
                field(out, name, &list.join(",\r\n "));
            }
        }
    }
    if let Some(Value::String(s)) = obj.get("subject") {
        field(out, "Subject", &encoded_words(s, "subject")?);
    } else if obj.get("subject").is_some_and(|v| !v.is_null()) {
        return Err(bad("subject", "subject is a string"));
    }
    let own_id = match obj.get("messageId").filter(|v| !v.is_null()) {
        Some(v) => message_ids("messageId", v)?,
        None => format!("<{}>", generated_id(obj)),
    };
    field(out, "Message-ID", &own_id);
    for (prop, name) in [("inReplyTo", "In-Reply-To"), ("references", "References")] {
        if let Some(v) = obj.get(prop).filter(|v| !v.is_null()) {
            field(out, name, &message_ids(prop, v)?);
        }
    }
    for (key, value) in obj {
        let Some(rest) = key.strip_prefix("header:") else {
            continue;
        };
        let (name, form) = rest.split_once(':').unwrap_or((rest, "asRaw"));
        if !is_field_name(name) || is_managed(name) {
            return Err(bad(
                key,
                format!(
                    "{name:?} cannot be set as a header field here; use the Email property for it"
                ),
            ));
        }
        let Value::String(text) = value else {
            return Err(bad(key, "a header:NAME value is a string"));
        };
        let text = match form {
            "asRaw" => {
                if !text.is_ascii() || text.chars().any(|c| c.is_control() && c != '\t') {
                    return Err(bad(
                        key,
                        "the raw form is ASCII without line breaks; use :asText for other text",
                    ));
                }
                text.trim().to_string()
            }
            "asText" => encoded_words(text, key)?,
            _ => {
                return Err(bad(
                    key,
                    format!("header form {form:?} is not supported on create; use asRaw or asText"),
                ))
            }
        };
        field(out, name, &text);
    }
    out.push_str("MIME-Version: 1.0\r\n");
    Ok(())
}

/// Fields that properties or the MIME writer own.
fn is_managed(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("content-")
        || [
            "date",
            "from",
            "sender",
            "reply-to",
            "to",
            "cc",
            "bcc",
            "subject",
            "message-id",
            "in-reply-to",
            "references",
            "mime-version",
        ]
        .contains(&n.as_str())
}

/// RFC 5322 §3.6.8 field name.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 76
        && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

fn field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(value);
    out.push_str("\r\n");
}

/// A `Date` (RFC 3339, `Z` or `±hh:mm`).
fn parse_date(s: &str) -> Option<time::OffsetDateTime> {
    let (local, offset) = if let Some(l) = s.strip_suffix(['Z', 'z']) {
        (l, time::UtcOffset::UTC)
    } else {
        let at = s.len().checked_sub(6)?;
        let (l, o) = (s.get(..at)?, s.get(at..)?);
        let sign = match o.as_bytes().first()? {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let (h, m) = o.get(1..)?.split_once(':')?;
        let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
        (l, time::UtcOffset::from_hms(sign * h, sign * m, 0).ok()?)
    };
    let utc = super::query::parse_utc_date(&format!("{local}Z"))?;
    let at =
        time::OffsetDateTime::from_unix_timestamp(utc - i64::from(offset.whole_seconds())).ok()?;
    Some(at.to_offset(offset))
}

fn generated_id(obj: &Map<String, Value>) -> String {
    let mut r = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let domain = obj
        .get("from")
        .and_then(|f| f.get(0))
        .and_then(|a| a.get("email"))
        .and_then(Value::as_str)
        .and_then(|e| e.rsplit_once('@'))
        .map(|(_, d)| d)
        .filter(|d| {
            d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        })
        .unwrap_or("sealmail.invalid");
    format!("{hex}@{domain}")
}

/// The body as one part tree: `bodyStructure`, or built from `textBody`,
/// `htmlBody` and `attachments` (RFC 8621 §4.6).
fn body_tree(obj: &Map<String, Value>) -> Result<Value, Error> {
    if let Some(tree) = obj.get("bodyStructure").filter(|v| !v.is_null()) {
        if ["textBody", "htmlBody", "attachments"]
            .iter()
            .any(|p| obj.get(*p).is_some_and(|v| !v.is_null()))
        {
            return Err(bad(
                "bodyStructure",
                "give bodyStructure or textBody/htmlBody/attachments, not both",
            ));
        }
        return Ok(tree.clone());
    }
    let one = |prop: &str, default_type: &str| -> Result<Option<Value>, Error> {
        match obj.get(prop) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) if a.is_empty() => Ok(None),
            Some(Value::Array(a)) if a.len() == 1 => {
                let mut p = a[0].clone();
                let given = p
                    .get("type")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase);
                match given.as_deref() {
                    None => {
                        if let Some(o) = p.as_object_mut() {
                            o.insert("type".into(), Value::String(default_type.into()));
                        }
                    }
                    Some(t) if t == default_type => {}
                    Some(t) => {
                        return Err(bad(prop, format!("{prop} holds {default_type}, not {t}")))
                    }
                }
                Ok(Some(p))
            }
            Some(_) => Err(bad(
                prop,
                format!("{prop} is a list of at most one {default_type} part"),
            )),
        }
    };
    let text = one("textBody", "text/plain")?;
    let html = one("htmlBody", "text/html")?;
    let body = match (text, html) {
        (Some(t), Some(h)) => {
            serde_json::json!({"type": "multipart/alternative", "subParts": [t, h]})
        }
        (Some(p), None) | (None, Some(p)) => p,
        (None, None) => serde_json::json!({"type": "text/plain", "partId": null}),
    };
    let attachments = match obj.get("attachments") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(bad("attachments", "attachments is a list of parts")),
    };
    if attachments.is_empty() {
        return Ok(body);
    }
    let mut parts = vec![body];
    parts.extend(attachments);
    Ok(serde_json::json!({"type": "multipart/mixed", "subParts": parts}))
}

/// Writes `part` (its MIME header fields, a blank line, its content).
fn write_part<'a>(
    call: &'a Call,
    obj: &'a Map<String, Value>,
    part: &'a Value,
    out: &'a mut Vec<u8>,
    depth: usize,
    count: &'a mut usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Error>> + Send + 'a>> {
    Box::pin(async move {
        *count += 1;
        if depth > MAX_DEPTH || *count > MAX_PARTS {
            return Err(bad(
                "bodyStructure",
                format!("at most {MAX_PARTS} parts, nested at most {MAX_DEPTH} deep"),
            ));
        }
        let p = part
            .as_object()
            .ok_or_else(|| bad("bodyStructure", "a body part is an object"))?;
        for key in p.keys() {
            let ok = [
                "partId",
                "blobId",
                "type",
                "charset",
                "disposition",
                "cid",
                "name",
                "subParts",
                "language",
                "location",
                "size",
            ]
            .contains(&key.as_str());
            if !ok {
                return Err(bad(
                    "bodyStructure",
                    format!("body part property {key:?} is not supported on create"),
                ));
            }
        }
        let text = |k: &str| p.get(k).and_then(Value::as_str);
        let ctype = text("type").unwrap_or("text/plain").to_ascii_lowercase();
        if !is_media_type(&ctype) {
            return Err(bad(
                "bodyStructure",
                format!("{ctype:?} is not a media type"),
            ));
        }
        if let Some(Value::Array(subs)) = p.get("subParts") {
            if !ctype.starts_with("multipart/") {
                return Err(bad("bodyStructure", "only a multipart/* part has subParts"));
            }
            let boundary = boundary();
            let head = format!("Content-Type: {ctype}; boundary=\"{boundary}\"\r\n\r\n");
            out.extend_from_slice(head.as_bytes());
            for sub in subs {
                out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
                write_part(call, obj, sub, out, depth + 1, count).await?;
                out.extend_from_slice(b"\r\n");
                too_large(out, call.server.ctx.max_upload_bytes)?;
            }
            out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            return Ok(());
        }
        if ctype.starts_with("multipart/") {
            return Err(bad("bodyStructure", "a multipart/* part needs subParts"));
        }
        let (content, is_text) = match (p.get("partId").filter(|v| !v.is_null()), text("blobId")) {
            (Some(id), None) => (value_of(obj, id)?.into_bytes(), true),
            (None, Some(blob)) => (blob_bytes(call, blob).await?, false),
            (None, None) if ctype.starts_with("text/") => (Vec::new(), true),
            _ => {
                return Err(bad(
                    "bodyStructure",
                    "a body part has either partId or blobId",
                ))
            }
        };
        if is_text && !ctype.starts_with("text/") {
            return Err(bad(
                "bodyStructure",
                "a partId names text; its type is text/*",
            ));
        }
        if let Some(cs) = text("charset").filter(|c| is_text && !c.eq_ignore_ascii_case("utf-8")) {
            return Err(bad(
                "bodyStructure",
                format!("text is written as UTF-8, not {cs}"),
            ));
        }
        let mut head = format!("Content-Type: {ctype}");
        if is_text {
            head.push_str("; charset=utf-8");
        }
        if let Some(name) = text("name") {
            head.push_str(&format!(";\r\n {}", parameter("name", name)?));
        }
        head.push_str("\r\n");
        if let Some(d) = text("disposition") {
            let d = d.to_ascii_lowercase();
            if !is_token(&d) {
                return Err(bad("bodyStructure", format!("{d:?} is not a disposition")));
            }
            head.push_str(&format!("Content-Disposition: {d}"));
            if let Some(name) = text("name") {
                head.push_str(&format!(";\r\n {}", parameter("filename", name)?));
            }
            head.push_str("\r\n");
        }
        for (prop, name) in [
            ("cid", "Content-ID"),
            ("language", "Content-Language"),
            ("location", "Content-Location"),
        ] {
            if let Some(v) = text(prop) {
                let ok = !v.is_empty()
                    && v.len() <= 250
                    && v.bytes()
                        .all(|b| (33..=126).contains(&b) && !b"<>".contains(&b));
                if !ok {
                    return Err(bad(
                        "bodyStructure",
                        format!("{prop} {v:?} is not printable ASCII without <>"),
                    ));
                }
                let v = if prop == "cid" {
                    format!("<{v}>")
                } else {
                    v.to_string()
                };
                head.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        let (cte, body) = if ctype == "message/rfc822" {
            let cte = if content.is_ascii() { "7bit" } else { "8bit" };
            (cte, crlf(&content))
        } else if is_text {
            text_body(&content)
        } else {
            ("base64", base64_lines(&content))
        };
        head.push_str(&format!("Content-Transfer-Encoding: {cte}\r\n\r\n"));
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&body);
        Ok(())
    })
}

/// The text a `partId` names in `bodyValues`.
fn value_of(obj: &Map<String, Value>, id: &Value) -> Result<String, Error> {
    let id = id
        .as_str()
        .ok_or_else(|| bad("bodyStructure", "partId is a string"))?;
    let value = obj
        .get("bodyValues")
        .and_then(|v| v.get(id))
        .ok_or_else(|| {
            bad(
                "bodyValues",
                format!("no bodyValues entry for partId {id:?}"),
            )
        })?;
    if value.get("isTruncated").and_then(Value::as_bool) == Some(true)
        || value.get("isEncodingProblem").and_then(Value::as_bool) == Some(true)
    {
        return Err(bad(
            "bodyValues",
            "isTruncated and isEncodingProblem are false on create",
        ));
    }
    value
        .get("value")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            bad(
                "bodyValues",
                format!("bodyValues {id:?} has no string value"),
            )
        })
}

/// The bytes a `blobId` names: an upload, a body part, or a stored
/// message of this account.
async fn blob_bytes(call: &Call, blob_id: &str) -> Result<Vec<u8>, Error> {
    let account = call.account.id;
    if let Some(up) = call.server.uploads.get(account, blob_id) {
        return Ok(up.to_vec());
    }
    let not_found = || Error::BlobNotFound(blob_id.to_string());
    let keys = call.reading.clone();
    if let Some(part) = PartBlob::parse(blob_id, account) {
        let upload: Option<Arc<Vec<u8>>> = match &part.origin {
            part_blob::Origin::Upload(hash) => call.server.uploads.get(account, &ids::blob(*hash)),
            _ => None,
        };
        return call
            .blocking(move |s, _| {
                Ok(part_blob::read(
                    s,
                    &part,
                    upload.as_deref().map(Vec::as_slice),
                    keys.as_deref(),
                )?)
            })
            .await?
            .ok_or_else(not_found);
    }
    let hash = ids::parse_blob(blob_id).ok_or_else(not_found)?;
    call.blocking(move |s, acct| Ok(s.get_blob(acct, hash)?))
        .await?
        .ok_or_else(not_found)
}

mod encode;

#[cfg(test)]
mod tests;
