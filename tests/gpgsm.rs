//! GnuPG's `gpgsm` decrypts what sealmail stores, with each key of a
//! rotation set (each key alone in its own GnuPG home, imported from
//! PKCS#12 as a user would), and gives back the inner entity byte for byte.
//!
//! gpgsm reads CMS, not MIME: like a mail client using it (KMail, mutt's
//! gpgme backend) the test hands it the base64 body of the S/MIME message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use sealmail::smime::{Envelope, Recipient, Sealed};
use sealmail_plugin_api::ContentCipher;
use support::messages::{self, TestMessage};
use support::pki::{pair, tempdir, KeyPair};
use support::tools::{body_of, require, run, run_unchecked};

const P12_PASSWORD: &str = "test-only-password";

/// A GnuPG home holding only `key`; the agent is stopped when dropped.
struct GpgHome {
    dir: tempfile::TempDir,
}

impl GpgHome {
    fn with_key(key: &KeyPair) -> Self {
        require("gpgsm");
        let dir = tempdir();
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        // why: the default key-derivation count makes every import take seconds.
        std::fs::write(home.join("gpg-agent.conf"), "s2k-count 65536\n").unwrap();
        let p12 = dir.path().join("key.p12");
        run(
            Command::new("openssl")
                .args(["pkcs12", "-export", "-legacy", "-passout"])
                .arg(format!("pass:{P12_PASSWORD}"))
                .arg("-in")
                .arg(&key.cert)
                .arg("-inkey")
                .arg(&key.key)
                .arg("-out")
                .arg(&p12),
            b"",
        );
        let gpg = Self { dir };
        // why up to three tries: now and then gpgsm's PKCS#12 import fails
        // to decrypt the key bag with the right passphrase while its agent
        // is starting ("decryption failed; trying charset ..."), a flake of
        // the tool that a second import does not show.
        let mut log = String::new();
        for _ in 0..3 {
            let out = run_unchecked(
                gpg.gpgsm().arg("--import").arg(&p12),
                format!("{P12_PASSWORD}\n").as_bytes(),
            );
            log = String::from_utf8_lossy(&out.stderr).into_owned();
            if log.contains("secret keys imported: 1") {
                return gpg;
            }
        }
        panic!("gpgsm import failed three times: {log}");
    }

    fn home(&self) -> std::path::PathBuf {
        self.dir.path().join("gnupg")
    }

    fn gpgsm(&self) -> Command {
        let mut cmd = Command::new("gpgsm");
        cmd.env("GNUPGHOME", self.home()).args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase-fd",
            "0",
            "--status-fd",
            "2",
        ]);
        cmd
    }

    /// Decrypts the base64 CMS body of `smime`; panics unless gpgsm says
    /// DECRYPTION_OKAY.
    fn decrypt(&self, smime: &[u8]) -> Vec<u8> {
        let body = self.dir.path().join("body.b64");
        std::fs::write(&body, body_of(smime)).unwrap();
        let out = run_unchecked(
            self.gpgsm()
                .args(["--assume-base64", "--decrypt"])
                .arg(&body),
            format!("{P12_PASSWORD}\n").as_bytes(),
        );
        let status = String::from_utf8_lossy(&out.stderr);
        assert!(
            status.contains("[GNUPG:] DECRYPTION_OKAY"),
            "gpgsm could not decrypt:\n{status}"
        );
        out.stdout
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

fn seal_for(keys: &[&KeyPair], cipher: ContentCipher, m: &TestMessage) -> Vec<u8> {
    let recipients = keys
        .iter()
        .map(|k| Recipient::from_der(&k.cert_der()).unwrap())
        .collect();
    match Envelope::new(recipients, cipher)
        .unwrap()
        .seal(&m.raw())
        .unwrap()
    {
        Sealed::Encrypted(out) => out,
        other => panic!("not encrypted: {other:?}"),
    }
}

fn check_with_each_key(keys: &[&KeyPair], cipher: ContentCipher) {
    let homes: Vec<GpgHome> = keys.iter().map(|k| GpgHome::with_key(k)).collect();
    for m in [
        messages::plain_text("\r\n"),
        messages::utf8_8bit(),
        messages::multipart_binary(),
        messages::headers_only(),
    ] {
        let sealed = seal_for(keys, cipher, &m);
        for (home, key) in homes.iter().zip(keys) {
            let inner = home.decrypt(&sealed);
            assert!(
                inner == m.inner(),
                "{}: gpgsm with {} gave another inner entity",
                m.name,
                key.email
            );
        }
    }
}

#[test]
fn gpgsm_opens_aes256_with_each_of_two_keys() {
    let a = pair("alice@example.org", 2048);
    let b = pair("alice.new@example.org", 4096);
    check_with_each_key(&[&a, &b], ContentCipher::Aes256Cbc);
}

#[test]
fn gpgsm_opens_aes128_with_each_of_three_keys() {
    let a = pair("alice@example.org", 2048);
    let b = pair("alice.new@example.org", 4096);
    let c = pair("alice.third@example.org", 2048);
    check_with_each_key(&[&a, &b, &c], ContentCipher::Aes128Cbc);
}

#[test]
fn gpgsm_refuses_a_message_not_for_its_key() {
    let a = pair("alice@example.org", 2048);
    let mallory = pair("mallory@example.net", 2048);
    let home = GpgHome::with_key(&mallory);
    let sealed = seal_for(
        &[&a],
        ContentCipher::Aes256Cbc,
        &messages::plain_text("\r\n"),
    );
    let body = home.dir.path().join("other.b64");
    std::fs::write(&body, body_of(&sealed)).unwrap();
    let out = run_unchecked(
        home.gpgsm()
            .args(["--assume-base64", "--decrypt"])
            .arg(&body),
        b"x\n",
    );
    let status = String::from_utf8_lossy(&out.stderr);
    assert!(
        status.contains("DECRYPTION_FAILED") && !status.contains("DECRYPTION_OKAY"),
        "{status}"
    );
}
