//! RFC 3501 details that Dovecot's imaptest compliance scripts check
//! (issue 17 item 1), each against Python's `imaplib` over a real socket:
//! `\Recent`, keywords in FLAGS, SENT* days, repeated HEADER fields,
//! address search and ENVELOPE groups, `BODY[n.TEXT]` epilogues, MOVE
//! into the selected mailbox, LSUB parents, and FETCH of a message
//! another session expunged. `tests/imaptest.rs` runs the scripts
//! themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::imap::{message, ImapServer};

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

fn server() -> ImapServer {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    s
}

fn deliver_n(s: &ImapServer, n: usize) {
    for i in 1..=n {
        let subject = format!("m{i}");
        s.deliver(
            ALICE[0],
            &message("bob@example.net", ALICE[0], &subject, "x"),
        );
    }
}

#[test]
fn recent_goes_to_the_first_session_that_selects() {
    let s = server();
    deliver_n(&s, 2);
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.select('INBOX', readonly=True)
out['examine_recent'] = s(a.untagged_responses.get('RECENT'))
out['examine_flags'] = s(a.fetch('1', '(FLAGS)')[1][0])
a.close()
out['status'] = s(a.status('INBOX', '(RECENT MESSAGES)')[1][0])
a.select('INBOX')
out['select_recent'] = s(a.untagged_responses.get('RECENT'))
out['select_flags'] = s(a.fetch('1', '(FLAGS)')[1][0])
out['search_recent'] = s(a.search(None, 'RECENT')[1][0])
out['search_new'] = s(a.search(None, 'NEW')[1][0])
b = connect(args[0], args[1])
b.select('INBOX')
out['b_recent'] = s(b.untagged_responses.get('RECENT'))
out['b_old'] = s(b.search(None, 'OLD')[1][0])
out['b_flags'] = s(b.fetch('1', '(FLAGS)')[1][0])
out['status_after'] = s(b.status('INBOX', '(RECENT)')[1][0])
"#,
        &ALICE,
    );
    assert_eq!(out["examine_recent"], serde_json::json!(["2"]), "{out}");
    assert!(out["examine_flags"].as_str().unwrap().contains("\\Recent"));
    assert!(
        out["status"].as_str().unwrap().contains("RECENT 2"),
        "{out}"
    );
    assert_eq!(out["select_recent"], serde_json::json!(["2"]), "{out}");
    assert!(out["select_flags"].as_str().unwrap().contains("\\Recent"));
    assert_eq!(out["search_recent"], "1 2");
    assert_eq!(out["search_new"], "1 2");
    assert_eq!(out["b_recent"], serde_json::json!(["0"]), "{out}");
    assert_eq!(out["b_old"], "1 2");
    assert!(!out["b_flags"].as_str().unwrap().contains("\\Recent"));
    assert!(out["status_after"].as_str().unwrap().contains("RECENT 0"));
}

#[test]
fn a_new_keyword_is_announced_in_flags_before_the_fetch() {
    let s = server();
    deliver_n(&s, 1);
    let out = s.python(
        r#"
a = connect(args[0], args[1])
out['select'] = raw(a, 'SELECT INBOX')
out['store'] = raw(a, 'STORE 1 +FLAGS ($Label1)')
b = connect(args[0], args[1])
out['reselect'] = raw(b, 'SELECT INBOX')
"#,
        &ALICE,
    );
    let lines = |k: &str| -> Vec<String> {
        out[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let select = lines("select");
    assert!(
        select
            .iter()
            .any(|l| l.starts_with("* OK [PERMANENTFLAGS (")
                && l.contains("\\*")
                && !l.contains("$Label1")),
        "{select:?}"
    );
    let store = lines("store");
    let flags = store.iter().position(|l| l.starts_with("* FLAGS ("));
    let permanent = store
        .iter()
        .position(|l| l.starts_with("* OK [PERMANENTFLAGS ("));
    let fetch = store.iter().position(|l| l.starts_with("* 1 FETCH"));
    assert!(
        flags.is_some() && flags < fetch && permanent < fetch,
        "{store:?}"
    );
    assert!(store[flags.unwrap()].contains("$Label1"), "{store:?}");
    assert!(store[permanent.unwrap()].contains("\\*"), "{store:?}");
    let reselect = lines("reselect");
    for prefix in ["* FLAGS (", "* OK [PERMANENTFLAGS ("] {
        assert!(
            reselect
                .iter()
                .any(|l| l.starts_with(prefix) && l.contains("$Label1")),
            "{prefix} {reselect:?}"
        );
    }
}

fn raw_message(header: &str) -> Vec<u8> {
    format!("{header}Subject: t\r\n\r\nbody\r\n").into_bytes()
}

#[test]
fn sent_dates_compare_the_day_as_written() {
    let s = server();
    // 24 March in UTC, 25 March as written; 26 March in UTC, 25 as written.
    for date in [
        "Sun, 25 Mar 2007 00:00:00 +0200",
        "Sun, 25 Mar 2007 23:00:00 -0300",
        "Mon, 26 Mar 2007 00:00:00 +0300",
    ] {
        s.deliver(ALICE[0], &raw_message(&format!("Date: {date}\r\n")));
    }
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.select('INBOX')
for crit in ['SENTON 25-Mar-2007', 'SENTBEFORE 25-Mar-2007', 'SENTBEFORE 26-Mar-2007',
             'SENTSINCE 26-Mar-2007', 'SENTON 24-Mar-2007']:
    out[crit] = s(a.search(None, crit)[1][0])
"#,
        &ALICE,
    );
    assert_eq!(out["SENTON 25-Mar-2007"], "1 2", "{out}");
    assert_eq!(out["SENTBEFORE 25-Mar-2007"], "");
    assert_eq!(out["SENTBEFORE 26-Mar-2007"], "1 2");
    assert_eq!(out["SENTSINCE 26-Mar-2007"], "3");
    assert_eq!(out["SENTON 24-Mar-2007"], "");
}

#[test]
fn header_and_address_search_see_every_field_comments_and_groups() {
    let s = server();
    for header in [
        "From: a@example.org\r\nX-Extra: hello header\r\nX-Extra: another one\r\n",
        "From: <user-from (comment)@ (comment) domain.org>\r\n",
        "From: a@example.org\r\nTo: groupname: g1@domain.org, g2@domain.org;, other:;\r\n",
        "From: a@example.org\r\nBcc: hidden@domain.org (Real Bcc)\r\n",
    ] {
        s.deliver(ALICE[0], &raw_message(header));
    }
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.select('INBOX')
for crit in ['HEADER X-Extra another', 'HEADER X-Extra hello', 'NOT HEADER X-Extra ""',
             'FROM user-from@domain.org', 'TO groupname', 'TO g2@domain.org', 'TO other',
             'BCC "real bcc"', 'BCC hidden@domain.org']:
    out[crit] = s(a.search(None, crit)[1][0])
"#,
        &ALICE,
    );
    assert_eq!(out["HEADER X-Extra another"], "1", "{out}");
    assert_eq!(out["HEADER X-Extra hello"], "1");
    assert_eq!(out["NOT HEADER X-Extra \"\""], "2 3 4");
    assert_eq!(out["FROM user-from@domain.org"], "2", "{out}");
    assert_eq!(out["TO groupname"], "3", "{out}");
    assert_eq!(out["TO g2@domain.org"], "3");
    assert_eq!(out["TO other"], "3");
    assert_eq!(out["BCC \"real bcc\""], "4", "{out}");
    assert_eq!(out["BCC hidden@domain.org"], "4");
}

#[test]
fn envelope_keeps_group_syntax() {
    let s = server();
    s.deliver(
        ALICE[0],
        &raw_message("From: a@x.org\r\nTo: a@x.org, team: b@x.org, c@x.org;, empty:;\r\n"),
    );
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.select('INBOX')
out['env'] = s(a.fetch('1', '(ENVELOPE)')[1][0])
"#,
        &ALICE,
    );
    let env = out["env"].as_str().unwrap();
    let to = concat!(
        r#"((NIL NIL "a" "x.org")(NIL NIL "team" NIL)(NIL NIL "b" "x.org")"#,
        r#"(NIL NIL "c" "x.org")(NIL NIL NIL NIL)(NIL NIL "empty" NIL)(NIL NIL NIL NIL))"#
    );
    assert!(env.contains(to), "{env}");
}

/// imaptest's fetch-body-message-rfc822-mime.mbox: a message/rfc822
/// holding a multipart with a prologue and an epilogue.
const EMBEDDED: &str = "From: user@domain.org\r\nDate: Sat, 24 Mar 2007 23:00:00 +0200\r\n\
Mime-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n\
From: sub@domain.org\r\nSubject: submsg\r\nContent-Type: multipart/digest; boundary=\"foo\"\r\n\r\n\
prologue\r\n\r\n--foo\r\n\r\nFrom: m1@example.com\r\nSubject: m1\r\n\r\nm1 body\r\n\r\n\
--foo--\r\n\r\nepilogue\r\n";

#[test]
fn text_of_an_embedded_multipart_keeps_its_epilogue() {
    let s = server();
    s.deliver(ALICE[0], EMBEDDED.as_bytes());
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.select('INBOX')
out['text'] = s(a.fetch('1', '(BODY.PEEK[1.TEXT])')[1][0][1])
out['part'] = s(a.fetch('1', '(BODY.PEEK[1])')[1][0][1])
"#,
        &ALICE,
    );
    let text = out["text"].as_str().unwrap();
    assert!(text.starts_with("prologue\r\n"), "{text:?}");
    assert!(text.ends_with("--foo--\r\n\r\nepilogue\r\n"), "{text:?}");
    assert!(out["part"]
        .as_str()
        .unwrap()
        .ends_with("--foo--\r\n\r\nepilogue\r\n"));
}

#[test]
fn move_into_the_selected_mailbox_gives_new_uids() {
    let s = server();
    deliver_n(&s, 3);
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.select('INBOX')
out['move'] = raw(a, 'MOVE 1 INBOX')
out['uids'] = s(a.uid('SEARCH', None, 'ALL')[1][0])
"#,
        &ALICE,
    );
    let lines: Vec<&str> = out["move"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let copyuid = lines
        .iter()
        .position(|l| l.contains("[COPYUID ") && l.contains(" 1 4]"));
    let expunge = lines.iter().position(|l| *l == "* 1 EXPUNGE");
    let exists = lines.iter().position(|l| *l == "* 3 EXISTS");
    assert!(
        copyuid.is_some() && copyuid < expunge && expunge < exists,
        "{lines:?}"
    );
    assert!(lines.last().unwrap().contains(" OK"), "{lines:?}");
    assert_eq!(out["uids"], "2 3 4");
}

#[test]
fn create_does_not_subscribe_and_lsub_percent_shows_parents_as_noselect() {
    let s = server();
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.create('a/b/c')
a.create('a/d')
out['created'] = s(a.lsub('""', '*')[1])
a.subscribe('a/b/c')
a.subscribe('a/d')
out['pct'] = s(a.lsub('""', 'a/%')[1])
out['star'] = s(a.lsub('""', 'a/*')[1])
"#,
        &ALICE,
    );
    // CREATE does not subscribe (RFC 3501 §6.3.3), parents made on the
    // way neither; INBOX and the special-use mailboxes the store made are.
    let created = out["created"].to_string();
    assert!(
        !created.contains("\\\" a") && !created.contains(" a/"),
        "{created}"
    );
    assert_eq!(
        out["pct"],
        serde_json::json!([r#"(\Noselect) "/" a/b"#, r#"() "/" a/d"#]),
        "{out}"
    );
    assert_eq!(
        out["star"],
        serde_json::json!([r#"() "/" a/b/c"#, r#"() "/" a/d"#]),
        "{out}"
    );
}

#[test]
fn fetch_of_a_message_expunged_elsewhere_is_no_not_an_empty_body() {
    let s = server();
    deliver_n(&s, 2);
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.select('INBOX')
b = connect(args[0], args[1])
b.select('INBOX')
b.store('1', '+FLAGS', '(\\Deleted)')
b.expunge()
out['fetch'] = raw(a, 'FETCH 1:2 (UID BODY.PEEK[])')
out['noop'] = raw(a, 'NOOP')
"#,
        &ALICE,
    );
    let fetch: Vec<&str> = out["fetch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let tagged = fetch.last().unwrap();
    assert!(
        tagged.contains(" NO [EXPUNGEISSUED]"),
        "expected NO for the expunged message: {fetch:?}"
    );
    assert!(
        !fetch.iter().any(|l| l.starts_with("* 1 FETCH")),
        "{fetch:?}"
    );
    assert!(
        fetch.iter().any(|l| l.starts_with("* 2 FETCH (UID 2 ")),
        "{fetch:?}"
    );
    assert!(
        out["noop"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l == "* 1 EXPUNGE"),
        "{out}"
    );
}
