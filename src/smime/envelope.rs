//! Sealing a message: CMS EnvelopedData (RFC 5652 §6) for a set of
//! recipients — or AuthEnvelopedData (RFC 5083) when the account chose
//! AES-GCM, see [`super::auth_enveloped`] — rendered as an S/MIME message
//! (RFC 8551 §3.3). Key transport is RSA PKCS#1 v1.5 (RFC 3370 §4.2.1) or
//! RSAES-OAEP (RFC 3560), as the account chose; EC certificates get
//! ephemeral-static ECDH key agreement (RFC 5753, see [`super::kari`]),
//! so one envelope may mix both kinds (a rotation from RSA to EC).
//!
//! One [`Envelope`] is built per account (its certificates turned into
//! prepared public keys once) and then seals any number of messages; every
//! call draws a fresh content key and IV.
//!
//! ```text
//! EnvelopedData ::= SEQUENCE {
//!   version CMSVersion,                         -- 0: only ktri v0; 2 with a kari
//!   recipientInfos RecipientInfos,              -- one per certificate
//!   encryptedContentInfo EncryptedContentInfo } -- id-data, AES-CBC
//! KeyTransRecipientInfo ::= SEQUENCE {
//!   version CMSVersion,  -- always set to 0 (issuerAndSerialNumber)
//!   rid RecipientIdentifier,
//!   keyEncryptionAlgorithm KeyEncryptionAlgorithmIdentifier,
//!   encryptedKey EncryptedKey }
//! ```

use cms::builder::{
    ContentEncryptionAlgorithm, EnvelopedDataBuilder, RecipientInfoBuilder, RecipientInfoType,
};
use cms::cert::IssuerAndSerialNumber;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{
    EnvelopedData, KeyTransRecipientInfo, RecipientIdentifier, RecipientInfo,
};
use der::asn1::OctetString;
use der::{Any, Decode as _, Encode};
use sealmail_plugin_api::{ContentCipher, KeyTransport};
use spki::AlgorithmIdentifierOwned;
use x509_cert::Certificate;

use super::auth_enveloped::{self, AuthEnvelopedData};
use super::detect::{already_encrypted, AlreadyEncrypted};
use super::ecdh::{Curve, EcPublicKey};
use super::render::render_smime;
use super::rsa_kt::RsaKeyTransport;
use super::split::Split;
use super::SmimeError;

/// One recipient of an envelope: who it names and the key it wraps the
/// content key with.
#[derive(Clone, Debug)]
pub struct Recipient {
    rid: IssuerAndSerialNumber,
    key: RecipientKey,
}

/// How the content key reaches a recipient.
#[derive(Clone, Debug)]
enum RecipientKey {
    /// RSA key transport (KeyTransRecipientInfo).
    Rsa(RsaKeyTransport),
    /// Ephemeral-static ECDH (KeyAgreeRecipientInfo, RFC 5753).
    Ec(EcPublicKey),
}

impl Recipient {
    /// A recipient for an RSA certificate or an EC one on P-256, P-384 or
    /// P-521. The certificate's validity is not checked here: that is the
    /// job of [`crate::certs`].
    pub fn from_certificate(cert: &Certificate) -> Result<Self, SmimeError> {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let subject = || cert.tbs_certificate.subject.to_string();
        let key_bits =
            spki.subject_public_key
                .as_bytes()
                .ok_or_else(|| SmimeError::BadPublicKey {
                    detail: "subjectPublicKey has unused bits".into(),
                })?;
        let key = match spki.algorithm.oid {
            const_oid::db::rfc5912::RSA_ENCRYPTION => {
                RecipientKey::Rsa(RsaKeyTransport::from_pkcs1_der(key_bits)?)
            }
            const_oid::db::rfc5912::ID_EC_PUBLIC_KEY => {
                let named = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok());
                let curve = named.as_ref().and_then(Curve::from_oid).ok_or_else(|| {
                    SmimeError::UnsupportedCurve {
                        subject: subject(),
                        curve: named.map_or_else(
                            || "explicit parameters".into(),
                            |oid| crate::certs::curve_name(&oid),
                        ),
                    }
                })?;
                RecipientKey::Ec(EcPublicKey::new(curve, key_bits)?)
            }
            other => {
                return Err(SmimeError::UnsupportedKey {
                    subject: subject(),
                    algorithm: other.to_string(),
                })
            }
        };
        Ok(Self {
            rid: IssuerAndSerialNumber {
                issuer: cert.tbs_certificate.issuer.clone(),
                serial_number: cert.tbs_certificate.serial_number.clone(),
            },
            key,
        })
    }

    /// A recipient for a DER-encoded certificate.
    pub fn from_der(der_bytes: &[u8]) -> Result<Self, SmimeError> {
        let cert = Certificate::from_der(der_bytes).map_err(|e| SmimeError::BadCertificate {
            detail: e.to_string(),
        })?;
        Self::from_certificate(&cert)
    }
}

/// The result of [`Envelope::seal`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sealed {
    /// The S/MIME message to store.
    Encrypted(Vec<u8>),
    /// The input was already encrypted and is to be stored as it is.
    AlreadyEncrypted(AlreadyEncrypted),
}

/// Seals messages for a fixed set of recipients.
#[derive(Clone, Debug)]
pub struct Envelope {
    recipients: Vec<Recipient>,
    cipher: ContentCipher,
    key_transport: KeyTransport,
}

impl Envelope {
    /// An envelope for `recipients` (at least one) using `cipher` and
    /// PKCS#1 v1.5 key transport.
    pub fn new(recipients: Vec<Recipient>, cipher: ContentCipher) -> Result<Self, SmimeError> {
        if recipients.is_empty() {
            return Err(SmimeError::NoRecipients);
        }
        Ok(Self {
            recipients,
            cipher,
            key_transport: KeyTransport::default(),
        })
    }

    /// The same envelope with `key_transport` for its RSA recipients.
    #[must_use]
    pub fn with_key_transport(mut self, key_transport: KeyTransport) -> Self {
        self.key_transport = key_transport;
        self
    }

    /// Number of recipients.
    pub fn recipient_count(&self) -> usize {
        self.recipients.len()
    }

    /// Seals `raw` (an RFC 5322 message): the clear header fields stay
    /// outside, the inner entity is encrypted. An already encrypted
    /// message comes back as [`Sealed::AlreadyEncrypted`].
    pub fn seal(&self, raw: &[u8]) -> Result<Sealed, SmimeError> {
        let split = Split::new(raw);
        if let Some(kind) = already_encrypted(raw, &split) {
            return Ok(Sealed::AlreadyEncrypted(kind));
        }
        let cms = self.encrypt(&split.inner_entity())?;
        let smime = render_smime(&split, cms.smime_type(), |out| cms.write(out))?;
        Ok(Sealed::Encrypted(smime))
    }

    /// Encrypts `content` and returns the DER `ContentInfo` holding the
    /// EnvelopedData (or AuthEnvelopedData).
    pub fn encrypt_der(&self, content: &[u8]) -> Result<Vec<u8>, SmimeError> {
        let cms = self.encrypt(content)?;
        let mut out = Vec::new();
        cms.write(&mut VecWriter(&mut out))?;
        Ok(out)
    }

    /// Encrypts `content` for every recipient.
    fn encrypt(&self, content: &[u8]) -> Result<Cms, SmimeError> {
        let algorithm = match self.cipher {
            ContentCipher::Aes128Cbc => ContentEncryptionAlgorithm::Aes128Cbc,
            ContentCipher::Aes256Gcm | ContentCipher::Aes128Gcm => {
                let sealed = auth_enveloped::seal(self.cipher, content, |cek| {
                    self.recipients
                        .iter()
                        .map(|r| recipient_info(r, self.key_transport, cek))
                        .collect()
                })?;
                return Ok(Cms::AuthEnveloped(sealed));
            }
            _ => ContentEncryptionAlgorithm::Aes256Cbc,
        };
        let mut builder =
            EnvelopedDataBuilder::new(None, content, algorithm, None).map_err(build_error)?;
        for recipient in &self.recipients {
            builder
                .add_recipient_info(KtriBuilder {
                    recipient,
                    transport: self.key_transport,
                })
                .map_err(build_error)?;
        }
        builder
            .build_with_rng(&mut rand::thread_rng())
            .map(Cms::Enveloped)
            .map_err(build_error)
    }
}

/// A sealed CMS object, before it is written.
enum Cms {
    Enveloped(EnvelopedData),
    AuthEnveloped(AuthEnvelopedData),
}

impl Cms {
    /// The `smime-type` parameter of the outer Content-Type (RFC 8551
    /// §3.2.2; RFC 5083 §3 for authEnveloped-data).
    fn smime_type(&self) -> &'static [u8] {
        match self {
            Self::Enveloped(_) => b"enveloped-data",
            Self::AuthEnveloped(_) => b"authEnveloped-data",
        }
    }

    fn write(&self, out: &mut impl der::Writer) -> Result<(), SmimeError> {
        match self {
            Self::Enveloped(e) => {
                write_content_info(const_oid::db::rfc5911::ID_ENVELOPED_DATA, e, out)
            }
            Self::AuthEnveloped(a) => {
                write_content_info(const_oid::db::rfc5911::ID_CT_AUTH_ENVELOPED_DATA, a, out)
            }
        }
    }
}

/// A [`der::Writer`] appending to a vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl der::Writer for VecWriter<'_> {
    fn write(&mut self, slice: &[u8]) -> der::Result<()> {
        self.0.extend_from_slice(slice);
        Ok(())
    }
}

/// `ContentInfo ::= SEQUENCE { contentType, content [0] EXPLICIT ANY }`
/// around `body` (of type `oid`), written straight to `out`.
///
/// why not `ContentInfo { content: Any::encode_from(..) }.to_der()`: that
/// copies the whole ciphertext twice more (into the `Any`, then into the
/// output), a measurable share of sealing a large message. When sealing,
/// `out` base64-encodes as it goes, so the DER never exists in one piece.
fn write_content_info(
    oid: der::asn1::ObjectIdentifier,
    body: &impl Encode,
    out: &mut impl der::Writer,
) -> Result<(), SmimeError> {
    use der::{Header, Tag, TagNumber};
    let body_len = body.encoded_len()?;
    let explicit = Header::new(
        Tag::ContextSpecific {
            constructed: true,
            number: TagNumber::N0,
        },
        body_len,
    )?;
    let seq_len = (oid.encoded_len()? + (explicit.encoded_len()? + body_len)?)?;
    Header::new(Tag::Sequence, seq_len)?.encode(out)?;
    oid.encode(out)?;
    explicit.encode(out)?;
    body.encode(out)?;
    Ok(())
}

/// `cms::builder::Error` does not implement `std::error::Error`; keep its
/// text.
fn build_error(e: cms::builder::Error) -> SmimeError {
    SmimeError::Build {
        detail: e.to_string(),
    }
}

/// Our `RecipientInfoBuilder`: key transport through [`RsaKeyTransport`]
/// or key agreement through [`super::kari`].
struct KtriBuilder<'a> {
    recipient: &'a Recipient,
    transport: KeyTransport,
}

impl RecipientInfoBuilder for KtriBuilder<'_> {
    fn recipient_info_type(&self) -> RecipientInfoType {
        match self.recipient.key {
            RecipientKey::Rsa(_) => RecipientInfoType::Ktri,
            RecipientKey::Ec(_) => RecipientInfoType::Kari,
        }
    }

    // why it matters: the builder derives EnvelopedData's version from
    // these (RFC 5652 §6.1: 2 as soon as one kari, version 3, is there).
    fn recipient_info_version(&self) -> CmsVersion {
        match self.recipient.key {
            RecipientKey::Rsa(_) => CmsVersion::V0,
            RecipientKey::Ec(_) => CmsVersion::V3,
        }
    }

    fn build(
        &mut self,
        content_encryption_key: &[u8],
    ) -> Result<RecipientInfo, cms::builder::Error> {
        recipient_info(self.recipient, self.transport, content_encryption_key)
            .map_err(|e| cms::builder::Error::Builder(e.to_string()))
    }
}

/// The RecipientInfo carrying `cek` to `recipient`: KeyTransRecipientInfo
/// for RSA (with `transport`), KeyAgreeRecipientInfo for EC.
fn recipient_info(
    recipient: &Recipient,
    transport: KeyTransport,
    cek: &[u8],
) -> Result<RecipientInfo, SmimeError> {
    let rsa = match &recipient.key {
        RecipientKey::Rsa(rsa) => rsa,
        RecipientKey::Ec(ec) => return super::kari::seal(ec, &recipient.rid, cek),
    };
    let mut rng = rand::thread_rng();
    let (wrapped, key_enc_alg) = match transport {
        KeyTransport::RsaOaep => (
            rsa.encrypt_oaep(&mut rng, cek)?,
            super::oaep::sha256_algorithm()?,
        ),
        _ => (
            rsa.encrypt(&mut rng, cek)?,
            // RFC 3370 §4.2.1: rsaEncryption parameters MUST be NULL.
            AlgorithmIdentifierOwned {
                oid: const_oid::db::rfc5912::RSA_ENCRYPTION,
                parameters: Some(Any::null()),
            },
        ),
    };
    Ok(RecipientInfo::Ktri(KeyTransRecipientInfo {
        version: CmsVersion::V0,
        rid: RecipientIdentifier::IssuerAndSerialNumber(recipient.rid.clone()),
        key_enc_alg,
        enc_key: OctetString::new(wrapped)?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cms::content_info::ContentInfo;

    #[test]
    fn hand_written_content_info_equals_the_der_crate_s() {
        let mut rng = rand::thread_rng();
        let key = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pkcs1 = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&key.to_public_key()).unwrap();
        let recipient = Recipient {
            rid: IssuerAndSerialNumber {
                issuer: Default::default(),
                serial_number: x509_cert::serial_number::SerialNumber::new(&[1]).unwrap(),
            },
            key: RecipientKey::Rsa(RsaKeyTransport::from_pkcs1_der(pkcs1.as_bytes()).unwrap()),
        };
        let envelope = Envelope::new(vec![recipient], ContentCipher::Aes128Cbc).unwrap();
        for size in [0usize, 100, 70_000] {
            let der_bytes = envelope.encrypt_der(&vec![b'x'; size]).unwrap();
            let info = ContentInfo::from_der(&der_bytes).unwrap();
            assert_eq!(info.content_type, const_oid::db::rfc5911::ID_ENVELOPED_DATA);
            let enveloped: EnvelopedData = info.content.decode_as().unwrap();
            let reference = ContentInfo {
                content_type: const_oid::db::rfc5911::ID_ENVELOPED_DATA,
                content: Any::encode_from(&enveloped).unwrap(),
            };
            assert_eq!(reference.to_der().unwrap(), der_bytes);
        }
    }

    #[test]
    fn every_cipher_and_key_transport_opens_with_the_key() {
        let mut rng = rand::thread_rng();
        let key = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let pkcs1 = rsa::pkcs1::EncodeRsaPublicKey::to_pkcs1_der(&key.to_public_key()).unwrap();
        let recipient = Recipient {
            rid: IssuerAndSerialNumber {
                issuer: Default::default(),
                serial_number: x509_cert::serial_number::SerialNumber::new(&[1]).unwrap(),
            },
            key: RecipientKey::Rsa(RsaKeyTransport::from_pkcs1_der(pkcs1.as_bytes()).unwrap()),
        };
        let decryptor = super::super::Decryptor::new(key, None);
        let ciphers = [
            (
                ContentCipher::Aes256Cbc,
                const_oid::db::rfc5911::ID_ENVELOPED_DATA,
            ),
            (
                ContentCipher::Aes128Cbc,
                const_oid::db::rfc5911::ID_ENVELOPED_DATA,
            ),
            (
                ContentCipher::Aes256Gcm,
                const_oid::db::rfc5911::ID_CT_AUTH_ENVELOPED_DATA,
            ),
            (
                ContentCipher::Aes128Gcm,
                const_oid::db::rfc5911::ID_CT_AUTH_ENVELOPED_DATA,
            ),
        ];
        for (cipher, content_type) in ciphers {
            for transport in [KeyTransport::RsaPkcs1v15, KeyTransport::RsaOaep] {
                let envelope = Envelope::new(vec![recipient.clone()], cipher)
                    .unwrap()
                    .with_key_transport(transport);
                let der_bytes = envelope.encrypt_der(b"inner entity").unwrap();
                let info = ContentInfo::from_der(&der_bytes).unwrap();
                assert_eq!(info.content_type, content_type, "{cipher} {transport}");
                assert_eq!(
                    decryptor.decrypt_cms(&der_bytes).unwrap(),
                    b"inner entity",
                    "{cipher} {transport}"
                );
            }
        }
    }
}
