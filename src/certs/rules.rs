//! The rules a certificate must pass before mail is encrypted to it
//! (ARCHITECTURE.md, "Certificates accepted for encryption").
//!
//! Each rule is a small function from a certificate and a [`Policy`] to a
//! [`RuleStatus`]. [`evaluate`] runs all of them, in the order of
//! [`Rule::ALL`], for `cert inspect`; [`check`] stops at the first failure,
//! for uploads and the encrypt command. The order puts the most basic
//! mistakes first (a CA instead of a personal certificate, an expired one),
//! so the one message a user sees is the one to act on.

use std::fmt;

use const_oid::db::rfc5280::{ANY_EXTENDED_KEY_USAGE, ID_KP_EMAIL_PROTECTION};
use der::asn1::ObjectIdentifier;
use x509_cert::ext::pkix::{ExtendedKeyUsage, KeyUsage, KeyUsages};

use super::info::{basic_constraints, email_addresses, oid_name, to_datetime, KeyKind};
use super::{Fingerprint, ParsedCert, Policy, RuleViolation};

/// RSA public exponents accepted for encryption: odd, at least 3 and at
/// most 2^32 − 1, as RFC 8017 §3.1 allows and every mail client uses
/// (65537 in practice). why the upper bound: the exponent sets the cost of
/// every copy sealed for the certificate, and one as large as the modulus
/// made each delivery cost 0.3 s of CPU per certificate.
pub const RSA_EXPONENTS: std::ops::RangeInclusive<u64> = 3..=0xffff_ffff;

/// RSA modulus sizes accepted for encryption, in bits. Below 2048 is
/// breakable or soon will be (NIST SP 800-131A); above 8192 the RSA code
/// spends seconds per message and no mail client issues such keys.
pub const RSA_BITS: std::ops::RangeInclusive<u32> = 2048..=8192;

/// One rule of the certificate policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// Not a CA certificate (basicConstraints CA:TRUE).
    NotCa,
    /// Valid now.
    Validity,
    /// RSA of 2048–8192 bits with an odd public exponent of at most
    /// 2^32 − 1, or EC on the named curve P-256, P-384 or P-521.
    KeyType,
    /// Has at least one e-mail address.
    HasEmail,
    /// One of its addresses is the account's or an alias (only when
    /// [`Policy::addresses`] is given).
    EmailMatchesAccount,
    /// KeyUsage, when present, includes keyEncipherment (RSA) or
    /// keyAgreement (EC).
    KeyUsage,
    /// ExtendedKeyUsage, when present, includes emailProtection or
    /// anyExtendedKeyUsage.
    ExtendedKeyUsage,
    /// Not already on the account.
    NotOnAccount,
    /// Not repeated inside the same input.
    NotRepeated,
}

impl Rule {
    /// Every rule, in the order they are checked.
    pub const ALL: [Rule; 9] = [
        Rule::NotCa,
        Rule::Validity,
        Rule::KeyType,
        Rule::HasEmail,
        Rule::EmailMatchesAccount,
        Rule::KeyUsage,
        Rule::ExtendedKeyUsage,
        Rule::NotOnAccount,
        Rule::NotRepeated,
    ];

    /// The rule's stable name, as printed and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Rule::NotCa => "not-ca",
            Rule::Validity => "validity",
            Rule::KeyType => "key-type",
            Rule::HasEmail => "has-email",
            Rule::EmailMatchesAccount => "email-matches-account",
            Rule::KeyUsage => "key-usage",
            Rule::ExtendedKeyUsage => "extended-key-usage",
            Rule::NotOnAccount => "not-on-account",
            Rule::NotRepeated => "not-repeated",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The result of one rule for one certificate.
#[derive(Debug)]
pub struct RuleOutcome {
    /// Which rule.
    pub rule: Rule,
    /// What it found.
    pub status: RuleStatus,
}

/// Pass, fail, or not checked (and why not).
#[derive(Debug)]
pub enum RuleStatus {
    /// The certificate passes the rule.
    Pass,
    /// The certificate breaks the rule.
    Fail(RuleViolation),
    /// The rule was not applied; the text says why.
    NotChecked(&'static str),
}

/// Every rule's outcome for `cert`, in [`Rule::ALL`] order.
pub fn evaluate(cert: &ParsedCert, policy: &Policy<'_>) -> Vec<RuleOutcome> {
    evaluate_in_input(cert, policy, &[])
}

/// The first rule `cert` breaks, if any.
pub fn check(cert: &ParsedCert, policy: &Policy<'_>) -> Result<(), RuleViolation> {
    first_violation(evaluate(cert, policy))
}

pub(crate) fn first_violation(outcomes: Vec<RuleOutcome>) -> Result<(), RuleViolation> {
    for outcome in outcomes {
        if let RuleStatus::Fail(v) = outcome.status {
            return Err(v);
        }
    }
    Ok(())
}

/// [`evaluate`] for a certificate that follows `earlier` ones in the same
/// input, so a repeat can be reported.
pub(crate) fn evaluate_in_input(
    cert: &ParsedCert,
    policy: &Policy<'_>,
    earlier: &[Fingerprint],
) -> Vec<RuleOutcome> {
    let holder = cert.holder();
    let ctx = Ctx {
        cert,
        policy,
        holder: &holder,
        earlier,
    };
    Rule::ALL
        .iter()
        .map(|&rule| RuleOutcome {
            rule,
            status: ctx.apply(rule),
        })
        .collect()
}

struct Ctx<'a> {
    cert: &'a ParsedCert,
    policy: &'a Policy<'a>,
    holder: &'a str,
    earlier: &'a [Fingerprint],
}

impl Ctx<'_> {
    fn apply(&self, rule: Rule) -> RuleStatus {
        let result = match rule {
            Rule::NotCa => self.not_ca(),
            Rule::Validity => self.validity(),
            Rule::KeyType => self.key_type(),
            Rule::HasEmail => self.has_email(),
            Rule::EmailMatchesAccount => match self.policy.addresses {
                None => return RuleStatus::NotChecked("no account address given"),
                Some(account) => self.matches_account(account),
            },
            Rule::KeyUsage => self.key_usage(),
            Rule::ExtendedKeyUsage => self.extended_key_usage(),
            Rule::NotOnAccount => self.not_in(self.policy.existing, false),
            Rule::NotRepeated => self.not_in(self.earlier, true),
        };
        match result {
            Ok(()) => RuleStatus::Pass,
            Err(v) => RuleStatus::Fail(v),
        }
    }

    fn holder(&self) -> String {
        self.holder.to_string()
    }

    fn malformed(&self, extension: &'static str) -> impl FnOnce(der::Error) -> RuleViolation + '_ {
        move |error| RuleViolation::MalformedExtension {
            holder: self.holder(),
            extension,
            error,
        }
    }

    fn not_ca(&self) -> Result<(), RuleViolation> {
        let bc = basic_constraints(self.cert.certificate())
            .map_err(self.malformed("basicConstraints"))?;
        match bc {
            Some(bc) if bc.ca => Err(RuleViolation::CaCertificate {
                holder: self.holder(),
            }),
            _ => Ok(()),
        }
    }

    fn validity(&self) -> Result<(), RuleViolation> {
        let validity = &self.cert.certificate().tbs_certificate.validity;
        if self.policy.now < validity.not_before.to_system_time() {
            return Err(RuleViolation::NotYetValid {
                holder: self.holder(),
                not_before: to_datetime(validity.not_before),
            });
        }
        if self.policy.now > validity.not_after.to_system_time() {
            return Err(RuleViolation::Expired {
                holder: self.holder(),
                not_after: to_datetime(validity.not_after),
            });
        }
        Ok(())
    }

    fn key_type(&self) -> Result<(), RuleViolation> {
        let holder = self.holder();
        match KeyKind::of(self.cert.certificate()) {
            KeyKind::Rsa { bits, .. } if !RSA_BITS.contains(&bits) => {
                Err(RuleViolation::RsaKeySize { holder, bits })
            }
            KeyKind::Rsa {
                exponent: Some(e), ..
            } if e % 2 == 1 && RSA_EXPONENTS.contains(&e) => Ok(()),
            KeyKind::Rsa { exponent, .. } => Err(RuleViolation::RsaExponent {
                holder,
                exponent: exponent.map_or_else(|| "more than 64 bits".into(), |e| e.to_string()),
            }),
            KeyKind::BadRsa { error } => Err(RuleViolation::MalformedKey { holder, error }),
            // why the point is decoded here: a certificate whose point is
            // off its curve would pass every other rule and then fail
            // every delivery.
            KeyKind::Ec { bits: Some(_), .. } => {
                crate::smime::Recipient::from_certificate(self.cert.certificate())
                    .map(drop)
                    .map_err(|e| RuleViolation::MalformedKey {
                        holder,
                        error: e.to_string(),
                    })
            }
            KeyKind::Ec { curve, .. } => Err(RuleViolation::EcCurve { holder, curve }),
            other => Err(RuleViolation::UnsupportedKey {
                holder,
                algorithm: match other {
                    KeyKind::Other { oid } => oid_name(&oid),
                    known => known.algorithm(),
                },
            }),
        }
    }

    fn addresses(&self) -> Result<Vec<String>, RuleViolation> {
        email_addresses(self.cert.certificate()).map_err(self.malformed("subjectAltName"))
    }

    fn has_email(&self) -> Result<(), RuleViolation> {
        if self.addresses()?.is_empty() {
            return Err(RuleViolation::NoEmailAddress {
                holder: self.holder(),
            });
        }
        Ok(())
    }

    fn matches_account(&self, account: &[String]) -> Result<(), RuleViolation> {
        let cert_addresses = self.addresses()?;
        let matched = cert_addresses.iter().any(|c| {
            account
                .iter()
                .any(|a| a.trim().eq_ignore_ascii_case(c.trim()))
        });
        if matched || cert_addresses.is_empty() {
            // why: no address at all is the has-email rule's failure;
            // reporting it twice would only add noise.
            return Ok(());
        }
        Err(RuleViolation::AddressMismatch {
            holder: self.holder(),
            cert_addresses,
            account_addresses: account.to_vec(),
        })
    }

    fn key_usage(&self) -> Result<(), RuleViolation> {
        let ku = self
            .cert
            .certificate()
            .tbs_certificate
            .get::<KeyUsage>()
            .map_err(self.malformed("keyUsage"))?;
        let is_ec = matches!(KeyKind::of(self.cert.certificate()), KeyKind::Ec { .. });
        match ku {
            // RFC 5753 §3 / RFC 8551 §4.4.2: an EC key is used by key
            // agreement, so keyAgreement (not keyEncipherment) is the usage.
            Some((_, ku)) if is_ec && !ku.key_agreement() => {
                Err(RuleViolation::KeyUsageLacksAgreement {
                    holder: self.holder(),
                    key_usage: key_usage_names(ku),
                })
            }
            Some((_, ku)) if !is_ec && !ku.key_encipherment() => {
                Err(RuleViolation::KeyUsageLacksEncipherment {
                    holder: self.holder(),
                    key_usage: key_usage_names(ku),
                })
            }
            _ => Ok(()),
        }
    }

    fn extended_key_usage(&self) -> Result<(), RuleViolation> {
        let eku = self
            .cert
            .certificate()
            .tbs_certificate
            .get::<ExtendedKeyUsage>()
            .map_err(self.malformed("extendedKeyUsage"))?;
        let Some((_, eku)) = eku else {
            return Ok(());
        };
        let ok = eku
            .0
            .iter()
            .any(|oid| *oid == ID_KP_EMAIL_PROTECTION || *oid == ANY_EXTENDED_KEY_USAGE);
        if ok {
            return Ok(());
        }
        Err(RuleViolation::ExtendedKeyUsageLacksEmail {
            holder: self.holder(),
            usages: eku.0.iter().map(eku_name).collect(),
        })
    }

    fn not_in(&self, seen: &[Fingerprint], in_input: bool) -> Result<(), RuleViolation> {
        let fingerprint = self.cert.fingerprint();
        if !seen.contains(&fingerprint) {
            return Ok(());
        }
        let holder = self.holder();
        Err(if in_input {
            RuleViolation::DuplicateInInput {
                holder,
                fingerprint,
            }
        } else {
            RuleViolation::Duplicate {
                holder,
                fingerprint,
            }
        })
    }
}

/// RFC 5280 §4.2.1.3 names of the bits set.
fn key_usage_names(ku: KeyUsage) -> Vec<String> {
    const NAMES: [(KeyUsages, &str); 9] = [
        (KeyUsages::DigitalSignature, "digitalSignature"),
        (KeyUsages::NonRepudiation, "nonRepudiation"),
        (KeyUsages::KeyEncipherment, "keyEncipherment"),
        (KeyUsages::DataEncipherment, "dataEncipherment"),
        (KeyUsages::KeyAgreement, "keyAgreement"),
        (KeyUsages::KeyCertSign, "keyCertSign"),
        (KeyUsages::CRLSign, "cRLSign"),
        (KeyUsages::EncipherOnly, "encipherOnly"),
        (KeyUsages::DecipherOnly, "decipherOnly"),
    ];
    let names: Vec<String> = NAMES
        .iter()
        .filter(|(flag, _)| ku.0.contains(*flag))
        .map(|(_, name)| (*name).to_string())
        .collect();
    if names.is_empty() {
        vec!["(no usages)".into()]
    } else {
        names
    }
}

/// `serverAuth` rather than `id-kp-serverAuth (1.3.6.1.5.5.7.3.1)`.
fn eku_name(oid: &ObjectIdentifier) -> String {
    match const_oid::db::DB.by_oid(oid) {
        Some(name) => name.trim_start_matches("id-kp-").to_string(),
        None => oid.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use const_oid::db::rfc5280::ID_KP_SERVER_AUTH;

    #[test]
    fn rule_names_are_unique() {
        let mut names: Vec<_> = Rule::ALL.iter().map(|r| r.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Rule::ALL.len());
    }

    #[test]
    fn key_usage_lists_rfc_names() {
        let ku = KeyUsage(KeyUsages::DigitalSignature | KeyUsages::NonRepudiation);
        assert_eq!(key_usage_names(ku), ["digitalSignature", "nonRepudiation"]);
    }

    #[test]
    fn eku_names_drop_prefix() {
        assert_eq!(eku_name(&ID_KP_SERVER_AUTH), "serverAuth");
    }

    #[test]
    fn expired_message_names_date_and_action() {
        let v = RuleViolation::Expired {
            holder: "bob@example.org".into(),
            not_after: time::macros::datetime!(2025-03-01 0:00 UTC),
        };
        assert_eq!(
            v.to_string(),
            "certificate for bob@example.org expired on 2025-03-01; upload a current one"
        );
    }

    #[test]
    fn rsa_range_is_2048_to_8192() {
        assert!(RSA_BITS.contains(&2048) && RSA_BITS.contains(&8192));
        assert!(!RSA_BITS.contains(&1024) && !RSA_BITS.contains(&8193));
    }
}
