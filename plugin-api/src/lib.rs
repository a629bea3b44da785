//! The storage-hook API of sealmail.
//!
//! Every recipient copy of a delivered message passes a chain of
//! [`StorageHook`]s before it reaches the store. A hook sees one copy at a
//! time — the recipient account, its encryption settings and active
//! certificates, the raw bytes, and where the message came from — and
//! returns what to store, or a rejection that the LMTP server turns into the
//! reply for that recipient.
//!
//! This crate is deliberately small and has no dependencies: no storage
//! engine, no async runtime. A hook is plain synchronous code that can be
//! unit-tested by building an [`IncomingMessage`] by hand. The host runs
//! hooks on its blocking pool, so a hook may do CPU-heavy work (encryption)
//! but should not block on the network.
//!
//! # The host fails closed
//!
//! Whatever goes wrong in a hook, the copy is *not* stored: the recipient
//! gets a temporary LMTP failure (the MTA keeps the message and retries),
//! the account's audit log gets a "delivery refused" line and the host
//! logs an error. In particular:
//!
//! - **Panic.** The host catches it (`catch_unwind`) and answers
//!   `451 4.3.0` for that recipient. The server, the blocking thread and
//!   the other recipients carry on; the hook is called again for later
//!   copies. The panic message is not logged (it may quote the message).
//! - **Time budget.** Each call of [`StorageHook::before_store`] has a
//!   budget (30 s by default). A hook cannot be stopped, so the host
//!   measures each call when it returns: a call over budget is refused
//!   with `451 4.3.0` *even if it succeeded*. The host also stops waiting
//!   for the whole copy after one budget per hook plus one: the recipient
//!   then gets `451 4.3.0` at once, and whatever the hook returns later is
//!   discarded (nothing is stored).
//! - **Unknown verdict.** [`Verdict`] is `#[non_exhaustive]`: a plugin
//!   built against a newer version of this crate may return a verdict the
//!   host does not know. The host refuses the copy with `451 4.3.5`
//!   (system incorrectly configured) rather than guess.

use std::borrow::Cow;
use std::fmt;

/// Content-encryption algorithm chosen by an account for encryption at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ContentCipher {
    /// AES-256 in CBC mode (`id-aes256-CBC`), the default.
    #[default]
    Aes256Cbc,
    /// AES-128 in CBC mode (`id-aes128-CBC`).
    Aes128Cbc,
    /// AES-256 in GCM mode (`id-aes256-GCM`), sealed as AuthEnvelopedData
    /// (RFC 5083, RFC 5084).
    Aes256Gcm,
    /// AES-128 in GCM mode (`id-aes128-GCM`), sealed as AuthEnvelopedData.
    Aes128Gcm,
}

impl ContentCipher {
    /// The name used in the JMAP extension and in the CLI's tables.
    pub fn jmap_name(self) -> &'static str {
        match self {
            Self::Aes256Cbc => "AES-256-CBC",
            Self::Aes128Cbc => "AES-128-CBC",
            Self::Aes256Gcm => "AES-256-GCM",
            Self::Aes128Gcm => "AES-128-GCM",
        }
    }

    /// Whether the cipher authenticates the content (AuthEnvelopedData).
    pub fn is_authenticated(self) -> bool {
        matches!(self, Self::Aes256Gcm | Self::Aes128Gcm)
    }
}

impl fmt::Display for ContentCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jmap_name())
    }
}

/// How the content-encryption key reaches an RSA recipient
/// (KeyTransRecipientInfo's `keyEncryptionAlgorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum KeyTransport {
    /// RSAES-PKCS1-v1_5 (`rsaEncryption`, RFC 3370 §4.2.1), the default:
    /// every S/MIME client opens it.
    #[default]
    RsaPkcs1v15,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 3560, RFC 8017 §7.1).
    RsaOaep,
}

impl KeyTransport {
    /// The name used in the JMAP extension (`keyTransport`) and in the
    /// CLI's tables.
    pub fn jmap_name(self) -> &'static str {
        match self {
            Self::RsaPkcs1v15 => "RSAES-PKCS1-v1_5",
            Self::RsaOaep => "RSAES-OAEP",
        }
    }
}

impl fmt::Display for KeyTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jmap_name())
    }
}

/// The encryption-at-rest settings of the recipient account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct EncryptionSettings {
    /// Whether mail for this account must be stored encrypted.
    pub enabled: bool,
    /// Content-encryption algorithm for new copies.
    pub cipher: ContentCipher,
    /// Key transport to the account's RSA certificates.
    pub key_transport: KeyTransport,
}

impl EncryptionSettings {
    /// Settings for an account that has opted in with `cipher` (and the
    /// default key transport).
    pub fn enabled(cipher: ContentCipher) -> Self {
        Self {
            enabled: true,
            cipher,
            key_transport: KeyTransport::default(),
        }
    }

    /// The same settings with `key_transport`.
    #[must_use]
    pub fn with_key_transport(mut self, key_transport: KeyTransport) -> Self {
        self.key_transport = key_transport;
        self
    }
}

/// One active certificate of the recipient account, as the host stored it.
///
/// The host has validated it against the certificate rules when it was
/// added; a hook may still find it unusable now (for instance expired since).
#[derive(Clone, PartialEq, Eq)]
pub struct RecipientCertificate<'a> {
    /// The DER encoding of the X.509 certificate.
    pub der: Cow<'a, [u8]>,
    /// SHA-256 of `der`, lowercase hex without colons.
    pub fingerprint: Cow<'a, str>,
}

impl fmt::Debug for RecipientCertificate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecipientCertificate")
            .field("fingerprint", &self.fingerprint)
            .field("der_bytes", &self.der.len())
            .finish()
    }
}

/// The account a copy is being stored for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Recipient<'a> {
    /// The account's primary address.
    pub account: &'a str,
    /// The address the MTA named in `RCPT TO` (the account, an alias, or a
    /// list address that expanded to this account).
    pub envelope_to: &'a str,
    /// The account's encryption settings.
    pub encryption: EncryptionSettings,
    /// The account's active certificates; empty when it has none.
    pub certificates: Vec<RecipientCertificate<'a>>,
}

impl<'a> Recipient<'a> {
    /// A recipient without encryption and without certificates.
    pub fn new(account: &'a str) -> Self {
        Self {
            account,
            envelope_to: account,
            encryption: EncryptionSettings::default(),
            certificates: Vec::new(),
        }
    }

    /// The same recipient with encryption `settings` and `certificates`.
    #[must_use]
    pub fn with_encryption(
        mut self,
        settings: EncryptionSettings,
        certificates: Vec<RecipientCertificate<'a>>,
    ) -> Self {
        self.encryption = settings;
        self.certificates = certificates;
        self
    }
}

/// Where a message came from.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeliveryMeta<'a> {
    /// The `MAIL FROM` reverse path; empty for a bounce.
    pub mail_from: &'a str,
    /// The LHLO name the MTA gave, if the copy arrived over LMTP.
    pub lhlo: Option<&'a str>,
    /// How the message entered sealmail.
    pub source: Source,
}

/// How a message entered sealmail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Source {
    /// Delivered by an MTA over LMTP.
    #[default]
    Lmtp,
    /// Appended by an IMAP client.
    ImapAppend,
    /// Imported over JMAP (`Email/import`).
    JmapImport,
    /// Brought in by the operator (`sealmail import`, `sealmail reencrypt`).
    Migration,
}

/// One recipient copy of a message, as a hook sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IncomingMessage<'a> {
    /// The account the copy is for.
    pub recipient: Recipient<'a>,
    /// Delivery metadata.
    pub meta: DeliveryMeta<'a>,
    /// The raw RFC 5322 message, possibly already changed by an earlier
    /// hook. It came from the network: treat it as hostile, never panic on
    /// it.
    pub raw: Cow<'a, [u8]>,
}

impl<'a> IncomingMessage<'a> {
    /// A copy of `raw` for `recipient`, with default metadata.
    pub fn new(recipient: Recipient<'a>, raw: impl Into<Cow<'a, [u8]>>) -> Self {
        Self {
            recipient,
            meta: DeliveryMeta::default(),
            raw: raw.into(),
        }
    }
}

/// What a hook decided for one copy.
///
/// A host that does not know a verdict refuses the copy (`451 4.3.5`);
/// it never treats it as [`Verdict::Accept`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// Store the bytes as they came in (or as the previous hook left them).
    Accept,
    /// Store these bytes instead.
    Replace(Vec<u8>),
}

/// Why a hook refused a copy. The host turns it into the recipient's LMTP
/// reply (4.x.x or 5.x.x) and into the account's audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HookError {
    /// Try again later: the copy is not stored and the MTA keeps the
    /// message queued (LMTP `451 4.x.x`).
    Temporary {
        /// Enhanced status code, such as `4.7.0`.
        status: &'static str,
        /// One line for the MTA's log and the audit log.
        reason: String,
    },
    /// Refuse for good: the MTA bounces the message (LMTP `554 5.x.x`).
    Permanent {
        /// Enhanced status code, such as `5.7.1`.
        status: &'static str,
        /// One line for the bounce and the audit log.
        reason: String,
    },
}

impl HookError {
    /// A temporary failure with enhanced status `status`.
    pub fn temporary(status: &'static str, reason: impl Into<String>) -> Self {
        Self::Temporary {
            status,
            reason: reason.into(),
        }
    }

    /// A permanent failure with enhanced status `status`.
    pub fn permanent(status: &'static str, reason: impl Into<String>) -> Self {
        Self::Permanent {
            status,
            reason: reason.into(),
        }
    }

    /// The one-line reason.
    pub fn reason(&self) -> &str {
        match self {
            Self::Temporary { reason, .. } | Self::Permanent { reason, .. } => reason,
        }
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Temporary { status, reason } => write!(f, "temporary failure {status}: {reason}"),
            Self::Permanent { status, reason } => write!(f, "permanent failure {status}: {reason}"),
        }
    }
}

impl std::error::Error for HookError {}

/// A step in the storage-hook chain.
///
/// Runs on the host's blocking pool, once per recipient copy, in the order
/// the operator configured (`[hooks] chain = [...]`). The output of one hook
/// is the input of the next. A panic or a call over the host's time budget
/// refuses the copy with a temporary failure (see the crate docs).
pub trait StorageHook: Send + Sync + fmt::Debug {
    /// The name the operator uses for this hook in `[hooks] chain`.
    fn name(&self) -> &str;

    /// Decide what to store for `msg`.
    ///
    /// `msg.raw` comes from the network: treat it as hostile and never panic
    /// on it. Returning an error stops the chain for this recipient only.
    /// Return within the host's time budget (30 s by default): a later
    /// answer, even `Ok`, refuses the copy. May be called from several
    /// threads at once, for different copies.
    fn before_store(&self, _msg: &IncomingMessage<'_>) -> Result<Verdict, HookError> {
        Ok(Verdict::Accept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Upper;

    impl StorageHook for Upper {
        fn name(&self) -> &str {
            "upper"
        }
        fn before_store(&self, msg: &IncomingMessage<'_>) -> Result<Verdict, HookError> {
            if msg.recipient.encryption.enabled && msg.recipient.certificates.is_empty() {
                return Err(HookError::temporary("4.7.0", "no certificate"));
            }
            Ok(Verdict::Replace(msg.raw.to_ascii_uppercase()))
        }
    }

    #[test]
    fn a_hook_is_testable_without_a_server() {
        let plain = IncomingMessage::new(
            Recipient::new("a@example.org"),
            &b"Subject: x\r\n\r\nhi"[..],
        );
        assert_eq!(
            Upper.before_store(&plain),
            Ok(Verdict::Replace(b"SUBJECT: X\r\n\r\nHI".to_vec()))
        );
        let opted_in = IncomingMessage::new(
            Recipient::new("a@example.org").with_encryption(
                EncryptionSettings::enabled(ContentCipher::Aes128Cbc),
                vec![],
            ),
            &b"x"[..],
        );
        let err = Upper.before_store(&opted_in).unwrap_err();
        assert_eq!(err.reason(), "no certificate");
        assert!(err.to_string().starts_with("temporary failure 4.7.0"));
    }

    #[test]
    fn default_hook_accepts() {
        #[derive(Debug)]
        struct Noop;
        impl StorageHook for Noop {
            fn name(&self) -> &str {
                "noop"
            }
        }
        let msg = IncomingMessage::new(Recipient::new("a@example.org"), &b"x"[..]);
        assert_eq!(Noop.before_store(&msg), Ok(Verdict::Accept));
        assert_eq!(ContentCipher::default().to_string(), "AES-256-CBC");
        assert_eq!(KeyTransport::default().to_string(), "RSAES-PKCS1-v1_5");
        let oaep = EncryptionSettings::enabled(ContentCipher::Aes256Gcm)
            .with_key_transport(KeyTransport::RsaOaep);
        assert_eq!(
            (oaep.cipher.to_string(), oaep.key_transport.to_string()),
            ("AES-256-GCM".to_string(), "RSAES-OAEP".to_string())
        );
    }
}
