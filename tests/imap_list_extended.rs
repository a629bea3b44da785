//! LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), SPECIAL-USE's LIST
//! options (RFC 6154 §4) and STATUS=SIZE (RFC 8438) against the real
//! server, driven by Python's `imaplib` over a socket (raw lines where
//! the order and exact shape of the answer matter). `tests/imaptest.rs`
//! runs imaptest's `listext` script on top.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::imap::{lines, message, ImapServer};

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

/// Alice with `Lists` (unsubscribed), `Lists/a` (subscribed) and
/// `Lists/b` (not), besides the default mailboxes.
fn server() -> ImapServer {
    let s = ImapServer::start();
    s.account(ALICE[0], ALICE[1]);
    s.python(
        r#"
m = connect(args[0], args[1])
m.create('Lists/a')
m.create('Lists/b')
m.subscribe('Lists/a')
"#,
        &ALICE,
    );
    s
}

/// RFC 5258 §1, RFC 5819 §1, RFC 6154 §1, RFC 8438 §1: announced.
#[test]
fn capabilities_are_announced() {
    let s = server();
    s.assert_capabilities(
        &ALICE,
        &["LIST-EXTENDED", "LIST-STATUS", "SPECIAL-USE", "STATUS=SIZE"],
    );
}

/// RFC 5258 §3: several patterns, each mailbox once; SUBSCRIBED selects
/// subscribed names and marks them `\Subscribed`; RETURN (SUBSCRIBED
/// CHILDREN) marks without selecting.
#[test]
fn patterns_and_subscribed_selection_and_return() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
out['multi'] = raw(m, 'LIST "" ("Lists/*" "Lists/a" INBOX)')
out['subscribed'] = raw(m, 'LIST (SUBSCRIBED) "" "Lists/*"')
out['returns'] = raw(m, 'LIST "" "Lists" RETURN (SUBSCRIBED CHILDREN)')
out['returns_a'] = raw(m, 'list "" Lists/% return (subscribed)')
out['remote'] = raw(m, 'LIST (REMOTE) "" "Lists/b"')
out['lsub'] = raw(m, 'LSUB "" "Lists/%"')
"#,
        &ALICE,
    );
    let multi = lines(&out, "multi");
    assert_eq!(multi.len(), 4, "{multi:?}");
    assert!(multi.iter().any(|l| l.ends_with(" INBOX")), "{multi:?}");
    let a = multi.iter().filter(|l| l.ends_with(" Lists/a")).count();
    assert_eq!(a, 1, "{multi:?}");
    let subscribed = lines(&out, "subscribed");
    assert_eq!(subscribed.len(), 2, "{subscribed:?}");
    assert!(subscribed[0].contains("\\Subscribed") && subscribed[0].contains("Lists/a"));
    let returns = lines(&out, "returns");
    assert!(
        returns[0].contains("\\HasChildren") && !returns[0].contains("\\Subscribed"),
        "{returns:?}"
    );
    let returns_a = lines(&out, "returns_a");
    assert_eq!(returns_a.len(), 3, "{returns_a:?}");
    assert!(returns_a
        .iter()
        .any(|l| l.contains("\\Subscribed") && l.contains("Lists/a")));
    assert!(returns_a
        .iter()
        .any(|l| !l.contains("\\Subscribed") && l.contains("Lists/b")));
    assert_eq!(lines(&out, "remote").len(), 2);
    let lsub = lines(&out, "lsub");
    assert!(
        lsub[0].starts_with("* LSUB") && lsub[0].contains("Lists/a"),
        "{lsub:?}"
    );
}

/// RFC 5258 §3.5: with RECURSIVEMATCH a parent that is not subscribed
/// is listed with CHILDINFO when a subscribed child is not listed itself,
/// and not when the child is.
#[test]
fn recursivematch_gives_childinfo() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
out['hidden'] = raw(m, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Lists" RETURN (CHILDREN)')
out['shown'] = raw(m, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" ("Lists" "Lists/a")')
"#,
        &ALICE,
    );
    let hidden = lines(&out, "hidden");
    assert_eq!(
        hidden[0], r#"* LIST (\HasChildren) "/" Lists ("CHILDINFO" ("SUBSCRIBED"))"#,
        "{hidden:?}"
    );
    assert!(hidden[1].contains(" OK "), "{hidden:?}");
    let shown = lines(&out, "shown");
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(shown[0].contains("Lists/a") && !shown[0].contains("CHILDINFO"));
}

/// RFC 3501 §6.3.6 and RFC 5258 §3: a subscription outlives DELETE;
/// `LIST (SUBSCRIBED)` shows it `\NonExistent`, LSUB shows it, a plain
/// LIST and RETURN (STATUS) skip it, CREATE takes it back, UNSUBSCRIBE
/// ends it.
#[test]
fn a_subscription_outlives_its_mailbox() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
m.create('Gone')
m.create('Gone/child')
m.subscribe('Gone/child')
m.subscribe('Lists/b')
m.delete('Lists/b')
m.delete('Gone/child')
m.delete('Gone')
out['sub'] = raw(m, 'LIST (SUBSCRIBED) "" "Lists/*" RETURN (STATUS (MESSAGES))')
out['recursive'] = raw(m, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Gone"')
out['plain'] = raw(m, 'LIST "" "Lists/*"')
out['lsub'] = raw(m, 'LSUB "" "Lists/*"')
m.create('Lists/b')
out['recreated'] = raw(m, 'LIST "" "Lists/b" RETURN (SUBSCRIBED)')
m.delete('Lists/b')
out['unsub'] = raw(m, 'UNSUBSCRIBE Lists/b')
out['unsub_again'] = raw(m, 'UNSUBSCRIBE Lists/b')
out['after'] = raw(m, 'LIST (SUBSCRIBED) "" "Lists/*"')
"#,
        &ALICE,
    );
    let sub = lines(&out, "sub");
    assert_eq!(sub.len(), 4, "{sub:?}");
    assert!(
        sub.contains(&r#"* LIST (\NonExistent \Subscribed) "/" Lists/b"#.to_string()),
        "{sub:?}"
    );
    assert!(
        !sub.iter().any(|l| l.starts_with("* STATUS Lists/b")),
        "{sub:?}"
    );
    assert_eq!(
        lines(&out, "recursive")[0],
        r#"* LIST (\NonExistent) "/" Gone ("CHILDINFO" ("SUBSCRIBED"))"#,
        "{out}"
    );
    assert!(
        !lines(&out, "plain").iter().any(|l| l.contains("Lists/b")),
        "{out}"
    );
    assert!(lines(&out, "lsub")
        .iter()
        .any(|l| l.starts_with("* LSUB") && l.ends_with(" Lists/b")));
    assert!(
        lines(&out, "recreated")[0].contains("\\Subscribed"),
        "{out}"
    );
    assert!(lines(&out, "unsub")[0].contains(" OK "), "{out}");
    assert!(lines(&out, "unsub_again")[0].contains(" NO "), "{out}");
    assert_eq!(lines(&out, "after").len(), 2, "{out}");
}

/// RFC 5819 §2: each listed mailbox's STATUS follows its LIST line, with
/// the items asked, SIZE (RFC 8438) among them.
#[test]
fn list_status_follows_each_mailbox() {
    let s = server();
    let id = s.store.account_by_address(ALICE[0]).unwrap().id;
    let one = message("bob@example.net", ALICE[0], "one", "first");
    let two = message("bob@example.net", ALICE[0], "two", "second body");
    s.append(id, "Lists/a", &one);
    s.append(id, "Lists/a", &two);
    let out = s.python(
        r#"
m = connect(args[0], args[1])
out['ls'] = raw(m, 'LIST "" "Lists*" RETURN (STATUS (MESSAGES UNSEEN SIZE))')
"#,
        &ALICE,
    );
    let ls = lines(&out, "ls");
    let size = one.len() + two.len();
    assert_eq!(ls.len(), 7, "{ls:?}");
    for pair in ls[..6].chunks(2) {
        assert!(pair[0].starts_with("* LIST"), "{ls:?}");
        assert!(pair[1].starts_with("* STATUS"), "{ls:?}");
        let name = pair[0].rsplit(' ').next().unwrap();
        assert!(pair[1].starts_with(&format!("* STATUS {name} (")), "{ls:?}");
    }
    assert!(
        ls.contains(&format!(
            "* STATUS Lists/a (MESSAGES 2 UNSEEN 2 SIZE {size})"
        )),
        "{ls:?}"
    );
    assert!(ls.contains(&"* STATUS Lists/b (MESSAGES 0 UNSEEN 0 SIZE 0)".to_string()));
}

/// RFC 6154 §4: the SPECIAL-USE selection option lists only mailboxes
/// with a special use; the return option gives the attributes.
#[test]
fn special_use_selection_and_return() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
out['sel'] = raw(m, 'LIST (SPECIAL-USE) "" *')
out['ret'] = raw(m, 'LIST "" "Sent" RETURN (SPECIAL-USE)')
"#,
        &ALICE,
    );
    let sel = lines(&out, "sel");
    let listed: Vec<&str> = sel[..sel.len() - 1]
        .iter()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["Archive", "Drafts", "Junk", "Sent", "Trash"],
        "{sel:?}"
    );
    assert!(lines(&out, "ret")[0].contains("\\Sent"));
}

/// RFC 8438 §3: STATUS SIZE is the sum of RFC822.SIZE, and stays so
/// through APPEND, COPY, MOVE and EXPUNGE.
#[test]
fn status_size_follows_append_copy_move_expunge() {
    let s = server();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
def size(box):
    return int(re.search(r'SIZE (\d+)', s(m.status(box, '(SIZE)')[1][0])).group(1))
def fetched(box):
    m.select(box, readonly=True)
    typ, data = m.fetch('1:*', '(RFC822.SIZE)')
    total = sum(int(re.search(r'RFC822.SIZE (\d+)', s(d)).group(1)) for d in data if d)
    m.close()
    return total
for i in range(3):
    m.append('Lists/a', None, None, ('Subject: m%d\r\n\r\n%s\r\n' % (i, 'x' * (100 * i))).encode())
out['after_append'] = [size('Lists/a'), fetched('Lists/a')]
m.select('Lists/a')
m.copy('1', 'Lists/b')
out['after_copy'] = [size('Lists/a'), size('Lists/b'), fetched('Lists/b')]
m.select('Lists/a')
m._simple_command('MOVE', '2', 'Lists/b')
out['after_move'] = [size('Lists/a'), fetched('Lists/a'), size('Lists/b'), fetched('Lists/b')]
m.select('Lists/a')
m.store('1:*', '+FLAGS', '\\Deleted')
m.expunge()
m.close()
out['after_expunge'] = [size('Lists/a'), size('Lists/b'), fetched('Lists/b')]
"#,
        &ALICE,
    );
    let v = |k: &str| -> Vec<u64> {
        out[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_u64().unwrap())
            .collect()
    };
    let a = v("after_append");
    assert!(a[0] > 0 && a[0] == a[1], "{out}");
    let c = v("after_copy");
    assert_eq!(c[0], a[0]);
    assert_eq!(c[1], c[2]);
    let m = v("after_move");
    assert_eq!((m[0], m[2]), (m[1], m[3]), "{out}");
    assert_eq!(m[0] + m[2], a[0] + c[1], "{out}");
    assert_eq!(v("after_expunge"), [0, m[3], m[3]], "{out}");
}

/// RFC 8438 §3 for an account with encryption at rest: SIZE is the
/// stored (S/MIME) size, the same as FETCH RFC822.SIZE.
#[test]
fn status_size_of_an_encrypted_account_is_the_stored_size() {
    let s = ImapServer::start();
    let (account, _) = s.encrypted_account("carol@example.org", "carol-pw");
    let plain = message("bob@example.net", "carol@example.org", "secret", "body");
    s.deliver("carol@example.org", &plain);
    let stored: usize = s.stored(account, "INBOX").iter().map(Vec::len).sum();
    let out = s.python(
        r#"
m = connect(args[0], args[1])
out['status'] = s(m.status('INBOX', '(SIZE)')[1][0])
m.select('INBOX', readonly=True)
out['fetch'] = s(m.fetch('1', '(RFC822.SIZE)')[1][0])
"#,
        &["carol@example.org", "carol-pw"],
    );
    assert!(stored > plain.len());
    assert!(
        out["status"]
            .as_str()
            .unwrap()
            .contains(&format!("SIZE {stored})")),
        "{out}"
    );
    assert!(
        out["fetch"]
            .as_str()
            .unwrap()
            .contains(&format!("RFC822.SIZE {stored}")),
        "{out}"
    );
}

/// Hostile input gets a tagged BAD that says what is wrong, the session
/// goes on, and nothing is listed before login (RFC 5258 §3: unknown
/// options are BAD; RFC 9051 §6.3.11 for STATUS).
#[test]
fn hostile_list_and_status_get_a_clear_bad() {
    let s = server();
    let many = vec!["x"; 65].join(" ");
    let long = "%*".repeat(2000);
    let out = s.python(
        r#"
a = imaplib.IMAP4('127.0.0.1', port)
out['anon'] = raw(a, 'LIST (SUBSCRIBED) "" *')
m = connect(args[0], args[1])
out['many'] = raw(m, 'LIST "" (' + args[2] + ')')
out['ok64'] = raw(m, 'LIST "" (' + ' '.join(['x'] * 64) + ')')
out['long'] = raw(m, 'LIST "" ("' + args[3] + '")')
out['long_plain'] = raw(m, 'LIST "" "' + args[3] + '"')
out['repeat'] = raw(m, 'LIST "" * RETURN (CHILDREN CHILDREN)')
out['unknown_ret'] = raw(m, 'LIST "" * RETURN (FOO)')
out['unknown_sel'] = raw(m, 'LIST (FOO) "" *')
out['lone'] = raw(m, 'LIST (RECURSIVEMATCH) "" *')
out['bad_item'] = raw(m, 'LIST "" * RETURN (STATUS (MESSAGES FOO))')
out['status_item'] = raw(m, 'STATUS INBOX (MESSAGES FOO)')
out['unclosed'] = raw(m, 'LIST "" ("a" "b"')
m.send(b'L1 LIST (SUBSCRIBED) "" {7}\r\n')
out['cont'] = s(m.readline())
m.send(b'Lists/a RETURN (STATUS (MESSAGES))\r\n')
lit = []
while True:
    line = s(m.readline()).rstrip('\r\n')
    lit.append(line)
    if line.startswith('L1 '):
        break
out['literal'] = lit
out['after'] = raw(m, 'LIST "" INBOX')
"#,
        &[ALICE[0], ALICE[1], &many, &long],
    );
    let last = |k: &str| lines(&out, k).last().unwrap().clone();
    assert!(
        last("anon").contains(" BAD ") || last("anon").contains(" NO "),
        "{out}"
    );
    assert_eq!(lines(&out, "anon").len(), 1, "{out}");
    assert!(
        last("many").contains(" BAD ") && last("many").contains("more than 64"),
        "{out}"
    );
    assert!(last("ok64").contains(" OK "), "{out}");
    assert!(
        last("long").contains(" BAD ") && last("long").contains("over 2048"),
        "{out}"
    );
    assert!(last("long_plain").contains(" BAD "), "{out}");
    assert!(last("repeat").contains(" BAD ") && last("repeat").contains("CHILDREN given twice"));
    assert!(last("unknown_ret").contains(" BAD ") && last("unknown_ret").contains("FOO"));
    assert!(last("unknown_sel").contains(" BAD ") && last("unknown_sel").contains("FOO"));
    assert!(last("lone").contains(" BAD ") && last("lone").contains("RECURSIVEMATCH"));
    assert!(last("bad_item").contains(" BAD ") && last("bad_item").contains("FOO"));
    assert!(last("status_item").contains(" BAD ") && last("status_item").contains("SIZE"));
    assert!(last("unclosed").contains(" BAD "), "{out}");
    assert!(out["cont"].as_str().unwrap().starts_with('+'), "{out}");
    let literal = lines(&out, "literal");
    assert_eq!(literal.len(), 3, "{literal:?}");
    assert!(literal[0].contains("\\Subscribed") && literal[1].starts_with("* STATUS Lists/a"));
    assert!(last("after").contains(" OK "), "{out}");
}
