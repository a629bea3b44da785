//! RSA PKCS#1 v1.5 key transport of the content-encryption key
//! (RFC 8017 §7.2.1, as CMS uses it in RFC 3370 §4.2.1).
//!
//! why not `rsa::RsaPublicKey::encrypt`: the public operation is the
//! dominant cost of sealing a message (the `rsa` 0.9 line spends
//! 200–430 µs on it, OpenSSL about 20 µs), and a list fans one message out
//! to thousands of copies. Here the exponentiation runs on
//! `crypto-bigint`'s constant-time multiplication and Montgomery
//! reduction, so the padded content key does not leak through timing, and
//! `m^65537` costs sixteen squarings (`square_wide`: about half the limb
//! products, 1.6 µs against 2.2 µs for a 2048-bit multiplication) and one
//! multiplication.
//!
//! The Montgomery constant `R² mod n` is computed with the `rsa` crate's
//! variable-time big integers: it depends on the public modulus only, and
//! `crypto-bigint` 0.5's constant-time division for it
//! (`DynResidueParams::new`) cost seven times the exponentiation itself —
//! paid for every copy of a list fan-out. Private key operations stay with
//! the `rsa` crate (see `decrypt`).

use crypto_bigint::modular::montgomery_reduction;
use crypto_bigint::{Limb, Uint, Word};
use rand_core::CryptoRngCore;
use rsa::pkcs1;
use zeroize::Zeroize;

use super::SmimeError;

/// The smallest and largest modulus we transport keys to, in bits. The
/// certificate rules accept 2048–8192; 1024 is allowed here so that the
/// offline filter can say precisely why such a key was refused upstream.
const MIN_MODULUS_BITS: usize = 1024;
const MAX_MODULUS_BYTES: usize = 1024;

/// Montgomery parameters of one modulus with `L` 64-bit limbs.
#[derive(Clone, Debug)]
struct Montgomery<const L: usize> {
    n: Uint<L>,
    /// `R² mod n` with `R = 2^(64·L)`.
    r2: Uint<L>,
    /// `-n⁻¹ mod 2^64`.
    n_neg_inv: Limb,
}

impl<const L: usize> Montgomery<L> {
    fn new(n_be: &[u8]) -> Self {
        let n_big = rsa::BigUint::from_bytes_be(n_be);
        let r2 = (rsa::BigUint::from(1u8) << (2 * 64 * L)) % &n_big;
        let n = uint_from_be::<L>(n_be);
        Self {
            n,
            r2: uint_from_be::<L>(&r2.to_bytes_be()),
            n_neg_inv: neg_inverse(n.as_words()[0]),
        }
    }

    /// `a·b·R⁻¹ mod n`, constant time.
    fn mul(&self, a: &Uint<L>, b: &Uint<L>) -> Uint<L> {
        montgomery_reduction(&a.mul_wide(b), &self.n, self.n_neg_inv)
    }

    /// `a²·R⁻¹ mod n`, constant time: a squaring computes about half the
    /// limb products of a multiplication.
    fn square(&self, a: &Uint<L>) -> Uint<L> {
        montgomery_reduction(&a.square_wide(), &self.n, self.n_neg_inv)
    }

    /// `m^e mod n` for `m < n`.
    fn pow(&self, m: &Uint<L>, e: &[u8]) -> Uint<L> {
        let base = self.mul(m, &self.r2);
        let x = if e == [0x01, 0x00, 0x01] {
            // why: 65537 = 2^16 + 1, the exponent of nearly every certificate.
            let mut x = base;
            for _ in 0..16 {
                x = self.square(&x);
            }
            self.mul(&x, &base)
        } else {
            // The exponent is public: plain left-to-right square-and-multiply.
            let mut x = self.mul(&Uint::ONE, &self.r2);
            for bit in e
                .iter()
                .flat_map(|byte| (0..8).rev().map(move |i| byte >> i & 1))
            {
                x = self.square(&x);
                if bit == 1 {
                    x = self.mul(&x, &base);
                }
            }
            x
        };
        montgomery_reduction(&(x, Uint::ZERO), &self.n, self.n_neg_inv)
    }
}

/// `-n0⁻¹ mod 2^64` for odd `n0`, by Newton's iteration (each step
/// doubles the correct low bits: 1, 2, 4, ..., 64).
fn neg_inverse(n0: Word) -> Limb {
    let mut inv: Word = 1;
    for _ in 0..6 {
        inv = inv.wrapping_mul((2 as Word).wrapping_sub(n0.wrapping_mul(inv)));
    }
    Limb(inv.wrapping_neg())
}

/// Montgomery parameters of one public key, sized to the modulus (boxed:
/// the 8192-bit variant is 2 KiB).
#[derive(Clone, Debug)]
enum Modulus {
    L32(Box<Montgomery<32>>),
    L48(Box<Montgomery<48>>),
    L64(Box<Montgomery<64>>),
    L96(Box<Montgomery<96>>),
    L128(Box<Montgomery<128>>),
}

/// An RSA public key prepared for key transport.
#[derive(Clone, Debug)]
pub(crate) struct RsaKeyTransport {
    modulus: Modulus,
    /// Length of the modulus in bytes (`k` in RFC 8017).
    k: usize,
    /// The public exponent, big-endian, without leading zeros.
    e: Vec<u8>,
}

impl RsaKeyTransport {
    /// Prepares the key in a SubjectPublicKeyInfo's `subjectPublicKey`
    /// bits (a PKCS#1 `RSAPublicKey`). The input comes from a certificate
    /// a user uploaded: every check fails softly.
    pub(crate) fn from_pkcs1_der(der_bytes: &[u8]) -> Result<Self, SmimeError> {
        use der::Decode as _;
        let key =
            pkcs1::RsaPublicKey::from_der(der_bytes).map_err(|e| SmimeError::BadPublicKey {
                detail: e.to_string(),
            })?;
        let n = key.modulus.as_bytes();
        let e = key.public_exponent.as_bytes();
        let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BYTES * 8).contains(&bits) {
            return Err(SmimeError::UnsupportedKeySize { bits });
        }
        let n_is_odd = n.last().is_some_and(|b| b & 1 == 1);
        // why at most 32 bits: the exponent sets the cost of every copy;
        // certificates stored before the upload rule checked it must not
        // make one account's deliveries hold everybody's CPU.
        let e_is_usable = e.len() <= 4 && e.last().is_some_and(|b| b & 1 == 1) && e != [1];
        if !n_is_odd || !e_is_usable {
            return Err(SmimeError::BadPublicKey {
                detail: "modulus must be odd and the exponent odd, at least 3 and at most 2^32-1"
                    .into(),
            });
        }
        let modulus = match n.len() {
            0..=256 => Modulus::L32(Box::new(Montgomery::new(n))),
            257..=384 => Modulus::L48(Box::new(Montgomery::new(n))),
            385..=512 => Modulus::L64(Box::new(Montgomery::new(n))),
            513..=768 => Modulus::L96(Box::new(Montgomery::new(n))),
            _ => Modulus::L128(Box::new(Montgomery::new(n))),
        };
        Ok(Self {
            modulus,
            k: n.len(),
            e: e.to_vec(),
        })
    }

    /// Modulus size in bytes.
    #[cfg(test)]
    pub(crate) fn size_bytes(&self) -> usize {
        self.k
    }

    /// Encrypts `key` (the content-encryption key) with EME-PKCS1-v1_5.
    pub(crate) fn encrypt(
        &self,
        rng: &mut impl CryptoRngCore,
        key: &[u8],
    ) -> Result<Vec<u8>, SmimeError> {
        Ok(self.encrypt_encoded(pkcs1_v15_pad(rng, key, self.k)?))
    }

    /// Encrypts `key` with EME-OAEP (SHA-256, MGF1-SHA-256, empty label).
    pub(crate) fn encrypt_oaep(
        &self,
        rng: &mut impl CryptoRngCore,
        key: &[u8],
    ) -> Result<Vec<u8>, SmimeError> {
        Ok(self.encrypt_encoded(super::oaep::eme_oaep_sha256(rng, key, self.k)?))
    }

    /// `em^e mod n` for an encoded message of `k` bytes (its first byte
    /// zero, so `em < n`); `em` is wiped.
    fn encrypt_encoded(&self, mut em: Vec<u8>) -> Vec<u8> {
        let out = match &self.modulus {
            Modulus::L32(p) => modexp(p, &em, &self.e, self.k),
            Modulus::L48(p) => modexp(p, &em, &self.e, self.k),
            Modulus::L64(p) => modexp(p, &em, &self.e, self.k),
            Modulus::L96(p) => modexp(p, &em, &self.e, self.k),
            Modulus::L128(p) => modexp(p, &em, &self.e, self.k),
        };
        em.zeroize();
        out
    }
}

/// `EM = 0x00 || 0x02 || PS || 0x00 || M` with at least eight non-zero
/// random octets in PS.
fn pkcs1_v15_pad(
    rng: &mut impl CryptoRngCore,
    msg: &[u8],
    k: usize,
) -> Result<Vec<u8>, SmimeError> {
    if msg.len() + 11 > k {
        return Err(SmimeError::BadPublicKey {
            detail: format!("a {k}-byte modulus cannot carry a {}-byte key", msg.len()),
        });
    }
    let mut em = vec![0u8; k];
    em[1] = 2;
    let ps_end = k - msg.len() - 1;
    let ps = &mut em[2..ps_end];
    rng.fill_bytes(ps);
    for byte in ps.iter_mut() {
        while *byte == 0 {
            let mut one = [0u8; 1];
            rng.fill_bytes(&mut one);
            *byte = one[0];
        }
    }
    em[k - msg.len()..].copy_from_slice(msg);
    Ok(em)
}

/// `em^e mod n`, as `k` big-endian bytes.
fn modexp<const L: usize>(params: &Montgomery<L>, em: &[u8], e: &[u8], k: usize) -> Vec<u8> {
    let mut m = uint_from_be::<L>(em);
    let mut c = params.pow(&m, e);
    m.zeroize();
    let full = uint_to_be(&c);
    c.zeroize();
    full[full.len() - k..].to_vec()
}

/// A `Uint<L>` from big-endian bytes no longer than `8 * L`.
fn uint_from_be<const L: usize>(bytes: &[u8]) -> Uint<L> {
    let mut words = [Word::default(); L];
    for (i, chunk) in bytes
        .rchunks(std::mem::size_of::<Word>())
        .enumerate()
        .take(L)
    {
        let mut buf = [0u8; std::mem::size_of::<Word>()];
        buf[std::mem::size_of::<Word>() - chunk.len()..].copy_from_slice(chunk);
        words[i] = Word::from_be_bytes(buf);
    }
    Uint::from_words(words)
}

fn uint_to_be<const L: usize>(x: &Uint<L>) -> Vec<u8> {
    x.as_words()
        .iter()
        .rev()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::PublicKeyParts;
    use rsa::{Pkcs1v15Encrypt, RsaPrivateKey};

    fn pkcs1_public(key: &RsaPrivateKey) -> Vec<u8> {
        use rsa::pkcs1::EncodeRsaPublicKey;
        key.to_public_key().to_pkcs1_der().unwrap().into_vec()
    }

    #[test]
    fn the_rsa_crate_decrypts_what_we_transport() {
        let mut rng = rand::thread_rng();
        for bits in [1024, 2048] {
            let private = RsaPrivateKey::new(&mut rng, bits).unwrap();
            let kt = RsaKeyTransport::from_pkcs1_der(&pkcs1_public(&private)).unwrap();
            assert_eq!(kt.size_bytes(), private.size());
            for len in [16u8, 32] {
                let cek: Vec<u8> = (0..len).map(|i| i ^ 0xa5).collect();
                let wrapped = kt.encrypt(&mut rng, &cek).unwrap();
                assert_eq!(wrapped.len(), private.size());
                assert_eq!(private.decrypt(Pkcs1v15Encrypt, &wrapped).unwrap(), cek);
            }
        }
    }

    #[test]
    fn the_rsa_crate_opens_our_oaep() {
        let mut rng = rand::thread_rng();
        let private = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let kt = RsaKeyTransport::from_pkcs1_der(&pkcs1_public(&private)).unwrap();
        for len in [16u8, 32] {
            let cek: Vec<u8> = (0..len).map(|i| i ^ 0x3c).collect();
            let wrapped = kt.encrypt_oaep(&mut rng, &cek).unwrap();
            let padding = rsa::Oaep::new::<sha2::Sha256>();
            assert_eq!(private.decrypt(padding, &wrapped).unwrap(), cek);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// OpenSSL (through the `openssl` crate) opens what our OAEP
        /// encoding and public-key operation produce, for any key length.
        #[test]
        fn openssl_opens_our_oaep(cek in proptest::collection::vec(proptest::num::u8::ANY, 1..=64)) {
            let (pkey, kt) = openssl_key();
            let wrapped = kt.encrypt_oaep(&mut rand::thread_rng(), &cek).unwrap();
            let mut ctx = openssl::pkey_ctx::PkeyCtx::new(pkey).unwrap();
            ctx.decrypt_init().unwrap();
            ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP).unwrap();
            ctx.set_rsa_oaep_md(openssl::md::Md::sha256()).unwrap();
            ctx.set_rsa_mgf1_md(openssl::md::Md::sha256()).unwrap();
            let mut out = Vec::new();
            ctx.decrypt_to_vec(&wrapped, &mut out).unwrap();
            proptest::prop_assert_eq!(out, cek);
        }
    }

    /// One OpenSSL-made 2048-bit key for the proptest (made once: key
    /// generation is the slow part).
    fn openssl_key() -> (
        &'static openssl::pkey::PKey<openssl::pkey::Private>,
        RsaKeyTransport,
    ) {
        static KEY: std::sync::OnceLock<openssl::pkey::PKey<openssl::pkey::Private>> =
            std::sync::OnceLock::new();
        let pkey = KEY.get_or_init(|| {
            openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap()
        });
        let pkcs1 = pkey.rsa().unwrap().public_key_to_der_pkcs1().unwrap();
        (pkey, RsaKeyTransport::from_pkcs1_der(&pkcs1).unwrap())
    }

    #[test]
    fn other_exponents_use_the_general_ladder() {
        let mut rng = rand::thread_rng();
        let e = rsa::BigUint::from(3u32);
        let private = RsaPrivateKey::new_with_exp(&mut rng, 1024, &e).unwrap();
        let kt = RsaKeyTransport::from_pkcs1_der(&pkcs1_public(&private)).unwrap();
        let wrapped = kt.encrypt(&mut rng, b"0123456789abcdef").unwrap();
        assert_eq!(
            private.decrypt(Pkcs1v15Encrypt, &wrapped).unwrap(),
            b"0123456789abcdef"
        );
    }

    #[test]
    fn neg_inverse_is_the_negated_inverse() {
        for n0 in [1 as Word, 3, 0xffff_ffff_ffff_ffff, 0x1234_5678_9abc_def1] {
            assert_eq!(n0.wrapping_mul(neg_inverse(n0).0.wrapping_neg()), 1);
        }
    }

    #[test]
    fn hostile_keys_are_refused() {
        assert!(RsaKeyTransport::from_pkcs1_der(b"\x30\x03\x02\x01\x05").is_err());
        assert!(RsaKeyTransport::from_pkcs1_der(b"garbage").is_err());
        // An even modulus of 1024 bits.
        let mut n = vec![0xc0u8; 128];
        n[127] = 0x02;
        let key = pkcs1::RsaPublicKey {
            modulus: der::asn1::UintRef::new(&n).unwrap(),
            public_exponent: der::asn1::UintRef::new(&[1, 0, 1]).unwrap(),
        };
        let der_bytes = der::Encode::to_der(&key).unwrap();
        assert!(matches!(
            RsaKeyTransport::from_pkcs1_der(&der_bytes),
            Err(SmimeError::BadPublicKey { .. })
        ));
    }
}
