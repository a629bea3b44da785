//! A real Postfix delivers into sealmail over LMTP, configured as the
//! README tells an operator to (`virtual_mailbox_domains`,
//! `virtual_transport = lmtp:inet:...`).
//!
//! Postfix runs as a private instance: its own `config_directory`, queue
//! and log file under a temporary directory, its SMTP listener on a free
//! port of 127.0.0.1, stopped when the test ends. The system Postfix (which
//! `scripts/install-deps.sh` leaves unconfigured) is never touched. Mail
//! goes in with Python's `smtplib.SMTP`, is read back with `sealmail
//! export`, and Postfix's own log says what happened on the LMTP side.
//!
//! Postfix needs root to start (its master drops privileges to
//! `mail_owner`); the test fails with a message saying so otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::pki::tempdir;
use support::server::{free_port, Server};
use support::tools::{openssl_decrypt, python, require, run, run_unchecked};

/// How long Postfix gets to hand the mail to sealmail. Delivery takes well
/// under a second; the bound only keeps a broken setup from hanging.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A private Postfix instance; stopped (and killed if need be) on drop.
struct Postfix {
    config_dir: PathBuf,
    queue_dir: PathBuf,
    maillog: PathBuf,
    smtp_port: u16,
    _dir: tempfile::TempDir,
}

impl Postfix {
    /// Configures and starts a Postfix that relays `example.org` to the
    /// LMTP server on `lmtp_port`.
    fn start(lmtp_port: u16) -> Self {
        require("postfix");
        let uid = run(Command::new("id").arg("-u"), b"");
        assert_eq!(
            String::from_utf8_lossy(&uid).trim(),
            "0",
            "tests/postfix.rs starts a private Postfix, which needs root \
             (its master binds as root and drops to `mail_owner`); run the \
             tests as root, as CI does"
        );
        let dir = tempdir();
        // why: Postfix daemons run as `mail_owner` and must reach the queue.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // why: separate directories, because `postfix check` warns about
        // anything under the config directory not owned by root, and the
        // queue is owned by `postfix`.
        let config_dir = dir.path().join("etc");
        let queue_dir = dir.path().join("spool");
        let log_dir = dir.path().join("log");
        for d in [&config_dir, &queue_dir, &log_dir] {
            std::fs::create_dir(d).unwrap();
        }
        let smtp_port = free_port();
        let maillog = log_dir.join("maillog");
        std::fs::write(
            config_dir.join("main.cf"),
            main_cf(dir.path(), &queue_dir, &log_dir, &maillog, lmtp_port),
        )
        .unwrap();
        let master = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
        std::fs::write(config_dir.join("master.cf"), master_cf(&master, smtp_port)).unwrap();
        let postfix = Self {
            config_dir,
            queue_dir,
            maillog,
            smtp_port,
            _dir: dir,
        };
        // `check` creates the queue directories with their owners and modes.
        postfix.postfix("check");
        postfix.postfix("start");
        postfix.wait_listening();
        postfix
    }

    /// Runs `postfix -c CONFIG_DIR <command>`; panics with the log if it fails.
    fn postfix(&self, command: &str) {
        let out = run_unchecked(
            Command::new("postfix")
                .arg("-c")
                .arg(&self.config_dir)
                .arg(command),
            b"",
        );
        // Postfix writes errors to stderr only on a terminal; the rest are
        // in the log file.
        assert!(
            out.status.success(),
            "postfix {command} failed ({}): {}\nmaillog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.smtp_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix did not listen on 127.0.0.1:{} within 30 s\nmaillog:\n{}",
                self.smtp_port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The instance's log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.maillog).unwrap_or_default()
    }

    /// The master's process id, from its pid file.
    fn master_pid(&self) -> Option<String> {
        let pid = std::fs::read_to_string(self.queue_dir.join("pid/master.pid")).ok()?;
        Some(pid.trim().to_owned()).filter(|p| !p.is_empty())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let pid = self.master_pid();
        let _ = run_unchecked(
            Command::new("postfix")
                .arg("-c")
                .arg(&self.config_dir)
                .arg("stop"),
            b"",
        );
        let Some(pid) = pid else { return };
        // why: `stop` only signals the master; wait for it, and SIGKILL it if
        // it hangs, so no instance outlives the test. Its children exit when
        // the master is gone.
        let alive = |pid: &str| {
            Command::new("kill")
                .args(["-0", pid])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(&pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(&pid) {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
        }
    }
}

/// The operator's `main.cf` (README: "Point Postfix at it"), plus what a
/// private instance needs: its own paths, loopback only, no local delivery.
fn main_cf(root: &Path, queue: &Path, log_dir: &Path, maillog: &Path, lmtp_port: u16) -> String {
    let mut cf = String::new();
    let settings = [
        ("compatibility_level", "3.6".to_owned()),
        ("queue_directory", queue.display().to_string()),
        ("data_directory", root.join("data").display().to_string()),
        ("mail_owner", "postfix".to_owned()),
        ("maillog_file", maillog.display().to_string()),
        ("maillog_file_prefixes", log_dir.display().to_string()),
        ("myhostname", "mx.test".to_owned()),
        ("mydestination", String::new()),
        ("inet_interfaces", "127.0.0.1".to_owned()),
        ("inet_protocols", "ipv4".to_owned()),
        ("mynetworks", "127.0.0.0/8".to_owned()),
        (
            "smtpd_relay_restrictions",
            "permit_mynetworks, reject_unauth_destination".to_owned(),
        ),
        ("alias_maps", String::new()),
        ("alias_database", String::new()),
        // why: bounces go to sender@example.net; the test instance must not
        // try to reach the internet with them.
        (
            "default_transport",
            "error:this test instance sends no mail out".to_owned(),
        ),
        ("virtual_mailbox_domains", "example.org".to_owned()),
        (
            "virtual_transport",
            format!("lmtp:inet:127.0.0.1:{lmtp_port}"),
        ),
    ];
    for (key, value) in settings {
        writeln!(cf, "{key} = {value}").unwrap();
    }
    cf
}

/// The distribution's `master.cf` with the SMTP listener moved to
/// `127.0.0.1:smtp_port`, other `inet` listeners dropped, and no chroot
/// (a chroot would need copies of `/etc/services` and friends in the queue).
fn master_cf(distributed: &str, smtp_port: u16) -> String {
    let mut out = String::new();
    let mut dropping = false;
    for line in distributed.lines() {
        let continuation = line.starts_with([' ', '\t']);
        if continuation && dropping {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if continuation || line.starts_with('#') || fields.len() < 8 {
            dropping = false;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let mut fields: Vec<String> = fields.iter().map(|f| (*f).to_owned()).collect();
        dropping = fields[1] == "inet" && fields[0] != "smtp";
        if dropping {
            continue;
        }
        if fields[1] == "inet" {
            fields[0] = format!("127.0.0.1:{smtp_port}");
        }
        fields[4] = "n".to_owned();
        out.push_str(&fields.join(" "));
        out.push('\n');
    }
    // why: `maillog_file` is written by postlogd (Postfix >= 3.4).
    if !out.lines().any(|l| l.starts_with("postlog ")) {
        out.push_str("postlog unix-dgram n - n - 1 postlogd\n");
    }
    out
}

/// Sends one message to alice and bob and one to nobody through Postfix's
/// SMTP port; prints the refused recipients of each, as JSON.
const SEND: &str = r#"
import json, smtplib, sys
port, marker, eight_bit = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def message(n, to):
    return ("From: sender@example.net\r\nTo: " + to + "\r\nSubject: via postfix\r\n"
            "Message-ID: <" + str(n) + ".postfix-test@example.net>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n"
            + marker + "\r\n" + eight_bit + "\r\n").encode("utf-8")
refused = []
smtp = smtplib.SMTP("127.0.0.1", port)
for n, rcpts in enumerate((["alice@example.org", "bob@example.org"], ["nobody@example.org"])):
    try:
        r = smtp.sendmail("sender@example.net", rcpts, message(n, ", ".join(rcpts)),
                          mail_options=["BODY=8BITMIME"])
    except smtplib.SMTPRecipientsRefused as e:
        r = e.recipients
    refused.append({k: [v[0], v[1].decode()] for k, v in r.items()})
smtp.quit()
print(json.dumps(refused))
"#;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The maillog lines about `rcpt`, once one of them carries a final
/// `status=` other than `deferred`.
fn final_status<'a>(log: &'a str, rcpt: &str) -> Option<Vec<&'a str>> {
    let to = format!("to=<{rcpt}>");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&to)).collect();
    lines
        .iter()
        .any(|l| l.contains("status=") && !l.contains("status=deferred"))
        .then_some(lines)
}

/// Waits until alice and bob each hold a copy and Postfix has logged a
/// final status for all three recipients; asserts what the log says.
fn wait_delivered(server: &Server, postfix: &Postfix) -> (Vec<u8>, Vec<u8>) {
    // Postfix delivers asynchronously.
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let (mut a, mut b, log) = loop {
        let (a, b) = (
            server.inbox("alice@example.org"),
            server.inbox("bob@example.org"),
        );
        let log = postfix.log();
        let done = ["alice@example.org", "bob@example.org", "nobody@example.org"]
            .iter()
            .all(|r| final_status(&log, r).is_some());
        if !a.is_empty() && !b.is_empty() && done {
            break (a, b, log);
        }
        assert!(
            Instant::now() < deadline,
            "Postfix did not finish within {DELIVERY_TIMEOUT:?}: alice has {}, bob has {} \
             messages\nmaillog:\n{log}",
            a.len(),
            b.len()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!((a.len(), b.len()), (1, 1), "one copy each\nmaillog:\n{log}");
    assert_log(&log, server.lmtp_port);
    (a.remove(0), b.remove(0))
}

/// Postfix's view: alice and bob sent to sealmail's LMTP port, nobody
/// bounced on sealmail's own 550 5.1.1 (not on a Postfix-side lookup).
fn assert_log(log: &str, lmtp_port: u16) {
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{lmtp_port}");
    for rcpt in ["alice@example.org", "bob@example.org"] {
        let lines = final_status(log, rcpt).unwrap();
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&relay) && l.contains("status=sent")),
            "{rcpt}: no `{relay}` with status=sent in\n{log}"
        );
    }
    let nobody = final_status(log, "nobody@example.org").unwrap();
    assert!(
        nobody
            .iter()
            .any(|l| l.contains("status=bounced") && l.contains("said: 550 5.1.1")),
        "nobody@example.org: expected a bounce on sealmail's 550 5.1.1 in\n{log}"
    );
}

#[test]
fn postfix_delivers_over_lmtp_encrypts_for_alice_and_bounces_the_unknown() {
    let server = Server::start();
    let alice = server.encrypted_account("alice@example.org");
    server.ok(&["account", "add", "bob@example.org"]);
    let postfix = Postfix::start(server.lmtp_port);

    let marker = "POSTFIX-MARKER-3c9e71d2";
    let eight_bit = "Grüße aus Köln — 8-bit ½ €";
    let out = python(SEND, &[&postfix.smtp_port.to_string(), marker, eight_bit]);
    let refused: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        refused,
        serde_json::json!([{}, {}]),
        "Postfix accepted every recipient (sealmail decides who exists)"
    );

    let (a, b) = wait_delivered(&server, &postfix);

    for (rcpt, stored) in [("alice@example.org", &a), ("bob@example.org", &b)] {
        let text = String::from_utf8_lossy(stored);
        assert!(
            text.contains(&format!("Delivered-To: {rcpt}")),
            "{rcpt}:\n{text}"
        );
        assert!(
            text.contains("Return-Path: <sender@example.net>"),
            "{rcpt}:\n{text}"
        );
    }

    let outer = String::from_utf8_lossy(&a);
    assert!(
        outer.contains("application/pkcs7-mime") || outer.contains("application/x-pkcs7-mime"),
        "alice's copy is not S/MIME:\n{outer}"
    );
    assert!(!contains(&a, marker.as_bytes()), "alice's body is in clear");
    let inner = openssl_decrypt(&a, &alice.cert, &alice.key);
    assert!(contains(&inner, marker.as_bytes()));
    assert!(
        contains(&inner, eight_bit.as_bytes()),
        "the 8-bit line did not survive Postfix and encryption byte for byte:\n{}",
        String::from_utf8_lossy(&inner)
    );

    assert!(contains(&b, marker.as_bytes()));
    assert!(
        contains(&b, eight_bit.as_bytes()),
        "bob's 8-bit line changed on the way:\n{}",
        String::from_utf8_lossy(&b)
    );
}
