//! Secrets for store tests: PEM-shaped, random, generated at test time.
#![allow(dead_code, unreachable_pub)]

use base64::Engine as _;
use rand::RngCore;

/// A PEM-shaped secret with a random body (the store treats it as opaque).
pub fn fake_pem() -> Vec<u8> {
    let mut der = vec![0u8; 1200];
    rand::thread_rng().fill_bytes(&mut der);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem.into_bytes()
}
