//! Arbitrary bytes through sealmail's KeyAgreeRecipientInfo reader
//! (`KariParams::from_kari`: scheme, KDF hash, key wrap, originator key,
//! ukm) and, as a whole CMS object, through the EC opening path (ECDH
//! with a fixed P-256 key, X9.63 KDF, AES key unwrap). No panic; parsed
//! parameters re-encode and parse back to the same value.
#![no_main]

use std::sync::OnceLock;

use cms::enveloped_data::KeyAgreeRecipientInfo;
use der::{Decode as _, Encode as _};
use libfuzzer_sys::fuzz_target;
use sealmail::smime::{Decryptor, KariParams};

/// A throwaway P-256 key: `openssl genpkey -algorithm EC -pkeyopt
/// ec_paramgen_curve:P-256`.
const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgD1nwu1heTK+vGG+/
uEXeBFMA7z2jLWeXyQLCFcoVUVChRANCAAQU8vymcyomCc06jyYXco1FisnVIRAY
dk5LpG7zokCV1KTl4vrVqhcEdX8FIiGqqBQaW9BdoRR1sd59qXXpBwG8
-----END PRIVATE KEY-----
";

fn decryptor() -> &'static Decryptor {
    static KEY: OnceLock<Decryptor> = OnceLock::new();
    KEY.get_or_init(|| Decryptor::from_pem(KEY_PEM, None).expect("the fixed key parses"))
}

fuzz_target!(|input: &[u8]| {
    if let Ok(kari) = KeyAgreeRecipientInfo::from_der(input) {
        if let Ok(params) = KariParams::from_kari(&kari) {
            let again = params
                .to_kari(kari.recipient_enc_keys.clone())
                .expect("parsed parameters re-encode");
            let der_bytes = again.to_der().expect("DER");
            let back = KeyAgreeRecipientInfo::from_der(&der_bytes).expect("re-encoded KARI decodes");
            assert_eq!(KariParams::from_kari(&back).expect("and parses"), params);
        }
    }
    let _ = decryptor().decrypt_cms(input);
});
