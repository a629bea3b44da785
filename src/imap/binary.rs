//! FETCH `BINARY[section]<partial>`, `BINARY.PEEK` and `BINARY.SIZE`
//! (RFC 3516, RFC 9051 §6.4.5, §7.5.2): a body part with its
//! Content-Transfer-Encoding undone.
//!
//! Pure functions over a message parsed by [`super::mime`]: finding the
//! part, decoding base64 and quoted-printable (7bit, 8bit and binary are
//! the identity), and writing the response item, which imap-types cannot
//! carry with the `<origin>` of a partial fetch.
//!
//! Memory stays bounded by what is sent: decoding streams into a sink
//! that skips the bytes before the origin and stops once the partial
//! length is reached, and BINARY.SIZE counts without storing.
//!
//! Choices where the RFCs leave room (Dovecot, which imaptest's scripts
//! follow, answers the same way):
//! - `BINARY[]` is the whole message: as stored when its root is a
//!   multipart or has an identity encoding, else the header with
//!   `Content-Transfer-Encoding: binary` and the decoded body.
//! - A `message/rfc822` part is served as it is (its encoding can only
//!   be an identity one, RFC 2045 §6.4); a `multipart/*` part is refused
//!   with BAD: only leaf parts can be asked for (RFC 9051 §6.4.5).
//! - A part that does not exist is `NIL`, its size 0.
//! - Characters outside the base64 alphabet are skipped and `=` ends the
//!   data (RFC 2045 §6.8); a quoted-printable `=` not followed by two hex
//!   digits or a line end is kept as it is (RFC 2045 §6.7, note 1).
//! - Data with a NUL goes out as a `literal8` (`~{n}`), other data as a
//!   plain literal (RFC 3516 §4.3).

use std::num::NonZeroU32;

use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::fetch::{MessageDataItem, Part};
use imap_next::imap_types::response::{Data, Response};
use mail_parser::{Message, MimeHeaders, PartType};

use super::error::ImapError;

/// Why a BINARY item cannot be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BinaryError {
    /// The part's Content-Transfer-Encoding is not one we know
    /// (`NO [UNKNOWN-CTE]`, RFC 3516 §4.2).
    UnknownCte(String),
    /// The section names a `multipart/*` part (BAD: not a leaf).
    NotLeaf(String),
}

/// A Content-Transfer-Encoding (RFC 2045 §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cte {
    /// 7bit, 8bit, binary: nothing to undo.
    Identity,
    /// base64 (RFC 2045 §6.8).
    Base64,
    /// quoted-printable (RFC 2045 §6.7).
    QuotedPrintable,
}

impl Cte {
    /// The encoding named by a Content-Transfer-Encoding value (none:
    /// 7bit, RFC 2045 §6.1); `Err` with the name for an unknown one.
    pub(crate) fn of(value: Option<&str>) -> Result<Self, BinaryError> {
        let name = value.unwrap_or("7bit").trim();
        let known = [
            ("7bit", Self::Identity),
            ("8bit", Self::Identity),
            ("binary", Self::Identity),
            ("base64", Self::Base64),
            ("quoted-printable", Self::QuotedPrintable),
        ];
        known
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, c)| *c)
            .ok_or_else(|| BinaryError::UnknownCte(name.chars().take(64).collect()))
    }
}

/// What a section names: `head` sent as it is, then `body` decoded.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target<'m> {
    head: Vec<u8>,
    body: &'m [u8],
    cte: Cte,
}

/// `1.2.3` of a section.
pub(crate) fn section_text(section: &[NonZeroU32]) -> String {
    let parts: Vec<String> = section.iter().map(ToString::to_string).collect();
    parts.join(".")
}

/// The part `section` names in `msg` (parsed from `raw`; `None` when it
/// could not be parsed); `Ok(None)` when there is no such part.
pub(crate) fn target<'m>(
    msg: Option<&'m Message<'_>>,
    raw: &'m [u8],
    section: &[NonZeroU32],
) -> Result<Option<Target<'m>>, BinaryError> {
    let Some(msg) = msg else {
        let whole = section.is_empty().then_some(Target {
            head: Vec::new(),
            body: raw,
            cte: Cte::Identity,
        });
        return Ok(whole);
    };
    let Ok(path) = Vec1::try_from(section.to_vec()) else {
        return whole_message(msg, raw).map(Some);
    };
    let Some((owner, part)) = super::mime::find(msg, &Part(path)) else {
        return Ok(None);
    };
    if matches!(part.body, PartType::Multipart(_)) {
        return Err(BinaryError::NotLeaf(section_text(section)));
    }
    let body = owner
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    let cte = match part.body {
        // why: a message/rfc822 part is served as stored (see the docs).
        PartType::Message(_) => Cte::Identity,
        _ => Cte::of(part.content_transfer_encoding())?,
    };
    Ok(Some(Target {
        head: Vec::new(),
        body,
        cte,
    }))
}

/// `BINARY[]`: the message as stored, or with a leaf root in a non-identity
/// encoding its header saying `binary` and its body decoded.
fn whole_message<'m>(msg: &Message<'_>, raw: &'m [u8]) -> Result<Target<'m>, BinaryError> {
    let root = msg.root_part();
    let as_stored = Target {
        head: Vec::new(),
        body: raw,
        cte: Cte::Identity,
    };
    // why the Content-Type too: a header-only parse leaves every root a leaf.
    let container = root.content_type().is_some_and(|c| {
        c.ctype().eq_ignore_ascii_case("multipart") || c.ctype().eq_ignore_ascii_case("message")
    });
    if container || matches!(root.body, PartType::Multipart(_) | PartType::Message(_)) {
        return Ok(as_stored);
    }
    let cte = Cte::of(root.content_transfer_encoding())?;
    if cte == Cte::Identity {
        return Ok(as_stored);
    }
    let start = (root.offset_body as usize).min(raw.len());
    let header = raw.get(..start).unwrap_or_default();
    let mut head = Vec::with_capacity(header.len());
    let mut at = 0;
    for h in &root.headers {
        if h.name
            .as_str()
            .eq_ignore_ascii_case("content-transfer-encoding")
        {
            let (a, b) = (h.offset_field as usize, h.offset_end as usize);
            if let (Some(before), true) = (header.get(at..a), b <= header.len()) {
                head.extend_from_slice(before);
                head.extend_from_slice(b"Content-Transfer-Encoding: binary\r\n");
                at = b;
            }
        }
    }
    head.extend_from_slice(header.get(at..).unwrap_or_default());
    Ok(Target {
        head,
        body: raw.get(start..).unwrap_or_default(),
        cte,
    })
}

/// Collects decoded bytes: skips `skip` of them, keeps up to `room`.
struct Sink {
    skip: usize,
    room: usize,
    out: Option<Vec<u8>>,
    count: usize,
}

impl Sink {
    /// Takes `b`; `false` once nothing more is wanted.
    fn push(&mut self, b: u8) -> bool {
        self.count = self.count.saturating_add(1);
        if self.skip > 0 {
            self.skip -= 1;
            return true;
        }
        if self.room == 0 {
            return false;
        }
        self.room -= 1;
        if let Some(out) = self.out.as_mut() {
            out.push(b);
        }
        self.room > 0
    }

    fn push_all(&mut self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.push(b))
    }
}

fn base64_value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

fn base64(body: &[u8], sink: &mut Sink) {
    let (mut acc, mut n) = (0u32, 0);
    for &c in body {
        if c == b'=' {
            break;
        }
        let Some(v) = base64_value(c) else { continue };
        acc = (acc << 6) | v;
        n += 1;
        if n == 4 {
            let [_, a, b, c] = acc.to_be_bytes();
            if !sink.push_all(&[a, b, c]) {
                return;
            }
            (acc, n) = (0, 0);
        }
    }
    // A last group of 2 or 3 characters holds 1 or 2 bytes.
    let [_, _, a, b] = (acc >> 2).to_be_bytes();
    let [.., one] = (acc >> 4).to_be_bytes();
    match n {
        2 => sink.push(one),
        3 => sink.push_all(&[a, b]),
        _ => true,
    };
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// One quoted-printable line without its line end: trailing blanks are
/// transport padding, a final `=` a soft line break; returns whether the
/// sink wants more and whether the line break was soft.
fn qp_line(line: &[u8], sink: &mut Sink) -> (bool, bool) {
    let end = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |p| p + 1);
    let line = line.get(..end).unwrap_or_default();
    let (line, soft) = match line.strip_suffix(b"=") {
        Some(l) => (l, true),
        None => (line, false),
    };
    let mut i = 0;
    while let Some(&c) = line.get(i) {
        let escaped = match (c, line.get(i + 1), line.get(i + 2)) {
            (b'=', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h << 4) | l),
            _ => None,
        };
        let (b, step) = escaped.map_or((c, 1), |b| (b, 3));
        if !sink.push(b) {
            return (false, soft);
        }
        i += step;
    }
    (true, soft)
}

fn quoted_printable(body: &[u8], sink: &mut Sink) {
    let mut rest = body;
    while !rest.is_empty() {
        let (line, eol, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(p) => {
                let line = rest.get(..p).unwrap_or_default();
                let (line, eol): (&[u8], &[u8]) = match line.strip_suffix(b"\r") {
                    Some(l) => (l, b"\r\n"),
                    None => (line, b"\n"),
                };
                (line, eol, rest.get(p + 1..).unwrap_or_default())
            }
            None => (rest, &b""[..], &b""[..]),
        };
        let (more, soft) = qp_line(line, sink);
        if !more || (!soft && !sink.push_all(eol)) {
            return;
        }
        rest = next;
    }
}

fn run(target: &Target<'_>, sink: &mut Sink) {
    if !sink.push_all(&target.head) {
        return;
    }
    match target.cte {
        Cte::Identity => {
            sink.push_all(target.body);
        }
        Cte::Base64 => base64(target.body, sink),
        Cte::QuotedPrintable => quoted_printable(target.body, sink),
    }
}

/// The decoded bytes of `target` from `start`, at most `len` of them
/// (all with `None`); only what is sent is decoded and kept.
pub(crate) fn decode(target: &Target<'_>, start: usize, len: Option<usize>) -> Vec<u8> {
    if target.cte == Cte::Identity {
        // The common case, without the byte-by-byte sink.
        let all = target.head.iter().chain(target.body.iter());
        return all
            .skip(start)
            .take(len.unwrap_or(usize::MAX))
            .copied()
            .collect();
    }
    let mut sink = Sink {
        skip: start,
        room: len.unwrap_or(usize::MAX),
        out: Some(Vec::new()),
        count: 0,
    };
    if len != Some(0) {
        run(target, &mut sink);
    }
    sink.out.unwrap_or_default()
}

/// The decoded size of `target` (BINARY.SIZE), counted without storing.
pub(crate) fn decoded_size(target: &Target<'_>) -> usize {
    if target.cte == Cte::Identity {
        return target.head.len().saturating_add(target.body.len());
    }
    let mut sink = Sink {
        skip: 0,
        room: usize::MAX,
        out: None,
        count: 0,
    };
    run(target, &mut sink);
    sink.count
}

/// The FETCH item `BINARY[section]<origin> data`: `NIL` without data, a
/// `literal8` when the data holds a NUL, else a plain literal.
pub(crate) fn item(section: &[NonZeroU32], origin: Option<u32>, data: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("BINARY[{}]", section_text(section)).into_bytes();
    if let Some(origin) = origin {
        out.extend_from_slice(format!("<{origin}>").as_bytes());
    }
    match data {
        None => out.extend_from_slice(b" NIL"),
        Some(data) => {
            let tilde = if data.contains(&0) { "~" } else { "" };
            out.extend_from_slice(format!(" {tilde}{{{}}}\r\n", data.len()).as_bytes());
            out.extend_from_slice(data);
        }
    }
    out
}

/// `BINARY.SIZE[section]`: the decoded size, 0 for a missing part.
pub(crate) fn size_item(
    msg: Option<&Message<'_>>,
    raw: &[u8],
    section: &[NonZeroU32],
) -> Result<MessageDataItem<'static>, BinaryError> {
    let size = target(msg, raw, section)?.map_or(0, |t| decoded_size(&t));
    Ok(MessageDataItem::BinarySize {
        section: section.to_vec(),
        size: u32::try_from(size).unwrap_or(u32::MAX),
    })
}

/// `BINARY[section]<partial>` as wire bytes.
pub(crate) fn fetch_item(
    msg: Option<&Message<'_>>,
    raw: &[u8],
    section: &[NonZeroU32],
    partial: Option<(u32, NonZeroU32)>,
) -> Result<Vec<u8>, BinaryError> {
    let found = target(msg, raw, section)?;
    let (start, len) = partial.map_or((0, None), |(s, l)| (s as usize, Some(l.get() as usize)));
    let data = found.map(|t| decode(&t, start, len));
    Ok(item(section, partial.map(|p| p.0), data.as_deref()))
}

/// The whole `* seq FETCH (...)` line: `items` encoded by imap-codec,
/// then the BINARY items `wire` (already wire bytes).
pub(crate) fn fetch_line(
    seq: NonZeroU32,
    items: Vec<MessageDataItem<'static>>,
    wire: &[Vec<u8>],
) -> Vec<u8> {
    use imap_codec::encode::Encoder as _;
    let mut line = match Vec1::try_from(items) {
        Ok(items) => {
            let mut bytes = imap_codec::ResponseCodec::default()
                .encode(&Response::Data(Data::Fetch { seq, items }))
                .dump();
            if bytes.ends_with(b")\r\n") {
                bytes.truncate(bytes.len() - 3);
                bytes.push(b' ');
                bytes
            } else {
                // Not a FETCH line as expected: answer the BINARY items alone.
                format!("* {seq} FETCH (").into_bytes()
            }
        }
        Err(_) => format!("* {seq} FETCH (").into_bytes(),
    };
    line.extend_from_slice(&wire.join(&b' '));
    line.extend_from_slice(b")\r\n");
    line
}

impl From<BinaryError> for ImapError {
    fn from(e: BinaryError) -> Self {
        match e {
            BinaryError::UnknownCte(cte) => Self::UnknownCte { cte },
            BinaryError::NotLeaf(section) => Self::syntax(format!(
                "BINARY[{section}] names a multipart part; ask for its leaf parts (RFC 9051, section 6.4.5)"
            )),
        }
    }
}

#[cfg(test)]
mod tests;
