//! THREAD=REFERENCES and THREAD=ORDEREDSUBJECT (RFC 5256) against the
//! real server over a socket, with raw command lines sent by Python's
//! `imaplib` so that the exact `* THREAD` lines can be checked.
//! `tests/imaptest.rs` runs imaptest's thread scripts on top.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Instant;

use support::imap::{lines, ImapServer};

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

/// A message with the given Message-ID, References and Subject, sent at
/// `hour`:`minute` (UTC) on 14 Nov 2023; `None` leaves the field out.
fn mail(id: Option<&str>, refs: Option<&str>, subject: Option<&str>, time: &str) -> String {
    let mut m = format!("From: a@example.net\r\nDate: Tue, 14 Nov 2023 {time}:00 +0000\r\n");
    if let Some(id) = id {
        m += &format!("Message-ID: {id}\r\n");
    }
    if let Some(refs) = refs {
        m += &format!("References: {refs}\r\n");
    }
    if let Some(subject) = subject {
        m += &format!("Subject: {subject}\r\n");
    }
    m + "\r\nbody\r\n"
}

/// The crafted mailbox (a first message, UID 1, is appended and expunged
/// so that UID = seq + 1):
///
/// | seq | Message-ID | References         | Subject   | sent  |
/// |-----|------------|--------------------|-----------|-------|
/// | 1   | r          |                    | root      | 10:00 |
/// | 2   | a          | r                  | Re: root  | 11:00 |
/// | 3   | b          | r a                | Re: root  | 12:00 |
/// | 4   | c          | r                  | Re: root  | 10:30 |
/// | 5   | d          | missing            | other     | 09:00 |
/// | 6   | e          | missing            | Re: other | 09:30 |
/// | 7   | f          |                    | Fwd: root | 08:00 |
/// | 8   | (none)     |                    | (none)    | 07:00 |
fn crafted() -> Vec<String> {
    vec![
        mail(Some("<junk@x>"), None, Some("junk"), "01:00"),
        mail(Some("<r@x>"), None, Some("root"), "10:00"),
        mail(Some("<a@x>"), Some("<r@x>"), Some("Re: root"), "11:00"),
        mail(
            Some("<b@x>"),
            Some("<r@x>\r\n <a@x>"),
            Some("Re: root"),
            "12:00",
        ),
        mail(Some("<c@x>"), Some("<r@x>"), Some("Re: root"), "10:30"),
        mail(Some("<d@x>"), Some("<missing@x>"), Some("other"), "09:00"),
        mail(
            Some("<e@x>"),
            Some("<missing@x>"),
            Some("Re: other"),
            "09:30",
        ),
        mail(Some("<f@x>"), None, Some("Fwd: root"), "08:00"),
        mail(None, None, None, "07:00"),
    ]
}

/// Appends `msgs` to INBOX of `user` and runs `body` after selecting it
/// (the first message expunged when `drop_first`).
fn run(
    s: &ImapServer,
    user: [&str; 2],
    msgs: &[String],
    drop_first: bool,
    body: &str,
) -> serde_json::Value {
    let mut args: Vec<&str> = vec![user[0], user[1], if drop_first { "1" } else { "0" }];
    args.extend(msgs.iter().map(String::as_str));
    let script = format!(
        r#"
m = connect(args[0], args[1])
for msg in args[3:]:
    typ, _ = m.append('INBOX', None, None, msg.encode())
    assert typ == 'OK'
m.select('INBOX')
if args[2] == '1':
    m.store('1', '+FLAGS', '\\Deleted')
    m.expunge()
{body}
"#
    );
    s.python(&script, &args)
}

/// The one `* THREAD` line of `key`, and a check that the command ended OK.
fn thread(out: &serde_json::Value, key: &str) -> String {
    let l = lines(out, key);
    assert!(l.last().unwrap().contains(" OK "), "{key}: {l:?}");
    let found: Vec<&String> = l.iter().filter(|x| x.starts_with("* THREAD")).collect();
    assert_eq!(found.len(), 1, "{key}: {l:?}");
    found[0].clone()
}

/// The tagged line of `key`.
fn tagged(out: &serde_json::Value, key: &str) -> String {
    lines(out, key).last().unwrap().clone()
}

/// RFC 5256 §1: both algorithms announced once logged in.
#[test]
fn capabilities_are_announced() {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    s.assert_capabilities(&ALICE, &["THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT"]);
}

/// RFC 5256 §4 and §3 on the crafted mailbox: the exact trees, UID
/// THREAD, search criteria (a thread whose root does not match gets a
/// dummy, which then takes in the `Fwd:` thread of its subject and moves
/// up by its new first child's date) and both charsets.
#[test]
fn both_algorithms_thread_the_crafted_mailbox() {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    let out = run(
        &s,
        ALICE,
        &crafted(),
        true,
        r#"
out['refs'] = raw(m, 'THREAD REFERENCES UTF-8 ALL')
out['ordered'] = raw(m, 'THREAD ORDEREDSUBJECT US-ASCII ALL')
out['uid'] = raw(m, 'UID THREAD REFERENCES UTF-8 ALL')
out['uid_ordered'] = raw(m, 'UID THREAD ORDEREDSUBJECT UTF-8 ALL')
out['subject'] = raw(m, 'THREAD REFERENCES UTF-8 SUBJECT root')
out['not_root'] = raw(m, 'thread references utf-8 NOT 1')
out['nothing'] = raw(m, 'THREAD REFERENCES UTF-8 SUBJECT nothing-like-this')
out['uid_range'] = raw(m, 'UID THREAD REFERENCES UTF-8 UID 5:7')
"#,
    );
    assert_eq!(thread(&out, "refs"), "* THREAD (8)((5)(6))(1 (7)(4)(2 3))");
    assert_eq!(thread(&out, "ordered"), "* THREAD (8)(7 (1)(4)(2)(3))(5 6)");
    assert_eq!(thread(&out, "uid"), "* THREAD (9)((6)(7))(2 (8)(5)(3 4))");
    assert_eq!(
        thread(&out, "uid_ordered"),
        "* THREAD (9)(8 (2)(5)(3)(4))(6 7)"
    );
    assert_eq!(thread(&out, "subject"), "* THREAD (1 (7)(4)(2 3))");
    assert_eq!(
        thread(&out, "not_root"),
        "* THREAD (8)((7)(4)(2 3))((5)(6))"
    );
    assert_eq!(thread(&out, "nothing"), "* THREAD");
    // UIDs 5..7 are seq 4..6: c (parent r not matched), d and e.
    assert_eq!(thread(&out, "uid_range"), "* THREAD ((6)(7))(5)");
}

/// Wrong state, unknown algorithm or charset, bad syntax: a tagged BAD
/// or NO with a clear text, and the session goes on.
#[test]
fn refused_thread_commands_get_a_clear_answer() {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    let out = run(
        &s,
        ALICE,
        &crafted()[..3],
        false,
        r#"
a = imaplib.IMAP4('127.0.0.1', port)
out['anon'] = raw(a, 'THREAD REFERENCES UTF-8 ALL')
n = connect(args[0], args[1])
out['unselected'] = raw(n, 'THREAD REFERENCES UTF-8 ALL')
out['unknown'] = raw(m, 'THREAD REFS UTF-8 ALL')
out['charset'] = raw(m, 'THREAD REFERENCES KOI8-R ALL')
out['no_criteria'] = raw(m, 'THREAD REFERENCES UTF-8')
out['no_charset'] = raw(m, 'THREAD REFERENCES ALL')
out['bad_key'] = raw(m, 'THREAD ORDEREDSUBJECT UTF-8 FROBNICATE')
out['unterminated'] = raw(m, 'THREAD REFERENCES UTF-8 (ALL')
out['after'] = raw(m, 'THREAD REFERENCES UTF-8 ALL')
"#,
    );
    for k in [
        "anon",
        "unselected",
        "unknown",
        "no_criteria",
        "no_charset",
        "bad_key",
        "unterminated",
    ] {
        assert!(tagged(&out, k).contains(" BAD "), "{k}: {out}");
    }
    assert!(tagged(&out, "unselected").contains("SELECT"), "{out}");
    let unknown = tagged(&out, "unknown");
    assert!(
        unknown.contains("unknown threading algorithm") && unknown.contains("REFERENCES"),
        "{unknown}"
    );
    assert!(tagged(&out, "charset").contains(" NO [BADCHARSET"), "{out}");
    // junk (1), then r (2) with its reply a (3).
    assert_eq!(thread(&out, "after"), "* THREAD (1)(2 3)");
}

/// RFC 5256 §4 on hostile references: a loop (each refers to the other),
/// a message that refers to itself, a References field of 10,000 ids and
/// one with the same ids reversed (every link a loop): answered at once,
/// with the loops broken.
#[test]
fn hostile_references_are_threaded_without_hanging() {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    let ids: Vec<String> = (0..10_000).map(|i| format!("<c{i}@x>")).collect();
    let chain = ids.join("\r\n ");
    let reversed = ids.iter().rev().cloned().collect::<Vec<_>>().join("\r\n ");
    let msgs = [
        mail(Some("<loopA@x>"), Some("<loopB@x>"), Some(""), "01:00"),
        mail(Some("<loopB@x>"), Some("<loopA@x>"), None, "02:00"),
        mail(Some("<self@x>"), Some("<self@x> <self@x>"), None, "03:00"),
        mail(Some("<deep@x>"), Some(&chain), None, "04:00"),
        mail(Some("<c5000@x>"), Some(&reversed), None, "05:00"),
    ];
    let started = Instant::now();
    let out = run(
        &s,
        ALICE,
        &msgs,
        false,
        r#"
out['refs'] = raw(m, 'THREAD REFERENCES UTF-8 ALL')
out['ordered'] = raw(m, 'THREAD ORDEREDSUBJECT UTF-8 ALL')
"#,
    );
    // B above A (A's link to B came first); deep under c5000, which the
    // reversed field moved up under the chain's dummy top c0.
    assert_eq!(thread(&out, "refs"), "* THREAD (2 1)(3)(5 4)");
    assert_eq!(thread(&out, "ordered"), "* THREAD (1 (2)(3)(4)(5))");
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
}

/// A mailbox of 5,000 messages, each pair answering the one before it
/// (a staircase 2,500 deep): every message appears once, the nesting is
/// as deep as the staircase, and ORDEREDSUBJECT puts all in one thread.
#[test]
fn five_thousand_messages_thread() {
    let s = ImapServer::start();
    let account = s.account(ALICE[0], ALICE[1]);
    let n = 5_000usize;
    for i in 0..n {
        let parent = (i.saturating_sub(1) / 2) * 2;
        let refs = (i > 0).then(|| format!("<m{parent}@x>"));
        let subject = if i == 0 { "deep" } else { "Re: deep" };
        let time = format!("{:02}:{:02}", i / 3600 % 24, i / 60 % 60);
        let msg = mail(
            Some(&format!("<m{i}@x>")),
            refs.as_deref(),
            Some(subject),
            &time,
        )
        .replace(":00 +0000", &format!(":{:02} +0000", i % 60));
        s.append(account, "INBOX", msg.as_bytes());
    }
    let started = Instant::now();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
out['refs'] = raw(m, 'THREAD REFERENCES UTF-8 ALL')
out['ordered'] = raw(m, 'UID THREAD ORDEREDSUBJECT UTF-8 ALL')
"#,
        &ALICE,
    );
    let refs = thread(&out, "refs");
    assert!(
        refs.starts_with("* THREAD (1 (2)(3 (4)(5 (6)(7 "),
        "{}",
        &refs[..60]
    );
    let mut numbers: Vec<usize> = refs
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=n).collect::<Vec<_>>());
    assert_eq!(refs.matches('(').count(), refs.matches(')').count());
    assert!(refs.contains(&")".repeat(2_000)), "not nested");
    let ordered = thread(&out, "ordered");
    assert!(
        ordered.starts_with("* THREAD (1 (2)(3)(4)"),
        "{}",
        &ordered[..60]
    );
    assert!(ordered.ends_with("(5000))"));
    assert!(started.elapsed().as_secs() < 60, "{:?}", started.elapsed());
}

/// An encrypted message threads by its clear outer header (Message-ID,
/// References, Subject and Date stay in clear).
#[test]
fn encrypted_messages_thread_by_their_clear_header() {
    let s = ImapServer::start();
    let (account, _) = s.encrypted_account("carol@example.org", "carol-pw");
    for m in [
        mail(Some("<p@x>"), None, Some("plan"), "10:00"),
        mail(Some("<q@x>"), Some("<p@x>"), Some("Re: plan"), "09:00"),
        mail(Some("<z@x>"), None, Some("Fwd: plan"), "11:00"),
    ] {
        let m = format!("To: carol@example.org\r\n{m}");
        s.deliver("carol@example.org", m.as_bytes());
    }
    assert!(s
        .stored(account, "INBOX")
        .iter()
        .all(|m| m.windows(10).any(|w| w == b"pkcs7-mime")));
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
out['refs'] = raw(m, 'THREAD REFERENCES UTF-8 ALL')
"#,
        &["carol@example.org", "carol-pw"],
    );
    assert_eq!(thread(&out, "refs"), "* THREAD (1 (2)(3))");
}
