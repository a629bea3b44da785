//! The real `sealmail` binary as a server process on a temporary data
//! directory, and the CLI run against it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::tools::run_unchecked;

/// A running `sealmail serve`; killed when dropped.
pub struct Server {
    pub data_dir: PathBuf,
    pub lmtp_port: u16,
    pub imap_port: u16,
    pub jmap_port: u16,
    /// Where the server's log (debug level) and its TMPDIR are: scanned by
    /// the no-plaintext tests.
    pub scratch: tempfile::TempDir,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

/// A port that was free a moment ago (the OS picks it; the server binds
/// it again right after, which is racy only against other programs).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealmail"))
}

impl Server {
    /// Starts a server on a fresh data directory.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_on(dir.path());
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `data_dir` and waits until its socket answers.
    pub fn start_on(data_dir: &Path) -> Self {
        Self::start_with_env(data_dir, &[])
    }

    /// Starts a server on `data_dir` with extra environment (config keys).
    /// A port taken by another test between [`free_port`] and the bind is
    /// a race of the test set-up, not of the server: then it starts again
    /// on fresh ports.
    pub fn start_with_env(data_dir: &Path, envs: &[(&str, &str)]) -> Self {
        Self::start_limited(data_dir, envs, None)
    }

    /// Starts a server on a fresh data directory whose process may open
    /// at most `open_files` descriptors (soft and hard `RLIMIT_NOFILE`, set
    /// by util-linux `prlimit` before the binary runs, so the server sees
    /// it from its first instruction and cannot raise it).
    pub fn start_with_open_files(envs: &[(&str, &str)], open_files: u64) -> Self {
        super::tools::require("prlimit");
        let dir = tempfile::tempdir().unwrap();
        let mut server = Self::start_limited(dir.path(), envs, Some(open_files));
        server._dir = Some(dir);
        server
    }

    fn start_limited(data_dir: &Path, envs: &[(&str, &str)], open_files: Option<u64>) -> Self {
        for attempt in 1..=3 {
            let mut server = Self::spawn(data_dir, envs, open_files);
            match server.wait_ready() {
                Ok(()) => return server,
                Err(log) if attempt < 3 && log.contains("in use") => server.kill(),
                Err(log) => panic!("sealmail serve did not start:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(data_dir: &Path, envs: &[(&str, &str)], open_files: Option<u64>) -> Self {
        let (mut lmtp_port, imap_port, jmap_port) = (free_port(), free_port(), free_port());
        // why: a test whose MTA must know the LMTP port before the server
        // starts (tests/submission.rs) names it; the server then binds it.
        let named = envs.iter().find(|(k, _)| *k == "SEALMAIL_LMTP_LISTEN");
        if let Some(port) = named.and_then(|(_, v)| v.rsplit_once(':')?.1.parse().ok()) {
            lmtp_port = port;
        }
        let scratch = tempfile::tempdir().unwrap();
        let tmp = scratch.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(scratch.path().join("server.log"))
            .unwrap();
        let mut command = match open_files {
            // why prlimit rather than pre_exec + setrlimit: unsafe code is
            // forbidden in the workspace; prlimit execs the binary in place,
            // so the child's pid is the server's.
            Some(n) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={n}:{n}"))
                    .arg("--")
                    .arg(env!("CARGO_BIN_EXE_sealmail"));
                c
            }
            None => binary(),
        };
        let child = command
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .env("SEALMAIL_LMTP_LISTEN", format!("127.0.0.1:{lmtp_port}"))
            .env("SEALMAIL_IMAP_LISTEN", format!("127.0.0.1:{imap_port}"))
            .env("SEALMAIL_JMAP_LISTEN", format!("127.0.0.1:{jmap_port}"))
            .envs(envs.iter().copied())
            .env("SEALMAIL_LOG", "debug")
            .env("TMPDIR", &tmp)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Self {
            data_dir: data_dir.to_owned(),
            lmtp_port,
            imap_port,
            jmap_port,
            scratch,
            child: Some(child),
            _dir: None,
        }
    }

    /// Waits until every socket answers; `Err` with the server's log when
    /// it exited or did not get there within 30 s.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let admin =
                std::os::unix::net::UnixStream::connect(self.data_dir.join("admin.sock")).is_ok();
            let tcp = [self.lmtp_port, self.imap_port, self.jmap_port]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if admin && tcp {
                return Ok(());
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_some());
            if exited {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::fs::read_to_string(self.scratch.path().join("server.log")).unwrap_or_default())
    }

    /// Runs the CLI against this server with `stdin`.
    pub fn cli(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut cmd = binary();
        cmd.args(args).arg("--data-dir").arg(&self.data_dir);
        run_unchecked(&mut cmd, stdin)
    }

    /// Runs the CLI and asserts success; returns standard output.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args, b"");
        assert!(
            out.status.success(),
            "sealmail {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGKILLs the server, as a power cut would stop it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERMs the server and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A JMAP client of the real server, as a web client would be: HTTP Basic,
/// the session from `/.well-known/jmap`, calls posted to its `apiUrl`.
pub struct JmapUser {
    http: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    user: String,
    password: String,
    pub session: serde_json::Value,
    pub account_id: String,
}

impl Server {
    /// Logs `user` in over JMAP.
    pub fn jmap(&self, user: &str, password: &str) -> JmapUser {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/.well-known/jmap", self.jmap_port);
        let session: serde_json::Value = runtime.block_on(async {
            http.get(url)
                .basic_auth(user, Some(password))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        let account_id = session["primaryAccounts"]["urn:ietf:params:jmap:mail"]
            .as_str()
            .unwrap()
            .to_string();
        JmapUser {
            http,
            runtime,
            user: user.into(),
            password: password.into(),
            session,
            account_id,
        }
    }
}

impl JmapUser {
    /// Posts `calls` (each `[name, args, id]`; `accountId` filled in) and
    /// returns the `methodResponses`.
    pub fn calls(&self, calls: serde_json::Value) -> Vec<serde_json::Value> {
        let mut calls = calls;
        for call in calls.as_array_mut().unwrap() {
            call[1]["accountId"] = serde_json::json!(self.account_id);
        }
        let body = serde_json::json!({
            "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", "urn:sealmail:params:jmap:encryption", "urn:sealmail:params:jmap:auth", "urn:ietf:params:jmap:submission"],
            "methodCalls": calls,
        });
        let api = self.session["apiUrl"].as_str().unwrap().to_string();
        let reply: serde_json::Value = self.runtime.block_on(async {
            let r = self
                .http
                .post(api)
                .basic_auth(&self.user, Some(&self.password))
                .json(&body)
                .send()
                .await
                .unwrap();
            r.json().await.unwrap()
        });
        reply["methodResponses"].as_array().unwrap().clone()
    }

    /// One call; returns its arguments.
    pub fn call(&self, method: &str, args: serde_json::Value) -> serde_json::Value {
        self.calls(serde_json::json!([[method, args, "c0"]]))[0][1].clone()
    }

    /// The names of every mailbox, as `Mailbox/get` gives them.
    pub fn mailbox_names(&self) -> Vec<String> {
        self.call("Mailbox/get", serde_json::json!({ "ids": null }))["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// Uploads `data`; returns the blobId.
    pub fn upload(&self, data: Vec<u8>) -> String {
        let url = self.session["uploadUrl"]
            .as_str()
            .unwrap()
            .replace("{accountId}", &self.account_id);
        let reply: serde_json::Value = self.runtime.block_on(async {
            let r = self
                .http
                .post(url)
                .basic_auth(&self.user, Some(&self.password))
                .header("content-type", "message/rfc822")
                .body(data)
                .send()
                .await
                .unwrap();
            r.json().await.unwrap()
        });
        reply["blobId"].as_str().unwrap().to_string()
    }
}

impl Server {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap()
    }

    /// A field of the server's /proc status in KiB (`VmRSS`, `VmHWM`).
    pub fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }
}

impl Server {
    /// `(file name, bytes)` of every message `sealmail export` writes for
    /// `mailbox` of `email`, in name order. Names are
    /// `DATE.uUID.sealmail:2,FLAGS`.
    pub fn export_named(&self, email: &str, mailbox: &str) -> Vec<(String, Vec<u8>)> {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().to_str().unwrap();
        self.ok(&["export", email, "--to", dir, "--mailbox", mailbox]);
        let mut files: Vec<_> = std::fs::read_dir(out.path().join(mailbox).join("cur"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_str().unwrap().to_string();
                (name, std::fs::read(p).unwrap())
            })
            .collect()
    }

    /// The messages of `email`'s INBOX as stored, via `sealmail export`.
    pub fn inbox(&self, email: &str) -> Vec<Vec<u8>> {
        self.export_named(email, "INBOX")
            .into_iter()
            .map(|(_, b)| b)
            .collect()
    }

    /// Sends `data` from x@example.net to `to` with Python's
    /// `smtplib.LMTP`, as bytes (smtplib leaves their line ends alone), and
    /// returns the reply to DATA as `CODE text`. The bytes go through a
    /// scratch file, removed again before this returns so that plaintext
    /// scans do not find it. A delivery that takes over 60 s fails the
    /// test (hostile input must not hold the server that long).
    pub fn lmtp_send(&self, to: &str, data: &[u8]) -> String {
        match self.lmtp_try_send(to, data) {
            Ok(reply) => reply,
            Err(failure) => panic!("LMTP delivery to {to} failed: {failure}"),
        }
    }

    /// [`Self::lmtp_send`] for a sender whose delivery may fail (a refused
    /// recipient, a 60 s timeout): the reply, or the client's error text.
    pub fn lmtp_try_send(&self, to: &str, data: &[u8]) -> Result<String, String> {
        let mut file = tempfile::NamedTempFile::new_in(self.scratch.path()).unwrap();
        std::io::Write::write_all(&mut file, data).unwrap();
        let script = tempfile::NamedTempFile::new_in(self.scratch.path()).unwrap();
        std::fs::write(script.path(), LMTP_SEND).unwrap();
        super::tools::require("python3");
        let out = run_unchecked(
            Command::new("python3").arg(script.path()).args([
                &self.lmtp_port.to_string(),
                to,
                file.path().to_str().unwrap(),
            ]),
            b"",
        );
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// An account `email` that logs in with `password` (`account add
    /// --password-stdin`).
    pub fn account_with_password(&self, email: &str, password: &str) {
        let out = self.cli(
            &["account", "add", email, "--password-stdin"],
            format!("{password}\n").as_bytes(),
        );
        assert!(
            out.status.success(),
            "account add {email} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// An account `email` (no password) with a fresh RSA-2048 certificate
    /// and encryption enabled; returns its key pair.
    pub fn encrypted_account(&self, email: &str) -> super::pki::KeyPair {
        let keys = super::pki::pair(email, 2048);
        self.ok(&["account", "add", email]);
        self.ok(&["cert", "add", email, keys.cert.to_str().unwrap()]);
        self.ok(&["encryption", "enable", email]);
        keys
    }

    /// A list `list` of `members` with `key` as its key pair (`list add`,
    /// `list key add`).
    pub fn list_with_key(&self, list: &str, members: &[&str], key: &super::pki::KeyPair) {
        let mut add = vec!["list", "add", list];
        for m in members {
            add.extend(["--member", m]);
        }
        self.ok(&add);
        self.ok(&[
            "list",
            "key",
            "add",
            list,
            "--cert",
            key.cert.to_str().unwrap(),
            "--key",
            key.key.to_str().unwrap(),
        ]);
    }
}

const IMAP_APPEND: &str = r#"
import imaplib, sys
port, user, password, message = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
typ, data = imap.append("INBOX", r"(\Seen)", None, message.encode())
assert typ == "OK", data
imap.logout()
"#;

impl Server {
    /// Appends `message` to `user`'s INBOX with Python's `imaplib`, as a
    /// mail client stores a draft or a sent copy. The message travels as
    /// an argument, never through a file the plaintext scans could see.
    pub fn imap_append(&self, user: &str, password: &str, message: &str) {
        super::tools::python(
            IMAP_APPEND,
            &[&self.imap_port.to_string(), user, password, message],
        );
    }
}

/// One LMTP delivery: port, recipient, message file; prints the reply.
const LMTP_SEND: &str = r#"
import smtplib, sys
lmtp = smtplib.LMTP("127.0.0.1", int(sys.argv[1]), timeout=60)
lmtp.ehlo_or_helo_if_needed()
lmtp.mail("x@example.net")
code, text = lmtp.rcpt(sys.argv[2])
assert code == 250, (code, text)
try:
    code, text = lmtp.data(open(sys.argv[3], "rb").read())
except smtplib.SMTPDataError as e:
    code, text = e.smtp_code, e.smtp_error
print(code, text.decode())
lmtp.quit()
"#;
