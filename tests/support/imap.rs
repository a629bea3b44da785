//! The IMAP server in-process: a real store in a temporary directory, the
//! ingest pipeline, and `sealmail::imap::serve` on 127.0.0.1:0 running on
//! a tokio runtime of its own, so that tests can drive it with real
//! clients (Python `imaplib`, `mbsync`, `openssl s_client`) as
//! subprocesses and deliver mail meanwhile.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sealmail::imap::{serve, ImapConfig, ImapContext};
use sealmail::ingest::{Append, Envelope, HookChain, Ingest};
use sealmail::notify::Notifier;
use sealmail::store::{AccountId, Flags, MailStore, Message};
use tokio::sync::oneshot;

use super::pki::KeyPair;
use super::tools::require;

/// A running IMAP server over a fresh store.
pub struct ImapServer {
    /// Plain port (STARTTLS when TLS is configured).
    pub port: u16,
    /// Implicit-TLS port, when TLS is configured.
    pub tls_port: Option<u16>,
    pub store: Arc<MailStore>,
    pub ingest: Arc<Ingest>,
    pub runtime: tokio::runtime::Runtime,
    stop: Vec<oneshot::Sender<()>>,
    pub dir: tempfile::TempDir,
}

impl ImapServer {
    /// A server with test settings: 100 ms failed-login delay.
    pub fn start() -> Self {
        Self::start_with(|_| {})
    }

    /// A server whose configuration `tune` adjusts.
    pub fn start_with(tune: impl FnOnce(&mut ImapConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MailStore::open(&dir.path().join("data")).unwrap());
        let notifier = Arc::new(Notifier::new());
        let chain = HookChain::from_names(&["encrypt-at-rest".into()]).unwrap();
        let ingest = Arc::new(Ingest::new(
            Arc::clone(&store),
            chain,
            Arc::clone(&notifier),
        ));
        let mut config = ImapConfig::new("imap.test");
        config.failed_login_delay = Duration::from_millis(100);
        tune(&mut config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let with_tls = config.tls.is_some();
        let ctx = Arc::new(ImapContext {
            store: Arc::clone(&store),
            ingest: Arc::clone(&ingest),
            notifier,
            config,
            keyring: Arc::default(),
        });
        let mut stop = Vec::new();
        let port = spawn_listener(&runtime, &ctx, false, &mut stop);
        let tls_port = with_tls.then(|| spawn_listener(&runtime, &ctx, true, &mut stop));
        Self {
            port,
            tls_port,
            store,
            ingest,
            runtime,
            stop,
            dir,
        }
    }

    /// An account that can log in with `password`.
    pub fn account(&self, email: &str, password: &str) -> AccountId {
        self.store
            .add_account(email, Some(password), &[])
            .unwrap()
            .id
    }

    /// An account that logs in with `password`, with a fresh RSA-2048
    /// certificate and encryption at rest on; its id and key pair.
    pub fn encrypted_account(&self, email: &str, password: &str) -> (AccountId, KeyPair) {
        let keys = super::pki::pair(email, 2048);
        let account = self.store.add_account(email, Some(password), &[]).unwrap();
        sealmail::manage::add_certificates(&self.store, &account, &keys.cert_pem(), "test")
            .unwrap();
        sealmail::manage::update_encryption(&self.store, &account, Some(true), None, None).unwrap();
        (account.id, keys)
    }

    /// Delivers `data` to `rcpt` as an MTA would (through the hook chain).
    pub fn deliver(&self, rcpt: &str, data: &[u8]) {
        let envelope = Envelope {
            mail_from: "sender@example.net".into(),
            lhlo: "mx.example.net".into(),
        };
        let results = self.runtime.block_on(self.ingest.deliver(
            &envelope,
            &[rcpt.to_string()],
            Arc::new(data.to_vec()),
        ));
        for r in results {
            r.unwrap();
        }
    }

    /// Appends `data` to `mailbox` of `account` without the hook chain
    /// running differently from IMAP APPEND.
    pub fn append(&self, account: AccountId, mailbox: &str, data: &[u8]) -> Message {
        let mbox = self.store.mailbox_by_name(account, mailbox).unwrap();
        let append = Append {
            account,
            mailbox: mbox.id,
            flags: Flags::default(),
            internal_date: 1_700_000_000,
            source: sealmail_plugin_api::Source::ImapAppend,
        };
        self.runtime
            .block_on(self.ingest.append(append, data.to_vec()))
            .unwrap()
    }

    /// The stored bytes of every message of `mailbox`, in UID order.
    pub fn stored(&self, account: AccountId, mailbox: &str) -> Vec<Vec<u8>> {
        let mbox = self.store.mailbox_by_name(account, mailbox).unwrap();
        self.store
            .list_messages(account, mbox.id, None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|m| self.store.get_blob(account, m.blob).unwrap().unwrap())
            .collect()
    }

    /// Runs the Python `body` (after [`PYTHON_PRELUDE`]) with the port as
    /// argv[1] and `args` after it; returns the JSON it prints last.
    pub fn python(&self, body: &str, args: &[&str]) -> serde_json::Value {
        let out = python_command(self.port, body, args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "python failed ({}):\n{}\nstderr:\n{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("bad JSON {last:?}: {e}"))
    }

    /// Asserts that each of `wanted` is in the CAPABILITY list the server
    /// gives once `login` (address, password) is logged in.
    pub fn assert_capabilities(&self, login: &[&str], wanted: &[&str]) {
        let out = self.python(
            "m = connect(args[0], args[1])\nout['caps'] = s(m.capability()[1][0])\n",
            login,
        );
        let caps = out["caps"].as_str().unwrap().to_string();
        for cap in wanted {
            assert!(caps.split(' ').any(|c| c == *cap), "{cap} not in {caps}");
        }
    }

    /// Starts the Python `body` and returns the child, stdout piped.
    pub fn python_spawn(&self, body: &str, args: &[&str]) -> Child {
        python_command(self.port, body, args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

impl Drop for ImapServer {
    fn drop(&mut self) {
        for tx in self.stop.drain(..) {
            let _ = tx.send(());
        }
    }
}

fn spawn_listener(
    runtime: &tokio::runtime::Runtime,
    ctx: &Arc<ImapContext>,
    implicit_tls: bool,
    stop: &mut Vec<oneshot::Sender<()>>,
) -> u16 {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = oneshot::channel::<()>();
    runtime.spawn(serve(listener, Arc::clone(ctx), implicit_tls, async move {
        let _ = rx.await;
    }));
    stop.push(tx);
    port
}

/// Helpers every Python script starts with: `connect(user, password)`,
/// `port`, `args`, `out` (printed as JSON at the end by the caller's
/// `done()`), `s(x)` to turn bytes into text for JSON, and `raw(m, cmd)`,
/// which sends `cmd` on connection `m` and returns every line up to and
/// including the tagged one, so order and response codes can be checked.
pub const PYTHON_PRELUDE: &str = r#"
import imaplib, json, sys, socket, time, re, base64
port = int(sys.argv[1])
args = sys.argv[2:]
out = {}
def connect(user, password):
    m = imaplib.IMAP4('127.0.0.1', port)
    m.login(user, password)
    return m
def s(x):
    if isinstance(x, bytes):
        return x.decode('utf-8', 'replace')
    if isinstance(x, (list, tuple)):
        return [s(i) for i in x]
    return x
def done():
    print(json.dumps(out))
def raw(m, cmd):
    tag = m._new_tag().decode()
    m.send(('%s %s\r\n' % (tag, cmd)).encode())
    lines = []
    while True:
        line = m.readline().decode('utf-8', 'replace').rstrip('\r\n')
        lines.append(line)
        if line.startswith(tag + ' '):
            return lines
"#;

fn python_command(port: u16, body: &str, args: &[&str]) -> Command {
    require("python3");
    let mut script = tempfile::Builder::new().suffix(".py").tempfile().unwrap();
    script.write_all(PYTHON_PRELUDE.as_bytes()).unwrap();
    script.write_all(body.as_bytes()).unwrap();
    script.write_all(b"\ndone()\n").unwrap();
    let (_, path) = script.keep().unwrap();
    let mut cmd = Command::new("python3");
    cmd.arg(path).arg(port.to_string()).args(args);
    cmd
}

/// Reads lines of `child`'s stdout until one equals `marker` (panics
/// after `timeout`).
pub fn wait_for_line(child: &mut Child, marker: &str) -> BufReader<std::process::ChildStdout> {
    let stdout = child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "python ended before printing {marker:?}");
        if line.trim() == marker {
            return reader;
        }
    }
}

/// A self-signed server certificate for `host` made with the openssl CLI.
pub fn server_cert(dir: &Path, host: &str) -> (PathBuf, PathBuf) {
    require("openssl");
    let cert = dir.join("server.crt");
    let key = dir.join("server.key");
    // openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=host -addext subjectAltName=DNS:host
    let status = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-subj", &format!("/CN={host}")])
        .args(["-addext", &format!("subjectAltName=DNS:{host}")])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

/// A plain message with `subject` from `from`.
pub fn message(from: &str, to: &str, subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <{}@test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

/// The lines a Python client script collected under `key` of its JSON
/// output.
pub fn lines(out: &serde_json::Value, key: &str) -> Vec<String> {
    out[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing: {out}"))
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}
