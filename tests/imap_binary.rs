//! FETCH BINARY, BINARY.PEEK and BINARY.SIZE (RFC 3516, RFC 9051 §6.4.5)
//! against the real server on a raw socket, reading literals by their
//! announced size so that decoded bytes, NULs included, are compared
//! byte for byte. `tests/imaptest.rs` runs imaptest's fetch-binary-*
//! scripts on top.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::imap::ImapServer;

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

/// A client that returns whole responses, literals inline.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    n: u32,
}

impl Client {
    fn connect(port: u16) -> Self {
        let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut c = Client {
            reader: BufReader::new(tcp.try_clone().unwrap()),
            writer: tcp,
            n: 0,
        };
        assert!(c.response().starts_with(b"* OK"));
        c
    }

    fn login(port: u16) -> Self {
        let mut c = Self::connect(port);
        c.ok(&format!("LOGIN {} {}", ALICE[0], ALICE[1]));
        c.ok("SELECT INBOX");
        c
    }

    /// One response: a line, and for each literal it announces the
    /// literal's bytes and the rest of the line.
    fn response(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(!line.is_empty(), "connection closed after {out:?}");
            out.extend_from_slice(&line);
            let Some(size) = literal_size(&line) else {
                return out;
            };
            let mut data = vec![0; size];
            self.reader.read_exact(&mut data).unwrap();
            out.extend_from_slice(&data);
        }
    }

    /// Sends `cmd` with a fresh tag; every response up to the tagged one.
    fn run(&mut self, cmd: &str) -> (Vec<Vec<u8>>, String) {
        self.n += 1;
        let tag = format!("b{}", self.n);
        self.writer
            .write_all(format!("{tag} {cmd}\r\n").as_bytes())
            .unwrap();
        let mut untagged = Vec::new();
        loop {
            let r = self.response();
            if r.starts_with(format!("{tag} ").as_bytes()) {
                let text = String::from_utf8_lossy(&r[tag.len() + 1..]);
                return (untagged, text.trim_end().to_string());
            }
            untagged.push(r);
        }
    }

    /// `cmd`, which must end OK; its untagged responses.
    fn ok(&mut self, cmd: &str) -> Vec<Vec<u8>> {
        let (untagged, status) = self.run(cmd);
        assert!(
            status.starts_with("OK"),
            "{cmd}: {status} after {untagged:?}"
        );
        untagged
    }

    /// `cmd`, which must end OK with exactly one untagged response.
    fn one(&mut self, cmd: &str) -> Vec<u8> {
        let mut untagged = self.ok(cmd);
        assert_eq!(untagged.len(), 1, "{cmd}: {untagged:?}");
        untagged.remove(0)
    }
}

/// `n` of a line ending in `{n}\r\n` or `~{n}\r\n`.
fn literal_size(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = line.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

/// `head` followed by `data` as the response carries it.
fn with(head: &str, data: &[u8]) -> Vec<u8> {
    let mut v = head.as_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Every byte value, four times: an attachment with NULs.
fn attachment() -> Vec<u8> {
    (0..4).flat_map(|_| 0..=255u8).collect()
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    lines.join("\r\n")
}

/// A message with: 1 text in base64, 2 text in quoted-printable,
/// 3 a binary attachment in base64, 4 an x-uuencode part, 5 a
/// multipart/alternative with 5.1 in 8bit.
fn mixed() -> Vec<u8> {
    format!(
        "From: bob@example.net\r\nTo: alice@example.org\r\nSubject: parts\r\n\
MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n\
--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
--XX\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
caf=E9 soft=\r\nbreak =3D end  \r\n\
--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n\
--XX\r\nContent-Type: application/x-old\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n\
--XX\r\nContent-Type: multipart/alternative; boundary=\"YY\"\r\n\r\n\
--YY\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGr\u{fc}\u{df}e\r\n--YY--\r\n\
--XX--\r\n",
        b64("héllo wörld\r\n".as_bytes()),
        b64(&attachment()),
    )
    .into_bytes()
}

fn server_with(messages: &[Vec<u8>]) -> ImapServer {
    let s = ImapServer::start();
    let id = s.account(ALICE[0], ALICE[1]);
    for m in messages {
        s.append(id, "INBOX", m);
    }
    s
}

/// RFC 3516 §4.1.
#[test]
fn binary_is_announced() {
    let s = server_with(&[]);
    let mut c = Client::connect(s.port);
    let caps = c.one("CAPABILITY");
    let caps = String::from_utf8(caps).unwrap();
    assert!(caps.split_whitespace().any(|w| w == "BINARY"), "{caps}");
}

/// RFC 3516 §4.2, §4.3: base64 and quoted-printable come back decoded,
/// byte for byte; data with NULs as a literal8, other data as a literal;
/// identity encodings (8bit) pass through.
#[test]
fn parts_come_back_decoded() {
    let s = server_with(&[mixed()]);
    let mut c = Client::login(s.port);
    let r = c.one("FETCH 1 (BINARY.PEEK[1] BINARY.PEEK[2] BINARY.PEEK[3] BINARY.PEEK[5.1])");
    let text = "héllo wörld\r\n".as_bytes();
    assert!(
        contains(
            &r,
            &with(&format!("BINARY[1] {{{}}}\r\n", text.len()), text)
        ),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert!(contains(
        &r,
        &with("BINARY[2] {20}\r\n", b"caf\xe9 softbreak = end")
    ));
    let att = attachment();
    assert!(contains(&r, &with("BINARY[3] ~{1024}\r\n", &att)));
    assert!(contains(
        &r,
        &with("BINARY[5.1] {7}\r\n", "Grüße".as_bytes())
    ));
    assert!(r.starts_with(b"* 1 FETCH ("));
    assert!(r.ends_with(b")\r\n"));
}

/// RFC 3516 §4.2: `<origin.length>` counts decoded bytes and the answer
/// names its origin; BINARY.SIZE is the decoded size.
#[test]
fn partial_and_size() {
    let s = server_with(&[mixed()]);
    let mut c = Client::login(s.port);
    let att = attachment();
    let r = c.one("FETCH 1 (BINARY.PEEK[3]<0.10>)");
    assert_eq!(
        r,
        with("* 1 FETCH (BINARY[3]<0> ~{10}\r\n", &att[..10])
            .iter()
            .chain(b")\r\n")
            .copied()
            .collect::<Vec<u8>>()
    );
    let r = c.one("FETCH 1 (BINARY.PEEK[3]<1000.100>)");
    assert!(contains(
        &r,
        &with("BINARY[3]<1000> {24}\r\n", &att[1000..])
    ));
    let r = c.one("FETCH 1 (BINARY.PEEK[3]<5000.10>)");
    assert!(contains(&r, b"BINARY[3]<5000> {0}\r\n)"), "{r:?}");
    let r = c.one("FETCH 1 (BINARY.SIZE[1] BINARY.SIZE[2] BINARY.SIZE[3] BINARY.SIZE[5.1])");
    let r = String::from_utf8(r).unwrap();
    for want in [
        "BINARY.SIZE[1] 15",
        "BINARY.SIZE[2] 20",
        "BINARY.SIZE[3] 1024",
        "BINARY.SIZE[5.1] 7",
    ] {
        assert!(r.contains(want), "{want} not in {r}");
    }
}

/// RFC 9051 §6.4.5: BINARY sets \Seen, BINARY.PEEK does not; UID FETCH
/// answers with the UID.
#[test]
fn peek_leaves_seen_unset() {
    let s = server_with(&[mixed()]);
    let mut c = Client::login(s.port);
    let r = c.one("FETCH 1 (BINARY.PEEK[1])");
    assert!(!contains(&r, b"\\Seen"));
    let r = c.one("FETCH 1 (FLAGS)");
    assert!(!contains(&r, b"\\Seen"), "{}", String::from_utf8_lossy(&r));
    let r = c.one("UID FETCH 1 (BINARY[2])");
    let r = String::from_utf8_lossy(&r).to_string();
    assert!(r.contains("UID 1"), "{r}");
    assert!(r.contains("FLAGS (\\Seen"), "{r}");
    assert!(r.contains("BINARY[2] {20}"), "{r}");
    let r = c.one("FETCH 1 (FLAGS)");
    assert!(contains(&r, b"\\Seen"));
}

/// RFC 3516 §4.2: an unknown encoding is `NO [UNKNOWN-CTE]`; a
/// multipart is not a leaf (BAD); a missing part is NIL, size 0.
#[test]
fn unknown_cte_multipart_and_missing_parts() {
    let s = server_with(&[mixed()]);
    let mut c = Client::login(s.port);
    let (_, status) = c.run("FETCH 1 (BINARY.PEEK[4])");
    assert!(status.starts_with("NO [UNKNOWN-CTE]"), "{status}");
    let (_, status) = c.run("FETCH 1 (BINARY.SIZE[4])");
    assert!(status.starts_with("NO [UNKNOWN-CTE]"), "{status}");
    let (_, status) = c.run("FETCH 1 (BINARY.PEEK[5])");
    assert!(status.starts_with("BAD"), "{status}");
    let r = c.one("FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9] BINARY.PEEK[3.2])");
    let r = String::from_utf8(r).unwrap();
    assert!(r.contains("BINARY[9] NIL"), "{r}");
    assert!(r.contains("BINARY.SIZE[9] 0"), "{r}");
    assert!(r.contains("BINARY[3.2] NIL"), "{r}");
    // BODY[] is untouched by all this.
    c.ok("FETCH 1 (BODY.PEEK[4])");
}

/// A message holding NUL bytes (binary content): BODY cannot carry them
/// in a literal and sends 0x80 instead (as Dovecot does), BINARY sends
/// the exact bytes as a literal8; neither takes the session down.
#[test]
fn nul_bytes_in_body_and_binary() {
    let msg =
        b"From: bob@example.net\r\nSubject: nul\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: binary\r\n\r\n\0-\xe4\r\n"
            .to_vec();
    let s = server_with(&[msg]);
    let mut c = Client::login(s.port);
    let r = c.one("FETCH 1 (BODY.PEEK[1] BINARY.PEEK[1] BINARY.SIZE[1])");
    assert!(contains(&r, b"BODY[1] {5}\r\n\x80-\xe4\r\n"), "{r:?}");
    assert!(contains(&r, b"BINARY[1] ~{5}\r\n\0-\xe4\r\n"), "{r:?}");
    assert!(contains(&r, b"BINARY.SIZE[1] 5"), "{r:?}");
    let r = c.one("FETCH 1 (RFC822)");
    assert!(!r.contains(&0), "{r:?}");
    c.ok("NOOP");
}

/// Hostile sender: NUL bytes in header fields. ENVELOPE and
/// BODYSTRUCTURE carry that text in literals, which may not hold a NUL
/// (it used to take the session down); it goes out as 0x80.
#[test]
fn nul_bytes_in_header_fields() {
    let msg = b"From: \"B\0b\" <bob@example.net>\r\nTo: a\0l@example.org\r\n\
Subject: a\0b\r\nMessage-ID: <x\0y@example.net>\r\n\
Content-Type: text/plain; name=\"n\0.txt\"\r\n\r\nbody\r\n"
        .to_vec();
    let s = server_with(&[msg]);
    let mut c = Client::login(s.port);
    let r = c.one("FETCH 1 (ENVELOPE BODYSTRUCTURE BODY.PEEK[HEADER])");
    assert!(!r.contains(&0), "{r:?}");
    assert!(contains(&r, b"a\x80b"), "{}", String::from_utf8_lossy(&r));
    c.ok("NOOP");
}

/// `BINARY[]` of a single-part base64 message: the header says binary,
/// the body is decoded.
#[test]
fn whole_message_of_a_single_part() {
    let msg =
        b"From: bob@example.net\r\nSubject: one\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAAEC\r\n"
            .to_vec();
    let s = server_with(&[msg]);
    let mut c = Client::login(s.port);
    let r = c.one("FETCH 1 (BINARY.PEEK[] BINARY.SIZE[])");
    let head =
        "From: bob@example.net\r\nSubject: one\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: binary\r\n\r\n";
    let mut want = head.as_bytes().to_vec();
    want.extend_from_slice(&[0, 1, 2]);
    assert!(
        contains(
            &r,
            &with(&format!("BINARY[] ~{{{}}}\r\n", want.len()), &want)
        ),
        "{}",
        String::from_utf8_lossy(&r)
    );
    assert!(contains(
        &r,
        format!("BINARY.SIZE[] {}", want.len()).as_bytes()
    ));
}

/// Hostile: 20 MB of characters outside the base64 alphabet (skipped,
/// RFC 2045 §6.8), broken quoted-printable, absurd section numbers,
/// malformed items, wrong state: clear answers and a live session.
#[test]
fn hostile_input_gets_clear_answers() {
    let garbage = "!*%$ #@^&".repeat(20 * 1024 * 1024 / 9);
    let big = format!(
        "From: x@example.net\r\nSubject: big\r\nContent-Transfer-Encoding: base64\r\n\r\n{garbage}QUJD\r\n"
    );
    let qp = b"From: x@example.net\r\nSubject: qp\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
a= x=Zc=4\r\nd=\r\n=\r\n="
        .to_vec();
    let s = server_with(&[big.into_bytes(), qp]);
    let mut c = Client::connect(s.port);
    let (_, status) = c.run("FETCH 1 (BINARY[1])");
    assert!(status.starts_with("BAD"), "before login: {status}");
    c.ok(&format!("LOGIN {} {}", ALICE[0], ALICE[1]));
    let (_, status) = c.run("FETCH 1 (BINARY[1])");
    assert!(status.starts_with("BAD"), "not selected: {status}");
    c.ok("SELECT INBOX");
    let r = c.one("FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])");
    let r = String::from_utf8(r).unwrap();
    assert!(r.contains("BINARY[1] {3}\r\nABC"), "{r}");
    assert!(r.contains("BINARY.SIZE[1] 3"), "{r}");
    let r = c.one("FETCH 1 (BINARY.PEEK[1]<1.1>)");
    assert!(contains(&r, b"BINARY[1]<1> {1}\r\nB)"));
    // Invalid escapes and soft breaks are kept or joined, never fatal.
    let r = c.one("FETCH 2 (BINARY.PEEK[1])");
    assert!(
        contains(&r, b"BINARY[1] {12}\r\na= x=Zc=4\r\nd"),
        "{}",
        String::from_utf8_lossy(&r)
    );
    let r = c.one("FETCH 2 (BINARY.PEEK[4294967295] BINARY.PEEK[1.1.1.1.1.1.1.1.1.1.1.1])");
    let r = String::from_utf8_lossy(&r).to_string();
    assert!(r.contains("BINARY[4294967295] NIL"), "{r}");
    assert!(r.contains("BINARY[1.1.1.1.1.1.1.1.1.1.1.1] {12}"), "{r}");
    for bad in [
        "FETCH 2 (BINARY[4294967296])",
        "FETCH 2 (BINARY[0])",
        "FETCH 2 (BINARY[1.])",
        "FETCH 2 (BINARY[HEADER])",
        "FETCH 2 (BINARY[1]<5>)",
        "FETCH 2 (BINARY.SIZE[1]<0.5>)",
        "FETCH 2 (BINARY[1",
    ] {
        let (_, status) = c.run(bad);
        assert!(status.starts_with("BAD"), "{bad}: {status}");
    }
    let deep = vec!["1"; 5000].join(".");
    let (_, status) = c.run(&format!("FETCH 2 (BINARY.PEEK[{deep}])"));
    assert!(
        status.starts_with("OK") || status.starts_with("BAD"),
        "{status}"
    );
    c.ok("NOOP");
}
