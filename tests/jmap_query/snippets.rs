//! `SearchSnippet/get` (RFC 8621 §5.1): marks, escaping, the 255-octet
//! preview, encrypted mail, foreign ids and floods.

use serde_json::{json, Value};

use super::support::server::JmapUser;
use super::{error_type, ids, import, mailbox, query, start, ALICE, BOB};

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
    assert_eq!(r["notFound"], Value::Null, "all found: {r}");
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
    let keys = super::support::pki::pair(ALICE.0, 2048);
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
    // More ids than maxObjectsInGet (500).
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
