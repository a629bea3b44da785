//! `sealmail cert inspect` as a user runs it: the real binary on
//! certificates made by the `openssl` command line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::cert_corpus as corpus;
use support::pki::tempdir;
use support::tools::run_unchecked;

fn inspect(args: &[&str], file: &Path) -> Output {
    run_unchecked(
        Command::new(env!("CARGO_BIN_EXE_sealmail"))
            .args(["cert", "inspect"])
            .arg(file)
            .args(args),
        b"",
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn good_certificate_exits_0_and_shows_fingerprint_and_email() {
    let dir = tempdir();
    let cert = corpus::good(dir.path(), "good", "alice@example.org");
    let out = inspect(&[], &cert);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&corpus::openssl_fingerprint(&cert)),
        "{stdout}"
    );
    assert!(stdout.contains("alice@example.org"), "{stdout}");
    assert!(stdout.contains("RSA 2048 bits"), "{stdout}");
    assert!(
        stdout.contains("would be accepted for encryption"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not-checked email-matches-account"),
        "{stdout}"
    );
}

#[test]
fn bad_certificate_exits_1_with_reason_on_stderr() {
    let dir = tempdir();
    let ca = corpus::ca(dir.path());
    let out = inspect(&[], &ca);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("is a CA certificate"), "{stderr}");
    assert!(text(&out.stdout).contains("would be rejected"));
}

#[test]
fn wrong_address_exits_1_when_email_is_given() {
    let dir = tempdir();
    let cert = corpus::good(dir.path(), "carol", "carol@example.org");
    let out = inspect(&["--email", "bob@example.org"], &cert);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bob@example.org") && stderr.contains("carol@example.org"),
        "{stderr}"
    );
}

#[test]
fn garbage_file_exits_1_with_parse_reason() {
    let dir = tempdir();
    let file = dir.path().join("garbage.bin");
    std::fs::write(&file, b"\x01\x02 not a certificate").unwrap();
    let out = inspect(&[], &file);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("neither PEM"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_file_exits_2() {
    let dir = tempdir();
    let out = inspect(&[], &dir.path().join("absent.pem"));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn json_output_describes_every_certificate() {
    let dir = tempdir();
    let (leaf, ca) = corpus::chain(dir.path(), "json@example.org");
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, corpus::concat(&[&leaf, &ca])).unwrap();
    let out = inspect(&["--json", "--email", "JSON@example.org"], &bundle);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["accepted"], true);
    let certs = doc["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 2);

    let first = &certs[0];
    assert_eq!(first["fingerprint"], corpus::openssl_fingerprint(&leaf));
    assert_eq!(first["emailAddresses"][0], "json@example.org");
    assert_eq!(first["isCa"], false);
    assert_eq!(first["keyAlgorithm"], "RSA");
    assert_eq!(first["keySize"], 2048);
    assert_eq!(first["accepted"], true);
    let not_after = first["notAfter"].as_str().unwrap();
    assert!(
        not_after.ends_with('Z') && not_after.len() == 20,
        "{not_after}"
    );
    let rules = first["rules"].as_array().unwrap();
    let status_of = |name: &str| {
        rules.iter().find(|r| r["rule"] == name).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status_of("email-matches-account"), "pass");
    assert_eq!(status_of("not-on-account"), "not-checked");
    assert_eq!(status_of("validity"), "pass");

    let second = &certs[1];
    assert_eq!(second["isCa"], true);
    assert_eq!(second["role"], "skipped-ca");
    assert_eq!(second["accepted"], false);
}

#[test]
fn json_output_of_a_rejected_certificate_carries_the_message() {
    let dir = tempdir();
    let key = corpus::shared_key(
        "rsa1024",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    );
    let email = "small@example.org";
    let cert = corpus::self_signed(
        dir.path(),
        "small",
        &key,
        &corpus::subject_for(email),
        &support::pki::smime_extensions(email),
    );
    let out = inspect(&["--json"], &cert);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["accepted"], false);
    let rule = doc["certificates"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "key-type")
        .unwrap()
        .clone();
    assert_eq!(rule["status"], "fail");
    assert!(
        rule["message"].as_str().unwrap().contains("1024-bit"),
        "{rule}"
    );
}
