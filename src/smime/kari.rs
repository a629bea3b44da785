//! KeyAgreeRecipientInfo for EC recipients (RFC 5652 §6.2.2, RFC 5753
//! §3.1): ephemeral-static ECDH, the X9.63 KDF over `ECC-CMS-SharedInfo`,
//! and the AES key wrap (RFC 3394, RFC 3565 §2.3.2) of the content key.
//!
//! ```text
//! KeyAgreeRecipientInfo ::= SEQUENCE {
//!   version CMSVersion,  -- always 3
//!   originator [0] EXPLICIT OriginatorIdentifierOrKey,  -- originatorKey [1]
//!   ukm [1] EXPLICIT UserKeyingMaterial OPTIONAL,
//!   keyEncryptionAlgorithm AlgorithmIdentifier,  -- dhSinglePass-stdDH-shaNkdf-scheme,
//!                                                --   parameters: the key wrap AlgorithmIdentifier
//!   recipientEncryptedKeys RecipientEncryptedKeys }
//! ECC-CMS-SharedInfo ::= SEQUENCE {
//!   keyInfo         AlgorithmIdentifier,          -- the key wrap, no parameters
//!   entityUInfo [0] EXPLICIT OCTET STRING OPTIONAL,  -- the ukm
//!   suppPubInfo [2] EXPLICIT OCTET STRING }       -- key-wrap key length in bits, 32-bit big-endian
//! ```
//!
//! sealmail writes what OpenSSL writes for an EC recipient, with the
//! SHA-256 KDF: the originator's key as `id-ecPublicKey` without
//! parameters and an uncompressed point, no ukm, the key wrap sized to the
//! content cipher (id-aes256-wrap for AES-256, id-aes128-wrap for
//! AES-128), one RecipientEncryptedKey per KeyAgreeRecipientInfo. It opens
//! the stdDH and cofactorDH schemes (the same for these curves, whose
//! cofactor is 1) with SHA-1 to SHA-512 and any AES key wrap.
//!
//! The `cms` crate (0.2) has the types but neither builds nor opens them:
//! [`KariParams`] is the part parsed and written here.

use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    KeyAgreeRecipientIdentifier, KeyAgreeRecipientInfo, OriginatorIdentifierOrKey,
    OriginatorPublicKey, RecipientEncryptedKey, RecipientInfo, UserKeyingMaterial,
};
use der::asn1::{BitString, ContextSpecific, ObjectIdentifier, OctetString};
use der::{Any, Encode as _, Header, Length, Tag, TagMode, TagNumber, Tagged as _};
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::ecdh::{x963_kdf, EcPrivateKey, EcPublicKey, KdfHash};
use super::SmimeError;

use const_oid::db::rfc5912::ID_EC_PUBLIC_KEY;

/// `dhSinglePass-stdDH-sha1kdf-scheme` (RFC 5753 §7.1.4).
const STD_DH_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.133.16.840.63.0.2");
/// `dhSinglePass-cofactorDH-sha1kdf-scheme`.
const COFACTOR_DH_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.133.16.840.63.0.3");
/// `dhSinglePass-stdDH-sha{224,256,384,512}kdf-scheme`: `1.3.132.1.11.{0..3}`.
const STD_DH_SHA2: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("1.3.132.1.11.0"),
    ObjectIdentifier::new_unwrap("1.3.132.1.11.1"),
    ObjectIdentifier::new_unwrap("1.3.132.1.11.2"),
    ObjectIdentifier::new_unwrap("1.3.132.1.11.3"),
];
/// `dhSinglePass-cofactorDH-sha{224,256,384,512}kdf-scheme`: `1.3.132.1.14.{0..3}`.
const COFACTOR_DH_SHA2: [ObjectIdentifier; 4] = [
    ObjectIdentifier::new_unwrap("1.3.132.1.14.0"),
    ObjectIdentifier::new_unwrap("1.3.132.1.14.1"),
    ObjectIdentifier::new_unwrap("1.3.132.1.14.2"),
    ObjectIdentifier::new_unwrap("1.3.132.1.14.3"),
];
const SHA2: [KdfHash; 4] = [
    KdfHash::Sha224,
    KdfHash::Sha256,
    KdfHash::Sha384,
    KdfHash::Sha512,
];

/// The AES key wrap of the content key (RFC 3394).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyWrap {
    /// id-aes128-wrap.
    Aes128,
    /// id-aes192-wrap.
    Aes192,
    /// id-aes256-wrap.
    Aes256,
}

impl KeyWrap {
    fn oid(self) -> ObjectIdentifier {
        use const_oid::db::rfc5911::{ID_AES_128_WRAP, ID_AES_192_WRAP, ID_AES_256_WRAP};
        match self {
            Self::Aes128 => ID_AES_128_WRAP,
            Self::Aes192 => ID_AES_192_WRAP,
            Self::Aes256 => ID_AES_256_WRAP,
        }
    }

    fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        use const_oid::db::rfc5911::{ID_AES_128_WRAP, ID_AES_192_WRAP, ID_AES_256_WRAP};
        match *oid {
            ID_AES_128_WRAP => Some(Self::Aes128),
            ID_AES_192_WRAP => Some(Self::Aes192),
            ID_AES_256_WRAP => Some(Self::Aes256),
            _ => None,
        }
    }

    /// The key-encryption key's length in bytes.
    fn key_bytes(self) -> usize {
        match self {
            Self::Aes128 => 16,
            Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    /// The wrap OpenSSL picks for a content key of `cek_len` bytes.
    pub fn for_content_key(cek_len: usize) -> Self {
        match cek_len {
            16 => Self::Aes128,
            24 => Self::Aes192,
            _ => Self::Aes256,
        }
    }

    fn wrap(self, kek: &[u8], cek: &[u8]) -> Result<Vec<u8>, SmimeError> {
        let failed = |_| SmimeError::BadCipherParameters;
        match self {
            Self::Aes128 => aes_kw::KekAes128::try_from(kek)
                .map_err(failed)?
                .wrap_vec(cek),
            Self::Aes192 => aes_kw::KekAes192::try_from(kek)
                .map_err(failed)?
                .wrap_vec(cek),
            Self::Aes256 => aes_kw::KekAes256::try_from(kek)
                .map_err(failed)?
                .wrap_vec(cek),
        }
        .map_err(failed)
    }

    /// Unwraps and checks the RFC 3394 integrity value: a wrong key or a
    /// changed byte gives `None`.
    fn unwrap(self, kek: &[u8], wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let opened = match self {
            Self::Aes128 => aes_kw::KekAes128::try_from(kek).ok()?.unwrap_vec(wrapped),
            Self::Aes192 => aes_kw::KekAes192::try_from(kek).ok()?.unwrap_vec(wrapped),
            Self::Aes256 => aes_kw::KekAes256::try_from(kek).ok()?.unwrap_vec(wrapped),
        };
        opened.ok().map(Zeroizing::new)
    }
}

/// What a KeyAgreeRecipientInfo says about how its keys were wrapped:
/// everything but the RecipientEncryptedKeys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KariParams {
    /// The KDF's hash.
    pub kdf: KdfHash,
    /// A cofactorDH scheme rather than stdDH (the same on P-256/384/521).
    pub cofactor: bool,
    /// The key wrap.
    pub wrap: KeyWrap,
    /// The originator's (ephemeral) public key, as sent.
    pub ephemeral: Vec<u8>,
    /// The user keying material (`entityUInfo`), when sent.
    pub ukm: Option<Vec<u8>>,
}

impl KariParams {
    /// Reads the parameters of `kari`. Input from a sender: anything that
    /// is not an EC originator key with a known scheme and key wrap is
    /// an error, never a panic.
    pub fn from_kari(kari: &KeyAgreeRecipientInfo) -> Result<Self, SmimeError> {
        let unsupported = || SmimeError::UnsupportedCipher {
            oid: kari.key_enc_alg.oid.to_string(),
        };
        let OriginatorIdentifierOrKey::OriginatorKey(originator) = &kari.originator else {
            return Err(unsupported());
        };
        if originator.algorithm.oid != ID_EC_PUBLIC_KEY {
            return Err(unsupported());
        }
        let ephemeral = originator
            .public_key
            .as_bytes()
            .ok_or(SmimeError::BadCipherParameters)?
            .to_vec();
        let oid = kari.key_enc_alg.oid;
        let (kdf, cofactor) = if oid == STD_DH_SHA1 {
            (KdfHash::Sha1, false)
        } else if oid == COFACTOR_DH_SHA1 {
            (KdfHash::Sha1, true)
        } else if let Some(i) = STD_DH_SHA2.iter().position(|o| *o == oid) {
            (SHA2[i], false)
        } else if let Some(i) = COFACTOR_DH_SHA2.iter().position(|o| *o == oid) {
            (SHA2[i], true)
        } else {
            return Err(unsupported());
        };
        let wrap_alg: AlgorithmIdentifierOwned = kari
            .key_enc_alg
            .parameters
            .as_ref()
            .ok_or(SmimeError::BadCipherParameters)?
            .decode_as()?;
        let wrap =
            KeyWrap::from_oid(&wrap_alg.oid).ok_or_else(|| SmimeError::UnsupportedCipher {
                oid: wrap_alg.oid.to_string(),
            })?;
        // why only absent or NULL: RFC 3565 §2.3.2 says absent; some
        // writers put NULL. The KDF input below always has them absent.
        if wrap_alg
            .parameters
            .as_ref()
            .is_some_and(|p| p.tag() != Tag::Null)
        {
            return Err(SmimeError::BadCipherParameters);
        }
        Ok(Self {
            kdf,
            cofactor,
            wrap,
            ephemeral,
            ukm: kari.ukm.as_ref().map(|u| u.as_bytes().to_vec()),
        })
    }

    /// A KeyAgreeRecipientInfo with these parameters and `keys`.
    pub fn to_kari(
        &self,
        keys: Vec<RecipientEncryptedKey>,
    ) -> Result<KeyAgreeRecipientInfo, SmimeError> {
        let scheme = match (self.kdf, self.cofactor) {
            (KdfHash::Sha1, false) => STD_DH_SHA1,
            (KdfHash::Sha1, true) => COFACTOR_DH_SHA1,
            (hash, cofactor) => {
                let i = SHA2.iter().position(|h| *h == hash).unwrap_or(1);
                if cofactor {
                    COFACTOR_DH_SHA2[i]
                } else {
                    STD_DH_SHA2[i]
                }
            }
        };
        Ok(KeyAgreeRecipientInfo {
            version: CmsVersion::V3,
            originator: OriginatorIdentifierOrKey::OriginatorKey(OriginatorPublicKey {
                algorithm: AlgorithmIdentifierOwned {
                    oid: ID_EC_PUBLIC_KEY,
                    parameters: None,
                },
                public_key: BitString::from_bytes(&self.ephemeral)?,
            }),
            ukm: self
                .ukm
                .as_ref()
                .map(|u| UserKeyingMaterial::new(u.clone()))
                .transpose()?,
            key_enc_alg: AlgorithmIdentifierOwned {
                oid: scheme,
                parameters: Some(Any::encode_from(&self.wrap_algorithm())?),
            },
            recipient_enc_keys: keys,
        })
    }

    fn wrap_algorithm(&self) -> AlgorithmIdentifierOwned {
        AlgorithmIdentifierOwned {
            oid: self.wrap.oid(),
            parameters: None,
        }
    }

    /// The key-encryption key from the shared secret `z`.
    fn kek(&self, z: &[u8]) -> Result<Zeroizing<Vec<u8>>, SmimeError> {
        let info = self.shared_info()?;
        Ok(x963_kdf(self.kdf, z, &info, self.wrap.key_bytes()))
    }

    /// The DER of `ECC-CMS-SharedInfo` (RFC 5753 §7.2).
    fn shared_info(&self) -> Result<Vec<u8>, SmimeError> {
        let mut body = self.wrap_algorithm().to_der()?;
        if let Some(ukm) = &self.ukm {
            body.extend(explicit(TagNumber::N0, OctetString::new(ukm.clone())?).to_der()?);
        }
        let bits = u32::try_from(self.wrap.key_bytes() * 8).unwrap_or(256);
        body.extend(explicit(TagNumber::N2, OctetString::new(bits.to_be_bytes())?).to_der()?);
        let mut out = Header::new(Tag::Sequence, Length::try_from(body.len())?)?.to_der()?;
        out.extend(body);
        Ok(out)
    }
}

fn explicit(number: TagNumber, value: OctetString) -> ContextSpecific<OctetString> {
    ContextSpecific {
        tag_number: number,
        tag_mode: TagMode::Explicit,
        value,
    }
}

/// The KeyAgreeRecipientInfo carrying `cek` to the holder of `key`,
/// named by `rid`: a fresh ephemeral key, SHA-256 KDF, the key wrap sized
/// to the content key.
pub(crate) fn seal(
    key: &EcPublicKey,
    rid: &IssuerAndSerialNumber,
    cek: &[u8],
) -> Result<RecipientInfo, SmimeError> {
    let (ephemeral, z) = key.agree_ephemeral()?;
    let params = KariParams {
        kdf: KdfHash::Sha256,
        cofactor: false,
        wrap: KeyWrap::for_content_key(cek.len()),
        ephemeral,
        ukm: None,
    };
    let kek = params.kek(&z)?;
    let wrapped = params.wrap.wrap(&kek, cek)?;
    let kari = params.to_kari(vec![RecipientEncryptedKey {
        rid: KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(rid.clone()),
        enc_key: OctetString::new(wrapped)?,
    }])?;
    Ok(RecipientInfo::Kari(kari))
}

/// Most RecipientEncryptedKeys of one KeyAgreeRecipientInfo looked at.
/// why: the sender controls their number, and without a certificate each
/// one is an unwrap attempt (cheap, but not free).
const MAX_KEYS_PER_KARI: usize = 256;

/// The content key from `kari` with `key`: `Ok(None)` when no entry is
/// addressed to `rid` (nothing computed), an error when the entries
/// addressed to it (without `rid`: any entry) do not unwrap. One ECDH per
/// KeyAgreeRecipientInfo, however many entries it has.
pub(crate) fn open(
    kari: &KeyAgreeRecipientInfo,
    key: &EcPrivateKey,
    rid: Option<&IssuerAndSerialNumber>,
) -> Result<Option<Zeroizing<Vec<u8>>>, SmimeError> {
    let entries: Vec<&RecipientEncryptedKey> = kari
        .recipient_enc_keys
        .iter()
        .take(MAX_KEYS_PER_KARI)
        .filter(|rek| match (rid, &rek.rid) {
            (Some(ours), KeyAgreeRecipientIdentifier::IssuerAndSerialNumber(theirs)) => {
                ours == theirs
            }
            (Some(_), _) => false,
            (None, _) => true,
        })
        .collect();
    if entries.is_empty() {
        return Ok(None);
    }
    let params = KariParams::from_kari(kari)?;
    let z = key.agree(&params.ephemeral)?;
    let kek = params.kek(&z)?;
    entries
        .iter()
        .find_map(|rek| params.wrap.unwrap(&kek, rek.enc_key.as_bytes()))
        .map(Some)
        .ok_or(SmimeError::NotForThisKey { candidates: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Decode as _;

    #[test]
    fn shared_info_is_rfc_5753_s() {
        let params = KariParams {
            kdf: KdfHash::Sha256,
            cofactor: false,
            wrap: KeyWrap::Aes128,
            ephemeral: vec![4; 65],
            ukm: None,
        };
        // SEQUENCE { SEQUENCE { id-aes128-wrap }, [2] { OCTET STRING 00000080 } }
        let mut expected = vec![0x30, 0x15, 0x30, 0x0b, 0x06, 0x09];
        expected.extend_from_slice(&[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x05]);
        expected.extend_from_slice(&[0xa2, 0x06, 0x04, 0x04, 0, 0, 0, 0x80]);
        assert_eq!(params.shared_info().unwrap(), expected);
    }

    #[test]
    fn every_scheme_round_trips() {
        for kdf in [
            KdfHash::Sha1,
            KdfHash::Sha224,
            KdfHash::Sha256,
            KdfHash::Sha384,
            KdfHash::Sha512,
        ] {
            for cofactor in [false, true] {
                let params = KariParams {
                    kdf,
                    cofactor,
                    wrap: KeyWrap::Aes192,
                    ephemeral: vec![4, 1, 2],
                    ukm: Some(vec![9; 5]),
                };
                let der_bytes = params.to_kari(Vec::new()).unwrap().to_der().unwrap();
                let back = KeyAgreeRecipientInfo::from_der(&der_bytes).unwrap();
                assert_eq!(KariParams::from_kari(&back).unwrap(), params);
            }
        }
    }
}
