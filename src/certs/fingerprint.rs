//! Certificate fingerprints: the SHA-256 digest of the certificate's DER
//! encoding, the same value `openssl x509 -noout -fingerprint -sha256`
//! prints.
//!
//! Printed as lowercase hex without colons (the CLI and API contract);
//! parsed leniently, because operators paste what OpenSSL or a mail client
//! shows them: colons, spaces and upper case are accepted.

use std::fmt;
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// The SHA-256 fingerprint of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of the DER-encoded certificate `der`.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<[u8; 32]> for Fingerprint {
    fn from(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// Why a string is not a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// A character that is neither a hex digit nor a separator.
    #[error("fingerprint {input:?} contains {found:?}, which is not a hex digit; give the SHA-256 fingerprint as 64 hex digits (colons allowed)")]
    NotHex {
        /// The whole input.
        input: String,
        /// The offending character.
        found: char,
    },
    /// The wrong number of hex digits.
    #[error("fingerprint {input:?} has {digits} hex digits, a SHA-256 fingerprint has 64; copy it whole, e.g. from `openssl x509 -noout -fingerprint -sha256`")]
    WrongLength {
        /// The whole input.
        input: String,
        /// How many hex digits it had.
        digits: usize,
    },
}

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nibbles = Vec::with_capacity(64);
        for c in s.trim().chars() {
            if c == ':' || c == ' ' {
                continue;
            }
            let v = c.to_digit(16).ok_or_else(|| FingerprintError::NotHex {
                input: s.to_string(),
                found: c,
            })?;
            // why: to_digit(16) is below 16, so it fits a u8.
            nibbles.push(u8::try_from(v).unwrap_or_default());
        }
        if nibbles.len() != 64 {
            return Err(FingerprintError::WrongLength {
                input: s.to_string(),
                digits: nibbles.len(),
            });
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(nibbles.chunks_exact(2)) {
            if let [hi, lo] = pair {
                *byte = (hi << 4) | lo;
            }
        }
        Ok(Self(out))
    }
}

impl serde::Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn display_is_lowercase_hex_without_colons() {
        let fp: Fingerprint = HEX.parse().unwrap();
        assert_eq!(fp.to_string(), HEX);
        assert_eq!(fp.as_bytes()[1], 0x11);
    }

    #[test]
    fn accepts_colons_and_upper_case() {
        let colons = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:\
                      00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
        assert_eq!(colons.parse::<Fingerprint>().unwrap().to_string(), HEX);
    }

    #[test]
    fn rejects_short_input() {
        let err = "abcd".parse::<Fingerprint>().unwrap_err();
        assert_eq!(
            err,
            FingerprintError::WrongLength {
                input: "abcd".into(),
                digits: 4
            }
        );
        assert!(err.to_string().contains("64"));
    }

    #[test]
    fn rejects_non_hex() {
        let bad = format!("{}g", &HEX[1..]);
        assert!(matches!(
            bad.parse::<Fingerprint>(),
            Err(FingerprintError::NotHex { found: 'g', .. })
        ));
    }

    #[test]
    fn serializes_as_hex_string_and_back() {
        let fp: Fingerprint = HEX.parse().unwrap();
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(json, format!("\"{HEX}\""));
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
    }

    #[test]
    fn digest_of_empty_input_is_sha256_of_empty() {
        assert_eq!(
            Fingerprint::of_der(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    proptest::proptest! {
        #[test]
        fn display_and_parse_round_trip(bytes in proptest::array::uniform32(proptest::num::u8::ANY)) {
            let fp = Fingerprint::from(bytes);
            proptest::prop_assert_eq!(fp.to_string().parse::<Fingerprint>().unwrap(), fp);
            proptest::prop_assert_eq!(fp.to_string().to_uppercase().parse::<Fingerprint>().unwrap(), fp);
        }
    }
}
