//! Taking a private key from the user: parse it, find the account's
//! active certificate it belongs to, and hand it to the store as PKCS#8.
//!
//! The key arrives as an unencrypted PEM (PKCS#8, PKCS#1 or SEC 1) from
//! JMAP `PrivateKey/set` or `sealmail reading enable --key`, or inside a
//! PKCS#12 file (JMAP `pkcs12` + `pkcs12Password`). Whatever form it
//! came in, what is stored (sealed) is its PKCS#8 DER.

use std::fmt;

use crate::certs::Fingerprint;
use crate::smime::Decryptor;
use crate::store::{AccountId, MailError, MailStore, SecretBytes};

/// Largest key input accepted (a PEM RSA-16384 key is about 13 KB; a
/// PKCS#12 with a certificate chain a few KB more).
pub const MAX_KEY_INPUT: usize = 64 * 1024;

/// Why a key was not taken.
#[derive(Debug)]
pub enum ImportError {
    /// Not a private key sealmail reads.
    BadKey(String),
    /// No active certificate of the account has this key's public half.
    NoMatchingCertificate,
    /// The store refused or failed.
    Store(MailError),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::BadKey(detail) => write!(f, "{detail}"),
            ImportError::NoMatchingCertificate => f.write_str(
                "the key matches none of the account's active certificates; \
                 upload its certificate first, or activate it",
            ),
            ImportError::Store(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ImportError {}

impl From<MailError> for ImportError {
    fn from(e: MailError) -> Self {
        ImportError::Store(e)
    }
}

/// A private key as the user gives it.
#[derive(Clone, Copy)]
pub enum KeyInput<'a> {
    /// Unencrypted PEM.
    Pem(&'a str),
    /// A PKCS#12 file (DER) and its password.
    Pkcs12 {
        /// The file.
        der: &'a [u8],
        /// Its password.
        password: &'a str,
    },
}

impl fmt::Debug for KeyInput<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyInput(<redacted>)")
    }
}

/// Blocking: parses `input`, finds the account's active certificate it
/// belongs to, and returns that certificate and the key as PKCS#8 DER.
pub fn import_key(
    store: &MailStore,
    account: AccountId,
    input: KeyInput<'_>,
) -> Result<(Fingerprint, SecretBytes), ImportError> {
    let decryptor = match input {
        KeyInput::Pem(pem) => {
            if pem.len() > MAX_KEY_INPUT {
                return Err(ImportError::BadKey(format!(
                    "the key is {} bytes; at most {MAX_KEY_INPUT} are accepted",
                    pem.len()
                )));
            }
            Decryptor::from_pem(pem, None).map_err(|e| ImportError::BadKey(e.to_string()))?
        }
        KeyInput::Pkcs12 { der, password } => {
            if der.len() > MAX_KEY_INPUT {
                return Err(ImportError::BadKey(format!(
                    "the PKCS#12 file is {} bytes; at most {MAX_KEY_INPUT} are accepted",
                    der.len()
                )));
            }
            let pkcs8 = super::pkcs12::private_key(der, password)
                .map_err(|e| ImportError::BadKey(e.to_string()))?;
            Decryptor::from_pkcs8_der(&pkcs8, None)
                .map_err(|e| ImportError::BadKey(e.to_string()))?
        }
    };
    for cert in store.list_certificates(account)? {
        if !cert.is_active {
            continue;
        }
        let Ok(parsed) = <x509_cert::Certificate as der::Decode>::from_der(&cert.der) else {
            continue;
        };
        if decryptor.matches_public_key(&parsed.tbs_certificate.subject_public_key_info) {
            let der = decryptor
                .to_pkcs8_der()
                .map_err(|e| ImportError::BadKey(e.to_string()))?;
            return Ok((cert.fingerprint, SecretBytes::new(der.to_vec())));
        }
    }
    Err(ImportError::NoMatchingCertificate)
}
