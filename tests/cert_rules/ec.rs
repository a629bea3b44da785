//! The rules for EC keys: the three NIST curves pass, other curves and
//! explicit parameters are refused by name, and the KeyUsage must allow
//! key agreement.

use sealmail::certs::{check, RuleViolation};

use super::support::cert_corpus as corpus;
use super::support::pki::{smime_extensions, tempdir};
use super::{assert_words, offline, one, violation};

/// A certificate with an EC key made by `openssl genpkey` with `genpkey`
/// and the given KeyUsage.
fn ec_cert(
    name: &str,
    genpkey: &[&str],
    key_usage: &str,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempdir();
    let email = "ec@example.org";
    let key = corpus::shared_key(name, genpkey);
    let mut exts = smime_extensions(email);
    exts[1] = format!("keyUsage=critical,{key_usage}");
    let path = corpus::self_signed(dir.path(), name, &key, &corpus::subject_for(email), &exts);
    (dir, path)
}

#[test]
fn ec_keys_on_the_three_nist_curves_pass() {
    for (curve, bits) in [("P-256", 256), ("P-384", 384), ("P-521", 521)] {
        let (_dir, path) = ec_cert(
            &format!("ec-{curve}"),
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
            ],
            "digitalSignature,keyAgreement",
        );
        let cert = one(&path);
        assert_eq!(cert.info().key_algorithm, "EC");
        assert_eq!(cert.info().key_size, Some(bits));
        check(&cert, &offline()).unwrap();
    }
}

#[test]
fn ec_key_on_another_curve_is_refused_by_name() {
    let (_dir, path) = ec_cert(
        "ec-k1",
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
        ],
        "keyAgreement",
    );
    let v = violation(&path, &offline());
    assert!(
        matches!(&v, RuleViolation::EcCurve { curve, .. } if curve.contains("secp256k1")),
        "{v:?}"
    );
    assert_words(
        &v.to_string(),
        &["secp256k1", "named curve P-256, P-384 or P-521"],
    );
}

#[test]
fn ec_key_with_explicit_parameters_is_refused() {
    let (_dir, path) = ec_cert(
        "ec-explicit",
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-pkeyopt",
            "ec_param_enc:explicit",
        ],
        "keyAgreement",
    );
    let v = violation(&path, &offline());
    assert!(
        matches!(&v, RuleViolation::EcCurve { curve, .. } if curve == "explicit parameters"),
        "{v:?}"
    );
}

#[test]
fn ec_key_usage_must_allow_key_agreement() {
    let (_dir, path) = ec_cert(
        "ec-P-256",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "digitalSignature,keyEncipherment",
    );
    let v = violation(&path, &offline());
    assert!(
        matches!(&v, RuleViolation::KeyUsageLacksAgreement { .. }),
        "{v:?}"
    );
    assert_words(&v.to_string(), &["without keyAgreement"]);
}
