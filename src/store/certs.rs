//! Certificates and encryption settings of an account.
//!
//! The store keeps what the caller (the `certs` module, via the server)
//! parsed and checked; it enforces only what needs the stored state: a
//! fingerprint is on an account at most once, and an account with
//! encryption enabled always keeps at least one active certificate
//! (ARCHITECTURE.md, "Outside contracts"). Every change writes its audit
//! event and change-log entry in the same batch.

use sealmail_plugin_api::ContentCipher;
use serde::{Deserialize, Serialize};

use super::cert_record::{Certificate, NewCertificate};
use super::error::MailError;
use super::keys::{self, Key};
use super::log::{AuditKind, ChangeKind, ChangedObject};
use super::mail::{now_secs, MailStore};
use super::records::{decode, AccountId, Record};
use super::{Cf, KeyRange, Order};
use crate::certs::Fingerprint;

/// Content-encryption algorithm, as stored (serde twin of
/// [`ContentCipher`]). New variants go at the end: postcard stores the
/// variant's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Cipher {
    /// AES-256-CBC (default).
    #[default]
    Aes256Cbc,
    /// AES-128-CBC.
    Aes128Cbc,
    /// AES-256-GCM (AuthEnvelopedData).
    Aes256Gcm,
    /// AES-128-GCM (AuthEnvelopedData).
    Aes128Gcm,
}

impl From<ContentCipher> for Cipher {
    fn from(c: ContentCipher) -> Self {
        match c {
            ContentCipher::Aes128Cbc => Cipher::Aes128Cbc,
            ContentCipher::Aes256Gcm => Cipher::Aes256Gcm,
            ContentCipher::Aes128Gcm => Cipher::Aes128Gcm,
            // why: ContentCipher is non_exhaustive; the default is the safe
            // fallback for a variant this store does not know yet.
            _ => Cipher::Aes256Cbc,
        }
    }
}

impl From<Cipher> for ContentCipher {
    fn from(c: Cipher) -> Self {
        match c {
            Cipher::Aes256Cbc => ContentCipher::Aes256Cbc,
            Cipher::Aes128Cbc => ContentCipher::Aes128Cbc,
            Cipher::Aes256Gcm => ContentCipher::Aes256Gcm,
            Cipher::Aes128Gcm => ContentCipher::Aes128Gcm,
        }
    }
}

/// Key transport to RSA certificates, as stored (serde twin of
/// [`sealmail_plugin_api::KeyTransport`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KeyTransport {
    /// RSAES-PKCS1-v1_5 (default).
    #[default]
    RsaPkcs1v15,
    /// RSAES-OAEP, SHA-256.
    RsaOaep,
}

impl From<sealmail_plugin_api::KeyTransport> for KeyTransport {
    fn from(k: sealmail_plugin_api::KeyTransport) -> Self {
        match k {
            sealmail_plugin_api::KeyTransport::RsaOaep => KeyTransport::RsaOaep,
            // why: non_exhaustive; PKCS#1 v1.5 is what every client opens.
            _ => KeyTransport::RsaPkcs1v15,
        }
    }
}

impl From<KeyTransport> for sealmail_plugin_api::KeyTransport {
    fn from(k: KeyTransport) -> Self {
        match k {
            KeyTransport::RsaPkcs1v15 => sealmail_plugin_api::KeyTransport::RsaPkcs1v15,
            KeyTransport::RsaOaep => sealmail_plugin_api::KeyTransport::RsaOaep,
        }
    }
}

/// Encryption-at-rest settings of an account (JMAP `EncryptionSettings`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptionSettings {
    /// Whether mail for the account is stored encrypted.
    pub enabled: bool,
    /// Content-encryption algorithm.
    pub algorithm: Cipher,
    /// Whether mail the client stores itself (IMAP APPEND, JMAP
    /// `Email/import`) is encrypted too. True by default: drafts and sent
    /// copies are the account's mail like any other; `false` (`encryption
    /// enable --append-in-clear`) stores them as the client sent them.
    pub encrypt_on_append: bool,
    /// Key transport to the account's RSA certificates.
    pub key_transport: KeyTransport,
}

impl Default for EncryptionSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            algorithm: Cipher::default(),
            encrypt_on_append: true,
            key_transport: KeyTransport::default(),
        }
    }
}

// why version 3: version 2 plus `key_transport`; versions 1 and 2 are
// still read (`SettingsV1`, `SettingsV2`).
impl Record for EncryptionSettings {
    const VERSION: u8 = 3;
}

/// Settings as sealmail wrote them before appends were encrypted by
/// default. Read only: upgraded on load to `encrypt_on_append = true`,
/// since `false` was the default nobody had to choose, and the safe
/// reading of an unknown choice is the one that keeps mail encrypted. An
/// account that wants appends in clear says so again (`--append-in-clear`
/// or JMAP `encryptOnAppend: false`), which writes the current version.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
struct SettingsV1 {
    enabled: bool,
    algorithm: Cipher,
    encrypt_on_append: bool,
}

impl Record for SettingsV1 {
    const VERSION: u8 = 1;
}

impl From<SettingsV1> for EncryptionSettings {
    fn from(old: SettingsV1) -> Self {
        Self {
            enabled: old.enabled,
            algorithm: old.algorithm,
            encrypt_on_append: true,
            key_transport: KeyTransport::default(),
        }
    }
}

/// Settings as sealmail wrote them before the key transport was a choice
/// (version 2, the same fields as version 1 with `encrypt_on_append`
/// meant as written). Read only: the key transport is PKCS#1 v1.5, the
/// only one there was.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
struct SettingsV2 {
    enabled: bool,
    algorithm: Cipher,
    encrypt_on_append: bool,
}

impl Record for SettingsV2 {
    const VERSION: u8 = 2;
}

impl From<SettingsV2> for EncryptionSettings {
    fn from(old: SettingsV2) -> Self {
        Self {
            enabled: old.enabled,
            algorithm: old.algorithm,
            encrypt_on_append: old.encrypt_on_append,
            key_transport: KeyTransport::default(),
        }
    }
}

impl EncryptionSettings {
    /// The settings as the storage-hook API sees them.
    pub fn to_hook(self) -> sealmail_plugin_api::EncryptionSettings {
        if self.enabled {
            sealmail_plugin_api::EncryptionSettings::enabled(self.algorithm.into())
                .with_key_transport(self.key_transport.into())
        } else {
            sealmail_plugin_api::EncryptionSettings::default()
        }
    }
}

impl MailStore {
    /// Adds a certificate. Refuses a fingerprint already on the account
    /// ([`MailError::DuplicateCertificate`]) and one that is not the
    /// SHA-256 of the DER.
    pub fn add_certificate(
        &self,
        id: AccountId,
        cert: NewCertificate,
    ) -> Result<Certificate, MailError> {
        let actual = Fingerprint::of_der(&cert.der);
        if actual != cert.fingerprint {
            return Err(MailError::FingerprintMismatch {
                given: cert.fingerprint,
                actual,
            });
        }
        let cert = Certificate::from_new(cert, now_secs());
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let key = Key::Cert(id, cert.fingerprint);
            if self.store.get(Cf::Certs, &key.encode())?.is_some() {
                return Err(MailError::DuplicateCertificate {
                    fingerprint: cert.fingerprint,
                });
            }
            tx.put(&key, &cert)?;
            let object = ChangedObject::Certificate(cert.fingerprint);
            tx.change(id, &mut rec, ChangeKind::Created, object)?;
            let details = format!("{} {}", cert.fingerprint, cert.subject);
            let kind = AuditKind::CertificateAdded;
            tx.audit(id, &mut rec, cert.added, kind, details)?;
            tx.put(&Key::Account(id), &rec)
        })?;
        Ok(cert)
    }

    /// Every certificate of the account, in fingerprint order.
    pub fn list_certificates(&self, id: AccountId) -> Result<Vec<Certificate>, MailError> {
        let range = keys::account_range(id);
        let rows =
            self.scan_records::<Certificate>(Cf::Certs, &range, Order::Forward, usize::MAX)?;
        Ok(rows.into_iter().map(|(_, c)| c).collect())
    }

    /// How many active certificates of all accounts end their validity
    /// within `within_secs` from now (and have not yet), and how many
    /// already have: the metrics' certificate gauges. Reads the records
    /// in pages, so a large store is never held in memory at once.
    pub fn count_expiring_certificates(&self, within_secs: i64) -> Result<(u64, u64), MailError> {
        const PAGE: usize = 512;
        let now = now_secs();
        let soon = now.saturating_add(within_secs);
        let (mut expiring, mut expired) = (0_u64, 0_u64);
        let mut range = KeyRange {
            start: Vec::new(),
            end: None,
        };
        loop {
            let rows = self.store.scan(Cf::Certs, &range, Order::Forward, PAGE)?;
            for (_, value) in &rows {
                let cert: Certificate = decode(Cf::Certs, value)?;
                if !cert.is_active {
                    continue;
                }
                if cert.not_after < now {
                    expired += 1;
                } else if cert.not_after < soon {
                    expiring += 1;
                }
            }
            match rows.last() {
                // why a 0 byte: the smallest key after `key`.
                Some((key, _)) if rows.len() == PAGE => {
                    range.start = key.iter().copied().chain([0]).collect();
                }
                _ => return Ok((expiring, expired)),
            }
        }
    }

    /// The certificate `fingerprint` of the account.
    pub fn get_certificate(
        &self,
        id: AccountId,
        fingerprint: Fingerprint,
    ) -> Result<Certificate, MailError> {
        self.load(&Key::Cert(id, fingerprint))?
            .ok_or(MailError::CertificateNotFound { fingerprint })
    }

    /// Removes a certificate; refused if it is the last active one of an
    /// account with encryption enabled.
    pub fn remove_certificate(
        &self,
        id: AccountId,
        fingerprint: Fingerprint,
    ) -> Result<(), MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let cert = self.get_certificate(id, fingerprint)?;
            if cert.is_active {
                self.ensure_not_last_active(id, fingerprint)?;
            }
            tx.delete(&Key::Cert(id, fingerprint));
            let object = ChangedObject::Certificate(fingerprint);
            tx.change(id, &mut rec, ChangeKind::Destroyed, object)?;
            let details = format!("{} {}", cert.fingerprint, cert.subject);
            let kind = AuditKind::CertificateRemoved;
            tx.audit(id, &mut rec, now_secs(), kind, details)?;
            tx.put(&Key::Account(id), &rec)
        })
    }

    /// Activates or deactivates a certificate; deactivating the last
    /// active one of an account with encryption enabled is refused.
    pub fn set_certificate_active(
        &self,
        id: AccountId,
        fingerprint: Fingerprint,
        active: bool,
    ) -> Result<Certificate, MailError> {
        self.update_certificate(id, fingerprint, |store, cert| {
            if cert.is_active == active {
                return Ok(None);
            }
            if !active {
                store.ensure_not_last_active(id, fingerprint)?;
            }
            cert.is_active = active;
            Ok(Some(if active {
                AuditKind::CertificateActivated
            } else {
                AuditKind::CertificateDeactivated
            }))
        })
    }

    /// Sets the free-text description of a certificate.
    pub fn set_certificate_description(
        &self,
        id: AccountId,
        fingerprint: Fingerprint,
        description: &str,
    ) -> Result<Certificate, MailError> {
        self.update_certificate(id, fingerprint, |_, cert| {
            cert.description = description.to_string();
            Ok(None)
        })
    }

    fn update_certificate(
        &self,
        id: AccountId,
        fingerprint: Fingerprint,
        f: impl Fn(&Self, &mut Certificate) -> Result<Option<AuditKind>, MailError>,
    ) -> Result<Certificate, MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let mut cert = self.get_certificate(id, fingerprint)?;
            let before = cert.clone();
            let audit = f(self, &mut cert)?;
            if cert == before {
                return Ok(cert);
            }
            tx.put(&Key::Cert(id, fingerprint), &cert)?;
            let object = ChangedObject::Certificate(fingerprint);
            tx.change(id, &mut rec, ChangeKind::Updated, object)?;
            if let Some(kind) = audit {
                tx.audit(id, &mut rec, now_secs(), kind, fingerprint.to_string())?;
            }
            tx.put(&Key::Account(id), &rec)?;
            Ok(cert)
        })
    }

    /// Errors if encryption is enabled and `fingerprint` is the only active
    /// certificate. Call inside a transaction of the account.
    fn ensure_not_last_active(
        &self,
        id: AccountId,
        fingerprint: Fingerprint,
    ) -> Result<(), MailError> {
        if !self.encryption_settings(id)?.enabled {
            return Ok(());
        }
        let others = self
            .list_certificates(id)?
            .into_iter()
            .any(|c| c.is_active && c.fingerprint != fingerprint);
        if others {
            Ok(())
        } else {
            Err(MailError::LastActiveCertificate { fingerprint })
        }
    }

    /// The account's encryption settings (disabled by default; records of
    /// older versions upgraded, see `SettingsV1` and `SettingsV2`).
    pub fn encryption_settings(&self, id: AccountId) -> Result<EncryptionSettings, MailError> {
        let key = Key::Settings(id);
        let Some(bytes) = self.store.get(Cf::Settings, &key.encode())? else {
            return Ok(EncryptionSettings::default());
        };
        match bytes.first() {
            Some(&SettingsV1::VERSION) => Ok(decode::<SettingsV1>(Cf::Settings, &bytes)?.into()),
            Some(&SettingsV2::VERSION) => Ok(decode::<SettingsV2>(Cf::Settings, &bytes)?.into()),
            _ => Ok(decode::<EncryptionSettings>(Cf::Settings, &bytes)?),
        }
    }

    /// Replaces the encryption settings. Enabling with no active
    /// certificate is refused ([`MailError::NoActiveCertificate`]).
    pub fn set_encryption_settings(
        &self,
        id: AccountId,
        settings: EncryptionSettings,
    ) -> Result<EncryptionSettings, MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.account_record(id)?;
            let old = self.encryption_settings(id)?;
            if settings.enabled && !self.list_certificates(id)?.iter().any(|c| c.is_active) {
                return Err(MailError::NoActiveCertificate);
            }
            if settings == old {
                return Ok(settings);
            }
            tx.put(&Key::Settings(id), &settings)?;
            tx.change(id, &mut rec, ChangeKind::Updated, ChangedObject::Settings)?;
            if settings.enabled != old.enabled {
                let kind = if settings.enabled {
                    AuditKind::EncryptionEnabled
                } else {
                    AuditKind::EncryptionDisabled
                };
                let details = format!("{:?}", settings.algorithm);
                tx.audit(id, &mut rec, now_secs(), kind, details)?;
            }
            tx.put(&Key::Account(id), &rec)?;
            Ok(settings)
        })
    }
}
