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

use std::collections::HashMap;
use std::sync::Arc;

pub use import::{import_key, ImportError, KeyInput, MAX_KEY_INPUT};
pub use keyring::{sweeper, Hold, Keyring};
pub use pkcs12::Pkcs12Error;

use crate::certs::Fingerprint;
use crate::smime::{opened_message, Decryptor, Enveloped};
use crate::store::{AccountId, BlobHash, Credential, MailError, MailStore, Message, OpenedKey};

/// An account's private keys in clear, held in memory for its sessions.
pub struct Unlocked {
    account: AccountId,
    keys: Vec<(Fingerprint, Decryptor)>,
    /// The content-encryption keys of messages already opened, by stored
    /// blob. why: a client fetches a message several times (structure,
    /// then parts, then again on another device), and each private-key
    /// operation costs a millisecond or more; an AES key costs 32 bytes.
    /// Blobs are content-addressed, so one blob is one envelope and one
    /// key. Zeroised with the keys.
    opened: std::sync::Mutex<HashMap<BlobHash, zeroize::Zeroizing<Vec<u8>>>>,
}

/// Content-encryption keys remembered per account at most; the table is
/// emptied when full (refilled as messages are fetched again).
const MAX_REMEMBERED_KEYS: usize = 50_000;

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
        Self::of(account, keys)
    }

    fn of(account: AccountId, keys: Vec<(Fingerprint, Decryptor)>) -> Self {
        Self {
            account,
            keys,
            opened: std::sync::Mutex::default(),
        }
    }

    fn remembered(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<BlobHash, zeroize::Zeroizing<Vec<u8>>>> {
        // why: a std Mutex, held for one map operation, never across an await.
        self.opened.lock().unwrap_or_else(|e| e.into_inner())
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
        let keys = self
            .keys
            .iter()
            .filter(|(fp, _)| *fp != certificate)
            .cloned()
            .collect();
        Self::of(self.account, keys)
    }

    /// `raw` (stored as `blob`) decrypted, when it is an S/MIME envelope
    /// one of the keys opens; `None` when it is not S/MIME (nothing to
    /// do) or none does (logged). The content-encryption key is
    /// remembered, so the next fetch of the same message costs no
    /// private-key operation.
    pub fn open(&self, blob: BlobHash, raw: &[u8]) -> Option<Vec<u8>> {
        let enveloped = Enveloped::from_message(raw).ok()?;
        let remembered = self.remembered().get(&blob).cloned();
        if let Some(inner) = remembered.and_then(|cek| enveloped.open_with(&cek).ok()) {
            let plain = opened_message(raw, zeroize::Zeroizing::new(inner));
            return Some(plain.to_vec());
        }
        for (_, key) in &self.keys {
            let Ok(cek) = key.unwrap_content_key(&enveloped) else {
                continue;
            };
            if let Ok(inner) = enveloped.open_with(&cek) {
                let mut remembered = self.remembered();
                if remembered.len() >= MAX_REMEMBERED_KEYS {
                    remembered.clear();
                }
                remembered.insert(blob, cek);
                drop(remembered);
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

/// The bytes of the stored message `msg` as a session with `keys` is
/// served them: decrypted when it is encrypted and the keys open it, and
/// then `msg` says so (not `encrypted`, `size` of the bytes served), so
/// that sizes, searches and body structure all follow what is served.
/// The one place IMAP and JMAP turn a stored message into a served one.
pub fn present(keys: Option<&Unlocked>, msg: &mut Message, raw: Vec<u8>) -> Vec<u8> {
    match keys
        .filter(|_| msg.encrypted)
        .and_then(|k| k.open(msg.blob, &raw))
    {
        Some(plain) => {
            msg.encrypted = false;
            msg.size = plain.len() as u64;
            plain
        }
        None => raw,
    }
}

/// Blocking: the account's keys for a request that gave `credential`
/// (already checked): those the keyring holds, else opened from the store
/// (with the password, one Argon2id evaluation; an app token opens its
/// own copy) and put there. `None` when reading is off or no key opens.
pub fn unlock(
    store: &MailStore,
    ring: &Arc<Keyring>,
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
    ring: &Arc<Keyring>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smime::{Envelope, Recipient, Sealed};

    /// A key pair made with the `openssl` crate (test-time secrets) and a
    /// message sealed to its certificate.
    fn sealed_to_a_fresh_key() -> (Decryptor, Vec<u8>) {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = x509::X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", "reader").unwrap();
        let name = name.build();
        let mut cert = x509::X509Builder::new().unwrap();
        cert.set_version(2).unwrap();
        cert.set_subject_name(&name).unwrap();
        cert.set_issuer_name(&name).unwrap();
        cert.set_pubkey(&key).unwrap();
        cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        cert.sign(&key, MessageDigest::sha256()).unwrap();
        let der = cert.build().to_der().unwrap();
        let cert: x509_cert::Certificate = der::Decode::from_der(&der).unwrap();
        let envelope = Envelope::new(
            vec![Recipient::from_certificate(&cert).unwrap()],
            sealmail_plugin_api::ContentCipher::Aes256Cbc,
        )
        .unwrap();
        let Sealed::Encrypted(smime) = envelope
            .seal(b"Subject: hi\r\nContent-Type: text/plain\r\n\r\nthe secret text\r\n")
            .unwrap()
        else {
            panic!("not sealed");
        };
        let pem = String::from_utf8(key.private_key_to_pem_pkcs8().unwrap()).unwrap();
        (Decryptor::from_pem(&pem, Some(&cert)).unwrap(), smime)
    }

    #[test]
    fn a_message_opened_once_opens_again_from_its_remembered_key() {
        let (key, smime) = sealed_to_a_fresh_key();
        let keys = Unlocked::of(AccountId(1), vec![(Fingerprint::of_der(b"c"), key)]);
        let blob = BlobHash([7; 32]);
        let first = keys.open(blob, &smime).unwrap();
        assert!(String::from_utf8_lossy(&first).contains("the secret text"));
        assert_eq!(keys.remembered().len(), 1);
        assert_eq!(keys.open(blob, &smime).unwrap(), first);
        // Other keys (none here) never see what these remembered.
        let none = Unlocked::of(AccountId(1), Vec::new());
        assert!(none.open(blob, &smime).is_none());
    }
}
