//! Blob ids of body parts (RFC 8621 §4.1.4: every non-multipart
//! EmailBodyPart has a `blobId`, "the raw octets of the contents of the
//! part, after decoding any known Content-Transfer-Encoding"), and the
//! one way to turn such an id back into those octets.
//!
//! A part blob names where its bytes come from and the way down to them,
//! not their digest: nothing is stored per part. The way down is a path
//! of part ids, one per level of encapsulation: `[3]` is part 3 of the
//! message, `[3, 1]` part 1 of the `message/rfc822` that part 3 holds
//! (what `Email/parse` of part 3 calls part 1). Every step parses the
//! bytes of the step before with [`crate::mime::parse`], exactly as
//! `Email/get` and `Email/parse` parse them, so an id always names the
//! part they showed.
//!
//! ```text
//! part-blob = "p" account "-" email "-" blob-hex "-" path   ; a stored Email's part
//!           / "r" account "-" email "-" blob-hex "-" path   ; the same, decrypted
//!           / "q" account "-" upload-hex "-" path           ; an upload's part
//! path      = part-id *("." part-id)                        ; at most MAX_PATH
//! ```
//!
//! The account makes the ids of two accounts differ (as `ids` does for
//! Emails); the Email number finds the message through the account's
//! own Email index (`MailStore::get_emails`), and the blob hash must
//! still be that Email's:
//! blobs are immutable (RFC 8620 §6), so once the Email is gone or holds
//! other bytes its part ids name nothing. An encrypted Email presented
//! decrypted (server-side reading, `crate::reading`) has other parts than
//! the one it has as stored, so its ids say which view they are of (`r`):
//! read without the keys they name nothing, and a stored view's id reads
//! the stored bytes even where the keys are unlocked. An id of another
//! account, of an Email that is gone, a part out of range, a multipart or
//! a part below [`MAX_DEPTH`] is not found.

use std::borrow::Cow;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{Encoding, Message, MessageParser, MessagePart, PartType};

use super::super::ids;
use super::source;
use crate::mime::MAX_DEPTH;
use crate::reading::Unlocked;
use crate::store::{self, AccountId, BlobHash, MailError, MailStore};

/// Most levels of encapsulation a part blob id may go down. why 8:
/// real mail forwards a forward of a forward at most a few levels deep;
/// each level parses its bytes once more when the blob is read, and 8
/// part ids keep an id well under RFC 8620's 255 characters.
pub(crate) const MAX_PATH: usize = 8;

/// Where a part's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A stored Email (its number) as long as it holds `blob`.
    Email {
        /// The Email number (`ids::email`).
        email: u64,
        /// The stored blob it must still hold.
        blob: BlobHash,
        /// Whether the parts are those of the message decrypted.
        decrypted: bool,
    },
    /// An upload of the account (RFC 8620 §6.1).
    Upload(BlobHash),
}

/// A part of a stored message or an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartBlob {
    /// Whose it is.
    pub(crate) account: AccountId,
    /// Where the bytes come from.
    pub(crate) origin: Origin,
    /// Part ids, one per level of encapsulation (1..=[`MAX_PATH`]); empty
    /// for the message itself, whose parts are one level below (the
    /// place `Email/get` and `Email/parse` name parts from, never an id).
    pub(crate) path: Vec<u32>,
}

impl PartBlob {
    /// The id of this part.
    pub(crate) fn id(&self) -> String {
        let path: Vec<String> = self.path.iter().map(u32::to_string).collect();
        let path = path.join(".");
        match self.origin {
            Origin::Email {
                email,
                blob,
                decrypted,
            } => {
                let kind = if decrypted { 'r' } else { 'p' };
                format!("{kind}{}-{email}-{}-{path}", self.account, ids::blob(blob))
            }
            Origin::Upload(hash) => format!("q{}-{}-{path}", self.account, ids::blob(hash)),
        }
    }

    /// The part `part` one level below this one (of the message this
    /// part holds), or `None` past [`MAX_PATH`].
    pub(crate) fn child(&self, part: u32) -> Option<Self> {
        if self.path.len() >= MAX_PATH {
            return None;
        }
        let mut path = self.path.clone();
        path.push(part);
        Some(Self {
            path,
            ..self.clone()
        })
    }

    /// The part blob `s` names, if it is one of `account`'s: anything
    /// else (another account's, garbage) is `None`.
    pub(crate) fn parse(s: &str, account: AccountId) -> Option<Self> {
        let (kind, rest) = (s.get(..1)?, s.get(1..)?);
        let mut fields = rest.split('-');
        let owner: u32 = number(fields.next()?)?;
        if owner != account.0 {
            return None;
        }
        let origin = match kind {
            "p" | "r" => {
                let email = number(fields.next()?)?;
                let blob = ids::parse_blob(fields.next()?)?;
                let decrypted = kind == "r";
                Origin::Email {
                    email,
                    blob,
                    decrypted,
                }
            }
            "q" => Origin::Upload(ids::parse_blob(fields.next()?)?),
            _ => return None,
        };
        let path = fields
            .next()?
            .split('.')
            .map(number)
            .collect::<Option<Vec<u32>>>()?;
        if fields.next().is_some() || path.is_empty() || path.len() > MAX_PATH {
            return None;
        }
        Some(Self {
            account,
            origin,
            path,
        })
    }
}

/// Plain decimal digits (no sign, no blanks) as a number.
fn number<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whether the parts of `m` presented with `keys` are those of the
/// message decrypted (what a part blob id of it says).
pub(crate) fn decrypted_view(m: &store::Message, keys: Option<&Unlocked>) -> bool {
    m.encrypted && keys.is_some()
}

/// The decoded bytes of `part` (RFC 8621 §4.1.4), or `None` when it
/// names nothing: for a stored Email's part, read through
/// [`source::message_bytes`] from the Email it names, which must still
/// hold the blob the id names; for an upload's part, from `upload`, the
/// upload's bytes while they are held.
pub(crate) fn read(
    s: &MailStore,
    part: &PartBlob,
    upload: Option<&[u8]>,
    keys: Option<&Unlocked>,
) -> Result<Option<Vec<u8>>, MailError> {
    let raw = match part.origin {
        Origin::Email {
            email,
            blob,
            decrypted,
        } => {
            let found = s.get_emails(part.account, &[email])?.pop().flatten();
            let Some(m) = found.filter(|m| m.blob == blob) else {
                return Ok(None);
            };
            let view = match decrypted {
                true if decrypted_view(&m, keys) => keys,
                true => return Ok(None),
                false => None,
            };
            match source::message_bytes(s, part.account, &m, view)? {
                Some(raw) => Cow::Owned(raw),
                None => return Ok(None),
            }
        }
        Origin::Upload(_) => match upload {
            Some(u) => Cow::Borrowed(u),
            None => return Ok(None),
        },
    };
    Ok(resolve(&raw, &part.path))
}

/// The bytes of the part `path` names below the message `raw`, decoded
/// (RFC 8621 §4.1.4), or `None` when there is no such part with a blob.
pub(crate) fn resolve(raw: &[u8], path: &[u32]) -> Option<Vec<u8>> {
    if path.is_empty() || path.len() > MAX_PATH {
        return None;
    }
    let parser = MessageParser::default();
    let mut bytes: Vec<u8> = Vec::new();
    for (level, &id) in path.iter().enumerate() {
        let from: &[u8] = if level == 0 { raw } else { &bytes };
        let next = {
            let parsed = crate::mime::parse(&parser, from)?;
            content(from, &parsed, id)?.into_owned()
        };
        bytes = next;
    }
    Some(bytes)
}

/// The decoded bytes of part `id` of `msg` (parsed from `raw`), if the
/// walkers show it as a leaf: a multipart has none, except one at
/// [`MAX_DEPTH`], shown as an opaque part of its raw body; a part below
/// that is not shown at all.
pub(crate) fn content<'a>(raw: &'a [u8], msg: &'a Message<'a>, id: u32) -> Option<Cow<'a, [u8]>> {
    let depths = crate::mime::part_depths(msg);
    let depth = depths.get(usize::try_from(id).ok()?).copied()?;
    let part = msg.part(id)?;
    if depth > MAX_DEPTH || !reachable(msg, id) {
        return None;
    }
    leaf_content(raw, part, depth)
}

/// Whether part `id` is the root or a descendant of it through
/// multiparts (a corrupt part list could hold parts no walk reaches).
fn reachable(msg: &Message<'_>, id: u32) -> bool {
    let mut stack = vec![0u32];
    let mut seen = vec![false; msg.parts.len()];
    while let Some(p) = stack.pop() {
        if p == id {
            return true;
        }
        match seen.get_mut(p as usize) {
            Some(s) if !*s => *s = true,
            _ => continue,
        }
        if let Some(PartType::Multipart(children)) = msg.part(p).map(|x| &x.body) {
            stack.extend(children.iter().copied());
        }
    }
    false
}

/// The decoded bytes of `part` at `depth` of a message parsed from
/// `raw`; `None` for a multipart above [`MAX_DEPTH`].
pub(crate) fn leaf_content<'a>(
    raw: &'a [u8],
    part: &'a MessagePart<'a>,
    depth: usize,
) -> Option<Cow<'a, [u8]>> {
    let body = || {
        let (start, end) = (part.offset_body as usize, part.offset_end as usize);
        raw.get(start..end.max(start)).unwrap_or_default()
    };
    match &part.body {
        PartType::Multipart(_) if depth >= MAX_DEPTH => Some(Cow::Borrowed(body())),
        PartType::Multipart(_) => None,
        PartType::Binary(b) | PartType::InlineBinary(b) => Some(Cow::Borrowed(b.as_ref())),
        // why not the parsed text: mail-parser converts it to UTF-8 from
        // its charset, and the blob is the part's octets as sent.
        PartType::Text(_) | PartType::Html(_) => Some(decode(body(), part.encoding)),
        // why: mail-parser keeps an unencoded encapsulated message's
        // offsets into the outer bytes, and its `raw_message` is the
        // whole outer message; an encoded one holds its decoded bytes.
        PartType::Message(inner) => match part.encoding {
            Encoding::None => Some(Cow::Borrowed(body())),
            _ => Some(Cow::Borrowed(inner.raw_message())),
        },
    }
}

/// `bytes` with the transfer encoding removed; as they are when they do
/// not decode (what was sent is all there is to serve).
fn decode(bytes: &[u8], encoding: Encoding) -> Cow<'_, [u8]> {
    let decoded = match encoding {
        Encoding::None => None,
        Encoding::Base64 => base64_decode(bytes),
        Encoding::QuotedPrintable => quoted_printable_decode(bytes),
    };
    decoded.map_or(Cow::Borrowed(bytes), Cow::Owned)
}

#[cfg(test)]
mod tests;
