//! The JMAP listener over HTTPS and behind proxies, against the real
//! `sealmail serve` (ARCHITECTURE.md: `jmap.tls_listen`, `jmap.public_url`,
//! `jmap.trusted_proxies`): the session's URLs (RFC 8620 §2) say `https://`
//! on the TLS listener (checked with `curl`, which verifies a certificate
//! made by the openssl CLI at test time), follow `jmap.public_url`, follow
//! forwarded headers from a trusted proxy only, and never reflect a
//! garbage `Host`; failed logins are logged (and throttled) under the
//! real client's address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

use support::imap::server_cert;
use support::server::{free_port, Server};
use support::tools::{require, run_unchecked};

const USER: &str = "alice@example.org";
const PASSWORD: &str = "alice-pw";

fn server(envs: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_with_env(&dir.path().join("data"), envs);
    s.account_with_password(USER, PASSWORD);
    (dir, s)
}

/// One HTTP/1.0 request with `headers` (each a whole `Name: value` line,
/// the `Host` among them when wanted): status and body.
fn raw(port: u16, path: &str, headers: &[&str]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("GET {path} HTTP/1.0\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn basic() -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    format!("Authorization: Basic {token}")
}

/// The session as `headers` get it; panics unless it is a 200.
fn session(port: u16, headers: &[&str]) -> Value {
    let auth = basic();
    let mut all = vec![auth.as_str()];
    all.extend_from_slice(headers);
    let (status, body) = raw(port, "/.well-known/jmap", &all);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn assert_urls_start_with(s: &Value, base: &str) {
    for key in ["apiUrl", "uploadUrl", "downloadUrl", "eventSourceUrl"] {
        let url = s[key].as_str().unwrap();
        assert!(url.starts_with(&format!("{base}/jmap/")), "{key}: {url}");
    }
}

/// Waits until `port` accepts connections (the helper waits for the
/// plain listeners only).
fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_tls_listener_serves_jmap_with_https_urls() {
    require("curl");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = server_cert(dir.path(), "jmap.test");
    let tls_port = free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let s = Server::start_with_env(
        &dir.path().join("data"),
        &[
            ("SEALMAIL_TLS_CERT", cert.to_str().unwrap()),
            ("SEALMAIL_TLS_KEY", key.to_str().unwrap()),
            ("SEALMAIL_JMAP_TLS_LISTEN", &listen),
        ],
    );
    s.account_with_password(USER, PASSWORD);
    wait_for(tls_port);
    let resolve = format!("jmap.test:{tls_port}:127.0.0.1");
    let curl = |url: &str| {
        let out = run_unchecked(
            Command::new("curl")
                .args(["-sS", "--fail-with-body", "--cacert"])
                .arg(&cert)
                .args(["--resolve", &resolve, "-u", &format!("{USER}:{PASSWORD}")])
                .arg(url),
            b"",
        );
        assert!(
            out.status.success(),
            "curl {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let base = format!("https://jmap.test:{tls_port}");
    let s_json = curl(&format!("{base}/.well-known/jmap"));
    assert_eq!(s_json["username"], USER);
    assert_urls_start_with(&s_json, &base);
    // The advertised apiUrl answers over TLS too.
    let api = s_json["apiUrl"].as_str().unwrap();
    let account = s_json["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        .as_str()
        .unwrap();
    let body = format!(
        r#"{{"using":["urn:ietf:params:jmap:core","urn:ietf:params:jmap:mail"],"methodCalls":[["Mailbox/get",{{"accountId":"{account}","ids":null}},"c0"]]}}"#
    );
    let out = run_unchecked(
        Command::new("curl")
            .args(["-sS", "--fail-with-body", "--cacert"])
            .arg(&cert)
            .args(["--resolve", &resolve, "-u", &format!("{USER}:{PASSWORD}")])
            .args(["-H", "content-type: application/json", "--data"])
            .arg(&body)
            .arg(api),
        b"",
    );
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["methodResponses"][0][0], "Mailbox/get", "{reply}");
    // The plain listener still says http://.
    let plain = session(s.jmap_port, &["Host: jmap.test"]);
    assert_urls_start_with(&plain, "http://jmap.test");
}

#[test]
fn jmap_tls_listen_without_a_certificate_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_unchecked(
        support::server::binary()
            .args(["serve", "--data-dir"])
            .arg(dir.path())
            .env(
                "SEALMAIL_JMAP_TLS_LISTEN",
                format!("127.0.0.1:{}", free_port()),
            )
            .env("SEALMAIL_JMAP_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("SEALMAIL_IMAP_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("SEALMAIL_LMTP_LISTEN", format!("127.0.0.1:{}", free_port())),
        b"",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("jmap.tls_listen"), "{err}");
}

#[test]
fn public_url_is_what_the_session_advertises() {
    let (_dir, s) = server(&[("SEALMAIL_JMAP_PUBLIC_URL", "https://mail.example.org/")]);
    let got = session(
        s.jmap_port,
        &["Host: internal:8080", "X-Forwarded-Host: evil.example"],
    );
    assert_urls_start_with(&got, "https://mail.example.org");
}

/// A JMAP API call (`Core/echo`) with `headers`: the status.
fn post_api(port: u16, headers: &[&str]) -> u16 {
    let body = r#"{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["Core/echo",{},"c0"]]}"#;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!(
        "POST /jmap/api HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
        body.len(),
        basic()
    );
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Behind a proxy that rewrites `Host`, the account page's own calls come
/// from the public origin: accepted; a foreign page's are still refused.
#[test]
fn the_public_origin_may_post_behind_a_proxy_that_rewrites_host() {
    let (_dir, s) = server(&[("SEALMAIL_JMAP_PUBLIC_URL", "https://mail.example.org")]);
    let port = s.jmap_port;
    let backend = "Host: 127.0.0.1:8080";
    assert_eq!(
        post_api(port, &[backend, "Origin: https://mail.example.org"]),
        200
    );
    assert_eq!(
        post_api(port, &[backend, "Origin: https://evil.example"]),
        403
    );
    assert_eq!(
        post_api(port, &[backend, "Origin: http://mail.example.org"]),
        403
    );
}

#[test]
fn a_bad_public_url_or_proxy_stops_the_server_naming_the_key() {
    for (var, value, key) in [
        (
            "SEALMAIL_JMAP_PUBLIC_URL",
            "mail.example.org",
            "jmap.public_url",
        ),
        (
            "SEALMAIL_JMAP_TRUSTED_PROXIES",
            r#"["10.0.0.0/40"]"#,
            "jmap.trusted_proxies",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = run_unchecked(
            support::server::binary()
                .args(["serve", "--data-dir"])
                .arg(dir.path())
                .env(var, value),
            b"",
        );
        assert!(!out.status.success(), "{var}={value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{var}: {err}");
    }
}

const FORWARDED: [&str; 4] = [
    "Host: backend:8080",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Host: mail.example.org",
    "X-Forwarded-For: 203.0.113.77",
];

#[test]
fn a_trusted_proxy_sets_scheme_and_host() {
    let (_dir, s) = server(&[("SEALMAIL_JMAP_TRUSTED_PROXIES", r#"["127.0.0.1"]"#)]);
    assert_urls_start_with(
        &session(s.jmap_port, &FORWARDED),
        "https://mail.example.org",
    );
    let rfc7239 = [
        "Host: backend:8080",
        "Forwarded: for=203.0.113.77;proto=https;host=\"mail.example.org:8443\"",
    ];
    assert_urls_start_with(
        &session(s.jmap_port, &rfc7239),
        "https://mail.example.org:8443",
    );
}

#[test]
fn an_untrusted_peer_cannot_forward_anything() {
    let (_dir, s) = server(&[(
        "SEALMAIL_JMAP_TRUSTED_PROXIES",
        r#"["10.9.9.9", "192.168.0.0/16"]"#,
    )]);
    assert_urls_start_with(&session(s.jmap_port, &FORWARDED), "http://backend:8080");
}

#[test]
fn garbage_hosts_are_refused_not_reflected() {
    let (_dir, s) = server(&[("SEALMAIL_JMAP_TRUSTED_PROXIES", r#"["127.0.0.1"]"#)]);
    let auth = basic();
    let long = format!("Host: {}", "a".repeat(400));
    for host in [
        "Host: evil.example/phish",
        "Host: user@evil.example",
        "Host: evil example",
        "Host: evil.example:80:80",
        long.as_str(),
    ] {
        let (status, body) = raw(s.jmap_port, "/.well-known/jmap", &[&auth, host]);
        assert_eq!(status, 400, "{host}: {body}");
        assert!(body.contains("Host"), "{body}");
        assert!(!body.contains("evil"), "{body}");
    }
    let (status, _) = raw(s.jmap_port, "/.well-known/jmap", &[&auth]);
    assert_eq!(status, 400, "no Host at all");
    // A garbage forwarded host from the trusted proxy falls back to Host.
    let got = session(
        s.jmap_port,
        &["Host: mail.example.org", "X-Forwarded-Host: evil.example/x"],
    );
    assert_urls_start_with(&got, "http://mail.example.org");
}

/// Sends one request with a wrong password and `forwarded_for`; returns
/// the source the server logged for that failure.
fn failed_login_source(s: &Server, forwarded_for: &str) -> String {
    let wrong = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:wrong"));
    let auth = format!("Authorization: Basic {wrong}");
    let xff = format!("X-Forwarded-For: {forwarded_for}");
    let (status, _) = raw(
        s.jmap_port,
        "/.well-known/jmap",
        &["Host: mail.example.org", &auth, &xff],
    );
    assert_eq!(status, 401);
    let log = std::fs::read_to_string(s.scratch.path().join("server.log")).unwrap();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("failed login") && l.contains("jmap"))
        .unwrap_or_else(|| panic!("no failed login logged:\n{log}"));
    let at = line.find("source=").unwrap() + "source=".len();
    line[at..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn failed_logins_count_against_the_real_client() {
    let (_dir, trusted) = server(&[("SEALMAIL_JMAP_TRUSTED_PROXIES", r#"["127.0.0.1"]"#)]);
    assert_eq!(
        failed_login_source(&trusted, "203.0.113.77"),
        "203.0.113.77"
    );
    let (_dir2, untrusted) = server(&[]);
    assert_eq!(failed_login_source(&untrusted, "203.0.113.77"), "127.0.0.1");
}
