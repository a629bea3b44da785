//! LMTP for the tests: an in-process LMTP listener over a real store and
//! the ingest pipeline with a hook chain of the test's choosing (the same
//! `sealmail::lmtp::serve` the server runs), and a raw-socket Python
//! client that reads one reply per accepted recipient after DATA, which
//! `smtplib.LMTP` does not (it reads only one).

use std::sync::Arc;

use sealmail::ingest::{HookChain, Ingest};
use sealmail::lmtp::{serve, LmtpConfig};
use sealmail::notify::Notifier;
use sealmail::store::MailStore;
use tokio::sync::oneshot;

use super::tools::python;

/// An LMTP listener on 127.0.0.1:0 over a fresh store; stopped on drop.
pub struct LmtpServer {
    pub port: u16,
    pub store: Arc<MailStore>,
    pub ingest: Arc<Ingest>,
    stop: Option<oneshot::Sender<()>>,
    // why kept: dropping the runtime would stop the listener (and abandon
    // the blocking threads of hooks still running).
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

impl LmtpServer {
    /// A server whose deliveries run through `chain`.
    pub fn start(chain: HookChain) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MailStore::open(dir.path()).unwrap());
        let ingest = Arc::new(Ingest::new(
            Arc::clone(&store),
            chain,
            Arc::new(Notifier::new()),
        ));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, stopped) = oneshot::channel::<()>();
        let config = LmtpConfig {
            hostname: "lmtp.test".into(),
            ..LmtpConfig::default()
        };
        runtime.spawn(serve(listener, Arc::clone(&ingest), config, async {
            let _ = stopped.await;
        }));
        Self {
            port,
            store,
            ingest,
            stop: Some(stop),
            _runtime: runtime,
            _dir: dir,
        }
    }

    /// An account `email` without password or encryption.
    pub fn account(&self, email: &str) -> sealmail::store::AccountId {
        self.store.add_account(email, None, &[]).unwrap().id
    }
}

impl Drop for LmtpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The replies of one LMTP transaction.
#[derive(Debug)]
pub struct Replies {
    /// One per `RCPT TO`, in order (the lines of a reply joined by `\n`).
    pub rcpt: Vec<String>,
    /// One per accepted recipient after DATA, in order.
    pub data: Vec<String>,
}

const RAW_LMTP: &str = r#"
import json, socket, sys
port, rcpts, message = int(sys.argv[1]), sys.argv[2].split(","), open(sys.argv[3], "rb").read()
pipelined = sys.argv[4] == "pipelined"
s = socket.create_connection(("127.0.0.1", port)); f = s.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline().decode().rstrip("\r\n"); lines.append(line)
        if len(line) < 4 or line[3] != "-": return "\n".join(lines)
reply()
s.sendall(b"LHLO test\r\n"); reply()
s.sendall(b"MAIL FROM:<sender@example.net>\r\n"); reply()
out = {"rcpt": [], "data": []}
lines = [("RCPT TO:<%s>\r\n" % r).encode() for r in rcpts]
if pipelined:
    s.sendall(b"".join(lines))
    out["rcpt"] = [reply() for _ in lines]
else:
    for line in lines:
        s.sendall(line)
        out["rcpt"].append(reply())
accepted = sum(1 for r in out["rcpt"] if r.startswith("250"))
s.sendall(b"DATA\r\n"); reply()
body = b"".join(b"." + l if l.startswith(b".") else l for l in message.splitlines(True))
s.sendall(body + b".\r\n")
for _ in range(accepted): out["data"].append(reply())
s.sendall(b"QUIT\r\n"); reply()
print(json.dumps(out))
"#;

/// One transaction on `port`: `MAIL FROM:<sender@example.net>`, a `RCPT
/// TO` per entry of `rcpts`, DATA with `message` (which must end in
/// CRLF); reads every reply on the socket itself.
pub fn transaction(port: u16, rcpts: &[&str], message: &[u8]) -> Replies {
    raw_transaction(port, rcpts, message, "one-by-one")
}

/// [`transaction`], but with every `RCPT TO` sent in one write before any
/// reply is read, as an MTA that pipelines does (RFC 2920).
pub fn transaction_pipelined(port: u16, rcpts: &[&str], message: &[u8]) -> Replies {
    raw_transaction(port, rcpts, message, "pipelined")
}

fn raw_transaction(port: u16, rcpts: &[&str], message: &[u8], mode: &str) -> Replies {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("message.eml");
    std::fs::write(&path, message).unwrap();
    let out = python(
        RAW_LMTP,
        &[
            &port.to_string(),
            &rcpts.join(","),
            path.to_str().unwrap(),
            mode,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect()
    };
    Replies {
        rcpt: list("rcpt"),
        data: list("data"),
    }
}

/// Delivers `message` (CRLF line ends, no line starting with `.`) to
/// `rcpt` over a raw LMTP connection on `port`, from Rust (a delivery
/// loop in a thread, without a Python process per message): `Ok(true)`
/// when DATA got a 250, `Ok(false)` on another reply, `Err` when the
/// connection broke or a reply took over 20 s.
pub fn deliver_raw(port: u16, rcpt: &str, message: &[u8]) -> std::io::Result<bool> {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    let mut reply = || -> std::io::Result<String> {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line);
            }
        }
    };
    reply()?;
    for cmd in [
        "LHLO test\r\n".to_string(),
        "MAIL FROM:<load@example.net>\r\n".to_string(),
        format!("RCPT TO:<{rcpt}>\r\n"),
        "DATA\r\n".to_string(),
    ] {
        writer.write_all(cmd.as_bytes())?;
        reply()?;
    }
    writer.write_all(message)?;
    writer.write_all(b".\r\n")?;
    let answer = reply()?;
    let _ = writer.write_all(b"QUIT\r\n");
    Ok(answer.starts_with("250"))
}
