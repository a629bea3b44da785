//! `Email/queryChanges` (RFC 8620 §5.6) as a client uses it: its cached
//! ids, minus `removed`, plus `added` by index, are the ids a fresh
//! `Email/query` returns; hostile states and limits.

use serde_json::{json, Value};

use super::support::postgres::test_db;
use super::support::server::Server;
use super::{error_type, ids, import, mailbox, message, query, start, threaded, ALICE, BOB};

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
    arrival_destroy_move_and_keywords(&start(&[ALICE]));
}

/// The same on the PostgreSQL engine: the change log and the query are
/// the store's, whichever engine holds them.
#[test]
fn rfc8620_5_6_query_changes_after_arrival_destroy_move_and_keywords_postgres() {
    let db = test_db();
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SEALMAIL_STORE_ENGINE", "postgres"),
        ("SEALMAIL_STORE_URL", db.url.as_str()),
        ("SEALMAIL_STORE_POOL_SIZE", "4"),
    ];
    let s = Server::start_with_env(dir.path(), &env);
    s.account_with_password(ALICE.0, ALICE.1);
    arrival_destroy_move_and_keywords(&s);
}

fn arrival_destroy_move_and_keywords(s: &Server) {
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

/// A client that holds only the first results (RFC 8620 §5.6: a
/// sparse cache, `null` where it knows nothing): it splices out what it
/// has of `removed`, splices in `added`, and truncates or extends to the
/// new `total`.
fn apply_sparse(old: &[Option<String>], qc: &Value) -> Vec<Option<String>> {
    let removed = ids(&qc["removed"]);
    let mut out: Vec<Option<String>> = old
        .iter()
        .filter(|i| i.as_ref().is_none_or(|i| !removed.contains(i)))
        .cloned()
        .collect();
    let mut added: Vec<(usize, String)> = qc["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let index = usize::try_from(a["index"].as_u64().unwrap()).unwrap();
            (index, a["id"].as_str().unwrap().to_string())
        })
        .collect();
    added.sort();
    for (i, id) in added {
        if i > out.len() {
            out.resize(i, None);
        }
        out.insert(i, Some(id));
    }
    out.resize(
        usize::try_from(qc["total"].as_u64().unwrap()).unwrap(),
        None,
    );
    out
}

#[test]
fn rfc8620_5_6_sparse_cache_with_up_to_id() {
    let s = start(&[ALICE]);
    let alice = s.jmap(ALICE.0, ALICE.1);
    let inbox = mailbox(&alice, "inbox");
    let mut m = Vec::new();
    for i in 1..=6 {
        let raw = message("x@example.net", "", &format!("n{i}"), None, 0);
        m.push(import(
            &alice,
            &raw,
            &inbox,
            &format!("2024-01-0{i}T00:00:00Z"),
            &[],
        ));
    }
    // Immutable sort, no filter: upToId applies.
    let args = json!({ "sort": [{ "property": "receivedAt", "isAscending": false }] });
    let mut first = args.clone();
    first["limit"] = json!(3);
    first["calculateTotal"] = json!(true);
    let page = query(&alice, first);
    let mut cache: Vec<Option<String>> = ids(&page["ids"]).into_iter().map(Some).collect();
    cache.resize(6, None);
    let up_to = cache[2].clone().unwrap();
    assert_eq!(up_to, m[3]);

    // Newest arrives, one cached and one uncached Email go, and an old
    // one (far past upToId) arrives.
    let newest = import(
        &alice,
        &message("n@example.net", "", "newest", None, 0),
        &inbox,
        "2024-02-01T00:00:00Z",
        &[],
    );
    let oldest = import(
        &alice,
        &message("o@example.net", "", "oldest", None, 0),
        &inbox,
        "2023-01-01T00:00:00Z",
        &[],
    );
    let set = alice.call("Email/set", json!({ "destroy": [m[4], m[0]] }));
    assert_eq!(set["destroyed"].as_array().unwrap().len(), 2, "{set}");

    let mut qc_args = args.clone();
    qc_args["sinceQueryState"] = page["queryState"].clone();
    qc_args["upToId"] = json!(up_to);
    qc_args["calculateTotal"] = json!(true);
    let qc = alice.call("Email/queryChanges", qc_args);
    let added: Vec<&str> = qc["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        added,
        vec![newest.as_str()],
        "the oldest is past upToId: {qc}"
    );
    assert!(!added.contains(&oldest.as_str()));
    let now = ids(&query(&alice, args)["ids"]);
    let got = apply_sparse(&cache, &qc);
    assert_eq!(got.len(), now.len(), "{qc}");
    for (have, want) in got.iter().zip(&now) {
        if let Some(have) = have {
            assert_eq!(have, want, "{got:?} vs {now:?}: {qc}");
        }
    }
    assert_eq!(
        got[..3],
        [Some(newest), Some(m[5].clone()), Some(m[3].clone())]
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
    let enough = alice.call(
        "Email/queryChanges",
        json!({ "sinceQueryState": state, "maxChanges": 3 }),
    );
    assert_eq!(
        enough["added"].as_array().map(Vec::len),
        Some(3),
        "{enough}"
    );
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
    let got = error_type(
        &bob_as_alice,
        "Email/query",
        json!({ "sort": [{ "property": "nope" }], "filter": { "nope": 1 } }),
    );
    assert_eq!(got, "accountNotFound", "the account is checked first");
    let got = error_type(
        &bob_as_alice,
        "SearchSnippet/get",
        json!({ "emailIds": [] }),
    );
    assert_eq!(got, "accountNotFound");
}
