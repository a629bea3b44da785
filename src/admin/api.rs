//! The management API's wire types, shared by the server (`admin::routes`)
//! and its client (`cli`). JSON, camelCase, like the JMAP extension.

use serde::{Deserialize, Serialize};

use crate::store::{Account, Certificate, EncryptionSettings};

/// `POST /accounts`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountAdd {
    /// Primary address.
    pub email: String,
    /// Login password; none: the account receives mail but cannot log in.
    #[serde(default)]
    pub password: Option<String>,
    /// Further addresses that deliver to it.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// `PUT /accounts/{email}/password`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSet {
    /// The new password.
    pub password: String,
}

/// Body of `PUT /accounts/{email}/quota`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuotaSet {
    /// The account's own quota in bytes; `None` to use `limits.account_quota`.
    pub quota_bytes: Option<u64>,
}

/// An account as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    /// Primary address.
    pub email: String,
    /// Aliases.
    pub aliases: Vec<String>,
    /// Whether it can log in.
    pub has_password: bool,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
    /// Bytes of mail stored.
    pub used_bytes: u64,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            email: a.address.clone(),
            aliases: a.aliases.clone(),
            has_password: a.has_password,
            created: utc(a.created),
            used_bytes: a.used_bytes,
        }
    }
}

/// `POST /accounts/{email}/certs`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertAdd {
    /// The certificate file's bytes (PEM, DER or PKCS#7), base64.
    pub data: String,
    /// Free text shown in listings.
    #[serde(default)]
    pub description: String,
}

/// A certificate as the API (and the JMAP `Certificate` object) shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertView {
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint: String,
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// Serial number, hex.
    pub serial_number: String,
    /// E-mail addresses it names.
    pub email_addresses: Vec<String>,
    /// Validity start, RFC 3339 UTC.
    pub not_before: String,
    /// Validity end, RFC 3339 UTC.
    pub not_after: String,
    /// Key algorithm.
    pub key_algorithm: String,
    /// Key size in bits.
    pub key_size: Option<u32>,
    /// Operator's or user's note.
    pub description: String,
    /// Whether new mail is encrypted for it.
    pub is_active: bool,
}

impl From<&Certificate> for CertView {
    fn from(c: &Certificate) -> Self {
        Self {
            fingerprint: c.fingerprint.to_string(),
            subject: c.subject.clone(),
            issuer: c.issuer.clone(),
            serial_number: c.serial_number.clone(),
            email_addresses: c.email_addresses.clone(),
            not_before: utc(c.not_before),
            not_after: utc(c.not_after),
            key_algorithm: c.key_algorithm.clone(),
            key_size: c.key_size,
            description: c.description.clone(),
            is_active: c.is_active,
        }
    }
}

/// `PUT /accounts/{email}/encryption`; absent fields stay as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionSet {
    /// Turn encryption on or off.
    pub enabled: Option<bool>,
    /// `"AES-256-CBC"`, `"AES-128-CBC"`, `"AES-256-GCM"` or `"AES-128-GCM"`.
    pub algorithm: Option<String>,
    /// `"RSAES-PKCS1-v1_5"` or `"RSAES-OAEP"`.
    pub key_transport: Option<String>,
    /// Whether IMAP APPEND / JMAP import encrypt too (true unless the
    /// account opted out; `false` stores appended mail as sent).
    pub encrypt_on_append: Option<bool>,
}

/// Encryption status of an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionView {
    /// The account.
    pub email: String,
    /// Whether mail is stored encrypted.
    pub is_enabled: bool,
    /// `"AES-256-CBC"`, `"AES-128-CBC"`, `"AES-256-GCM"` or `"AES-128-GCM"`.
    pub algorithm: String,
    /// `"RSAES-PKCS1-v1_5"` (the default) or `"RSAES-OAEP"`.
    pub key_transport: String,
    /// Whether appends are encrypted too (the default).
    pub encrypt_on_append: bool,
    /// Active certificates new mail is encrypted for.
    pub active_certificates: usize,
    /// Things the user should act on (expiring certificates).
    pub warnings: Vec<String>,
}

impl EncryptionView {
    /// The view of `settings` for `email`.
    pub fn new(
        email: &str,
        settings: &EncryptionSettings,
        certs: &[Certificate],
        now: i64,
    ) -> Self {
        let active: Vec<&Certificate> = certs.iter().filter(|c| c.is_active).collect();
        let warnings = active
            .iter()
            .filter(|c| c.not_after < now + 30 * 86_400)
            .map(|c| {
                if c.not_after < now {
                    format!(
                        "certificate {} expired on {}; upload a current one",
                        c.fingerprint,
                        utc(c.not_after)
                    )
                } else {
                    format!(
                        "certificate {} expires on {}; upload its successor",
                        c.fingerprint,
                        utc(c.not_after)
                    )
                }
            })
            .collect();
        Self {
            email: email.to_string(),
            is_enabled: settings.enabled,
            algorithm: sealmail_plugin_api::ContentCipher::from(settings.algorithm)
                .jmap_name()
                .to_string(),
            key_transport: sealmail_plugin_api::KeyTransport::from(settings.key_transport)
                .jmap_name()
                .to_string(),
            encrypt_on_append: settings.encrypt_on_append,
            active_certificates: active.len(),
            warnings,
        }
    }
}

/// `POST /lists`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListAdd {
    /// The list's address.
    pub address: String,
    /// Owner address (sender of notices); default `owner-` + address local part.
    #[serde(default)]
    pub owner: Option<String>,
    /// Member addresses.
    #[serde(default)]
    pub members: Vec<String>,
}

/// `POST /lists/{address}/members`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberAdd {
    /// The member's address.
    pub email: String,
}

/// `POST /lists/{address}/keys`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListKeyAdd {
    /// Certificate file bytes, base64 (PEM or DER).
    pub cert: String,
    /// Unencrypted PEM private key (PKCS#8 or PKCS#1).
    pub key: String,
}

/// A list as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListView {
    /// The list's address.
    pub address: String,
    /// Owner address.
    pub owner: String,
    /// Members.
    pub members: Vec<String>,
    /// Fingerprints of its key pairs.
    pub keys: Vec<String>,
}

/// A mailbox, for `export`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MailboxView {
    /// Full name (`/`-separated hierarchy).
    pub name: String,
    /// Messages in it.
    pub exists: u32,
}

/// A message, for `export`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    /// IMAP UID.
    pub uid: u32,
    /// Maildir info letters (`D`, `F`, `R`, `S`, `T`), sorted.
    pub maildir_flags: String,
    /// Internal date, unix seconds.
    pub internal_date: i64,
    /// Blob id (SHA-256 hex) to download the content as stored.
    pub blob: String,
    /// Whether the stored content is S/MIME encrypted.
    pub encrypted: bool,
}

/// `POST /accounts/{email}/import`: one message of `sealmail import`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRequest {
    /// Target mailbox, created when missing.
    pub mailbox: String,
    /// The message exactly as read from the Maildir file or the mbox
    /// (after `>From ` un-escaping), base64.
    pub data: String,
    /// Maildir info letters (`D`, `F`, `R`, `S`, `T`); others are ignored.
    #[serde(default)]
    pub maildir_flags: String,
    /// Internal date, unix seconds; none: now.
    #[serde(default)]
    pub internal_date: Option<i64>,
    /// Where the message came from (file name, mbox position), for the
    /// messages of a refusal.
    #[serde(default)]
    pub source: String,
}

/// Answer to an [`ImportRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportResult {
    /// The UID it was stored under; `None`: the account already had
    /// this exact message from an earlier import, nothing was stored.
    pub uid: Option<u32>,
    /// Whether the stored copy is S/MIME.
    pub encrypted: bool,
}

/// Where a re-encryption run stands: the last message examined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReencryptCursor {
    /// Mailbox id.
    pub mailbox: u32,
    /// UID in that mailbox.
    pub uid: u32,
}

/// `POST /accounts/{email}/reencrypt`: encrypt the next page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReencryptRequest {
    /// Continue after this message; none: from the start.
    #[serde(default)]
    pub cursor: Option<ReencryptCursor>,
    /// At most this many messages to encrypt in this call.
    pub limit: u32,
}

/// Answer to a [`ReencryptRequest`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReencryptPage {
    /// Messages encrypted by this call.
    pub encrypted: u32,
    /// Plaintext messages that needed nothing after all (expunged or
    /// changed meanwhile).
    pub skipped: u32,
    /// Where to continue; none: every mailbox is done.
    pub cursor: Option<ReencryptCursor>,
}

/// `GET /accounts/{email}/reencrypt`: what a run would do.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReencryptStatus {
    /// Messages of the account stored in clear.
    pub plaintext: u64,
    /// All messages of the account.
    pub total: u64,
}

/// `POST /backup`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupRequest {
    /// The backup directory, absolute; created when missing, refused when
    /// not empty.
    pub dir: String,
}

/// Answer to a [`BackupRequest`]: the backup is complete.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupView {
    /// Where it was written.
    pub dir: String,
    /// Files in it, besides the manifest.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// When the cut was taken, RFC 3339 UTC.
    pub created: String,
}

/// An app token as the API shows it: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    /// 16 hex digits.
    pub id: String,
    /// What it was called.
    pub name: String,
    /// When it was made (RFC 3339 UTC).
    pub created: String,
    /// When it last logged in, to the minute (RFC 3339 UTC).
    pub last_used: Option<String>,
}

impl From<&crate::store::AppToken> for TokenView {
    fn from(t: &crate::store::AppToken) -> Self {
        Self {
            id: t.id.to_string(),
            name: t.name.clone(),
            created: utc(t.created),
            last_used: t.last_used.map(utc),
        }
    }
}

/// Body of `POST /accounts/{email}/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenAdd {
    /// A name to tell it apart (may be empty).
    #[serde(default)]
    pub name: String,
}

/// Answer to `POST /accounts/{email}/tokens`: the one time the secret is
/// shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenCreated {
    /// The token.
    #[serde(flatten)]
    pub token: TokenView,
    /// The secret (`smt_...`); the server keeps only its hash.
    pub secret: String,
}

/// Body of every error reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// What went wrong and what to do.
    pub error: String,
}

/// Unix seconds as RFC 3339 UTC (`2026-11-26T10:00:00Z`).
pub fn utc(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// An account's server-side reading as the API shows it: never key
/// material.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadingView {
    /// The account.
    pub email: String,
    /// Whether encrypted mail is presented decrypted to its sessions.
    pub enabled: bool,
    /// The keys held, by certificate.
    pub keys: Vec<ReadingKeyView>,
    /// Whether this server holds the keys unlocked now (a session is
    /// logged in with the password, or was recently).
    pub unlocked: bool,
}

/// One held key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadingKeyView {
    /// Fingerprint of the certificate it belongs to.
    pub certificate: String,
    /// When it was handed over (RFC 3339 UTC).
    pub created: String,
}

/// Body of `POST /accounts/{email}/reading`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadingEnable {
    /// The private key, unencrypted PEM.
    pub key_pem: String,
    /// The account's own password, which the key is wrapped under.
    pub password: String,
}

impl std::fmt::Debug for ReadingEnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadingEnable(<redacted>)")
    }
}
