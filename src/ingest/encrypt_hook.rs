//! The built-in `encrypt-at-rest` hook: a copy for an account with
//! encryption enabled is sealed as S/MIME for every usable active
//! certificate of the account, with the account's algorithm.
//!
//! Fail closed (ARCHITECTURE.md, "Data flow"): when the copy cannot be
//! encrypted — no certificate valid today, a broken certificate, an
//! internal error — the hook refuses with a temporary failure, so the MTA
//! keeps the message queued and nothing is stored in clear.

use std::time::SystemTime;

use sealmail_plugin_api::{HookError, IncomingMessage, StorageHook, Verdict};
use x509_cert::der::Decode as _;

use crate::smime::{Envelope, Recipient, Sealed};

/// The hook; stateless, certificates come with each message.
#[derive(Debug, Clone, Copy, Default)]
pub struct EncryptAtRest;

impl EncryptAtRest {
    /// Its name in `[hooks] chain`.
    pub const NAME: &'static str = "encrypt-at-rest";
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
        let envelope = envelope_for(msg)?;
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
}

/// An envelope for the recipient's certificates that are valid now.
fn envelope_for(msg: &IncomingMessage<'_>) -> Result<Envelope, HookError> {
    let recipient = &msg.recipient;
    let now = SystemTime::now();
    let usable: Vec<Recipient> = recipient
        .certificates
        .iter()
        .filter_map(|c| {
            let cert = x509_cert::Certificate::from_der(&c.der).ok()?;
            let validity = &cert.tbs_certificate.validity;
            let valid_now = validity.not_before.to_system_time() <= now && now <= validity.not_after.to_system_time();
            if !valid_now {
                tracing::warn!(account = recipient.account, fingerprint = %c.fingerprint, "certificate not valid now; skipped");
                return None;
            }
            Recipient::from_certificate(&cert).ok()
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
