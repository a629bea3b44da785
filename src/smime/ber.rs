//! BER to DER, for the CMS objects real clients send.
//!
//! `der` reads strict DER only, while `openssl cms -encrypt -stream` and
//! several mail clients write BER: indefinite lengths, and the encrypted
//! content as a constructed OCTET STRING of chunks (X.690 §8.7.3). This
//! normaliser rewrites those two things and copies everything else; the
//! result is then parsed with `der` as usual. SET OF ordering is left to
//! `der`, which sorts on decode.
//!
//! Which constructed tags are flattened: the universal OCTET STRING, and a
//! constructed `[0]` whose children are all OCTET STRINGs. In CMS
//! EnvelopedData that shape is only ever the IMPLICIT OCTET STRING of
//! `encryptedContent` (RFC 5652 §6.1) or of a `subjectKeyIdentifier`;
//! every EXPLICIT `[0]` there wraps a SEQUENCE or a CHOICE with its own tag.
//!
//! Input comes from the network: lengths are checked against what is
//! left, nesting is bounded, nothing panics.

/// Deepest nesting accepted; EnvelopedData with certificates in
/// originatorInfo needs about 12 levels.
const MAX_DEPTH: usize = 32;

const TAG_OCTET_STRING: u8 = 0x04;
const CONSTRUCTED: u8 = 0x20;
const TAG_CONTEXT_0_CONSTRUCTED: u8 = 0xa0;

/// Why BER input could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BerError {
    /// The input ended inside an element.
    #[error("BER input is truncated at offset {offset}")]
    Truncated {
        /// Where the missing bytes were expected.
        offset: usize,
    },
    /// A length or tag form that BER does not allow (or over 4 GiB).
    #[error("invalid BER length or tag at offset {offset}")]
    Invalid {
        /// Offset of the offending octet.
        offset: usize,
    },
    /// More nesting than [`MAX_DEPTH`].
    #[error("BER input nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes after the outermost element.
    #[error("{extra} bytes of trailing data after the CMS object")]
    TrailingData {
        /// How many.
        extra: usize,
    },
}

/// One element in DER form, with the length of its tag and length octets.
struct DerElement {
    bytes: Vec<u8>,
    header_len: usize,
}

impl DerElement {
    fn tag(&self) -> u8 {
        self.bytes.first().copied().unwrap_or(0)
    }
    fn content(&self) -> &[u8] {
        self.bytes.get(self.header_len..).unwrap_or_default()
    }
}

/// Rewrites one BER element (the whole input) as DER.
pub(crate) fn to_der(input: &[u8]) -> Result<Vec<u8>, BerError> {
    let mut reader = Reader { input, pos: 0 };
    let element = reader.element(0)?;
    let extra = input.len() - reader.pos;
    if extra != 0 {
        return Err(BerError::TrailingData { extra });
    }
    Ok(element.bytes)
}

struct Reader<'a> {
    input: &'a [u8],
    pos: usize,
}

/// A BER length: definite or indefinite.
enum Length {
    Definite(usize),
    Indefinite,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, BerError> {
        let b = *self
            .input
            .get(self.pos)
            .ok_or(BerError::Truncated { offset: self.pos })?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, len: usize) -> Result<&[u8], BerError> {
        let end = self
            .pos
            .checked_add(len)
            .ok_or(BerError::Invalid { offset: self.pos })?;
        let bytes = self
            .input
            .get(self.pos..end)
            .ok_or(BerError::Truncated { offset: self.pos })?;
        self.pos = end;
        Ok(bytes)
    }

    /// Reads identifier octets (X.690 §8.1.2), returning them raw.
    fn tag(&mut self) -> Result<Vec<u8>, BerError> {
        let start = self.pos;
        let first = self.byte()?;
        let mut tag = vec![first];
        if first & 0x1f == 0x1f {
            loop {
                let b = self.byte()?;
                tag.push(b);
                if b & 0x80 == 0 {
                    break;
                }
                if tag.len() > 5 {
                    return Err(BerError::Invalid { offset: start });
                }
            }
        }
        Ok(tag)
    }

    fn length(&mut self) -> Result<Length, BerError> {
        let offset = self.pos;
        let first = self.byte()?;
        match first {
            0x00..=0x7f => Ok(Length::Definite(usize::from(first))),
            0x80 => Ok(Length::Indefinite),
            0x81..=0x84 => {
                let mut len = 0usize;
                for _ in 0..(first & 0x7f) {
                    len = (len << 8) | usize::from(self.byte()?);
                }
                Ok(Length::Definite(len))
            }
            _ => Err(BerError::Invalid { offset }),
        }
    }

    fn at_end_of_contents(&self) -> bool {
        self.input.get(self.pos..self.pos + 2) == Some(&[0, 0])
    }

    fn element(&mut self, depth: usize) -> Result<DerElement, BerError> {
        if depth > MAX_DEPTH {
            return Err(BerError::TooDeep);
        }
        let tag_offset = self.pos;
        let tag = self.tag()?;
        let constructed = tag.first().is_some_and(|t| t & CONSTRUCTED != 0);
        match (self.length()?, constructed) {
            (Length::Definite(len), false) => {
                let content = self.take(len)?;
                Ok(encode(&tag, content))
            }
            (Length::Indefinite, false) => Err(BerError::Invalid { offset: tag_offset }),
            (Length::Definite(len), true) => {
                let end = self
                    .pos
                    .checked_add(len)
                    .ok_or(BerError::Invalid { offset: self.pos })?;
                if end > self.input.len() {
                    return Err(BerError::Truncated { offset: self.pos });
                }
                let mut children = Vec::new();
                while self.pos < end {
                    children.push(self.element(depth + 1)?);
                }
                if self.pos != end {
                    return Err(BerError::Invalid { offset: tag_offset });
                }
                Ok(assemble(tag, children))
            }
            (Length::Indefinite, true) => {
                let mut children = Vec::new();
                while !self.at_end_of_contents() {
                    children.push(self.element(depth + 1)?);
                }
                self.pos += 2;
                Ok(assemble(tag, children))
            }
        }
    }
}

/// A constructed element from its DER children, flattening the chunked
/// OCTET STRING forms described in the module doc.
fn assemble(tag: Vec<u8>, children: Vec<DerElement>) -> DerElement {
    let first = tag.first().copied().unwrap_or(0);
    let is_chunked_string = tag.len() == 1
        && !children.is_empty()
        && (first == TAG_OCTET_STRING | CONSTRUCTED || first == TAG_CONTEXT_0_CONSTRUCTED)
        && children.iter().all(|c| c.tag() == TAG_OCTET_STRING);
    if is_chunked_string {
        let content: Vec<u8> = children
            .iter()
            .flat_map(|c| c.content().iter().copied())
            .collect();
        return encode(&[first & !CONSTRUCTED], &content);
    }
    let content: Vec<u8> = children.into_iter().flat_map(|c| c.bytes).collect();
    encode(&tag, &content)
}

/// Tag, DER length, content.
fn encode(tag: &[u8], content: &[u8]) -> DerElement {
    let mut bytes = Vec::with_capacity(tag.len() + 5 + content.len());
    bytes.extend_from_slice(tag);
    match u8::try_from(content.len()) {
        Ok(short) if short < 0x80 => bytes.push(short),
        _ => {
            let be = content.len().to_be_bytes();
            let skip = be.iter().take_while(|&&b| b == 0).count();
            let octets = u8::try_from(be.len() - skip).unwrap_or(8);
            bytes.push(0x80 | octets);
            bytes.extend_from_slice(&be[skip..]);
        }
    }
    let header_len = bytes.len();
    bytes.extend_from_slice(content);
    DerElement { bytes, header_len }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definite_der_is_unchanged() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xaa];
        assert_eq!(to_der(&der).unwrap(), der);
    }

    #[test]
    fn indefinite_lengths_and_chunks_become_der() {
        // SEQUENCE (indef) { INTEGER 5, [0] (indef) { OCTET STRING "ab", OCTET STRING "c" } }
        let ber = [
            0x30, 0x80, 0x02, 0x01, 0x05, 0xa0, 0x80, 0x04, 0x02, b'a', b'b', 0x04, 0x01, b'c',
            0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            to_der(&ber).unwrap(),
            [0x30, 0x08, 0x02, 0x01, 0x05, 0x80, 0x03, b'a', b'b', b'c']
        );
        // A universal constructed OCTET STRING.
        assert_eq!(
            to_der(&[0x24, 0x80, 0x04, 0x01, b'x', 0x04, 0x01, b'y', 0, 0]).unwrap(),
            [0x04, 0x02, b'x', b'y']
        );
    }

    #[test]
    fn long_content_gets_a_minimal_long_length() {
        let mut ber = vec![0x04, 0x84, 0x00, 0x00, 0x01, 0x00];
        ber.extend(std::iter::repeat_n(7u8, 256));
        let der = to_der(&ber).unwrap();
        assert_eq!(&der[..4], &[0x04, 0x82, 0x01, 0x00]);
        assert_eq!(der.len(), 260);
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        assert!(matches!(
            to_der(&[0x30, 0x85, 1, 1, 1, 1, 1]),
            Err(BerError::Invalid { .. })
        ));
        assert!(matches!(
            to_der(&[0x30, 0x80, 0x02, 0x01]),
            Err(BerError::Truncated { .. })
        ));
        assert!(matches!(
            to_der(&[0x04, 0x80, 0, 0]),
            Err(BerError::Invalid { .. })
        ));
        assert!(matches!(
            to_der(&[0x02, 0x01, 0x05, 0x00]),
            Err(BerError::TrailingData { extra: 1 })
        ));
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 100).flatten().collect();
        assert!(to_der(&deep).is_err());
        assert!(to_der(&[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = to_der(&bytes);
        }
    }
}
