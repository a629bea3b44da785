//! Certificates that break one rule each, made at test time with the
//! `openssl` command line (no committed keys).
//!
//! RSA key generation is the slow part, so two RSA-2048 keys (a leaf key and
//! a CA key) are made once per test binary and reused; every certificate
//! still gets its own serial, validity and therefore fingerprint.
//!
//! A minimal `openssl.cnf` is passed everywhere: the system one adds
//! `v3_ca` extensions (CA:TRUE) to every `req -x509` certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use super::pki::{scratch, smime_extensions};
use super::tools::{require, run};

/// A minimal OpenSSL config: a `req` section with no default extensions,
/// and a `ca` section for `openssl ca -selfsign` in `dir`.
fn config(dir: &Path, email: &str) -> PathBuf {
    let path = dir.join("openssl.cnf");
    let d = dir.display();
    let text = format!(
        "[req]\n\
         distinguished_name = dn\n\
         [dn]\n\
         [ca]\n\
         default_ca = test_ca\n\
         [test_ca]\n\
         database = {d}/index.txt\n\
         new_certs_dir = {d}\n\
         serial = {d}/serial\n\
         default_md = sha256\n\
         policy = policy_any\n\
         email_in_dn = yes\n\
         unique_subject = no\n\
         [policy_any]\n\
         commonName = supplied\n\
         emailAddress = optional\n\
         [smime]\n\
         subjectAltName = email:{email}\n\
         keyUsage = critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage = emailProtection\n\
         basicConstraints = critical,CA:FALSE\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A private key made once per test binary for each `openssl genpkey`
/// option set, e.g. `["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]`.
pub fn shared_key(name: &str, genpkey_args: &[&str]) -> PathBuf {
    static CACHE: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut guard = cache.lock().unwrap();
    if let Some(p) = guard.get(name) {
        return p.clone();
    }
    require("openssl");
    let path = scratch().join(format!("{name}.key"));
    run(
        Command::new("openssl")
            .arg("genpkey")
            .args(genpkey_args)
            .arg("-out")
            .arg(&path),
        b"",
    );
    guard.insert(name.to_string(), path.clone());
    path
}

/// The RSA-2048 key of leaf certificates.
pub fn rsa_key() -> PathBuf {
    shared_key(
        "leaf-rsa2048",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    )
}

/// The RSA-2048 key of CA certificates.
pub fn ca_key() -> PathBuf {
    shared_key(
        "ca-rsa2048",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
    )
}

/// A self-signed certificate in `dir/{name}.crt` (PEM) for `key`, valid for
/// 30 days from now, with exactly the `-addext` extensions given.
pub fn self_signed(dir: &Path, name: &str, key: &Path, subject: &str, exts: &[String]) -> PathBuf {
    require("openssl");
    let cert = dir.join(format!("{name}.crt"));
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-new", "-days", "30", "-config"])
        .arg(config(dir, "unused@example.org"))
        .arg("-key")
        .arg(key)
        .args(["-subj", subject])
        .arg("-out")
        .arg(&cert);
    for e in exts {
        cmd.args(["-addext", e]);
    }
    run(&mut cmd, b"");
    cert
}

/// A good S/MIME certificate for `email` (RSA 2048), in `dir`.
pub fn good(dir: &Path, name: &str, email: &str) -> PathBuf {
    self_signed(
        dir,
        name,
        &rsa_key(),
        &subject_for(email),
        &smime_extensions(email),
    )
}

/// `/CN=email/emailAddress=email`.
pub fn subject_for(email: &str) -> String {
    format!("/CN={email}/emailAddress={email}")
}

/// A good S/MIME certificate for `email` valid from `start` to `end`
/// (`YYYYMMDDHHMMSSZ`), signed with `openssl ca -selfsign`, which can set
/// dates in the past or future. The PEM file has OpenSSL's text dump in
/// front of the block, as `openssl ca` writes it.
pub fn dated(dir: &Path, email: &str, start: &str, end: &str) -> PathBuf {
    require("openssl");
    let cnf = config(dir, email);
    std::fs::write(dir.join("index.txt"), b"").unwrap();
    std::fs::write(dir.join("serial"), b"1000\n").unwrap();
    let csr = dir.join("dated.csr");
    let cert = dir.join("dated.crt");
    let key = rsa_key();
    run(
        Command::new("openssl")
            .args(["req", "-new", "-config"])
            .arg(&cnf)
            .arg("-key")
            .arg(&key)
            .args(["-subj", &subject_for(email)])
            .arg("-out")
            .arg(&csr),
        b"",
    );
    run(
        Command::new("openssl")
            .args(["ca", "-batch", "-selfsign", "-config"])
            .arg(&cnf)
            .arg("-keyfile")
            .arg(&key)
            .args(["-startdate", start, "-enddate", end, "-extensions", "smime"])
            .arg("-in")
            .arg(&csr)
            .arg("-out")
            .arg(&cert),
        b"",
    );
    cert
}

/// A CA certificate (`dir/ca.crt`, key [`ca_key`]).
pub fn ca(dir: &Path) -> PathBuf {
    self_signed(
        dir,
        "ca",
        &ca_key(),
        "/CN=Sealmail Test CA",
        &[
            "basicConstraints=critical,CA:TRUE".into(),
            "keyUsage=critical,keyCertSign,cRLSign".into(),
        ],
    )
}

/// A leaf for `email` issued by [`ca`]: returns `(leaf, ca)`.
pub fn chain(dir: &Path, email: &str) -> (PathBuf, PathBuf) {
    let ca_cert = ca(dir);
    let leaf = dir.join("leaf.crt");
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-x509", "-new", "-days", "30", "-config"])
        .arg(config(dir, email))
        .arg("-key")
        .arg(rsa_key())
        .arg("-CA")
        .arg(&ca_cert)
        .arg("-CAkey")
        .arg(ca_key())
        .args(["-subj", &subject_for(email)])
        .arg("-out")
        .arg(&leaf);
    for e in smime_extensions(email) {
        cmd.args(["-addext", &e]);
    }
    run(&mut cmd, b"");
    (leaf, ca_cert)
}

/// The PEM files concatenated.
pub fn concat(files: &[&Path]) -> Vec<u8> {
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

/// A PKCS#7 certs-only bundle of `certs` (`openssl crl2pkcs7 -nocrl`),
/// DER or PEM (label `PKCS7`).
pub fn pkcs7(certs: &[&Path], der: bool) -> Vec<u8> {
    require("openssl");
    let mut cmd = Command::new("openssl");
    cmd.args([
        "crl2pkcs7",
        "-nocrl",
        "-outform",
        if der { "DER" } else { "PEM" },
    ]);
    for c in certs {
        cmd.arg("-certfile").arg(c);
    }
    run(&mut cmd, b"")
}

/// A PEM certificate in DER form.
pub fn to_der(cert: &Path) -> Vec<u8> {
    run(
        Command::new("openssl")
            .args(["x509", "-outform", "DER", "-in"])
            .arg(cert),
        b"",
    )
}

/// `openssl x509 -noout -fingerprint -sha256`, colons removed, lowercase.
pub fn openssl_fingerprint(cert: &Path) -> String {
    let out = run(
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert),
        b"",
    );
    let text = String::from_utf8(out).unwrap();
    let hex = text.trim().rsplit('=').next().unwrap();
    hex.replace(':', "").to_lowercase()
}
