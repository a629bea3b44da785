//! JMAP core (RFC 8620) and mail (RFC 8621) behaviour over HTTP against an
//! in-process server: session, authentication, request-level and method
//! errors, result references, upload limits, isolation between accounts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};

use support::jmap::{Client, JmapServer, CORE, ENCRYPTION, MAIL};

const PASSWORD: &str = "s3cret pass";

fn setup(email: &str) -> (JmapServer, Client) {
    let server = JmapServer::start();
    let account = server.account(email, PASSWORD);
    let client = server.client(email, PASSWORD, &account);
    (server, client)
}

const MESSAGE: &[u8] = b"From: Alice <alice@example.net>\r\nTo: bob@example.org\r\nSubject: Lunch plans\r\nMessage-ID: <m1@example.net>\r\nDate: Tue, 01 Oct 2024 10:00:00 +0000\r\n\r\nShall we meet at noon?\r\n";

#[tokio::test]
async fn session_urls_follow_the_host_header() {
    let (server, client) = setup("bob@example.org");
    let resp = client
        .get("/.well-known/jmap")
        .header("host", "mail.example.org:8443")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let s: Value = resp.json().await.unwrap();
    assert_eq!(s["apiUrl"], "http://mail.example.org:8443/jmap/api");
    assert!(s["uploadUrl"]
        .as_str()
        .unwrap()
        .ends_with("/jmap/upload/{accountId}/"));
    assert_eq!(s["username"], "bob@example.org");
    assert_eq!(s["primaryAccounts"][ENCRYPTION], client.account_id.as_str());
    assert_eq!(s["capabilities"][CORE]["maxSizeUpload"], 1024 * 1024);
    assert!(s["accounts"][&client.account_id]["accountCapabilities"][MAIL].is_object());
    let again: Value = client
        .get("/jmap/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["username"], "bob@example.org");
    drop(server);
}

#[tokio::test]
async fn wrong_password_is_401_with_challenge() {
    let (_server, mut client) = setup("bob@example.org");
    client.password = "wrong".into();
    let resp = client.get("/.well-known/jmap").send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    let anonymous = client
        .http
        .get(format!("{}/jmap/session", client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// A successful check is cached, but a password change (or a cleared
/// password) ends it at once, not when the cache entry expires.
#[tokio::test]
async fn a_changed_password_stops_working_at_once() {
    let (server, client) = setup("carol@example.org");
    let ok = client.get("/.well-known/jmap").send().await.unwrap();
    assert_eq!(ok.status(), 200, "first check, now cached");
    let account = server
        .store
        .account_by_address("carol@example.org")
        .unwrap();
    let id = account.id;
    server.store.set_password(id, Some("a new one")).unwrap();
    let old = client.get("/.well-known/jmap").send().await.unwrap();
    assert_eq!(old.status(), 401, "the old password is refused at once");
    let renewed = server.client("carol@example.org", "a new one", &account);
    let new = renewed.get("/.well-known/jmap").send().await.unwrap();
    assert_eq!(new.status(), 200);
    server.store.set_password(id, None).unwrap();
    let cleared = renewed.get("/.well-known/jmap").send().await.unwrap();
    assert_eq!(
        cleared.status(),
        401,
        "an account without password cannot log in"
    );
}

#[tokio::test]
async fn request_level_errors_are_problem_details() {
    let (_server, client) = setup("bob@example.org");
    let resp = client
        .post("/jmap/api")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["type"], "urn:ietf:params:jmap:error:notJSON");
    let (status, p) = client.request(&json!({ "using": [CORE] })).await;
    assert_eq!(
        (status, p["type"].as_str()),
        (400, Some("urn:ietf:params:jmap:error:notRequest"))
    );
    let calls: Vec<Value> = (0..33)
        .map(|i| json!(["Core/echo", {}, format!("c{i}")]))
        .collect();
    let (status, p) = client
        .request(&json!({ "using": [CORE], "methodCalls": calls }))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        (p["type"].as_str(), p["limit"].as_str()),
        (
            Some("urn:ietf:params:jmap:error:limit"),
            Some("maxCallsInRequest")
        )
    );
}

#[tokio::test]
async fn unknown_capabilities_in_using_are_ignored() {
    let (_server, client) = setup("bob@example.org");
    let body = json!({
        "using": [CORE, MAIL, "urn:example:not-a-capability", "urn:ietf:params:jmap:websocket"],
        "methodCalls": [["Mailbox/get", { "accountId": client.account_id, "ids": null }, "c0"]],
    });
    let (status, out) = client.request(&body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["methodResponses"][0][0], "Mailbox/get");
}

#[tokio::test]
async fn method_errors() {
    let (_server, client) = setup("bob@example.org");
    let (name, args) = client.call("Nope/get", json!({})).await;
    assert_eq!(
        (name.as_str(), args["type"].as_str()),
        ("error", Some("unknownMethod"))
    );
    let (name, args) = client.call("Mailbox/get", json!({ "ids": 7 })).await;
    assert_eq!(
        (name.as_str(), args["type"].as_str()),
        ("error", Some("invalidArguments"))
    );
    let body = json!({ "using": [CORE], "methodCalls": [["Certificate/get", { "accountId": client.account_id }, "c"]] });
    let (_, out) = client.request(&body).await;
    assert_eq!(
        out["methodResponses"][0][1]["type"], "unknownMethod",
        "capability not in using"
    );
    let (_, args) = client
        .call("Email/changes", json!({ "sinceState": "999999" }))
        .await;
    assert_eq!(args["type"], "cannotCalculateChanges");
}

#[tokio::test]
async fn result_references_chain_calls() {
    let (server, client) = setup("bob@example.org");
    server.deliver("bob@example.org", MESSAGE).await.unwrap();
    let out = client
        .calls(json!([
            ["Email/query", { "accountId": client.account_id, "filter": { "subject": "lunch" } }, "q"],
            ["Email/get", { "accountId": client.account_id,
                "#ids": { "resultOf": "q", "name": "Email/query", "path": "/ids" },
                "properties": ["threadId", "subject", "from", "preview", "mailboxIds"] }, "g"],
            ["Thread/get", { "accountId": client.account_id,
                "#ids": { "resultOf": "g", "name": "Email/get", "path": "/list/*/threadId" } }, "t"],
            ["Email/get", { "accountId": client.account_id,
                "#ids": { "resultOf": "nope", "name": "Email/query", "path": "/ids" } }, "bad"]
        ]))
        .await;
    let email = &out[1][1]["list"][0];
    assert_eq!(email["subject"], "Lunch plans", "{out:?}");
    assert_eq!(email["from"][0]["email"], "alice@example.net");
    assert_eq!(
        email["preview"].as_str().unwrap().trim(),
        "Shall we meet at noon?"
    );
    assert_eq!(out[2][1]["list"][0]["emailIds"][0], out[0][1]["ids"][0]);
    assert_eq!(out[3][1]["type"], "invalidResultReference");
}

#[tokio::test]
async fn upload_over_the_limit_is_refused() {
    let server = JmapServer::with_max_upload(1000);
    let account = server.account("bob@example.org", PASSWORD);
    let client = server.client("bob@example.org", PASSWORD, &account);
    let (status, body) = client.upload(&client.account_id, vec![b'x'; 1001]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["limit"], "maxSizeUpload");
    let (status, body) = client.upload(&client.account_id, vec![b'x'; 1000]).await;
    assert_eq!((status, body["size"].as_u64()), (201, Some(1000)));
}

#[tokio::test]
async fn other_accounts_are_out_of_reach() {
    let server = JmapServer::start();
    let alice_acct = server.account("alice@example.org", PASSWORD);
    let bob_acct = server.account("bob@example.org", PASSWORD);
    let alice = server.client("alice@example.org", PASSWORD, &alice_acct);
    let bob = server.client("bob@example.org", PASSWORD, &bob_acct);
    server.deliver("bob@example.org", MESSAGE).await.unwrap();
    let (_, bob_emails) = bob.call("Email/query", json!({})).await;
    let (_, got) = bob
        .call(
            "Email/get",
            json!({ "ids": bob_emails["ids"], "properties": ["blobId"] }),
        )
        .await;
    let blob = got["list"][0]["blobId"].as_str().unwrap().to_string();

    for method in [
        "Email/get",
        "Mailbox/get",
        "Certificate/get",
        "EncryptionSettings/get",
    ] {
        let (name, args) = alice
            .call(method, json!({ "accountId": bob.account_id, "ids": null }))
            .await;
        assert_eq!(
            (name.as_str(), args["type"].as_str()),
            ("error", Some("accountNotFound")),
            "{method}"
        );
    }
    let (_, args) = alice
        .call(
            "Certificate/set",
            json!({ "accountId": bob.account_id, "destroy": ["00"] }),
        )
        .await;
    assert_eq!(args["type"], "accountNotFound");
    assert_eq!(alice.download(&bob.account_id, &blob).await.0, 404);
    assert_eq!(alice.download(&alice.account_id, &blob).await.0, 404);
    assert_eq!(bob.download(&bob.account_id, &blob).await.0, 200);
    let (status, _) = alice.upload(&bob.account_id, b"x".to_vec()).await;
    assert_eq!(status, 404);
    // Bob's Email id means nothing in Alice's account.
    let (_, got) = alice
        .call("Email/get", json!({ "ids": bob_emails["ids"] }))
        .await;
    assert_eq!(got["notFound"], bob_emails["ids"]);
}

#[tokio::test]
async fn mailbox_set_changes_and_query() {
    let (_server, client) = setup("bob@example.org");
    let (_, before) = client.call("Mailbox/get", json!({ "ids": null })).await;
    let (_, set) = client
        .call(
            "Mailbox/set",
            json!({ "create": {
            "p": { "name": "Projects" },
            "c": { "name": "Sealmail", "parentId": "#p" } } }),
        )
        .await;
    let parent = set["created"]["p"]["id"].as_str().unwrap().to_string();
    let child = set["created"]["c"]["id"].as_str().unwrap().to_string();
    let (_, q) = client
        .call("Mailbox/query", json!({ "filter": { "parentId": parent } }))
        .await;
    assert_eq!(q["ids"], json!([child]));
    let (_, ch) = client
        .call("Mailbox/changes", json!({ "sinceState": before["state"] }))
        .await;
    assert_eq!(ch["created"], json!([parent, child]), "{ch}");
    let (_, set) = client
        .call(
            "Mailbox/set",
            json!({ "update": { child.clone(): { "name": "Renamed", "parentId": null } } }),
        )
        .await;
    assert!(
        set["updated"].as_object().unwrap().contains_key(&child),
        "{set}"
    );
    let (_, got) = client
        .call(
            "Mailbox/get",
            json!({ "ids": [child], "properties": ["name", "parentId"] }),
        )
        .await;
    assert_eq!(
        got["list"][0],
        json!({ "id": child, "name": "Renamed", "parentId": null })
    );
    let (_, q) = client
        .call("Mailbox/query", json!({ "filter": { "role": "inbox" } }))
        .await;
    let inbox = q["ids"][0].as_str().unwrap().to_string();
    let (_, set) = client
        .call(
            "Mailbox/set",
            json!({ "destroy": [inbox.clone(), child.clone()] }),
        )
        .await;
    assert_eq!(set["notDestroyed"][&inbox]["type"], "forbidden", "{set}");
    assert_eq!(set["destroyed"], json!([child]));
}

#[tokio::test]
async fn email_set_moves_flags_and_destroys() {
    let (server, client) = setup("bob@example.org");
    server.deliver("bob@example.org", MESSAGE).await.unwrap();
    let (_, q) = client
        .call(
            "Email/query",
            json!({ "filter": { "notKeyword": "$seen" } }),
        )
        .await;
    let id = q["ids"][0].as_str().unwrap().to_string();
    let (_, state) = client.call("Email/get", json!({ "ids": [] })).await;
    let (_, set) = client
        .call(
            "Email/set",
            json!({ "update": { id.clone(): { "keywords/$seen": true } } }),
        )
        .await;
    assert!(
        set["updated"].as_object().unwrap().contains_key(&id),
        "{set}"
    );
    let (_, q) = client
        .call(
            "Email/query",
            json!({ "filter": { "hasKeyword": "$seen" } }),
        )
        .await;
    assert_eq!(q["ids"], json!([id]));
    let (_, ch) = client
        .call("Email/changes", json!({ "sinceState": state["state"] }))
        .await;
    assert_eq!(ch["updated"], json!([id]), "{ch}");

    let (_, arch) = client
        .call("Mailbox/query", json!({ "filter": { "role": "archive" } }))
        .await;
    let archive = arch["ids"][0].as_str().unwrap().to_string();
    let (_, set) = client
        .call(
            "Email/set",
            json!({ "update": { id.clone(): { "mailboxIds": { archive.clone(): true } } } }),
        )
        .await;
    // RFC 8621 §4.1.1: the id stays; nothing but the server's own
    // changes to report.
    assert_eq!(set["updated"], json!({ id.clone(): null }), "{set}");
    let (_, got) = client
        .call(
            "Email/get",
            json!({ "ids": [id], "properties": ["mailboxIds", "keywords"] }),
        )
        .await;
    assert_eq!(got["list"][0]["mailboxIds"], json!({ archive: true }));
    assert_eq!(got["list"][0]["keywords"], json!({ "$seen": true }));
    let (_, set) = client
        .call("Email/set", json!({ "destroy": [id, "e1_1"] }))
        .await;
    assert_eq!(set["destroyed"], json!([id]), "{set}");
    assert_eq!(set["notDestroyed"]["e1_1"]["type"], "notFound");
    let (_, got) = client.call("Email/get", json!({ "ids": [id] })).await;
    assert_eq!(got["notFound"], json!([id]));
}

#[tokio::test]
async fn encrypted_email_shows_only_its_smime_part() {
    let email = "enc@example.org";
    let (server, client) = setup(email);
    let k = support::pki::pair(email, 2048);
    let account = server.store.account_by_address(email).unwrap();
    sealmail::manage::add_certificates(&server.store, &account, &k.cert_pem(), "").unwrap();
    sealmail::manage::update_encryption(&server.store, &account, Some(true), None, None).unwrap();
    server.deliver(email, MESSAGE).await.unwrap();
    let (_, q) = client
        .call("Email/query", json!({ "filter": { "from": "alice" } }))
        .await;
    let (_, got) = client
        .call(
            "Email/get",
            json!({ "ids": q["ids"], "fetchAllBodyValues": true,
            "properties": ["subject", "preview", "bodyValues", "textBody", "bodyStructure"] }),
        )
        .await;
    let e = &got["list"][0];
    assert_eq!(e["subject"], "Lunch plans", "{got}");
    assert_eq!(e["preview"], "");
    assert_eq!(e["bodyValues"], json!({}));
    assert_eq!(e["textBody"], json!([]));
    assert_eq!(e["bodyStructure"]["type"], "application/pkcs7-mime");
}

#[tokio::test]
async fn event_source_pushes_a_state_change_on_delivery() {
    let (server, client) = setup("bob@example.org");
    let mut resp = client
        .get("/jmap/eventsource/?types=*&closeafter=state&ping=0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    server.deliver("bob@example.org", MESSAGE).await.unwrap();
    let mut text = String::new();
    let read = async {
        while let Some(chunk) = resp.chunk().await.unwrap() {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the stream closes after the first state event");
    let (_, state) = client.call("Email/get", json!({ "ids": [] })).await;
    assert!(text.starts_with("event: state\ndata: "), "{text:?}");
    let data: Value =
        serde_json::from_str(text.lines().nth(1).unwrap().trim_start_matches("data: ")).unwrap();
    assert_eq!(data["changed"][&client.account_id]["Email"], state["state"]);
}
