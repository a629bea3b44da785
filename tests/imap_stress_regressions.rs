//! What imaptest's stress mode found (issue 17 item 6, `tests/imaptest_stress.rs`),
//! each replayed with two Python `imaplib` sessions on one mailbox over a
//! real socket: a keyword another session made is announced in FLAGS
//! before a FETCH shows it (RFC 9051 §7.3.5), and FETCH of a message
//! another session expunged says so in words clients recognise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::imap::{lines, message, ImapServer};

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

fn server_with_messages(n: usize) -> ImapServer {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    for i in 1..=n {
        let subject = format!("m{i}");
        s.deliver(
            ALICE[0],
            &message("bob@example.net", ALICE[0], &subject, "x"),
        );
    }
    s
}

/// The position of the first line starting with `prefix` and containing
/// `needle`.
fn find(lines: &[String], prefix: &str, needle: &str) -> Option<usize> {
    lines
        .iter()
        .position(|l| l.starts_with(prefix) && l.contains(needle))
}

#[test]
fn fetch_announces_a_keyword_another_session_made_before_showing_it() {
    let s = server_with_messages(1);
    let out = s.python(
        r#"
a = connect(args[0], args[1])
out['select'] = raw(a, 'SELECT INBOX')
b = connect(args[0], args[1])
b.select('INBOX')
raw(b, 'STORE 1 +FLAGS ($Label2)')
out['fetch'] = raw(a, 'FETCH 1 (FLAGS)')
"#,
        &ALICE,
    );
    assert!(
        find(&lines(&out, "select"), "* FLAGS (", "$Label2").is_none(),
        "{out}"
    );
    let fetch = lines(&out, "fetch");
    let shown = find(&fetch, "* 1 FETCH", "$Label2").expect("the FETCH shows the keyword");
    let announced = find(&fetch, "* FLAGS (", "$Label2");
    assert!(
        announced.is_some_and(|a| a < shown),
        "FLAGS must name $Label2 before the FETCH that shows it: {fetch:?}"
    );
}

#[test]
fn store_answer_announces_a_keyword_another_session_made_before_showing_it() {
    let s = server_with_messages(1);
    let out = s.python(
        r#"
a = connect(args[0], args[1])
raw(a, 'SELECT INBOX')
b = connect(args[0], args[1])
b.select('INBOX')
raw(b, 'STORE 1 +FLAGS ($Label3)')
out['store'] = raw(a, 'STORE 1 +FLAGS (\\Seen)')
"#,
        &ALICE,
    );
    let store = lines(&out, "store");
    let shown = find(&store, "* 1 FETCH", "$Label3").expect("the answer shows the keyword");
    let announced = find(&store, "* FLAGS (", "$Label3");
    assert!(
        announced.is_some_and(|a| a < shown),
        "FLAGS must name $Label3 before the FETCH that shows it: {store:?}"
    );
}

#[test]
fn fetch_of_messages_expunged_elsewhere_says_they_no_longer_exist() {
    let s = server_with_messages(3);
    let out = s.python(
        r#"
a = connect(args[0], args[1])
a.select('INBOX')
b = connect(args[0], args[1])
b.select('INBOX')
b.store('2:3', '+FLAGS', '(\\Deleted)')
b.expunge()
out['fetch'] = raw(a, 'FETCH 1:3 (FLAGS BODY.PEEK[HEADER])')
"#,
        &ALICE,
    );
    let fetch = lines(&out, "fetch");
    let tagged = fetch.last().unwrap();
    // imaptest (and Dovecot's own wording) tell this NO from a failed
    // FETCH by these words; the response code says the same to machines.
    assert!(
        tagged.contains(" NO [EXPUNGEISSUED] ") && tagged.contains("no longer exist"),
        "{fetch:?}"
    );
    assert!(find(&fetch, "* 1 FETCH", "").is_some(), "{fetch:?}");
}
