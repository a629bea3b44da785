//! Recipient certificates: reading them, the rules they must pass before
//! mail is encrypted to them, and their fingerprints.
//!
//! - [`parse`] reads PEM (one or several blocks), DER, or a PKCS#7
//!   certs-only bundle (RFC 5652 §5 SignedData without signers) into
//!   [`ParsedCert`]s, saying where a file is broken.
//! - [`evaluate`] / [`check`] apply the rules of ARCHITECTURE.md
//!   ("Certificates accepted for encryption") under a [`Policy`]: the time,
//!   the account's addresses (or none, offline), the certificates the
//!   account already has.
//! - [`recipients`] does both for an uploaded file: CA certificates that
//!   come along with an end-entity certificate (a chain, a bundle) are
//!   skipped, every end-entity certificate must pass.
//!
//! Everything here is synchronous and does no I/O: bytes in, values out.
//! The input is untrusted; nothing here panics on it.

mod fingerprint;
mod info;
mod parse;
mod rules;
mod violation;

use std::time::SystemTime;

pub use fingerprint::{Fingerprint, FingerprintError};
pub(crate) use info::curve_name;
pub use info::{CertInfo, UtcDate};
pub use parse::{parse, ParseError, ParsedCert};
pub use rules::{check, evaluate, Rule, RuleOutcome, RuleStatus, RSA_BITS, RSA_EXPONENTS};
pub use violation::RuleViolation;

/// What the rules are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    /// The time validity is checked at.
    pub now: SystemTime,
    /// The account's address and aliases; `None` skips the address-match
    /// rule (the offline `sealmail encrypt`). The has-an-address rule
    /// always applies.
    pub addresses: Option<&'a [String]>,
    /// Fingerprints of the certificates already on the account.
    pub existing: &'a [Fingerprint],
}

/// Why a certificate file cannot be used for encryption.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// The file is not readable as certificates.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// An end-entity certificate in it breaks a rule.
    #[error("{violation}")]
    Rule {
        /// The certificate's fingerprint.
        fingerprint: Fingerprint,
        /// The certificate's subject.
        subject: String,
        /// The rule it breaks.
        violation: RuleViolation,
    },
    /// Several certificates, all of them CAs.
    #[error("the file holds {count} certificates, all of them CA certificates; add the personal (end-entity) certificate they issued")]
    NoEndEntity {
        /// How many CA certificates it holds.
        count: usize,
    },
}

/// What a certificate is used for when its file is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// Mail is encrypted to it (if it passes the rules).
    Recipient,
    /// A CA certificate that came with an end-entity one: not used, not
    /// checked.
    SkippedCa,
}

/// One certificate of a file, its role and every rule's outcome.
#[derive(Debug)]
pub struct CertReport<'c> {
    /// The certificate.
    pub cert: &'c ParsedCert,
    /// Whether it would be a recipient.
    pub role: Role,
    /// Every rule, in [`Rule::ALL`] order.
    pub outcomes: Vec<RuleOutcome>,
}

impl CertReport<'_> {
    /// The first rule it breaks, if any.
    pub fn violation(&self) -> Option<&RuleViolation> {
        self.outcomes.iter().find_map(|o| match &o.status {
            RuleStatus::Fail(v) => Some(v),
            _ => None,
        })
    }

    /// A recipient that passes every rule that was checked.
    pub fn accepted(&self) -> bool {
        self.role == Role::Recipient && self.violation().is_none()
    }
}

/// Assigns roles and evaluates every certificate of one file: CA
/// certificates are skipped when at least one end-entity certificate is
/// present; a repeat of an earlier certificate fails
/// [`Rule::NotRepeated`].
pub fn assess<'c>(certs: &'c [ParsedCert], policy: &Policy<'_>) -> Vec<CertReport<'c>> {
    let has_end_entity = certs.iter().any(|c| !c.is_ca());
    let mut seen = Vec::with_capacity(certs.len());
    let mut reports = Vec::with_capacity(certs.len());
    for cert in certs {
        let role = if has_end_entity && cert.is_ca() {
            Role::SkippedCa
        } else {
            Role::Recipient
        };
        let outcomes = rules::evaluate_in_input(cert, policy, &seen);
        seen.push(cert.fingerprint());
        reports.push(CertReport {
            cert,
            role,
            outcomes,
        });
    }
    reports
}

/// The recipient certificates of an uploaded file: parses `input`, skips CA
/// certificates when an end-entity certificate is present (a lone CA
/// certificate fails the CA rule), and checks every end-entity certificate,
/// including that none appears twice. Fails on the first problem.
#[expect(
    clippy::result_large_err,
    reason = "called once per uploaded file; the error keeps the agreed plain fields \
              instead of boxing the violation"
)]
pub fn recipients(input: &[u8], policy: &Policy<'_>) -> Result<Vec<ParsedCert>, CertError> {
    let certs = parse(input)?;
    let reports = assess(&certs, policy);
    if certs.len() > 1 && certs.iter().all(ParsedCert::is_ca) {
        return Err(CertError::NoEndEntity { count: certs.len() });
    }
    let mut keep = Vec::with_capacity(reports.len());
    for report in &reports {
        if report.role != Role::Recipient {
            keep.push(false);
            continue;
        }
        if let Some(violation) = report.violation() {
            return Err(CertError::Rule {
                fingerprint: report.cert.fingerprint(),
                subject: report
                    .cert
                    .certificate()
                    .tbs_certificate
                    .subject
                    .to_string(),
                violation: violation.clone(),
            });
        }
        keep.push(true);
    }
    drop(reports);
    Ok(certs
        .into_iter()
        .zip(keep)
        .filter_map(|(cert, keep)| keep.then_some(cert))
        .collect())
}
