//! Account management that combines the certificate rules with the store:
//! what `sealmail cert add`, `encryption enable`, `list key add` (through
//! the management API) and the JMAP encryption extension all do, written
//! once so that every door gives the same answer and the same message.

use std::time::SystemTime;

use crate::certs::{self, CertError, Fingerprint, ParsedCert, Policy};
use crate::smime::{Decryptor, SmimeError};
use crate::store::{
    Account, Certificate, Cipher, EncryptionSettings, KeyTransport, ListKeyInfo, MailError,
    MailStore, NewCertificate, SecretBytes,
};

/// Why a management operation was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManageError {
    /// The certificate breaks a rule or cannot be read (boxed: a rule
    /// violation carries several strings, and every `Result` here would
    /// grow to its size).
    #[error(transparent)]
    Cert(Box<CertError>),
    /// The store refused (unknown account, last active certificate, ...) or failed.
    #[error(transparent)]
    Store(#[from] MailError),
    /// A list key that cannot be read.
    #[error(transparent)]
    Key(#[from] SmimeError),
    /// A list key whose private half does not belong to its certificate.
    #[error("the private key does not belong to certificate {fingerprint}; give the key the certificate was issued for")]
    KeyMismatch {
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
    },
    /// Adding the certificates would take the account past its limit.
    #[error("the account has {have} certificates and this upload adds {adding}; an account may hold at most {limit}; remove certificates it no longer needs first")]
    TooManyCertificates {
        /// Certificates the account holds.
        have: usize,
        /// End-entity certificates in the upload.
        adding: usize,
        /// [`MAX_CERTIFICATES`].
        limit: usize,
    },
    /// A certificate description that is not one line of plain text.
    #[error("the certificate description {0}; give one line of plain text of at most {MAX_DESCRIPTION_CHARS} characters (it is a label shown in `cert list` and in mail clients)")]
    BadDescription(DescriptionFault),
    /// An algorithm name that is not one of the four.
    #[error(
        "unknown algorithm {given:?}; use \"AES-256-CBC\" (aes256), \"AES-128-CBC\" (aes128), \"AES-256-GCM\" (aes256-gcm) or \"AES-128-GCM\" (aes128-gcm)"
    )]
    UnknownAlgorithm {
        /// What was given.
        given: String,
    },
    /// A key transport name that is not one of the two.
    #[error(
        "unknown key transport {given:?}; use \"RSAES-PKCS1-v1_5\" (pkcs1) or \"RSAES-OAEP\" (oaep)"
    )]
    UnknownKeyTransport {
        /// What was given.
        given: String,
    },
}

impl From<CertError> for ManageError {
    fn from(e: CertError) -> Self {
        Self::Cert(Box::new(e))
    }
}

impl ManageError {
    /// Whether the caller can fix it (as opposed to a server fault).
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Store(e) => e.is_user_error(),
            _ => true,
        }
    }
}

/// Certificates one account may hold (ARCHITECTURE.md). why a limit: every
/// certificate adds an RSA operation to each message the account
/// receives, so the count bounds one account's cost per delivery.
pub const MAX_CERTIFICATES: usize = 20;

/// The rules' view of `account` now: its addresses, its certificates.
fn policy_inputs(
    store: &MailStore,
    account: &Account,
) -> Result<(Vec<String>, Vec<Fingerprint>), MailError> {
    let mut addresses = vec![account.address.clone()];
    addresses.extend(account.aliases.iter().cloned());
    let existing = store
        .list_certificates(account.id)?
        .iter()
        .map(|c| c.fingerprint)
        .collect();
    Ok((addresses, existing))
}

/// Checks every end-entity certificate in `file` (PEM, DER or PKCS#7)
/// against the rules for `account` and adds those that pass; a file with
/// any failing certificate adds nothing.
pub fn add_certificates(
    store: &MailStore,
    account: &Account,
    file: &[u8],
    description: &str,
) -> Result<Vec<Certificate>, ManageError> {
    check_description(description)?;
    let (addresses, existing) = policy_inputs(store, account)?;
    let policy = Policy {
        now: SystemTime::now(),
        addresses: Some(&addresses),
        existing: &existing,
    };
    let accepted = certs::recipients(file, &policy)?;
    // why counted here and per certificate: every door (JMAP, the CLI)
    // goes through this function, and a bundle adds each of its members.
    if existing.len() + accepted.len() > MAX_CERTIFICATES {
        return Err(ManageError::TooManyCertificates {
            have: existing.len(),
            adding: accepted.len(),
            limit: MAX_CERTIFICATES,
        });
    }
    let mut added = Vec::with_capacity(accepted.len());
    for cert in &accepted {
        added.push(store.add_certificate(account.id, new_certificate(cert, description))?);
    }
    Ok(added)
}

/// Longest certificate description, in characters. why: a description
/// is a label ("laptop, 2026") shown in one cell of `cert list` and in
/// clients' certificate lists; 200 is ample for that, keeps a listing of
/// the 20 certificates an account may hold readable, and bounds what a
/// user can make every listing carry.
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// What is wrong with a certificate description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DescriptionFault {
    /// A control, bidi or line-separator character ([`crate::text::is_control`]).
    Control(char),
    /// More than [`MAX_DESCRIPTION_CHARS`] characters.
    TooLong(usize),
}

impl std::fmt::Display for DescriptionFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Control(c) => write!(
                f,
                "contains the control character U+{:04X} (line breaks, tabs, escape sequences and bidi overrides are refused: they would rewrite the terminal or the listing that shows it)",
                u32::from(*c)
            ),
            Self::TooLong(n) => write!(f, "is {n} characters long"),
        }
    }
}

/// Refuses a description that could rewrite the terminal or listing it
/// is shown in, or that is longer than a label needs. Free text a user
/// chose is refused at input rather than cleaned, so that what they see
/// is what they typed.
pub fn check_description(description: &str) -> Result<(), ManageError> {
    if let Some(c) = description.chars().find(|&c| crate::text::is_control(c)) {
        return Err(ManageError::BadDescription(DescriptionFault::Control(c)));
    }
    let n = description.chars().count();
    if n > MAX_DESCRIPTION_CHARS {
        return Err(ManageError::BadDescription(DescriptionFault::TooLong(n)));
    }
    Ok(())
}

/// What the store records of a checked certificate.
pub fn new_certificate(cert: &ParsedCert, description: &str) -> NewCertificate {
    NewCertificate::from_info(cert.der().to_vec(), &cert.info(), description.to_string())
}

/// Parses an algorithm as the CLI (`aes256`) or JMAP (`AES-256-CBC`) names it.
pub fn parse_algorithm(name: &str) -> Result<Cipher, ManageError> {
    match name.to_ascii_lowercase().as_str() {
        "aes256" | "aes-256-cbc" => Ok(Cipher::Aes256Cbc),
        "aes128" | "aes-128-cbc" => Ok(Cipher::Aes128Cbc),
        "aes256-gcm" | "aes-256-gcm" => Ok(Cipher::Aes256Gcm),
        "aes128-gcm" | "aes-128-gcm" => Ok(Cipher::Aes128Gcm),
        _ => Err(ManageError::UnknownAlgorithm {
            given: name.to_string(),
        }),
    }
}

/// Parses a key transport as the CLI (`oaep`) or JMAP (`RSAES-OAEP`)
/// names it.
pub fn parse_key_transport(name: &str) -> Result<KeyTransport, ManageError> {
    match name.to_ascii_lowercase().as_str() {
        "pkcs1" | "rsaes-pkcs1-v1_5" => Ok(KeyTransport::RsaPkcs1v15),
        "oaep" | "rsaes-oaep" => Ok(KeyTransport::RsaOaep),
        _ => Err(ManageError::UnknownKeyTransport {
            given: name.to_string(),
        }),
    }
}

/// A change of an account's encryption settings; `None` keeps a field.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncryptionChange<'a> {
    /// Turn encryption on or off.
    pub enabled: Option<bool>,
    /// Algorithm name (CLI or JMAP spelling).
    pub algorithm: Option<&'a str>,
    /// Key transport name (CLI or JMAP spelling).
    pub key_transport: Option<&'a str>,
    /// Whether appended mail is encrypted too.
    pub encrypt_on_append: Option<bool>,
}

/// Changes the given encryption settings of `account`; `None` keeps a
/// field (appends are encrypted unless the account opted out). The key
/// transport stays as it is; [`change_encryption`] changes it too.
pub fn update_encryption(
    store: &MailStore,
    account: &Account,
    enabled: Option<bool>,
    algorithm: Option<&str>,
    encrypt_on_append: Option<bool>,
) -> Result<EncryptionSettings, ManageError> {
    let change = EncryptionChange {
        enabled,
        algorithm,
        key_transport: None,
        encrypt_on_append,
    };
    change_encryption(store, account, change)
}

/// Applies `change` to the encryption settings of `account`.
pub fn change_encryption(
    store: &MailStore,
    account: &Account,
    change: EncryptionChange<'_>,
) -> Result<EncryptionSettings, ManageError> {
    let mut settings = store.encryption_settings(account.id)?;
    if let Some(enabled) = change.enabled {
        settings.enabled = enabled;
    }
    if let Some(name) = change.algorithm {
        settings.algorithm = parse_algorithm(name)?;
    }
    if let Some(name) = change.key_transport {
        settings.key_transport = parse_key_transport(name)?;
    }
    if let Some(on_append) = change.encrypt_on_append {
        settings.encrypt_on_append = on_append;
    }
    store.set_encryption_settings(account.id, settings)?;
    Ok(settings)
}

/// Adds a key pair to a list: the certificate (the first end-entity one in
/// `cert_file`) and its unencrypted PEM private key, which must match.
pub fn add_list_key(
    store: &MailStore,
    list: &str,
    cert_file: &[u8],
    key_pem: &str,
) -> Result<ListKeyInfo, ManageError> {
    let certs = certs::parse(cert_file).map_err(CertError::from)?;
    let count = certs.len();
    let cert = certs
        .into_iter()
        .find(|c| !c.is_ca())
        .ok_or(CertError::NoEndEntity { count })?;
    let decryptor = Decryptor::from_pem(key_pem, Some(cert.certificate()))?;
    if !key_matches(&decryptor, &cert) {
        return Err(ManageError::KeyMismatch {
            fingerprint: cert.fingerprint(),
        });
    }
    Ok(store.add_list_key(
        list,
        cert.der(),
        &SecretBytes::new(key_pem.as_bytes().to_vec()),
    )?)
}

/// Whether the decryptor's key is the certificate's public key (RSA
/// modulus and exponent, or EC curve and point).
fn key_matches(decryptor: &Decryptor, cert: &ParsedCert) -> bool {
    decryptor.matches_public_key(&cert.certificate().tbs_certificate.subject_public_key_info)
}
