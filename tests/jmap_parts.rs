//! Body parts as RFC 8621 §4.1.4 has them, against the real `sealmail
//! serve`: mail arrives over LMTP (Python `smtplib.LMTP`), every
//! non-multipart part of `Email/get` has a `blobId` whose download (RFC
//! 8620 §6.2) is the part's octets after transfer decoding, `bodyProperties`
//! (§4.2) chooses the part properties, and `Email/parse` (§4.9) reads a
//! forwarded `message/rfc822` attachment or an upload. The jmap-client
//! crate downloads and parses as a client would; raw JSON (reqwest) does
//! what it cannot express. An encrypted account's part is the stored
//! `smime.p7m`, which `openssl cms -decrypt` opens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "jmap_parts/http.rs"]
mod http;
#[path = "jmap_parts/mail.rs"]
mod mail;
mod support;

use std::process::Command;

use serde_json::{json, Value};

use support::pki;
use support::server::{JmapUser, Server};
use support::tools::{lf, require, run};

use http::{api_raw, download, flatten, part_of, PASSWORD};
use mail::{binary, forward, mixed, NOTES};

fn start(users: &[&str]) -> Server {
    let server = Server::start();
    for u in users {
        server.account_with_password(u, PASSWORD);
    }
    server
}

fn deliver(server: &Server, to: &str, data: &[u8]) {
    let reply = server.lmtp_send(to, data);
    assert!(reply.starts_with("250"), "{reply}");
}

/// The only Email of `user`.
fn only_email(user: &JmapUser) -> String {
    let q = user.call("Email/query", json!({}));
    assert_eq!(q["ids"].as_array().unwrap().len(), 1, "{q}");
    q["ids"][0].as_str().unwrap().to_string()
}

fn get(user: &JmapUser, id: &str, extra: Value) -> Value {
    let mut args = json!({ "ids": [id], "properties": ["bodyStructure", "textBody", "htmlBody", "attachments"] });
    for (k, v) in extra.as_object().unwrap() {
        args[k] = v.clone();
    }
    user.call("Email/get", args)
}

#[test]
fn rfc8621_4_1_4_every_leaf_part_downloads_its_decoded_octets() {
    let server = start(&["alice@example.org"]);
    deliver(&server, "alice@example.org", &mixed());
    let alice = server.jmap("alice@example.org", PASSWORD);
    let id = only_email(&alice);
    let email = get(&alice, &id, json!({}))["list"][0].clone();

    let text = &email["textBody"][0];
    let html = &email["htmlBody"][0];
    let bin = part_of(&email["attachments"], "application/octet-stream");
    let notes = part_of(&email["attachments"], "text/plain");
    let expected: [(&Value, Vec<u8>); 4] = [
        (text, b"Sch\xf6ne Gr\xfc\xdfe = soft break.".to_vec()),
        (html, "<p>Schöne Grüße</p>".as_bytes().to_vec()),
        (bin, binary()),
        (notes, NOTES.to_vec()),
    ];
    for (part, want) in expected {
        let blob = part["blobId"].as_str().unwrap_or_else(|| panic!("{part}"));
        let (status, got) = download(&server, "alice@example.org", &alice.account_id, blob);
        assert_eq!(status, 200, "{part}");
        assert_eq!(got, want, "{part}");
        assert_eq!(
            part["size"],
            json!(want.len()),
            "size is of the decoded octets: {part}"
        );
    }
    assert_eq!(text["charset"], "iso-8859-1");
    assert_eq!(text["language"], json!(["de"]));
    assert_eq!(bin["name"], "all.bin");
    assert_eq!(bin["cid"], "bin@example.net");
    assert_eq!(bin["disposition"], "attachment");

    // Multiparts have no blob (§4.1.4: "null if a multipart/*").
    let all = flatten(&email["bodyStructure"]);
    assert_eq!(all.len(), 6, "{}", email["bodyStructure"]);
    for p in &all {
        let multipart = p["type"].as_str().unwrap().starts_with("multipart/");
        assert_eq!(p["blobId"].is_null(), multipart, "{p}");
    }
    // Each leaf of bodyStructure is the same part as in the lists.
    let leaves: Vec<&Value> = all.iter().filter(|p| !p["blobId"].is_null()).collect();
    assert_eq!(leaves.len(), 4);
    assert!(leaves.iter().any(|p| p["blobId"] == bin["blobId"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc8621_4_1_4_jmap_client_downloads_a_part() {
    use jmap_client::email::{BodyProperty, Property};
    let server = start(&["alice@example.org"]);
    let data = forward(&mixed());
    let reply = tokio::task::block_in_place(|| server.lmtp_send("alice@example.org", &data));
    assert!(reply.starts_with("250"), "{reply}");
    let client = jmap_client::client::Client::new()
        .credentials(("alice@example.org", PASSWORD))
        .follow_redirects(["127.0.0.1"])
        .connect(&format!("http://127.0.0.1:{}", server.jmap_port))
        .await
        .unwrap();
    let ids = client
        .email_query(None::<jmap_client::email::query::Filter>, None::<Vec<_>>)
        .await
        .unwrap()
        .take_ids();
    let mut request = client.build();
    request
        .get_email()
        .ids([ids[0].as_str()])
        .properties([Property::Attachments])
        .arguments()
        .body_properties([BodyProperty::BlobId, BodyProperty::Name]);
    let got = request
        .send_get_email()
        .await
        .unwrap()
        .take_list()
        .pop()
        .unwrap();
    let attachments = got.attachments().unwrap().to_vec();
    let fwd = attachments
        .iter()
        .find(|a| a.name() == Some("parts.eml"))
        .unwrap();
    assert_eq!(fwd.content_type(), None, "only the asked body properties");
    let blob = fwd.blob_id().unwrap();
    assert_eq!(client.download(blob).await.unwrap(), mixed());

    // Email/parse of the forwarded message as jmap-client asks it (§4.9).
    let parsed = client
        .email_parse(
            blob,
            Some([Property::Subject, Property::Attachments]),
            Some([BodyProperty::BlobId, BodyProperty::Name]),
            None,
        )
        .await
        .unwrap();
    assert_eq!(parsed.subject(), Some("parts"));
    let inner = parsed.attachments().unwrap();
    let bin = inner.iter().find(|a| a.name() == Some("all.bin")).unwrap();
    assert_eq!(
        client.download(bin.blob_id().unwrap()).await.unwrap(),
        binary()
    );
}

#[test]
fn rfc8621_4_2_body_properties_choose_the_part_properties() {
    let server = start(&["alice@example.org"]);
    deliver(&server, "alice@example.org", &mixed());
    let alice = server.jmap("alice@example.org", PASSWORD);
    let id = only_email(&alice);
    let asked = json!({ "bodyProperties": ["partId", "type", "header:Content-Transfer-Encoding:asText", "headers"] });
    let email = get(&alice, &id, asked)["list"][0].clone();
    let bin = email["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "application/octet-stream")
        .unwrap()
        .clone();
    let mut keys: Vec<&str> = bin
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "header:Content-Transfer-Encoding:asText",
            "headers",
            "partId",
            "type"
        ],
        "{bin}"
    );
    assert_eq!(bin["header:Content-Transfer-Encoding:asText"], "base64");
    let names: Vec<&str> = bin["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "Content-Type",
            "Content-Disposition",
            "Content-ID",
            "Content-Transfer-Encoding"
        ]
    );
    // The structure stays a tree whatever is asked (subParts of multiparts).
    assert_eq!(
        email["bodyStructure"]["subParts"].as_array().unwrap().len(),
        3
    );

    // The default list (§4.2) and nothing else.
    let email = get(&alice, &id, json!({}))["list"][0].clone();
    let mut keys: Vec<String> = email["textBody"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    let mut default = [
        "partId",
        "blobId",
        "size",
        "name",
        "type",
        "charset",
        "disposition",
        "cid",
        "language",
        "location",
    ];
    default.sort();
    assert_eq!(keys, default);

    // The same forms on the Email itself (RFC 8621 §4.1.3).
    let forms = alice.call(
        "Email/get",
        json!({ "ids": [id], "properties": ["header:Subject:asText", "header:FROM:asAddresses", "header:Message-ID:asMessageIds:all", "header:X-None:all", "header:X-None"] }),
    );
    let e = &forms["list"][0];
    assert_eq!(e["header:Subject:asText"], "parts", "{forms}");
    assert_eq!(
        e["header:FROM:asAddresses"],
        json!([{ "name": "Carol", "email": "carol@example.net" }])
    );
    assert_eq!(
        e["header:Message-ID:asMessageIds:all"],
        json!([["parts@example.net"]])
    );
    assert_eq!(e["header:X-None:all"], json!([]));
    assert_eq!(e["header:X-None"], Value::Null);

    for bad in [
        json!(["partId", "nope"]),
        json!(["header:From:asDate"]),
        json!(["header:Subject:asWhatever"]),
        json!(["header::all"]),
        json!(["header:X-A:asText:all:more"]),
    ] {
        let r = alice.calls(json!([["Email/get", { "ids": [id], "properties": ["textBody"], "bodyProperties": bad }, "c"]]));
        assert_eq!(r[0][0], "error", "{bad}: {}", r[0]);
        assert_eq!(r[0][1]["type"], "invalidArguments", "{bad}");
    }
}

#[test]
fn rfc8621_4_9_email_parse_reads_a_forwarded_message() {
    let server = start(&["alice@example.org", "bob@example.org"]);
    deliver(&server, "alice@example.org", &forward(&mixed()));
    let alice = server.jmap("alice@example.org", PASSWORD);
    let id = only_email(&alice);
    let email = get(&alice, &id, json!({}))["list"][0].clone();
    let fwd = part_of(&email["attachments"], "message/rfc822");
    let blob = fwd["blobId"].as_str().unwrap().to_string();
    let (status, inner) = download(&server, "alice@example.org", &alice.account_id, &blob);
    assert_eq!(status, 200);
    assert_eq!(
        inner,
        mixed(),
        "the attachment is the forwarded message itself"
    );

    let parsed = alice.call(
        "Email/parse",
        json!({ "blobIds": [blob, "nonsense", "p1-1-00-1"], "fetchTextBodyValues": true }),
    );
    assert_eq!(
        parsed["notFound"],
        json!(["nonsense", "p1-1-00-1"]),
        "{parsed}"
    );
    assert_eq!(parsed["notParsable"], Value::Null);
    let e = &parsed["parsed"][&blob];
    assert_eq!(e["subject"], "parts", "{parsed}");
    assert_eq!(
        e["from"],
        json!([{ "name": "Carol", "email": "carol@example.net" }])
    );
    assert_eq!(e["messageId"], json!(["parts@example.net"]));
    assert!(
        e.get("id").is_none() && e.get("mailboxIds").is_none(),
        "{e}"
    );
    let text_part = e["textBody"][0]["partId"].as_str().unwrap();
    assert_eq!(
        e["bodyValues"][text_part]["value"],
        "Schöne Grüße = soft break."
    );
    // The forwarded message's attachment downloads in turn, and parses too.
    let bin = part_of(&e["attachments"], "application/octet-stream");
    let (status, got) = download(
        &server,
        "alice@example.org",
        &alice.account_id,
        bin["blobId"].as_str().unwrap(),
    );
    assert_eq!((status, got), (200, binary()));

    // Metadata properties asked of a parsed blob are null (§4.9).
    let asked = alice.call(
        "Email/parse",
        json!({ "blobIds": [blob], "properties": ["id", "mailboxIds", "blobId", "size", "subject"] }),
    );
    let e = &asked["parsed"][&blob];
    assert_eq!(e["id"], Value::Null, "{asked}");
    assert_eq!(e["mailboxIds"], Value::Null);
    assert_eq!(e["blobId"], json!(blob));
    assert_eq!(e["size"], json!(mixed().len()));

    // The Email's own blob parses too, its parts named as Email/get names them.
    let whole = alice.call(
        "Email/get",
        json!({ "ids": [id], "properties": ["blobId"] }),
    );
    let whole = whole["list"][0]["blobId"].as_str().unwrap().to_string();
    let again = alice.call(
        "Email/parse",
        json!({ "blobIds": [whole], "properties": ["subject", "attachments"] }),
    );
    let e = &again["parsed"][&whole];
    assert_eq!(e["subject"], "Fwd: parts", "{again}");
    assert_eq!(
        part_of(&e["attachments"], "message/rfc822")["blobId"],
        json!(blob)
    );

    // Another account's part is not found there (nor downloadable).
    let bob = server.jmap("bob@example.org", PASSWORD);
    let theirs = bob.call("Email/parse", json!({ "blobIds": [blob] }));
    assert_eq!(theirs["notFound"], json!([blob]), "{theirs}");
    assert_eq!(theirs["parsed"], Value::Null);
}

#[test]
fn rfc8621_4_9_email_parse_reads_an_upload_and_its_parts() {
    let server = start(&["alice@example.org"]);
    let alice = server.jmap("alice@example.org", PASSWORD);
    let blob = alice.upload(forward(&mixed()));
    let parsed = alice.call(
        "Email/parse",
        json!({ "blobIds": [blob], "properties": ["subject", "attachments"], "bodyProperties": ["blobId", "type"] }),
    );
    let e = &parsed["parsed"][&blob];
    assert_eq!(e["subject"], "Fwd: parts", "{parsed}");
    let inner = part_of(&e["attachments"], "message/rfc822")["blobId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, got) = download(&server, "alice@example.org", &alice.account_id, &inner);
    assert_eq!((status, got), (200, mixed()));
    let again = alice.call(
        "Email/parse",
        json!({ "blobIds": [inner], "properties": ["subject"] }),
    );
    assert_eq!(again["parsed"][&inner]["subject"], "parts", "{again}");
    // Hostile arguments: too many blobs, too many header forms, another account.
    let many: Vec<String> = (0..501).map(|i| format!("x{i}")).collect();
    let r = alice.calls(json!([["Email/parse", { "blobIds": many }, "c"]]));
    assert_eq!(r[0][1]["type"], "requestTooLarge", "{}", r[0]);
    let forms: Vec<String> = (0..65).map(|i| format!("header:X-{i}:all")).collect();
    let r =
        alice.calls(json!([["Email/parse", { "blobIds": [blob], "bodyProperties": forms }, "c"]]));
    assert_eq!(r[0][1]["type"], "invalidArguments", "{}", r[0]);
    let r = alice.calls(json!([["Email/parse", { "blobIds": [blob] }, "c"]]));
    assert_eq!(r[0][0], "Email/parse");
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail"],
        "methodCalls": [["Email/parse", { "accountId": "a999", "blobIds": [blob] }, "c"]],
    });
    let r = api_raw(&server, "alice@example.org", &body);
    assert_eq!(r["methodResponses"][0][1]["type"], "accountNotFound", "{r}");

    let empty = alice.upload(Vec::new());
    let r = alice.call("Email/parse", json!({ "blobIds": [empty] }));
    assert_eq!(r["notParsable"], json!([empty]), "{r}");
}

#[test]
fn hostile_part_blob_ids_are_not_found() {
    let server = start(&["alice@example.org", "bob@example.org"]);
    deliver(&server, "alice@example.org", &mixed());
    deliver(&server, "bob@example.org", &mixed());
    let alice = server.jmap("alice@example.org", PASSWORD);
    let bob = server.jmap("bob@example.org", PASSWORD);
    let id = only_email(&alice);
    let email = get(&alice, &id, json!({}))["list"][0].clone();
    let blob = email["attachments"][0]["blobId"]
        .as_str()
        .unwrap()
        .to_string();
    let a = alice.account_id.clone();
    assert_eq!(download(&server, "alice@example.org", &a, &blob).0, 200);

    // Bob, with his own account id or with Alice's: nothing.
    assert_eq!(
        download(&server, "bob@example.org", &bob.account_id, &blob).0,
        404
    );
    assert_eq!(download(&server, "bob@example.org", &a, &blob).0, 404);
    // Alice's id rewritten to name Bob's account: still nothing for Bob.
    let rewritten = blob.replacen(&a[1..], &bob.account_id[1..], 1);
    assert_eq!(
        download(&server, "bob@example.org", &bob.account_id, &rewritten).0,
        404
    );

    let (head, _) = blob.rsplit_once('-').unwrap();
    let long = format!("{head}-{}", vec!["0"; 40].join("."));
    for forged in [
        format!("{head}-999"),
        format!("{head}-4294967295"),
        format!("{head}-99999999999999999999"),
        format!("{head}-0"),
        format!("{head}-1.1.1"),
        format!("{head}--1"),
        long,
        format!("{blob}x"),
        "p".repeat(300),
        format!("p{}-1-{}-1", &a[1..], "0".repeat(64)),
        "q1-zz-1".into(),
        "%C3%A9t%C3%A9".into(),
    ] {
        let (status, _) = download(&server, "alice@example.org", &a, &forged);
        assert_eq!(status, 404, "{forged}");
    }

    // The decrypted view of a part (server-side reading) is nothing
    // without unlocked keys, and never the stored part it mirrors.
    let read_view = format!("r{}", &blob[1..]);
    assert_eq!(
        download(&server, "alice@example.org", &a, &read_view).0,
        404
    );

    // Once the Email is gone, so are its parts.
    let gone = alice.call("Email/set", json!({ "destroy": [id] }));
    assert_eq!(gone["destroyed"], json!([id]), "{gone}");
    assert_eq!(download(&server, "alice@example.org", &a, &blob).0, 404);
    let r = alice.call("Email/parse", json!({ "blobIds": [blob] }));
    assert_eq!(r["notFound"], json!([blob]), "{r}");
}

#[test]
fn rfc8621_4_1_4_an_encrypted_message_is_one_smime_p7m_part() {
    require("openssl");
    let server = Server::start();
    let email = "enc@example.org";
    server.account_with_password(email, PASSWORD);
    let keys = pki::pair(email, 2048);
    server.ok(&["cert", "add", email, keys.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", email]);
    deliver(&server, email, &mixed());
    let user = server.jmap(email, PASSWORD);
    let id = only_email(&user);
    let got = get(&user, &id, json!({}))["list"][0].clone();
    assert_eq!(got["textBody"], json!([]), "{got}");
    let p7m = &got["attachments"][0];
    assert_eq!(got["attachments"].as_array().unwrap().len(), 1);
    assert_eq!(p7m["type"], "application/pkcs7-mime");
    assert_eq!(p7m["name"], "smime.p7m");
    assert_eq!(got["bodyStructure"]["blobId"], p7m["blobId"]);
    let (status, der) = download(
        &server,
        email,
        &user.account_id,
        p7m["blobId"].as_str().unwrap(),
    );
    assert_eq!(status, 200);
    assert_eq!(der.first(), Some(&0x30), "a DER/BER SEQUENCE, not base64");
    assert_eq!(p7m["size"], json!(der.len()));
    let inner = run(
        Command::new("openssl")
            .args(["cms", "-decrypt", "-binary", "-inform", "DER", "-recip"])
            .arg(&keys.cert)
            .arg("-inkey")
            .arg(&keys.key),
        &der,
    );
    let inner = lf(&inner);
    let want = lf(&mixed());
    let body_at = want.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    assert!(
        inner.ends_with(&want[body_at..]),
        "the CMS holds the original body:\n{}",
        String::from_utf8_lossy(&inner)
    );
}

/// An account with encryption on and its key handed over for server-side
/// reading (ARCHITECTURE.md "Server-side reading"), over JMAP.
fn reading_account(server: &Server, email: &str) -> JmapUser {
    server.account_with_password(email, PASSWORD);
    let keys = pki::pair(email, 2048);
    server.ok(&["cert", "add", email, keys.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", email]);
    let user = server.jmap(email, PASSWORD);
    let pem = String::from_utf8(keys.key_pem()).unwrap();
    let made = user.call(
        "PrivateKey/set",
        json!({ "create": { "k": { "privateKey": pem } } }),
    );
    assert!(made["created"]["k"].is_object(), "{made}");
    let on = user.call(
        "EncryptionSettings/set",
        json!({ "update": { "singleton": { "serverSideReading": true } } }),
    );
    assert!(on["updated"].is_object(), "{on}");
    user
}

#[test]
fn rfc8621_4_1_4_with_server_side_reading_parts_are_the_decrypted_ones() {
    let server = Server::start();
    let email = "reader@example.org";
    let user = reading_account(&server, email);
    deliver(&server, email, &mixed());
    let id = only_email(&user);
    let got = get(&user, &id, json!({}))["list"][0].clone();
    let bin = part_of(&got["attachments"], "application/octet-stream");
    let blob = bin["blobId"].as_str().unwrap().to_string();
    assert!(
        blob.starts_with('r'),
        "a part of the decrypted view: {blob}"
    );
    let (status, bytes) = download(&server, email, &user.account_id, &blob);
    assert_eq!((status, bytes), (200, binary()));
    // The stored view of the same Email is one smime.p7m part, never the
    // decrypted part under the stored view's id.
    let stored = format!("p{}", &blob[1..]);
    assert_eq!(download(&server, email, &user.account_id, &stored).0, 404);

    let off = user.call(
        "EncryptionSettings/set",
        json!({ "update": { "singleton": { "serverSideReading": false } } }),
    );
    assert!(off["updated"].is_object(), "{off}");
    assert_eq!(download(&server, email, &user.account_id, &blob).0, 404);
}
