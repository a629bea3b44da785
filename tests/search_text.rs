//! Search that finds what users see (issue 17 item 4, issue 18 item 4):
//! the real `sealmail serve`, mail delivered over LMTP, searched with
//! Python's `imaplib` (IMAP SEARCH, RFC 9051 §6.4.4) and over JMAP
//! (`Email/query`, RFC 8621 §4.4.1). Subjects in RFC 2047 encoded words,
//! bodies in quoted-printable Latin-1 and base64 HTML, a forwarded
//! message, non-ASCII case: each is found by the text a reader sees and
//! not by its wire form. On an encrypted account the clear header fields
//! are found and the body (ciphertext) is not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::server::Server;

const ALICE: (&str, &str) = ("alice@example.org", "alice-pw");
const BOB: (&str, &str) = ("bob@example.org", "bob-pw");

/// UID 1: encoded subject, quoted-printable Latin-1 body.
const COLOGNE: &str = "From: sender@example.net\r\n\
To: someone@example.org\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\
Message-ID: <m1@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Wir wohnen in der Hauptstra=DFe 5.\r\n";

/// UID 2: encoded display name, base64 HTML inside an alternative.
const TRANSFER: &str = "From: =?ISO-8859-1?Q?J=FCrgen_Meier?= <j@example.net>\r\n\
To: someone@example.org\r\n\
Subject: Plain subject\r\n\
Message-ID: <m2@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+RGllIDxiPsOcYmVyd2Vpc3VuZzwvYj4gaXN0IGRhLjwvcD4=\r\n\
--b1--\r\n";

/// UID 3: nothing to find but a Bcc and a custom field, both encoded.
const CONTROL: &str = "From: other@example.net\r\n\
To: someone@example.org\r\n\
Bcc: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.org>\r\n\
X-Project: =?UTF-8?Q?W=C3=A4rmepumpe?=\r\n\
Subject: nothing here\r\n\
Message-ID: <m3@example.net>\r\n\
\r\n\
Just a line.\r\n";

/// UID 4: a forwarded message whose own subject is encoded.
const FORWARD: &str = "From: fwd@example.net\r\n\
To: someone@example.org\r\n\
Subject: Fwd\r\n\
Message-ID: <m4@example.net>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
From: inner@example.net\r\n\
Subject: =?UTF-8?Q?=C3=84rger_im_B=C3=BCro?=\r\n\
\r\n\
inner words\r\n";

/// UID 5: hostile nesting (over the parser's container limit): not
/// walked, its raw body searched instead, answered at once.
fn hostile() -> String {
    let mut m = String::from("From: h@example.net\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
    for i in 0..400 {
        m.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"q{i}\"\r\n\r\n--q{i}\r\n"
        ));
    }
    m.push_str("Content-Type: text/plain\r\n\r\nburied\r\n");
    m
}

/// `search(conn, charset, key, text)`: `UID SEARCH [CHARSET c] key {n}`
/// with the text as a literal (UTF-8 bytes), as clients send non-ASCII.
const SEARCH: &str = r#"
import imaplib, json, sys
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
queries = json.loads(sys.argv[4])
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
m.select("INBOX")
out = []
for charset, key, text in queries:
    m.literal = text.encode("utf-8")
    args = (["CHARSET", charset] if charset else []) + [key]
    try:
        typ, data = m.uid("SEARCH", *args)
        out.append([typ, (data[0] or b"").decode()])
    except imaplib.IMAP4.error as e:
        out.append(["NO", str(e)])
m.logout()
print(json.dumps(out))
"#;

fn imap_search(s: &Server, user: (&str, &str), queries: &[(&str, &str, &str)]) -> Vec<Value> {
    let q: Vec<Value> = queries.iter().map(|(c, k, t)| json!([c, k, t])).collect();
    let out = support::tools::python(
        SEARCH,
        &[
            &s.imap_port.to_string(),
            user.0,
            user.1,
            &serde_json::to_string(&q).unwrap(),
        ],
    );
    serde_json::from_str::<Vec<Value>>(out.lines().last().unwrap()).unwrap()
}

/// The UIDs an `Email/query` with `filter` finds, read from the Email
/// ids' `receivedAt` order (UID order here: one delivery at a time).
fn jmap_found(s: &Server, user: (&str, &str), filter: Value) -> Vec<String> {
    let j = s.jmap(user.0, user.1);
    let all = j.call("Email/query", json!({"sort": [{"property": "receivedAt"}]}));
    let order: Vec<String> = all["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let r = j.call("Email/query", json!({ "filter": filter }));
    let ids = r["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("Email/query {filter}: {r}"));
    ids.iter()
        .map(|id| {
            let pos = order.iter().position(|o| Some(o.as_str()) == id.as_str());
            (pos.unwrap() + 1).to_string()
        })
        .collect()
}

fn server() -> Server {
    let s = Server::start();
    s.account_with_password(ALICE.0, ALICE.1);
    for m in [COLOGNE, TRANSFER, CONTROL, FORWARD, &hostile()] {
        s.lmtp_send(ALICE.0, m.as_bytes());
    }
    s
}

#[test]
fn imap_search_decodes_words_encodings_charsets_and_case() {
    let s = server();
    let found = imap_search(
        &s,
        ALICE,
        &[
            ("UTF-8", "SUBJECT", "Köln"),
            ("UTF-8", "SUBJECT", "KÖLN"),
            ("", "SUBJECT", "aus"),
            ("UTF-8", "BODY", "hauptstraße"),
            ("", "BODY", "Stra=DFe"),
            ("UTF-8", "BODY", "Überweisung"),
            ("", "BODY", "<b>"),
            ("UTF-8", "TEXT", "überweisung"),
            ("UTF-8", "FROM", "Jürgen"),
            ("UTF-8", "BCC", "zoë"),
            ("UTF-8", "HEADER X-Project", "wärmepumpe"),
            ("UTF-8", "TEXT", "ärger im büro"),
            ("", "TEXT", "inner words"),
            ("UTF-8", "TEXT", "grüße"),
            ("", "BODY", "buried"),
            ("", "TEXT", "deep"),
            ("ISO-8859-1", "SUBJECT", "x"),
        ],
    );
    let expect = [
        "1", "1", "1", "1", "", "2", "", "2", "2", "3", "3", "4", "4", "1", "5", "5",
    ];
    for (i, want) in expect.iter().enumerate() {
        assert_eq!(found[i], json!(["OK", want]), "query {i}: {found:?}");
    }
    let bad = found[16][1].as_str().unwrap();
    assert_eq!(found[16][0], "NO", "{found:?}");
    assert!(bad.contains("BADCHARSET") && bad.contains("UTF-8"), "{bad}");
}

#[test]
fn jmap_filters_find_the_same_messages() {
    let s = server();
    let cases = [
        (json!({"subject": "Grüße"}), vec!["1"]),
        (json!({"subject": "KÖLN"}), vec!["1"]),
        (json!({"body": "hauptstraße"}), vec!["1"]),
        (json!({"body": "Stra=DFe"}), vec![]),
        (json!({"text": "überweisung"}), vec!["2"]),
        (json!({"from": "jürgen"}), vec!["2"]),
        (json!({"bcc": "Zoë"}), vec!["3"]),
        (json!({"header": ["X-Project", "wärmepumpe"]}), vec!["3"]),
        (json!({"header": ["X-Project"]}), vec!["3"]),
        (json!({"text": "ärger"}), vec!["4"]),
        (json!({"body": "buried"}), vec!["5"]),
        (
            json!({"operator": "OR", "conditions": [{"subject": "köln"}, {"body": "überweisung"}]}),
            vec!["1", "2"],
        ),
    ];
    for (filter, want) in cases {
        let mut got = jmap_found(&s, ALICE, filter.clone());
        got.sort();
        assert_eq!(got, want, "filter {filter}");
    }
}

#[test]
fn encrypted_accounts_search_their_clear_header_only() {
    let s = Server::start();
    s.account_with_password(BOB.0, BOB.1);
    let keys = support::pki::pair(BOB.0, 2048);
    s.ok(&["cert", "add", BOB.0, keys.cert.to_str().unwrap()]);
    s.ok(&["encryption", "enable", BOB.0]);
    s.lmtp_send(BOB.0, COLOGNE.as_bytes());
    s.lmtp_send(BOB.0, TRANSFER.as_bytes());
    let stored = s.inbox(BOB.0);
    assert!(
        stored
            .iter()
            .all(|m| !String::from_utf8_lossy(m).contains("Hauptstra")),
        "bodies are stored encrypted"
    );
    let found = imap_search(
        &s,
        BOB,
        &[
            ("UTF-8", "SUBJECT", "köln"),
            ("UTF-8", "TEXT", "köln"),
            ("UTF-8", "FROM", "jürgen"),
            ("UTF-8", "BODY", "hauptstraße"),
            ("UTF-8", "TEXT", "hauptstraße"),
            ("UTF-8", "TEXT", "überweisung"),
        ],
    );
    let expect = ["1", "1", "2", "", "", ""];
    for (i, want) in expect.iter().enumerate() {
        assert_eq!(found[i], json!(["OK", want]), "query {i}: {found:?}");
    }
    assert_eq!(jmap_found(&s, BOB, json!({"subject": "grüße"})), vec!["1"]);
    assert_eq!(jmap_found(&s, BOB, json!({"text": "köln"})), vec!["1"]);
    assert!(jmap_found(&s, BOB, json!({"body": "hauptstraße"})).is_empty());
    // Another account's messages are never in the answer.
    s.account_with_password(ALICE.0, ALICE.1);
    assert!(jmap_found(&s, ALICE, json!({"subject": "grüße"})).is_empty());
    let found = imap_search(&s, ALICE, &[("UTF-8", "SUBJECT", "köln")]);
    assert_eq!(found[0], json!(["OK", ""]));
}
