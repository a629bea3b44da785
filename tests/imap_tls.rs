//! STARTTLS and implicit TLS, checked with `openssl s_client` against a
//! self-signed certificate made with the openssl CLI at test time; and
//! LOGINDISABLED before STARTTLS, checked with Python `imaplib`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::imap::{server_cert, ImapServer};
use support::tools::{require, run_unchecked};

fn tls_server(dir: &std::path::Path) -> ImapServer {
    let (cert, key) = server_cert(dir, "imap.test");
    let tls = sealmail::imap::load_tls(&cert, &key).unwrap();
    let s = ImapServer::start_with(|c| c.tls = Some(tls));
    s.account("alice@example.org", "alice-pw");
    s
}

const SESSION: &[u8] =
    b"a1 CAPABILITY\r\na2 LOGIN alice@example.org alice-pw\r\na3 SELECT INBOX\r\na4 LOGOUT\r\n";

fn s_client(args: &[&str]) -> String {
    require("openssl");
    let out = run_unchecked(
        Command::new("openssl")
            .args(["s_client", "-quiet", "-ign_eof", "-verify_quiet"])
            .args(args),
        SESSION,
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn starttls_with_openssl_s_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = tls_server(dir.path());
    let port = s.port.to_string();
    let out = s_client(&[
        "-connect",
        &format!("127.0.0.1:{port}"),
        "-starttls",
        "imap",
    ]);
    assert!(out.contains("a2 OK"), "{out}");
    assert!(out.contains("a3 OK"), "{out}");
    // After STARTTLS: no STARTTLS, no LOGINDISABLED, AUTH=PLAIN offered.
    let caps = out.lines().find(|l| l.starts_with("* CAPABILITY")).unwrap();
    assert!(
        !caps.contains("STARTTLS") && !caps.contains("LOGINDISABLED"),
        "{caps}"
    );
    assert!(caps.contains("AUTH=PLAIN"), "{caps}");
}

#[test]
fn implicit_tls_with_openssl_s_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = tls_server(dir.path());
    let port = s.tls_port.unwrap().to_string();
    let out = s_client(&["-connect", &format!("127.0.0.1:{port}")]);
    assert!(out.contains("* OK"), "{out}");
    assert!(out.contains("a2 OK"), "{out}");
    assert!(out.contains("a4 OK"), "{out}");
}

#[test]
fn login_is_disabled_before_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let s = tls_server(dir.path());
    let out = s.python(
        r#"
m = imaplib.IMAP4('127.0.0.1', port)
out['caps'] = list(m.capabilities)
try:
    m.login(args[0], args[1])
    out['login'] = 'OK'
except imaplib.IMAP4.error as e:
    out['login'] = str(e)
"#,
        &["alice@example.org", "alice-pw"],
    );
    let caps = out["caps"].to_string();
    assert!(
        caps.contains("STARTTLS") && caps.contains("LOGINDISABLED"),
        "{caps}"
    );
    assert!(
        out["login"].as_str().unwrap().contains("PRIVACYREQUIRED"),
        "{out}"
    );
}
