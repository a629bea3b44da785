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
    let algorithm = AnyRef::from_der(info.value()).map_err(malformed)?;
    let scheme = ObjectIdentifier::decode(&mut SliceReader::new(algorithm.value()).map_err(malformed)?)
        .map_err(malformed)?;
    if scheme != PBES2 {
        return Ok(Bag::Legacy);
    }
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(value.value()).map_err(malformed)?;
    let doc = encrypted
        .decrypt(password.as_bytes())
        .map_err(|_| Pkcs12Error::WrongPassword)?;
    Ok(Bag::Key(Zeroizing::new(doc.as_bytes().to_vec())))
}

fn context(number: u8) -> Tag {
    Tag::ContextSpecific {
        constructed: true,
        number: TagNumber::new(number),
    }
}
