//! Contexts for IMAP4 (RFC 5267) against the real server over a socket:
//! ESORT (`SORT RETURN (...)`), PARTIAL results of SEARCH and SORT, and
//! live results (`RETURN (UPDATE)`) told with ADDTO and REMOVEFROM as
//! other sessions and deliveries change the mailbox, until CANCELUPDATE.
//! Python's `imaplib` sends raw command lines so that the exact answer
//! lines and their order can be checked. `tests/imaptest.rs` runs
//! imaptest's esort, search-partial, sort-partial and
//! search-context-update scripts on top.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::imap::{lines, message, wait_for_line, ImapServer};

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

/// Alice with `n` messages stored directly (subjects `m001`, `m002`, ...).
fn server(n: usize) -> ImapServer {
    let s = ImapServer::start();
    let id = s.account(ALICE[0], ALICE[1]);
    for i in 1..=n {
        let subject = format!("m{i:03}");
        s.append(
            id,
            "INBOX",
            &message("bob@example.net", ALICE[0], &subject, "hello"),
        );
    }
    s
}

/// The tag of the last line of `key` (the tagged answer).
fn tag_of(out: &serde_json::Value, key: &str) -> String {
    let l = lines(out, key);
    l.last().unwrap().split(' ').next().unwrap().to_string()
}

/// The ESEARCH lines of `key`, checked to end with a tagged `status`.
fn esearch(out: &serde_json::Value, key: &str, status: &str) -> Vec<String> {
    let l = lines(out, key);
    let last = l.last().unwrap();
    assert!(last.contains(&format!(" {status} ")), "{key}: {l:?}");
    l.iter()
        .filter(|x| x.starts_with("* ESEARCH"))
        .cloned()
        .collect()
}

/// The one ESEARCH line of a command that succeeded, without its tag part.
fn one(out: &serde_json::Value, key: &str) -> String {
    let found = esearch(out, key, "OK");
    assert_eq!(found.len(), 1, "{key}: {found:?}");
    let prefix = format!("* ESEARCH (TAG \"{}\")", tag_of(out, key));
    found[0]
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("{key}: {found:?}"))
        .trim()
        .to_string()
}

#[test]
fn capabilities_are_announced() {
    let s = server(0);
    s.assert_capabilities(&ALICE, &["ESORT", "CONTEXT=SEARCH", "CONTEXT=SORT"]);
}

/// RFC 5267 §3: SORT RETURN answers ESEARCH in sort order; MIN and MAX
/// are the first and last message in that order; plain SORT is unchanged.
#[test]
fn esort_returns_min_max_count_all_in_sort_order() {
    let s = server(0);
    let out = s.python(
        r#"
m = connect(args[0], args[1])
for subject, date in [('c', '11:00'), ('a', '13:00'), ('e', '07:00'), ('b', '14:00'), ('d', '12:00')]:
    body = 'From: x@example.net\r\nSubject: %s\r\n\r\nbody\r\n' % subject
    typ, _ = m.append('INBOX', None, '"14-Nov-2023 %s:00 +0000"' % date, body.encode())
    assert typ == 'OK'
m.select('INBOX')
out['arrival'] = raw(m, 'SORT RETURN (MIN MAX COUNT ALL) (ARRIVAL) US-ASCII ALL')
out['subject'] = raw(m, 'UID SORT RETURN () (REVERSE SUBJECT) UTF-8 ALL')
out['count'] = raw(m, 'SORT RETURN (COUNT) (SUBJECT) US-ASCII SUBJECT nothing')
out['plain'] = raw(m, 'SORT (ARRIVAL) US-ASCII ALL')
out['bad'] = raw(m, 'SORT RETURN (MIN) ARRIVAL US-ASCII ALL')
out['nocharset'] = raw(m, 'SORT RETURN (MIN) (ARRIVAL) ALL')
"#,
        &ALICE,
    );
    // Arrival order: 3 (07:00), 1, 5, 2, 4.
    assert_eq!(one(&out, "arrival"), "MIN 3 MAX 4 COUNT 5 ALL 3,1,5,2,4");
    // Subjects e d c b a are UIDs 3 5 1 4 2.
    assert_eq!(one(&out, "subject"), "UID ALL 3,5,1,4,2");
    assert_eq!(one(&out, "count"), "COUNT 0");
    let plain = lines(&out, "plain");
    assert!(plain.contains(&"* SORT 3 1 5 2 4".to_string()), "{plain:?}");
    for key in ["bad", "nocharset"] {
        assert!(esearch(&out, key, "BAD").is_empty());
    }
}

/// RFC 5267 §4.4: PARTIAL of a 100-message result, its end, past its
/// end, reversed ranges, UID and SORT forms; and broken ranges are BAD.
#[test]
fn partial_results_and_hostile_ranges() {
    let s = server(100);
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
m.store('1:50', '+FLAGS', '\\Seen')
cases = {
    'first': 'SEARCH RETURN (PARTIAL 1:10) ALL',
    'end': 'SEARCH RETURN (PARTIAL 95:120 COUNT) ALL',
    'past': 'SEARCH RETURN (PARTIAL 101:200) ALL',
    'reversed': 'SEARCH RETURN (PARTIAL 5:1) ALL',
    'unseen': 'SEARCH RETURN (PARTIAL 1:3 MIN) UNSEEN',
    'uid': 'UID SEARCH RETURN (PARTIAL 100:100) ALL',
    'widest': 'SEARCH RETURN (PARTIAL 1:4294967295) ALL',
    'sort': 'SORT RETURN (PARTIAL 1:3) (REVERSE SUBJECT) US-ASCII ALL',
    'zero': 'SEARCH RETURN (PARTIAL 0:5) ALL',
    'huge': 'SEARCH RETURN (PARTIAL 1:4294967296) ALL',
    'single': 'SEARCH RETURN (PARTIAL 1) ALL',
    'star': 'SEARCH RETURN (PARTIAL 1:*) ALL',
    'negative': 'SEARCH RETURN (PARTIAL -1:-5) ALL',
    'with_all': 'SEARCH RETURN (PARTIAL 1:5 ALL) ALL',
    'twice': 'SEARCH RETURN (PARTIAL 1:5 PARTIAL 2:3) ALL',
    'missing': 'SEARCH RETURN (PARTIAL) ALL',
    'open': 'SEARCH RETURN (PARTIAL 1:5 ALL',
    'sort_zero': 'SORT RETURN (PARTIAL 0:1) (ARRIVAL) US-ASCII ALL',
}
for k, v in cases.items():
    out[k] = raw(m, v)
out['alive'] = raw(m, 'NOOP')
"#,
        &ALICE,
    );
    assert_eq!(one(&out, "first"), "PARTIAL (1:10 1:10)");
    assert_eq!(one(&out, "end"), "COUNT 100 PARTIAL (95:120 95:100)");
    assert_eq!(one(&out, "past"), "PARTIAL (101:200 NIL)");
    assert_eq!(one(&out, "reversed"), "PARTIAL (1:5 1:5)");
    assert_eq!(one(&out, "unseen"), "MIN 51 PARTIAL (1:3 51:53)");
    assert_eq!(one(&out, "uid"), "UID PARTIAL (100:100 100)");
    assert_eq!(one(&out, "widest"), "PARTIAL (1:4294967295 1:100)");
    assert_eq!(one(&out, "sort"), "PARTIAL (1:3 100,99,98)");
    for key in [
        "zero",
        "huge",
        "single",
        "star",
        "negative",
        "with_all",
        "twice",
        "missing",
        "open",
        "sort_zero",
    ] {
        assert!(esearch(&out, key, "BAD").is_empty(), "{key}");
    }
    assert!(lines(&out, "alive").last().unwrap().contains(" OK "));
}

/// RFC 5267 §4.3: another session's flag changes, APPEND and EXPUNGE
/// reach a SEARCH context as ADDTO (after EXISTS) and REMOVEFROM (before
/// EXPUNGE, with the sequence numbers the client still knows); a UID
/// context names UIDs; CANCELUPDATE stops the updates.
#[test]
fn updates_follow_other_sessions_until_cancelled() {
    let s = server(5);
    let out = s.python(
        r#"
m = connect(args[0], args[1])
o = connect(args[0], args[1])
m.select('INBOX')
o.select('INBOX')
def rawt(c, tag, cmd):
    c.send(('%s %s\r\n' % (tag, cmd)).encode())
    lines = []
    while True:
        line = c.readline().decode('utf-8', 'replace').rstrip('\r\n')
        lines.append(line)
        if line.startswith(tag + ' '):
            return lines
out['start'] = rawt(m, 'S1', 'SEARCH RETURN (UPDATE) SEEN')
out['start_uid'] = rawt(m, 'U1', 'UID SEARCH RETURN (UPDATE COUNT) UNSEEN')
out['reuse'] = rawt(m, 'S1', 'SEARCH RETURN (UPDATE) ALL')
o.store('2,4', '+FLAGS', '\\Seen')
out['seen'] = rawt(m, 'N1', 'NOOP')
o.store('2', '-FLAGS', '\\Seen')
o.store('4', '+FLAGS', '\\Deleted')
o.expunge()
out['expunged'] = rawt(m, 'N2', 'NOOP')
typ, _ = o.append('INBOX', '(\\Seen)', None, b'Subject: new\r\n\r\nnew\r\n')
out['appended'] = rawt(m, 'N3', 'NOOP')
out['cancel'] = rawt(m, 'C1', 'CANCELUPDATE "S1"')
out['cancel_again'] = rawt(m, 'C2', 'CANCELUPDATE "S1"')
o.store('1', '+FLAGS', '\\Seen')
out['after'] = rawt(m, 'N4', 'NOOP')
out['cancel_uid'] = rawt(m, 'C3', 'CANCELUPDATE "U1"')
o.store('3', '+FLAGS', '\\Seen')
out['quiet'] = rawt(m, 'N5', 'NOOP')
"#,
        &ALICE,
    );
    assert_eq!(esearch(&out, "start", "OK"), ["* ESEARCH (TAG \"S1\")"]);
    assert_eq!(
        esearch(&out, "start_uid", "OK"),
        ["* ESEARCH (TAG \"U1\") UID COUNT 5"]
    );
    assert!(esearch(&out, "reuse", "BAD").is_empty());
    assert_eq!(
        esearch(&out, "seen", "OK"),
        [
            "* ESEARCH (TAG \"U1\") UID REMOVEFROM (0 2,4)",
            "* ESEARCH (TAG \"S1\") ADDTO (0 2,4)",
        ]
    );
    // Message 2 lost \Seen, message 4 (seen) was expunged: REMOVEFROM
    // names 4 before `* 4 EXPUNGE`.
    let l = lines(&out, "expunged");
    let at = |p: &str| l.iter().position(|x| x == p).unwrap_or(usize::MAX);
    let remove = "* ESEARCH (TAG \"S1\") REMOVEFROM (0 2,4)";
    assert!(at(remove) < at("* 4 EXPUNGE"), "{l:?}");
    assert!(
        l.contains(&"* ESEARCH (TAG \"U1\") UID ADDTO (0 2)".to_string()),
        "{l:?}"
    );
    // The new message (UID 6, sequence 5) after `* 5 EXISTS`.
    let l = lines(&out, "appended");
    let at = |p: &str| l.iter().position(|x| x == p).unwrap_or(usize::MAX);
    let add = "* ESEARCH (TAG \"S1\") ADDTO (0 5)";
    assert!(at("* 5 EXISTS") < at(add) && at(add) < l.len(), "{l:?}");
    assert!(esearch(&out, "cancel", "OK").is_empty());
    assert!(esearch(&out, "cancel_again", "BAD").is_empty());
    assert_eq!(
        esearch(&out, "after", "OK"),
        ["* ESEARCH (TAG \"U1\") UID REMOVEFROM (0 1)"]
    );
    assert!(esearch(&out, "cancel_uid", "OK").is_empty());
    assert!(esearch(&out, "quiet", "OK").is_empty());
    assert!(lines(&out, "quiet").iter().any(|x| x.contains("FETCH")));
}

/// A delivery (through the LMTP pipeline) reaches a context while its
/// session IDLEs: EXISTS, then ADDTO.
#[test]
fn a_delivery_reaches_a_context_during_idle() {
    let s = server(2);
    let mut child = s.python_spawn(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
out['start'] = raw(m, 'UID SEARCH RETURN (UPDATE ALL) SUBJECT wake')
sock = m.sock
sock.sendall(b'I1 IDLE\r\n')
f = sock.makefile('rb')
out['cont'] = s(f.readline())
print('IDLING', flush=True)
sock.settimeout(10)
pushed = []
while not any('ESEARCH' in x for x in pushed):
    pushed.append(s(f.readline()).rstrip('\r\n'))
out['pushed'] = pushed
sock.sendall(b'DONE\r\n')
out['done'] = s(f.readline())
"#,
        &ALICE,
    );
    let mut reader = wait_for_line(&mut child, "IDLING");
    s.deliver(
        ALICE[0],
        &message("carol@example.net", ALICE[0], "wake up", "x"),
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
    assert!(child.wait().unwrap().success(), "{rest}");
    let out: serde_json::Value = serde_json::from_str(rest.lines().last().unwrap()).unwrap();
    let start = lines(&out, "start");
    assert!(
        start
            .iter()
            .any(|l| l.starts_with("* ESEARCH") && l.ends_with(") UID")),
        "{start:?}"
    );
    let pushed = lines(&out, "pushed");
    let exists = pushed.iter().position(|l| l == "* 3 EXISTS").unwrap();
    let add = pushed
        .iter()
        .position(|l| l.ends_with("UID ADDTO (0 3)"))
        .unwrap();
    assert!(exists < add, "{pushed:?}");
    assert!(out["done"].as_str().unwrap().starts_with("I1 OK"), "{out}");
}

/// A SORT context names each message that comes with its position in the
/// sort order, and each that leaves with its position before.
#[test]
fn sort_context_names_positions() {
    let s = server(0);
    let out = s.python(
        r#"
m = connect(args[0], args[1])
o = connect(args[0], args[1])
for subject in ['b', 'd', 'f']:
    m.append('INBOX', None, None, ('Subject: %s\r\n\r\nx\r\n' % subject).encode())
m.select('INBOX')
o.select('INBOX')
out['start'] = raw(m, 'SORT RETURN (UPDATE ALL) (SUBJECT) US-ASCII UNDELETED')
for subject in ['e', 'a']:
    o.append('INBOX', None, None, ('Subject: %s\r\n\r\nx\r\n' % subject).encode())
out['added'] = raw(m, 'NOOP')
o.store('2', '+FLAGS', '\\Deleted')
out['removed'] = raw(m, 'NOOP')
"#,
        &ALICE,
    );
    let tag = tag_of(&out, "start");
    assert_eq!(one(&out, "start"), "ALL 1:3");
    // b d f + e(4) a(5): a is first, e is fourth of a b d e f.
    assert_eq!(
        esearch(&out, "added", "OK"),
        [format!("* ESEARCH (TAG \"{tag}\") ADDTO (1 5 4 4)")]
    );
    // d (message 2) was third of a b d e f.
    assert_eq!(
        esearch(&out, "removed", "OK"),
        [format!("* ESEARCH (TAG \"{tag}\") REMOVEFROM (3 2)")]
    );
}

/// Hostile use: 1,000 UPDATE contexts in one session (10 kept, the rest
/// answered with NOUPDATE), UPDATE and CANCELUPDATE before SELECT or
/// login, a MODSEQ context, broken CANCELUPDATE lines.
#[test]
fn contexts_are_capped_and_refused_clearly() {
    let s = server(3);
    let out = s.python(
        r#"
p = imaplib.IMAP4('127.0.0.1', port)
out['prelogin'] = raw(p, 'CANCELUPDATE "x"')
m = connect(args[0], args[1])
out['unselected'] = raw(m, 'SEARCH RETURN (UPDATE) ALL')
out['cancel_unselected'] = raw(m, 'CANCELUPDATE "x"')
m.select('INBOX')
noupdate = 0
kept = 0
for i in range(1000):
    l = raw(m, 'SEARCH RETURN (UPDATE) SEEN')
    assert ' OK ' in l[-1], l
    if any('[NOUPDATE "' in x for x in l):
        noupdate += 1
    else:
        kept += 1
out['counts'] = [str(kept), str(noupdate)]
out['uid_cancel'] = raw(m, 'UID CANCELUPDATE "A0003"')
out['empty'] = raw(m, 'CANCELUPDATE')
out['unquoted'] = raw(m, 'CANCELUPDATE A0003')
out['open'] = raw(m, 'CANCELUPDATE "A0003')
out['after'] = raw(m, 'STORE 1 +FLAGS (\\Seen)')
m.select('INBOX')
out['reselected'] = raw(m, 'STORE 2 +FLAGS (\\Seen)')
"#,
        &ALICE,
    );
    assert!(lines(&out, "prelogin").last().unwrap().contains(" BAD "));
    assert!(esearch(&out, "unselected", "BAD").is_empty());
    assert!(esearch(&out, "cancel_unselected", "BAD").is_empty());
    assert_eq!(out["counts"], serde_json::json!(["10", "990"]));
    for key in ["uid_cancel", "empty", "unquoted", "open"] {
        assert!(esearch(&out, key, "BAD").is_empty(), "{key}");
    }
    // The session's own STORE: each of the 10 contexts gets ADDTO.
    let after = esearch(&out, "after", "OK");
    assert_eq!(after.len(), 10, "{after:?}");
    assert!(
        after.iter().all(|l| l.ends_with(") ADDTO (0 1)")),
        "{after:?}"
    );
    // SELECT ended every context.
    assert!(esearch(&out, "reselected", "OK").is_empty());
}

/// A MODSEQ search gets its answer but no updates (NOUPDATE).
#[test]
fn modseq_contexts_say_noupdate() {
    let s = server(2);
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
out['start'] = raw(m, 'SEARCH RETURN (UPDATE ALL) MODSEQ 1')
m.store('1', '+FLAGS', '\\Seen')
out['after'] = raw(m, 'NOOP')
"#,
        &ALICE,
    );
    let start = lines(&out, "start");
    assert!(start.last().unwrap().contains(" OK "), "{start:?}");
    assert!(
        start.iter().any(|l| l.starts_with("* NO [NOUPDATE \"")),
        "{start:?}"
    );
    assert!(start.iter().any(|l| l.contains("ALL 1:2")), "{start:?}");
    assert!(esearch(&out, "after", "OK").is_empty());
}
