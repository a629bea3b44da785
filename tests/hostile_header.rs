//! Hostile headers against the real server: text a strict reader does not
//! see as a header field (a line without a colon, a body with no empty
//! line before it, CR-only or bare-LF line ends, a blank before the colon,
//! a space in a field name) never stays in the clear outer header of an
//! opted-in account's copy. Each message is accepted with 250, its marker
//! is nowhere in the data directory read raw, `openssl cms -decrypt` with
//! the account's key shows it, and the stored copy has CRLF line ends only.
//! A bare-LF message appended over IMAP to an account without encryption
//! comes back with CRLF line ends and a matching RFC822.SIZE.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::server::Server;
use support::tools::{found_in_files, openssl_decrypt, python};

const PASSWORD: &str = "hostile header";

/// `(marker, message)`: each message hides its markers where only a lax
/// reader would see header fields.
fn hostile_messages() -> Vec<(Vec<&'static str>, Vec<u8>)> {
    let head = "From: x@example.net\r\nTo: alice@example.org\r\n";
    vec![
        (
            vec!["NOCOLON-SECRET-1f0a77"],
            format!("{head}Subject: a\r\nNOCOLON-SECRET-1f0a77 without a colon\r\nX-After: b\r\n\r\nbody\r\n"),
        ),
        (
            vec!["NOBLANK-SECRET-8e21c4", "NOBLANK-SECRET-TWO-45d0"],
            format!("{head}Subject: b\r\nDear Bob, the code is NOBLANK-SECRET-8e21c4\r\nNote: NOBLANK-SECRET-TWO-45d0\r\n"),
        ),
        (
            vec!["CRONLY-SECRET-c3b9e0"],
            "From: x@example.net\rTo: alice@example.org\rSubject: c\r\rCRONLY-SECRET-c3b9e0 in the body\r".to_string(),
        ),
        (
            vec!["CRINSIDE-SECRET-0d6f1a"],
            format!("{head}Subject: c2\r\r\nCRINSIDE-SECRET-0d6f1a after a bare CR\r\n\r\nbody\r\n"),
        ),
        (
            vec!["BARELF-SECRET-5a94d2"],
            "From: x@example.net\nTo: alice@example.org\nSubject: d\nBARELF-SECRET-5a94d2 right after\n".to_string(),
        ),
        (
            vec!["BLANKCOLON-SECRET-77e3b1"],
            format!("{head}Subject : BLANKCOLON-SECRET-77e3b1\r\n\r\nbody\r\n"),
        ),
        (
            vec!["SPACENAME-SECRET-e6102f"],
            format!("{head}X-Bad Name: SPACENAME-SECRET-e6102f\r\n\r\nbody\r\n"),
        ),
    ]
    .into_iter()
    .map(|(m, s)| (m, s.into_bytes()))
    .collect()
}

/// Whether every CR and LF in `bytes` is part of a CRLF.
fn crlf_only(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => bytes.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && bytes[i - 1] == b'\r',
        _ => true,
    })
}

#[test]
fn hostile_header_text_is_encrypted_and_line_ends_are_crlf() {
    let server = Server::start();
    let alice = server.encrypted_account("alice@example.org");

    let messages = hostile_messages();
    for (markers, data) in &messages {
        let reply = server.lmtp_send("alice@example.org", data);
        assert!(reply.starts_with("250"), "{markers:?}: {reply}");
    }

    let stored = server.inbox("alice@example.org");
    assert_eq!(stored.len(), messages.len());
    let mut opened = String::new();
    for bytes in &stored {
        assert!(
            crlf_only(bytes),
            "stored copy has bare CR or LF: {}",
            String::from_utf8_lossy(bytes)
        );
        opened.push_str(&String::from_utf8_lossy(&openssl_decrypt(
            bytes,
            &alice.cert,
            &alice.key,
        )));
    }
    for marker in messages.iter().flat_map(|(m, _)| m) {
        assert!(opened.contains(marker), "{marker} did not arrive");
        for place in [server.data_dir.as_path(), server.scratch.path()] {
            let hits = found_in_files(place, marker.as_bytes());
            assert!(hits.is_empty(), "{marker} in clear at {hits:?}");
        }
    }
}

const BARE_LF_APPEND: &str = r#"
import base64, imaplib, re, sys
# why: imaplib turns every line end into CRLF before APPEND; this test
# plays a client that does not.
imaplib.MapCRLF = re.compile(rb"(?!)")
port, user, password, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
imap = imaplib.IMAP4("127.0.0.1", port)
imap.login(user, password)
msg = ("From: bob@example.org\nSubject: draft\n\n" + marker + "\nline two\rline three\n").encode()
typ, data = imap.append("INBOX", None, None, msg)
assert typ == "OK", data
imap.select("INBOX")
typ, data = imap.fetch("1", "(RFC822.SIZE RFC822)")
assert typ == "OK", data
size = int(re.search(rb"RFC822\.SIZE (\d+)", data[0][0]).group(1))
print(size, base64.b64encode(data[0][1]).decode())
imap.logout()
"#;

#[test]
fn a_bare_lf_append_is_fetched_with_crlf() {
    let server = Server::start();
    server.account_with_password("bob@example.org", PASSWORD);
    let marker = "APPEND-CONTROL-MARKER-31c8";
    let printed = python(
        BARE_LF_APPEND,
        &[
            &server.imap_port.to_string(),
            "bob@example.org",
            PASSWORD,
            marker,
        ],
    );
    let (size, fetched) = printed.trim().split_once(' ').unwrap();
    let fetched = base64_decode(fetched);
    let expected = format!(
        "From: bob@example.org\r\nSubject: draft\r\n\r\n{marker}\r\nline two\r\nline three\r\n"
    );
    assert_eq!(String::from_utf8_lossy(&fetched), expected);
    assert_eq!(size.parse::<usize>().unwrap(), fetched.len());
    // The account is not encrypted: the scan sees its text, so the scans
    // above that find nothing could have found something.
    assert!(!found_in_files(&server.data_dir, marker.as_bytes()).is_empty());
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
