//! Dovecot's imaptest compliance scripts (its `src/tests`, one IMAP
//! conversation each with the responses RFC 3501 requires) against the
//! real `sealmail serve`, through `tests/tools/imaptest/run-suite.sh`,
//! which builds imaptest with `build.sh` the first time (into
//! `~/.cache/imaptest`, from the MIT-licensed source archive beside it;
//! `scripts/install-deps.sh` installs Dovecot's development headers;
//! `support::imaptest` finds them).
//! Scripts that need an extension sealmail does not announce (BINARY,
//! ESORT, ...) are skipped by the runner, not passed.
//!
//! `SEALMAIL_IMAPTEST_TOOLS` points at another copy of the tools.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::imaptest::{tools, ONE_AT_A_TIME};
use support::server::Server;

const PASSWORD: &str = "imaptest-pw";

/// Scripts that fail for an account with encryption at rest, and why
/// (README.md, "IMAP compliance", says the same): appended messages are stored
/// as S/MIME, so their body, structure and size are the ciphertext's.
const ENCRYPTED_DIFFERENCES: &[(&str, &str)] = &[
    (
        "append-binary",
        "the appended message is stored as S/MIME: BINARY[1] is its ciphertext",
    ),
    (
        "catenate",
        "CATENATE cannot read sections of a message stored as S/MIME (NO [BADURL])",
    ),
    (
        "catenate-multiappend",
        "CATENATE cannot read sections of a message stored as S/MIME (NO [BADURL])",
    ),
    (
        "fetch-binary-mime",
        "no MIME parts to decode: BINARY[] is the S/MIME message with its base64 undone",
    ),
    (
        "fetch-binary-mime-base64",
        "no MIME parts to decode: BINARY[1] is the ciphertext (DER)",
    ),
    (
        "fetch-binary-mime-qp",
        "no MIME parts to decode: BINARY[1] is the ciphertext (DER)",
    ),
    (
        "fetch-body",
        "BODY[] and its sections are the stored S/MIME message",
    ),
    (
        "fetch-body-message-rfc822",
        "no message/rfc822 part: the body is ciphertext",
    ),
    (
        "fetch-body-message-rfc822-mime",
        "no message/rfc822 part: the body is ciphertext",
    ),
    (
        "fetch-body-message-rfc822-x2",
        "no message/rfc822 part: the body is ciphertext",
    ),
    (
        "fetch-body-mime",
        "no MIME parts: one application/pkcs7-mime part",
    ),
    (
        "fetch-bodystructure",
        "BODY/BODYSTRUCTURE show the application/pkcs7-mime part",
    ),
    ("nil", "BODY search cannot read an encrypted body"),
    (
        "search-body",
        "BODY and TEXT search cannot read an encrypted body",
    ),
    (
        "search-context-update",
        "its context searches BODY, which cannot read an encrypted body",
    ),
    (
        "search-size",
        "RFC822.SIZE is the size of the stored (encrypted) message",
    ),
    (
        "sort-arrival",
        "its REVERSE SIZE tie-break sorts by the stored (encrypted) size",
    ),
    (
        "sort-date",
        "its REVERSE SIZE tie-break sorts by the stored (encrypted) size",
    ),
    (
        "sort-size",
        "SORT (SIZE) sorts by the stored (encrypted) size",
    ),
];

/// Scripts that fail for an encrypted account even with server-side
/// reading, and why: a message without MIME header fields is sealed
/// with `MIME-Version` and `Content-Type: text/plain` added to its inner
/// entity (`smime::split`), and these scripts compare `BODY[]` of such
/// messages byte for byte.
const READING_DIFFERENCES: &[(&str, &str)] = &[
    (
        "catenate",
        "BODY[] read back has the MIME header fields sealing added",
    ),
    (
        "catenate-multiappend",
        "BODY[] read back has the MIME header fields sealing added",
    ),
];

/// The outcome of one suite run.
struct Suite {
    /// `(script, PASS | FAIL | SKIP, reason)` per line.
    scripts: Vec<(String, String, String)>,
    summary: String,
    output: String,
}

impl Suite {
    fn failed(&self) -> Vec<&str> {
        self.scripts
            .iter()
            .filter(|s| s.1 == "FAIL")
            .map(|s| s.0.as_str())
            .collect()
    }
}

/// Runs the suite against `server` as `users` (two accounts).
fn run_suite(server: &Server, users: [&str; 2]) -> Suite {
    // why one at a time: the first run builds imaptest, and two builds
    // into the same directory at once would break each other.
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tools();
    let logs = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(dir.join("run-suite.sh"))
        .args(["127.0.0.1", &server.imap_port.to_string()])
        .args(users)
        .arg(PASSWORD)
        .arg(logs.path())
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = output
        .lines()
        .find(|l| l.starts_with("imaptest scripts:"))
        .unwrap_or_else(|| {
            panic!(
                "run-suite.sh printed no summary (could imaptest be built?):\n{output}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    let scripts = output
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let status = words.next()?;
            matches!(status, "PASS" | "FAIL" | "SKIP").then(|| {
                let why: Vec<&str> = words.collect();
                (name.to_string(), status.to_string(), why.join(" "))
            })
        })
        .collect();
    println!("{output}");
    let _ = logs.keep();
    Suite {
        scripts,
        summary,
        output,
    }
}

#[test]
fn imaptest_compliance_scripts_pass_for_plaintext_accounts() {
    let server = Server::start();
    let users = ["tester1@example.org", "tester2@example.org"];
    for u in users {
        server.account_with_password(u, PASSWORD);
    }
    let suite = run_suite(&server, users);
    assert!(
        suite.failed().is_empty(),
        "{}; failing: {:?}\n{}",
        suite.summary,
        suite.failed(),
        suite.output
    );
}

#[test]
fn imaptest_differences_for_encrypted_accounts_are_the_documented_ones() {
    let server = Server::start();
    let users = ["crypt1@example.org", "crypt2@example.org"];
    for u in users {
        server.account_with_password(u, PASSWORD);
        let keys = support::pki::pair(u, 2048);
        server.ok(&["cert", "add", u, keys.cert.to_str().unwrap()]);
        server.ok(&["encryption", "enable", u]);
    }
    let suite = run_suite(&server, users);
    let expected: Vec<&str> = ENCRYPTED_DIFFERENCES.iter().map(|d| d.0).collect();
    assert_eq!(
        suite.failed(),
        expected,
        "{}; update ENCRYPTED_DIFFERENCES and the README if this is intended\n{}",
        suite.summary,
        suite.output
    );
}

/// Server-side reading (ARCHITECTURE.md): with the accounts' keys handed
/// over, an encrypted account passes the same scripts a plaintext one
/// does, although every appended message is stored as S/MIME.
#[test]
fn imaptest_scripts_pass_for_encrypted_accounts_with_server_side_reading() {
    let server = Server::start();
    let users = ["reader1@example.org", "reader2@example.org"];
    for u in users {
        server.account_with_password(u, PASSWORD);
        let keys = support::pki::pair(u, 2048);
        server.ok(&["cert", "add", u, keys.cert.to_str().unwrap()]);
        server.ok(&["encryption", "enable", u]);
        let out = server.cli(
            &["reading", "enable", u, "--key", keys.key.to_str().unwrap()],
            format!("{PASSWORD}\n").as_bytes(),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let suite = run_suite(&server, users);
    let expected: Vec<&str> = READING_DIFFERENCES.iter().map(|d| d.0).collect();
    assert_eq!(
        suite.failed(),
        expected,
        "{}; update READING_DIFFERENCES and the README if this is intended\n{}",
        suite.summary,
        suite.output
    );
    // The same scripts ran as for a plaintext account: none skipped
    // for the encrypted one's sake.
    let passed = suite.scripts.iter().filter(|s| s.1 == "PASS").count();
    assert!(passed >= 54, "{}", suite.summary);
}
