//! Issue #14, "recovery, not a wedged store": a flood of connections must
//! neither take the descriptors the store needs nor shut other clients
//! out. Ten thousand half-sent HTTP requests on the JMAP port once took
//! every descriptor; deliveries then failed with `451 … Too many open
//! files` until a restart.
//!
//! The real server runs with a small `RLIMIT_NOFILE` (set by `prlimit`),
//! and the floods come from loopback addresses of their own (127.0.0.x).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::net::{connect_from, read_to_close, sent_so_far};
use support::server::Server;

/// The server's open files limit in the flood test.
const OPEN_FILES: u64 = 256;
/// `limits.reserved_files` there: JMAP keeps no descriptor at or above
/// 192, LMTP none at or above 224.
const RESERVED_FILES: &str = "64";
/// A request whose header never ends.
const HALF_SENT: &[u8] = b"GET /jmap/session HTTP/1.1\r\nHost: mail.example.org\r\n";

fn message(subject: &str) -> Vec<u8> {
    format!("From: a@example.net\r\nTo: bob@example.org\r\nSubject: {subject}\r\n\r\nhello\r\n")
        .into_bytes()
}

/// Descriptors the server holds now.
fn open_files(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count()
}

fn log(server: &Server) -> String {
    std::fs::read_to_string(server.scratch.path().join("server.log")).unwrap_or_default()
}

/// The first line the peer sends.
fn first_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while std::io::Read::read(stream, &mut byte).unwrap_or(0) == 1 {
        line.push(byte[0]);
        if byte[0] == b'\n' {
            break;
        }
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// A 503 that names no file or directory of the server.
fn assert_busy_reply(server: &Server, reply: &[u8], says: &str) {
    let text = String::from_utf8_lossy(reply);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(text.contains(says), "{text}");
    let data_dir = server.data_dir.to_str().unwrap();
    assert!(!text.contains(data_dir) && !text.contains("/tmp"), "{text}");
}

#[test]
fn a_flood_of_half_sent_requests_leaves_descriptors_for_delivery() {
    let server = Server::start_with_open_files(
        &[
            ("SEALMAIL_LIMITS_RESERVED_FILES", RESERVED_FILES),
            ("SEALMAIL_JMAP_MAX_CONNECTIONS_PER_SOURCE", "50"),
            // why long: this test is about descriptors, not the timeout.
            ("SEALMAIL_JMAP_HEADER_TIMEOUT", "10m"),
        ],
        OPEN_FILES,
    );
    server.account_with_password("bob@example.org", "pw-bob");
    let baseline = open_files(&server);
    assert!(
        server
            .lmtp_send("bob@example.org", &message("before"))
            .starts_with("250"),
        "{}",
        log(&server)
    );

    // 8 addresses × 40 connections: more than the process may open.
    let mut flood = Vec::new();
    for source in 2..=9u8 {
        for _ in 0..40 {
            flood.push(connect_from([127, 0, 0, source], server.jmap_port));
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    let mut held = Vec::new();
    let mut refused = 0;
    for mut stream in flood {
        match sent_so_far(&mut stream) {
            None => held.push(stream),
            Some(reply) => {
                assert_busy_reply(&server, &reply, "busy");
                refused += 1;
            }
        }
    }
    for stream in &mut held {
        stream.write_all(HALF_SENT).unwrap();
    }
    let during = open_files(&server);
    eprintln!(
        "baseline {baseline} descriptors; flood: {} held, {refused} refused; {during} open",
        held.len()
    );

    // The reserve: mail is still delivered, and the store opened what it
    // needed for that.
    let reply = server.lmtp_send("bob@example.org", &message("during"));
    assert!(reply.starts_with("250"), "{reply}\n{}", log(&server));
    assert!(
        !log(&server).contains("Too many open files"),
        "{}",
        log(&server)
    );
    assert!(refused > 0, "the flood never reached the reserve");
    assert!(held.len() > 100, "only {} connections held", held.len());

    // Released: everything works again, without a restart.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_files(&server) > baseline + 16 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        open_files(&server) <= baseline + 16,
        "{}",
        open_files(&server)
    );
    let reply = server.lmtp_send("bob@example.org", &message("after"));
    assert!(reply.starts_with("250"), "{reply}");
    let bob = server.jmap("bob@example.org", "pw-bob");
    let found = bob.call("Email/query", serde_json::json!({}));
    assert_eq!(found["ids"].as_array().unwrap().len(), 3, "{found}");
    let mut imap = connect_from([127, 0, 0, 2], server.imap_port);
    assert!(first_line(&mut imap).starts_with("* OK"));
}

#[test]
fn over_the_caps_a_connection_gets_503_and_slow_headers_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &[
            ("SEALMAIL_JMAP_MAX_CONNECTIONS", "8"),
            ("SEALMAIL_JMAP_MAX_CONNECTIONS_PER_SOURCE", "3"),
            ("SEALMAIL_JMAP_HEADER_TIMEOUT", "2s"),
        ],
    );
    // why: the readiness probe's connections must be gone before counting.
    std::thread::sleep(Duration::from_millis(300));
    let opened = Instant::now();
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| connect_from([127, 0, 0, 2], server.jmap_port))
        .collect();
    let mut fourth = connect_from([127, 0, 0, 2], server.jmap_port);
    assert_busy_reply(&server, &read_to_close(&mut fourth), "your address");

    held.extend((0..3).map(|_| connect_from([127, 0, 0, 3], server.jmap_port)));
    held.extend((0..2).map(|_| connect_from([127, 0, 0, 4], server.jmap_port)));
    let mut ninth = connect_from([127, 0, 0, 5], server.jmap_port);
    assert_busy_reply(&server, &read_to_close(&mut ninth), "busy");

    // A header sent a byte at a time does not keep the connection: the
    // timeout counts from the start of the request, not from the last byte.
    let slow = &mut held[0];
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut closed_after = None;
    for byte in HALF_SENT.iter().cycle().take(200) {
        if slow.write_all(&[*byte]).is_err() {
            closed_after = Some(opened.elapsed());
            break;
        }
        if let Some(reply) = sent_so_far(slow) {
            assert!(!String::from_utf8_lossy(&reply).contains(" 200 "));
            closed_after = Some(opened.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed_after = closed_after.expect("a trickled header kept its connection for 20 s");
    assert!(
        closed_after >= Duration::from_millis(1500) && closed_after < Duration::from_secs(6),
        "closed after {closed_after:?}"
    );
    // The silent ones are closed too, which frees their places.
    for stream in &mut held[1..] {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        read_to_close(stream);
        assert!(opened.elapsed() < Duration::from_secs(8));
    }
    let mut again = connect_from([127, 0, 0, 2], server.jmap_port);
    again
        .write_all(b"GET /.well-known/jmap HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let reply = String::from_utf8_lossy(&read_to_close(&mut again)).into_owned();
    assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
}

#[test]
fn lmtp_over_the_per_source_cap_gets_421_and_other_sources_still_deliver() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(
        dir.path(),
        &[("SEALMAIL_LMTP_MAX_CONNECTIONS_PER_SOURCE", "3")],
    );
    server.ok(&["account", "add", "bob@example.org"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| connect_from([127, 0, 0, 2], server.lmtp_port))
        .collect();
    for stream in &mut held {
        assert!(first_line(stream).starts_with("220 "));
    }
    let mut fourth = connect_from([127, 0, 0, 2], server.lmtp_port);
    let reply = String::from_utf8_lossy(&read_to_close(&mut fourth)).into_owned();
    assert!(reply.starts_with("421 4.3.2 "), "{reply}");
    assert!(reply.contains("your address"), "{reply}");
    assert!(
        !reply.contains(server.data_dir.to_str().unwrap()),
        "{reply}"
    );

    // 127.0.0.1 is another source: its delivery goes through.
    let reply = server.lmtp_send("bob@example.org", &message("other source"));
    assert!(reply.starts_with("250"), "{reply}");

    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    let mut back = connect_from([127, 0, 0, 2], server.lmtp_port);
    assert!(first_line(&mut back).starts_with("220 "));
}
