//! Key custody for server-side reading (ARCHITECTURE.md "Server-side
//! reading"): the private keys an account hands over, stored only sealed.
//!
//! # Two locks on every key
//!
//! A key's PKCS#8 DER is sealed twice:
//!
//! 1. with AES-256-GCM under a key-encryption key derived with Argon2id
//!    from the account's password and a per-account salt ([`kek`]);
//! 2. the result again with the server master key (`master_key`).
//!
//! Both seals carry associated data naming the account and the
//! certificate, so a sealed key copied to another account or slot does not
//! open. The database alone (no password, no master key), the master key
//! alone (no password) and the password alone (no master key, no database)
//! each open nothing. Only a login, which has the password in hand,
//! opens them (`crate::reading` holds the result in memory).
//!
//! # What the operator can and cannot do
//!
//! The operator sets passwords without knowing the old one, so a reset
//! cannot re-wrap the keys: [`MailStore::set_password`] drops them and
//! switches reading off in the same transaction, and the user hands the
//! key over again. (sealmail has no way for a user to change their own
//! password yet; when it has, it re-wraps the keys with the old password.)
//!
//! The record is one per account (`Key::Reading`, in the settings column
//! family), so a login reads it with one get and runs Argon2id once for
//! every key it holds.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::error::{bug, MailError};
use super::keys::Key;
use super::log::{AuditKind, ChangeKind, ChangedObject};
use super::mail::{now_secs, MailStore};
use super::master_key::SecretBytes;
use super::records::{AccountId, Record};
use super::tokens::TokenId;
use super::txn::Tx;
use crate::certs::Fingerprint;

/// Private keys one account may hold (rotation needs two; a few spare).
pub const MAX_READING_KEYS: usize = 10;
const NONCE_LEN: usize = 12;
const SALT_LEN: usize = 16;
/// Argon2id cost of the key-encryption key: memory KiB, passes, lanes.
/// why these: OWASP's first recommended set (19 MiB, 2 passes), the
/// cost of one more password check per login of an account that reads
/// on the server.
const ARGON_M_KIB: u32 = 19 * 1024;
const ARGON_T: u32 = 2;
const ARGON_P: u32 = 1;

/// The stored record: whether reading is on, and the wrapped keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct ReadingRecord {
    enabled: bool,
    salt: [u8; SALT_LEN],
    m_kib: u32,
    t: u32,
    p: u32,
    keys: Vec<WrappedKey>,
    /// Copies of the keys for app tokens, each sealed under its secret.
    tokens: Vec<TokenCopy>,
}

/// The keys an app token opens: those held when it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TokenCopy {
    token: u64,
    keys: Vec<WrappedKey>,
}

impl Record for ReadingRecord {
    const VERSION: u8 = 1;
}

/// One sealed private key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct WrappedKey {
    certificate: Fingerprint,
    created: i64,
    sealed: Vec<u8>,
}

/// A held private key as shown: never its material.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldKey {
    /// The fingerprint of the certificate the key belongs to.
    pub certificate: Fingerprint,
    /// When it was handed over, unix seconds.
    pub created: i64,
}

/// An account's server-side reading as shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadingStatus {
    /// Whether messages are presented decrypted (`serverSideReading`).
    pub enabled: bool,
    /// The keys held, by certificate.
    pub keys: Vec<HeldKey>,
}

/// A private key opened at login: its certificate and PKCS#8 DER.
#[derive(Debug)]
pub struct OpenedKey {
    /// The certificate's fingerprint.
    pub certificate: Fingerprint,
    /// PKCS#8 DER of the private key. Do not log it.
    pub pkcs8: SecretBytes,
}

/// The key-encryption key for `password` under the record's parameters.
fn kek(rec: &ReadingRecord, password: &str) -> Result<Zeroizing<[u8; 32]>, MailError> {
    let params = Params::new(rec.m_kib, rec.t, rec.p, Some(32))
        .map_err(|e| bug(format!("argon2 parameters: {e}")))?;
    let mut out = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &rec.salt, out.as_mut())
        .map_err(|e| bug(format!("argon2: {e}")))?;
    Ok(out)
}

/// What both seals of a key are bound to.
fn aad(id: AccountId, certificate: &Fingerprint) -> Vec<u8> {
    let mut out = b"sealmail reading key\0".to_vec();
    out.extend(id.0.to_be_bytes());
    out.extend(certificate.as_bytes());
    out
}

/// What both seals of an app token's copy of a key are bound to.
fn token_aad(id: AccountId, token: TokenId, certificate: &Fingerprint) -> Vec<u8> {
    let mut out = aad(id, certificate);
    out.extend(b"\0token\0");
    out.extend(token.0.to_be_bytes());
    out
}

/// The key-encryption key of an app token's copy. why no slow KDF: the
/// secret holds 256 random bits (`tokens`), beyond any guessing.
fn token_kek(secret: &str) -> Zeroizing<[u8; 32]> {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(b"sealmail reading token kek\0");
    h.update(secret.as_bytes());
    Zeroizing::new(h.finalize().into())
}

/// How a login proves itself, and so what opens the keys.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// The account's password.
    Password(&'a str),
    /// An app token's secret (`tokens`).
    AppToken(&'a str),
}

impl std::fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credential::Password(_) => "Password(<redacted>)",
            Credential::AppToken(_) => "AppToken(<redacted>)",
        })
    }
}

/// `secret` sealed with AES-256-GCM under `kek` for `aad`, then with the
/// master key.
fn wrap(
    master: &super::master_key::MasterKey,
    kek: &[u8; 32],
    aad: &[u8],
    secret: &[u8],
) -> Result<Vec<u8>, MailError> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let inner = Aes256Gcm::new(kek.into())
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad })
        .map_err(|_| bug("AES-GCM seal failed"))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend(inner);
    master.seal(aad, &wrapped)
}

/// What [`wrap`] sealed; `None` when either key or `aad` is wrong.
fn unwrap(
    master: &super::master_key::MasterKey,
    kek: &[u8; 32],
    aad: &[u8],
    sealed: &[u8],
) -> Option<Vec<u8>> {
    let inner = master.open(aad, sealed)?;
    let (nonce, ct) = inner.expose().split_at_checked(NONCE_LEN)?;
    Aes256Gcm::new(kek.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .ok()
}

impl MailStore {
    fn reading_record(&self, id: AccountId) -> Result<ReadingRecord, MailError> {
        Ok(self.load(&Key::Reading(id))?.unwrap_or_default())
    }

    /// Whether reading is on and which keys are held.
    pub fn reading_status(&self, id: AccountId) -> Result<ReadingStatus, MailError> {
        self.account_record(id)?;
        let rec = self.reading_record(id)?;
        Ok(ReadingStatus {
            enabled: rec.enabled && !rec.keys.is_empty(),
            keys: rec
                .keys
                .iter()
                .map(|k| HeldKey {
                    certificate: k.certificate,
                    created: k.created,
                })
                .collect(),
        })
    }

    /// Stores `pkcs8` (the private key of the account's certificate
    /// `certificate`; the caller has checked that they match) sealed under
    /// `password`, which must be the account's password. Costs two
    /// Argon2id evaluations, outside any lock.
    pub fn add_reading_key(
        &self,
        id: AccountId,
        password: &str,
        certificate: Fingerprint,
        pkcs8: &SecretBytes,
    ) -> Result<HeldKey, MailError> {
        if !self.verify_password(id, password)? {
            return Err(MailError::WrongPassword);
        }
        if !self
            .list_certificates(id)?
            .iter()
            .any(|c| c.fingerprint == certificate)
        {
            return Err(MailError::CertificateNotFound {
                fingerprint: certificate,
            });
        }
        let mut fresh = self.reading_record(id)?;
        if fresh.keys.is_empty() {
            // why a new salt: with no key held the old one protects nothing.
            rand::rngs::OsRng.fill_bytes(&mut fresh.salt);
            (fresh.m_kib, fresh.t, fresh.p) = (ARGON_M_KIB, ARGON_T, ARGON_P);
        }
        let kek = kek(&fresh, password)?;
        let aad = aad(id, &certificate);
        let key = WrappedKey {
            certificate,
            created: now_secs(),
            sealed: wrap(&self.master_key, &kek, &aad, pkcs8.expose())?,
        };
        let held = HeldKey {
            certificate,
            created: key.created,
        };
        self.update_account(id, |tx| {
            let mut rec = self.reading_record(id)?;
            if rec.keys.is_empty() {
                rec = fresh.clone();
                rec.keys.clear();
            } else if rec.salt != fresh.salt {
                // why: another request replaced every key meanwhile; this
                // key was wrapped under the old salt.
                return Err(MailError::Store(super::error::StoreError::Conflict {
                    detail: "the account's reading keys changed meanwhile; try again".into(),
                }));
            }
            if rec.keys.iter().any(|k| k.certificate == certificate) {
                return Err(MailError::DuplicateReadingKey {
                    fingerprint: certificate,
                });
            }
            if rec.keys.len() >= MAX_READING_KEYS {
                return Err(MailError::TooManyReadingKeys {
                    limit: MAX_READING_KEYS,
                });
            }
            rec.keys.push(key.clone());
            let details = certificate.to_string();
            self.put_reading(tx, id, &rec, AuditKind::ReadingKeyAdded, details)
        })?;
        Ok(held)
    }

    /// Removes the key held for `certificate`; reading goes off with the
    /// last one.
    pub fn remove_reading_key(
        &self,
        id: AccountId,
        certificate: Fingerprint,
    ) -> Result<(), MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.reading_record(id)?;
            let before = rec.keys.len();
            rec.keys.retain(|k| k.certificate != certificate);
            if rec.keys.len() == before {
                return Err(MailError::ReadingKeyNotFound {
                    fingerprint: certificate,
                });
            }
            for copy in &mut rec.tokens {
                copy.keys.retain(|k| k.certificate != certificate);
            }
            rec.tokens.retain(|c| !c.keys.is_empty());
            rec.enabled &= !rec.keys.is_empty();
            let details = certificate.to_string();
            self.put_reading(tx, id, &rec, AuditKind::ReadingKeyRemoved, details)
        })
    }

    /// Switches reading on or off; on needs a held key
    /// ([`MailError::NoReadingKey`]).
    pub fn set_server_side_reading(&self, id: AccountId, on: bool) -> Result<(), MailError> {
        self.update_account(id, |tx| {
            let mut rec = self.reading_record(id)?;
            if on && rec.keys.is_empty() {
                return Err(MailError::NoReadingKey);
            }
            if rec.enabled == on {
                return Ok(());
            }
            rec.enabled = on;
            let kind = if on {
                AuditKind::ReadingEnabled
            } else {
                AuditKind::ReadingDisabled
            };
            self.put_reading(tx, id, &rec, kind, String::new())
        })
    }

    /// Writes `rec` with its change-log entry (the account's
    /// EncryptionSettings change) and audit line.
    fn put_reading(
        &self,
        tx: &mut Tx,
        id: AccountId,
        rec: &ReadingRecord,
        kind: AuditKind,
        details: String,
    ) -> Result<(), MailError> {
        let mut account = self.account_record(id)?;
        tx.put(&Key::Reading(id), rec)?;
        tx.change(
            id,
            &mut account,
            ChangeKind::Updated,
            ChangedObject::Settings,
        )?;
        tx.audit(id, &mut account, now_secs(), kind, details)?;
        tx.put(&Key::Account(id), &account)
    }

    /// Inside a password change by the operator: the keys cannot be
    /// re-wrapped without the old password, so they go, and reading with
    /// them. Returns whether there were any.
    pub(crate) fn drop_reading_keys(&self, tx: &mut Tx, id: AccountId) -> Result<bool, MailError> {
        if self.load::<ReadingRecord>(&Key::Reading(id))?.is_none() {
            return Ok(false);
        }
        tx.delete(&Key::Reading(id));
        Ok(true)
    }

    /// Gives the app token `token` (secret `secret`, just made) its own
    /// copy of `keys` (opened with the password of the request that made
    /// it), so that a login with the token opens them too. Keys handed
    /// over later are not in it.
    pub fn add_token_reading_copy(
        &self,
        id: AccountId,
        token: TokenId,
        secret: &str,
        keys: &[OpenedKey],
    ) -> Result<(), MailError> {
        if keys.is_empty() {
            return Ok(());
        }
        let kek = token_kek(secret);
        let mut copy = TokenCopy {
            token: token.0,
            keys: Vec::with_capacity(keys.len()),
        };
        for key in keys {
            let aad = token_aad(id, token, &key.certificate);
            copy.keys.push(WrappedKey {
                certificate: key.certificate,
                created: now_secs(),
                sealed: wrap(&self.master_key, &kek, &aad, key.pkcs8.expose())?,
            });
        }
        self.update_account(id, |tx| {
            let mut rec = self.reading_record(id)?;
            rec.tokens.retain(|c| c.token != token.0);
            rec.tokens.push(copy.clone());
            tx.put(&Key::Reading(id), &rec)
        })
    }

    /// Inside the removal of an app token: its copy goes with it.
    pub(crate) fn drop_token_reading_copy(
        &self,
        tx: &mut Tx,
        id: AccountId,
        token: TokenId,
    ) -> Result<(), MailError> {
        let Some(mut rec) = self.load::<ReadingRecord>(&Key::Reading(id))? else {
            return Ok(());
        };
        let before = rec.tokens.len();
        rec.tokens.retain(|c| c.token != token.0);
        if rec.tokens.len() != before {
            tx.put(&Key::Reading(id), &rec)?;
        }
        Ok(())
    }

    /// The account's keys opened with `credential` (already checked by
    /// the login), when reading is on; empty when it is off. A key that
    /// does not open (the master key was replaced) is left out with a
    /// warning. With the password, costs one Argon2id evaluation when
    /// reading is on; an app token opens its own copy.
    pub fn open_reading_keys(
        &self,
        id: AccountId,
        credential: Credential<'_>,
    ) -> Result<Vec<OpenedKey>, MailError> {
        let rec = self.reading_record(id)?;
        if !rec.enabled || rec.keys.is_empty() {
            return Ok(Vec::new());
        }
        let (kek, keys, token) = match credential {
            Credential::Password(password) => (kek(&rec, password)?, rec.keys.as_slice(), None),
            Credential::AppToken(secret) => {
                let Some((account, token)) = super::tokens::parse_secret(secret) else {
                    return Ok(Vec::new());
                };
                let Some(copy) = rec.tokens.iter().find(|c| c.token == token.0) else {
                    return Ok(Vec::new());
                };
                if account != id {
                    return Ok(Vec::new());
                }
                (token_kek(secret), copy.keys.as_slice(), Some(token))
            }
        };
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let aad = match token {
                Some(t) => token_aad(id, t, &key.certificate),
                None => aad(id, &key.certificate),
            };
            let opened = unwrap(&self.master_key, &kek, &aad, &key.sealed);
            match opened {
                Some(der) => out.push(OpenedKey {
                    certificate: key.certificate,
                    pkcs8: SecretBytes::new(der),
                }),
                None => tracing::warn!(
                    account = id.0,
                    certificate = %key.certificate,
                    "a server-side reading key does not open with this password and master key; \
                     the user should hand it over again"
                ),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
