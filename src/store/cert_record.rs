//! Certificate records: what the caller passes to add a certificate and
//! what is stored (the DER plus the facts `certs` parsed from it).

use serde::{Deserialize, Serialize};

use super::records::{fp_bytes, Record};
use crate::certs::Fingerprint;

/// A certificate to add to an account, with the facts the caller parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCertificate {
    /// SHA-256 of `der`; checked against it.
    pub fingerprint: Fingerprint,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial_number: String,
    /// E-mail addresses of the certificate.
    pub email_addresses: Vec<String>,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// `RSA`, `EC`, ...
    pub key_algorithm: String,
    /// Key size in bits, when known.
    pub key_size: Option<u32>,
    /// Free text from the user.
    pub description: String,
    /// Whether it is used for encryption.
    pub is_active: bool,
}

impl NewCertificate {
    /// The record for `der` from what `certs` found in it.
    pub fn from_info(der: Vec<u8>, info: &crate::certs::CertInfo, description: String) -> Self {
        Self {
            fingerprint: info.fingerprint,
            der,
            subject: info.subject.clone(),
            issuer: info.issuer.clone(),
            serial_number: info.serial_number.clone(),
            email_addresses: info.email_addresses.clone(),
            not_before: info.not_before.unix_timestamp(),
            not_after: info.not_after.unix_timestamp(),
            key_algorithm: info.key_algorithm.clone(),
            key_size: info.key_size,
            description,
            is_active: true,
        }
    }
}

/// A certificate stored on an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Certificate {
    /// SHA-256 of the DER (JMAP `id` and `fingerprint`).
    #[serde(with = "fp_bytes")]
    pub fingerprint: Fingerprint,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial_number: String,
    /// E-mail addresses of the certificate.
    pub email_addresses: Vec<String>,
    /// Validity start, unix seconds.
    pub not_before: i64,
    /// Validity end, unix seconds.
    pub not_after: i64,
    /// `RSA`, `EC`, ...
    pub key_algorithm: String,
    /// Key size in bits, when known.
    pub key_size: Option<u32>,
    /// Free text from the user.
    pub description: String,
    /// Whether it is used for encryption.
    pub is_active: bool,
    /// When it was added, unix seconds.
    pub added: i64,
}

impl Record for Certificate {
    const VERSION: u8 = 1;
}

impl Certificate {
    pub(crate) fn from_new(c: NewCertificate, added: i64) -> Self {
        Self {
            fingerprint: c.fingerprint,
            der: c.der,
            subject: c.subject,
            issuer: c.issuer,
            serial_number: c.serial_number,
            email_addresses: c.email_addresses,
            not_before: c.not_before,
            not_after: c.not_after,
            key_algorithm: c.key_algorithm,
            key_size: c.key_size,
            description: c.description,
            is_active: c.is_active,
            added,
        }
    }
}
