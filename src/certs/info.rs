//! What a certificate says about itself, read once and in plain types:
//! names, e-mail addresses, validity, key type and size, fingerprint.
//!
//! [`CertInfo`] is what `sealmail cert inspect` prints and what the server
//! records next to a certificate. Its JSON form uses camelCase keys and
//! RFC 3339 UTC times (`2025-03-01T00:00:00Z`).

use std::fmt;

use const_oid::db::{rfc3280, rfc5912, rfc8410, DB};
use der::asn1::{Ia5StringRef, ObjectIdentifier, PrintableStringRef, Utf8StringRef};
use der::{Decode, Tag, Tagged};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, SubjectAltName};
use x509_cert::Certificate;

use super::{Fingerprint, ParsedCert};

/// The facts about a certificate that are shown and recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CertInfo {
    /// Subject distinguished name, RFC 4514 string form.
    pub subject: String,
    /// Issuer distinguished name, RFC 4514 string form.
    pub issuer: String,
    /// Serial number as lowercase hex, without leading zero bytes.
    pub serial_number: String,
    /// SAN rfc822Name entries, then subject emailAddress attributes,
    /// without case-insensitive repeats.
    pub email_addresses: Vec<String>,
    /// Start of validity (UTC).
    #[serde(serialize_with = "serialize_utc")]
    pub not_before: OffsetDateTime,
    /// End of validity (UTC).
    #[serde(serialize_with = "serialize_utc")]
    pub not_after: OffsetDateTime,
    /// `RSA`, `EC`, `Ed25519`, `Ed448`, or the algorithm OID.
    pub key_algorithm: String,
    /// Key size in bits (RSA modulus, EC curve), when known.
    pub key_size: Option<u32>,
    /// SHA-256 of the DER encoding.
    pub fingerprint: Fingerprint,
}

impl ParsedCert {
    /// Whether basicConstraints says CA:TRUE. A malformed basicConstraints
    /// reads as "not a CA" here; the CA rule reports it as malformed.
    pub fn is_ca(&self) -> bool {
        matches!(basic_constraints(self.certificate()), Ok(Some(bc)) if bc.ca)
    }

    /// The facts shown by `cert inspect` and recorded by the server.
    pub fn info(&self) -> CertInfo {
        let tbs = &self.certificate().tbs_certificate;
        let key = KeyKind::of(self.certificate());
        CertInfo {
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            serial_number: hex_serial(tbs.serial_number.as_bytes()),
            email_addresses: email_addresses(self.certificate())
                .unwrap_or_else(|_| subject_email_addresses(self.certificate())),
            not_before: to_datetime(tbs.validity.not_before),
            not_after: to_datetime(tbs.validity.not_after),
            key_algorithm: key.algorithm(),
            key_size: key.bits(),
            fingerprint: self.fingerprint(),
        }
    }

    /// Who the certificate is for, for messages: its first e-mail address,
    /// else its subject, else its fingerprint.
    pub(crate) fn holder(&self) -> String {
        let cert = self.certificate();
        let addresses = email_addresses(cert).unwrap_or_else(|_| subject_email_addresses(cert));
        if let Some(first) = addresses.into_iter().next() {
            return first;
        }
        let subject = cert.tbs_certificate.subject.to_string();
        if subject.is_empty() {
            self.fingerprint().to_string()
        } else {
            subject
        }
    }
}

pub(crate) fn basic_constraints(
    cert: &Certificate,
) -> Result<Option<BasicConstraints>, der::Error> {
    Ok(cert
        .tbs_certificate
        .get::<BasicConstraints>()?
        .map(|(_, bc)| bc))
}

/// Every e-mail address of the certificate: SAN rfc822Name entries, then
/// subject emailAddress attributes (PKCS #9, 1.2.840.113549.1.9.1).
/// Fails only when the subjectAltName extension is malformed.
pub(crate) fn email_addresses(cert: &Certificate) -> Result<Vec<String>, der::Error> {
    let mut out: Vec<String> = Vec::new();
    if let Some((_, san)) = cert.tbs_certificate.get::<SubjectAltName>()? {
        for name in san.0 {
            if let GeneralName::Rfc822Name(mail) = name {
                out.push(mail.to_string());
            }
        }
    }
    for mail in subject_email_addresses(cert) {
        if !out.iter().any(|m| m.eq_ignore_ascii_case(&mail)) {
            out.push(mail);
        }
    }
    Ok(out)
}

fn subject_email_addresses(cert: &Certificate) -> Vec<String> {
    cert.tbs_certificate
        .subject
        .0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == rfc3280::EMAIL_ADDRESS)
        .filter_map(|atv| directory_string(&atv.value))
        .collect()
}

fn directory_string(value: &der::Any) -> Option<String> {
    let text = match value.tag() {
        Tag::Ia5String => Ia5StringRef::try_from(value).ok()?.to_string(),
        Tag::Utf8String => Utf8StringRef::try_from(value).ok()?.to_string(),
        Tag::PrintableString => PrintableStringRef::try_from(value).ok()?.to_string(),
        _ => return None,
    };
    Some(text)
}

/// The subject public key, as far as the rules care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA with this many modulus bits and this public exponent (`None`
    /// when it does not fit 64 bits).
    Rsa { bits: u32, exponent: Option<u64> },
    /// RSA whose key does not decode.
    BadRsa { error: String },
    /// EC on a named curve (name or OID) of known or unknown size.
    Ec { curve: String, bits: Option<u32> },
    /// EdDSA / ECDH key on a named curve.
    Edwards { name: &'static str, bits: u32 },
    /// Anything else, by algorithm OID.
    Other { oid: ObjectIdentifier },
}

impl KeyKind {
    pub(crate) fn of(cert: &Certificate) -> Self {
        let spki = &cert.tbs_certificate.subject_public_key_info;
        let oid = spki.algorithm.oid;
        if oid == rfc5912::RSA_ENCRYPTION {
            return match rsa::pkcs1::RsaPublicKey::from_der(spki.subject_public_key.raw_bytes()) {
                Ok(key) => Self::Rsa {
                    bits: significant_bits(key.modulus.as_bytes()),
                    exponent: small_uint(key.public_exponent.as_bytes()),
                },
                Err(e) => Self::BadRsa {
                    error: e.to_string(),
                },
            };
        }
        if oid == rfc5912::ID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<ObjectIdentifier>().ok());
            return Self::ec(curve);
        }
        match oid {
            o if o == rfc8410::ID_ED_25519 => Self::Edwards {
                name: "Ed25519",
                bits: 256,
            },
            o if o == rfc8410::ID_ED_448 => Self::Edwards {
                name: "Ed448",
                bits: 456,
            },
            o if o == rfc8410::ID_X_25519 => Self::Edwards {
                name: "X25519",
                bits: 256,
            },
            o if o == rfc8410::ID_X_448 => Self::Edwards {
                name: "X448",
                bits: 448,
            },
            oid => Self::Other { oid },
        }
    }

    fn ec(curve: Option<ObjectIdentifier>) -> Self {
        let Some(curve) = curve else {
            return Self::Ec {
                curve: "explicit parameters".into(),
                bits: None,
            };
        };
        let (name, bits) = match curve {
            c if c == rfc5912::SECP_256_R_1 => ("P-256".to_string(), Some(256)),
            c if c == rfc5912::SECP_384_R_1 => ("P-384".to_string(), Some(384)),
            c if c == rfc5912::SECP_521_R_1 => ("P-521".to_string(), Some(521)),
            c => (curve_name(&c), None),
        };
        Self::Ec { curve: name, bits }
    }

    /// The algorithm as `CertInfo::key_algorithm` spells it.
    pub(crate) fn algorithm(&self) -> String {
        match self {
            Self::Rsa { .. } | Self::BadRsa { .. } => "RSA".into(),
            Self::Ec { .. } => "EC".into(),
            Self::Edwards { name, .. } => (*name).into(),
            Self::Other { oid } => oid.to_string(),
        }
    }

    pub(crate) fn bits(&self) -> Option<u32> {
        match self {
            Self::Rsa { bits, .. } => Some(*bits),
            Self::Ec { bits, .. } => *bits,
            Self::Edwards { bits, .. } => Some(*bits),
            Self::BadRsa { .. } | Self::Other { .. } => None,
        }
    }
}

/// A readable name for an EC curve OID that is not one we accept, with
/// the OID: the ones CAs and keygen tools offer besides the NIST curves,
/// which `const-oid`'s database does not name.
pub(crate) fn curve_name(oid: &ObjectIdentifier) -> String {
    const NAMES: [(&str, &str); 7] = [
        ("1.3.132.0.10", "secp256k1"),
        ("1.3.132.0.33", "secp224r1"),
        ("1.2.840.10045.3.1.1", "prime192v1"),
        ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1"),
        ("1.3.36.3.3.2.8.1.1.11", "brainpoolP384r1"),
        ("1.3.36.3.3.2.8.1.1.13", "brainpoolP512r1"),
        ("1.3.132.0.35", "secp521r1"),
    ];
    let text = oid.to_string();
    match NAMES.iter().find(|(o, _)| *o == text) {
        Some((_, name)) => format!("{name} ({text})"),
        None => oid_name(oid),
    }
}

/// A readable name for an OID: `name (1.2.3)` when the database knows it.
pub(crate) fn oid_name(oid: &ObjectIdentifier) -> String {
    match DB.by_oid(oid) {
        Some(name) => format!("{name} ({oid})"),
        None => oid.to_string(),
    }
}

/// Bits of a big-endian unsigned integer, leading zeros not counted.
/// A big-endian unsigned integer that fits 64 bits.
fn small_uint(bytes: &[u8]) -> Option<u64> {
    let digits: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut be = [0u8; 8];
    let start = be.len().checked_sub(digits.len())?;
    be.get_mut(start..)?.copy_from_slice(&digits);
    Some(u64::from_be_bytes(be))
}

fn significant_bits(bytes: &[u8]) -> u32 {
    let mut iter = bytes.iter().skip_while(|b| **b == 0);
    let Some(first) = iter.next() else {
        return 0;
    };
    let rest = u32::try_from(iter.count()).unwrap_or(u32::MAX / 8);
    rest * 8 + (8 - first.leading_zeros())
}

fn hex_serial(bytes: &[u8]) -> String {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if trimmed.is_empty() {
        return "00".into();
    }
    trimmed.iter().map(|b| format!("{b:02x}")).collect()
}

/// An X.509 time as a UTC date-time. X.509 times lie between 1950 and
/// 9999, inside `OffsetDateTime`'s range.
pub(crate) fn to_datetime(t: x509_cert::time::Time) -> OffsetDateTime {
    let secs = i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Displays a UTC time as `2025-03-01` at midnight, else as
/// `2025-03-01T12:30:00Z`, the forms the rule messages use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UtcDate(pub OffsetDateTime);

impl fmt::Display for UtcDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        write!(
            f,
            "{:04}-{:02}-{:02}",
            t.year(),
            u8::from(t.month()),
            t.day()
        )?;
        if t.time() != time::Time::MIDNIGHT {
            write!(f, "T{:02}:{:02}:{:02}Z", t.hour(), t.minute(), t.second())?;
        }
        Ok(())
    }
}

/// RFC 3339 UTC with seconds: `2025-03-01T00:00:00Z`.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn serialize_utc<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn bits_ignore_leading_zeros() {
        assert_eq!(significant_bits(&[0x00, 0x80, 0x00]), 16);
        assert_eq!(significant_bits(&[0x01]), 1);
        assert_eq!(significant_bits(&[]), 0);
        let mut modulus = vec![0xc5u8];
        modulus.extend([0u8; 255]);
        assert_eq!(significant_bits(&modulus), 2048);
    }

    #[test]
    fn serial_is_lowercase_hex_without_sign_byte() {
        assert_eq!(hex_serial(&[0x00, 0xAB, 0x01]), "ab01");
        assert_eq!(hex_serial(&[0x00]), "00");
    }

    #[test]
    fn dates_print_short_at_midnight() {
        assert_eq!(
            UtcDate(datetime!(2025-03-01 0:00 UTC)).to_string(),
            "2025-03-01"
        );
        assert_eq!(
            UtcDate(datetime!(2025-03-01 12:30:05 UTC)).to_string(),
            "2025-03-01T12:30:05Z"
        );
        assert_eq!(
            rfc3339(datetime!(2025-03-01 0:00 UTC)),
            "2025-03-01T00:00:00Z"
        );
    }

    #[test]
    fn ec_curves_are_named() {
        assert_eq!(
            KeyKind::ec(Some(rfc5912::SECP_256_R_1)),
            KeyKind::Ec {
                curve: "P-256".into(),
                bits: Some(256)
            }
        );
        assert_eq!(KeyKind::ec(Some(rfc5912::SECP_256_R_1)).algorithm(), "EC");
    }
}
