//! Opening CMS EnvelopedData with an RSA private key (RFC 5652 §6.2.1,
//! RFC 3370 §4.2.1 PKCS#1 v1.5 or RFC 3560 OAEP key transport) or an EC
//! one (RFC 5652 §6.2.2, RFC 5753 ECDH key agreement; see
//! [`super::kari`]), RFC 3565 AES-CBC content encryption, and AuthEnvelopedData with AES-GCM
//! (RFC 5083, RFC 5084; see [`super::auth_enveloped`]).
//!
//! The `cms` crate has no decrypt API, so this module walks the structure
//! itself. It is used where sealmail holds a private key — mail sent
//! encrypted to a mailing list's own certificate — and by the tests.
//! Input is accepted in DER or BER (see [`super::ber`]), as
//! `application/pkcs7-mime` or `application/x-pkcs7-mime`, base64 or binary.
//!
//! The private-key operation is the `rsa` crate's, which is exposed to the
//! Marvin timing attack (RUSTSEC-2023-0071); the supply-chain config says
//! why that is acceptable here.

use aes::{Aes128, Aes192, Aes256};
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use cms::cert::IssuerAndSerialNumber;
use cms::enveloped_data::{EncryptedContentInfo, RecipientIdentifier, RecipientInfo};
use der::asn1::{AnyRef, ObjectIdentifier, OctetString};
use der::{Decode as _, Reader as _, SliceReader, Tag, TagNumber, Tagged as _};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::auth_enveloped::{self, Authenticated};
use super::ber;
use super::ecdh::{EcPrivateKey, EcPublicKey};
use super::kari;
use super::line_ends::to_crlf;
use super::oaep;
use super::split::Split;
use super::SmimeError;

/// An RSA or EC private key, optionally with its certificate, that opens
/// envelopes addressed to it.
#[derive(Clone)]
pub struct Decryptor {
    key: PrivateKey,
    rid: Option<IssuerAndSerialNumber>,
}

/// The private half: RSA opens KeyTransRecipientInfos, EC
/// KeyAgreeRecipientInfos.
#[derive(Clone)]
enum PrivateKey {
    // why boxed: an RSA key with its CRT values is four times an EC key.
    Rsa(Box<RsaPrivateKey>),
    Ec(EcPrivateKey),
}

impl std::fmt::Debug for Decryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("key", &"<redacted>")
            .field("has_certificate", &self.rid.is_some())
            .finish()
    }
}

impl Decryptor {
    /// A decryptor for `key`. With `cert`, only the RecipientInfo naming
    /// that certificate is tried; without, every key-transport
    /// RecipientInfo is.
    pub fn new(key: RsaPrivateKey, cert: Option<&Certificate>) -> Self {
        Self::with_key(PrivateKey::Rsa(Box::new(key)), cert)
    }

    fn with_key(key: PrivateKey, cert: Option<&Certificate>) -> Self {
        let rid = cert.map(|c| IssuerAndSerialNumber {
            issuer: c.tbs_certificate.issuer.clone(),
            serial_number: c.tbs_certificate.serial_number.clone(),
        });
        Self { key, rid }
    }

    /// A decryptor from an unencrypted PEM private key and an optional
    /// certificate: RSA as PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE
    /// KEY`; EC on P-256, P-384 or P-521 as PKCS#8 or SEC 1 `EC PRIVATE
    /// KEY` (an `EC PARAMETERS` block before it, as `openssl ecparam
    /// -genkey` writes, is skipped).
    pub fn from_pem(key_pem: &str, cert: Option<&Certificate>) -> Result<Self, SmimeError> {
        if let Ok(key) = RsaPrivateKey::from_pkcs8_pem(key_pem) {
            return Ok(Self::new(key, cert));
        }
        let rsa_error = match RsaPrivateKey::from_pkcs1_pem(key_pem) {
            Ok(key) => return Ok(Self::new(key, cert)),
            Err(e) => e,
        };
        for block in pem_blocks(key_pem) {
            let Ok((label, der_bytes)) = der::pem::decode_vec(block.as_bytes()) else {
                continue;
            };
            let der_bytes = Zeroizing::new(der_bytes);
            if let Some(key) = EcPrivateKey::from_der(label, &der_bytes) {
                return Ok(Self::with_key(PrivateKey::Ec(key), cert));
            }
        }
        Err(SmimeError::BadPrivateKey {
            detail: format!("not an RSA key ({rsa_error}) nor an EC key on P-256, P-384 or P-521"),
        })
    }

    /// A decryptor from a PKCS#8 DER private key (RSA, or EC on P-256,
    /// P-384 or P-521), as [`Decryptor::to_pkcs8_der`] writes it.
    pub fn from_pkcs8_der(
        der_bytes: &[u8],
        cert: Option<&Certificate>,
    ) -> Result<Self, SmimeError> {
        if let Ok(key) = RsaPrivateKey::from_pkcs8_der(der_bytes) {
            return Ok(Self::new(key, cert));
        }
        EcPrivateKey::from_der("PRIVATE KEY", der_bytes)
            .map(|key| Self::with_key(PrivateKey::Ec(key), cert))
            .ok_or_else(|| SmimeError::BadPrivateKey {
                detail: "not a PKCS#8 RSA key nor an EC key on P-256, P-384 or P-521".into(),
            })
    }

    /// The private key as PKCS#8 DER, whatever form it was read from.
    pub fn to_pkcs8_der(&self) -> Result<Zeroizing<Vec<u8>>, SmimeError> {
        let bad = || SmimeError::BadPrivateKey {
            detail: "cannot be written as PKCS#8".into(),
        };
        match &self.key {
            PrivateKey::Rsa(key) => {
                use rsa::pkcs8::EncodePrivateKey as _;
                let doc = key.to_pkcs8_der().map_err(|_| bad())?;
                Ok(Zeroizing::new(doc.as_bytes().to_vec()))
            }
            PrivateKey::Ec(key) => key.to_pkcs8_der().ok_or_else(bad),
        }
    }

    /// Whether `spki` (a certificate's key) is this key's public half.
    pub fn matches_public_key(&self, spki: &spki::SubjectPublicKeyInfoOwned) -> bool {
        let Some(bits) = spki.subject_public_key.as_bytes() else {
            return false;
        };
        match &self.key {
            PrivateKey::Rsa(key) => {
                let Ok(public) = rsa::pkcs1::RsaPublicKey::from_der(bits) else {
                    return false;
                };
                let n = rsa::traits::PublicKeyParts::n(&**key);
                let e = rsa::traits::PublicKeyParts::e(&**key);
                spki.algorithm.oid == const_oid::db::rfc5912::RSA_ENCRYPTION
                    && n.to_bytes_be() == public.modulus.as_bytes()
                    && e.to_bytes_be() == public.public_exponent.as_bytes()
            }
            PrivateKey::Ec(key) => {
                let curve = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
                spki.algorithm.oid == const_oid::db::rfc5912::ID_EC_PUBLIC_KEY
                    && curve == Some(key.curve().oid())
                    && EcPublicKey::new(key.curve(), bits)
                        .is_ok_and(|public| public.point() == key.public_point())
            }
        }
    }

    /// Decrypts an S/MIME message and returns the inner MIME entity.
    pub fn decrypt_message(&self, raw: &[u8]) -> Result<Vec<u8>, SmimeError> {
        self.decrypt_cms(&smime_payload(raw)?)
    }

    /// Decrypts a DER or BER `ContentInfo` holding EnvelopedData.
    pub fn decrypt_cms(&self, cms_bytes: &[u8]) -> Result<Vec<u8>, SmimeError> {
        self.open(&Enveloped::from_cms(cms_bytes)?)
    }

    /// Decrypts an envelope parsed once (several keys may try it: a
    /// list's keys during a rotation).
    pub fn open(&self, enveloped: &Enveloped) -> Result<Vec<u8>, SmimeError> {
        enveloped.open_with(&self.content_key(enveloped)?)
    }

    /// The content-encryption key of `enveloped`, unwrapped with this key
    /// (one private-key operation), for [`Enveloped::open_with`].
    pub fn unwrap_content_key(
        &self,
        enveloped: &Enveloped,
    ) -> Result<Zeroizing<Vec<u8>>, SmimeError> {
        self.content_key(enveloped)
    }

    /// Finds our RecipientInfo and unwraps the content key.
    ///
    /// why at most one private-key operation when the certificate is
    /// known: the sender controls the RecipientInfos, and 4,000 of them
    /// naming the list's certificate with garbage keys cost 17 s of RSA.
    /// Without a certificate every key-transport entry is a candidate, up
    /// to [`MAX_BLIND_ATTEMPTS`].
    fn content_key(&self, enveloped: &Enveloped) -> Result<Zeroizing<Vec<u8>>, SmimeError> {
        let key = match &self.key {
            PrivateKey::Rsa(key) => key,
            PrivateKey::Ec(key) => return self.agreed_content_key(key, enveloped),
        };
        let mut candidates = 0;
        for info in &enveloped.recipients {
            let RecipientInfo::Ktri(ktri) = info else {
                continue;
            };
            if let (Some(ours), RecipientIdentifier::IssuerAndSerialNumber(theirs)) =
                (&self.rid, &ktri.rid)
            {
                if ours != theirs {
                    continue;
                }
            }
            let oaep = match ktri.key_enc_alg.oid {
                const_oid::db::rfc5912::RSA_ENCRYPTION => None,
                const_oid::db::rfc5912::ID_RSAES_OAEP => {
                    match oaep::params_hash(&ktri.key_enc_alg) {
                        Some(hash) => Some(hash),
                        None => continue,
                    }
                }
                _ => continue,
            };
            candidates += 1;
            let wrapped = ktri.enc_key.as_bytes();
            let opened = match oaep {
                None => key.decrypt(Pkcs1v15Encrypt, wrapped),
                Some(hash) => key.decrypt(hash.padding(), wrapped),
            };
            if let Ok(cek) = opened {
                return Ok(Zeroizing::new(cek));
            }
            if self.rid.is_some() || candidates >= MAX_BLIND_ATTEMPTS {
                break;
            }
        }
        Err(SmimeError::NotForThisKey { candidates })
    }

    /// The content key from a KeyAgreeRecipientInfo of our curve: with
    /// the certificate, the one entry naming it (one ECDH); without, up
    /// to [`MAX_BLIND_ATTEMPTS`] agreements.
    fn agreed_content_key(
        &self,
        key: &EcPrivateKey,
        enveloped: &Enveloped,
    ) -> Result<Zeroizing<Vec<u8>>, SmimeError> {
        let mut candidates = 0;
        for info in &enveloped.recipients {
            let RecipientInfo::Kari(kari) = info else {
                continue;
            };
            match kari::open(kari, key, self.rid.as_ref()) {
                Ok(Some(cek)) => return Ok(cek),
                Ok(None) => continue,
                // why a named entry ends the search: it was ours and did
                // not open; trying further ones would only cost ECDHs.
                Err(e) if self.rid.is_some() => return Err(e),
                Err(_) => candidates += 1,
            }
            if candidates >= MAX_BLIND_ATTEMPTS {
                break;
            }
        }
        Err(SmimeError::NotForThisKey { candidates })
    }
}

/// The PEM blocks of `text` (`-----BEGIN` to the matching `-----END`
/// line), in order.
fn pem_blocks(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let from = &rest[start..];
        let Some(end) = from.find("-----END ") else {
            break;
        };
        let after = &from[end + 9..];
        let close = after.find("-----").map_or(after.len(), |i| i + 5);
        out.push(&from[..end + 9 + close]);
        rest = &after[close..];
    }
    out
}

/// RecipientInfos of one envelope that are looked at. why: a sender
/// controls their number; 1,024 is far beyond any real message's
/// recipients (they are the sender's addressees), and a key whose entry
/// lies further back is treated as not addressed.
pub const MAX_RECIPIENT_INFOS: usize = 1024;

/// Private-key attempts of a [`Decryptor`] without a certificate.
const MAX_BLIND_ATTEMPTS: usize = 16;

/// CMS EnvelopedData (RFC 5652 §6.1) as far as opening it needs:
///
/// ```text
/// EnvelopedData ::= SEQUENCE {
///   version CMSVersion,
///   originatorInfo [0] IMPLICIT OriginatorInfo OPTIONAL,
///   recipientInfos RecipientInfos,
///   encryptedContentInfo EncryptedContentInfo,
///   unprotectedAttrs [1] IMPLICIT UnprotectedAttributes OPTIONAL }
/// ```
///
/// Parsed in one pass: the `cms` crate's SET OF decoding sorts as it
/// reads (quadratic; 8,000 RecipientInfos took 57 s), so the SET is walked
/// here element by element, and only the first [`MAX_RECIPIENT_INFOS`]
/// are kept.
///
/// AuthEnvelopedData (RFC 5083 §2.1) has the same first fields, then
/// `authAttrs`, `mac` and `unauthAttrs`; its extra fields are in `auth`.
#[derive(Debug)]
pub struct Enveloped {
    recipients: Vec<RecipientInfo>,
    content: EncryptedContentInfo,
    auth: Option<Authenticated>,
}

impl Enveloped {
    /// The content decrypted with the content-encryption key `cek`
    /// (unwrapped before, [`Decryptor::unwrap_content_key`]).
    pub fn open_with(&self, cek: &[u8]) -> Result<Vec<u8>, SmimeError> {
        match &self.auth {
            Some(auth) if auth_enveloped::is_gcm(&self.content.content_enc_alg.oid) => {
                auth_enveloped::open(&self.content, auth, cek)
            }
            // why refused: RFC 5083 §2.1 allows only authenticated
            // encryption inside AuthEnvelopedData, and GCM without its tag
            // (in plain EnvelopedData) would be unauthenticated.
            Some(_) => Err(SmimeError::UnsupportedCipher {
                oid: self.content.content_enc_alg.oid.to_string(),
            }),
            None => decrypt_content(&self.content, cek),
        }
    }

    /// The envelope of an S/MIME message.
    pub fn from_message(raw: &[u8]) -> Result<Self, SmimeError> {
        Self::from_cms(&smime_payload(raw)?)
    }

    /// The envelope in a DER or BER `ContentInfo`.
    pub fn from_cms(cms_bytes: &[u8]) -> Result<Self, SmimeError> {
        match Self::from_der(cms_bytes) {
            Ok(parsed) => Ok(parsed),
            Err(SmimeError::Der(_)) => Self::from_der(&ber::to_der(cms_bytes)?),
            Err(other) => Err(other),
        }
    }

    fn from_der(der_bytes: &[u8]) -> Result<Self, SmimeError> {
        let info = sequence(AnyRef::from_der(der_bytes)?)?;
        let mut reader = SliceReader::new(info)?;
        let content_type = ObjectIdentifier::decode(&mut reader)?;
        let authenticated = match content_type {
            const_oid::db::rfc5911::ID_ENVELOPED_DATA => false,
            const_oid::db::rfc5911::ID_CT_AUTH_ENVELOPED_DATA => true,
            _ => {
                return Err(SmimeError::NotEnveloped {
                    content_type: content_type.to_string(),
                })
            }
        };
        let explicit = AnyRef::decode(&mut reader)?;
        reader.finish(())?;
        if explicit.tag() != context(TagNumber::N0) {
            return Err(der::Tag::Sequence.value_error().into());
        }
        let body = sequence(AnyRef::from_der(explicit.value())?)?;
        let mut reader = SliceReader::new(body)?;
        let _version = AnyRef::decode(&mut reader)?;
        if reader.peek_tag()? == context(TagNumber::N0) {
            let _originator_info = AnyRef::decode(&mut reader)?;
        }
        let set = AnyRef::decode(&mut reader)?;
        if set.tag() != Tag::Set {
            return Err(Tag::Set.value_error().into());
        }
        let recipients = recipient_infos(set.value())?;
        let content = EncryptedContentInfo::decode(&mut reader)?;
        let auth = if authenticated {
            Some(auth_enveloped::read_trailer(&mut reader)?)
        } else {
            None
        };
        Ok(Self {
            recipients,
            content,
            auth,
        })
    }
}

/// The first [`MAX_RECIPIENT_INFOS`] elements of the RecipientInfos SET,
/// each decoded on its own; one of a kind this crate cannot read is
/// skipped, not fatal.
fn recipient_infos(set: &[u8]) -> Result<Vec<RecipientInfo>, SmimeError> {
    let mut reader = SliceReader::new(set)?;
    let mut out = Vec::new();
    while !reader.is_finished() && out.len() < MAX_RECIPIENT_INFOS {
        if let Ok(info) = RecipientInfo::from_der(reader.tlv_bytes()?) {
            out.push(info);
        }
    }
    Ok(out)
}

/// The contents of a SEQUENCE.
fn sequence(any: AnyRef<'_>) -> Result<&[u8], SmimeError> {
    if any.tag() == Tag::Sequence {
        Ok(any.value())
    } else {
        Err(Tag::Sequence.value_error().into())
    }
}

/// A constructed context-specific tag, `[n]`.
fn context(number: TagNumber) -> Tag {
    Tag::ContextSpecific {
        constructed: true,
        number,
    }
}

/// Extracts the CMS bytes from an S/MIME message: the body of an
/// `application/(x-)pkcs7-mime` root, base64-decoded unless it is binary.
pub fn smime_payload(raw: &[u8]) -> Result<Vec<u8>, SmimeError> {
    let split = Split::new(raw);
    let ctype = split
        .field_value(b"content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    // why the detector for octet-stream: RFC 8551 §3.2.2 lets a client
    // label S/MIME `application/octet-stream` with a `.p7m` name, and the
    // detector has already passed such mail as encrypted; a list must then
    // be able to open it too, not hand it on intact.
    let is_pkcs7 = ctype.starts_with(b"application/pkcs7-mime")
        || ctype.starts_with(b"application/x-pkcs7-mime")
        || (ctype.starts_with(b"application/octet-stream")
            && super::already_encrypted(raw, &split) == Some(super::AlreadyEncrypted::Smime));
    if !is_pkcs7 {
        return Err(SmimeError::NotSmime {
            content_type: String::from_utf8_lossy(&ctype).into_owned(),
        });
    }
    let cte = split
        .field_value(b"content-transfer-encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    if cte.as_slice() != b"base64" {
        return Ok(split.body.to_vec());
    }
    let compact: Vec<u8> = split
        .body
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|e| SmimeError::Base64 {
            detail: e.to_string(),
        })
}

/// AES-CBC decryption of the encrypted content with `cek`.
fn decrypt_content(eci: &EncryptedContentInfo, cek: &[u8]) -> Result<Vec<u8>, SmimeError> {
    let ciphertext = eci
        .encrypted_content
        .as_ref()
        .ok_or(SmimeError::DetachedContent)?
        .as_bytes();
    let alg = &eci.content_enc_alg;
    let iv = alg
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<OctetString>().ok())
        .ok_or(SmimeError::BadCipherParameters)?;
    let iv = iv.as_bytes();
    use const_oid::db::rfc5911::{ID_AES_128_CBC, ID_AES_192_CBC, ID_AES_256_CBC};
    match alg.oid {
        ID_AES_128_CBC => cbc_decrypt::<Aes128>(cek, iv, ciphertext),
        ID_AES_192_CBC => cbc_decrypt::<Aes192>(cek, iv, ciphertext),
        ID_AES_256_CBC => cbc_decrypt::<Aes256>(cek, iv, ciphertext),
        other => Err(SmimeError::UnsupportedCipher {
            oid: other.to_string(),
        }),
    }
}

fn cbc_decrypt<C>(key: &[u8], iv: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, SmimeError>
where
    C: cbc::cipher::BlockCipher + cbc::cipher::BlockDecryptMut + cbc::cipher::KeyInit,
{
    let decryptor = cbc::Decryptor::<C>::new_from_slices(key, iv)
        .map_err(|_| SmimeError::BadCipherParameters)?;
    decryptor
        .decrypt_padded_vec_mut::<Pkcs7>(ciphertext)
        .map_err(|_| SmimeError::BadPadding)
}

/// The message `raw` (an S/MIME message) with its envelope replaced by
/// `inner`, the entity the envelope held: the clear outer fields (the
/// S/MIME `Content-*` fields dropped) and then `inner`, with CRLF line
/// ends whatever the sender's client chose inside.
pub fn opened_message(raw: &[u8], inner: Zeroizing<Vec<u8>>) -> Zeroizing<Vec<u8>> {
    let fixed = match to_crlf(&inner) {
        std::borrow::Cow::Owned(v) => Some(Zeroizing::new(v)),
        std::borrow::Cow::Borrowed(_) => None,
    };
    let inner = fixed.unwrap_or(inner);
    let split = Split::new(raw);
    let mut plain = Zeroizing::new(Vec::with_capacity(raw.len() + inner.len()));
    for field in &split.outer {
        plain.extend_from_slice(field);
    }
    plain.extend_from_slice(&inner);
    plain
}
