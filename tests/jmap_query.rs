//! JMAP queries against the real `sealmail serve` (issue 18 item 4),
//! sorts and threads here, `changes` and `snippets` in their modules:
//! `Email/query` sorts and `collapseThreads` (RFC 8621 §4.4.2, §4.4.3),
//! `Email/queryChanges` (RFC 8620 §5.6) checked the way a client uses
//! it — its cached ids, minus `removed`, plus `added` by index, must be
//! the ids a fresh query returns — and `SearchSnippet/get` (RFC 8621
//! §5.1). Mail comes in through `Email/import` (so that `receivedAt` is
//! the test's to choose), LMTP and JMAP `Email/set`; every
//! call is JSON over HTTP to the session's `apiUrl`. Hostile callers:
//! unknown sorts and collations, bogus and future query states, another
//! account's Email ids, too many ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

#[path = "jmap_query/changes.rs"]
mod changes;
#[path = "jmap_query/snippets.rs"]
mod snippets;

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
    // RFC 8621 §1.3.1: the session names every property sortable.
    let mail = &alice.session["accounts"][&alice.account_id]["accountCapabilities"]
        ["urn:ietf:params:jmap:mail"];
    for p in mail["emailQuerySortOptions"].as_array().unwrap() {
        let sort = json!([{ "property": p, "keyword": "$seen" }]);
        assert_eq!(sorted_by(&alice, sort).len(), 4, "{p}");
    }
    assert_eq!(
        mail["emailQuerySortOptions"].as_array().unwrap().len(),
        9,
        "{mail}"
    );
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
    // Abuse: a sort or filter built to cost per message, many times over.
    let many: Vec<Value> = (0..5000).map(|_| json!({ "property": "from" })).collect();
    let got = error_type(&alice, "Email/query", json!({ "sort": many }));
    assert_eq!(got, "invalidArguments");
    let wide: Vec<Value> = (0..50_000)
        .map(|i| json!({ "from": format!("x{i}") }))
        .collect();
    let filter = json!({ "operator": "OR", "conditions": wide });
    let started = std::time::Instant::now();
    let got = error_type(&alice, "Email/query", json!({ "filter": filter }));
    assert_eq!(got, "unsupportedFilter");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
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
