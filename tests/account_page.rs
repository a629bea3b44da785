//! The account page (`/account/` on the JMAP listener) of the real
//! `sealmail serve`: its headers and the redirect of `/`, the
//! `EncryptionSettings/sendTest` method behind its test button, and a user
//! walking through it in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven by Debian's `python3-selenium` from
//! `tests/account_page/drive.py`): log in, a good and a bad certificate, a
//! PKCS#12 file the page refuses to send, rotation, encryption on, a test
//! message; then `openssl cms -decrypt` shows that the next LMTP delivery
//! is encrypted for the uploaded certificate. Screenshots of every step
//! are kept in a directory the test prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::http::get_with_headers;
use support::pki::{self, KeyPair};
use support::server::{free_port, Server};
use support::tools::{openssl_decrypt, require, run, run_unchecked};

/// The policy the brief of the page asks for, word for word.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn assert_secured(path: &str, headers: &[(String, String)]) {
    assert_eq!(
        header(headers, "content-security-policy"),
        Some(CSP),
        "{path}"
    );
    assert_eq!(
        header(headers, "x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
    assert_eq!(
        header(headers, "referrer-policy"),
        Some("no-referrer"),
        "{path}"
    );
    assert_eq!(header(headers, "set-cookie"), None, "{path} sets a cookie");
}

#[test]
fn the_page_has_strict_headers_and_the_root_redirects_to_it() {
    let server = Server::start();
    for path in ["/", "/account"] {
        let (status, headers, _) = get_with_headers(server.jmap_port, path);
        assert!((300..400).contains(&status), "{path} answered {status}");
        assert_eq!(header(&headers, "location"), Some("/account/"), "{path}");
        assert_secured(path, &headers);
    }
    for (path, content_type, needle) in [
        (
            "/account/",
            "text/html; charset=utf-8",
            "<script src=\"page.js\"",
        ),
        (
            "/account/page.js",
            "text/javascript; charset=utf-8",
            "EncryptionSettings/sendTest",
        ),
        ("/account/page.css", "text/css; charset=utf-8", "[hidden]"),
    ] {
        let (status, headers, body) = get_with_headers(server.jmap_port, path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(
            header(&headers, "content-type"),
            Some(content_type),
            "{path}"
        );
        assert!(body.contains(needle), "{path} lacks {needle:?}");
        assert_secured(path, &headers);
    }
    let (status, _, _) = get_with_headers(server.jmap_port, "/account/other.js");
    assert_eq!(status, 404, "only the three files are served");
}

/// `EncryptionSettings/sendTest` as one call; `(name, arguments)`.
fn send_test(jmap: &support::server::JmapUser) -> (String, Value) {
    let r = jmap.calls(json!([["EncryptionSettings/sendTest", {}, "t"]]));
    (r[0][0].as_str().unwrap().to_string(), r[0][1].clone())
}

#[test]
fn send_test_stores_an_encrypted_message_once_a_minute() {
    let server = Server::start();
    let address = "tess@example.org";
    server.account_with_password(address, "tess's password");
    let jmap = server.jmap(address, "tess's password");

    let (name, refused) = send_test(&jmap);
    assert_eq!(name, "error", "refused while encryption is off: {refused}");
    assert_eq!(refused["type"], "forbidden");
    assert!(
        refused["description"]
            .as_str()
            .unwrap()
            .contains("turn encryption on"),
        "{refused}"
    );
    assert!(server.inbox(address).is_empty());

    let keys = pki::pair(address, 2048);
    server.ok(&["cert", "add", address, keys.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", address]);
    let (name, sent) = send_test(&jmap);
    assert_eq!(name, "EncryptionSettings/sendTest", "{sent}");
    assert_eq!(sent["encrypted"], true, "{sent}");
    assert_eq!(sent["subject"], "sealmail test message");

    let (name, again) = send_test(&jmap);
    assert_eq!(name, "error", "a second one within the minute: {again}");
    assert_eq!(again["type"], "forbidden");
    assert!(
        again["description"].as_str().unwrap().contains("wait"),
        "{again}"
    );

    let inbox = server.inbox(address);
    assert_eq!(inbox.len(), 1, "exactly one test message stored");
    let clear =
        String::from_utf8_lossy(&openssl_decrypt(&inbox[0], &keys.cert, &keys.key)).into_owned();
    assert!(clear.contains("If you can read this"), "{clear}");
    let id = sent["messageId"].as_str().unwrap();
    assert!(
        String::from_utf8_lossy(&inbox[0]).contains(&format!("<{id}>")),
        "the clear outer header names the Message-ID given back"
    );
}

/// chromedriver in a process group of its own, which it shares with the
/// Chromium it starts: dropping this kills the whole group, so no browser
/// outlives the test even when the driver script fails or hangs.
struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    fn start(log: &Path) -> Self {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let driver = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        driver
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// The SHA-256 fingerprint of `cert` as the page shows it in its rows
/// (lower-case hex, no colons).
fn fingerprint(cert: &Path) -> String {
    let out = run(
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert),
        b"",
    );
    let text = String::from_utf8(out).unwrap();
    let hex = text.trim().rsplit('=').next().unwrap();
    hex.replace(':', "").to_ascii_lowercase()
}

/// Where the screenshots go: kept after the test, under the target dir.
fn screenshot_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("account_page-screenshots");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the driver script with Debian's Python (the one python3-selenium
/// is installed for); its last stdout line parsed. Killed after 5 minutes.
fn drive(webdriver: u16, jmap: u16, config: &Value) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/account_page/drive.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .arg(format!("http://127.0.0.1:{webdriver}"))
        .arg(format!("http://127.0.0.1:{jmap}"))
        .arg(config.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the browser walk-through took over 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser walk-through failed ({}); screenshots in {}:\n{}{}",
        out.status,
        config["shots"].as_str().unwrap(),
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap()
}

fn require_browser() {
    require("chromium");
    require("chromedriver");
    let selenium = Command::new("/usr/bin/python3")
        .args(["-c", "import selenium"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        selenium,
        "Debian's python3-selenium is missing; run scripts/install-deps.sh or `apt-get install -y python3-selenium`"
    );
}

/// The certificates of the walk-through, made in `dir`.
struct Certs {
    good: KeyPair,
    second: KeyPair,
    bad: KeyPair,
    pkcs12: PathBuf,
}

fn certificates(dir: &Path, address: &str) -> Certs {
    let subject = format!("/CN={address}/emailAddress={address}");
    let make = |name, exts: &[String]| pki::self_signed(dir, name, "rsa:2048", &subject, exts);
    let good = make("good", &pki::smime_extensions(address));
    let second = make("second", &pki::smime_extensions(address));
    let mut not_for_mail = pki::smime_extensions(address);
    not_for_mail[2] = "extendedKeyUsage=clientAuth".into();
    let bad = make("bad", &not_for_mail);
    let pkcs12 = dir.join("good.p12");
    run(
        Command::new("openssl")
            .args(["pkcs12", "-export", "-passout", "pass:secret", "-in"])
            .arg(&good.cert)
            .arg("-inkey")
            .arg(&good.key)
            .arg("-out")
            .arg(&pkcs12),
        b"",
    );
    Certs {
        good,
        second,
        bad,
        pkcs12,
    }
}

fn text<'a>(shown: &'a Value, key: &str) -> &'a str {
    shown[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key}: {shown}"))
}

#[test]
fn a_user_rotates_keys_and_turns_encryption_on_in_a_real_browser() {
    require_browser();
    require("openssl");
    let server = Server::start();
    let (address, password) = ("paula@example.org", "paula's long password");
    server.account_with_password(address, password);
    let dir = pki::tempdir();
    let certs = certificates(dir.path(), address);
    let (good_fp, second_fp) = (
        fingerprint(&certs.good.cert),
        fingerprint(&certs.second.cert),
    );
    let shots = screenshot_dir();
    println!("account page screenshots: {}", shots.display());

    let shown = {
        let driver = Chromedriver::start(&shots.join("chromedriver.log"));
        let profile = dir.path().join("chromium-profile");
        let config = json!({
            "address": address, "password": password,
            "good": certs.good.cert, "second": certs.second.cert,
            "bad": certs.bad.cert, "pkcs12": certs.pkcs12,
            "good_fp": good_fp, "second_fp": second_fp,
            "shots": shots, "profile": profile,
        });
        drive(driver.port, server.jmap_port, &config)
    };

    assert!(
        text(&shown, "url_after_root").ends_with("/account/"),
        "{shown}"
    );
    assert!(text(&shown, "wrong_password").contains("Wrong address or password"));
    assert_eq!(text(&shown, "account_name"), address);
    assert!(text(&shown, "good").contains(&format!("Added the certificate for {address}")));
    let row = text(&shown, "good_row");
    assert!(
        row.contains("Active") && row.contains("RSA") && row.contains("2048"),
        "{row}"
    );
    let bad = text(&shown, "bad");
    assert!(
        bad.contains("without emailProtection, so it is not for e-mail; use an S/MIME (emailProtection) certificate"),
        "the server's own refusal, word for word: {bad}"
    );
    assert!(text(&shown, "pkcs12").contains("it holds your private key, so it was not sent"));
    let rows = shown["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{shown}");
    assert!(rows[0].as_str().unwrap().starts_with("Active"), "{shown}");
    assert!(rows[1].as_str().unwrap().starts_with("Inactive"), "{shown}");
    assert!(text(&shown, "test_while_off").contains("turn encryption on"));
    assert!(text(&shown, "settings").contains("AES-128-CBC"));
    assert!(text(&shown, "test_sent").contains("sealmail test message"));
    assert!(text(&shown, "test_again").contains("wait"));
    assert_eq!(shown["rows_after_logout"], 0);

    // What the server holds now, seen from outside the browser.
    let jmap = server.jmap(address, password);
    let listed = jmap.call("Certificate/get", json!({}));
    let active: Vec<_> = listed["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["isActive"] == true)
        .map(|c| c["fingerprint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(active, [second_fp], "only the second is active: {listed}");
    assert_eq!(
        listed["list"].as_array().unwrap().len(),
        2,
        "the bad one and the PKCS#12 were not added"
    );

    let marker = "delivered after the page turned encryption on";
    let message = format!(
        "From: x@example.net\r\nTo: {address}\r\nSubject: after the page\r\n\r\n{marker}\r\n"
    );
    let reply = server.lmtp_send(address, message.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
    let inbox = server.inbox(address);
    assert_eq!(inbox.len(), 2, "the test message and the delivery");
    let mut opened = String::new();
    for stored in &inbox {
        assert!(
            !String::from_utf8_lossy(stored).contains(marker),
            "stored in clear"
        );
        let clear = openssl_decrypt(stored, &certs.second.cert, &certs.second.key);
        opened.push_str(&String::from_utf8_lossy(&clear));
        let old = run_unchecked(
            Command::new("openssl")
                .args(["cms", "-decrypt", "-recip"])
                .arg(&certs.good.cert)
                .arg("-inkey")
                .arg(&certs.good.key),
            stored,
        );
        assert!(
            !old.status.success(),
            "the deactivated key still opens new mail"
        );
        let cms = run(
            Command::new("openssl").args(["cms", "-cmsout", "-print"]),
            stored,
        );
        assert!(
            String::from_utf8_lossy(&cms).contains("aes-128-cbc"),
            "the cipher chosen on the page"
        );
    }
    assert!(opened.contains(marker), "{opened}");
    assert!(opened.contains("If you can read this"), "{opened}");
}
