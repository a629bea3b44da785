//! The IMAP server against Python's `imaplib`, a real client: each test
//! starts its own server over a fresh store and runs one script.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::imap::{message, wait_for_line, ImapServer};

fn server_with_alice() -> ImapServer {
    let s = ImapServer::start();
    s.account("alice@example.org", "alice-pw");
    s
}

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

#[test]
fn login_list_shows_special_use_and_children() {
    let s = server_with_alice();
    let id = s.store.account_by_address("alice@example.org").unwrap().id;
    s.store.create_mailbox(id, "Archive/2024").unwrap();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
typ, caps = m.capability()
out['caps'] = s(caps[0])
typ, lines = m.list()
out['list'] = s(lines)
typ, lines = m.lsub('""', 'Arch*')
out['lsub'] = s(lines)
m.logout()
"#,
        &ALICE,
    );
    let caps = out["caps"].as_str().unwrap();
    for cap in [
        "IMAP4rev1",
        "IMAP4rev2",
        "IDLE",
        "UIDPLUS",
        "MOVE",
        "LITERAL+",
        "SPECIAL-USE",
        "NAMESPACE",
        "ENABLE",
        "ID",
    ] {
        assert!(
            caps.to_ascii_uppercase()
                .split(' ')
                .any(|c| c == cap.to_ascii_uppercase()),
            "{cap} missing from {caps}"
        );
    }
    let list: Vec<String> = out["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let line = |name: &str| {
        list.iter()
            .find(|l| l.ends_with(&format!("\"/\" {name}")))
            .unwrap_or_else(|| panic!("{name} not in {list:?}"))
            .clone()
    };
    assert!(line("INBOX").contains("\\HasNoChildren"));
    assert!(line("Sent").contains("\\Sent"));
    assert!(line("Drafts").contains("\\Drafts"));
    assert!(line("Trash").contains("\\Trash"));
    assert!(line("Junk").contains("\\Junk"));
    assert!(line("Archive").contains("\\Archive") && line("Archive").contains("\\HasChildren"));
    assert!(line("Archive/2024").contains("\\HasNoChildren"));
    assert_eq!(
        out["lsub"].as_array().unwrap().len(),
        2,
        "{:?}",
        out["lsub"]
    );
}

#[test]
fn select_append_and_fetch_items() {
    let s = server_with_alice();
    let msg = message(
        "Bob <bob@example.net>",
        "alice@example.org",
        "Hello there",
        "Line one.\r\nLine two.",
    );
    let out = s.python(
        r#"
m = connect(args[0], args[1])
msg = open(args[2], 'rb').read()
typ, data = m.append('INBOX', '(\\Flagged)', None, msg)
out['append'] = [typ, s(data[0])]
typ, data = m.select('INBOX')
out['exists'] = s(data[0])
out['uidvalidity'] = s(m.untagged_responses.get('UIDVALIDITY', [b''])[0])
typ, data = m.fetch('1', '(FLAGS RFC822.SIZE BODY.PEEK[])')
out['peek'] = s(data[0][0])
out['body'] = s(data[0][1])
typ, data = m.fetch('1', '(FLAGS)')
out['flags_after_peek'] = s(data[0])
typ, data = m.fetch('1', '(BODY[HEADER.FIELDS (SUBJECT)])')
out['subject'] = s(data[0][1])
typ, data = m.fetch('1', '(ENVELOPE)')
out['envelope'] = s(data[0])
typ, data = m.fetch('1', '(BODYSTRUCTURE)')
out['bodystructure'] = s(data[0])
typ, data = m.fetch('1', '(BODY[TEXT])')
out['text'] = s(data[0][1])
typ, data = m.fetch('1', '(FLAGS)')
out['flags_after_body'] = s(data[0])
typ, data = m.fetch('1', '(BODY.PEEK[]<0.4>)')
out['partial'] = s(data[0][1])
typ, data = m.uid('FETCH', '1:*', '(UID INTERNALDATE)')
out['uidfetch'] = s(data[0])
m.logout()
"#,
        &[ALICE[0], ALICE[1], &write_temp(&msg)],
    );
    assert_eq!(out["append"][0], "OK");
    assert!(
        out["append"][1].as_str().unwrap().contains("APPENDUID"),
        "{out}"
    );
    assert_eq!(out["exists"], "1");
    assert!(out["peek"]
        .as_str()
        .unwrap()
        .contains(&format!("RFC822.SIZE {}", msg.len())));
    assert_eq!(out["body"].as_str().unwrap().as_bytes(), msg.as_slice());
    assert!(!out["flags_after_peek"].as_str().unwrap().contains("\\Seen"));
    assert!(out["flags_after_peek"]
        .as_str()
        .unwrap()
        .contains("\\Flagged"));
    assert_eq!(out["subject"], "Subject: Hello there\r\n\r\n");
    let env = out["envelope"].as_str().unwrap();
    assert!(
        env.contains("\"Hello there\"") && env.contains("\"bob\" \"example.net\""),
        "{env}"
    );
    let bs = out["bodystructure"].as_str().unwrap();
    assert!(
        bs.to_ascii_uppercase().contains("\"TEXT\" \"PLAIN\""),
        "{bs}"
    );
    assert_eq!(out["text"], "Line one.\r\nLine two.\r\n");
    assert!(out["flags_after_body"].as_str().unwrap().contains("\\Seen"));
    assert_eq!(out["partial"], "From");
    assert!(out["uidfetch"].as_str().unwrap().contains("UID 1"));
    assert!(out["uidfetch"]
        .as_str()
        .unwrap()
        .contains("INTERNALDATE \""));
}

fn write_temp(bytes: &[u8]) -> String {
    let f = tempfile::Builder::new().suffix(".eml").tempfile().unwrap();
    std::fs::write(f.path(), bytes).unwrap();
    let (_, path) = f.keep().unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn store_and_search() {
    let s = server_with_alice();
    s.deliver(
        "alice@example.org",
        &message(
            "bob@example.net",
            "alice@example.org",
            "Quarterly report",
            "numbers",
        ),
    );
    s.deliver(
        "alice@example.org",
        &message("carol@example.com", "alice@example.org", "Lunch", "pizza"),
    );
    s.deliver(
        "alice@example.org",
        &message("bob@example.net", "alice@example.org", "Re: Lunch", "yes"),
    );
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
typ, data = m.store('2', '+FLAGS', '(\\Flagged \\Seen)')
out['store'] = s(data)
typ, data = m.store('1', '+FLAGS.SILENT', '(\\Answered)')
out['silent'] = s(data)
for name, crit in [('subject', '(SUBJECT "lunch")'), ('from', '(FROM "bob")'),
                   ('flagged', 'FLAGGED'), ('unseen', 'UNSEEN'), ('answered', 'ANSWERED'),
                   ('not', '(NOT FROM "bob")'), ('or', '(OR SUBJECT report SUBJECT "re:")'),
                   ('body', '(BODY pizza)'), ('text', '(TEXT Quarterly)'),
                   ('header', '(HEADER Message-ID "Lunch@test")'), ('larger', '(LARGER 10)'),
                   ('smaller', '(SMALLER 10)'), ('since', '(SINCE 1-Jan-2000)'),
                   ('sentbefore', '(SENTBEFORE 1-Jan-2024)'), ('senton', '(SENTON 14-Nov-2023)'),
                   ('all', 'ALL'), ('seqset', '2:*')]:
    typ, data = m.search(None, crit)
    out[name] = s(data[0])
typ, data = m.uid('SEARCH', None, 'UID 2:3 FROM bob')
out['uidsearch'] = s(data[0])
typ, data = m.store('3', '-FLAGS', '(\\Seen)')
out['minus'] = s(data)
m.logout()
"#,
        &ALICE,
    );
    assert!(
        out["store"][0].as_str().unwrap().contains("\\Flagged"),
        "{out}"
    );
    assert_eq!(out["silent"], serde_json::json!([null]));
    assert_eq!(out["subject"], "2 3");
    assert_eq!(out["from"], "1 3");
    assert_eq!(out["flagged"], "2");
    assert_eq!(out["unseen"], "1 3");
    assert_eq!(out["answered"], "1");
    assert_eq!(out["not"], "2");
    assert_eq!(out["or"], "1 3");
    assert_eq!(out["body"], "2", "{out}");
    assert_eq!(out["text"], "1");
    assert_eq!(out["header"], "2 3"); // "Re:.Lunch@test" contains it too
    assert_eq!(out["larger"], "1 2 3");
    assert_eq!(out["smaller"], "");
    assert_eq!(out["since"], "1 2 3");
    assert_eq!(out["sentbefore"], "1 2 3");
    assert_eq!(out["senton"], "1 2 3");
    assert_eq!(out["all"], "1 2 3");
    assert_eq!(out["seqset"], "2 3");
    assert_eq!(out["uidsearch"], "3");
}

#[test]
fn copy_move_expunge_with_uidplus() {
    let s = server_with_alice();
    for i in 1..=5 {
        s.deliver(
            "alice@example.org",
            &message(
                "bob@example.net",
                "alice@example.org",
                &format!("m{i}"),
                "x",
            ),
        );
    }
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
typ, data = m.copy('1:2', 'Archive')
out['copy'] = [typ, s(data[0])]
typ, data = m.uid('MOVE', '3', 'Trash')
out['move'] = [typ, s(data[0])]
out['move_untagged'] = s(m.untagged_responses.pop('EXPUNGE', []))
typ, data = m.copy('1', 'Nope')
out['copy_missing'] = [typ, s(data[0])]
m.store('1', '+FLAGS', '(\\Deleted)')
m.store('3', '+FLAGS', '(\\Deleted)')
typ, data = m.uid('EXPUNGE', '5')
out['uid_expunge'] = s(data)
typ, data = m.search(None, 'ALL')
out['after_uid_expunge'] = s(data[0])
typ, data = m.expunge()
out['expunge'] = s(data)
typ, data = m.uid('SEARCH', None, 'ALL')
out['left'] = s(data[0])
out['archive'] = s(m.status('Archive', '(MESSAGES UIDNEXT)')[1][0])
out['trash'] = s(m.status('Trash', '(MESSAGES)')[1][0])
m.logout()
"#,
        &ALICE,
    );
    assert_eq!(out["copy"][0], "OK");
    assert!(
        out["copy"][1].as_str().unwrap().contains("COPYUID"),
        "{out}"
    );
    assert_eq!(out["move"][0], "OK");
    assert_eq!(out["copy_missing"][0], "NO");
    assert!(out["copy_missing"][1]
        .as_str()
        .unwrap()
        .contains("TRYCREATE"));
    // After MOVE of UID 3: UIDs 1 2 4 5 are seqs 1-4; \Deleted on seq 1 (UID 1)
    // and seq 3 (UID 4). UID EXPUNGE 5 removes nothing (not \Deleted).
    assert_eq!(out["after_uid_expunge"], "1 2 3 4");
    assert_eq!(out["expunge"], serde_json::json!(["3", "1"]));
    assert_eq!(out["left"], "2 5");
    assert!(out["archive"].as_str().unwrap().contains("MESSAGES 2"));
    assert!(out["trash"].as_str().unwrap().contains("MESSAGES 1"));
}

#[test]
fn create_rename_delete_status() {
    let s = server_with_alice();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
out['create'] = m.create('Projects/Alpha')[0]
out['create_again'] = m.create('Projects/Alpha')[0]
out['rename'] = m.rename('Projects', 'Work')[0]
typ, lines = m.list('""', 'Work*')
out['list'] = s(lines)
out['status'] = s(m.status('Work/Alpha', '(MESSAGES UIDNEXT UIDVALIDITY UNSEEN RECENT)')[1][0])
out['delete_parent'] = m.delete('Work')[0]
out['delete'] = m.delete('Work/Alpha')[0]
out['delete_inbox'] = m.delete('INBOX')[0]
out['select_gone'] = m.select('Work/Alpha')[0]
out['subscribe'] = m.subscribe('Work')[0]
out['unsubscribe'] = m.unsubscribe('Work')[0]
typ, lines = m.lsub('""', 'Work')
out['lsub'] = s(lines)
m.logout()
"#,
        &ALICE,
    );
    assert_eq!(out["create"], "OK");
    assert_eq!(out["create_again"], "NO");
    assert_eq!(out["rename"], "OK");
    let list = out["list"].to_string();
    assert!(
        list.contains("Work/Alpha") && !list.contains("Projects"),
        "{list}"
    );
    let status = out["status"].as_str().unwrap();
    assert!(
        status.contains("MESSAGES 0")
            && status.contains("UIDNEXT 1")
            && status.contains("UIDVALIDITY"),
        "{status}"
    );
    assert_eq!(out["delete_parent"], "NO");
    assert_eq!(out["delete"], "OK");
    assert_eq!(out["delete_inbox"], "NO");
    assert_eq!(out["select_gone"], "NO");
    assert_eq!(out["subscribe"], "OK");
    assert_eq!(out["unsubscribe"], "OK");
    assert_eq!(out["lsub"], serde_json::json!([null]));
}

#[test]
fn another_session_sees_expunge_and_flags_on_noop() {
    let s = server_with_alice();
    for i in 1..=3 {
        s.deliver(
            "alice@example.org",
            &message(
                "bob@example.net",
                "alice@example.org",
                &format!("m{i}"),
                "x",
            ),
        );
    }
    let out = s.python(
        r#"
a = connect(args[0], args[1])
b = connect(args[0], args[1])
a.select('INBOX')
b.select('INBOX')
a.store('2', '+FLAGS', '(\\Deleted)')
a.expunge()
a.store('1', '+FLAGS', '(\\Flagged)')
b.noop()
out['expunge'] = s(b.untagged_responses.pop('EXPUNGE', []))
out['fetch'] = s(b.untagged_responses.pop('FETCH', []))
typ, data = b.fetch('2', '(UID)')
out['seq2'] = s(data[0])
a.logout(); b.logout()
"#,
        &ALICE,
    );
    assert_eq!(out["expunge"], serde_json::json!(["2"]));
    assert!(out["fetch"].to_string().contains("\\\\Flagged"), "{out}");
    assert!(out["seq2"].as_str().unwrap().contains("UID 3"), "{out}");
}

#[test]
fn idle_is_woken_by_a_delivery() {
    let s = server_with_alice();
    let mut child = s.python_spawn(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
sock = m.sock
tag = b'I1'
sock.sendall(tag + b' IDLE\r\n')
f = sock.makefile('rb')
line = f.readline()
out['cont'] = s(line)
print('IDLING', flush=True)
sock.settimeout(10)
line = f.readline()
out['push'] = s(line)
out['recent'] = s(f.readline())
sock.sendall(b'DONE\r\n')
out['done'] = s(f.readline())
"#,
        &ALICE,
    );
    let mut reader = wait_for_line(&mut child, "IDLING");
    s.deliver(
        "alice@example.org",
        &message("bob@example.net", "alice@example.org", "wake up", "x"),
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    let out: serde_json::Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    assert!(out["cont"].as_str().unwrap().starts_with('+'), "{out}");
    assert_eq!(out["push"], "* 1 EXISTS\r\n");
    // RFC 3501 §2.3.2: this session is the first to see it.
    assert_eq!(out["recent"], "* 1 RECENT\r\n");
    assert!(out["done"].as_str().unwrap().starts_with("I1 OK"), "{out}");
}

#[test]
fn wrong_password_is_refused_after_the_delay() {
    let s = ImapServer::start_with(|c| c.failed_login_delay = Duration::from_millis(700));
    s.account("alice@example.org", "alice-pw");
    let started = Instant::now();
    let out = s.python(
        r#"
m = imaplib.IMAP4('127.0.0.1', port)
try:
    m.login(args[0], 'wrong')
    out['login'] = 'OK'
except imaplib.IMAP4.error as e:
    out['login'] = str(e)
try:
    m.login('nobody@example.org', 'x')
except imaplib.IMAP4.error as e:
    out['unknown'] = str(e)
m.login(args[0], args[1])
out['then'] = 'OK'
m.logout()
"#,
        &ALICE,
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    assert!(
        out["login"]
            .as_str()
            .unwrap()
            .contains("AUTHENTICATIONFAILED"),
        "{out}"
    );
    assert!(
        out["unknown"]
            .as_str()
            .unwrap()
            .contains("AUTHENTICATIONFAILED"),
        "{out}"
    );
    assert_eq!(out["then"], "OK");
}

#[test]
fn authenticate_plain_works() {
    let s = server_with_alice();
    let out = s.python(
        r#"
m = imaplib.IMAP4('127.0.0.1', port)
typ, data = m.authenticate('PLAIN', lambda _: ('\0' + args[0] + '\0' + args[1]).encode())
out['auth'] = typ
out['select'] = m.select('INBOX')[0]
m.logout()
"#,
        &ALICE,
    );
    assert_eq!(out["auth"], "OK");
    assert_eq!(out["select"], "OK");
}

#[test]
fn a_session_never_reaches_another_account() {
    let s = server_with_alice();
    let bob = s.account("bob@example.net", "bob-pw");
    s.store.create_mailbox(bob, "Bob-Secret").unwrap();
    s.deliver(
        "bob@example.net",
        &message("x@example.com", "bob@example.net", "for bob only", "secret"),
    );
    let out = s.python(
        r#"
m = connect(args[0], args[1])
out['select_other'] = m.select('Bob-Secret')[0]
out['status_other'] = m.status('Bob-Secret', '(MESSAGES)')[0]
typ, lines = m.list('""', '*')
out['list'] = s(lines)
for name in ['bob@example.net/INBOX', '../bob@example.net/INBOX', '#shared/bob', '~bob/INBOX']:
    out['sel ' + name] = m.select(name)[0]
typ, data = m.select('INBOX')
out['inbox'] = s(data[0])
out['copy_other'] = m.copy('1:*', 'Bob-Secret')[0]
m.logout()
"#,
        &ALICE,
    );
    assert_eq!(out["select_other"], "NO");
    assert_eq!(out["status_other"], "NO");
    assert!(!out["list"].to_string().contains("Bob-Secret"));
    for name in [
        "bob@example.net/INBOX",
        "../bob@example.net/INBOX",
        "#shared/bob",
        "~bob/INBOX",
    ] {
        assert_eq!(out[format!("sel {name}")], "NO", "{name}");
    }
    assert_eq!(out["inbox"], "0");
    // Bob-Secret does not exist for alice: TRYCREATE, nothing copied.
    assert_eq!(out["copy_other"], "NO");
}
