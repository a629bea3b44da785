//! The LMTP layer against real peers on real sockets: Python
//! `smtplib.LMTP`, `swaks --protocol LMTP`, and a raw socket client that
//! reads one reply per recipient after DATA (which smtplib does not).
//!
//! `Delivery` here is an in-memory recorder: these tests are about the
//! protocol (RFC 2033); the ingest pipeline behind it is tested elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code, unreachable_pub)]
mod support {
    pub mod tools;
}

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sealmail::lmtp::{serve, Delivery, LmtpConfig, Reply, Transaction};
use support::tools::{require, run_unchecked};

/// Refuses `unknown*` at RCPT, fails `tempfail*` at DATA, records the rest.
#[derive(Default)]
struct Recorder {
    transactions: Mutex<Vec<Transaction>>,
}

impl Delivery for Recorder {
    async fn check_recipients(&self, addresses: &[String]) -> Vec<Reply> {
        addresses
            .iter()
            .map(|address| match address.starts_with("unknown") {
                true => Reply::new(550, "5.1.1", "no such user here"),
                false => Reply::new(250, "2.1.5", "recipient ok"),
            })
            .collect()
    }

    async fn deliver(&self, tx: Transaction) -> Vec<Reply> {
        let replies = tx
            .recipients
            .iter()
            .map(|r| match r.starts_with("tempfail") {
                true => Reply::new(451, "4.3.0", "try again later"),
                false => Reply::new(250, "2.0.0", "delivered"),
            })
            .collect();
        self.transactions.lock().unwrap().push(tx);
        replies
    }
}

/// `serve` on 127.0.0.1:0 in its own runtime; stopped and joined on drop.
struct TestServer {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(config: LmtpConfig) -> Self {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let recorder = Arc::new(Recorder::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let delivery = Arc::clone(&recorder);
        let thread = std::thread::spawn(move || {
            runtime.block_on(serve(listener, delivery, config, async {
                let _ = stopped.await;
            }));
        });
        Self {
            addr,
            recorder,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn default() -> Self {
        Self::start(LmtpConfig {
            hostname: "lmtp.test".into(),
            ..LmtpConfig::default()
        })
    }

    fn transactions(&self) -> std::sync::MutexGuard<'_, Vec<Transaction>> {
        self.recorder.transactions.lock().unwrap()
    }

    /// Stops the server and waits until `serve` has returned.
    fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A raw LMTP client on a std socket.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    /// Connects and checks the greeting.
    fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut client = Self {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let greeting = client.reply();
        assert!(
            greeting.starts_with("220 ") && greeting.contains("LMTP"),
            "{greeting}"
        );
        client
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// Reads one (possibly multi-line) reply; returns its lines joined by `\n`.
    fn reply(&mut self) -> String {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "connection closed while waiting for a reply; got {lines:?}"
            );
            assert!(line.ends_with("\r\n"), "reply line without CRLF: {line:?}");
            let line = line.trim_end().to_owned();
            let last = line.as_bytes().get(3) == Some(&b' ') || line.len() == 3;
            lines.push(line);
            if last {
                return lines.join("\n");
            }
        }
    }

    fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// LHLO, MAIL, RCPTs and DATA with `body`; returns the replies to
    /// RCPT and after DATA (one per accepted recipient).
    fn transaction(&mut self, rcpts: &[&str], body: &[u8]) -> (Vec<String>, Vec<String>) {
        assert!(self.command("LHLO client.test").starts_with("250"));
        assert!(self
            .command("MAIL FROM:<sender@example.org>")
            .starts_with("250 2.1.0"));
        let rcpt_replies: Vec<String> = rcpts
            .iter()
            .map(|r| self.command(&format!("RCPT TO:<{r}>")))
            .collect();
        let accepted = rcpt_replies.iter().filter(|r| r.starts_with('2')).count();
        assert!(self.command("DATA").starts_with("354"));
        self.send(&stuff(body));
        let data_replies = (0..accepted).map(|_| self.reply()).collect();
        (rcpt_replies, data_replies)
    }
}

/// Dot-stuffs `body` (which ends in CRLF) and appends the end of data.
fn stuff(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 50 + 3);
    let mut line_start = true;
    let mut prev = 0u8;
    for &b in body {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = prev == b'\r' && b == b'\n';
        prev = b;
    }
    out.extend_from_slice(b".\r\n");
    out
}

const PYTHON_LMTP: &str = r#"
import json, smtplib, sys
s = smtplib.LMTP(sys.argv[1], int(sys.argv[2]))
code, _ = s.ehlo()
assert code == 250, code
assert s.has_extn("pipelining") and s.has_extn("enhancedstatuscodes") and s.has_extn("8bitmime")
msg = b"From: sender@example.org\r\nSubject: hi\r\n\r\nline one\r\n.leading dot\r\n"
refused = s.sendmail("sender@example.org", ["a@x.test", "b@x.test", "unknown@x.test"], msg)
print(json.dumps({k: [v[0], v[1].decode()] for k, v in refused.items()}))
s.close()
"#;

#[test]
fn python_smtplib_delivers_and_reports_the_refused_recipient() {
    require("python3");
    let server = TestServer::default();
    let out = run_unchecked(
        Command::new("python3").args([
            "-c",
            PYTHON_LMTP,
            "127.0.0.1",
            &server.addr.port().to_string(),
        ]),
        b"",
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.trim(),
        r#"{"unknown@x.test": [550, "5.1.1 no such user here"]}"#
    );
    let txs = server.transactions();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].recipients, ["a@x.test", "b@x.test"]);
    assert_eq!(txs[0].mail_from, "sender@example.org");
    assert_eq!(
        txs[0].data,
        b"From: sender@example.org\r\nSubject: hi\r\n\r\nline one\r\n.leading dot\r\n"
    );
}

#[test]
fn raw_client_reads_one_reply_per_recipient_in_order() {
    let server = TestServer::default();
    let mut client = Client::connect(server.addr);
    let (rcpt, data) = client.transaction(
        &["a@x", "unknown@x", "tempfail@x", "b@x"],
        b"Subject: t\r\n\r\nbody\r\n",
    );
    assert!(rcpt[1].starts_with("550 5.1.1"));
    assert_eq!(
        data,
        [
            "250 2.0.0 delivered",
            "451 4.3.0 try again later",
            "250 2.0.0 delivered"
        ]
    );
    assert!(client.command("QUIT").starts_with("221 2.0.0"));
    assert_eq!(
        server.transactions()[0].recipients,
        ["a@x", "tempfail@x", "b@x"]
    );
}

#[test]
fn pipelined_commands_in_one_write_get_replies_in_order() {
    let server = TestServer::default();
    let mut client = Client::connect(server.addr);
    client.send(b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<unknown@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n");
    let replies: Vec<String> = (0..6).map(|_| client.reply()).collect();
    let codes: Vec<&str> = replies.iter().map(|r| &r[..3]).collect();
    assert_eq!(codes, ["250", "250", "250", "550", "250", "354"]);
    client.send(b"hello\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n");
    let replies: Vec<String> = (0..5).map(|_| client.reply()).collect();
    assert_eq!(
        replies,
        [
            "250 2.0.0 delivered",
            "250 2.0.0 delivered",
            "250 2.0.0 reset",
            "250 2.0.0 ok",
            "221 2.0.0 lmtp.test closing connection"
        ]
    );
}

fn swaks(server: &TestServer, extra: &[&str]) {
    require("swaks");
    let port = server.addr.port().to_string();
    let mut cmd = Command::new("swaks");
    cmd.args([
        "--server",
        "127.0.0.1",
        "--port",
        &port,
        "--protocol",
        "LMTP",
    ])
    .args(["--from", "sender@example.org", "--to", "a@x.test,b@x.test"])
    .args([
        "--header",
        "Subject: swaks test",
        "--body",
        "swaks body line\n.dot line",
    ])
    .args(extra);
    let out = run_unchecked(&mut cmd, b"");
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "swaks failed ({}):\n{transcript}",
        out.status
    );
    let txs = server.transactions();
    assert_eq!(txs.len(), 1, "{transcript}");
    assert_eq!(txs[0].recipients, ["a@x.test", "b@x.test"]);
    let data = String::from_utf8_lossy(&txs[0].data);
    assert!(data.contains("Subject: swaks test\r\n"), "{data}");
    assert!(
        data.contains("\r\nswaks body line\r\n.dot line\r\n"),
        "{data}"
    );
}

#[test]
fn swaks_delivers_over_lmtp() {
    swaks(&TestServer::default(), &[]);
}

#[test]
fn swaks_delivers_with_pipelining() {
    swaks(&TestServer::default(), &["--pipeline"]);
}

#[test]
fn binary_body_survives_byte_for_byte() {
    let server = TestServer::default();
    let mut body = b"Content-Type: application/octet-stream\r\n\r\n".to_vec();
    for round in 0..64u8 {
        body.extend((0..=255u8).map(|b| b.wrapping_add(round)));
        body.extend(b"\r\n.\r\n..\n.\r\r\n\0\x80\xff\r\n");
    }
    let mut client = Client::connect(server.addr);
    let (_, data) = client.transaction(&["a@x"], &body);
    assert_eq!(data, ["250 2.0.0 delivered"]);
    assert!(
        server.transactions()[0].data == body,
        "body changed in transit"
    );
}

#[test]
fn ten_mib_message_is_delivered_intact() {
    let server = TestServer::default();
    let line = b"0123456789abcdefghijklmnopqrstuvwxyz.ABCDEFGHIJKLMNOPQRSTUVWXYZ\r\n";
    let body: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(10 * 1024 * 1024 / line.len() * line.len())
        .collect();
    let mut client = Client::connect(server.addr);
    let (_, data) = client.transaction(&["a@x", "b@x"], &body);
    assert_eq!(data, ["250 2.0.0 delivered"; 2]);
    assert!(server.transactions()[0].data == body);
}

#[test]
fn over_limit_message_gets_552_per_recipient_and_session_continues() {
    let server = TestServer::start(LmtpConfig {
        max_message_bytes: 1024 * 1024,
        ..LmtpConfig::default()
    });
    let mut client = Client::connect(server.addr);
    assert!(client.command("LHLO c").ends_with("250 SIZE 1048576"));
    let refused = client.command("MAIL FROM:<s@x> SIZE=2000000");
    assert!(refused.starts_with("552 5.3.4"), "{refused}");
    let line = [b"x".repeat(78), b"\r\n".to_vec()].concat();
    let big = line.repeat(2 * 1024 * 1024 / line.len());
    let (_, data) = client.transaction(&["a@x", "b@x"], &big);
    let expected = format!(
        "552 5.3.4 message is {} bytes, over the limit of 1048576 bytes",
        big.len()
    );
    assert_eq!(data.len(), 2);
    assert!(data.iter().all(|r| r.starts_with(&expected)), "{data:?}");
    let (_, data) = client.transaction(&["a@x"], b"small\r\n");
    assert_eq!(data, ["250 2.0.0 delivered"]);
    let txs = server.transactions();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].data, b"small\r\n");
}

#[test]
fn idle_peer_gets_421_then_close() {
    let server = TestServer::start(LmtpConfig {
        idle_timeout: Duration::from_millis(300),
        ..LmtpConfig::default()
    });
    let mut client = Client::connect(server.addr);
    client.send(b"LHLO slow\r\nMAIL FR");
    assert!(client.reply().starts_with("250-"));
    let started = Instant::now();
    let reply = client.reply();
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let mut rest = Vec::new();
    client.reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "connection should close after 421");
}

#[test]
fn fifty_concurrent_connections_all_deliver() {
    let server = TestServer::default();
    let addr = server.addr;
    let clients: Vec<_> = (0..50)
        .map(|i| {
            std::thread::spawn(move || {
                let mut client = Client::connect(addr);
                let body = format!("Subject: {i}\r\n\r\nmessage {i}\r\n");
                let (_, data) = client.transaction(&[&format!("user{i}@x")], body.as_bytes());
                assert_eq!(data, ["250 2.0.0 delivered"]);
                client.command("QUIT");
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let txs = server.transactions();
    assert_eq!(txs.len(), 50);
    for tx in txs.iter() {
        let i = tx.recipients[0]
            .trim_start_matches("user")
            .trim_end_matches("@x");
        assert_eq!(
            tx.data,
            format!("Subject: {i}\r\n\r\nmessage {i}\r\n").as_bytes()
        );
    }
}

#[test]
fn shutdown_sends_421_to_idle_sessions_and_serve_returns() {
    let server = TestServer::default();
    let mut client = Client::connect(server.addr);
    assert!(client.command("LHLO c").starts_with("250"));
    let stopper = std::thread::spawn(move || server.stop());
    let reply = client.reply();
    assert!(reply.starts_with("421 4.3.2"), "{reply}");
    stopper.join().unwrap();
}

#[test]
fn connections_past_the_cap_wait_and_are_then_served() {
    let server = TestServer::start(LmtpConfig {
        max_connections: 2,
        ..LmtpConfig::default()
    });
    let mut first = Client::connect(server.addr);
    let _second = Client::connect(server.addr);
    let addr = server.addr;
    let third = std::thread::spawn(move || {
        let mut client = Client::connect(addr);
        client.transaction(&["late@x"], b"late\r\n").1
    });
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.transactions().is_empty(),
        "third connection served past the cap"
    );
    assert!(first.command("QUIT").starts_with("221"));
    assert_eq!(third.join().unwrap(), ["250 2.0.0 delivered"]);
}
