//! RSAES-OAEP key transport in CMS (RFC 3560, RFC 8017 §7.1): the padding
//! sealmail writes (SHA-256, MGF1 with SHA-256, empty label) and the
//! parameters it reads back from a KeyTransRecipientInfo.
//!
//! ```text
//! RSAES-OAEP-params ::= SEQUENCE {
//!   hashFunc    [0] AlgorithmIdentifier DEFAULT sha1Identifier,
//!   maskGenFunc [1] AlgorithmIdentifier DEFAULT mgf1SHA1Identifier,
//!   pSourceFunc [2] AlgorithmIdentifier DEFAULT pSpecifiedEmptyIdentifier }
//! ```
//!
//! why the encoding is written here: the public-key operation of
//! [`super::rsa_kt`] is several times faster than the `rsa` crate's, and a
//! list fans one message out to thousands of copies; only EME-OAEP
//! encoding (a few hashes) sits on top of it. A test compares it with
//! OpenSSL through the `openssl` crate.
//!
//! The AlgorithmIdentifiers are written as OpenSSL writes them (the SHA-256
//! identifiers without parameters, RFC 5754 §2); on reading, absent and
//! NULL parameters are both accepted (RFC 4055 §2.1).

use der::asn1::{AnyRef, ObjectIdentifier, OctetString};
use der::{Any, Decode as _, Encode as _, Reader as _, SliceReader, Tag, TagNumber, Tagged as _};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use spki::AlgorithmIdentifierOwned;

use super::SmimeError;

use const_oid::db::rfc5912::{
    ID_MGF_1, ID_P_SPECIFIED, ID_SHA_1, ID_SHA_256, ID_SHA_384, ID_SHA_512,
};

/// Output length of SHA-256 (`hLen`).
const HASH_LEN: usize = 32;

/// `EM = 0x00 || maskedSeed || maskedDB` for `msg`, a `k`-byte modulus,
/// SHA-256 and an empty label (RFC 8017 §7.1.1 step 2).
pub(crate) fn eme_oaep_sha256(
    rng: &mut impl CryptoRngCore,
    msg: &[u8],
    k: usize,
) -> Result<Vec<u8>, SmimeError> {
    if msg.len() + 2 * HASH_LEN + 2 > k {
        return Err(SmimeError::BadPublicKey {
            detail: format!(
                "a {k}-byte modulus cannot carry a {}-byte key with OAEP",
                msg.len()
            ),
        });
    }
    let mut em = vec![0u8; k];
    let (seed, db) = em[1..].split_at_mut(HASH_LEN);
    // DB = lHash || PS || 0x01 || M
    db[..HASH_LEN].copy_from_slice(&Sha256::digest(b""));
    let one_at = db.len() - msg.len() - 1;
    db[one_at] = 1;
    db[one_at + 1..].copy_from_slice(msg);
    rng.fill_bytes(seed);
    mgf1_xor(seed, db);
    mgf1_xor(db, seed);
    Ok(em)
}

/// `out ^= MGF1-SHA-256(seed, out.len())` (RFC 8017 §B.2.1).
fn mgf1_xor(seed: &[u8], out: &mut [u8]) {
    for (counter, chunk) in (0u32..).zip(out.chunks_mut(HASH_LEN)) {
        let block = Sha256::new()
            .chain_update(seed)
            .chain_update(counter.to_be_bytes())
            .finalize();
        for (o, m) in chunk.iter_mut().zip(block.iter()) {
            *o ^= m;
        }
    }
}

/// `id-RSAES-OAEP` with SHA-256 and MGF1-SHA-256, as OpenSSL writes it
/// for `-keyopt rsa_padding_mode:oaep -keyopt rsa_oaep_md:sha256`.
pub(crate) fn sha256_algorithm() -> Result<AlgorithmIdentifierOwned, SmimeError> {
    let sha256 = AlgorithmIdentifierOwned {
        oid: ID_SHA_256,
        parameters: None,
    };
    let mgf1 = AlgorithmIdentifierOwned {
        oid: ID_MGF_1,
        parameters: Some(Any::encode_from(&sha256)?),
    };
    let mut body = Vec::new();
    explicit(TagNumber::N0, &sha256.to_der()?, &mut body)?;
    explicit(TagNumber::N1, &mgf1.to_der()?, &mut body)?;
    Ok(AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::ID_RSAES_OAEP,
        parameters: Some(Any::new(Tag::Sequence, body)?),
    })
}

/// Appends `[n] EXPLICIT` around the DER `inner`.
fn explicit(number: TagNumber, inner: &[u8], out: &mut Vec<u8>) -> Result<(), SmimeError> {
    let tag = Tag::ContextSpecific {
        constructed: true,
        number,
    };
    out.extend_from_slice(&Any::new(tag, inner)?.to_der()?);
    Ok(())
}

/// A hash OAEP may use on reading (for both the label hash and MGF1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OaepHash {
    /// SHA-1, the ASN.1 default (OpenSSL's `rsa_padding_mode:oaep` alone).
    Sha1,
    /// SHA-256, what sealmail writes.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl OaepHash {
    fn from_oid(oid: ObjectIdentifier) -> Option<Self> {
        match oid {
            ID_SHA_1 => Some(Self::Sha1),
            ID_SHA_256 => Some(Self::Sha256),
            ID_SHA_384 => Some(Self::Sha384),
            ID_SHA_512 => Some(Self::Sha512),
            _ => None,
        }
    }

    /// The `rsa` crate's padding for this hash (label hash and MGF1 alike).
    pub(crate) fn padding(self) -> rsa::Oaep {
        match self {
            Self::Sha1 => rsa::Oaep::new::<sha1::Sha1>(),
            Self::Sha256 => rsa::Oaep::new::<Sha256>(),
            Self::Sha384 => rsa::Oaep::new::<sha2::Sha384>(),
            Self::Sha512 => rsa::Oaep::new::<sha2::Sha512>(),
        }
    }
}

/// The hash of an `id-RSAES-OAEP` AlgorithmIdentifier's parameters, or
/// `None` when they name something not supported: different hashes for
/// the label and MGF1, a mask generation other than MGF1, a non-empty
/// label. The parameters come from the sender: nothing here panics.
pub(crate) fn params_hash(alg: &AlgorithmIdentifierOwned) -> Option<OaepHash> {
    let params = match &alg.parameters {
        None => return Some(OaepHash::Sha1),
        Some(p) if p.tag() == Tag::Null => return Some(OaepHash::Sha1),
        Some(p) if p.tag() == Tag::Sequence => p.value(),
        Some(_) => return None,
    };
    let mut hash = OaepHash::Sha1;
    let mut mgf_hash = OaepHash::Sha1;
    let mut reader = SliceReader::new(params).ok()?;
    while !reader.is_finished() {
        let field = AnyRef::decode(&mut reader).ok()?;
        let inner = AlgorithmIdentifierOwned::from_der(field.value()).ok()?;
        match context_number(field.tag())? {
            TagNumber::N0 => hash = OaepHash::from_oid(inner.oid)?,
            TagNumber::N1 if inner.oid == ID_MGF_1 => {
                let mgf: AlgorithmIdentifierOwned = inner.parameters?.decode_as().ok()?;
                mgf_hash = OaepHash::from_oid(mgf.oid)?;
            }
            TagNumber::N2 if inner.oid == ID_P_SPECIFIED => {
                let label: OctetString = inner.parameters?.decode_as().ok()?;
                if !label.as_bytes().is_empty() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    (hash == mgf_hash).then_some(hash)
}

fn context_number(tag: Tag) -> Option<TagNumber> {
    match tag {
        Tag::ContextSpecific {
            constructed: true,
            number,
        } => Some(number),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identifier_is_the_one_openssl_writes() {
        // openssl cms -encrypt -keyopt rsa_padding_mode:oaep
        //   -keyopt rsa_oaep_md:sha256 ...: the keyEncryptionAlgorithm.
        let openssl = [
            0x30, 0x38, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07, 0x30,
            0x2b, 0xa0, 0x0d, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
            0x02, 0x01, 0xa1, 0x1a, 0x30, 0x18, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
            0x01, 0x01, 0x08, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
            0x02, 0x01,
        ];
        let ours = sha256_algorithm().unwrap();
        assert_eq!(ours.to_der().unwrap(), openssl);
        assert_eq!(params_hash(&ours), Some(OaepHash::Sha256));
    }

    #[test]
    fn defaults_and_odd_parameters() {
        let oaep = |parameters| AlgorithmIdentifierOwned {
            oid: const_oid::db::rfc5912::ID_RSAES_OAEP,
            parameters,
        };
        assert_eq!(params_hash(&oaep(None)), Some(OaepHash::Sha1));
        assert_eq!(params_hash(&oaep(Some(Any::null()))), Some(OaepHash::Sha1));
        let empty = Any::new(Tag::Sequence, Vec::new()).unwrap();
        assert_eq!(params_hash(&oaep(Some(empty))), Some(OaepHash::Sha1));
        // SHA-256 for the label but the default MGF1-SHA-1: not supported.
        let mut body = Vec::new();
        let sha256 = AlgorithmIdentifierOwned {
            oid: ID_SHA_256,
            parameters: Some(Any::null()),
        };
        explicit(TagNumber::N0, &sha256.to_der().unwrap(), &mut body).unwrap();
        let mixed = Any::new(Tag::Sequence, body).unwrap();
        assert_eq!(params_hash(&oaep(Some(mixed))), None);
        let garbage = Any::new(Tag::Sequence, vec![0xa0, 0x02, 0x05, 0x00]).unwrap();
        assert_eq!(params_hash(&oaep(Some(garbage))), None);
    }
}
