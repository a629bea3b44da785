//! Proving that bytes are exactly one complete CMS ContentInfo holding
//! EnvelopedData (RFC 5652 §6.1) or AuthEnvelopedData (RFC 5083 §2.1).
//!
//! A linear walk over BER tag-length-value elements (X.690 §8.1): every
//! element's framing is checked down to the leaves, lengths must fit what
//! is left, indefinite lengths end in end-of-contents octets, nesting is
//! bounded by [`MAX_DEPTH`], and nothing may follow the ContentInfo.
//! why not `der`/`cms` decoding: `der` reads DER only, and its `SetOf`
//! sorts on decode, which is quadratic in the number of RecipientInfos
//! (a 3.5 MB envelope with 8,000 of them took 57 s). Nothing is decoded
//! here; the walk only proves the shape, so that a message labelled
//! encrypted holds nothing else.

/// `id-envelopedData`, 1.2.840.113549.1.7.3, as DER content octets.
const OID_ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
/// `id-ct-authEnvelopedData`, 1.2.840.113549.1.9.16.1.23.
const OID_AUTH_ENVELOPED_DATA: &[u8] = &[
    0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17,
];

/// Deepest nesting walked. EnvelopedData with certificates in
/// originatorInfo needs about 12 levels; attributes a few more.
const MAX_DEPTH: usize = 32;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const INTEGER: u8 = 0x02;
const OCTET_STRING: u8 = 0x04;
const OCTET_STRING_CONSTRUCTED: u8 = 0x24;
const CONTEXT_0_PRIMITIVE: u8 = 0x80;
const CONTEXT_0: u8 = 0xa0;
const CONTEXT_1: u8 = 0xa1;
const CONTEXT_2: u8 = 0xa2;
const CONSTRUCTED: u8 = 0x20;

/// One element: its first identifier octet and where its parts lie.
#[derive(Clone, Copy)]
struct Element {
    /// First identifier octet; 0xff marks a multi-octet tag, which no
    /// shape below expects by value.
    tag: u8,
    /// Content start and end (end-of-contents octets excluded).
    content: (usize, usize),
    /// Just after the element (after its end-of-contents octets).
    end: usize,
}

/// Whether `bytes` is exactly one ContentInfo of enveloped or
/// authEnveloped data with the RFC 5652 / RFC 5083 shape, DER or BER.
pub(super) fn is_enveloped(bytes: &[u8]) -> bool {
    let walk = Walk { input: bytes };
    let Some(info) = walk.element(0, 0) else {
        return false;
    };
    if info.end != bytes.len() || info.tag != SEQUENCE {
        return false;
    }
    let Some([oid, explicit]) = walk.children_n::<2>(info) else {
        return false;
    };
    if oid.tag != OID || explicit.tag != CONTEXT_0 {
        return false;
    }
    let Some([inner]) = walk.children_n::<1>(explicit) else {
        return false;
    };
    match walk.content(oid) {
        Some(OID_ENVELOPED_DATA) => walk.enveloped_data(inner, false),
        Some(OID_AUTH_ENVELOPED_DATA) => walk.enveloped_data(inner, true),
        _ => false,
    }
}

struct Walk<'a> {
    input: &'a [u8],
}

impl Walk<'_> {
    fn content(&self, e: Element) -> Option<&[u8]> {
        self.input.get(e.content.0..e.content.1)
    }

    /// The element at `pos`, its whole subtree checked.
    fn element(&self, pos: usize, depth: usize) -> Option<Element> {
        if depth > MAX_DEPTH {
            return None;
        }
        let (tag, after_tag) = self.tag(pos)?;
        let constructed = self.input.get(pos)? & CONSTRUCTED != 0;
        let (length, start) = self.length(after_tag)?;
        match (length, constructed) {
            (Some(len), false) => {
                let end = start.checked_add(len).filter(|&e| e <= self.input.len())?;
                Some(Element {
                    tag,
                    content: (start, end),
                    end,
                })
            }
            (Some(len), true) => {
                let end = start.checked_add(len).filter(|&e| e <= self.input.len())?;
                let mut at = start;
                while at < end {
                    at = self.element(at, depth + 1)?.end;
                }
                (at == end).then_some(Element {
                    tag,
                    content: (start, end),
                    end,
                })
            }
            (None, true) => {
                let mut at = start;
                while self.input.get(at..at.checked_add(2)?)? != [0, 0] {
                    at = self.element(at, depth + 1)?.end;
                }
                Some(Element {
                    tag,
                    content: (start, at),
                    end: at + 2,
                })
            }
            (None, false) => None,
        }
    }

    /// Identifier octets (X.690 §8.1.2): the first octet, or 0xff for a
    /// multi-octet tag; and where the length starts. Tag 0 (end of
    /// contents) is not an element.
    fn tag(&self, pos: usize) -> Option<(u8, usize)> {
        let first = *self.input.get(pos)?;
        if first == 0 {
            return None;
        }
        if first & 0x1f != 0x1f {
            return Some((first, pos + 1));
        }
        for (i, b) in self.input.get(pos + 1..)?.iter().take(4).enumerate() {
            if b & 0x80 == 0 {
                return Some((0xff, pos + 2 + i));
            }
        }
        None
    }

    /// A length (`None` for indefinite) and where the content starts.
    fn length(&self, pos: usize) -> Option<(Option<usize>, usize)> {
        let first = *self.input.get(pos)?;
        match first {
            0x00..=0x7f => Some((Some(usize::from(first)), pos + 1)),
            0x80 => Some((None, pos + 1)),
            0x81..=0x84 => {
                let count = usize::from(first & 0x7f);
                let octets = self.input.get(pos + 1..pos + 1 + count)?;
                let len = octets
                    .iter()
                    .fold(0usize, |l, &b| (l << 8) | usize::from(b));
                Some((Some(len), pos + 1 + count))
            }
            _ => None,
        }
    }

    /// The children of a constructed element (already checked).
    fn children(&self, e: Element) -> Children<'_, '_> {
        Children {
            walk: self,
            at: e.content.0,
            end: e.content.1,
        }
    }

    /// Exactly `N` children, or `None`.
    fn children_n<const N: usize>(&self, e: Element) -> Option<[Element; N]> {
        let mut out = [e; N];
        let mut children = self.children(e);
        for slot in &mut out {
            *slot = children.next()?;
        }
        children.next().is_none().then_some(out)
    }

    /// EnvelopedData or AuthEnvelopedData (`auth`).
    fn enveloped_data(&self, e: Element, auth: bool) -> bool {
        if e.tag != SEQUENCE {
            return false;
        }
        let mut it = self.children(e).peekable();
        if !it
            .next()
            .is_some_and(|v| v.tag == INTEGER && v.content.1 > v.content.0)
        {
            return false;
        }
        it.next_if(|o| o.tag == CONTEXT_0);
        let Some(recipients) = it.next().filter(|r| r.tag == SET) else {
            return false;
        };
        if !self.recipient_infos(recipients) {
            return false;
        }
        if !it.next().is_some_and(|c| self.encrypted_content_info(c)) {
            return false;
        }
        if auth {
            it.next_if(|a| a.tag == CONTEXT_1);
            if !it
                .next()
                .is_some_and(|m| m.tag == OCTET_STRING || m.tag == OCTET_STRING_CONSTRUCTED)
            {
                return false;
            }
            it.next_if(|a| a.tag == CONTEXT_2);
        } else {
            it.next_if(|a| a.tag == CONTEXT_1);
        }
        it.next().is_none()
    }

    /// At least one RecipientInfo, each one of the CHOICE's forms
    /// (ktri SEQUENCE, kari [1], kekri [2], pwri [3], ori [4]).
    fn recipient_infos(&self, set: Element) -> bool {
        let mut count = 0usize;
        for info in self.children(set) {
            if !matches!(info.tag, SEQUENCE | 0xa1..=0xa4) {
                return false;
            }
            count += 1;
        }
        count > 0
    }

    /// `EncryptedContentInfo ::= SEQUENCE { contentType OID,
    /// contentEncryptionAlgorithm SEQUENCE { OID, params OPTIONAL },
    /// encryptedContent [0] IMPLICIT OCTET STRING }`, with the content
    /// present (mail never detaches it).
    fn encrypted_content_info(&self, e: Element) -> bool {
        if e.tag != SEQUENCE {
            return false;
        }
        let Some([ctype, algorithm, content]) = self.children_n::<3>(e) else {
            return false;
        };
        let algorithm_ok = algorithm.tag == SEQUENCE
            && self
                .children(algorithm)
                .next()
                .is_some_and(|o| o.tag == OID);
        let content_ok = match content.tag {
            CONTEXT_0_PRIMITIVE => true,
            CONTEXT_0 => self
                .children(content)
                .all(|c| matches!(c.tag, OCTET_STRING | OCTET_STRING_CONSTRUCTED)),
            _ => false,
        };
        ctype.tag == OID && algorithm_ok && content_ok
    }
}

/// Iterator over the children of a checked constructed element.
struct Children<'w, 'a> {
    walk: &'w Walk<'a>,
    at: usize,
    end: usize,
}

impl Iterator for Children<'_, '_> {
    type Item = Element;

    fn next(&mut self) -> Option<Element> {
        if self.at >= self.end {
            return None;
        }
        // why depth 0: the subtree was already checked within the limit
        // when its parent was read; this only re-reads the framing.
        let child = self.walk.element(self.at, 0)?;
        self.at = child.end;
        Some(child)
    }
}
