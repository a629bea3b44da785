//! Metrics and health checks of the real `sealmail serve` binary: a real
//! Prometheus (Debian's package) scrapes `metrics.listen` and the test
//! reads the series back through Prometheus' HTTP API; `/healthz` and
//! `/readyz` on both listeners; junk on the metrics listener; the
//! listener off when unset, and a clear error when it cannot bind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::http;
use support::prometheus::Prometheus;
use support::server::{binary, free_port, Server};

/// A server with `metrics.listen` on a fresh loopback port; the port.
fn server_with_metrics(dir: &std::path::Path) -> (Server, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start_with_env(dir, &[("SEALMAIL_METRICS_LISTEN", &listen)]);
    (server, port)
}

/// The value of the sample `line_start` (name and labels) in `scrape`.
fn sample(scrape: &str, line_start: &str) -> f64 {
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {line_start} in\n{scrape}"))
        .parse()
        .unwrap()
}

fn message(n: usize) -> Vec<u8> {
    format!(
        "From: sender@example.net\r\nTo: alice@example.org\r\nSubject: metrics {n}\r\n\
         Message-ID: <metrics-{n}@example.net>\r\n\r\nbody {n}\r\n"
    )
    .into_bytes()
}

#[test]
fn prometheus_reads_back_the_deliveries() {
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics_port) = server_with_metrics(dir.path());
    server.ok(&["account", "add", "alice@example.org"]);
    for n in 0..3 {
        let reply = server.lmtp_send("alice@example.org", &message(n));
        assert!(reply.starts_with("250"), "{reply}");
    }
    let refused = server.lmtp_try_send("nobody@example.org", &message(9));
    assert!(refused.is_err(), "an unknown recipient was accepted");

    let prometheus = Prometheus::scraping(metrics_port);
    prometheus.wait_for("up{job=\"sealmail\"}", "1", Duration::from_secs(60));
    prometheus.wait_for(
        "sealmail_lmtp_deliveries_total{class=\"2xx\"}",
        "3",
        Duration::from_secs(60),
    );
    prometheus.wait_for(
        "sealmail_lmtp_rcpt_refusals_total{class=\"5xx\"}",
        "1",
        Duration::from_secs(30),
    );
    // Four deliveries, and the start-up helper's probes of the port.
    let accepted = prometheus.query("sealmail_connections_accepted_total{protocol=\"lmtp\"}");
    assert!(accepted[0].1.parse::<f64>().unwrap() >= 4.0, "{accepted:?}");
    // Three synced commits at least (one per delivery), and their bodies.
    let writes = prometheus.query("sealmail_store_write_duration_seconds_count");
    assert!(writes[0].1.parse::<f64>().unwrap() >= 3.0, "{writes:?}");
    let bytes = prometheus.query("sealmail_blob_stored_bytes_total");
    let stored: usize = (0..3).map(|n| message(n).len()).sum();
    assert!(
        bytes[0].1.parse::<f64>().unwrap() >= stored as f64,
        "{bytes:?}"
    );
}

#[test]
fn the_scrape_names_no_account_address_or_message() {
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics_port) = server_with_metrics(dir.path());
    server.ok(&["account", "add", "alice@example.org"]);
    let reply = server.lmtp_send("alice@example.org", &message(1));
    assert!(reply.starts_with("250"), "{reply}");
    let (status, scrape) = http::get(metrics_port, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&scrape, "sealmail_lmtp_deliveries_total{class=\"2xx\"}"),
        1.0
    );
    for secret in ["alice", "example.org", "example.net", "metrics 1", "body 1"] {
        assert!(!scrape.contains(secret), "{secret:?} in\n{scrape}");
    }
}

#[test]
fn health_checks_answer_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let (server, metrics_port) = server_with_metrics(dir.path());
    for port in [metrics_port, server.jmap_port] {
        assert_eq!(http::get(port, "/healthz"), (200, "ok\n".into()), "{port}");
        assert_eq!(
            http::get(port, "/readyz"),
            (200, "ready\n".into()),
            "{port}"
        );
    }
    // The series are on the metrics listener only.
    assert_eq!(http::get(server.jmap_port, "/metrics").0, 404);
}

/// Sends `bytes` and reads what comes back until the server closes the
/// connection or 10 s pass.
fn send_junk(port: u16, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // why ignore write errors: the server may close before taking it all.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

#[test]
fn the_metrics_listener_survives_junk_and_an_oversized_request_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, port) = server_with_metrics(dir.path());
    let answer = send_junk(port, b"\x00\xff\x16\x03\x01 not http at all\r\n\r\n");
    assert!(
        answer.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let mut long = b"GET /".to_vec();
    long.resize(2 * 1024 * 1024, b'a');
    let answer = send_junk(port, &long);
    // why empty allowed: the server may reset the connection while the
    // rest of the line is still arriving, and the reset can overtake its
    // 431 answer.
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 431"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let (status, scrape) = http::get(port, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(
        sample(&scrape, "sealmail_build_info{version=\"0.1.0\"}"),
        1.0
    );
}

#[test]
fn the_metrics_listener_is_off_when_unset() {
    let server = Server::start();
    let log = std::fs::read_to_string(server.scratch.path().join("server.log")).unwrap();
    let listening: Vec<&str> = log.lines().filter(|l| l.contains("listening")).collect();
    assert!(
        listening
            .iter()
            .any(|l| l.contains("service=\"lmtp\"") || l.contains("service=lmtp")),
        "the log format changed; this test reads it:\n{log}"
    );
    assert!(
        !listening.iter().any(|l| l.contains("metrics")),
        "{listening:?}"
    );
    assert_eq!(http::get(server.jmap_port, "/healthz").0, 200);
    assert_eq!(http::get(server.jmap_port, "/metrics").0, 404);
}

#[test]
fn a_metrics_address_in_use_is_refused_naming_the_key() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut child = binary()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("SEALMAIL_LMTP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("SEALMAIL_IMAP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("SEALMAIL_JMAP_LISTEN", format!("127.0.0.1:{}", free_port()))
        .env("SEALMAIL_METRICS_LISTEN", &address)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server started on an address in use");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("metrics.listen") && stderr.contains(&address),
        "{stderr}"
    );
    drop(taken);
}

/// `now` moved by `days`, as `openssl ca` takes dates (`YYYYMMDDHHMMSSZ`).
fn openssl_date(days: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::days(days);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[test]
fn a_certificate_that_expires_within_30_days_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    let soon = support::cert_corpus::dated(
        certs.path(),
        "alice@example.org",
        &openssl_date(-1),
        &openssl_date(10),
    );
    {
        let (server, port) = server_with_metrics(dir.path());
        let (_, scrape) = http::get(port, "/metrics");
        assert_eq!(sample(&scrape, "sealmail_certificates_expiring"), 0.0);
        server.ok(&["account", "add", "alice@example.org"]);
        server.ok(&["cert", "add", "alice@example.org", soon.to_str().unwrap()]);
    }
    // The gauges are counted at start and every 5 minutes after.
    let (_server, port) = server_with_metrics(dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, scrape) = http::get(port, "/metrics");
        if sample(&scrape, "sealmail_certificates_expiring") == 1.0 {
            assert_eq!(sample(&scrape, "sealmail_certificates_expired"), 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "not counted:\n{scrape}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
