//! Why a certificate cannot be used for encryption: one
//! [`RuleViolation`] variant per rule of [`super::Rule`], each naming the
//! certificate's holder, the offending value and what to do about it.
//!
//! The messages are shown to users as they are (`cert add` replies, CLI
//! errors), so each is one sentence: what is wrong; what to do.

use super::info::UtcDate;
use super::Fingerprint;

/// Why a certificate cannot be used for encryption: one variant per rule
/// (plus malformed extensions), each naming the certificate's holder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleViolation {
    /// basicConstraints CA:TRUE.
    #[error("certificate for {holder} is a CA certificate (basicConstraints CA:TRUE) and cannot be a recipient; upload the personal (end-entity) certificate it issued instead")]
    CaCertificate {
        /// Who the certificate is for.
        holder: String,
    },
    /// notAfter is in the past.
    #[error("certificate for {holder} expired on {}; upload a current one", UtcDate(*.not_after))]
    Expired {
        /// Who the certificate is for.
        holder: String,
        /// The certificate's notAfter.
        not_after: time::OffsetDateTime,
    },
    /// notBefore is in the future.
    #[error("certificate for {holder} is not valid before {}; upload one that is valid now, or retry after that date (check the system clock too)", UtcDate(*.not_before))]
    NotYetValid {
        /// Who the certificate is for.
        holder: String,
        /// The certificate's notBefore.
        not_before: time::OffsetDateTime,
    },
    /// An EC key on another curve than P-256, P-384 or P-521, or with
    /// explicit curve parameters.
    #[error("certificate for {holder} has an EC key on {curve}; EC keys must be on the named curve P-256, P-384 or P-521; get a certificate with a key on one of them (or RSA of 2048-8192 bits)")]
    EcCurve {
        /// Who the certificate is for.
        holder: String,
        /// The curve's name or OID.
        curve: String,
    },
    /// An RSA key outside [`super::RSA_BITS`].
    #[error("certificate for {holder} has a {bits}-bit RSA key; RSA keys must have 2048-8192 bits; get a certificate with a key in that range")]
    RsaKeySize {
        /// Who the certificate is for.
        holder: String,
        /// The modulus size.
        bits: u32,
    },
    /// An RSA public exponent outside [`super::RSA_EXPONENTS`] or even.
    #[error("certificate for {holder} has the RSA public exponent {exponent}; only odd exponents from 3 to 4294967295 (65537 in practice) are accepted, as mail clients use; get a certificate made by a standard tool")]
    RsaExponent {
        /// Who the certificate is for.
        holder: String,
        /// The exponent, in decimal, or a note that it is huge.
        exponent: String,
    },
    /// An RSA key that does not decode, or an EC point off its curve.
    #[error("certificate for {holder} has a public key that does not decode ({error}); the certificate is damaged, get it again from its issuer")]
    MalformedKey {
        /// Who the certificate is for.
        holder: String,
        /// What the decoder reported.
        error: String,
    },
    /// Neither RSA nor EC.
    #[error("certificate for {holder} has a {algorithm} key, which cannot be used for encryption here; use an RSA key of 2048-8192 bits or an EC key on P-256, P-384 or P-521")]
    UnsupportedKey {
        /// Who the certificate is for.
        holder: String,
        /// The algorithm's name or OID.
        algorithm: String,
    },
    /// No e-mail address anywhere.
    #[error("certificate for {holder} has no e-mail address (no subjectAltName rfc822Name and no subject emailAddress); get a certificate issued for the account's address")]
    NoEmailAddress {
        /// Who the certificate is for.
        holder: String,
    },
    /// Addresses that all differ from the account's.
    #[error("certificate for {holder} (addresses: {}) matches none of the account's addresses ({}); upload the certificate issued for one of them, or add its address as an alias", .cert_addresses.join(", "), .account_addresses.join(", "))]
    AddressMismatch {
        /// Who the certificate is for.
        holder: String,
        /// The certificate's addresses.
        cert_addresses: Vec<String>,
        /// The account's address and aliases.
        account_addresses: Vec<String>,
    },
    /// KeyUsage without keyEncipherment.
    #[error("certificate for {holder} has KeyUsage {} without keyEncipherment, so it may not be used to encrypt; use the certificate issued for encryption", .key_usage.join(", "))]
    KeyUsageLacksEncipherment {
        /// Who the certificate is for.
        holder: String,
        /// The usages it does allow.
        key_usage: Vec<String>,
    },
    /// KeyUsage of an EC key without keyAgreement.
    #[error("certificate for {holder} has an EC key and KeyUsage {} without keyAgreement, so it may not be used to encrypt (EC keys encrypt by key agreement); use the certificate issued for encryption", .key_usage.join(", "))]
    KeyUsageLacksAgreement {
        /// Who the certificate is for.
        holder: String,
        /// The usages it does allow.
        key_usage: Vec<String>,
    },
    /// ExtendedKeyUsage without emailProtection.
    #[error("certificate for {holder} has ExtendedKeyUsage {} without emailProtection, so it is not for e-mail; use an S/MIME (emailProtection) certificate", .usages.join(", "))]
    ExtendedKeyUsageLacksEmail {
        /// Who the certificate is for.
        holder: String,
        /// The usages it does allow.
        usages: Vec<String>,
    },
    /// An extension the rules need that does not decode (or appears twice).
    #[error("certificate for {holder} has a malformed {extension} extension ({error}); get the certificate re-issued")]
    MalformedExtension {
        /// Who the certificate is for.
        holder: String,
        /// The extension's name.
        extension: &'static str,
        /// What the decoder reported.
        error: der::Error,
    },
    /// Already on the account.
    #[error("certificate for {holder} (fingerprint {fingerprint}) is already on the account; nothing to do, or remove it first")]
    Duplicate {
        /// Who the certificate is for.
        holder: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
    /// The same certificate twice in one input.
    #[error("certificate for {holder} (fingerprint {fingerprint}) appears more than once in the file; remove the copy")]
    DuplicateInInput {
        /// Who the certificate is for.
        holder: String,
        /// Its fingerprint.
        fingerprint: Fingerprint,
    },
}
