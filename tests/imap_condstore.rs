//! CONDSTORE and QRESYNC (RFC 7162), issue 17 item 2: what Thunderbird
//! and other clients use to resynchronise a folder without fetching every
//! flag again. Python's `imaplib` over a real socket, two sessions of one
//! account changing the same mailbox, raw lines checked where order and
//! response codes matter.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::imap::{message, ImapServer};

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

/// `modseq(lines)`: the number in the first `MODSEQ (n)` or
/// `HIGHESTMODSEQ n` of `lines` (`raw` comes with the prelude).
const MODSEQ: &str = r#"
def modseq(lines):
    for line in lines:
        g = re.search(r'MODSEQ \(?(\d+)', line)
        if g:
            return int(g.group(1))
    return None
"#;

fn server(n: usize) -> ImapServer {
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

fn run(s: &ImapServer, body: &str) -> serde_json::Value {
    s.python(&format!("{MODSEQ}{body}"), &ALICE)
}

fn lines(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn tagged(v: &serde_json::Value) -> String {
    lines(v).last().unwrap().clone()
}

#[test]
fn condstore_reports_modseqs_and_changes_since() {
    let s = server(3);
    let out = run(
        &s,
        r#"
a = connect(args[0], args[1])
out['caps'] = s(a.capability()[1][0])
out['select'] = raw(a, 'SELECT INBOX')
start = modseq(out['select'])
out['status'] = raw(a, 'STATUS INBOX (HIGHESTMODSEQ MESSAGES)')
out['fetch_modseq'] = raw(a, 'FETCH 1:3 (MODSEQ)')
b = connect(args[0], args[1])
b.select('INBOX')
b.store('2', '+FLAGS', '(\\Flagged)')
out['changed'] = raw(a, 'FETCH 1:* (FLAGS) (CHANGEDSINCE %d)' % start)
out['search'] = raw(a, 'SEARCH MODSEQ %d' % (start + 1))
out['search_none'] = raw(a, 'UID SEARCH MODSEQ %d' % (start + 1000))
"#,
    );
    let caps = out["caps"].as_str().unwrap();
    assert!(
        caps.contains("CONDSTORE") && caps.contains("QRESYNC"),
        "{caps}"
    );
    let select = lines(&out["select"]);
    assert!(
        select.iter().any(|l| l.starts_with("* OK [HIGHESTMODSEQ ")),
        "{select:?}"
    );
    let status = lines(&out["status"]);
    assert!(
        status[0].contains("HIGHESTMODSEQ") && status[0].contains("MESSAGES 3"),
        "{status:?}"
    );
    let fetched = lines(&out["fetch_modseq"]);
    assert_eq!(
        fetched.iter().filter(|l| l.contains("MODSEQ (")).count(),
        3,
        "{fetched:?}"
    );
    // Only message 2 changed since the SELECT, and it comes with MODSEQ.
    let changed = lines(&out["changed"]);
    assert_eq!(changed.len(), 2, "{changed:?}");
    assert!(
        changed[0].starts_with("* 2 FETCH")
            && changed[0].contains("\\Flagged")
            && changed[0].contains("MODSEQ ("),
        "{changed:?}"
    );
    let search = lines(&out["search"]);
    assert!(
        search[0].starts_with("* SEARCH 2 (MODSEQ "),
        "MODSEQ search answers with the highest MODSEQ: {search:?}"
    );
    assert_eq!(lines(&out["search_none"])[0], "* SEARCH");
}

#[test]
fn store_unchangedsince_refuses_what_another_session_changed() {
    let s = server(2);
    let out = run(
        &s,
        r#"
a = connect(args[0], args[1])
a.select('INBOX')
seen = modseq(raw(a, 'FETCH 2 (MODSEQ)'))
b = connect(args[0], args[1])
b.select('INBOX')
b.store('1', '+FLAGS', '(\\Seen)')
out['stale'] = raw(a, 'STORE 1:2 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)' % seen)
out['after'] = raw(a, 'FETCH 1:2 (FLAGS)')
now = modseq(raw(a, 'FETCH 1 (MODSEQ)'))
out['fresh'] = raw(a, 'UID STORE 1 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Flagged)' % now)
out['zero'] = raw(a, 'STORE 2 (UNCHANGEDSINCE 0) -FLAGS (\\Flagged)')
out['garbage'] = raw(a, 'STORE 1 (UNCHANGEDSINCE x) +FLAGS (\\Seen)')
out['still'] = raw(a, 'NOOP')
"#,
    );
    let stale = lines(&out["stale"]);
    assert!(
        tagged(&out["stale"]).contains("OK [MODIFIED 1]"),
        "message 1 changed after the client read it: {stale:?}"
    );
    let after = lines(&out["after"]);
    let m1 = after.iter().find(|l| l.starts_with("* 1 FETCH")).unwrap();
    let m2 = after.iter().find(|l| l.starts_with("* 2 FETCH")).unwrap();
    assert!(
        !m1.contains("\\Flagged") && m1.contains("\\Seen"),
        "{after:?}"
    );
    assert!(
        m2.contains("\\Flagged"),
        "message 2 was unchanged: {after:?}"
    );
    // .SILENT still answers with the new MODSEQ once CONDSTORE is on.
    let fresh = lines(&out["fresh"]);
    assert!(
        fresh[0].contains("MODSEQ (") && tagged(&out["fresh"]).contains("OK"),
        "{fresh:?}"
    );
    assert!(
        tagged(&out["zero"]).contains("[MODIFIED 2]"),
        "{:?}",
        out["zero"]
    );
    assert!(
        tagged(&out["garbage"]).contains("BAD"),
        "{:?}",
        out["garbage"]
    );
    assert!(tagged(&out["still"]).contains("OK"), "session survives");
}

#[test]
fn qresync_tells_vanished_uids_and_changed_flags() {
    let s = server(5);
    let out = run(
        &s,
        r#"
a = connect(args[0], args[1])
out['without_enable'] = raw(a, 'SELECT INBOX (QRESYNC (1 1))')
out['enable'] = raw(a, 'ENABLE QRESYNC')
sel = raw(a, 'SELECT INBOX')
validity = int(re.search(r'UIDVALIDITY (\d+)', ' '.join(sel)).group(1))
since = modseq(sel)
raw(a, 'CLOSE')
b = connect(args[0], args[1])
b.select('INBOX')
b.store('2', '+FLAGS', '(\\Deleted)')
b.expunge()
b.uid('STORE', '3', '+FLAGS', '(\\Answered)')
out['resync'] = raw(a, 'SELECT INBOX (QRESYNC (%d %d 1:5))' % (validity, since))
now = modseq(out['resync'])
b.store('1', '+FLAGS', '(\\Deleted)')
b.expunge()
out['noop'] = raw(a, 'NOOP')
out['uid_fetch'] = raw(a, 'UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)' % since)
out['bad_vanished'] = raw(a, 'FETCH 1:* (FLAGS) (CHANGEDSINCE 1 VANISHED)')
out['other_validity'] = raw(a, 'SELECT INBOX (QRESYNC (%d %d))' % (validity + 1, since))
"#,
    );
    assert!(
        tagged(&out["without_enable"]).contains("BAD")
            && tagged(&out["without_enable"]).contains("ENABLE QRESYNC"),
        "the refusal says what to do: {:?}",
        out["without_enable"]
    );
    assert_eq!(lines(&out["enable"])[0], "* ENABLED QRESYNC");
    let resync = lines(&out["resync"]);
    let vanished = resync
        .iter()
        .position(|l| l == "* VANISHED (EARLIER) 2")
        .unwrap_or_else(|| panic!("{resync:?}"));
    // UID 3 is now message 2; it comes after VANISHED with its new flags.
    let fetch = resync
        .iter()
        .position(|l| l.starts_with("* 2 FETCH") && l.contains("\\Answered"))
        .unwrap_or_else(|| panic!("{resync:?}"));
    assert!(vanished < fetch, "{resync:?}");
    assert!(
        resync
            .iter()
            .all(|l| !l.contains("UID 1 ") || !l.contains("FETCH")),
        "unchanged messages are not sent: {resync:?}"
    );
    // Another session's expunge: VANISHED, never EXPUNGE, once enabled.
    let noop = lines(&out["noop"]);
    assert!(noop.contains(&"* VANISHED 1".to_string()), "{noop:?}");
    assert!(noop.iter().all(|l| !l.ends_with("EXPUNGE")), "{noop:?}");
    let uid_fetch = lines(&out["uid_fetch"]);
    assert!(
        uid_fetch.contains(&"* VANISHED (EARLIER) 1:2".to_string()),
        "{uid_fetch:?}"
    );
    assert!(
        uid_fetch
            .iter()
            .any(|l| l.contains("UID 3") && l.contains("MODSEQ (")),
        "{uid_fetch:?}"
    );
    assert!(
        tagged(&out["bad_vanished"]).contains("BAD")
            && tagged(&out["bad_vanished"]).contains("UID FETCH"),
        "VANISHED needs UID FETCH: {:?}",
        out["bad_vanished"]
    );
    let other = lines(&out["other_validity"]);
    assert!(
        other.iter().all(|l| !l.starts_with("* VANISHED")),
        "another UIDVALIDITY gets no VANISHED: {other:?}"
    );
}
