//! A corpus of test messages, each kept as its three parts so that a test
//! knows, without sealmail's own splitter, what must stay in clear and what
//! the decrypted inner entity must be.

use base64::Engine as _;

/// A message as its parts.
#[derive(Debug, Clone)]
pub struct TestMessage {
    pub name: &'static str,
    /// Clear header fields, each with its line ending.
    pub outer: String,
    /// The root `Content-*` fields, each with its line ending.
    pub content: String,
    /// Everything after the empty line (bytes: may be 8-bit).
    pub body: Vec<u8>,
    pub eol: &'static str,
    /// False for a message that has no empty line (headers only).
    pub has_separator: bool,
}

impl TestMessage {
    pub fn raw(&self) -> Vec<u8> {
        let mut raw = format!("{}{}", self.outer, self.content).into_bytes();
        if self.has_separator {
            raw.extend_from_slice(self.eol.as_bytes());
        }
        raw.extend_from_slice(&self.body);
        raw
    }

    /// What decrypting must give back: the content fields (an explicit
    /// text/plain us-ascii type when there were none), the empty line, the body.
    pub fn inner(&self) -> Vec<u8> {
        let mut inner = if self.content.to_ascii_lowercase().contains("content-type:") {
            self.content.clone().into_bytes()
        } else {
            format!(
                "Content-Type: text/plain; charset=us-ascii{}{}",
                self.eol, self.content
            )
            .into_bytes()
        };
        inner.extend_from_slice(self.eol.as_bytes());
        inner.extend_from_slice(&self.body);
        inner
    }
}

fn outer(eol: &str, subject: &str) -> String {
    [
        "Return-Path: <sender@example.net>".to_string(),
        "Received: from mx.example.net by mail.example.org;".to_string(),
        "\tThu, 26 Nov 2026 10:00:00 +0000".to_string(),
        "From: Sender <sender@example.net>".to_string(),
        "To: Alice <alice@example.org>".to_string(),
        format!("Subject: {subject}"),
        "Date: Thu, 26 Nov 2026 10:00:00 +0000".to_string(),
        "Message-ID: <corpus-1@example.net>".to_string(),
        "MIME-Version: 1.0".to_string(),
    ]
    .iter()
    .map(|l| format!("{l}{eol}"))
    .collect()
}

fn msg(
    name: &'static str,
    eol: &'static str,
    subject: &str,
    content: &[&str],
    body: Vec<u8>,
) -> TestMessage {
    TestMessage {
        name,
        outer: outer(eol, subject),
        content: content.iter().map(|l| format!("{l}{eol}")).collect(),
        body,
        eol,
        has_separator: true,
    }
}

fn lines(eol: &str, lines: &[&str]) -> Vec<u8> {
    lines
        .iter()
        .map(|l| format!("{l}{eol}"))
        .collect::<String>()
        .into_bytes()
}

pub fn plain_text(eol: &'static str) -> TestMessage {
    msg(
        if eol == "\r\n" {
            "plain-crlf"
        } else {
            "plain-lf"
        },
        eol,
        "Quarterly figures",
        &[
            "Content-Type: text/plain; charset=us-ascii",
            "Content-Transfer-Encoding: 7bit",
        ],
        lines(
            eol,
            &[
                "Hello Alice,",
                "",
                "the figures are attached.",
                ".leading dot",
                "-- ",
                "Sender",
            ],
        ),
    )
}

pub fn utf8_8bit() -> TestMessage {
    msg(
        "utf8-8bit",
        "\r\n",
        "=?UTF-8?B?R3LDvMOfZSBhdXMgTcO8bmNoZW4g8J+Uko==?=",
        &[
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: 8bit",
        ],
        lines("\r\n", &["Grüße aus München 🔒", "Ελληνικά, 日本語, עברית"]),
    )
}

pub fn multipart_alternative() -> TestMessage {
    msg(
        "alternative",
        "\r\n",
        "HTML newsletter",
        &["Content-Type: multipart/alternative; boundary=\"alt-b\""],
        lines(
            "\r\n",
            &[
                "--alt-b",
                "Content-Type: text/plain; charset=utf-8",
                "",
                "Plain version",
                "--alt-b",
                "Content-Type: text/html; charset=utf-8",
                "",
                "<html><body><p>HTML <b>version</b></p></body></html>",
                "--alt-b--",
            ],
        ),
    )
}

pub fn multipart_binary() -> TestMessage {
    let blob: Vec<u8> = (0..6000u32)
        .map(|i| (i * 7 % 256).to_le_bytes()[0])
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&blob);
    let mut body_lines = vec![
        "This is a multi-part message in MIME format.".to_string(),
        "--mix-b".into(),
        "Content-Type: text/plain; charset=us-ascii".into(),
        "".into(),
        "See attachment.".into(),
        "--mix-b".into(),
        "Content-Type: application/octet-stream; name=\"data.bin\"".into(),
        "Content-Disposition: attachment; filename=\"data.bin\"".into(),
        "Content-Transfer-Encoding: base64".into(),
        "".into(),
    ];
    body_lines.extend(
        b64.as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned()),
    );
    body_lines.push("--mix-b--".into());
    let refs: Vec<&str> = body_lines.iter().map(String::as_str).collect();
    msg(
        "mixed-binary",
        "\r\n",
        "Report with attachment",
        &["Content-Type: multipart/mixed;", " boundary=\"mix-b\""],
        lines("\r\n", &refs),
    )
}

pub fn headers_only() -> TestMessage {
    TestMessage {
        name: "headers-only",
        outer: outer("\r\n", "Nothing but headers"),
        content: String::new(),
        body: Vec::new(),
        eol: "\r\n",
        has_separator: false,
    }
}

pub fn no_mime_headers() -> TestMessage {
    TestMessage {
        name: "no-mime",
        outer: "From: a@example.net\nTo: alice@example.org\nSubject: old style\n".into(),
        content: String::new(),
        body: b"just text\n".to_vec(),
        eol: "\n",
        has_separator: true,
    }
}

pub fn folded_headers() -> TestMessage {
    let mut m = msg(
        "folded",
        "\r\n",
        "A very long subject line that an MTA folded",
        &[
            "Content-Type: text/plain;",
            "\tcharset=\"iso-8859-1\";",
            "\tformat=flowed",
            "Content-Transfer-Encoding: quoted-printable",
        ],
        lines("\r\n", &["Gr=FC=DFe"]),
    );
    m.outer.push_str("X-Long: one\r\n two\r\n\tthree\r\n");
    m
}

pub fn ten_mib() -> TestMessage {
    let line = "0123456789abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n";
    let body = line.repeat(10 * 1024 * 1024 / line.len() + 1).into_bytes();
    msg(
        "10mib",
        "\r\n",
        "Big one",
        &["Content-Type: text/plain; charset=us-ascii"],
        body,
    )
}

/// Every message of the corpus but the 10 MiB one.
pub fn corpus() -> Vec<TestMessage> {
    vec![
        plain_text("\r\n"),
        plain_text("\n"),
        utf8_8bit(),
        multipart_alternative(),
        multipart_binary(),
        headers_only(),
        no_mime_headers(),
        folded_headers(),
    ]
}

/// A real OpenPGP encrypted message, ASCII-armoured, with CRLF line ends:
/// `printf x | gpg --batch --trust-model always -e -a -r f@example.org`
/// for a `gpg --quick-gen-key 'f <f@example.org>' rsa1024 encr` key.
pub const PGP_MESSAGE: &str = "-----BEGIN PGP MESSAGE-----\r
\r
hIwDAMg/8ekOM8ABA/9GxcP8ZYxqMv0sCozEJrwyiYqHjQgdao4anbXBgp0bbP+Q\r
xYGPfTCjhWGsxo+qtuZAgrKD/sONKIpB2h4n9HDPgSawTzGPqbqaBQaB9rnmLlBf\r
OO47xWqEnDgF/3UYhBrV/IIbt6p9qaqW1Pmdhur2En0n3pkHdaE9SwuJIs9C8tI8\r
AVGLsN0DDxL9QTM6WbbdByqmODwEoNPCDMRGutSzZyHuk7LUPPyVE8Ty8hyV0rIs\r
xb4TzTWfHF4HcmlL\r
=NlrJ\r
-----END PGP MESSAGE-----\r
";
