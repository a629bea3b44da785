//! Arbitrary bytes as an uploaded certificate file (PEM, DER, PKCS#7):
//! parsing and every rule must answer with a value or an error, never a
//! panic; whatever parses re-parses from its own DER to the same
//! fingerprint.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use sealmail::certs::{self, Policy};

fuzz_target!(|input: &[u8]| {
    let Ok(parsed) = certs::parse(input) else { return };
    let addresses = vec!["a@example.org".to_string()];
    let policy = Policy {
        now: SystemTime::now(),
        addresses: Some(&addresses),
        existing: &[],
    };
    for cert in &parsed {
        let _ = certs::evaluate(cert, &policy);
        let _ = cert.info();
        let again = certs::parse(cert.der()).expect("a certificate re-parses from its DER");
        assert_eq!(again[0].fingerprint(), cert.fingerprint());
    }
    let _ = certs::recipients(input, &policy);
});
