//! `sealmail encrypt`, the offline filter, as an operator runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::messages;
use support::pki::{pair, self_signed, smime_extensions, tempdir};
use support::tools::{openssl_decrypt, run, run_unchecked};

fn sealmail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealmail"))
}

#[test]
fn encrypts_for_every_cert_given() {
    let a = pair("alice@example.org", 2048);
    let b = pair("alice.new@example.org", 4096);
    let m = messages::multipart_alternative();
    let out = run(
        sealmail()
            .arg("encrypt")
            .arg("--cert")
            .arg(&a.cert)
            .arg("--cert")
            .arg(&b.cert),
        &m.raw(),
    );
    assert!(out.starts_with(m.outer.as_bytes()));
    for k in [&a, &b] {
        assert_eq!(openssl_decrypt(&out, &k.cert, &k.key), m.inner());
    }
}

#[test]
fn aes128_on_request_and_a_file_with_two_certificates() {
    let a = pair("alice@example.org", 2048);
    let b = pair("alice.new@example.org", 2048);
    let dir = tempdir();
    let both = dir.path().join("both.pem");
    std::fs::write(&both, [a.cert_pem(), b.cert_pem()].concat()).unwrap();
    let m = messages::plain_text("\n");
    let out = run(
        sealmail()
            .args(["encrypt", "--algorithm", "aes128", "--cert"])
            .arg(&both),
        &m.raw(),
    );
    let printed = run(
        Command::new("openssl").args(["cms", "-cmsout", "-print"]),
        &out,
    );
    assert!(String::from_utf8_lossy(&printed).contains("aes-128-cbc"));
    for k in [&a, &b] {
        assert_eq!(openssl_decrypt(&out, &k.cert, &k.key), m.inner());
    }
}

#[test]
fn a_bad_certificate_fails_with_one_line_and_exit_1() {
    let dir = tempdir();
    let expired_like_ca = self_signed(
        dir.path(),
        "ca",
        "rsa:2048",
        "/CN=Some CA",
        &["basicConstraints=critical,CA:TRUE".to_string()],
    );
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate at all").unwrap();
    for (file, words) in [
        (&expired_like_ca.cert, "CA certificate"),
        (&garbage, "garbage.pem"),
    ] {
        let out = run_unchecked(
            sealmail().arg("encrypt").arg("--cert").arg(file),
            b"Subject: x\r\n\r\nhi\r\n",
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
        assert!(err.contains(words), "{err}");
        assert!(out.stdout.is_empty(), "nothing may reach stdout on failure");
    }
}

#[test]
fn the_address_rule_is_not_applied_offline() {
    let dir = tempdir();
    let k = self_signed(
        dir.path(),
        "carol",
        "rsa:2048",
        "/CN=carol/emailAddress=carol@elsewhere.example",
        &smime_extensions("carol@elsewhere.example"),
    );
    let m = messages::plain_text("\r\n");
    let out = run(
        sealmail().arg("encrypt").arg("--cert").arg(&k.cert),
        &m.raw(),
    );
    assert_eq!(openssl_decrypt(&out, &k.cert, &k.key), m.inner());
}

#[test]
fn missing_file_and_empty_input_are_user_errors() {
    let a = pair("alice@example.org", 2048);
    let out = run_unchecked(
        sealmail().args(["encrypt", "--cert", "/nonexistent/cert.pem"]),
        b"x",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/cert.pem"));
    let out = run_unchecked(sealmail().arg("encrypt").arg("--cert").arg(&a.cert), b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard input is empty"));
    let out = run_unchecked(sealmail().arg("encrypt"), b"");
    assert_eq!(out.status.code(), Some(2), "clap usage error");
}

#[test]
fn already_encrypted_input_passes_through_byte_for_byte() {
    let a = pair("alice@example.org", 2048);
    let m = messages::plain_text("\r\n");
    let once = run(
        sealmail().arg("encrypt").arg("--cert").arg(&a.cert),
        &m.raw(),
    );
    let out = run_unchecked(sealmail().arg("encrypt").arg("--cert").arg(&a.cert), &once);
    assert!(out.status.success());
    assert_eq!(out.stdout, once);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already encrypted"));
}
