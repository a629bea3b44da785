//! Opening CMS EnvelopedData with an RSA private key (RFC 5652 §6.2.1,
//! RFC 3370 §4.2.1 key transport, RFC 3565 AES-CBC content encryption).
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
use cms::content_info::ContentInfo;
use cms::enveloped_data::{EnvelopedData, RecipientIdentifier, RecipientInfo};
use der::asn1::OctetString;
use der::Decode as _;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};
use x509_cert::Certificate;
use zeroize::Zeroizing;

use super::ber;
use super::split::Split;
use super::SmimeError;

/// An RSA private key, optionally with its certificate, that opens
/// envelopes addressed to it.
#[derive(Clone)]
pub struct Decryptor {
    key: RsaPrivateKey,
    rid: Option<IssuerAndSerialNumber>,
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
        let rid = cert.map(|c| IssuerAndSerialNumber {
            issuer: c.tbs_certificate.issuer.clone(),
            serial_number: c.tbs_certificate.serial_number.clone(),
        });
        Self { key, rid }
    }

    /// A decryptor from an unencrypted PEM private key (PKCS#8 `PRIVATE KEY`
    /// or PKCS#1 `RSA PRIVATE KEY`) and an optional certificate.
    pub fn from_pem(key_pem: &str, cert: Option<&Certificate>) -> Result<Self, SmimeError> {
        let key = RsaPrivateKey::from_pkcs8_pem(key_pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(key_pem))
            .map_err(|e| SmimeError::BadPrivateKey {
                detail: e.to_string(),
            })?;
        Ok(Self::new(key, cert))
    }

    /// The key's modulus (to check it against a certificate).
    pub fn public_modulus(&self) -> &rsa::BigUint {
        rsa::traits::PublicKeyParts::n(&self.key)
    }

    /// The key's public exponent.
    pub fn public_exponent(&self) -> &rsa::BigUint {
        rsa::traits::PublicKeyParts::e(&self.key)
    }

    /// Decrypts an S/MIME message and returns the inner MIME entity.
    pub fn decrypt_message(&self, raw: &[u8]) -> Result<Vec<u8>, SmimeError> {
        self.decrypt_cms(&smime_payload(raw)?)
    }

    /// Decrypts a DER or BER `ContentInfo` holding EnvelopedData.
    pub fn decrypt_cms(&self, cms_bytes: &[u8]) -> Result<Vec<u8>, SmimeError> {
        let enveloped = parse_enveloped(cms_bytes)?;
        let cek = self.content_key(&enveloped)?;
        decrypt_content(&enveloped, &cek)
    }

    /// Finds our RecipientInfo and unwraps the content key.
    fn content_key(&self, enveloped: &EnvelopedData) -> Result<Zeroizing<Vec<u8>>, SmimeError> {
        let mut candidates = 0;
        for info in enveloped.recip_infos.0.iter() {
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
            candidates += 1;
            if ktri.key_enc_alg.oid != const_oid::db::rfc5912::RSA_ENCRYPTION {
                continue;
            }
            if let Ok(cek) = self.key.decrypt(Pkcs1v15Encrypt, ktri.enc_key.as_bytes()) {
                return Ok(Zeroizing::new(cek));
            }
        }
        Err(SmimeError::NotForThisKey { candidates })
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
    let is_pkcs7 = ctype.starts_with(b"application/pkcs7-mime")
        || ctype.starts_with(b"application/x-pkcs7-mime");
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

/// Parses a ContentInfo holding EnvelopedData, DER first, BER otherwise.
fn parse_enveloped(cms_bytes: &[u8]) -> Result<EnvelopedData, SmimeError> {
    let info = match ContentInfo::from_der(cms_bytes) {
        Ok(info) => info,
        Err(_) => ContentInfo::from_der(&ber::to_der(cms_bytes)?)?,
    };
    if info.content_type != const_oid::db::rfc5911::ID_ENVELOPED_DATA {
        return Err(SmimeError::NotEnveloped {
            content_type: info.content_type.to_string(),
        });
    }
    Ok(info.content.decode_as::<EnvelopedData>()?)
}

/// AES-CBC decryption of the encrypted content with `cek`.
fn decrypt_content(enveloped: &EnvelopedData, cek: &[u8]) -> Result<Vec<u8>, SmimeError> {
    let eci = &enveloped.encrypted_content;
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
