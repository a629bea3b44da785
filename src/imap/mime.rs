//! ENVELOPE, BODYSTRUCTURE and `BODY[section]` of a stored message (RFC
//! 9051 §6.4.5, §7.5.2), computed from the stored bytes with mail-parser.
//!
//! An encrypted message is an `application/pkcs7-mime` single part: its
//! structure says exactly that, its clear outer header gives the
//! envelope, and sections cut from it are the stored S/MIME bytes. Byte
//! ranges come from mail-parser's offsets, so sections are verbatim
//! slices of what is stored, never re-serialised.
//!
//! Walks stop at [`MAX_DEPTH`]: a container deeper than that is one opaque
//! `application/octet-stream` part, in BODYSTRUCTURE and in section
//! numbers alike, and nothing recurses further (see [`crate::mime`]).

use imap_next::imap_types::body::{
    BasicFields, Body, BodyStructure, Disposition, MultiPartExtensionData, SinglePartExtensionData,
    SpecificFields,
};
use imap_next::imap_types::core::{IString, Literal, NString, Vec1};
use imap_next::imap_types::envelope::{Address, Envelope};
use imap_next::imap_types::fetch::{Part, Section};
use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::mime::MAX_DEPTH;

/// Parses stored bytes: into parts when `parts` (structure, part
/// sections), else the header only (envelope, header and root text).
pub(crate) fn parse(raw: &[u8], parts: bool) -> Option<Message<'_>> {
    let parser = MessageParser::new()
        .with_mime_headers()
        .with_address_headers();
    if parts {
        crate::mime::parse(&parser, raw)
    } else {
        crate::mime::parse_headers(&parser, raw)
    }
}

/// Whether `section` names a part by number (and so needs the parts).
pub(crate) fn has_path(section: &Section<'_>) -> bool {
    match section {
        Section::Part(_) | Section::Mime(_) => true,
        Section::Header(p)
        | Section::Text(p)
        | Section::HeaderFields(p, _)
        | Section::HeaderFieldsNot(p, _) => p.is_some(),
    }
}

/// A container at `depth` that walks show as one opaque leaf.
fn is_cut(part: &MessagePart<'_>, depth: usize) -> bool {
    depth >= MAX_DEPTH && matches!(part.body, PartType::Multipart(_) | PartType::Message(_))
}

/// `bytes` as a literal. No literal may carry a NUL (RFC 9051 §4.3.1), yet
/// a stored message may hold one, in its body (appended in binary) or in
/// a header field a sender wrote: it goes out as 0x80, as Dovecot sends it.
pub(crate) fn nul_free_literal(mut bytes: Vec<u8>) -> IString<'static> {
    bytes
        .iter_mut()
        .filter(|b| **b == 0)
        .for_each(|b| *b = 0x80);
    IString::Literal(Literal::unvalidated(bytes))
}

fn istring(s: &str) -> IString<'static> {
    IString::try_from(s.to_string()).unwrap_or_else(|_| nul_free_literal(s.as_bytes().to_vec()))
}

pub(crate) fn nstring(s: Option<&str>) -> NString<'static> {
    NString(s.map(istring))
}

/// The raw value of the first header field `name` of `part`, unfolded.
fn raw_field(part: &MessagePart<'_>, raw: &[u8], name: &str) -> Option<String> {
    let h = part
        .headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))?;
    let bytes = raw.get(h.offset_start as usize..h.offset_end as usize)?;
    let text = String::from_utf8_lossy(bytes);
    let unfolded: String = text.replace("\r\n", "").replace('\n', "");
    Some(unfolded.trim().to_string())
}

/// The address list of the first field `name` of `part` (empty when
/// there is none or it holds no address).
fn addresses(part: &MessagePart<'_>, name: &str) -> Vec<Address<'static>> {
    part.headers
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .and_then(|h| h.value.as_address())
        .map(super::address::envelope_list)
        .unwrap_or_default()
}

/// ENVELOPE of `msg` (its root header).
pub(crate) fn envelope(msg: &Message<'_>) -> Envelope<'static> {
    let raw = msg.raw_message.as_ref();
    let root = msg.root_part();
    let text = |name| nstring(raw_field(root, raw, name).as_deref());
    let from = addresses(root, "from");
    let or_from = |list: Vec<Address<'static>>| if list.is_empty() { from.clone() } else { list };
    Envelope {
        date: text("date"),
        subject: text("subject"),
        sender: or_from(addresses(root, "sender")),
        reply_to: or_from(addresses(root, "reply-to")),
        from: from.clone(),
        to: addresses(root, "to"),
        cc: addresses(root, "cc"),
        bcc: addresses(root, "bcc"),
        in_reply_to: text("in-reply-to"),
        message_id: text("message-id"),
    }
}

/// BODYSTRUCTURE (`extended`) or BODY of `msg`.
pub(crate) fn body_structure(msg: &Message<'_>, extended: bool) -> BodyStructure<'static> {
    structure(msg, 0, extended, 0)
}

fn structure(msg: &Message<'_>, id: usize, ext: bool, depth: usize) -> BodyStructure<'static> {
    let Some(part) = msg.parts.get(id) else {
        return leaf(msg, &MessagePart::default(), ext, depth);
    };
    match &part.body {
        PartType::Multipart(children) if depth < MAX_DEPTH => {
            let bodies: Vec<_> = children
                .iter()
                .map(|&c| structure(msg, c as usize, ext, depth + 1))
                .collect();
            let Ok(bodies) = Vec1::try_from(bodies) else {
                return leaf(msg, part, ext, depth);
            };
            let subtype = part
                .content_type()
                .and_then(|c| c.subtype())
                .unwrap_or("mixed");
            BodyStructure::Multi {
                bodies,
                subtype: istring(subtype),
                extension_data: ext.then(|| MultiPartExtensionData {
                    parameter_list: parameters(part),
                    tail: Some(disposition(part)),
                }),
            }
        }
        _ => leaf(msg, part, ext, depth),
    }
}

fn parameters(part: &MessagePart<'_>) -> Vec<(IString<'static>, IString<'static>)> {
    part.content_type()
        .and_then(|c| c.attributes())
        .unwrap_or_default()
        .iter()
        .map(|a| (istring(&a.name), istring(&a.value)))
        .collect()
}

fn disposition(part: &MessagePart<'_>) -> Disposition<'static> {
    Disposition {
        disposition: part.content_disposition().map(|d| {
            let params = d
                .attributes()
                .unwrap_or_default()
                .iter()
                .map(|a| (istring(&a.name), istring(&a.value)))
                .collect();
            (istring(d.ctype()), params)
        }),
        tail: None,
    }
}

fn leaf(
    msg: &Message<'_>,
    part: &MessagePart<'_>,
    ext: bool,
    depth: usize,
) -> BodyStructure<'static> {
    let raw = msg.raw_message.as_ref();
    let body = raw
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    let lines = u32::try_from(body.iter().filter(|&&b| b == b'\n').count()).unwrap_or(u32::MAX);
    let cut = is_cut(part, depth);
    let (ctype, subtype) = match part.content_type() {
        _ if cut => ("application".to_string(), "octet-stream".to_string()),
        Some(c) => (c.ctype().to_string(), c.subtype().unwrap_or("").to_string()),
        None => ("text".to_string(), "plain".to_string()),
    };
    let mut parameter_list = if cut { Vec::new() } else { parameters(part) };
    if parameter_list.is_empty() && part.content_type().is_none() {
        parameter_list.push((istring("charset"), istring("us-ascii")));
    }
    let basic = BasicFields {
        parameter_list,
        id: nstring(part.content_id()),
        description: nstring(part.content_description()),
        content_transfer_encoding: istring(part.content_transfer_encoding().unwrap_or("7BIT")),
        size: u32::try_from(body.len()).unwrap_or(u32::MAX),
    };
    let specific = match &part.body {
        PartType::Message(nested) if depth < MAX_DEPTH => SpecificFields::Message {
            envelope: Box::new(envelope(nested)),
            body_structure: Box::new(structure(nested, 0, ext, depth + 1)),
            number_of_lines: lines,
        },
        _ if ctype.eq_ignore_ascii_case("text") => SpecificFields::Text {
            subtype: istring(&subtype),
            number_of_lines: lines,
        },
        _ => SpecificFields::Basic {
            r#type: istring(&ctype),
            subtype: istring(&subtype),
        },
    };
    BodyStructure::Single {
        body: Body { basic, specific },
        extension_data: ext.then(|| SinglePartExtensionData {
            md5: NString(None),
            tail: Some(disposition(part)),
        }),
    }
}

/// The bytes of `BODY[section]` (RFC 9051 §6.4.5); `None` for a part
/// that does not exist (the client gets an empty string).
pub(crate) fn section(msg: &Message<'_>, section: Option<&Section<'_>>) -> Option<Vec<u8>> {
    let raw = msg.raw_message.as_ref();
    let Some(section) = section else {
        return Some(raw.to_vec());
    };
    let (path, what) = match section {
        Section::Part(p) => (Some(p), What::Body),
        Section::Header(p) => (p.as_ref(), What::Header),
        Section::Text(p) => (p.as_ref(), What::Text),
        Section::Mime(p) => (Some(p), What::Mime),
        Section::HeaderFields(p, names) => (p.as_ref(), What::Fields(names_of(names), true)),
        Section::HeaderFieldsNot(p, names) => (p.as_ref(), What::Fields(names_of(names), false)),
    };
    let (owner, part) = match path {
        Some(path) => find(msg, path)?,
        None => (msg, msg.root_part()),
    };
    let raw = owner.raw_message.as_ref();
    let slice = |a: u32, b: u32| raw.get(a as usize..b as usize).map(<[u8]>::to_vec);
    match what {
        What::Body => slice(part.offset_body, part.offset_end),
        What::Mime => slice(part.offset_header, part.offset_body),
        // HEADER / TEXT of a part are those of its encapsulated message.
        What::Header | What::Text | What::Fields(..) => {
            let (inner, root) = match (&part.body, path.is_some()) {
                (PartType::Message(nested), true) => (nested, nested.root_part()),
                (_, true) => return None,
                (_, false) => (owner, part),
            };
            let raw = inner.raw_message.as_ref();
            match what {
                What::Header => raw
                    .get(root.offset_header as usize..root.offset_body as usize)
                    .map(<[u8]>::to_vec),
                What::Text => {
                    let outer = owner.raw_message.as_ref();
                    let end = text_end(raw, outer, path.is_some().then_some(part));
                    raw.get(root.offset_body as usize..end).map(<[u8]>::to_vec)
                }
                What::Fields(names, keep) => Some(fields(root, raw, &names, keep)),
                What::Body | What::Mime => None,
            }
        }
    }
}

/// Where the TEXT of a message ends in `raw`, its message's bytes: at
/// the end of the message, epilogue included (RFC 3501 §6.4.5), not at
/// its root's `offset_end`, which for a multipart root stops at the
/// closing boundary. An encapsulated message reached through the
/// message/rfc822 `part` of `outer` ends with that part: mail-parser
/// gives it the enclosing bytes themselves (offsets shared), unless it
/// had to decode the part (then its bytes are its own, whole).
fn text_end(raw: &[u8], outer: &[u8], part: Option<&MessagePart<'_>>) -> usize {
    match part {
        Some(part) if raw.as_ptr() == outer.as_ptr() => (part.offset_end as usize).min(raw.len()),
        _ => raw.len(),
    }
}

enum What {
    Body,
    Header,
    Text,
    Mime,
    Fields(Vec<String>, bool),
}

fn names_of(names: &Vec1<imap_next::imap_types::core::AString<'_>>) -> Vec<String> {
    names
        .as_ref()
        .iter()
        .map(|n| String::from_utf8_lossy(n.as_ref()).to_ascii_lowercase())
        .collect()
}

/// The header lines of `part` whose name is (`keep`) or is not in
/// `names`, verbatim, followed by the blank line.
fn fields(part: &MessagePart<'_>, raw: &[u8], names: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for h in &part.headers {
        let listed = names
            .iter()
            .any(|n| h.name.as_str().eq_ignore_ascii_case(n));
        if listed == keep {
            if let Some(line) = raw.get(h.offset_field as usize..h.offset_end as usize) {
                out.extend_from_slice(line);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The part at `path` (1-based numbers, RFC 9051 §6.4.5) with the
/// message whose `raw_message` its offsets refer to. A container at
/// [`MAX_DEPTH`] is a leaf here as in BODYSTRUCTURE: only `1` goes on into
/// it, meaning itself.
pub(crate) fn find<'m, 'x>(
    msg: &'m Message<'x>,
    path: &Part,
) -> Option<(&'m Message<'x>, &'m MessagePart<'x>)> {
    let mut owner = msg;
    let mut part = msg.root_part();
    let mut depth = 0;
    for (step, n) in path.0.as_ref().iter().enumerate() {
        let n = n.get() as usize;
        if step > 0 && depth < MAX_DEPTH {
            if let PartType::Message(nested) = &part.body {
                owner = nested;
                part = nested.root_part();
                depth += 1;
            }
        }
        part = match &part.body {
            PartType::Multipart(children) if depth < MAX_DEPTH => {
                let id = *children.get(n.checked_sub(1)?)?;
                depth += 1;
                owner.parts.get(id as usize)?
            }
            // A non-multipart (or a cut-off one) has exactly one part, itself.
            _ if n == 1 => part,
            _ => return None,
        };
    }
    Some((owner, part))
}
