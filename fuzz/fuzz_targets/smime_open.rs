//! Arbitrary bytes through the S/MIME readers: the header splitter (every
//! byte lands in exactly one part, in order), the already-encrypted
//! detector, and the decryptor (base64, BER normaliser, CMS parser) with a
//! key made at start-up. No panic, and the split round-trips.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealmail::smime::{already_encrypted, Decryptor, Split};

fn decryptor() -> &'static Decryptor {
    static KEY: OnceLock<Decryptor> = OnceLock::new();
    KEY.get_or_init(|| {
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).expect("key generation");
        Decryptor::new(key, None)
    })
}

fuzz_target!(|input: &[u8]| {
    let split = Split::new(input);
    let mut joined = Vec::with_capacity(input.len());
    for field in split.outer.iter().chain(&split.content_fields) {
        joined.extend_from_slice(field);
    }
    assert_eq!(joined.len() + split.separator.len() + split.body.len(), input.len());
    assert!(input.ends_with(split.body));
    let _ = split.inner_entity();
    let _ = already_encrypted(input, &split);
    let _ = decryptor().decrypt_message(input);
    let _ = decryptor().decrypt_cms(input);
});
