//! The account page (`/account/` on the JMAP listener) of the real
//! `sealmail serve`: its headers and the redirect of `/`, the
//! `EncryptionSettings/sendTest` method behind its test button, and a user
//! walking through it in headless Chromium (Debian's `chromium` and
//! `chromium-driver`, driven by Debian's `python3-selenium` from
//! `tests/account_page/drive.py`): log in, a good and a bad certificate,
//! PKCS#12 files made by `openssl pkcs12 -export` (OpenSSL 3 defaults with a
//! CA certificate, `-legacy` RC2-40, 3DES) that the page opens in the
//! browser, a wrong password, a garbage and a truncated .p12, rotation,
//! encryption on, a test message; then `openssl cms -decrypt` shows that the
//! next LMTP delivery is encrypted for the certificate taken out of the
//! PKCS#12 file. Chromium's network log shows that no request carried a
//! PKCS#12 file, a private key or the file's password. Screenshots of every
//! step are kept in a directory the test prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "account_page/browser.rs"]
mod browser;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use browser::{drive, require_browser, screenshot_dir, Chromedriver};
use serde_json::{json, Value};
use support::http::get_with_headers;
use support::pki::{self, KeyPair};
use support::server::Server;
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
        (
            "/account/pkcs12.js",
            "text/javascript; charset=utf-8",
            "pbeWithSHAAnd40BitRC2-CBC",
        ),
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
    assert_eq!(status, 404, "only the page's own files are served");
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

/// The PKCS#12 files' password; long and odd so that finding it in a
/// request body can only mean it was sent.
const P12_PASSWORD: &str = "p12 pass 8d1f-c0ffee-walk";

/// The certificates and PKCS#12 files of the walk-through, made in `dir`.
struct Certs {
    good: KeyPair,
    second: KeyPair,
    bad: KeyPair,
    legacy: KeyPair,
    des: KeyPair,
    ca: KeyPair,
    /// `second` with its key and `ca`, OpenSSL 3 defaults (PBES2
    /// AES-256-CBC, PBKDF2-SHA256, SHA-256 MAC).
    p12: PathBuf,
    /// `legacy` with its key, `-legacy` (RC2-40 certificates, 3DES key,
    /// SHA-1 MAC).
    p12_legacy: PathBuf,
    /// `des` and `ca`, no key, certificates under 3DES: the page must tell
    /// the user's certificate from the CA by basicConstraints alone.
    p12_3des: PathBuf,
    p12_garbage: PathBuf,
    p12_truncated: PathBuf,
}

fn pkcs12(out: &Path, args: &[&str], cert: &KeyPair, key: Option<&KeyPair>, ca: Option<&KeyPair>) {
    let mut cmd = Command::new("openssl");
    cmd.args(["pkcs12", "-export", "-passout"])
        .arg(format!("pass:{P12_PASSWORD}"))
        .args(args)
        .arg("-in")
        .arg(&cert.cert)
        .arg("-out")
        .arg(out);
    match key {
        Some(key) => cmd.arg("-inkey").arg(&key.key),
        None => cmd.arg("-nokeys"),
    };
    if let Some(ca) = ca {
        cmd.arg("-certfile").arg(&ca.cert);
    }
    run(&mut cmd, b"");
}

fn certificates(dir: &Path, address: &str) -> Certs {
    let subject = format!("/CN={address}/emailAddress={address}");
    let make = |name, exts: &[String]| pki::self_signed(dir, name, "rsa:2048", &subject, exts);
    let good = make("good", &pki::smime_extensions(address));
    let second = make("second", &pki::smime_extensions(address));
    let legacy = make("legacy", &pki::smime_extensions(address));
    let des = make("des", &pki::smime_extensions(address));
    let mut not_for_mail = pki::smime_extensions(address);
    not_for_mail[2] = "extendedKeyUsage=clientAuth".into();
    let bad = make("bad", &not_for_mail);
    let ca = pki::self_signed(
        dir,
        "ca",
        "rsa:2048",
        "/CN=Walk-through CA",
        &["basicConstraints=critical,CA:TRUE".into()],
    );
    let p12 = dir.join("second.p12");
    pkcs12(&p12, &[], &second, Some(&second), Some(&ca));
    let p12_legacy = dir.join("legacy.p12");
    pkcs12(&p12_legacy, &["-legacy"], &legacy, Some(&legacy), None);
    let p12_3des = dir.join("des.pfx");
    pkcs12(
        &p12_3des,
        &["-legacy", "-certpbe", "PBE-SHA1-3DES"],
        &des,
        None,
        Some(&ca),
    );
    // why stderr: `openssl pkcs12 -info` writes the algorithms there.
    let info = run_unchecked(
        Command::new("openssl")
            .args(["pkcs12", "-info", "-noout", "-legacy", "-passin"])
            .arg(format!("pass:{P12_PASSWORD}"))
            .arg("-in")
            .arg(&p12_legacy),
        b"",
    );
    let info = String::from_utf8_lossy(&info.stderr);
    assert!(
        info.contains("pbeWithSHA1And40BitRC2-CBC"),
        "openssl -legacy made RC2-40: {info}"
    );
    let p12_garbage = dir.join("garbage.p12");
    let noise: Vec<u8> = (0u32..3000)
        .map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[1])
        .collect();
    std::fs::write(&p12_garbage, noise).unwrap();
    let p12_truncated = dir.join("truncated.p12");
    let whole = std::fs::read(&p12).unwrap();
    std::fs::write(&p12_truncated, &whole[..whole.len() / 2]).unwrap();
    Certs {
        good,
        second,
        bad,
        legacy,
        des,
        ca,
        p12,
        p12_legacy,
        p12_3des,
        p12_garbage,
        p12_truncated,
    }
}

/// `key` in DER (PKCS#8 and PKCS#1), written next to it: what a leak of
/// the private key would carry.
fn key_ders(key: &KeyPair) -> [PathBuf; 2] {
    let pkcs8 = key.key.with_extension("p8.der");
    let pkcs1 = key.key.with_extension("p1.der");
    run(
        Command::new("openssl")
            .args(["pkey", "-outform", "DER", "-in"])
            .arg(&key.key)
            .arg("-out")
            .arg(&pkcs8),
        b"",
    );
    run(
        Command::new("openssl")
            .args(["rsa", "-traditional", "-outform", "DER", "-in"])
            .arg(&key.key)
            .arg("-out")
            .arg(&pkcs1),
        b"",
    );
    [pkcs8, pkcs1]
}

/// `cert` in DER, written next to it.
fn cert_der(cert: &KeyPair) -> PathBuf {
    let der = cert.cert.with_extension("der");
    std::fs::write(&der, cert.cert_der()).unwrap();
    der
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
    let [good_fp, second_fp, legacy_fp, des_fp, ca_fp] = [
        &certs.good,
        &certs.second,
        &certs.legacy,
        &certs.des,
        &certs.ca,
    ]
    .map(|pair| fingerprint(&pair.cert));
    let shots = screenshot_dir();
    println!("account page screenshots: {}", shots.display());

    let mut never_sent = vec![
        certs.p12.clone(),
        certs.p12_legacy.clone(),
        certs.p12_3des.clone(),
        certs.p12_garbage.clone(),
        certs.p12_truncated.clone(),
    ];
    for pair in [&certs.second, &certs.legacy] {
        never_sent.extend(key_ders(pair));
    }
    let sent = [&certs.second, &certs.legacy, &certs.des].map(cert_der);
    let shown = {
        let driver = Chromedriver::start(&shots.join("chromedriver.log"));
        let profile = dir.path().join("chromium-profile");
        let config = json!({
            "address": address, "password": password,
            "good": certs.good.cert, "bad": certs.bad.cert,
            "p12": certs.p12, "p12_legacy": certs.p12_legacy, "p12_3des": certs.p12_3des,
            "p12_garbage": certs.p12_garbage, "p12_truncated": certs.p12_truncated,
            "p12_password": P12_PASSWORD,
            "good_fp": good_fp, "second_fp": second_fp, "legacy_fp": legacy_fp, "des_fp": des_fp,
            "never_sent_files": never_sent,
            "never_sent_pem": [certs.second.key, certs.legacy.key],
            "sent_files": sent,
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

    // PKCS#12: refused files say why, and nothing reached the server.
    let wrong = text(&shown, "p12_wrong_password");
    assert!(wrong.contains("The password is wrong"), "{wrong}");
    assert_eq!(
        shown["certs_unchanged_after_wrong_password"], true,
        "{shown}"
    );
    for (key, why) in [
        ("p12_garbage", "not a PKCS#12 file"),
        ("p12_truncated", "cut short"),
    ] {
        let said = text(&shown, key);
        assert!(said.contains(why), "{key}: {said}");
        assert!(said.contains("Export it again"), "{key}: {said}");
    }
    for key in ["p12_legacy", "p12_3des", "second"] {
        let said = text(&shown, key);
        assert!(
            said.contains(&format!("Added the certificate for {address}"))
                && said.contains("the private key and the file's password were not sent"),
            "{key}: {said}"
        );
    }
    let listed_on_page: Vec<_> = shown["row_fingerprints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let mut inactive = listed_on_page.get(1..).unwrap_or_default().to_vec();
    inactive.sort();
    let mut expected = vec![good_fp.clone(), legacy_fp.clone(), des_fp.clone()];
    expected.sort();
    assert_eq!(
        (listed_on_page.first(), inactive),
        (Some(&second_fp), expected),
        "the second (from the .p12) first and active, then the others; never the CA"
    );
    let rows = shown["rows"].as_array().unwrap();
    assert!(rows[0].as_str().unwrap().starts_with("Active"), "{shown}");
    for row in &rows[1..] {
        assert!(row.as_str().unwrap().starts_with("Inactive"), "{shown}");
    }

    // The private key never left the browser; the certificates did.
    assert_eq!(shown["leaks"], json!([]), "secrets in requests: {shown}");
    for der in &sent {
        let seen = shown["sent_seen"][der.to_str().unwrap()]
            .as_array()
            .map_or(0, Vec::len);
        assert!(
            seen >= 1,
            "the scan must find the uploaded {} in a request (else it proves nothing): {shown}",
            der.display()
        );
    }
    assert!(shown["bodies"].as_u64().unwrap() >= 10, "{shown}");

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
    assert_eq!(
        active,
        [second_fp.as_str()],
        "only the second is active: {listed}"
    );
    let all: Vec<_> = listed["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["fingerprint"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        all.len(),
        4,
        "the bad one and the CA were not added: {listed}"
    );
    assert!(
        !all.contains(&ca_fp),
        "the CA of the .p12 was sent: {listed}"
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
        for old in [&certs.good, &certs.legacy, &certs.des] {
            let opened = run_unchecked(
                Command::new("openssl")
                    .args(["cms", "-decrypt", "-recip"])
                    .arg(&old.cert)
                    .arg("-inkey")
                    .arg(&old.key),
                stored,
            );
            assert!(
                !opened.status.success(),
                "the deactivated {} still opens new mail",
                old.cert.display()
            );
        }
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
