//! The built-in `encrypt-at-rest` hook: a copy for an account with
//! encryption enabled is sealed as S/MIME for every usable active
//! certificate of the account, with the account's algorithm.
//!
//! Fail closed (ARCHITECTURE.md, "Data flow"): when the copy cannot be
//! encrypted — no certificate valid today, a broken certificate, an
//! internal error — the hook refuses with a temporary failure, so the MTA
//! keeps the message queued and nothing is stored in clear.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use sealmail_plugin_api::{HookError, IncomingMessage, RecipientCertificate, StorageHook, Verdict};
use x509_cert::der::Decode as _;

use crate::metrics::Encryption;
use crate::smime::{Envelope, Recipient, Sealed};

/// The hook. Certificates come with each message; what it keeps is only
/// a cache of the recipient keys it prepared from them.
#[derive(Debug, Clone, Default)]
pub struct EncryptAtRest {
    prepared: Arc<Prepared>,
}

impl EncryptAtRest {
    /// Its name in `[hooks] chain`.
    pub const NAME: &'static str = "encrypt-at-rest";
}

/// Recipient keys prepared from certificates, by the certificate's DER.
///
/// why: parsing the certificate and preparing its RSA key (the Montgomery
/// constants) was paid again for every copy; a list or a many-RCPT
/// delivery names the same few hundred certificates again and again.
/// Keyed by the whole DER, not by a fingerprint the caller hands in, so
/// that a wrong fingerprint can never pick another certificate's key.
#[derive(Debug, Default)]
struct Prepared(Mutex<HashMap<Vec<u8>, Arc<Key>>>);

/// Certificates kept at most; past it the cache starts over. A prepared
/// 2048-bit key with its issuer name takes about 2 KiB, so the cache
/// stays under 10 MiB while covering a large list.
const PREPARED_MAX: usize = 4096;

/// One prepared certificate.
#[derive(Debug)]
struct Key {
    recipient: Recipient,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Prepared {
    /// The prepared key of `c`; `None` when the certificate cannot be
    /// parsed or its key cannot receive mail.
    fn get(&self, c: &RecipientCertificate<'_>) -> Option<Arc<Key>> {
        let der: &[u8] = &c.der;
        if let Some(key) = self.lock().get(der) {
            return Some(Arc::clone(key));
        }
        let cert = x509_cert::Certificate::from_der(der).ok()?;
        let validity = &cert.tbs_certificate.validity;
        let key = Arc::new(Key {
            not_before: validity.not_before.to_system_time(),
            not_after: validity.not_after.to_system_time(),
            recipient: Recipient::from_certificate(&cert).ok()?,
        });
        let mut map = self.lock();
        if map.len() >= PREPARED_MAX {
            map.clear();
        }
        map.insert(der.to_vec(), Arc::clone(&key));
        Some(key)
    }

    // why: the map holds only finished entries (inserted whole), so a
    // panic elsewhere cannot leave it half-changed.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Arc<Key>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Enhanced status for "cannot encrypt now" (RFC 3463 4.7.0: security or
/// policy status, persistent transient failure).
const TEMP_SECURITY: &str = "4.7.0";

impl StorageHook for EncryptAtRest {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn before_store(&self, msg: &IncomingMessage<'_>) -> Result<Verdict, HookError> {
        let recipient = &msg.recipient;
        if !recipient.encryption.enabled {
            return Ok(Verdict::Accept);
        }
        let verdict = seal(&self.prepared, msg);
        let outcome = match &verdict {
            Ok(Verdict::Replace(_)) => Encryption::Encrypted,
            Ok(_) => Encryption::AlreadyEncrypted,
            Err(_) => Encryption::Failed,
        };
        crate::metrics::encryption(outcome, recipient.encryption.cipher);
        verdict
    }
}

/// The copy sealed for the recipient's usable certificates, or passed on
/// as it is when it came encrypted.
fn seal(prepared: &Prepared, msg: &IncomingMessage<'_>) -> Result<Verdict, HookError> {
    let recipient = &msg.recipient;
    let envelope = envelope_for(prepared, msg)?;
    match envelope.seal(&msg.raw) {
        Ok(Sealed::Encrypted(bytes)) => Ok(Verdict::Replace(bytes)),
        Ok(Sealed::AlreadyEncrypted(kind)) => {
            tracing::debug!(account = recipient.account, kind = ?kind, "already encrypted; stored as is");
            Ok(Verdict::Accept)
        }
        Err(e) => Err(HookError::temporary(
            TEMP_SECURITY,
            format!("cannot encrypt for <{}>: {e}", recipient.account),
        )),
    }
}

/// An envelope for the recipient's certificates that are valid now.
fn envelope_for(prepared: &Prepared, msg: &IncomingMessage<'_>) -> Result<Envelope, HookError> {
    let recipient = &msg.recipient;
    let now = SystemTime::now();
    let usable: Vec<Recipient> = recipient
        .certificates
        .iter()
        .filter_map(|c| {
            let key = prepared.get(c)?;
            let valid_now = key.not_before <= now && now <= key.not_after;
            if !valid_now {
                tracing::warn!(account = recipient.account, fingerprint = %c.fingerprint, "certificate not valid now; skipped");
                return None;
            }
            Some(key.recipient.clone())
        })
        .collect();
    if usable.is_empty() {
        return Err(HookError::temporary(
            TEMP_SECURITY,
            format!(
                "<{}> has encryption enabled but no usable certificate (all expired, inactive or unreadable); mail is held until a valid certificate is added",
                recipient.account
            ),
        ));
    }
    Envelope::new(usable, recipient.encryption.cipher)
        .map(|e| e.with_key_transport(recipient.encryption.key_transport))
        .map_err(|e| HookError::temporary(TEMP_SECURITY, e.to_string()))
}
