//! JMAP queries against the real `sealmail serve` (issue 18 item 4):
//! `Email/query` sorts and `collapseThreads` (RFC 8621 §4.4.2, §4.4.3),
//! `Email/queryChanges` (RFC 8620 §5.6) checked the way a client uses
//! it — its cached ids, minus `removed`, plus `added` by index, must be
//! the ids a fresh query returns — and `SearchSnippet/get` (RFC 8621
//! §5.1). Mail comes in through `Email/import` (so that `receivedAt` is
//! the test's to choose), LMTP and IMAP-free JMAP `Email/set`; every
//! call is JSON over HTTP to the session's `apiUrl`. Hostile callers:
//! unknown sorts and collations, bogus and future query states, another
//! account's Email ids, too many ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};

use support::server::{JmapUser, Server};

const ALICE: (&str, &str) = ("alice@example.org", "alice-pw");
const BOB: (&str, &str) = ("bob@example.org", "bob-pw");

fn start(users: &[(&str, &str)]) -> Server {
    let s = Server::start();
    for (u, p) in users {
        s.account_with_password(u, p);
    }
    s
}

fn mailbox(user: &JmapUser, role: &str) -> String {
    let q = user.call("Mailbox/query", json!({ "filter": { "role": role } }));
    q["ids"][0].as_str().unwrap().to_string()
}

/// Imports `raw` into `mailbox` with `receivedAt` and `keywords`;
/// returns the Email id.
fn import(user: &JmapUser, raw: &str, mailbox: &str, received: &str, keywords: &[&str]) -> String {
    let blob = user.upload(raw.as_bytes().to_vec());
    let kw: serde_json::Map<String, Value> = keywords
        .iter()
        .map(|k| (k.to_string(), json!(true)))
        .collect();
    let r = user.call(
        "Email/import",
        json!({ "emails": { "m": {
            "blobId": blob, "mailboxIds": { mailbox: true },
            "receivedAt": received, "keywords": kw,
        } } }),
    );
    r["created"]["m"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("import: {r}"))
        .to_string()
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list of ids: {v}"))
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect()
}

fn query(user: &JmapUser, args: Value) -> Value {
    let r = user.call("Email/query", args.clone());
    assert!(r["ids"].is_array(), "Email/query {args}: {r}");
    r
}

fn sorted_by(user: &JmapUser, sort: Value) -> Vec<String> {
    ids(&query(user, json!({ "sort": sort }))["ids"])
}

/// The method error type of a one-call request, or "" when it succeeded.
fn error_type(user: &JmapUser, method: &str, args: Value) -> String {
    let r = user.calls(json!([[method, args, "c"]]));
    match r[0][0].as_str() {
        Some("error") => r[0][1]["type"].as_str().unwrap().to_string(),
        _ => String::new(),
    }
}

fn message(from: &str, to: &str, subject: &str, date: Option<&str>, body_len: usize) -> String {
    let mut m = format!("From: {from}\r\n");
    if !to.is_empty() {
        m.push_str(&format!("To: {to}\r\n"));
    }
    m.push_str(&format!("Subject: {subject}\r\n"));
    if let Some(d) = date {
        m.push_str(&format!("Date: {d}\r\n"));
    }
    m.push_str("\r\n");
    for _ in 0..body_len / 50 {
        m.push_str(&"x".repeat(48));
        m.push_str("\r\n");
    }
    m
}

/// Four Emails that each sort differently; returns their ids.
fn four(user: &JmapUser) -> [String; 4] {
    let inbox = mailbox(user, "inbox");
    let raws = [
        // 1: sent last, name "Zed", to b@x, base subject "banana".
        message(
            "Zed <a@example.net>",
            "b@example.net",
            "Re: banana",
            Some("Fri, 1 Mar 2024 10:00:00 +0000"),
            1000,
        ),
        // 2: no display name, to "Alice", "apple".
        message(
            "<m@example.net>",
            "Alice <z@example.net>",
            "APPLE",
            Some("Thu, 1 Feb 2024 10:00:00 +0000"),
            2000,
        ),
        // 3: no Date (sorts by receivedAt), encoded subject after Fwd:.
        message(
            "carol <c@example.net>",
            "yak@example.net",
            "Fwd: =?UTF-8?Q?Cherry?=",
            None,
            3000,
        ),
        // 4: a Date that is not one, no To, a list tag.
        message(
            "bob <q@example.net>",
            "",
            "[list] date",
            Some("yesterday"),
            0,
        ),
    ];
    let flagged: [&[&str]; 4] = [&[], &["$flagged"], &[], &["$flagged"]];
    let mut out: Vec<String> = Vec::new();
    for (i, raw) in raws.iter().enumerate() {
        let received = format!("2024-01-0{}T12:00:00Z", i + 1);
        out.push(import(user, raw, &inbox, &received, flagged[i]));
    }
    out.try_into().unwrap()
}

#[test]
fn rfc8621_4_4_2_every_sort_property_both_ways() {
    let s = start(&[ALICE]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    let [m1, m2, m3, m4] = four(&alice);
    let order = |want: [&String; 4]| want.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let by = |p: &str, asc: bool| sorted_by(&alice, json!([{ "property": p, "isAscending": asc }]));

    assert_eq!(by("receivedAt", true), order([&m1, &m2, &m3, &m4]));
    assert_eq!(by("receivedAt", false), order([&m4, &m3, &m2, &m1]));
    // sentAt: no Date or a broken one counts as receivedAt (RFC 5256 §3).
    assert_eq!(by("sentAt", true), order([&m3, &m4, &m2, &m1]));
    assert_eq!(by("size", true), order([&m4, &m1, &m2, &m3]));
    assert_eq!(by("size", false), order([&m3, &m2, &m1, &m4]));
    // from: the name, else the address; case ignored by default.
    assert_eq!(by("from", true), order([&m4, &m3, &m2, &m1]));
    // to: a missing field is the empty string.
    assert_eq!(by("to", true), order([&m4, &m2, &m1, &m3]));
    // subject: the base subject (Re:, Fwd:, [list] off, RFC 2047 decoded).
    assert_eq!(by("subject", true), order([&m2, &m1, &m3, &m4]));
    assert_eq!(by("subject", false), order([&m4, &m3, &m1, &m2]));
    // RFC 8620 §5.5 collation: i;octet puts "Zed" before "bob".
    let octet = sorted_by(
        &alice,
        json!([{ "property": "from", "collation": "i;octet" }]),
    );
    assert_eq!(octet, order([&m1, &m4, &m3, &m2]));
    let ascii = sorted_by(
        &alice,
        json!([{ "property": "from", "collation": "i;ascii-casemap" }]),
    );
    assert_eq!(ascii, order([&m4, &m3, &m2, &m1]));
    // Several comparators: flagged first, then newest first.
    let two = sorted_by(
        &alice,
        json!([
            { "property": "hasKeyword", "keyword": "$flagged", "isAscending": false },
            { "property": "receivedAt", "isAscending": false },
        ]),
    );
    assert_eq!(two, order([&m4, &m2, &m3, &m1]));
    let session = &alice.session["capabilities"]["urn:ietf:params:jmap:core"];
    let announced = session["collationAlgorithms"].to_string();
    for c in ["i;ascii-casemap", "i;octet", "i;unicode-casemap"] {
        assert!(announced.contains(c), "{announced}");
    }
}

#[test]
fn rfc8621_4_4_2_unknown_sorts_and_collations_are_refused() {
    let s = start(&[ALICE]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    four(&alice);
    for (sort, want) in [
        (json!([{ "property": "bogus" }]), "unsupportedSort"),
        (json!([{ "property": "id" }]), "unsupportedSort"),
        (
            json!([{ "property": "subject", "collation": "i;basic" }]),
            "unsupportedSort",
        ),
        (json!([{ "property": "hasKeyword" }]), "invalidArguments"),
        (json!([{ "isAscending": true }]), "invalidArguments"),
        (json!("receivedAt"), "invalidArguments"),
    ] {
        let got = error_type(&alice, "Email/query", json!({ "sort": sort }));
        assert_eq!(got, want, "sort {sort}");
    }
    let got = error_type(&alice, "Email/query", json!({ "collapseThreads": "yes" }));
    assert_eq!(got, "invalidArguments");
}

/// A message of a thread: `id` its Message-ID, `parent` the one it
/// replies to.
fn threaded(subject: &str, id: &str, parent: Option<&str>) -> String {
    let mut m = format!(
        "From: carol@example.net\r\nTo: alice@example.org\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n"
    );
    if let Some(p) = parent {
        m.push_str(&format!("In-Reply-To: <{p}>\r\nReferences: <{p}>\r\n"));
    }
    m.push_str("\r\nHello.\r\n");
    m
}

#[test]
fn rfc8621_4_4_3_collapse_threads_and_thread_keywords() {
    let s = start(&[ALICE]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    let inbox = mailbox(&alice, "inbox");
    let a1 = import(
        &alice,
        &threaded("Plans", "a1@x", None),
        &inbox,
        "2024-01-01T00:00:00Z",
        &["$flagged"],
    );
    let b1 = import(
        &alice,
        &threaded("Other", "b1@x", None),
        &inbox,
        "2024-01-02T00:00:00Z",
        &["$flagged"],
    );
    let a2 = import(
        &alice,
        &threaded("Re: Plans", "a2@x", Some("a1@x")),
        &inbox,
        "2024-01-03T00:00:00Z",
        &[],
    );
    let newest = json!([{ "property": "receivedAt", "isAscending": false }]);

    let all = query(&alice, json!({ "sort": newest }));
    assert_eq!(ids(&all["ids"]), vec![a2.clone(), b1.clone(), a1.clone()]);
    let one = query(
        &alice,
        json!({ "sort": newest, "collapseThreads": true, "calculateTotal": true }),
    );
    assert_eq!(ids(&one["ids"]), vec![a2.clone(), b1.clone()], "{one}");
    assert_eq!(one["total"], 2);
    let oldest = query(&alice, json!({ "collapseThreads": true }));
    assert_eq!(ids(&oldest["ids"]), vec![a1.clone(), b1.clone()]);

    // The thread conditions look at every Email of the thread.
    let some = |cond: &str| {
        let q = query(
            &alice,
            json!({ "filter": { cond: "$flagged" }, "sort": newest }),
        );
        ids(&q["ids"])
    };
    assert_eq!(
        some("someInThreadHaveKeyword"),
        vec![a2.clone(), b1.clone(), a1.clone()]
    );
    assert_eq!(some("allInThreadHaveKeyword"), vec![b1.clone()]);
    assert_eq!(some("noneInThreadHaveKeyword"), Vec::<String>::new());
    assert_eq!(some("hasKeyword"), vec![b1.clone(), a1.clone()]);
    let by_thread = sorted_by(
        &alice,
        json!([
            { "property": "allInThreadHaveKeyword", "keyword": "$flagged", "isAscending": false },
            { "property": "receivedAt" },
        ]),
    );
    assert_eq!(by_thread, vec![b1, a1, a2]);
}

/// What a client holds after applying a queryChanges response to its
/// cached `old` ids (RFC 8620 §5.6): removals first, then each addition
/// at its index, in ascending index order.
fn apply(old: &[String], qc: &Value) -> Vec<String> {
    let removed = ids(&qc["removed"]);
    let mut out: Vec<String> = old
        .iter()
        .filter(|i| !removed.contains(i))
        .cloned()
        .collect();
    let mut added: Vec<(usize, String)> = qc["added"]
        .as_array()
        .unwrap_or_else(|| panic!("no added: {qc}"))
        .iter()
        .map(|a| {
            (
                usize::try_from(a["index"].as_u64().unwrap()).unwrap(),
                a["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    added.sort();
    for (i, id) in added {
        assert!(i <= out.len(), "index {i} past the end: {qc}");
        out.insert(i, id);
    }
    out
}

#[test]
fn rfc8620_5_6_query_changes_after_arrival_destroy_move_and_keywords() {
    let s = start(&[ALICE]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    let (inbox, archive) = (mailbox(&alice, "inbox"), mailbox(&alice, "archive"));
    let mut m = Vec::new();
    for i in 1..=5 {
        let raw = message(
            "x@example.net",
            "alice@example.org",
            &format!("n{i}"),
            None,
            0,
        );
        m.push(import(
            &alice,
            &raw,
            &inbox,
            &format!("2024-01-0{i}T00:00:00Z"),
            &[],
        ));
    }
    let elsewhere = import(
        &alice,
        &message("y@example.net", "", "other box", None, 0),
        &archive,
        "2024-01-09T00:00:00Z",
        &[],
    );
    let args = json!({
        "filter": { "inMailbox": inbox },
        "sort": [{ "property": "receivedAt", "isAscending": false }],
    });
    let before = query(&alice, args.clone());
    assert_eq!(before["canCalculateChanges"], true, "{before}");
    let cached = ids(&before["ids"]);
    let since = before["queryState"].as_str().unwrap().to_string();

    // New mail arrives (over LMTP: received now, so newest), one is
    // destroyed, one moves out, one moves in, one gets a keyword.
    let reply = s.lmtp_send(
        ALICE.0,
        message("z@example.net", "alice@example.org", "fresh", None, 0).as_bytes(),
    );
    assert!(reply.starts_with("250"), "{reply}");
    let set = alice.call(
        "Email/set",
        json!({
            "destroy": [m[1]],
            "update": {
                m[2].clone(): { "mailboxIds": { archive.clone(): true } },
                elsewhere.clone(): { "mailboxIds": { inbox.clone(): true } },
                m[3].clone(): { "keywords/$seen": true },
            },
        }),
    );
    assert_eq!(set["destroyed"], json!([m[1]]), "{set}");

    let now = query(&alice, args.clone());
    let mut qc_args = args.clone();
    qc_args["sinceQueryState"] = json!(since);
    qc_args["calculateTotal"] = json!(true);
    let qc = alice.call("Email/queryChanges", qc_args.clone());
    assert_eq!(qc["oldQueryState"], json!(since), "{qc}");
    assert_eq!(qc["newQueryState"], now["queryState"], "{qc}");
    assert_eq!(qc["total"], json!(ids(&now["ids"]).len()), "{qc}");
    assert_eq!(apply(&cached, &qc), ids(&now["ids"]), "{qc}");
    let removed = ids(&qc["removed"]);
    assert!(removed.contains(&m[1]) && removed.contains(&m[2]), "{qc}");
    let added: Vec<String> = qc["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!added.contains(&m[1]) && !added.contains(&m[2]), "{qc}");
    assert!(added.contains(&elsewhere), "{qc}");
    assert_eq!(
        qc["added"][0]["index"], 0,
        "the new mail is the newest: {qc}"
    );
    // Untouched Emails are not reported.
    for untouched in [&m[0], &m[4]] {
        assert!(
            !removed.contains(untouched) && !added.contains(untouched),
            "{qc}"
        );
    }

    // From the new state, nothing changed.
    qc_args["sinceQueryState"] = now["queryState"].clone();
    let none = alice.call("Email/queryChanges", qc_args);
    assert_eq!(
        (&none["removed"], &none["added"]),
        (&json!([]), &json!([])),
        "{none}"
    );
}

#[test]
fn rfc8620_5_6_query_changes_follow_collapsed_threads() {
    let s = start(&[ALICE]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    let inbox = mailbox(&alice, "inbox");
    let a1 = import(
        &alice,
        &threaded("Plans", "a1@x", None),
        &inbox,
        "2024-01-01T00:00:00Z",
        &[],
    );
    let b1 = import(
        &alice,
        &threaded("Other", "b1@x", None),
        &inbox,
        "2024-01-02T00:00:00Z",
        &[],
    );
    let args = json!({
        "sort": [{ "property": "receivedAt", "isAscending": false }],
        "collapseThreads": true,
    });
    let before = query(&alice, args.clone());
    assert_eq!(ids(&before["ids"]), vec![b1.clone(), a1.clone()]);
    // A reply makes a2 its thread's newest: a1 must leave the results.
    let a2 = import(
        &alice,
        &threaded("Re: Plans", "a2@x", Some("a1@x")),
        &inbox,
        "2024-01-03T00:00:00Z",
        &[],
    );
    let now = query(&alice, args.clone());
    assert_eq!(ids(&now["ids"]), vec![a2, b1]);
    let mut qc_args = args;
    qc_args["sinceQueryState"] = before["queryState"].clone();
    let qc = alice.call("Email/queryChanges", qc_args);
    assert!(ids(&qc["removed"]).contains(&a1), "{qc}");
    assert_eq!(apply(&ids(&before["ids"]), &qc), ids(&now["ids"]), "{qc}");
}

#[test]
fn rfc8620_5_6_hostile_query_states_and_limits() {
    let s = start(&[ALICE, BOB]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    let bob = s.jmap(BOB.0, BOB.1);
    let inbox = mailbox(&alice, "inbox");
    let q = query(&alice, json!({}));
    let state = q["queryState"].as_str().unwrap().to_string();
    for i in 1..=3 {
        let raw = message("x@example.net", "", &format!("n{i}"), None, 0);
        import(&alice, &raw, &inbox, "2024-01-01T00:00:00Z", &[]);
    }
    for bogus in [
        "",
        "abc",
        "-1",
        "99999999999",
        "1e3",
        "18446744073709551616",
    ] {
        let got = error_type(
            &alice,
            "Email/queryChanges",
            json!({ "sinceQueryState": bogus }),
        );
        assert_eq!(got, "cannotCalculateChanges", "state {bogus:?}");
    }
    let got = error_type(
        &alice,
        "Email/queryChanges",
        json!({ "sinceQueryState": state, "maxChanges": 2 }),
    );
    assert_eq!(got, "tooManyChanges");
    let got = error_type(
        &alice,
        "Email/queryChanges",
        json!({ "sinceQueryState": state, "maxChanges": 0 }),
    );
    assert_eq!(got, "invalidArguments");
    let got = error_type(
        &alice,
        "Email/queryChanges",
        json!({ "sinceQueryState": state, "sort": [{ "property": "nope" }] }),
    );
    assert_eq!(got, "unsupportedSort");
    let got = error_type(
        &alice,
        "Email/queryChanges",
        json!({ "sinceQueryState": state, "filter": { "nope": 1 } }),
    );
    assert_eq!(got, "unsupportedFilter");
    // Bob naming Alice's account.
    let mut bob_as_alice = bob;
    bob_as_alice.account_id = alice.account_id.clone();
    let got = error_type(
        &bob_as_alice,
        "Email/queryChanges",
        json!({ "sinceQueryState": state }),
    );
    assert_eq!(got, "accountNotFound");
}

/// Encoded subject, quoted-printable Latin-1 body, HTML-special text.
const COLOGNE: &str = "From: sender@example.net\r\n\
To: alice@example.org\r\n\
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln_&_<Bonn>?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Wir wohnen in der Hauptstra=DFe 5, <gleich> neben dem Dom.\r\n";

fn snippets(user: &JmapUser, filter: Value, email_ids: &[&String]) -> Value {
    let r = user.call(
        "SearchSnippet/get",
        json!({ "filter": filter, "emailIds": email_ids }),
    );
    assert!(r["list"].is_array(), "SearchSnippet/get: {r}");
    r
}

#[test]
fn rfc8621_5_1_snippets_mark_decoded_text_and_escape_html() {
    let s = start(&[ALICE]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    let inbox = mailbox(&alice, "inbox");
    let id = import(&alice, COLOGNE, &inbox, "2024-01-01T00:00:00Z", &[]);
    let long_body = format!(
        "From: a@example.net\r\nSubject: long\r\n\r\n{} needle {}\r\n",
        "word ".repeat(500),
        "<&> ".repeat(500)
    );
    let long = import(&alice, &long_body, &inbox, "2024-01-02T00:00:00Z", &[]);

    let r = snippets(&alice, json!({ "text": "KÖLN" }), &[&id]);
    let snip = &r["list"][0];
    assert_eq!(snip["emailId"], json!(id));
    assert_eq!(
        snip["subject"], "Grüße aus <mark>Köln</mark> &amp; &lt;Bonn&gt;",
        "{r}"
    );
    assert_eq!(snip["preview"], Value::Null, "köln is not in the body: {r}");

    let r = snippets(&alice, json!({ "body": "hauptstraße" }), &[&id]);
    let snip = &r["list"][0];
    assert_eq!(snip["subject"], Value::Null, "{r}");
    let preview = snip["preview"].as_str().unwrap();
    assert!(preview.contains("<mark>Hauptstraße</mark>"), "{preview}");
    assert!(preview.contains("&lt;gleich&gt;"), "{preview}");
    assert!(!preview.contains("<gleich>"), "{preview}");

    // Terms under NOT are not marked; AND/OR terms are.
    let r = snippets(
        &alice,
        json!({ "operator": "AND", "conditions": [
            { "operator": "NOT", "conditions": [{ "text": "Köln" }] },
            { "operator": "OR", "conditions": [{ "subject": "bonn" }] },
        ]}),
        &[&id],
    );
    assert_eq!(
        r["list"][0]["subject"], "Grüße aus Köln &amp; &lt;<mark>Bonn</mark>&gt;",
        "{r}"
    );
    // A long body: at most 255 octets, the match in it, marks closed.
    let r = snippets(&alice, json!({ "text": "needle" }), &[&long]);
    let preview = r["list"][0]["preview"].as_str().unwrap();
    assert!(preview.len() <= 255, "{} octets: {preview}", preview.len());
    assert!(preview.contains("<mark>needle</mark>"), "{preview}");
    assert_eq!(
        preview.matches("<mark>").count(),
        preview.matches("</mark>").count()
    );
    // No filter: nothing to mark.
    let r = snippets(&alice, Value::Null, &[&id]);
    assert_eq!(
        (&r["list"][0]["subject"], &r["list"][0]["preview"]),
        (&Value::Null, &Value::Null)
    );
}

#[test]
fn rfc8621_5_1_snippets_of_encrypted_mail_mark_only_the_clear_subject() {
    let s = start(&[ALICE]);
    let keys = support::pki::pair(ALICE.0, 2048);
    s.ok(&["cert", "add", ALICE.0, keys.cert.to_str().unwrap()]);
    s.ok(&["encryption", "enable", ALICE.0]);
    let reply = s.lmtp_send(ALICE.0, COLOGNE.as_bytes());
    assert!(reply.starts_with("250"), "{reply}");
    let alice = s.jmap(ALICE.0, ALICE.1);
    let id = ids(&query(&alice, json!({}))["ids"]).remove(0);
    let r = snippets(&alice, json!({ "text": "köln" }), &[&id]);
    assert_eq!(
        r["list"][0]["subject"], "Grüße aus <mark>Köln</mark> &amp; &lt;Bonn&gt;",
        "{r}"
    );
    let r = snippets(&alice, json!({ "text": "hauptstraße" }), &[&id]);
    assert_eq!(
        r["list"][0]["preview"],
        Value::Null,
        "the body is ciphertext: {r}"
    );
}

#[test]
fn rfc8621_5_1_snippets_refuse_foreign_ids_garbage_and_floods() {
    let s = start(&[ALICE, BOB]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    let bob = s.jmap(BOB.0, BOB.1);
    let id = import(
        &alice,
        COLOGNE,
        &mailbox(&alice, "inbox"),
        "2024-01-01T00:00:00Z",
        &[],
    );
    let bobs = import(
        &bob,
        COLOGNE,
        &mailbox(&bob, "inbox"),
        "2024-01-01T00:00:00Z",
        &[],
    );
    let garbage = "../../etc/passwd".to_string();
    let r = snippets(&alice, json!({ "text": "köln" }), &[&id, &bobs, &garbage]);
    assert_eq!(r["list"].as_array().unwrap().len(), 1, "{r}");
    assert_eq!(r["notFound"], json!([bobs, garbage]), "{r}");
    // Bob's id names nothing of Alice's even with Alice's number in it.
    let flood: Vec<String> = (0..501).map(|i| format!("e1-{i}")).collect();
    let got = error_type(
        &alice,
        "SearchSnippet/get",
        json!({ "filter": { "text": "x" }, "emailIds": flood }),
    );
    assert_eq!(got, "requestTooLarge");
    let got = error_type(
        &alice,
        "SearchSnippet/get",
        json!({ "filter": { "bogus": "x" }, "emailIds": [id] }),
    );
    assert_eq!(got, "unsupportedFilter");
    let got = error_type(&alice, "SearchSnippet/get", json!({ "filter": null }));
    assert_eq!(got, "invalidArguments", "emailIds is required");
}
