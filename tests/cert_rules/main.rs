//! The certificate rules against certificates made by the `openssl` command
//! line: each case breaks one rule (or is one input form) and checks the
//! exact variant and the words of its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// why the path: this test is a folder (main.rs + ec.rs) beside the
// shared support modules.
mod ec;
#[path = "../support/mod.rs"]
mod support;

use std::path::Path;
use std::time::SystemTime;

use sealmail::certs::{
    self, check, evaluate, parse, recipients, CertError, Fingerprint, ParseError, Policy, Rule,
    RuleStatus, RuleViolation,
};
use support::cert_corpus as corpus;
use support::pki::{smime_extensions, tempdir};

fn offline() -> Policy<'static> {
    Policy {
        now: SystemTime::now(),
        addresses: None,
        existing: &[],
    }
}

fn one(path: &Path) -> certs::ParsedCert {
    let mut certs = parse(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(certs.len(), 1);
    certs.remove(0)
}

fn violation(path: &Path, policy: &Policy<'_>) -> RuleViolation {
    let err = check(&one(path), policy).unwrap_err();
    eprintln!("{err}");
    err
}

fn assert_words(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "{text:?} lacks {w:?}");
    }
}

#[test]
fn good_certificate_passes_every_rule() {
    let dir = tempdir();
    let path = corpus::good(dir.path(), "good", "alice@example.org");
    let cert = one(&path);
    check(&cert, &offline()).unwrap();
    for outcome in evaluate(&cert, &offline()) {
        match outcome.rule {
            Rule::EmailMatchesAccount => {
                assert!(matches!(outcome.status, RuleStatus::NotChecked(_)))
            }
            _ => assert!(matches!(outcome.status, RuleStatus::Pass), "{outcome:?}"),
        }
    }
    let info = cert.info();
    assert_eq!(info.email_addresses, ["alice@example.org"]);
    assert_eq!(info.key_algorithm, "RSA");
    assert_eq!(info.key_size, Some(2048));
    assert!(!cert.is_ca());
    assert!(
        info.subject.contains("CN=alice@example.org"),
        "{}",
        info.subject
    );
}

#[test]
fn expired_certificate_names_its_end_date() {
    let dir = tempdir();
    let path = corpus::dated(
        dir.path(),
        "old@example.org",
        "20200101000000Z",
        "20210301000000Z",
    );
    let v = violation(&path, &offline());
    assert!(matches!(&v, RuleViolation::Expired { holder, .. } if holder == "old@example.org"));
    assert_eq!(
        v.to_string(),
        "certificate for old@example.org expired on 2021-03-01; upload a current one"
    );
}

#[test]
fn not_yet_valid_certificate_names_its_start_date() {
    let dir = tempdir();
    let path = corpus::dated(
        dir.path(),
        "future@example.org",
        "20900101120000Z",
        "20910101000000Z",
    );
    let v = violation(&path, &offline());
    assert!(matches!(v, RuleViolation::NotYetValid { .. }), "{v:?}");
    assert_words(
        &v.to_string(),
        &[
            "future@example.org",
            "not valid before 2090-01-01T12:00:00Z",
        ],
    );
}

#[test]
fn ca_certificate_is_rejected() {
    let dir = tempdir();
    let path = corpus::ca(dir.path());
    let cert = one(&path);
    assert!(cert.is_ca());
    let v = check(&cert, &offline()).unwrap_err();
    assert!(matches!(v, RuleViolation::CaCertificate { .. }), "{v:?}");
    assert_words(&v.to_string(), &["CA certificate", "CA:TRUE", "end-entity"]);
}

#[test]
fn lone_ca_certificate_fails_the_ca_rule_in_recipients() {
    let dir = tempdir();
    let input = std::fs::read(corpus::ca(dir.path())).unwrap();
    let err = recipients(&input, &offline()).unwrap_err();
    assert!(
        matches!(
            &err,
            CertError::Rule {
                violation: RuleViolation::CaCertificate { .. },
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn bundle_of_only_ca_certificates_has_no_end_entity() {
    let dir = tempdir();
    let ca = corpus::ca(dir.path());
    let input = corpus::concat(&[&ca, &ca]);
    let err = recipients(&input, &offline()).unwrap_err();
    assert!(
        matches!(err, CertError::NoEndEntity { count: 2 }),
        "{err:?}"
    );
    assert_words(&err.to_string(), &["CA certificates", "end-entity"]);
}

#[test]
fn certificate_without_email_is_rejected() {
    let dir = tempdir();
    let exts = [
        "keyUsage=critical,keyEncipherment".to_string(),
        "basicConstraints=critical,CA:FALSE".into(),
    ];
    let path = corpus::self_signed(
        dir.path(),
        "nomail",
        &corpus::rsa_key(),
        "/CN=No Mail",
        &exts,
    );
    let v = violation(&path, &offline());
    assert!(
        matches!(&v, RuleViolation::NoEmailAddress { holder } if holder == "CN=No Mail"),
        "{v:?}"
    );
    assert_words(
        &v.to_string(),
        &["CN=No Mail", "no e-mail address", "rfc822Name"],
    );
}

#[test]
fn certificate_of_someone_else_is_rejected_with_both_addresses() {
    let dir = tempdir();
    let path = corpus::good(dir.path(), "carol", "carol@example.org");
    let account = ["bob@example.org".to_string(), "robert@example.org".into()];
    let policy = Policy {
        addresses: Some(&account),
        ..offline()
    };
    let v = violation(&path, &policy);
    assert!(matches!(v, RuleViolation::AddressMismatch { .. }), "{v:?}");
    assert_words(
        &v.to_string(),
        &[
            "carol@example.org",
            "bob@example.org",
            "robert@example.org",
            "alias",
        ],
    );
}

#[test]
fn alias_matches_case_insensitively() {
    let dir = tempdir();
    let path = corpus::good(dir.path(), "alice", "alice@example.org");
    let account = ["bob@example.org".to_string(), "ALICE@Example.ORG".into()];
    let policy = Policy {
        addresses: Some(&account),
        ..offline()
    };
    check(&one(&path), &policy).unwrap();
}

#[test]
fn subject_email_address_alone_counts() {
    let dir = tempdir();
    let exts = ["basicConstraints=critical,CA:FALSE".to_string()];
    let subject = corpus::subject_for("dn-only@example.org");
    let path = corpus::self_signed(dir.path(), "dn", &corpus::rsa_key(), &subject, &exts);
    let cert = one(&path);
    assert_eq!(cert.info().email_addresses, ["dn-only@example.org"]);
    check(&cert, &offline()).unwrap();
}

#[test]
fn key_usage_without_key_encipherment_is_rejected() {
    let dir = tempdir();
    let email = "sign@example.org";
    let mut exts = smime_extensions(email);
    exts[1] = "keyUsage=critical,digitalSignature,nonRepudiation".into();
    let path = corpus::self_signed(
        dir.path(),
        "ku",
        &corpus::rsa_key(),
        &corpus::subject_for(email),
        &exts,
    );
    let v = violation(&path, &offline());
    assert!(
        matches!(v, RuleViolation::KeyUsageLacksEncipherment { .. }),
        "{v:?}"
    );
    assert_words(
        &v.to_string(),
        &[
            "digitalSignature, nonRepudiation",
            "without keyEncipherment",
        ],
    );
}

#[test]
fn extended_key_usage_server_auth_only_is_rejected() {
    let dir = tempdir();
    let email = "web@example.org";
    let mut exts = smime_extensions(email);
    exts[2] = "extendedKeyUsage=serverAuth".into();
    let path = corpus::self_signed(
        dir.path(),
        "eku",
        &corpus::rsa_key(),
        &corpus::subject_for(email),
        &exts,
    );
    let v = violation(&path, &offline());
    assert!(
        matches!(v, RuleViolation::ExtendedKeyUsageLacksEmail { .. }),
        "{v:?}"
    );
    assert_words(&v.to_string(), &["serverAuth", "without emailProtection"]);
}

#[test]
fn any_extended_key_usage_is_accepted() {
    let dir = tempdir();
    let email = "any@example.org";
    let mut exts = smime_extensions(email);
    exts[2] = "extendedKeyUsage=serverAuth,anyExtendedKeyUsage".into();
    let path = corpus::self_signed(
        dir.path(),
        "any",
        &corpus::rsa_key(),
        &corpus::subject_for(email),
        &exts,
    );
    check(&one(&path), &offline()).unwrap();
}

fn with_key(name: &str, genpkey: &[&str], email: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempdir();
    let key = corpus::shared_key(name, genpkey);
    let path = corpus::self_signed(
        dir.path(),
        name,
        &key,
        &corpus::subject_for(email),
        &smime_extensions(email),
    );
    (dir, path)
}

#[test]
fn rsa_1024_is_too_small() {
    let (_dir, path) = with_key(
        "rsa1024",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        "small@example.org",
    );
    let v = violation(&path, &offline());
    assert!(
        matches!(v, RuleViolation::RsaKeySize { bits: 1024, .. }),
        "{v:?}"
    );
    assert_words(&v.to_string(), &["1024-bit RSA key", "2048-8192 bits"]);
}

/// An exponent as large as the modulus cost 0.3 s of CPU per delivery;
/// only the exponents mail clients use are accepted.
#[test]
fn rsa_exponent_over_32_bits_is_refused() {
    let (_dir, path) = with_key(
        "rsa-bige",
        &[
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-pkeyopt",
            "rsa_keygen_pubexp:4294967297",
        ],
        "bige@example.org",
    );
    let v = violation(&path, &offline());
    assert!(
        matches!(&v, RuleViolation::RsaExponent { exponent, .. } if exponent == "4294967297"),
        "{v:?}"
    );
    assert_words(&v.to_string(), &["public exponent 4294967297", "65537"]);
}

#[test]
fn rsa_exponent_3_is_accepted() {
    let (_dir, path) = with_key(
        "rsa-e3",
        &[
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-pkeyopt",
            "rsa_keygen_pubexp:3",
        ],
        "e3@example.org",
    );
    check(&one(&path), &offline()).unwrap();
}

#[test]
fn ed25519_key_is_unsupported() {
    let (_dir, path) = with_key("ed25519", &["-algorithm", "ED25519"], "ed@example.org");
    let v = violation(&path, &offline());
    assert!(
        matches!(&v, RuleViolation::UnsupportedKey { algorithm, .. } if algorithm == "Ed25519"),
        "{v:?}"
    );
    assert_words(&v.to_string(), &["Ed25519", "RSA key of 2048-8192 bits"]);
}

#[test]
fn garbage_bytes_are_not_a_certificate() {
    let err = parse(b"\x01\x02\x03 this is not a certificate").unwrap_err();
    assert!(
        matches!(err, ParseError::NotCertificate { first_byte: 1 }),
        "{err:?}"
    );
    assert_words(&err.to_string(), &["neither PEM", "nor DER"]);
}

#[test]
fn truncated_der_reports_the_der_error() {
    let dir = tempdir();
    let der = corpus::to_der(&corpus::good(dir.path(), "trunc", "t@example.org"));
    let err = parse(&der[..der.len() / 2]).unwrap_err();
    assert!(matches!(err, ParseError::Der { .. }), "{err:?}");
    assert_words(&err.to_string(), &["not a valid DER X.509 certificate"]);
}

#[test]
fn pem_with_only_a_private_key_names_the_label() {
    let pem = std::fs::read(corpus::rsa_key()).unwrap();
    let err = parse(&pem).unwrap_err();
    assert!(
        matches!(&err, ParseError::NoCertificateInPem { labels } if labels == &["PRIVATE KEY"]),
        "{err:?}"
    );
    assert_words(&err.to_string(), &["PRIVATE KEY", "not a key"]);
}

#[test]
fn pem_with_certificate_and_key_reads_the_certificate() {
    let dir = tempdir();
    let cert = corpus::good(dir.path(), "both", "both@example.org");
    let input = corpus::concat(&[&corpus::rsa_key(), &cert]);
    assert_eq!(parse(&input).unwrap().len(), 1);
}

#[test]
fn corrupt_second_pem_block_is_named() {
    let dir = tempdir();
    let cert = std::fs::read(corpus::good(dir.path(), "c", "c@example.org")).unwrap();
    let mut input = cert.clone();
    input.extend(
        String::from_utf8(cert)
            .unwrap()
            .replacen("MII", "M!I", 1)
            .into_bytes(),
    );
    let err = parse(&input).unwrap_err();
    assert!(matches!(err, ParseError::Pem { block: 2, .. }), "{err:?}");
    assert_words(&err.to_string(), &["PEM block 2 (CERTIFICATE)"]);
}

#[test]
fn pem_chain_accepts_the_leaf_and_skips_the_ca() {
    let dir = tempdir();
    let (leaf, ca) = corpus::chain(dir.path(), "leaf@example.org");
    let input = corpus::concat(&[&leaf, &ca]);
    assert_eq!(parse(&input).unwrap().len(), 2);
    let accepted = recipients(&input, &offline()).unwrap();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].fingerprint().to_string(),
        corpus::openssl_fingerprint(&leaf)
    );
    let parsed = parse(&input).unwrap();
    let reports = certs::assess(&parsed, &offline());
    assert_eq!(reports[1].role, certs::Role::SkippedCa);
    assert!(reports[0].accepted() && !reports[1].accepted());
}

#[test]
fn der_form_of_a_good_certificate_is_read() {
    let dir = tempdir();
    let pem = corpus::good(dir.path(), "der", "der@example.org");
    let certs = parse(&corpus::to_der(&pem)).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].fingerprint(), one(&pem).fingerprint());
    check(&certs[0], &offline()).unwrap();
}

fn check_pkcs7(der: bool) {
    let dir = tempdir();
    let (leaf, ca) = corpus::chain(dir.path(), "bundle@example.org");
    let input = corpus::pkcs7(&[&leaf, &ca], der);
    let mut fingerprints: Vec<String> = parse(&input)
        .unwrap()
        .iter()
        .map(|c| c.fingerprint().to_string())
        .collect();
    fingerprints.sort();
    let mut expected = vec![
        corpus::openssl_fingerprint(&leaf),
        corpus::openssl_fingerprint(&ca),
    ];
    expected.sort();
    assert_eq!(fingerprints, expected);
    let accepted = recipients(&input, &offline()).unwrap();
    assert_eq!(accepted.len(), 1);
    assert_eq!(
        accepted[0].fingerprint().to_string(),
        corpus::openssl_fingerprint(&leaf)
    );
}

#[test]
fn pkcs7_der_bundle_gives_the_leaf() {
    check_pkcs7(true);
}

#[test]
fn pkcs7_pem_bundle_gives_the_leaf() {
    check_pkcs7(false);
}

#[test]
fn certificate_already_on_the_account_is_a_duplicate() {
    let dir = tempdir();
    let path = corpus::good(dir.path(), "dup", "dup@example.org");
    let fp = one(&path).fingerprint();
    let existing = [fp];
    let policy = Policy {
        existing: &existing,
        ..offline()
    };
    let v = violation(&path, &policy);
    assert!(
        matches!(v, RuleViolation::Duplicate { fingerprint, .. } if fingerprint == fp),
        "{v:?}"
    );
    assert_words(&v.to_string(), &[&fp.to_string(), "already on the account"]);
}

#[test]
fn same_certificate_twice_in_one_file_is_a_duplicate() {
    let dir = tempdir();
    let path = corpus::good(dir.path(), "twice", "twice@example.org");
    let input = corpus::concat(&[&path, &path]);
    let err = recipients(&input, &offline()).unwrap_err();
    let fp = one(&path).fingerprint();
    assert!(
        matches!(&err, CertError::Rule { violation: RuleViolation::DuplicateInInput { fingerprint, .. }, .. } if *fingerprint == fp),
        "{err:?}"
    );
    assert_words(&err.to_string(), &[&fp.to_string(), "more than once"]);
}

#[test]
fn fingerprint_equals_openssl() {
    let dir = tempdir();
    let path = corpus::good(dir.path(), "fp", "fp@example.org");
    assert_eq!(
        one(&path).fingerprint().to_string(),
        corpus::openssl_fingerprint(&path)
    );
}

#[test]
fn fingerprint_parses_openssl_output_with_colons_and_upper_case() {
    let dir = tempdir();
    let path = corpus::good(dir.path(), "fp2", "fp2@example.org");
    let hex = corpus::openssl_fingerprint(&path);
    let pairs: Vec<String> = hex
        .as_bytes()
        .chunks(2)
        .map(|p| String::from_utf8(p.to_vec()).unwrap().to_uppercase())
        .collect();
    let parsed: Fingerprint = pairs.join(":").parse().unwrap();
    assert_eq!(parsed, one(&path).fingerprint());
    assert_eq!(parsed.to_string(), hex);
}
