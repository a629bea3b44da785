//! S/MIME at rest: what the encrypt-at-rest hook and `sealmail encrypt` do
//! to a message, and the reverse for list keys and tests.
//!
//! - [`to_crlf`] gives every message one line-ending convention before
//!   anything else reads it;
//! - [`Split`] separates the clear outer header fields from the inner MIME
//!   entity (RFC 5322 §2.2, RFC 2045 §9);
//! - [`Envelope`] builds CMS EnvelopedData (RFC 5652 §6) with AES-CBC
//!   (RFC 3565), or AuthEnvelopedData (RFC 5083) with AES-GCM (RFC 5084),
//!   and one RSA key-transport RecipientInfo (PKCS#1 v1.5, RFC 3370
//!   §4.2.1, or OAEP, RFC 3560) per RSA certificate and one ECDH
//!   key-agreement RecipientInfo (RFC 5753) per EC certificate, then
//!   renders the S/MIME message (RFC 8551 §3.3);
//! - [`already_encrypted`] recognises what must not be encrypted twice;
//! - [`Decryptor`] opens EnvelopedData and AuthEnvelopedData, DER or BER.
//!
//! Everything here is synchronous and does no I/O: callers on an async
//! runtime run it on the blocking pool.

mod auth_enveloped;
mod ber;
mod decrypt;
mod detect;
mod ecdh;
mod envelope;
mod kari;
mod line_ends;
mod oaep;
mod render;
mod rsa_kt;
mod split;

pub(crate) use ber::to_der as ber_to_der;
pub use ber::BerError;
pub use decrypt::{opened_message, smime_payload, Decryptor, Enveloped, MAX_RECIPIENT_INFOS};
pub use detect::{already_encrypted, AlreadyEncrypted};
pub use ecdh::{x963_kdf, Curve, KdfHash};
pub use envelope::{Envelope, Recipient, Sealed};
pub use kari::{KariParams, KeyWrap};
pub use line_ends::{into_crlf, to_crlf};
pub use split::Split;

/// What went wrong sealing or opening a message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmimeError {
    /// No certificate to encrypt for.
    #[error("no recipient certificate; give at least one certificate to encrypt for")]
    NoRecipients,
    /// A certificate whose key is neither RSA nor EC.
    #[error("certificate {subject} has a key of type {algorithm}; only RSA and EC (P-256, P-384, P-521) keys can receive mail encrypted at rest")]
    UnsupportedKey {
        /// Certificate subject.
        subject: String,
        /// Key algorithm OID.
        algorithm: String,
    },
    /// An EC key on a curve other than P-256, P-384 or P-521.
    #[error("certificate {subject} has an EC key on {curve}; only the curves P-256, P-384 and P-521 (named, not explicit parameters) can receive mail encrypted at rest")]
    UnsupportedCurve {
        /// Certificate subject.
        subject: String,
        /// The curve's name or OID, or "explicit parameters".
        curve: String,
    },
    /// An RSA key outside the sizes we transport keys to.
    #[error("RSA key of {bits} bits is not supported; use a key of 2048 to 8192 bits")]
    UnsupportedKeySize {
        /// Modulus size.
        bits: usize,
    },
    /// A public key that does not decode or is unusable.
    #[error("the certificate's public key is unusable ({detail}); the certificate is broken, ask its issuer for a new one")]
    BadPublicKey {
        /// What was wrong.
        detail: String,
    },
    /// A certificate that does not decode.
    #[error("certificate cannot be parsed as DER X.509 ({detail})")]
    BadCertificate {
        /// The DER error.
        detail: String,
    },
    /// A private key that does not decode.
    #[error(
        "private key cannot be read ({detail}); give an unencrypted PEM key (PKCS#8 or PKCS#1)"
    )]
    BadPrivateKey {
        /// The decoding error.
        detail: String,
    },
    /// The CMS builder failed; a bug on our side.
    #[error("could not build the CMS envelope ({detail}); this is a bug in sealmail")]
    Build {
        /// The builder's message.
        detail: String,
    },
    /// DER encoding or decoding failed.
    #[error("CMS structure is not valid DER ({0})")]
    Der(#[from] der::Error),
    /// BER input that cannot be read.
    #[error("CMS structure is not valid BER ({0})")]
    Ber(#[from] BerError),
    /// The message is not `application/(x-)pkcs7-mime`.
    #[error("message is not S/MIME encrypted (its Content-Type is {content_type:?}, not application/pkcs7-mime)")]
    NotSmime {
        /// The root content type found.
        content_type: String,
    },
    /// The S/MIME body is not base64.
    #[error("S/MIME body is not valid base64 ({detail})")]
    Base64 {
        /// The decoder's message.
        detail: String,
    },
    /// The CMS object is neither EnvelopedData nor AuthEnvelopedData.
    #[error("CMS content type {content_type} is not envelopedData (1.2.840.113549.1.7.3) or authEnvelopedData (1.2.840.113549.1.9.16.1.23)")]
    NotEnveloped {
        /// The content type OID found.
        content_type: String,
    },
    /// No RecipientInfo could be opened with this key.
    #[error("no recipient of this message matches the key ({candidates} key-transport recipients tried); it was encrypted for other certificates")]
    NotForThisKey {
        /// RecipientInfos that were tried.
        candidates: usize,
    },
    /// EnvelopedData without the encrypted content.
    #[error("EnvelopedData has detached content, which mail never uses")]
    DetachedContent,
    /// Content encryption other than AES-CBC (EnvelopedData) or AES-GCM
    /// (AuthEnvelopedData).
    #[error("content encryption algorithm {oid} is not supported here; only AES-128/192/256-CBC in EnvelopedData and AES-128/256-GCM in AuthEnvelopedData")]
    UnsupportedCipher {
        /// The algorithm OID.
        oid: String,
    },
    /// Missing or wrong IV, or a content key of the wrong length.
    #[error("content-encryption parameters are invalid (IV or key length)")]
    BadCipherParameters,
    /// Padding check failed after decryption.
    #[error("decrypted content has invalid padding: wrong key or corrupted message")]
    BadPadding,
    /// The AES-GCM tag does not match: the message was changed after it
    /// was sealed, or the key is wrong.
    #[error("the authenticated content does not verify (AES-GCM tag mismatch): the message was altered or the key is wrong")]
    NotAuthentic,
}
