//! Elliptic-curve Diffie-Hellman for EC recipients (RFC 5753 §3.1) on the
//! NIST curves P-256, P-384 and P-521 (SEC 2 secp256r1, secp384r1,
//! secp521r1), and the ANSI X9.63 key derivation CMS uses on its shared
//! secret (RFC 5753 §7.2, SEC 1 §3.6.1).
//!
//! Sealing is ephemeral-static: a fresh key pair per RecipientInfo, agreed
//! with the recipient's certificate key. Opening is static-ephemeral, with
//! a list's private key.
//!
//! why `ring` for the ephemeral side of P-256 and P-384: a list seals one
//! message per member, and the RustCrypto curves took about twice
//! OpenSSL's time for the key generation plus agreement, while `ring`
//! (already in the tree through rustls) is below OpenSSL's
//! (`benches/ec_seal.rs`, `benches/RESULTS.md`). `ring` has no P-521 and
//! no static private keys, so P-521 sealing and all opening use the
//! RustCrypto crates (`p256`, `p384`, `p521`).

use der::asn1::ObjectIdentifier;
use elliptic_curve::sec1::ToEncodedPoint as _;
use sha2::Digest;
use zeroize::Zeroizing;

use super::SmimeError;

use const_oid::db::rfc5912::{SECP_256_R_1, SECP_384_R_1, SECP_521_R_1};

/// A curve EC recipients may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    /// secp256r1 (prime256v1).
    P256,
    /// secp384r1.
    P384,
    /// secp521r1.
    P521,
}

impl Curve {
    /// The curve named by `oid` (the `namedCurve` of ECParameters).
    pub fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        match *oid {
            SECP_256_R_1 => Some(Self::P256),
            SECP_384_R_1 => Some(Self::P384),
            SECP_521_R_1 => Some(Self::P521),
            _ => None,
        }
    }

    /// The curve's `namedCurve` OID.
    pub fn oid(self) -> ObjectIdentifier {
        match self {
            Self::P256 => SECP_256_R_1,
            Self::P384 => SECP_384_R_1,
            Self::P521 => SECP_521_R_1,
        }
    }

    /// `P-256`, `P-384` or `P-521`.
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        }
    }
}

/// A recipient's EC public key, checked to be a point on its curve and
/// kept uncompressed (as `ring` wants it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EcPublicKey {
    curve: Curve,
    point: Vec<u8>,
}

impl EcPublicKey {
    /// The key in `point` (SEC 1 §2.3.3, compressed or not) on `curve`.
    /// The input comes from an uploaded certificate or a sender's message:
    /// every check fails softly.
    pub(crate) fn new(curve: Curve, point: &[u8]) -> Result<Self, SmimeError> {
        let bad = |_| SmimeError::BadPublicKey {
            detail: format!("not a point on {}", curve.name()),
        };
        let point = match curve {
            Curve::P256 => p256::PublicKey::from_sec1_bytes(point)
                .map_err(bad)?
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            Curve::P384 => p384::PublicKey::from_sec1_bytes(point)
                .map_err(bad)?
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
            Curve::P521 => p521::PublicKey::from_sec1_bytes(point)
                .map_err(bad)?
                .to_encoded_point(false)
                .as_bytes()
                .to_vec(),
        };
        Ok(Self { curve, point })
    }

    /// The uncompressed point.
    pub(crate) fn point(&self) -> &[u8] {
        &self.point
    }

    /// Ephemeral-static ECDH with this key: the ephemeral public key
    /// (uncompressed) and the shared secret `Z` (the x-coordinate).
    pub(crate) fn agree_ephemeral(&self) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), SmimeError> {
        match self.curve {
            Curve::P256 => ring_agree(&ring::agreement::ECDH_P256, &self.point),
            Curve::P384 => ring_agree(&ring::agreement::ECDH_P384, &self.point),
            Curve::P521 => {
                let peer = p521::PublicKey::from_sec1_bytes(&self.point).map_err(|_| {
                    SmimeError::BadPublicKey {
                        detail: "not a point on P-521".into(),
                    }
                })?;
                let secret = p521::ecdh::EphemeralSecret::random(&mut rand_core::OsRng);
                let public = secret
                    .public_key()
                    .to_encoded_point(false)
                    .as_bytes()
                    .to_vec();
                let shared = secret.diffie_hellman(&peer);
                Ok((public, Zeroizing::new(shared.raw_secret_bytes().to_vec())))
            }
        }
    }
}

/// `ring`'s ephemeral key generation and agreement.
fn ring_agree(
    alg: &'static ring::agreement::Algorithm,
    peer: &[u8],
) -> Result<(Vec<u8>, Zeroizing<Vec<u8>>), SmimeError> {
    let failed = |_| SmimeError::Build {
        detail: "ECDH key agreement failed".into(),
    };
    let rng = ring::rand::SystemRandom::new();
    let secret = ring::agreement::EphemeralPrivateKey::generate(alg, &rng).map_err(failed)?;
    let public = secret
        .compute_public_key()
        .map_err(failed)?
        .as_ref()
        .to_vec();
    let peer = ring::agreement::UnparsedPublicKey::new(alg, peer);
    let z = ring::agreement::agree_ephemeral(secret, &peer, |z| Zeroizing::new(z.to_vec()))
        .map_err(|_| SmimeError::BadPublicKey {
            detail: "the recipient's EC key is not a valid point".into(),
        })?;
    Ok((public, z))
}

/// An EC private key (a list key) on one of the [`Curve`]s.
#[derive(Clone)]
pub(crate) enum EcPrivateKey {
    P256(p256::SecretKey),
    P384(p384::SecretKey),
    P521(p521::SecretKey),
}

impl EcPrivateKey {
    /// A key from the DER of a PEM block: `PRIVATE KEY` (PKCS#8,
    /// RFC 5915 inside) or `EC PRIVATE KEY` (SEC 1, RFC 5915). `None`
    /// when it is no EC key on a supported curve.
    pub(crate) fn from_der(label: &str, der_bytes: &[u8]) -> Option<Self> {
        use elliptic_curve::pkcs8::DecodePrivateKey as _;
        if label == "EC PRIVATE KEY" {
            if let Ok(k) = p256::SecretKey::from_sec1_der(der_bytes) {
                return Some(Self::P256(k));
            }
            if let Ok(k) = p384::SecretKey::from_sec1_der(der_bytes) {
                return Some(Self::P384(k));
            }
            return p521::SecretKey::from_sec1_der(der_bytes)
                .ok()
                .map(Self::P521);
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_der(der_bytes) {
            return Some(Self::P256(k));
        }
        if let Ok(k) = p384::SecretKey::from_pkcs8_der(der_bytes) {
            return Some(Self::P384(k));
        }
        p521::SecretKey::from_pkcs8_der(der_bytes)
            .ok()
            .map(Self::P521)
    }

    /// The key as PKCS#8 DER (RFC 5915 inside).
    pub(crate) fn to_pkcs8_der(&self) -> Option<Zeroizing<Vec<u8>>> {
        use elliptic_curve::pkcs8::EncodePrivateKey as _;
        let doc = match self {
            Self::P256(k) => k.to_pkcs8_der(),
            Self::P384(k) => k.to_pkcs8_der(),
            Self::P521(k) => k.to_pkcs8_der(),
        }
        .ok()?;
        Some(Zeroizing::new(doc.as_bytes().to_vec()))
    }

    pub(crate) fn curve(&self) -> Curve {
        match self {
            Self::P256(_) => Curve::P256,
            Self::P384(_) => Curve::P384,
            Self::P521(_) => Curve::P521,
        }
    }

    /// The public point, uncompressed.
    pub(crate) fn public_point(&self) -> Vec<u8> {
        match self {
            Self::P256(k) => k.public_key().to_encoded_point(false).as_bytes().to_vec(),
            Self::P384(k) => k.public_key().to_encoded_point(false).as_bytes().to_vec(),
            Self::P521(k) => k.public_key().to_encoded_point(false).as_bytes().to_vec(),
        }
    }

    /// Static-ephemeral ECDH with a sender's ephemeral `point`: `Z`.
    /// `point` comes from the message: a point off the curve (an
    /// invalid-curve attack) is refused by the decoding.
    pub(crate) fn agree(&self, point: &[u8]) -> Result<Zeroizing<Vec<u8>>, SmimeError> {
        let bad = |_| SmimeError::BadPublicKey {
            detail: format!(
                "the originator key is not a point on {}",
                self.curve().name()
            ),
        };
        let z = match self {
            Self::P256(k) => {
                let peer = p256::PublicKey::from_sec1_bytes(point).map_err(bad)?;
                elliptic_curve::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            }
            Self::P384(k) => {
                let peer = p384::PublicKey::from_sec1_bytes(point).map_err(bad)?;
                elliptic_curve::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            }
            Self::P521(k) => {
                let peer = p521::PublicKey::from_sec1_bytes(point).map_err(bad)?;
                elliptic_curve::ecdh::diffie_hellman(k.to_nonzero_scalar(), peer.as_affine())
                    .raw_secret_bytes()
                    .to_vec()
            }
        };
        Ok(Zeroizing::new(z))
    }
}

/// The hash of an X9.63 KDF, as the key agreement scheme names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KdfHash {
    /// SHA-1 (`dhSinglePass-stdDH-sha1kdf-scheme`; OpenSSL 3.0's default).
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256 (what sealmail writes).
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

/// ANSI X9.63 KDF (SEC 1 §3.6.1): `K = H(Z || 1 || info) || H(Z || 2 ||
/// info) || ...` (32-bit big-endian counter), cut to `len` bytes.
pub fn x963_kdf(hash: KdfHash, z: &[u8], shared_info: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    fn run<D: Digest>(z: &[u8], info: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(len + 64));
        let mut counter: u32 = 1;
        while out.len() < len {
            let mut h = D::new();
            h.update(z);
            h.update(counter.to_be_bytes());
            h.update(info);
            out.extend_from_slice(&h.finalize());
            counter = counter.wrapping_add(1);
        }
        out.truncate(len);
        out
    }
    match hash {
        KdfHash::Sha1 => run::<sha1::Sha1>(z, shared_info, len),
        KdfHash::Sha224 => run::<sha2::Sha224>(z, shared_info, len),
        KdfHash::Sha256 => run::<sha2::Sha256>(z, shared_info, len),
        KdfHash::Sha384 => run::<sha2::Sha384>(z, shared_info, len),
        KdfHash::Sha512 => run::<sha2::Sha512>(z, shared_info, len),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ANSI X9.63 test vector (NIST CAVS, SHA-256, 128-bit key, no
    /// shared info), as used by OpenSSL's test suite (evpkdf_x963.txt).
    #[test]
    fn x963_known_answer() {
        let z = hex("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08");
        let k = x963_kdf(KdfHash::Sha256, &z, &[], 16);
        assert_eq!(k.as_slice(), hex("443024c3dae66b95e6f5670601558f71"));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn both_sides_agree_on_every_curve() {
        for curve in [Curve::P256, Curve::P384, Curve::P521] {
            let private = match curve {
                Curve::P256 => EcPrivateKey::P256(p256::SecretKey::random(&mut rand_core::OsRng)),
                Curve::P384 => EcPrivateKey::P384(p384::SecretKey::random(&mut rand_core::OsRng)),
                Curve::P521 => EcPrivateKey::P521(p521::SecretKey::random(&mut rand_core::OsRng)),
            };
            let public = EcPublicKey::new(curve, &private.public_point()).unwrap();
            let (ephemeral, z) = public.agree_ephemeral().unwrap();
            assert_eq!(private.agree(&ephemeral).unwrap(), z, "{curve:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Our X9.63 KDF equals OpenSSL's (`openssl kdf X963KDF`: the
        /// `openssl` crate does not bind EVP_KDF), for every hash.
        #[test]
        fn kdf_matches_openssl(
            hash in 0usize..5,
            z in proptest::collection::vec(proptest::num::u8::ANY, 1..80),
            info in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
            len in 1usize..100,
        ) {
            let (hash, name) = [(KdfHash::Sha1, "SHA1"), (KdfHash::Sha224, "SHA224"),
                (KdfHash::Sha256, "SHA256"), (KdfHash::Sha384, "SHA384"),
                (KdfHash::Sha512, "SHA512")][hash];
            let hexed = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
            let mut cmd = std::process::Command::new("openssl");
            cmd.args(["kdf", "-keylen", &len.to_string(), "-kdfopt", &format!("digest:{name}"),
                "-kdfopt", &format!("hexsecret:{}", hexed(&z))]);
            if !info.is_empty() {
                cmd.args(["-kdfopt", &format!("hexinfo:{}", hexed(&info))]);
            }
            let out = cmd.arg("X963KDF").output().expect("openssl is needed for this test");
            let text = String::from_utf8(out.stdout).unwrap().replace([':', '\n'], "");
            proptest::prop_assert_eq!(hexed(&x963_kdf(hash, &z, &info, len)), text.to_lowercase());
        }
    }
}
