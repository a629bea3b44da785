//! Test certificates, made at test time with the `openssl` command line.
//!
//! Key generation is the slow part (RSA-4096 takes seconds), so key pairs
//! are made once per test binary and shared through [`pair`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::tools::{require, run};

/// A certificate and its unencrypted private key, both PEM files.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub email: String,
}

impl KeyPair {
    pub fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(&self.cert).unwrap()
    }
    pub fn key_pem(&self) -> Vec<u8> {
        std::fs::read(&self.key).unwrap()
    }
    /// The certificate in DER form.
    pub fn cert_der(&self) -> Vec<u8> {
        run(
            Command::new("openssl")
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&self.cert),
            b"",
        )
    }
}

/// A directory that lives as long as the test binary.
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().unwrap()).path()
}

/// A fresh temporary directory for one test.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// The default extensions of a good S/MIME encryption certificate.
pub fn smime_extensions(email: &str) -> Vec<String> {
    vec![
        format!("subjectAltName=email:{email}"),
        "keyUsage=critical,digitalSignature,keyEncipherment".into(),
        "extendedKeyUsage=emailProtection".into(),
        "basicConstraints=critical,CA:FALSE".into(),
    ]
}

/// A self-signed RSA certificate for `email` with `bits`-bit key and the
/// given `-addext` extensions, made in `dir` under `name`.
pub fn self_signed(
    dir: &Path,
    name: &str,
    key_spec: &str,
    subject: &str,
    exts: &[String],
) -> KeyPair {
    require("openssl");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let mut cmd = Command::new("openssl");
    cmd.args([
        "req", "-x509", "-nodes", "-days", "365", "-newkey", key_spec,
    ])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .args(["-subj", subject]);
    for e in exts {
        cmd.args(["-addext", e]);
    }
    run(&mut cmd, b"");
    let email = subject
        .split("emailAddress=")
        .nth(1)
        .unwrap_or_default()
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    KeyPair { cert, key, email }
}

/// A good S/MIME key pair for `email`, RSA with `bits` bits. Made once per
/// test binary for each (`email`, `bits`) and then shared.
pub fn pair(email: &str, bits: u32) -> KeyPair {
    static CACHE: OnceLock<Mutex<HashMap<(String, u32), KeyPair>>> = OnceLock::new();
    // why: the lock is held while the key is made, so that two tests asking
    // for the same pair at once do not both write its files.
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry((email.to_string(), bits))
        .or_insert_with(|| {
            let name = format!("{}-{bits}", email.replace(['@', '.'], "_"));
            self_signed(
                scratch(),
                &name,
                &format!("rsa:{bits}"),
                &format!("/CN={email}/emailAddress={email}"),
                &smime_extensions(email),
            )
        })
        .clone()
}

/// The extensions of a good S/MIME certificate with an EC key: key
/// agreement is how EC keys encrypt (RFC 5753), so KeyUsage says
/// keyAgreement rather than keyEncipherment.
pub fn ec_extensions(email: &str) -> Vec<String> {
    vec![
        format!("subjectAltName=email:{email}"),
        "keyUsage=critical,digitalSignature,keyAgreement".into(),
        "extendedKeyUsage=emailProtection".into(),
        "basicConstraints=critical,CA:FALSE".into(),
    ]
}

/// A good S/MIME key pair for `email` with an EC key on `curve` (an
/// OpenSSL curve name: `P-256`, `P-384`, `P-521`, `secp256k1`, ...). Made
/// once per test binary for each (`email`, `curve`).
pub fn ec_pair(email: &str, curve: &str) -> KeyPair {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), KeyPair>>> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    cache
        .entry((email.to_string(), curve.to_string()))
        .or_insert_with(|| {
            let name = format!("{}-{curve}", email.replace(['@', '.'], "_"));
            ec_self_signed(
                scratch(),
                &name,
                &[&format!("ec_paramgen_curve:{curve}")],
                email,
            )
        })
        .clone()
}

/// A self-signed EC certificate for `email` with the key `openssl req
/// -newkey ec` makes with `pkeyopts` (each passed as `-pkeyopt`).
pub fn ec_self_signed(dir: &Path, name: &str, pkeyopts: &[&str], email: &str) -> KeyPair {
    require("openssl");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-nodes", "-days", "365", "-newkey", "ec"]);
    for opt in pkeyopts {
        cmd.args(["-pkeyopt", opt]);
    }
    cmd.arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={email}/emailAddress={email}")]);
    for e in ec_extensions(email) {
        cmd.args(["-addext", &e]);
    }
    run(&mut cmd, b"");
    KeyPair {
        cert,
        key,
        email: email.to_string(),
    }
}
