//! GnuPG's `gpgsm` as a user runs it: a GnuPG home holding one key,
//! imported from PKCS#12, and decryption judged by its status lines.
//!
//! gpgsm reads CMS, not MIME: like a mail client using it (KMail, mutt's
//! gpgme backend) the helper hands it the base64 body of the S/MIME message.

use std::process::Command;

use super::pki::{tempdir, KeyPair};
use super::tools::{body_of, require, run, run_unchecked};

pub const P12_PASSWORD: &str = "test-only-password";

/// A GnuPG home holding only `key`; the agent is stopped when dropped.
pub struct GpgHome {
    pub dir: tempfile::TempDir,
}

impl GpgHome {
    pub fn with_key(key: &KeyPair) -> Self {
        require("gpgsm");
        let dir = tempdir();
        let home = dir.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        // why: the default key-derivation count makes every import take seconds.
        std::fs::write(home.join("gpg-agent.conf"), "s2k-count 65536\n").unwrap();
        let gpg = Self { dir };
        // why a fresh PKCS#12 file for each of up to five tries: gpgsm
        // 2.2's PKCS#12 reader fails on about one in twelve files OpenSSL
        // writes for the same key and passphrase ("decryption failed;
        // trying charset ..." then "data error at
        // shrouded_key_bag.decrypted-text"): it depends on the random salt
        // and IV, so a new export imports. Measured: 23 of 25 exports
        // imported; every failing key imported from a second export.
        let mut log = String::new();
        for _ in 0..5 {
            gpg.agent("--launch");
            let p12 = gpg.dir.path().join("key.p12");
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
            let out = run_unchecked(
                gpg.gpgsm().arg("--import").arg(&p12),
                format!("{P12_PASSWORD}\n").as_bytes(),
            );
            log = String::from_utf8_lossy(&out.stderr).into_owned();
            if log.contains("secret keys imported: 1") {
                return gpg;
            }
        }
        panic!("gpgsm import failed five times: {log}");
    }

    /// Runs `gpgconf ACTION gpg-agent` (`--launch` waits until it answers).
    fn agent(&self, action: &str) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home())
            .args([action, "gpg-agent"])
            .status();
    }

    pub fn home(&self) -> std::path::PathBuf {
        self.dir.path().join("gnupg")
    }

    pub fn gpgsm(&self) -> Command {
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
    pub fn decrypt(&self, smime: &[u8]) -> Vec<u8> {
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
        self.agent("--kill");
    }
}
