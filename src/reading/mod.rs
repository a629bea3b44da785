//! Server-side reading (ARCHITECTURE.md "Server-side reading"): an
//! opted-in account's private keys, unlocked at login and held only in
//! memory, let IMAP and JMAP present its encrypted messages decrypted.
//!
//! The data flow: the store keeps each key sealed under the account's
//! password and the master key (`store::reading`); a login that has the
//! password opens them ([`unlock`]) into the [`Keyring`], which holds
//! them for that account's sessions and forgets them when the last
//! session ends or they sit idle; the IMAP and JMAP read paths pass
//! every stored message through [`present`], which decrypts what the
//! keys open. Nothing decrypted is ever written back: `present` returns
//! bytes for one reply.
//!
//! Keys in memory are zeroised when dropped (the `rsa` and elliptic-curve
//! key types zeroise themselves) and print as `<redacted>`; the process
//! turns core dumps off at start ([`forbid_core_dumps`]).

mod import;
mod keyring;
mod pkcs12;

use std::sync::Arc;

pub use import::{import_key, ImportError, KeyInput, MAX_KEY_INPUT};
pub use pkcs12::Pkcs12Error;
pub use keyring::{sweeper, Hold, Keyring};

use crate::certs::Fingerprint;
use crate::smime::{opened_message, Decryptor, Enveloped};
use crate::store::{AccountId, MailError, MailStore, OpenedKey};

/// An account's private keys in clear, held in memory for its sessions.
pub struct Unlocked {
    account: AccountId,
    keys: Vec<(Fingerprint, Decryptor)>,
}

impl std::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlocked")
            .field("account", &self.account)
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Unlocked {
    /// The keys `opened` at login, each with its certificate (for the
    /// recipient identifier) when the account still has it.
    pub fn new(store: &MailStore, account: AccountId, opened: Vec<OpenedKey>) -> Self {
        let certs = store.list_certificates(account).unwrap_or_default();
        let mut keys = Vec::with_capacity(opened.len());
        for key in opened {
            let cert = certs
                .iter()
                .find(|c| c.fingerprint == key.certificate)
                .and_then(|c| x509_cert::der::Decode::from_der(&c.der).ok());
            match Decryptor::from_pkcs8_der(key.pkcs8.expose(), cert.as_ref()) {
                Ok(d) => keys.push((key.certificate, d)),
                Err(e) => tracing::warn!(
                    account = account.0,
                    certificate = %key.certificate,
                    error = %e,
                    "a server-side reading key opened but cannot be used"
                ),
            }
        }
        Self { account, keys }
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The certificates of the keys held.
    pub(crate) fn certificates(&self) -> impl Iterator<Item = Fingerprint> + '_ {
        self.keys.iter().map(|(fp, _)| *fp)
    }

    /// The same keys without the one for `certificate`.
    pub fn without(&self, certificate: Fingerprint) -> Self {
        Self {
            account: self.account,
            keys: self
                .keys
                .iter()
                .filter(|(fp, _)| *fp != certificate)
                .cloned()
                .collect(),
        }
    }

    /// `raw` decrypted, when it is an S/MIME envelope one of the keys
    /// opens; `None` when it is not S/MIME (nothing to do) or none does
    /// (logged).
    pub fn open(&self, raw: &[u8]) -> Option<Vec<u8>> {
        let enveloped = Enveloped::from_message(raw).ok()?;
        for (_, key) in &self.keys {
            if let Ok(inner) = key.open(&enveloped) {
                let plain = opened_message(raw, zeroize::Zeroizing::new(inner));
                return Some(plain.to_vec());
            }
        }
        tracing::info!(
            account = self.account.0,
            keys = self.keys.len(),
            "server-side reading: no held key opens this message; served as stored"
        );
        None
    }
}

/// The bytes of a stored message as a session with `keys` sees them:
/// decrypted when `keys` open it, otherwise as stored.
pub fn present(raw: Vec<u8>, keys: Option<&Unlocked>) -> Vec<u8> {
    match keys.and_then(|k| k.open(&raw)) {
        Some(plain) => plain,
        None => raw,
    }
}

/// Blocking: the account's keys for a request that gave `password`
/// (already checked): those the keyring holds, else opened from the store
/// (one Argon2id evaluation) and put there. `None` when reading is off or
/// no key opens.
pub fn unlock(
    store: &MailStore,
    ring: &Keyring,
    account: AccountId,
    password: &str,
) -> Result<Option<Arc<Unlocked>>, MailError> {
    if let Some(keys) = ring.get(account) {
        return Ok(Some(keys));
    }
    Ok(open(store, account, password)?.map(|keys| ring.insert(account, keys)))
}

/// Blocking: as [`unlock`], for a session that holds the keys until it
/// ends (an IMAP login).
pub fn unlock_held(
    store: &MailStore,
    ring: &Arc<Keyring>,
    account: AccountId,
    password: &str,
) -> Result<Option<Hold>, MailError> {
    if let Some(hold) = ring.hold(account) {
        return Ok(Some(hold));
    }
    Ok(open(store, account, password)?.map(|keys| ring.insert_held(account, keys)))
}

/// Blocking: after a key was added, the keys this node holds for the
/// account (if any) replaced by all of them, opened with `password`;
/// sessions holding the old ones carry over.
pub fn refresh(
    store: &MailStore,
    ring: &Keyring,
    account: AccountId,
    password: &str,
) -> Result<(), MailError> {
    if ring.holds(account) {
        if let Some(keys) = open(store, account, password)? {
            ring.insert(account, keys);
        }
    }
    Ok(())
}

/// The account's keys opened from the store with `password`.
fn open(store: &MailStore, account: AccountId, password: &str) -> Result<Option<Unlocked>, MailError> {
    let opened = store.open_reading_keys(account, password)?;
    if opened.is_empty() {
        return Ok(None);
    }
    let keys = Unlocked::new(store, account, opened);
    Ok((!keys.is_empty()).then_some(keys))
}

/// Turns core dumps of this process off, so that keys in memory never
/// reach a core file, and makes it not dumpable (also no `ptrace` by
/// other processes of the same user). Called once by `serve`.
pub fn forbid_core_dumps() {
    if let Err(e) = rlimit::setrlimit(rlimit::Resource::CORE, 0, 0) {
        tracing::warn!(error = %e, "could not turn core dumps off");
    }
    if let Err(e) = rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable) {
        tracing::warn!(error = %e, "could not mark the process not dumpable");
    }
}
