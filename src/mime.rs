//! Limits shared by every walker of MIME structure (JMAP body parts, IMAP
//! BODYSTRUCTURE and `BODY[section]`), and the one guarded way to run
//! mail-parser on stored bytes.
//!
//! A sender controls how deep a message nests (RFC 2046 §5.1 multiparts,
//! §5.2.1 `message/rfc822`), so nothing here recurses on that depth:
//!
//! - Walkers stop at [`MAX_DEPTH`] and show what is deeper as one opaque
//!   `application/octet-stream` leaf spanning the container's bytes.
//! - mail-parser 0.11 parses multipart nesting with an explicit stack into a
//!   flat part list (measured: 20,000 levels, 1.4 MB, in about 75 ms), but it
//!   nests each `message/rfc822` as a `Message` inside its parent's part, and
//!   dropping that tree recurses: a 40,000-deep chain (1.3 MB) overflows a
//!   2 MiB thread stack in mail-parser's own code. It also rescans the rest
//!   of the message for every multipart whose boundary never comes
//!   (measured: 16,000 such parts in 1 MB take 9 s). Both costs grow with the
//!   number of container (`multipart/*`, `message/*`) header fields, so
//!   [`parse`] counts those in one linear pass first and, over
//!   [`MAX_CONTAINERS`], parses the header alone and serves the body as one
//!   opaque part. Every byte stays downloadable (`BODY[]`, the blob).

use std::borrow::Cow;
use std::panic::AssertUnwindSafe;

use mail_parser::{ContentType, HeaderName, HeaderValue, Message, MessageParser, PartType};

pub mod search;
#[cfg(test)]
mod tests;

/// Deepest part a walker descends to: the root is depth 0, each multipart
/// child or encapsulated message one more. Real mail nests a handful of
/// levels (a forwarded signed alternative is about 5). 32 because a JMAP
/// `bodyStructure` spends two JSON levels per part level (object and its
/// `subParts` array) under about six of the response itself, and JSON
/// readers cap nesting (serde_json, which Rust JMAP clients use, at 128);
/// it also keeps the recursive encoders in imap-types and serde_json far
/// below a 2 MiB thread stack.
pub const MAX_DEPTH: usize = 32;

/// Most container header fields (`Content-Type: multipart/*` or
/// `message/*`, or any Content-Type we cannot tell is a leaf) a message
/// may have and still be parsed into parts. This bounds mail-parser's
/// nested `message/rfc822` depth to 512 (see [`Nesting`]; its recursive
/// drop was fine at 20,000 on a 2 MiB stack) and its rescans for missing
/// boundaries (at most 256 passes over the message). Real mail has a few;
/// a digest of a hundred forwarded multipart messages stays under it.
pub const MAX_CONTAINERS: usize = 256;

/// Budget for mail-parser's worst case, container fields times message
/// bytes (each may cost a pass to the end): 4 GiB is about 5 s at the
/// measured 0.9 GB/s, reached only by a message over 16 MiB with 256
/// containers. Over it, the message is served opaque as over
/// [`MAX_CONTAINERS`].
const MAX_SCAN_BYTES: u64 = 4 << 30;

/// Media types a Content-Type may start with and still name a leaf part.
const LEAF_TYPES: &[&[u8]] = &[
    b"text",
    b"application",
    b"image",
    b"audio",
    b"video",
    b"font",
    b"model",
];

/// Parses stored bytes into parts with `parser`, unless the message has
/// more container fields than mail-parser can be trusted with: then only
/// its header is parsed and its body is one opaque part ([`opaque`]).
pub fn parse<'x>(parser: &MessageParser, raw: &'x [u8]) -> Option<Message<'x>> {
    if too_complex(raw) {
        return opaque(parser, raw);
    }
    // why: mail-parser is not panic-free on hostile input: its
    // `debug_assert!`s and offset arithmetic panic in builds with debug
    // assertions (the property test below finds inputs within seconds). A
    // panic serves the message opaque instead of failing the request.
    let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| parser.parse(raw)));
    match parsed {
        Ok(msg) => msg,
        Err(_) => opaque(parser, raw),
    }
}

/// Whether `raw` has more container fields than mail-parser can be
/// trusted with (see [`MAX_CONTAINERS`], [`MAX_SCAN_BYTES`]): [`parse`]
/// serves it [`opaque`].
pub fn too_complex(raw: &[u8]) -> bool {
    let containers = containers(raw);
    let scan = u64::try_from(containers)
        .unwrap_or(u64::MAX)
        .saturating_mul(u64::try_from(raw.len()).unwrap_or(u64::MAX));
    containers > MAX_CONTAINERS || scan > MAX_SCAN_BYTES
}

/// The header of `raw` parsed (one linear pass; mail-parser stops at the
/// empty line), with the root part's body range set to the whole body.
pub fn parse_headers<'x>(parser: &MessageParser, raw: &'x [u8]) -> Option<Message<'x>> {
    // why: as in `parse`; a header that panics mail-parser reads as none.
    let parsed = std::panic::catch_unwind(AssertUnwindSafe(|| parser.parse_headers(raw)));
    let mut msg = parsed.ok().flatten()?;
    let body = header_end(raw);
    let root = msg.parts.first_mut()?;
    root.offset_header = 0;
    root.offset_body = u32::try_from(body).unwrap_or(u32::MAX);
    root.offset_end = u32::try_from(raw.len()).unwrap_or(u32::MAX);
    root.body = PartType::Binary(Cow::Borrowed(raw.get(body..).unwrap_or_default()));
    Some(msg)
}

/// The header of `raw` with its body as one `application/octet-stream`
/// part: what a message too complex to walk safely is served as. Its
/// parsed Content-Type says so; the stored bytes are unchanged.
pub fn opaque<'x>(parser: &MessageParser, raw: &'x [u8]) -> Option<Message<'x>> {
    let mut msg = parse_headers(parser, raw)?;
    let root = msg.parts.first_mut()?;
    let octets = HeaderValue::ContentType(ContentType {
        c_type: Cow::Borrowed("application"),
        c_subtype: Some(Cow::Borrowed("octet-stream")),
        attributes: None,
    });
    for h in &mut root.headers {
        if h.name == HeaderName::ContentType {
            h.value = octets.clone();
        }
    }
    msg.attachments = vec![0];
    msg.text_body.clear();
    msg.html_body.clear();
    Some(msg)
}

/// Offset of the first body byte: just past the first empty line, or the
/// end when there is none (a message that is all header).
pub fn header_end(raw: &[u8]) -> usize {
    if raw.starts_with(b"\r\n") {
        return 2;
    }
    if raw.starts_with(b"\n") {
        return 1;
    }
    let mut i = 0;
    while let Some(nl) = raw
        .get(i..)
        .and_then(|r| r.iter().position(|&b| b == b'\n'))
    {
        let next = i + nl + 1;
        match raw.get(next..) {
            Some([b'\r', b'\n', ..]) => return next + 2,
            Some([b'\n', ..]) => return next + 1,
            _ => i = next,
        }
    }
    raw.len()
}

/// How many lines of `raw` may hold a Content-Type field that opens a
/// container, read as leniently as mail-parser reads a field name (it
/// splits lines at LF only, skips leading colons and every ASCII blank,
/// CR included, up to the colon: `: Content - Type :` is one), unless the
/// value plainly starts with a leaf media type. Counts anywhere in the
/// message, bodies too: a count too high only makes a message opaque, a
/// count too low would let mail-parser in.
pub fn containers(raw: &[u8]) -> usize {
    raw.split(|&b| b == b'\n')
        .filter(|line| opens_container(line))
        .count()
}

fn opens_container(line: &[u8]) -> bool {
    const NAME: &[u8] = b"content-type";
    let mut name = [0u8; 12];
    let mut len = 0;
    let mut value = None;
    for (i, &b) in line.iter().enumerate() {
        if b == b':' {
            if len > 0 {
                value = line.get(i + 1..);
                break;
            }
        } else if !b.is_ascii_whitespace() {
            match name.get_mut(len) {
                Some(slot) => *slot = b.to_ascii_lowercase(),
                None => return false,
            }
            len += 1;
        }
    }
    let Some(value) = value else {
        return false;
    };
    if name.get(..len) != Some(NAME) {
        return false;
    }
    let value = trim_blanks(value);
    !LEAF_TYPES.iter().any(|t| {
        value
            .get(..t.len())
            .is_some_and(|v| v.eq_ignore_ascii_case(t))
            && trim_blanks(value.get(t.len()..).unwrap_or_default()).starts_with(b"/")
    })
}

fn trim_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    s.get(n..).unwrap_or_default()
}

/// Depth of every part of `msg.parts` (root 0, a multipart's child one
/// more), computed with an explicit stack; parts no multipart reaches keep
/// depth 0. Parts of encapsulated messages live in their own `Message`.
pub fn part_depths(msg: &Message<'_>) -> Vec<usize> {
    let mut depth = vec![0; msg.parts.len()];
    let mut seen = vec![false; msg.parts.len()];
    let mut stack = vec![(0usize, 0usize)];
    while let Some((id, d)) = stack.pop() {
        // why: a corrupt part list could name a part twice; walk it once.
        match seen.get_mut(id) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        if let Some(slot) = depth.get_mut(id) {
            *slot = d;
        }
        if let Some(PartType::Multipart(children)) = msg.parts.get(id).map(|p| &p.body) {
            stack.extend(children.iter().map(|&c| (c as usize, d + 1)));
        }
    }
    depth
}

/// How a parsed message nests: its multipart parts (through every
/// encapsulated message) and its deepest part.
///
/// Each multipart needs a Content-Type field that [`containers`] counts,
/// and each level of encapsulation needs one too except for the children
/// of a `multipart/digest` (RFC 2046 §5.1.5), so a message [`parse`] parses
/// has `multiparts <= containers` and `depth <= 2 * containers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nesting {
    /// Multipart parts, counted through encapsulation.
    pub multiparts: usize,
    /// Depth of the deepest part (root 0), as the walkers count it.
    pub depth: usize,
}

/// The [`Nesting`] of `msg`, walked with an explicit stack (tests and the
/// `mime_walk` fuzz target check [`parse`]'s bounds with it).
pub fn nesting(msg: &Message<'_>) -> Nesting {
    let mut out = Nesting::default();
    let mut stack = vec![(msg, 0usize)];
    while let Some((m, base)) = stack.pop() {
        for (id, d) in part_depths(m).into_iter().enumerate() {
            let Some(part) = m.parts.get(id) else {
                continue;
            };
            out.depth = out.depth.max(base + d);
            match &part.body {
                PartType::Multipart(_) => out.multiparts += 1,
                PartType::Message(inner) => stack.push((inner, base + d + 1)),
                _ => {}
            }
        }
    }
    out
}
