//! ESEARCH (RFC 4731), SORT (RFC 5256) and SORT=DISPLAY (RFC 5957)
//! against the real server over a socket, with raw command lines sent by
//! Python's `imaplib` so that the exact answer lines can be checked.
//! `tests/imaptest.rs` runs imaptest's esearch and sort-* scripts on top.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::imap::{lines, message, ImapServer};

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

/// A message with the given header fields and a body of `size` bytes.
fn mail(from: &str, to: &str, subject: &str, date: Option<&str>, size: usize) -> String {
    let date = date.map_or(String::new(), |d| format!("Date: {d}\r\n"));
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\n{date}\r\n{}\r\n",
        "x".repeat(size)
    )
}

/// Alice with five messages appended over IMAP with distinct internal
/// dates (arrival order 3, 1, 5, 2, 4 by sequence number):
///
/// | seq | from    | subject            | Date (UTC)  | size |
/// |-----|---------|--------------------|-------------|------|
/// | 1   | carl    | Re: banana         | 10:00       | 400  |
/// | 2   | Anna    | apple              | none (arr.) | 100  |
/// | 3   | bob     | =?utf-8?q?=C3=84pfel?= (Äpfel) | 09:00 +0200 | 300 |
/// | 4   | dave    | [list] Fwd: cherry | 08:00       | 200  |
/// | 5   | (none)  | Banana (fwd)       | 12:00       | 500  |
///
/// (size: of the body; the header fields differ by far less.)
fn server() -> ImapServer {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    let msgs = [
        mail(
            "Carl <carl@z.example>",
            "x@example.org",
            "Re: banana",
            Some("Tue, 14 Nov 2023 10:00:00 +0000"),
            400,
        ),
        mail(
            "\"Zed\" <Anna@a.example>",
            "y@example.org",
            "apple",
            None,
            100,
        ),
        mail(
            "bob@b.example",
            "z@example.org",
            "=?utf-8?q?=C3=84pfel?=",
            Some("Tue, 14 Nov 2023 09:00:00 +0200"),
            300,
        ),
        mail(
            "dave@d.example",
            "w@example.org",
            "[list] Fwd: cherry",
            Some("Tue, 14 Nov 2023 08:00:00 +0000"),
            200,
        ),
        mail(
            "",
            "v@example.org",
            "Banana (fwd)",
            Some("Tue, 14 Nov 2023 12:00:00 +0000"),
            500,
        ),
    ];
    let dates = [
        "\"14-Nov-2023 11:00:00 +0000\"",
        "\"14-Nov-2023 13:00:00 +0000\"",
        "\"14-Nov-2023 07:00:00 +0000\"",
        "\"14-Nov-2023 14:00:00 +0000\"",
        "\"14-Nov-2023 12:00:00 +0000\"",
    ];
    let mut args: Vec<&str> = vec![ALICE[0], ALICE[1]];
    for (m, d) in msgs.iter().zip(dates.iter()) {
        args.push(m);
        args.push(d);
    }
    s.python(
        r#"
m = connect(args[0], args[1])
rest = args[2:]
for i in range(0, len(rest), 2):
    typ, _ = m.append('INBOX', None, rest[i + 1], rest[i].encode())
    assert typ == 'OK'
"#,
        &args,
    );
    s
}

/// The one untagged line of `key` that starts with `prefix`, and a check
/// that the command ended OK.
fn answer(out: &serde_json::Value, key: &str, prefix: &str) -> String {
    let l = lines(out, key);
    assert!(l.last().unwrap().contains(" OK "), "{key}: {l:?}");
    let found: Vec<&String> = l.iter().filter(|x| x.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "{key}: {l:?}");
    found[0].clone()
}

/// RFC 4731 §1, RFC 5256 §1, RFC 5957 §1: announced.
#[test]
fn capabilities_are_announced() {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    s.assert_capabilities(&ALICE, &["ESEARCH", "SORT", "SORT=DISPLAY"]);
}

/// RFC 4731 §3.1 and §2: MIN, MAX, COUNT and ALL of SEARCH and UID
/// SEARCH; `RETURN ()` is ALL; nothing found leaves out MIN, MAX and ALL
/// and says COUNT 0; the tag is quoted; a plain SEARCH still answers
/// `* SEARCH`; CHARSET and a literal work after RETURN.
#[test]
fn esearch_returns_what_was_asked() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
m.store('2,3,5', '+FLAGS', '\\Seen')
m.store('1', '+FLAGS', '\\Deleted')
m.expunge()
typ, data = m.fetch('1:*', '(UID)')
out['uids'] = s(data)
out['all'] = raw(m, 'SEARCH RETURN (MIN MAX COUNT ALL) ALL')
out['empty'] = raw(m, 'SEARCH RETURN () SEEN')
out['uid'] = raw(m, 'UID SEARCH RETURN (count all) UNSEEN')
out['none'] = raw(m, 'SEARCH RETURN (MIN MAX COUNT ALL) SUBJECT nothing-like-this')
out['uid_none'] = raw(m, 'UID SEARCH RETURN (MIN) 100')
out['plain'] = raw(m, 'SEARCH SEEN')
out['charset'] = raw(m, 'SEARCH RETURN (ALL) CHARSET UTF-8 SUBJECT banana')
tag = m._new_tag().decode()
m.send(('%s SEARCH RETURN (COUNT) CHARSET UTF-8 SUBJECT {6}\r\n' % tag).encode())
out['cont'] = s(m.readline())
m.send('Äpfel\r\n'.encode())
lit = []
while True:
    line = s(m.readline()).rstrip('\r\n')
    lit.append(line)
    if line.startswith(tag + ' '):
        break
out['literal'] = lit
"#,
        &ALICE,
    );
    // After the expunge: seq 1..4 are the old 2..5 (UIDs 2..5).
    let tag = |k: &str| {
        lines(&out, k)
            .last()
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        answer(&out, "all", "* ESEARCH"),
        format!(
            "* ESEARCH (TAG \"{}\") MIN 1 MAX 4 COUNT 4 ALL 1:4",
            tag("all")
        )
    );
    assert_eq!(
        answer(&out, "empty", "* ESEARCH"),
        format!("* ESEARCH (TAG \"{}\") ALL 1:2,4", tag("empty"))
    );
    assert_eq!(
        answer(&out, "uid", "* ESEARCH"),
        format!("* ESEARCH (TAG \"{}\") UID COUNT 1 ALL 4", tag("uid"))
    );
    assert_eq!(
        answer(&out, "none", "* ESEARCH"),
        format!("* ESEARCH (TAG \"{}\") COUNT 0", tag("none"))
    );
    assert_eq!(
        answer(&out, "uid_none", "* ESEARCH"),
        format!("* ESEARCH (TAG \"{}\") UID", tag("uid_none"))
    );
    assert_eq!(answer(&out, "plain", "* SEARCH"), "* SEARCH 1 2 4");
    assert!(
        answer(&out, "charset", "* ESEARCH").ends_with(" ALL 4"),
        "{out}"
    );
    assert!(out["cont"].as_str().unwrap().starts_with('+'), "{out}");
    let literal = lines(&out, "literal");
    assert_eq!(literal.len(), 2, "{literal:?}");
    assert!(literal[0].ends_with(" COUNT 1"), "{literal:?}");
    assert!(literal[1].contains(" OK "), "{literal:?}");
}

/// RFC 5256 §3: each sort key, REVERSE, several keys, ties in mailbox
/// order; §2.1 base subjects of decoded subjects; §2.2 DATE from the
/// Date field in UTC, the internal date without one; RFC 5957 §3
/// DISPLAYFROM by display name, addr-spec without one.
#[test]
fn sort_keys_order_the_matches() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
for k in ['ARRIVAL', 'REVERSE ARRIVAL', 'DATE', 'SIZE', 'REVERSE SIZE', 'SUBJECT',
          'SUBJECT REVERSE SIZE', 'FROM', 'REVERSE FROM', 'TO', 'CC ARRIVAL', 'CC REVERSE ARRIVAL',
          'DISPLAYFROM', 'DISPLAYTO']:
    out[k] = raw(m, 'SORT (%s) UTF-8 ALL' % k)
out['criteria'] = raw(m, 'SORT (SIZE) US-ASCII OR SUBJECT banana FROM dave')
out['nothing'] = raw(m, 'SORT (SIZE) UTF-8 SUBJECT nothing-like-this')
"#,
        &ALICE,
    );
    let sort = |k: &str| answer(&out, k, "* SORT");
    assert_eq!(sort("ARRIVAL"), "* SORT 3 1 5 2 4");
    assert_eq!(sort("REVERSE ARRIVAL"), "* SORT 4 2 5 1 3");
    // 3 is 07:00 UTC; 2 has no Date: its arrival, 13:00.
    assert_eq!(sort("DATE"), "* SORT 3 4 1 5 2");
    assert_eq!(sort("SIZE"), "* SORT 2 4 3 1 5");
    assert_eq!(sort("REVERSE SIZE"), "* SORT 5 1 3 4 2");
    // apple, Äpfel, banana, banana, cherry ("Ä" sorts after ASCII).
    assert_eq!(sort("SUBJECT"), "* SORT 2 1 5 4 3");
    assert_eq!(sort("SUBJECT REVERSE SIZE"), "* SORT 2 5 1 4 3");
    // "", anna, bob, carl, dave: local parts, case ignored.
    assert_eq!(sort("FROM"), "* SORT 5 2 3 1 4");
    assert_eq!(sort("REVERSE FROM"), "* SORT 4 1 3 2 5");
    assert_eq!(sort("TO"), "* SORT 5 4 1 2 3");
    // No Cc anywhere: all equal, so the next key decides.
    assert_eq!(sort("CC ARRIVAL"), "* SORT 3 1 5 2 4");
    assert_eq!(sort("CC REVERSE ARRIVAL"), "* SORT 4 2 5 1 3");
    // "", bob@b.example, Carl, dave@d.example, Zed.
    assert_eq!(sort("DISPLAYFROM"), "* SORT 5 3 1 4 2");
    assert_eq!(sort("DISPLAYTO"), "* SORT 5 4 1 2 3");
    assert_eq!(sort("criteria"), "* SORT 4 1 5");
    assert_eq!(sort("nothing"), "* SORT");
}

/// RFC 5256 §3: UID SORT answers UIDs, in sort order.
#[test]
fn uid_sort_answers_uids() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
m.store('3', '+FLAGS', '\\Deleted')
m.expunge()
out['uid'] = raw(m, 'UID SORT (REVERSE SIZE) UTF-8 ALL')
out['seq'] = raw(m, 'SORT (REVERSE SIZE) UTF-8 UID 1:4')
"#,
        &ALICE,
    );
    // Left: UIDs 1, 2, 4, 5 at seq 1..4; bodies 400, 100, 200, 500.
    assert_eq!(answer(&out, "uid", "* SORT"), "* SORT 5 1 4 2");
    assert_eq!(answer(&out, "seq", "* SORT"), "* SORT 1 3 2");
}

/// An encrypted message sorts and is found by its clear outer header
/// (ARCHITECTURE: Subject, From, Date stay in clear); SIZE is the
/// stored size, as FETCH RFC822.SIZE says.
#[test]
fn encrypted_messages_sort_by_their_clear_header() {
    let s = ImapServer::start();
    let (account, _) = s.encrypted_account("carol@example.org", "carol-pw");
    for subject in ["zebra", "Re: aardvark", "mole"] {
        let plain = message(
            "bob@example.net",
            "carol@example.org",
            subject,
            "secret body",
        );
        s.deliver("carol@example.org", &plain);
    }
    assert!(s
        .stored(account, "INBOX")
        .iter()
        .all(|m| m.windows(10).any(|w| w == b"pkcs7-mime")));
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.select('INBOX')
out['sort'] = raw(m, 'SORT (SUBJECT) UTF-8 ALL')
out['esearch'] = raw(m, 'SEARCH RETURN (MIN COUNT) SUBJECT mole')
"#,
        &["carol@example.org", "carol-pw"],
    );
    assert_eq!(answer(&out, "sort", "* SORT"), "* SORT 2 3 1");
    assert!(answer(&out, "esearch", "* ESEARCH").ends_with(" MIN 3 COUNT 1"));
}

/// Hostile input gets a tagged BAD or NO and the session goes on
/// (RFC 5256 §3 and RFC 4731 §3.1 grammars; RFC 9051 §6.4.4 BADCHARSET;
/// RFC 9051 §3: SORT and SEARCH need a selected mailbox).
#[test]
fn hostile_sort_and_esearch_get_a_clear_bad() {
    let s = server();
    let huge = vec!["OR SEEN"; 5000].join(" ") + " ALL";
    let deep = "(".repeat(3000) + "ALL" + &")".repeat(3000);
    let many = vec!["1"; 20000].join(" ");
    let out = s.python(
        r#"
a = imaplib.IMAP4('127.0.0.1', port)
out['anon_sort'] = raw(a, 'SORT (ARRIVAL) UTF-8 ALL')
out['anon_esearch'] = raw(a, 'SEARCH RETURN (ALL) ALL')
m = connect(args[0], args[1])
out['unselected_sort'] = raw(m, 'SORT (ARRIVAL) UTF-8 ALL')
out['unselected_esearch'] = raw(m, 'SEARCH RETURN (ALL) ALL')
m.select('INBOX')
cmds = {
  'unknown_key': 'SORT (COLOUR) UTF-8 ALL',
  'empty_keys': 'SORT () UTF-8 ALL',
  'lone_reverse': 'SORT (REVERSE) UTF-8 ALL',
  'double_reverse': 'SORT (REVERSE REVERSE DATE) UTF-8 ALL',
  'no_charset': 'SORT (DATE) ALL',
  'no_criteria': 'SORT (DATE) UTF-8',
  'bad_charset': 'SORT (DATE) KOI8-R ALL',
  'bare_sort': 'SORT',
  'repeat': 'SEARCH RETURN (MIN MIN) ALL',
  'unknown_ret': 'SEARCH RETURN (FIRST) ALL',
  'unclosed': 'SEARCH RETURN (MIN ALL',
  'no_program': 'SEARCH RETURN (MIN)',
  'bad_program': 'UID SEARCH RETURN (MIN) NOTAKEY 3',
  'ret_charset': 'SEARCH RETURN (ALL) CHARSET KOI8-R ALL',
  'garbage': 'SEARCH RETURN \x01\x02 ((((',
  'huge': 'SEARCH RETURN (COUNT) ' + args[2],
  'huge_sort': 'SORT (DATE) UTF-8 ' + args[2],
  'deep': 'SEARCH RETURN (COUNT) ' + args[3],
  'many': 'SORT (SUBJECT) UTF-8 ' + args[4],
}
for k, c in cmds.items():
    out[k] = raw(m, c)
out['after'] = raw(m, 'NOOP')
"#,
        &[ALICE[0], ALICE[1], &huge, &deep, &many],
    );
    let last = |k: &str| lines(&out, k).last().unwrap().clone();
    let refused = |k: &str| {
        let l = last(k);
        assert!(l.contains(" BAD ") || l.contains(" NO "), "{k}: {out}");
        assert!(
            lines(&out, k)
                .iter()
                .all(|x| !x.starts_with("* SORT") && !x.starts_with("* ESEARCH")),
            "{k}: {out}"
        );
    };
    for k in [
        "anon_sort",
        "anon_esearch",
        "unselected_sort",
        "unselected_esearch",
        "unknown_key",
        "empty_keys",
        "lone_reverse",
        "double_reverse",
        "no_charset",
        "no_criteria",
        "bad_charset",
        "bare_sort",
        "repeat",
        "unknown_ret",
        "unclosed",
        "no_program",
        "bad_program",
        "ret_charset",
        "garbage",
    ] {
        refused(k);
    }
    assert!(last("repeat").contains("MIN given twice"), "{out}");
    assert!(last("unknown_ret").contains("FIRST"), "{out}");
    assert!(last("bad_charset").contains("[BADCHARSET"), "{out}");
    assert!(last("ret_charset").contains("[BADCHARSET"), "{out}");
    // Large but well-formed criteria are answered or refused, never fatal.
    for k in ["huge", "huge_sort", "deep", "many"] {
        let l = last(k);
        assert!(
            l.contains(" OK ") || l.contains(" BAD ") || l.contains(" NO "),
            "{k}: {l}"
        );
    }
    assert!(last("after").contains(" OK "), "{out}");
}

/// RFC 5182 §2.1, §2.2, §2.4: `SEARCH RETURN (SAVE)` answers no ESEARCH
/// and keeps the result; `$` then stands for it in FETCH, UID FETCH,
/// STORE, SEARCH (also as `UID $`) and SORT; an expunged message drops
/// out; SAVE with MIN/MAX keeps only those; a failed SEARCH ... SAVE
/// empties it; SELECT resets it; `$` in a quoted string is just text.
#[test]
fn searchres_saves_and_dollar_reuses() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
out['caps'] = s(m.capability()[1][0])
m.select('INBOX')
m.store('2,4', '+FLAGS', '\\Seen')
out['save'] = raw(m, 'SEARCH RETURN (SAVE) SEEN')
out['fetch'] = raw(m, 'FETCH $ (FLAGS)')
out['uid_fetch'] = raw(m, 'UID FETCH $ (UID)')
out['search'] = raw(m, 'SEARCH $')
out['uid_key'] = raw(m, 'UID SEARCH UID $ SEEN')
out['sort'] = raw(m, 'SORT (REVERSE ARRIVAL) UTF-8 $')
out['store'] = raw(m, 'STORE $ +FLAGS (\\Flagged)')
out['flagged'] = raw(m, 'SEARCH FLAGGED')
out['quoted'] = raw(m, 'SEARCH SUBJECT "$"')
m.store('2', '+FLAGS', '\\Deleted')
m.expunge()
out['after_expunge'] = raw(m, 'FETCH $ (UID)')
out['minmax'] = raw(m, 'UID SEARCH RETURN (SAVE MIN MAX) ALL')
out['minmax_fetch'] = raw(m, 'UID FETCH $ (UID)')
out['fail'] = raw(m, 'SEARCH RETURN (SAVE) CHARSET KOI8-R ALL')
out['empty'] = raw(m, 'FETCH $ (UID)')
out['empty_search'] = raw(m, 'SEARCH RETURN (COUNT) $')
m.search(None, 'RETURN', '(SAVE)', 'ALL')
m.select('INBOX')
out['reselect'] = raw(m, 'UID FETCH $ (UID)')
out['twice'] = raw(m, 'SEARCH RETURN (SAVE SAVE) ALL')
out['garbage'] = raw(m, 'FETCH $ $ (')
"#,
        &ALICE,
    );
    let caps = out["caps"].as_str().unwrap();
    assert!(caps.split(' ').any(|c| c == "SEARCHRES"), "{caps}");
    let l = |k: &str| lines(&out, k);
    let ok = |k: &str| assert!(l(k).last().unwrap().contains(" OK "), "{k}: {out}");
    for k in ["save", "fetch", "uid_fetch", "store", "fail"] {
        if k != "fail" {
            ok(k);
        }
    }
    assert_eq!(l("save").len(), 1, "{out}");
    let fetched: Vec<String> = l("fetch")
        .into_iter()
        .filter(|x| x.starts_with("* "))
        .map(|x| x.split(' ').nth(1).unwrap().to_string())
        .collect();
    assert_eq!(fetched, ["2", "4"], "{out}");
    assert_eq!(
        l("uid_fetch")
            .iter()
            .filter(|x| x.contains("FETCH (UID"))
            .count(),
        2,
        "{out}"
    );
    assert_eq!(answer(&out, "search", "* SEARCH"), "* SEARCH 2 4");
    assert_eq!(answer(&out, "uid_key", "* SEARCH"), "* SEARCH 2 4");
    assert_eq!(answer(&out, "sort", "* SORT"), "* SORT 4 2");
    assert_eq!(answer(&out, "flagged", "* SEARCH"), "* SEARCH 2 4");
    assert_eq!(answer(&out, "quoted", "* SEARCH"), "* SEARCH");
    // UID 2 is gone; UID 4 is now message 3.
    let after: Vec<String> = l("after_expunge")
        .into_iter()
        .filter(|x| x.starts_with("* "))
        .collect();
    assert_eq!(after, ["* 3 FETCH (UID 4)"], "{out}");
    assert!(
        answer(&out, "minmax", "* ESEARCH").ends_with(" UID MIN 1 MAX 5"),
        "{out}"
    );
    let minmax: Vec<String> = l("minmax_fetch")
        .into_iter()
        .filter(|x| x.starts_with("* "))
        .collect();
    assert_eq!(minmax, ["* 1 FETCH (UID 1)", "* 4 FETCH (UID 5)"], "{out}");
    assert!(l("fail").last().unwrap().contains(" NO "), "{out}");
    assert_eq!(l("empty").len(), 1, "{out}");
    assert!(l("empty").last().unwrap().contains(" OK "), "{out}");
    assert!(
        answer(&out, "empty_search", "* ESEARCH").ends_with(" COUNT 0"),
        "{out}"
    );
    assert_eq!(l("reselect").len(), 1, "{out}");
    assert!(l("reselect").last().unwrap().contains(" OK "), "{out}");
    assert!(l("twice").last().unwrap().contains(" BAD "), "{out}");
    assert!(l("garbage").last().unwrap().contains(" BAD "), "{out}");
}
