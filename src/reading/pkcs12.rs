//! The private key out of a PKCS#12 file (RFC 7292), as mail clients and
//! `openssl pkcs12 -export` write them: the PFX's authenticated safe holds
//! `data` contents whose SafeContents carry a `pkcs8ShroudedKeyBag`
//! (an RFC 5958 EncryptedPrivateKeyInfo, PBES2 with PBKDF2 and AES-CBC in
//! OpenSSL 3's default) or a plain `keyBag`. Certificate bags, usually
//! in an `encryptedData` content, are not needed: the account already has
//! the certificate, and the key is matched to it by its public half.
//!
//! Not read: the legacy PKCS#12 PBE schemes (3DES and RC2 with SHA-1,
//! `openssl pkcs12 -legacy`, older Windows exports), refused with a
//! message saying how to re-export. The file's MAC is not checked: a
//! wrong password fails the key's own decryption (padding, then the
//! PKCS#8 structure), and a key that opens is still checked against the
//! account's certificates.
//!
//! Input is attacker-controlled: DER or BER (Windows and macOS write
//! indefinite lengths), at most `import::MAX_KEY_INPUT` bytes, parsed with
//! the `der` crate's bounds-checked readers.

use der::asn1::{ObjectIdentifier, OctetStringRef};
use der::{AnyRef, Decode as _, Reader as _, SliceReader, Tag, TagNumber, Tagged as _};
use zeroize::Zeroizing;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const KEY_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.1");
const SHROUDED_KEY_BAG: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.2");
const PBES2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.5.13");
/// PBKDF2 rounds accepted. why 1,000,000: OpenSSL 3 writes 2,048, recent
/// Windows and macOS exports up to a few hundred thousand; a million
/// costs about a second, a crafted 2^31 would cost half an hour.
const MAX_PBKDF2_ROUNDS: u32 = 1_000_000;

/// Why no key came out.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs12Error {
    /// Not a PKCS#12 file.
    #[error("not a PKCS#12 file ({0}); give the .p12/.pfx file as exported, or the key as PEM")]
    Malformed(String),
    /// A key encrypted with a legacy scheme.
    #[error("the key in the PKCS#12 file is encrypted with a legacy scheme (3DES/RC2); re-export it with OpenSSL 3's defaults (`openssl pkcs12 -export` without -legacy) or give the key as PEM")]
    Legacy,
    /// The password does not open the key.
    #[error("the PKCS#12 password does not open the key in it")]
    WrongPassword,
    /// No key bag inside.
    #[error("the PKCS#12 file holds no private key")]
    NoKey,
    /// Key derivation too costly to run for a request.
    #[error("the PKCS#12 file's key derivation is too costly ({0}); re-export it with OpenSSL's defaults or give the key as PEM")]
    TooCostly(String),
}

fn malformed(e: impl std::fmt::Display) -> Pkcs12Error {
    Pkcs12Error::Malformed(e.to_string())
}

/// The first private key in the PKCS#12 file `pfx`, as PKCS#8 DER.
pub(super) fn private_key(pfx: &[u8], password: &str) -> Result<Zeroizing<Vec<u8>>, Pkcs12Error> {
    let der_bytes = crate::smime::ber_to_der(pfx).map_err(malformed)?;
    // PFX ::= SEQUENCE { version INTEGER {v3(3)}, authSafe ContentInfo,
    //                    macData MacData OPTIONAL }
    let pfx = AnyRef::from_der(&der_bytes).map_err(malformed)?;
    let mut r = SliceReader::new(pfx.value()).map_err(malformed)?;
    let version = AnyRef::decode(&mut r).map_err(malformed)?;
    if version.tag() != Tag::Integer || version.value() != [3] {
        return Err(malformed("not version 3"));
    }
    let auth_safe = data_content(&mut r)?.ok_or_else(|| malformed("authSafe is not data"))?;
    // AuthenticatedSafe ::= SEQUENCE OF ContentInfo
    let safes = AnyRef::from_der(auth_safe).map_err(malformed)?;
    let mut safes = SliceReader::new(safes.value()).map_err(malformed)?;
    let mut legacy = false;
    while !safes.is_finished() {
        let Some(contents) = data_content(&mut safes)? else {
            continue; // encryptedData: certificates
        };
        // SafeContents ::= SEQUENCE OF SafeBag
        let bags = AnyRef::from_der(contents).map_err(malformed)?;
        let mut bags = SliceReader::new(bags.value()).map_err(malformed)?;
        while !bags.is_finished() {
            match key_of_bag(AnyRef::decode(&mut bags).map_err(malformed)?, password)? {
                Bag::Key(key) => return Ok(key),
                Bag::Legacy => legacy = true,
                Bag::Other => {}
            }
        }
    }
    Err(if legacy {
        Pkcs12Error::Legacy
    } else {
        Pkcs12Error::NoKey
    })
}

/// The next ContentInfo of `r`: its content octets when it is `data`,
/// `None` when it is another type.
fn data_content<'a>(r: &mut SliceReader<'a>) -> Result<Option<&'a [u8]>, Pkcs12Error> {
    // ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT ANY }
    let info = AnyRef::decode(r).map_err(malformed)?;
    let mut inner = SliceReader::new(info.value()).map_err(malformed)?;
    let kind = ObjectIdentifier::decode(&mut inner).map_err(malformed)?;
    if kind != ID_DATA {
        return Ok(None);
    }
    let explicit = AnyRef::decode(&mut inner).map_err(malformed)?;
    // why both forms: the BER-to-DER pass flattens a `[0]` that holds
    // only octet strings (CMS's constructed encryptedContent) into a
    // primitive `[0]` of their octets; here that is `[0] { OCTET STRING }`.
    if explicit.tag() == primitive(0) {
        return Ok(Some(explicit.value()));
    }
    if explicit.tag() != context(0) {
        return Err(malformed("content is not [0]"));
    }
    let octets = OctetStringRef::from_der(explicit.value()).map_err(malformed)?;
    Ok(Some(octets.as_bytes()))
}

enum Bag {
    Key(Zeroizing<Vec<u8>>),
    Legacy,
    Other,
}

/// SafeBag ::= SEQUENCE { bagId OID, bagValue [0] EXPLICIT ANY,
///                        bagAttributes SET OF PKCS12Attribute OPTIONAL }
fn key_of_bag(bag: AnyRef<'_>, password: &str) -> Result<Bag, Pkcs12Error> {
    let mut r = SliceReader::new(bag.value()).map_err(malformed)?;
    let id = ObjectIdentifier::decode(&mut r).map_err(malformed)?;
    let value = AnyRef::decode(&mut r).map_err(malformed)?;
    if value.tag() != context(0) {
        return Err(malformed("bagValue is not [0]"));
    }
    if id == KEY_BAG {
        return Ok(Bag::Key(Zeroizing::new(value.value().to_vec())));
    }
    if id != SHROUDED_KEY_BAG {
        return Ok(Bag::Other);
    }
    // EncryptedPrivateKeyInfo ::= SEQUENCE { encryptionAlgorithm
    //     AlgorithmIdentifier, encryptedData OCTET STRING }: the scheme
    // first, so a legacy one is named rather than failing to parse.
    let info = AnyRef::from_der(value.value()).map_err(malformed)?;
    let mut fields = SliceReader::new(info.value()).map_err(malformed)?;
    let algorithm = AnyRef::decode(&mut fields).map_err(malformed)?;
    let mut algorithm = SliceReader::new(algorithm.value()).map_err(malformed)?;
    let scheme = ObjectIdentifier::decode(&mut algorithm).map_err(malformed)?;
    if scheme != PBES2 {
        return Ok(Bag::Legacy);
    }
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(value.value()).map_err(malformed)?;
    check_cost(&encrypted.encryption_algorithm)?;
    let doc = encrypted
        .decrypt(password.as_bytes())
        .map_err(|_| Pkcs12Error::WrongPassword)?;
    Ok(Bag::Key(Zeroizing::new(doc.as_bytes().to_vec())))
}

/// Refuses key derivation a sender could make cost minutes of CPU or
/// gigabytes of memory: PBKDF2 over [`MAX_PBKDF2_ROUNDS`], or scrypt
/// (no mail client writes it into PKCS#12).
fn check_cost(scheme: &pkcs5::EncryptionScheme<'_>) -> Result<(), Pkcs12Error> {
    let Some(params) = scheme.pbes2() else {
        return Err(Pkcs12Error::Legacy);
    };
    match &params.kdf {
        pkcs5::pbes2::Kdf::Pbkdf2(p) if p.iteration_count <= MAX_PBKDF2_ROUNDS => Ok(()),
        pkcs5::pbes2::Kdf::Pbkdf2(p) => Err(Pkcs12Error::TooCostly(format!(
            "{} PBKDF2 rounds, at most {MAX_PBKDF2_ROUNDS} are accepted",
            p.iteration_count
        ))),
        _ => Err(Pkcs12Error::TooCostly(
            "scrypt key derivation is not accepted".into(),
        )),
    }
}

fn primitive(number: u8) -> Tag {
    Tag::ContextSpecific {
        constructed: false,
        number: TagNumber::new(number),
    }
}

fn context(number: u8) -> Tag {
    Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::new(number),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// A key pair and its PKCS#12 export, made with the `openssl` command
    /// line at test time.
    fn export(dir: &std::path::Path, extra: &[&str]) -> Option<(Vec<u8>, Vec<u8>)> {
        let key = dir.join("k.pem");
        let cert = dir.join("c.pem");
        let p12 = dir.join("t.p12");
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-nodes", "-newkey", "rsa:2048", "-days", "1", "-subj", "/CN=t",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .ok()?;
        assert!(made.status.success());
        let exported = Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:pw"])
            .args(extra)
            .arg("-inkey")
            .arg(&key)
            .arg("-in")
            .arg(&cert)
            .arg("-out")
            .arg(&p12)
            .output()
            .ok()?;
        if !exported.status.success() {
            return None;
        }
        let der = Command::new("openssl")
            .args(["pkey", "-outform", "DER", "-in"])
            .arg(&key)
            .output()
            .ok()?;
        Some((std::fs::read(&p12).ok()?, der.stdout))
    }

    #[test]
    fn openssl_exports_open_with_their_password_only() {
        let dir = tempfile::tempdir().unwrap();
        let Some((p12, der)) = export(dir.path(), &[]) else {
            return;
        };
        use rsa::pkcs1::DecodeRsaPrivateKey as _;
        use rsa::pkcs8::DecodePrivateKey as _;
        let opened = private_key(&p12, "pw").unwrap();
        assert_eq!(
            rsa::RsaPrivateKey::from_pkcs8_der(&opened).unwrap(),
            rsa::RsaPrivateKey::from_pkcs1_der(&der).unwrap()
        );
        assert!(matches!(
            private_key(&p12, "wrong"),
            Err(Pkcs12Error::WrongPassword)
        ));
    }

    #[test]
    fn legacy_exports_are_named() {
        let dir = tempfile::tempdir().unwrap();
        // why optional: OpenSSL 3 writes these only with its legacy
        // provider installed.
        let Some((p12, _)) = export(dir.path(), &["-legacy"]) else {
            return;
        };
        assert!(matches!(private_key(&p12, "pw"), Err(Pkcs12Error::Legacy)));
    }

    #[test]
    fn costly_key_derivation_is_refused_before_it_runs() {
        let dir = tempfile::tempdir().unwrap();
        let Some((p12, _)) = export(dir.path(), &["-iter", "2000000"]) else {
            return;
        };
        // TooCostly comes from the parameters, before any derivation.
        assert!(matches!(
            private_key(&p12, "pw"),
            Err(Pkcs12Error::TooCostly(_))
        ));
    }

    #[test]
    fn garbage_is_refused_cleanly() {
        for input in [
            &b""[..],
            b"\x30\x03\x02\x01\x03",
            b"\x30\x80\x02\x01\x03\x00\x00",
            &[0x30; 64],
        ] {
            assert!(private_key(input, "pw").is_err());
        }
    }
}
