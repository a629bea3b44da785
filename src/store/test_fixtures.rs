//! Records the store's unit tests build over and over: a plain message
//! and a certificate record.

use super::{Flags, HeaderFields, NewCertificate, NewMessage};
use crate::certs::Fingerprint;

/// A plaintext message of `raw`, no flags, a fixed date.
pub(crate) fn message(raw: &[u8]) -> NewMessage<'_> {
    NewMessage {
        raw,
        flags: Flags::default(),
        internal_date: 1_700_000_000,
        headers: HeaderFields::default(),
        encrypted: false,
        unique: false,
    }
}

/// An active RSA certificate record for `email`, distinct per `seed`.
pub(crate) fn cert(seed: u8, email: &str) -> NewCertificate {
    let der = vec![seed; 300];
    NewCertificate {
        fingerprint: Fingerprint::of_der(&der),
        der,
        subject: format!("CN=test {seed}"),
        issuer: "CN=CA".into(),
        serial_number: "01".into(),
        email_addresses: vec![email.into()],
        not_before: 0,
        not_after: 4_000_000_000,
        key_algorithm: "RSA".into(),
        key_size: Some(2048),
        description: "laptop".into(),
        is_active: true,
    }
}
