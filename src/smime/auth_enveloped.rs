//! AuthEnvelopedData (RFC 5083) with AES-GCM content encryption
//! (RFC 5084): sealing, and opening the content once the key is known.
//!
//! ```text
//! AuthEnvelopedData ::= SEQUENCE {
//!   version CMSVersion,                              -- always 0
//!   originatorInfo [0] IMPLICIT OriginatorInfo OPTIONAL,
//!   recipientInfos RecipientInfos,
//!   authEncryptedContentInfo EncryptedContentInfo,
//!   authAttrs [1] IMPLICIT AuthAttributes OPTIONAL,
//!   mac MessageAuthenticationCode,                   -- the GCM tag
//!   unauthAttrs [2] IMPLICIT UnauthAttributes OPTIONAL }
//! GCMParameters ::= SEQUENCE {
//!   aes-nonce        OCTET STRING,     -- 12 octets recommended
//!   aes-ICVlen       AES-GCM-ICVlen DEFAULT 12 }
//! ```
//!
//! The `cms` crate (0.2) has no type for it, so the structure is encoded
//! here from its parts, which are the crate's (RecipientInfo,
//! EncryptedContentInfo). sealmail writes a 12-octet nonce and a 16-octet
//! tag (as OpenSSL does), no authenticated attributes, so the additional
//! data is empty.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm, Nonce, Tag as GcmTag};
use cms::content_info::CmsVersion;
use cms::enveloped_data::{EncryptedContentInfo, RecipientInfo, RecipientInfos};
use der::asn1::{OctetString, SetOfVec};
use der::{
    Any, Decode as _, Encode as _, Length, Reader as _, SliceReader, Tag, Tagged as _, Writer,
};
use rand_core::RngCore as _;
use sealmail_plugin_api::ContentCipher;
use spki::AlgorithmIdentifierOwned;
use zeroize::Zeroizing;

use super::SmimeError;

use const_oid::db::rfc5911::{ID_AES_128_GCM, ID_AES_256_GCM, ID_DATA};

/// GCM nonce length written (RFC 5084 §3.2 recommends 12).
const NONCE_BYTES: usize = 12;
/// GCM tag length written and read (`aes-ICVlen`).
const TAG_BYTES: u8 = 16;

/// An AuthEnvelopedData ready to encode (version 0, no originator info,
/// no attributes).
#[derive(Debug)]
pub(crate) struct AuthEnvelopedData {
    recipient_infos: RecipientInfos,
    content: EncryptedContentInfo,
    mac: OctetString,
}

impl der::FixedTag for AuthEnvelopedData {
    const TAG: Tag = Tag::Sequence;
}

impl der::EncodeValue for AuthEnvelopedData {
    fn value_len(&self) -> der::Result<Length> {
        CmsVersion::V0.encoded_len()?
            + self.recipient_infos.encoded_len()?
            + self.content.encoded_len()?
            + self.mac.encoded_len()?
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        CmsVersion::V0.encode(writer)?;
        self.recipient_infos.encode(writer)?;
        self.content.encode(writer)?;
        self.mac.encode(writer)
    }
}

/// Encrypts `content` with a fresh key and nonce under `cipher` (one of
/// the GCM ones) and wraps the key for every recipient with `wrap`.
pub(crate) fn seal(
    cipher: ContentCipher,
    content: &[u8],
    wrap: impl FnOnce(&[u8]) -> Result<Vec<RecipientInfo>, SmimeError>,
) -> Result<AuthEnvelopedData, SmimeError> {
    let (oid, key_bytes) = match cipher {
        ContentCipher::Aes128Gcm => (ID_AES_128_GCM, 16),
        _ => (ID_AES_256_GCM, 32),
    };
    let mut rng = rand::thread_rng();
    let mut key = Zeroizing::new(vec![0u8; key_bytes]);
    rng.fill_bytes(&mut key);
    let mut nonce = [0u8; NONCE_BYTES];
    rng.fill_bytes(&mut nonce);
    let mut ciphertext = content.to_vec();
    let nonce_ref = Nonce::from_slice(&nonce);
    let tag = match oid {
        ID_AES_128_GCM => Aes128Gcm::new_from_slice(&key)
            .map_err(|_| SmimeError::BadCipherParameters)?
            .encrypt_in_place_detached(nonce_ref, b"", &mut ciphertext),
        _ => Aes256Gcm::new_from_slice(&key)
            .map_err(|_| SmimeError::BadCipherParameters)?
            .encrypt_in_place_detached(nonce_ref, b"", &mut ciphertext),
    }
    .map_err(|_| SmimeError::Build {
        detail: format!("AES-GCM refused a {}-byte message", content.len()),
    })?;
    let recipient_infos = RecipientInfos(SetOfVec::try_from(wrap(&key)?)?);
    Ok(AuthEnvelopedData {
        recipient_infos,
        content: EncryptedContentInfo {
            content_type: ID_DATA,
            content_enc_alg: AlgorithmIdentifierOwned {
                oid,
                parameters: Some(gcm_parameters(&nonce)?),
            },
            encrypted_content: Some(OctetString::new(ciphertext)?),
        },
        mac: OctetString::new(tag.to_vec())?,
    })
}

/// `GCMParameters` with `nonce` and the 16-octet ICV (written, since the
/// default is 12).
fn gcm_parameters(nonce: &[u8]) -> Result<Any, SmimeError> {
    let mut body = OctetString::new(nonce)?.to_der()?;
    body.extend_from_slice(&TAG_BYTES.to_der()?);
    Ok(Any::new(Tag::Sequence, body)?)
}

/// What AuthEnvelopedData adds to the encrypted content: the additional
/// authenticated data and the tag.
#[derive(Debug)]
pub(crate) struct Authenticated {
    /// The DER of `authAttrs` with a SET OF tag (RFC 5083 §2.2), or empty.
    pub(crate) aad: Vec<u8>,
    /// `mac`.
    pub(crate) mac: Vec<u8>,
}

/// Reads what follows `authEncryptedContentInfo`: optional `authAttrs`,
/// the `mac`, optional `unauthAttrs`.
pub(crate) fn read_trailer(reader: &mut SliceReader<'_>) -> Result<Authenticated, SmimeError> {
    let mut aad = Vec::new();
    let attrs_tag = Tag::ContextSpecific {
        constructed: true,
        number: der::TagNumber::N1,
    };
    if !reader.is_finished() && reader.peek_tag()? == attrs_tag {
        // why the SET OF tag: RFC 5083 §2.2 authenticates the attributes
        // as their DER with an EXPLICIT SET OF tag, not the IMPLICIT [1].
        let tlv = reader.tlv_bytes()?;
        aad = tlv.to_vec();
        if let Some(first) = aad.first_mut() {
            *first = 0x31;
        }
    }
    let mac = OctetString::decode(reader)?.into_bytes();
    Ok(Authenticated { aad, mac })
}

/// Whether `oid` is an AES-GCM content encryption.
pub(crate) fn is_gcm(oid: &der::asn1::ObjectIdentifier) -> bool {
    *oid == ID_AES_128_GCM || *oid == ID_AES_256_GCM
}

/// AES-GCM decryption and tag check of `eci` with `cek`.
pub(crate) fn open(
    eci: &EncryptedContentInfo,
    auth: &Authenticated,
    cek: &[u8],
) -> Result<Vec<u8>, SmimeError> {
    let mut content = eci
        .encrypted_content
        .as_ref()
        .ok_or(SmimeError::DetachedContent)?
        .as_bytes()
        .to_vec();
    let alg = &eci.content_enc_alg;
    let params = alg
        .parameters
        .as_ref()
        .filter(|p| p.tag() == Tag::Sequence)
        .ok_or(SmimeError::BadCipherParameters)?;
    let mut reader = SliceReader::new(params.value())?;
    let nonce = OctetString::decode(&mut reader)?;
    let icv_len = if reader.is_finished() {
        12
    } else {
        u8::decode(&mut reader)?
    };
    if nonce.as_bytes().len() != NONCE_BYTES
        || icv_len != TAG_BYTES
        || auth.mac.len() != usize::from(TAG_BYTES)
    {
        return Err(SmimeError::BadCipherParameters);
    }
    let nonce = Nonce::from_slice(nonce.as_bytes());
    let tag = GcmTag::from_slice(&auth.mac);
    let opened = match alg.oid {
        ID_AES_128_GCM => Aes128Gcm::new_from_slice(cek)
            .map_err(|_| SmimeError::BadCipherParameters)?
            .decrypt_in_place_detached(nonce, &auth.aad, &mut content, tag),
        ID_AES_256_GCM => Aes256Gcm::new_from_slice(cek)
            .map_err(|_| SmimeError::BadCipherParameters)?
            .decrypt_in_place_detached(nonce, &auth.aad, &mut content, tag),
        other => {
            return Err(SmimeError::UnsupportedCipher {
                oid: other.to_string(),
            })
        }
    };
    opened.map_err(|_| SmimeError::NotAuthentic)?;
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_the_ones_openssl_writes() {
        // openssl cms -encrypt -aes-256-gcm: SEQUENCE { OCTET STRING (12),
        // INTEGER 16 }.
        let params = gcm_parameters(&[7; 12]).unwrap();
        let mut expected = vec![0x30, 0x11, 0x04, 0x0c];
        expected.extend_from_slice(&[7; 12]);
        expected.extend_from_slice(&[0x02, 0x01, 0x10]);
        assert_eq!(params.to_der().unwrap(), expected);
    }

    #[test]
    fn a_changed_byte_is_refused() {
        let sealed = seal(ContentCipher::Aes128Gcm, b"secret text", |_| Ok(Vec::new())).unwrap();
        // The key is not kept, so open with a wrong key and see the
        // tag check fail rather than garbage come out.
        let auth = Authenticated {
            aad: Vec::new(),
            mac: sealed.mac.as_bytes().to_vec(),
        };
        assert!(matches!(
            open(&sealed.content, &auth, &[0u8; 16]),
            Err(SmimeError::NotAuthentic)
        ));
    }
}
