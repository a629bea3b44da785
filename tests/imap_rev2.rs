//! UTF8=ACCEPT (RFC 6855) and IMAP4rev2 (RFC 9051) switched on by ENABLE,
//! against the real server binary over raw sockets (so that the exact
//! bytes, quoting and 8-bit content of each line can be checked), with
//! JMAP to see the stored names. A client that enables nothing keeps the
//! IMAP4rev1 answers: modified UTF-7 names, `\Recent`, `* SEARCH`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::server::Server;

const USER: &str = "rev2@example.org";
const PASSWORD: &str = "rev2-password-1";

/// A raw IMAP client: one command at a time, literals in answers read.
struct Raw {
    out: TcpStream,
    input: BufReader<TcpStream>,
    n: u32,
}

/// One command's answer: its untagged lines and its tagged line.
struct Answer {
    untagged: Vec<Vec<u8>>,
    tagged: String,
}

impl Answer {
    fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }

    fn status(&self) -> &str {
        self.tagged.split(' ').nth(1).unwrap_or("")
    }

    /// The untagged lines as text (8-bit shown as UTF-8).
    fn text(&self) -> String {
        self.untagged
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect::<Vec<_>>()
            .join("")
    }

    fn has_8bit(&self) -> bool {
        self.untagged.iter().flatten().any(|&b| b >= 0x80)
    }
}

impl Raw {
    fn connect(server: &Server) -> Self {
        let out = TcpStream::connect(("127.0.0.1", server.imap_port)).unwrap();
        out.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut raw = Self {
            input: BufReader::new(out.try_clone().unwrap()),
            out,
            n: 0,
        };
        let greeting = raw.line();
        assert!(greeting.starts_with(b"* OK"), "{greeting:?}");
        raw
    }

    fn logged_in(server: &Server) -> Self {
        let mut raw = Self::connect(server);
        let a = raw.cmd(format!("LOGIN {USER} {PASSWORD}").as_bytes());
        assert!(a.ok(), "{}", a.tagged);
        raw
    }

    /// One line, with any literal it announces and the line after it.
    fn line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        loop {
            let start = line.len();
            self.input.read_until(b'\n', &mut line).unwrap();
            assert!(line.len() > start, "connection closed");
            let Some(size) = literal_size(&line) else {
                return line;
            };
            let mut data = vec![0; size];
            self.input.read_exact(&mut data).unwrap();
            line.extend_from_slice(&data);
        }
    }

    /// Sends `args` (bytes after the tag, no line end) and reads the answer.
    fn cmd(&mut self, args: &[u8]) -> Answer {
        self.n += 1;
        let tag = format!("t{}", self.n);
        let mut wire = format!("{tag} ").into_bytes();
        wire.extend_from_slice(args);
        wire.extend_from_slice(b"\r\n");
        self.out.write_all(&wire).unwrap();
        self.answer(&tag)
    }

    fn answer(&mut self, tag: &str) -> Answer {
        let mut untagged = Vec::new();
        loop {
            let line = self.line();
            if line.starts_with(format!("{tag} ").as_bytes()) {
                let tagged = String::from_utf8_lossy(&line).trim_end().to_string();
                return Answer { untagged, tagged };
            }
            untagged.push(line);
        }
    }
}

/// The size of the literal a line ends by announcing (`{n}` CRLF).
fn literal_size(line: &[u8]) -> Option<usize> {
    let body = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = body.iter().rposition(|&b| b == b'{')?;
    std::str::from_utf8(&body[open + 1..]).ok()?.parse().ok()
}

fn server() -> Server {
    let server = Server::start();
    server.account_with_password(USER, PASSWORD);
    server
}

fn jmap_names(server: &Server) -> Vec<String> {
    server.jmap(USER, PASSWORD).mailbox_names()
}

fn message(subject: &str) -> String {
    format!("From: a@example.net\r\nTo: {USER}\r\nSubject: {subject}\r\n\r\nbody\r\n")
}

#[test]
fn capability_advertises_utf8_accept_and_enabled_lists_only_what_was_enabled() {
    let server = server();
    let mut c = Raw::connect(&server);
    let caps = c.cmd(b"CAPABILITY").text();
    assert!(caps.contains(" UTF8=ACCEPT"), "{caps}");
    assert!(!caps.contains("UTF8=ONLY"), "{caps}");
    // ENABLE before login: refused, and the session goes on.
    let before = c.cmd(b"ENABLE UTF8=ACCEPT");
    assert_eq!(before.status(), "BAD", "{}", before.tagged);
    assert!(before.untagged.is_empty(), "{}", before.text());
    let a = c.cmd(format!("LOGIN {USER} {PASSWORD}").as_bytes());
    assert!(a.ok());
    let a = c.cmd(b"ENABLE UTF8=ONLY X-UNKNOWN utf8=accept");
    assert!(a.ok(), "{}", a.tagged);
    assert_eq!(a.text(), "* ENABLED UTF8=ACCEPT\r\n");
    // Already on: not listed again.
    let a = c.cmd(b"ENABLE UTF8=ACCEPT");
    assert_eq!(a.text(), "* ENABLED\r\n");
    let a = c.cmd(b"ENABLE IMAP4rev2 CONDSTORE IMAP4rev2");
    assert_eq!(a.text(), "* ENABLED IMAP4rev2 CONDSTORE\r\n");
    let a = c.cmd(b"ENABLE QRESYNC");
    assert_eq!(a.text(), "* ENABLED QRESYNC\r\n");
}

#[test]
fn a_modified_utf7_name_is_utf8_to_a_utf8_client_and_over_jmap() {
    let server = server();
    let mut rev1 = Raw::logged_in(&server);
    assert!(rev1.cmd(b"CREATE Entw&APw-rfe").ok());
    assert!(rev1.cmd(b"SUBSCRIBE Entw&APw-rfe").ok());
    let list = rev1.cmd(b"LIST \"\" *");
    assert!(list.text().contains("Entw&APw-rfe"), "{}", list.text());
    assert!(!list.has_8bit(), "{}", list.text());

    let mut utf8 = Raw::logged_in(&server);
    assert!(utf8.cmd(b"ENABLE UTF8=ACCEPT").ok());
    for (cmd, want) in [
        (
            &b"LIST \"\" *"[..],
            "* LIST (\\HasNoChildren) \"/\" \"Entwürfe\"\r\n",
        ),
        ("LIST \"\" \"Entwü*\"".as_bytes(), "\"Entwürfe\""),
        (b"LSUB \"\" *", "* LSUB () \"/\" \"Entwürfe\"\r\n"),
        (b"LIST (SUBSCRIBED) \"\" *", "\"Entwürfe\""),
        (
            b"LIST \"\" Entw* RETURN (STATUS (MESSAGES))",
            "* STATUS \"Entwürfe\" (MESSAGES 0)",
        ),
        (
            "STATUS \"Entwürfe\" (MESSAGES)".as_bytes(),
            "* STATUS \"Entwürfe\" (MESSAGES 0)",
        ),
    ] {
        let a = utf8.cmd(cmd);
        assert!(a.ok(), "{} {}", String::from_utf8_lossy(cmd), a.tagged);
        assert!(
            a.text().contains(want),
            "{}: {}",
            String::from_utf8_lossy(cmd),
            a.text()
        );
        assert!(!a.text().contains("&APw-"), "{}", a.text());
    }
    assert!(utf8.cmd("SELECT \"Entwürfe\"".as_bytes()).ok());
    // The rev1 spelling is a different (non-existent) name for it now.
    assert_eq!(utf8.cmd(b"STATUS Entw&APw-rfe (MESSAGES)").status(), "NO");
    assert!(jmap_names(&server).contains(&"Entwürfe".to_string()));
}

#[test]
fn utf8_quoted_names_need_enable_and_are_stored_as_sent() {
    let server = server();
    let mut c = Raw::logged_in(&server);
    let before = c.cmd("CREATE \"Ordner ü\"".as_bytes());
    assert_eq!(before.status(), "BAD", "{}", before.tagged);
    assert!(
        before.tagged.contains("ENABLE UTF8=ACCEPT"),
        "{}",
        before.tagged
    );
    assert!(!jmap_names(&server).iter().any(|n| n.starts_with("Ordner")));

    assert!(c.cmd(b"ENABLE UTF8=ACCEPT").ok());
    for name in ["Ordner ü", "Tom & Jerry", "Entw&APw-rfe", "日本語/子"] {
        let a = c.cmd(format!("CREATE \"{name}\"").as_bytes());
        assert!(a.ok(), "{name}: {}", a.tagged);
    }
    let a = c.cmd("RENAME \"Ordner ü\" \"Ördner\"".as_bytes());
    assert!(a.ok(), "{}", a.tagged);
    // JMAP names are the last part of the hierarchy ("子" under "日本語").
    let names = jmap_names(&server);
    for name in ["Ördner", "Tom & Jerry", "Entw&APw-rfe", "日本語", "子"] {
        assert!(names.contains(&name.to_string()), "{name} not in {names:?}");
    }

    // A client that did not enable UTF-8 sees all of them, 7-bit only.
    let mut rev1 = Raw::logged_in(&server);
    let list = rev1.cmd(b"LIST \"\" *");
    assert!(!list.has_8bit(), "{}", list.text());
    for spelled in [
        "&ANY-rdner",
        "Tom &- Jerry",
        "Entw&-APw-rfe",
        "&ZeVnLIqe-/&W1A-",
    ] {
        assert!(list.text().contains(spelled), "{spelled}: {}", list.text());
    }
    let status = rev1.cmd(b"STATUS &ANY-rdner (MESSAGES)");
    assert!(status.ok() && !status.has_8bit(), "{}", status.text());
}

#[test]
fn rev2_has_no_recent_and_answers_search_with_esearch() {
    let server = server();
    for subject in ["one", "two"] {
        server.lmtp_send(USER, message(subject).as_bytes());
    }
    // A rev1 client (EXAMINE claims nothing) sees today's answers.
    let mut rev1 = Raw::logged_in(&server);
    let select = rev1.cmd(b"EXAMINE INBOX").text();
    assert!(select.contains("* 2 RECENT"), "{select}");
    assert!(select.contains("[UNSEEN 1]"), "{select}");
    assert!(!select.contains("* LIST"), "{select}");
    assert!(rev1.cmd(b"FETCH 1 FLAGS").text().contains("\\Recent"));
    assert_eq!(rev1.cmd(b"SEARCH ALL").text(), "* SEARCH 1 2\r\n");

    let mut rev2 = Raw::logged_in(&server);
    assert_eq!(
        rev2.cmd(b"ENABLE IMAP4rev2").text(),
        "* ENABLED IMAP4rev2\r\n"
    );
    let select = rev2.cmd(b"SELECT INBOX");
    assert!(select.ok(), "{}", select.tagged);
    let text = select.text();
    assert!(!text.contains("RECENT"), "{text}");
    assert!(!text.contains("UNSEEN"), "{text}");
    assert!(text.contains("* 2 EXISTS"), "{text}");
    assert!(
        text.contains("* LIST (\\HasNoChildren) \"/\" INBOX\r\n"),
        "{text}"
    );
    assert!(!rev2.cmd(b"FETCH 1:* FLAGS").text().contains("Recent"));
    let search = rev2.cmd(b"SEARCH ALL");
    assert!(search.ok());
    let tag = search.tagged.split(' ').next().unwrap().to_string();
    assert_eq!(
        search.text(),
        format!("* ESEARCH (TAG \"{tag}\") ALL 1:2\r\n")
    );
    let search = rev2.cmd(b"UID SEARCH SUBJECT two");
    assert!(
        search.text().starts_with("* ESEARCH (TAG \""),
        "{}",
        search.text()
    );
    assert!(
        search.text().ends_with(") UID ALL 2\r\n"),
        "{}",
        search.text()
    );
    let none = rev2.cmd(b"SEARCH SUBJECT nothing-matches");
    assert!(none.text().ends_with(")\r\n") && !none.text().contains("ALL"));
    // RETURN still works as before.
    let count = rev2.cmd(b"SEARCH RETURN (COUNT) ALL");
    assert!(count.text().ends_with(" COUNT 2\r\n"), "{}", count.text());
    let status = rev2.cmd(b"STATUS INBOX (RECENT)");
    assert_eq!(status.status(), "BAD", "{}", status.tagged);
    assert!(rev2.cmd(b"STATUS INBOX (MESSAGES UNSEEN)").ok());

    // New mail: EXISTS, never RECENT nor \Recent.
    server.lmtp_send(USER, message("three").as_bytes());
    let noop = rev2.cmd(b"NOOP");
    assert!(noop.text().contains("* 3 EXISTS"), "{}", noop.text());
    assert!(!noop.text().contains("RECENT"), "{}", noop.text());
    assert!(!rev2.cmd(b"FETCH 3 (FLAGS)").text().contains("Recent"));
    // Still rev1 for the other client.
    let noop = rev1.cmd(b"NOOP").text();
    assert!(noop.contains(" RECENT\r\n"), "{noop}");
}

#[test]
fn enabling_rev2_while_selected_drops_recent_from_the_selection() {
    let server = server();
    server.lmtp_send(USER, message("one").as_bytes());
    let mut c = Raw::logged_in(&server);
    assert!(c.cmd(b"SELECT INBOX").text().contains("* 1 RECENT"));
    assert!(c.cmd(b"FETCH 1 FLAGS").text().contains("\\Recent"));
    assert!(c.cmd(b"ENABLE IMAP4rev2").ok());
    assert!(!c.cmd(b"FETCH 1 FLAGS").text().contains("Recent"));
    // UTF-8 names come with IMAP4rev2 (RFC 9051 section 5.1).
    assert!(c.cmd("CREATE \"Entwürfe\"".as_bytes()).ok());
    let list = c.cmd(b"LIST \"\" *").text();
    assert!(list.contains("\"Entwürfe\""), "{list}");
}

#[test]
fn append_utf8_form_after_enable() {
    let server = server();
    let mut c = Raw::logged_in(&server);
    let msg = message("Grüße").into_bytes();
    let mut wire = format!("APPEND INBOX UTF8 (~{{{}+}}\r\n", msg.len()).into_bytes();
    wire.extend_from_slice(&msg);
    wire.extend_from_slice(b")");
    let before = c.cmd(&wire);
    assert_eq!(before.status(), "BAD", "{}", before.tagged);
    assert!(
        before.tagged.contains("ENABLE UTF8=ACCEPT"),
        "{}",
        before.tagged
    );

    assert!(c.cmd(b"ENABLE UTF8=ACCEPT").ok());
    let a = c.cmd(&wire);
    assert!(a.ok(), "{}", a.tagged);
    assert!(a.tagged.contains("APPENDUID"), "{}", a.tagged);
    // The synchronising form: the server asks for the data with "+".
    assert!(c.cmd("CREATE \"Entwürfe\"".as_bytes()).ok());
    c.n += 1;
    let tag = format!("t{}", c.n);
    let head = format!("{tag} APPEND \"Entwürfe\" UTF8 (~{{{}}}\r\n", msg.len());
    c.out.write_all(head.as_bytes()).unwrap();
    assert!(c.line().starts_with(b"+"));
    c.out.write_all(&msg).unwrap();
    c.out.write_all(b")\r\n").unwrap();
    let a = c.answer(&tag);
    assert!(a.ok(), "{}", a.tagged);
    assert!(c.cmd(b"SELECT INBOX").ok());
    let fetched = c.cmd(b"FETCH 1 BODY.PEEK[]");
    assert!(
        fetched.untagged[0].windows(msg.len()).any(|w| w == msg),
        "{}",
        fetched.text()
    );
    // Hostile: no closing parenthesis, a size that does not fit.
    let mut broken = format!("APPEND INBOX UTF8 (~{{{}+}}\r\n", msg.len()).into_bytes();
    broken.extend_from_slice(&msg);
    assert_eq!(c.cmd(&broken).status(), "BAD");
    let mut short = b"APPEND INBOX UTF8 (~{3+}\r\n".to_vec();
    short.extend_from_slice(b"abcdef)");
    assert_eq!(c.cmd(&short).status(), "BAD");
    assert!(c.cmd(b"NOOP").ok());
}

#[test]
fn hostile_names_and_charsets_after_enable() {
    let server = server();
    let mut c = Raw::logged_in(&server);
    assert!(c.cmd(b"ENABLE UTF8=ACCEPT").ok());
    let before = jmap_names(&server);
    for bad in [
        &b"CREATE \"a\xc3\x28\""[..],   // invalid sequence
        b"CREATE \"\xc0\xaf\"",         // overlong '/'
        b"CREATE \"\xe0\x80\xaf\"",     // overlong, three bytes
        b"CREATE \"a\xed\xa0\x80\"",    // a UTF-16 surrogate
        b"CREATE \"\xf4\x90\x80\x80\"", // above U+10FFFF
        b"CREATE \"\xff\"",
    ] {
        let a = c.cmd(bad);
        assert_eq!(
            a.status(),
            "BAD",
            "{:?}: {}",
            String::from_utf8_lossy(bad),
            a.tagged
        );
    }
    // NUL and CR cannot be quoted; in a literal they reach the naming
    // rules, which refuse control characters.
    for bad in [
        &b"CREATE {3+}\r\na\x00b"[..],
        b"CREATE {3+}\r\na\rb",
        b"CREATE {4+}\r\n\xc3\xbc\x00b",
    ] {
        let a = c.cmd(bad);
        assert!(
            matches!(a.status(), "NO" | "BAD"),
            "{:?}: {}",
            bad,
            a.tagged
        );
    }
    // Invalid UTF-8 in a literal: refused with its reason.
    let a = c.cmd(b"CREATE {2+}\r\n\xc0\xaf");
    assert_eq!(a.status(), "NO", "{}", a.tagged);
    assert_eq!(jmap_names(&server), before);

    // RFC 6855 section 3: no SEARCH CHARSET after ENABLE UTF8=ACCEPT.
    assert!(c.cmd(b"SELECT INBOX").ok());
    assert_eq!(c.cmd(b"SEARCH CHARSET UTF-8 ALL").status(), "BAD");
    assert_eq!(
        c.cmd(b"SEARCH RETURN (COUNT) CHARSET UTF-8 ALL").status(),
        "BAD"
    );
    assert_eq!(c.cmd(b"SORT (DATE) US-ASCII ALL").status(), "BAD");
    assert!(c.cmd(b"SORT (DATE) UTF-8 ALL").ok());
    // SORT RETURN (ESORT) and THREAD require a charset: UTF-8 only.
    assert!(c.cmd(b"SORT RETURN (COUNT) (DATE) UTF-8 ALL").ok());
    assert_eq!(
        c.cmd(b"SORT RETURN (COUNT) (DATE) US-ASCII ALL").status(),
        "BAD"
    );
    assert!(c.cmd(b"THREAD REFERENCES UTF-8 ALL").ok());
    assert_eq!(c.cmd(b"THREAD REFERENCES US-ASCII ALL").status(), "BAD");
    assert!(c.cmd("SEARCH SUBJECT \"Grüße\"".as_bytes()).ok());
    assert!(c.cmd(b"NOOP").ok());
}
