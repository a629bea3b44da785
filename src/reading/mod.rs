//! Server-side reading (ARCHITECTURE.md "Server-side reading"): an
//! opted-in account's private keys, unlocked at login and held only in
//! memory, let IMAP and JMAP present its encrypted messages decrypted.
//!
//! The data flow: the store keeps each key sealed under the account's
//! password and the master key (`store::reading`); a login that has the
//! password opens them ([`unlock`]) into the [`Keyring`], which holds
//! them for that account's sessions and forgets them when the last
//! session ends or they sit idle; the IMAP and JMAP read paths pass
//! every encrypted message they serve through [`Unlocked::open`], which
//! decrypts what the keys open. Nothing decrypted is ever written back:
//! the bytes are for one reply.
//!
//! Keys in memory are zeroised when dropped (the `rsa` and elliptic-curve
//! key types zeroise themselves) and print as `<redacted>`; the process
//! turns core dumps off at start ([`forbid_core_dumps`]).

mod import;
mod keyring;
mod pkcs12;

use std::sync::Arc;

pub use import::{import_key, ImportError, KeyInput, MAX_KEY_INPUT};
pub use keyring::{sweeper, Hold, Keyring};
pub use pkcs12::Pkcs12Error;

use crate::certs::Fingerprint;
use crate::smime::{opened_message, Decryptor, Enveloped};
use crate::store::{AccountId, Credential, MailError, MailStore, OpenedKey};

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

/// Blocking: the account's keys for a request that gave `credential`
/// (already checked): those the keyring holds, else opened from the store
/// (with the password, one Argon2id evaluation; an app token opens its
/// own copy) and put there. `None` when reading is off or no key opens.
pub fn unlock(
    store: &MailStore,
    ring: &Keyring,
    account: AccountId,
    credential: Credential<'_>,
) -> Result<Option<Arc<Unlocked>>, MailError> {
    let Some(own) = token_copy(store, account, credential)? else {
        return Ok(None);
    };
    if let Some(keys) = ring.get(account) {
        return Ok(Some(keys));
    }
    let keys = match own {
        Some(keys) => Some(keys),
        None => open(store, account, credential)?,
    };
    Ok(keys.map(|keys| ring.insert(account, keys)))
}

/// Blocking: as [`unlock`], for a session that holds the keys until it
/// ends (an IMAP login).
pub fn unlock_held(
    store: &MailStore,
    ring: &Arc<Keyring>,
    account: AccountId,
    credential: Credential<'_>,
) -> Result<Option<Hold>, MailError> {
    let Some(own) = token_copy(store, account, credential)? else {
        return Ok(None);
    };
    if let Some(hold) = ring.hold(account) {
        return Ok(Some(hold));
    }
    let keys = match own {
        Some(keys) => Some(keys),
        None => open(store, account, credential)?,
    };
    Ok(keys.map(|keys| ring.insert_held(account, keys)))
}

/// For an app token, its own copy of the keys opened first: `None` when
/// it has none, so that a token made without one never reads through keys
/// a password session unlocked. For the password, `Some(None)`: nothing
/// to check (the keyring may hold the keys already).
#[expect(
    clippy::option_option,
    reason = "no copy / nothing to check / the copy"
)]
fn token_copy(
    store: &MailStore,
    account: AccountId,
    credential: Credential<'_>,
) -> Result<Option<Option<Unlocked>>, MailError> {
    match credential {
        Credential::Password(_) => Ok(Some(None)),
        Credential::AppToken(_) => Ok(open(store, account, credential)?.map(Some)),
    }
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
        if let Some(keys) = open(store, account, Credential::Password(password))? {
            ring.insert(account, keys);
        }
    }
    Ok(())
}

/// The account's keys opened from the store with `credential`.
fn open(
    store: &MailStore,
    account: AccountId,
    credential: Credential<'_>,
) -> Result<Option<Unlocked>, MailError> {
    let opened = store.open_reading_keys(account, credential)?;
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
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "could not mark the process not dumpable");
    }
}
