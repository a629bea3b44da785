//! Memory of the real server over a 200,000-message INBOX: RSS after
//! three sessions SELECT it and hold it, after `UID SEARCH ALL`, and after
//! `COPY 1:* Dbl`, with the bytes of each reply. The mailbox is filled at
//! the store level (not by LMTP) so that the set-up takes about a minute.
//! Ignored by default (it measures, it does not check); run with
//! `cargo test --test imap_select_memory -- --ignored --nocapture`
//! (`SELECT_MEMORY_MESSAGES` changes the count). Results in
//! benches/RESULTS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;

use sealmail::store::{Flags, HeaderFields, MailStore, NewMessage};
use support::server::Server;

const USER: &str = "big@example.org";
const PASSWORD: &str = "big-pw";

/// Fills INBOX of a new account with `count` small distinct messages.
fn fill(dir: &std::path::Path, count: usize) {
    let store = MailStore::open(dir).unwrap();
    let id = store.add_account(USER, Some(PASSWORD), &[]).unwrap().id;
    store.create_mailbox(id, "Dbl").unwrap();
    let inbox = store.mailbox_by_name(id, "INBOX").unwrap().id;
    let bodies: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            format!(
                "From: sender{i}@example.net\r\nTo: {USER}\r\nSubject: message number {i}\r\n\
                 Message-ID: <m{i}@example.net>\r\nDate: Sun, 6 Dec 2026 08:00:00 +0000\r\n\r\n\
                 body {i}\r\n"
            )
            .into_bytes()
        })
        .collect();
    for (n, chunk) in bodies.chunks(1000).enumerate() {
        let items = chunk
            .iter()
            .enumerate()
            .map(|(k, raw)| {
                let i = n * 1000 + k;
                let headers = HeaderFields {
                    from: Some(format!("sender{i}@example.net")),
                    to: Some(USER.into()),
                    subject: Some(format!("message number {i}")),
                    date: Some("Sun, 6 Dec 2026 08:00:00 +0000".into()),
                    message_id: Some(format!("<m{i}@example.net>")),
                    ..HeaderFields::default()
                };
                let msg = NewMessage {
                    raw,
                    flags: Flags::default(),
                    internal_date: 1_800_000_000,
                    headers,
                    encrypted: false,
                    unique: false,
                };
                (id, inbox, msg)
            })
            .collect();
        store.append_many(items).unwrap();
    }
}

/// A raw IMAP connection: the reply bytes of each command are counted,
/// not kept.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    next: u32,
}

impl Client {
    fn connect(port: u16) -> Self {
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut client = Self {
            reader: BufReader::new(tcp.try_clone().unwrap()),
            writer: tcp,
            next: 0,
        };
        let mut greeting = String::new();
        client.reader.read_line(&mut greeting).unwrap();
        client.run(&format!("LOGIN {USER} {PASSWORD}"));
        client
    }

    /// Sends `command`; returns (tagged reply line, bytes received).
    fn run(&mut self, command: &str) -> (String, usize) {
        self.next += 1;
        let tag = format!("t{}", self.next);
        write!(self.writer, "{tag} {command}\r\n").unwrap();
        let mut total = 0;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(n > 0, "connection closed during {command}");
            total += n;
            if line.starts_with(format!("{tag} ").as_bytes()) {
                return (String::from_utf8_lossy(&line).trim().to_string(), total);
            }
        }
    }
}

fn report(server: &Server, step: &str, reply: Option<(String, usize)>) {
    let (rss, hwm) = (server.memory_kib("VmRSS"), server.memory_kib("VmHWM"));
    let reply = reply.map_or(String::new(), |(line, bytes)| {
        let line: String = line.chars().take(60).collect();
        format!("  reply {bytes} bytes: {line}")
    });
    println!(
        "{step:<32} RSS {:>7.1} MiB  peak {:>7.1} MiB{reply}",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
}

#[test]
#[ignore = "benchmark: run explicitly with --ignored --nocapture"]
fn select_search_copy_memory_over_a_large_mailbox() {
    let count: usize = std::env::var("SELECT_MEMORY_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    fill(dir.path(), count);
    println!("filled {count} messages in {:?}", started.elapsed());
    let server = Server::start_on(dir.path());
    let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(server.imap_port)).collect();
    report(&server, "logged in (3 sessions)", None);
    for (n, client) in clients.iter_mut().enumerate() {
        let reply = client.run("SELECT INBOX");
        report(&server, &format!("SELECT held by {}", n + 1), Some(reply));
    }
    let reply = clients[0].run("UID SEARCH ALL");
    report(&server, "UID SEARCH ALL", Some(reply));
    let reply = clients[0].run("SEARCH SUBJECT \"number 1999\"");
    report(&server, "SEARCH SUBJECT", Some(reply));
    let reply = clients[0].run("COPY 1:* Dbl");
    report(&server, "COPY 1:* Dbl", Some(reply));
    let reply = clients[1].run("NOOP");
    report(&server, "NOOP (no change in INBOX)", Some(reply));
}
