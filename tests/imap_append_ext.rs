//! APPEND's extensions against the real server over a socket:
//! MULTIAPPEND (RFC 3502: all messages or none, APPENDUID with every
//! UID), CATENATE (RFC 4469, URLs into the same account only) and
//! BINARY's literal8 (RFC 3516 §4.4: binary parts stored base64), for
//! plaintext and encrypted accounts, and hostile input. Commands are
//! sent piece by piece by Python, waiting for each `+` continuation as
//! a client does. `tests/imaptest.rs` runs imaptest's multiappend,
//! catenate, catenate-multiappend and append-binary scripts on top.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use sealmail::manage;
use support::imap::{lines, message, ImapServer};
use support::pki::pair;

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];
const BOB: [&str; 2] = ["bob@example.org", "bob-pw"];

/// Python: `pieces(m, chunks)` sends one command in `chunks` (bytes),
/// waiting for the `+` continuation before each chunk after the first,
/// and returns every line up to the tagged one (also when the server
/// answers before asking for the next chunk).
const PIECES: &str = r#"
def pieces(m, chunks):
    tag = m._new_tag().decode()
    m.send(tag.encode() + b' ' + chunks[0])
    lines = []
    for chunk in chunks[1:]:
        while True:
            line = m.readline().decode('utf-8', 'replace').rstrip('\r\n')
            if line.startswith('+'):
                break
            lines.append(line)
            if line.startswith(tag + ' '):
                return lines
        m.send(chunk)
    while True:
        line = m.readline().decode('utf-8', 'replace').rstrip('\r\n')
        lines.append(line)
        if line.startswith(tag + ' '):
            return lines
def msg(subject, body='body'):
    return ('From: a@example.net\r\nSubject: %s\r\n\r\n%s\r\n' % (subject, body)).encode()
def multi(m, box, msgs):
    # msgs: list of (options, bytes); sync literals throughout
    chunks = [('APPEND %s' % box).encode()]
    for opts, data in msgs:
        chunks[-1] += (' %s{%d}\r\n' % (opts, len(data))).encode()
        chunks.append(data)
    chunks[-1] += b'\r\n'
    return pieces(m, chunks)
"#;

fn python(s: &ImapServer, body: &str, user: [&str; 2]) -> serde_json::Value {
    s.python(&format!("{PIECES}\n{body}"), &user)
}

fn server() -> ImapServer {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    s.account(BOB[0], BOB[1]);
    s
}

fn last(out: &serde_json::Value, key: &str) -> String {
    lines(out, key).pop().unwrap()
}

#[test]
fn multiappend_stores_three_messages_with_their_uids() {
    let s = server();
    let out = python(
        &s,
        r#"
m = connect(args[0], args[1])
out['append'] = multi(m, 'INBOX', [('(\\Seen) ', msg('one')),
    ('(\\Flagged $Work) "14-Nov-2023 10:00:00 +0000" ', msg('two')), ('', msg('three'))])
out['status'] = raw(m, 'STATUS INBOX (UIDVALIDITY MESSAGES)')
m.select('INBOX')
out['fetch'] = raw(m, 'FETCH 1:* (FLAGS INTERNALDATE BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
out['caps'] = raw(m, 'CAPABILITY')
"#,
        ALICE,
    );
    let validity = lines(&out, "status")[0]
        .split("UIDVALIDITY ")
        .nth(1)
        .unwrap()
        .split([' ', ')'])
        .next()
        .unwrap()
        .to_string();
    let ok = last(&out, "append");
    assert!(
        ok.contains(&format!("OK [APPENDUID {validity} 1:3]")),
        "{ok}"
    );
    let fetch = lines(&out, "fetch").join("\n");
    for subject in ["one", "two", "three"] {
        assert!(fetch.contains(&format!("Subject: {subject}")), "{fetch}");
    }
    assert!(fetch.contains("\\Seen"), "{fetch}");
    assert!(fetch.contains("\\Flagged $Work"), "{fetch}");
    assert!(fetch.contains("14-Nov-2023 10:00:00 +0000"), "{fetch}");
    let caps = lines(&out, "caps")[0].clone();
    for cap in ["MULTIAPPEND", "CATENATE", "BINARY"] {
        assert!(caps.contains(cap), "{caps}");
    }
}

#[test]
fn a_multiappend_over_quota_or_size_keeps_none() {
    let s = ImapServer::start_with(|c| c.max_literal_bytes = 1000);
    let alice = s.account(ALICE[0], ALICE[1]);
    s.store.set_quota(alice, Some(1000)).unwrap();
    let out = python(
        &s,
        r#"
m = connect(args[0], args[1])
out['quota'] = multi(m, 'INBOX', [('', msg('a', 'x' * 300)), ('', msg('b', 'x' * 300)),
    ('', msg('c', 'x' * 300))])
out['literal'] = multi(m, 'INBOX', [('', msg('a')), ('', msg('b')), ('', msg('c', 'x' * 2000))])
out['noop'] = raw(m, 'NOOP')
"#,
        ALICE,
    );
    let quota = last(&out, "quota");
    assert!(quota.contains("NO [OVERQUOTA]"), "{quota}");
    let literal = last(&out, "literal");
    assert!(literal.contains("BAD"), "{literal}");
    assert!(last(&out, "noop").contains("OK"));
    assert!(s.stored(alice, "INBOX").is_empty(), "a message was kept");

    // Built by CATENATE: the third message's parts add up over the limit.
    s.store.set_quota(alice, None).unwrap();
    s.append(alice, "INBOX", &vec![b'x'; 600]);
    let out = python(
        &s,
        r#"
m = connect(args[0], args[1])
out['cat'] = pieces(m, [b'APPEND INBOX {6}\r\n', b'a: b\r\n {6}\r\n', b'c: d\r\n CATENATE (URL /INBOX/;UID=1 URL /INBOX/;UID=1)\r\n'])
"#,
        ALICE,
    );
    let cat = last(&out, "cat");
    assert!(cat.contains("NO [TOOBIG]"), "{cat}");
    assert_eq!(s.stored(alice, "INBOX").len(), 1, "only the first message");
}

#[test]
fn literal8_content_is_stored_base64_and_nul_in_a_literal_is_refused() {
    let s = server();
    let alice = s.store.account_by_address(ALICE[0]).unwrap().id;
    let out = python(
        &s,
        r#"
m = connect(args[0], args[1])
data = b'From: a@example.net\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\xff\n\r\n\x00'
out['plain'] = pieces(m, [b'APPEND INBOX {%d}\r\n' % len(data), data + b'\r\n'])
out['binary'] = pieces(m, [b'APPEND INBOX ~{%d}\r\n' % len(data), data + b'\r\n'])
out['multi'] = pieces(m, [b'APPEND INBOX ~{%d}\r\n' % len(data), data + b' (\\Seen) ~{%d}\r\n' % len(data), data + b'\r\n'])
m.select('INBOX')
out['body'] = raw(m, 'FETCH 1 BODY.PEEK[1]')
"#,
        ALICE,
    );
    assert!(last(&out, "plain").contains("BAD"), "{out}");
    assert!(last(&out, "binary").contains("OK [APPENDUID"), "{out}");
    assert!(last(&out, "multi").contains("OK [APPENDUID"), "{out}");
    let stored = s.stored(alice, "INBOX");
    assert_eq!(stored.len(), 3);
    for raw in &stored {
        let text = String::from_utf8(raw.clone()).expect("7-bit safe");
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\n\r\nAP8KDQoA"),
            "{text}"
        );
        assert!(!text.contains("binary"), "{text}");
    }
    let body = lines(&out, "body").join("\n");
    assert!(body.contains("AP8KDQoA"), "{body}");
}

#[test]
fn catenate_joins_sections_of_the_accounts_own_messages() {
    let s = server();
    let alice = s.store.account_by_address(ALICE[0]).unwrap().id;
    s.append(
        alice,
        "INBOX",
        &message("x@example.net", ALICE[0], "source", "the body"),
    );
    let out = python(
        &s,
        r#"
m = connect(args[0], args[1])
out['cat'] = pieces(m, [b'APPEND INBOX (\\Seen) CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER" TEXT {10}\r\n', b'new body\r\n URL "/inbox/;uid=1/;section=TEXT/;partial=4.4")\r\n'])
m.select('INBOX')
out['fetch'] = raw(m, 'FETCH 2 BODY.PEEK[TEXT]')
"#,
        ALICE,
    );
    assert!(last(&out, "cat").contains("OK [APPENDUID"), "{out}");
    let stored = s.stored(alice, "INBOX");
    let text = String::from_utf8_lossy(&stored[1]).into_owned();
    assert!(text.contains("Subject: source\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nnew body\r\nbody"), "{text:?}");
}

#[test]
fn every_message_of_an_encrypted_account_is_stored_as_smime() {
    let s = ImapServer::start();
    let keys = pair("carol@example.org", 2048);
    let carol = s
        .store
        .add_account("carol@example.org", Some("carol-pw"), &[])
        .unwrap();
    manage::add_certificates(&s.store, &carol, &keys.cert_pem(), "test").unwrap();
    manage::update_encryption(&s.store, &carol, Some(true), None, None).unwrap();
    let out = python(
        &s,
        r#"
m = connect(args[0], args[1])
out['multi'] = multi(m, 'INBOX', [('', msg('one', 'SECRET-ONE')), ('', msg('two', 'SECRET-TWO')),
    ('(\\Seen) ', msg('three', 'SECRET-THREE'))])
data = b'a: b\r\n\r\nSECRET\x00'
out['binary'] = pieces(m, [b'APPEND INBOX ~{%d}\r\n' % len(data), data + b'\r\n'])
out['cat'] = pieces(m, [b'APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=TEXT" TEXT {11}\r\n', b'SECRET-NEW\n)\r\n'])
"#,
        ["carol@example.org", "carol-pw"],
    );
    assert!(last(&out, "multi").contains("OK [APPENDUID"), "{out}");
    assert!(last(&out, "binary").contains("OK [APPENDUID"), "{out}");
    let cat = last(&out, "cat");
    assert!(
        cat.contains("NO [BADURL /INBOX/;UID=1/;SECTION=TEXT]"),
        "{cat}"
    );
    assert!(cat.contains("encrypted"), "{cat}");
    let stored = s.stored(carol.id, "INBOX");
    assert_eq!(stored.len(), 4);
    for raw in &stored {
        let text = String::from_utf8_lossy(raw);
        assert!(
            text.contains("application/pkcs7-mime"),
            "stored in clear: {text}"
        );
        assert!(!text.contains("SECRET"), "plaintext on disk: {text}");
    }
}

#[test]
fn hostile_appends_get_a_clear_answer_and_leak_nothing() {
    let s = server();
    let bob = s.store.account_by_address(BOB[0]).unwrap().id;
    s.append(
        bob,
        "INBOX",
        &message("x@example.net", BOB[0], "bob-private", "BOB-SECRET"),
    );
    let out = python(
        &s,
        r#"
sock = socket.create_connection(('127.0.0.1', port))
f = sock.makefile('rb')
f.readline()
sock.sendall(b'a1 APPEND INBOX {1+}\r\na {1+}\r\nb\r\n')
out['anonymous'] = [f.readline().decode().rstrip()]
m = connect(args[0], args[1])
out['many'] = pieces(m, [b'APPEND INBOX' + b' {0+}\r\n' * 10000 + b'\r\n'])
out['unterminated'] = pieces(m, [b'APPEND INBOX (\\Seen {1+}\r\na {1+}\r\nb\r\n'])
out['unclosed'] = pieces(m, [b'APPEND INBOX CATENATE (TEXT {1+}\r\na\r\n'])
out['other_user'] = raw(m, 'APPEND INBOX CATENATE (URL "imap://bob%40example.org@imap.test/INBOX/;UID=1")')
out['other_box'] = raw(m, 'APPEND INBOX CATENATE (URL "/Archive/;UID=1")')
out['absurd_uid'] = raw(m, 'APPEND INBOX CATENATE (URL "/INBOX/;UID=4294967295")')
out['huge_uid'] = raw(m, 'APPEND INBOX CATENATE (URL "/INBOX/;UID=99999999999")')
m.append('INBOX', None, None, b'Subject: mine\r\n\r\nmine\r\n')
out['absurd_section'] = raw(m, 'APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=1.2.3.4.5.6.7.8.9.4294967295")')
out['bad_section'] = raw(m, 'APPEND INBOX CATENATE (URL "/INBOX/;UID=1/;SECTION=HEADER.FIELDS%20(")')
out['no_box'] = raw(m, 'APPEND Nowhere CATENATE (URL "/INBOX/;UID=1")')
out['noop'] = raw(m, 'NOOP')
"#,
        ALICE,
    );
    let anonymous = last(&out, "anonymous");
    assert!(
        anonymous.starts_with("a1 BAD") || anonymous.starts_with("a1 NO"),
        "{anonymous}"
    );
    assert!(last(&out, "many").contains("BAD"), "{out}");
    assert!(
        last(&out, "many").contains("more than 1000 messages"),
        "{out}"
    );
    for key in ["unterminated", "unclosed"] {
        assert!(last(&out, key).contains(" BAD "), "{key}: {out}");
    }
    for key in [
        "other_user",
        "other_box",
        "absurd_uid",
        "huge_uid",
        "absurd_section",
        "bad_section",
    ] {
        let answer = lines(&out, key).join("\n");
        assert!(answer.contains(" NO [BADURL "), "{key}: {answer}");
        assert!(
            !answer.contains("BOB-SECRET") && !answer.contains("bob-private"),
            "{answer}"
        );
    }
    assert!(last(&out, "no_box").contains("NO [TRYCREATE]"), "{out}");
    assert!(last(&out, "noop").contains("OK"));
    let alice = s.store.account_by_address(ALICE[0]).unwrap().id;
    assert_eq!(s.stored(alice, "INBOX").len(), 1, "only the plain APPEND");
    assert_eq!(s.stored(bob, "INBOX").len(), 1);
}
