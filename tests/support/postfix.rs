//! A private Postfix instance for the tests: its own `config_directory`,
//! queue and log file under a temporary directory, its SMTP listener on a
//! free port of 127.0.0.1, stopped when dropped. The system Postfix (which
//! `scripts/install-deps.sh` leaves unconfigured) is never touched.
//!
//! Postfix needs root to start (its master drops privileges to
//! `mail_owner`); starting fails with a message saying so otherwise.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::pki::tempdir;
use super::server::free_port;
use super::tools::{require, run, run_unchecked};

/// How long Postfix gets to hand the mail to sealmail. Delivery takes well
/// under a second; the bound only keeps a broken setup from hanging.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// A private Postfix instance; stopped (and killed if need be) on drop.
pub struct Postfix {
    config_dir: PathBuf,
    queue_dir: PathBuf,
    maillog: PathBuf,
    pub smtp_port: u16,
    /// The instance's directory (certificates a test writes live here).
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Postfix {
    /// Configures and starts a Postfix that relays `example.org` to the
    /// LMTP server on `lmtp_port`.
    pub fn start(lmtp_port: u16) -> Self {
        Self::start_prepared(lmtp_port, |_| Vec::new())
    }

    /// [`Self::start`] with the settings `prepare` returns appended to
    /// `main.cf` (a later setting wins in Postfix); `prepare` gets the
    /// instance's root directory first, to write key files there.
    pub fn start_prepared(
        lmtp_port: u16,
        prepare: impl FnOnce(&Path) -> Vec<(&'static str, String)>,
    ) -> Self {
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
        let mut cf = main_cf(dir.path(), &queue_dir, &log_dir, &maillog, lmtp_port);
        for (key, value) in prepare(dir.path()) {
            writeln!(cf, "{key} = {value}").unwrap();
        }
        std::fs::write(config_dir.join("main.cf"), cf).unwrap();
        let master = std::fs::read_to_string("/etc/postfix/master.cf").unwrap();
        std::fs::write(config_dir.join("master.cf"), master_cf(&master, smtp_port)).unwrap();
        let postfix = Self {
            config_dir,
            queue_dir,
            maillog,
            smtp_port,
            root: dir.path().to_path_buf(),
            _dir: dir,
        };
        // `check` creates the queue directories with their owners and modes.
        postfix.postfix("check");
        postfix.postfix("start");
        postfix.wait_listening();
        postfix
    }

    /// Runs `postfix -c CONFIG_DIR <command>`; panics with the log if it fails.
    pub fn postfix(&self, command: &str) {
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
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.maillog).unwrap_or_default()
    }

    /// The master's process id, from its pid file.
    pub fn master_pid(&self) -> Option<String> {
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

/// The maillog lines about `rcpt`, once one of them carries a final
/// `status=` other than `deferred`.
pub fn final_status<'a>(log: &'a str, rcpt: &str) -> Option<Vec<&'a str>> {
    let to = format!("to=<{rcpt}>");
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&to)).collect();
    lines
        .iter()
        .any(|l| l.contains("status=") && !l.contains("status=deferred"))
        .then_some(lines)
}
