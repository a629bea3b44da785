//! The browser cannot be turned against a user (issue 13, item 5): a page
//! of another site, riding on the Basic credentials a browser caches,
//! cannot change anything through the JMAP listener, and a downloaded blob
//! is never rendered as an active document in the server's origin.
//! Requests are made with reqwest against the in-process JMAP server, as a
//! browser would send them (the `Origin`, the "simple" content types that
//! need no CORS preflight).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};

use support::jmap::{Client, JmapServer, CORE, ENCRYPTION};
use support::pki::pair;

const PASSWORD: &str = "correct horse";
const EVIL: &str = "https://evil.example";

/// A server with `email` opted in (one certificate, encryption on).
async fn opted_in(email: &str) -> (JmapServer, Client) {
    let server = JmapServer::start();
    let account = server.account(email, PASSWORD);
    let client = server.client(email, PASSWORD, &account);
    let pem = String::from_utf8(pair(email, 2048).cert_pem()).unwrap();
    let (_, args) = client
        .call(
            "Certificate/set",
            json!({ "create": { "k1": { "certificate": pem } } }),
        )
        .await;
    assert!(args["created"]["k1"]["id"].is_string(), "{args}");
    client
        .call(
            "EncryptionSettings/set",
            json!({ "update": { "singleton": { "isEnabled": true } } }),
        )
        .await;
    assert!(is_enabled(&client).await, "set-up: encryption is on");
    (server, client)
}

async fn is_enabled(client: &Client) -> bool {
    let (_, args) = client
        .call("EncryptionSettings/get", json!({ "ids": ["singleton"] }))
        .await;
    args["list"][0]["isEnabled"].as_bool().unwrap()
}

/// The request a foreign page would send to turn encryption off.
fn turn_off(client: &Client) -> String {
    json!({
        "using": [CORE, ENCRYPTION],
        "methodCalls": [[
            "EncryptionSettings/set",
            { "accountId": client.account_id, "update": { "singleton": { "isEnabled": false } } },
            "c0"
        ]],
    })
    .to_string()
}

#[tokio::test]
async fn only_same_origin_json_can_turn_encryption_off() {
    let (server, client) = opted_in("victim@example.org").await;
    let body = turn_off(&client);
    let attempts = [
        ("text/plain", Some(EVIL)),
        ("text/plain;charset=UTF-8", None),
        ("application/x-www-form-urlencoded", Some(EVIL)),
        ("application/x-www-form-urlencoded", None),
        ("multipart/form-data; boundary=x", Some(EVIL)),
        ("multipart/form-data; boundary=x", None),
        ("application/json", Some(EVIL)),
        ("application/json", Some("null")),
    ];
    for (ctype, origin) in attempts {
        let mut req = client
            .post("/jmap/api")
            .header("content-type", ctype)
            .body(body.clone());
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let problem: Value = resp.json().await.unwrap_or(Value::Null);
        let expected = if origin.is_some() { 403 } else { 415 };
        assert_eq!(status, expected, "{ctype} from {origin:?}: {problem}");
        assert!(
            problem["type"].is_string() && problem["detail"].is_string(),
            "{problem}"
        );
        assert!(
            is_enabled(&client).await,
            "{ctype} from {origin:?} turned encryption off"
        );
    }
    // The server's own pages and clients that send no Origin still work.
    let resp = client
        .post("/jmap/api")
        .header("content-type", "application/json; charset=utf-8")
        .header("origin", &server.base)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        !is_enabled(&client).await,
        "a same-origin page may change settings"
    );
    let (status, out) = client
        .request(&json!({ "using": [CORE], "methodCalls": [["Core/echo", { "x": 1 }, "e"]] }))
        .await;
    assert_eq!(
        (status, &out["methodResponses"][0][1]["x"]),
        (200, &json!(1))
    );
}

#[tokio::test]
async fn a_browser_saying_cross_site_is_refused() {
    let (_server, client) = opted_in("fetch@example.org").await;
    let resp = client
        .post("/jmap/api")
        .header("content-type", "application/json")
        .header("sec-fetch-site", "cross-site")
        .body(turn_off(&client))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(is_enabled(&client).await);
}

#[tokio::test]
async fn a_foreign_page_cannot_upload() {
    let server = JmapServer::start();
    let account = server.account("up@example.org", PASSWORD);
    let client = server.client("up@example.org", PASSWORD, &account);
    let path = format!("/jmap/upload/{}/", client.account_id);
    let resp = client
        .post(&path)
        .header("content-type", "text/plain")
        .header("origin", EVIL)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let (status, _) = client.upload(&client.account_id, b"hello".to_vec()).await;
    assert_eq!(
        status, 201,
        "an upload without Origin (a mail client) works"
    );
}

/// Downloads `path` and returns the response headers, asserting 200.
async fn download_headers(client: &Client, path: &str) -> reqwest::header::HeaderMap {
    let resp = client.get(path).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.headers().clone()
}

#[tokio::test]
async fn downloads_are_never_active_documents() {
    let server = JmapServer::start();
    let account = server.account("dl@example.org", PASSWORD);
    let client = server.client("dl@example.org", PASSWORD, &account);
    let page = b"<html><script>fetch('/jmap/api',{method:'POST'})</script></html>".to_vec();
    let (status, up) = client.upload(&client.account_id, page).await;
    assert_eq!(status, 201, "{up}");
    let blob = up["blobId"].as_str().unwrap();
    let session: Value = client
        .get("/jmap/session")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let template = session["downloadUrl"].as_str().unwrap();
    let from_template = |name: &str, ctype: &str| {
        template
            .replace(&server.base, "")
            .replace("{accountId}", &client.account_id)
            .replace("{blobId}", blob)
            .replace("{name}", name)
            .replace("{type}", ctype)
    };
    let paths = [
        from_template("page.html", "text/html"),
        from_template("page.svg", "image%2Fsvg%2Bxml"),
        from_template("page.xhtml", "application%2Fxhtml%2Bxml"),
        from_template("x.js", "text/javascript"),
        from_template("x", "multipart/x-mixed-replace%3B%20boundary%3Dx"),
        from_template("x", "text/plain%0D%0ASet-Cookie:%20a=b"),
        format!(
            "/jmap/download/{}/{blob}/p.html?accept=TEXT/HTML;%20charset=utf-8",
            client.account_id
        ),
    ];
    for path in &paths {
        let h = download_headers(&client, path).await;
        let ctype = h["content-type"].to_str().unwrap().to_ascii_lowercase();
        assert_eq!(ctype, "application/octet-stream", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("sandbox"), "{path}: {csp}");
        let disposition = h["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment;"),
            "{path}: {disposition}"
        );
        assert!(h.get("set-cookie").is_none(), "{path}");
    }
    let plain = download_headers(&client, &from_template("notes.txt", "text/plain")).await;
    assert_eq!(
        plain["content-type"], "text/plain",
        "a harmless type is kept"
    );
}

#[tokio::test]
async fn a_download_name_cannot_add_header_fields() {
    let server = JmapServer::start();
    let account = server.account("name@example.org", PASSWORD);
    let client = server.client("name@example.org", PASSWORD, &account);
    let (_, up) = client.upload(&client.account_id, b"data".to_vec()).await;
    let blob = up["blobId"].as_str().unwrap();
    let base = format!("/jmap/download/{}/{blob}", client.account_id);
    let h = download_headers(
        &client,
        &format!("{base}/a%22%0D%0ASet-Cookie:%20sid=evil%0D%0A%0D%0A.txt?accept=text/plain"),
    )
    .await;
    assert!(h.get("set-cookie").is_none());
    let disposition = h["content-disposition"].to_str().unwrap();
    assert_eq!(disposition.matches('"').count(), 2, "{disposition}");
    assert!(!disposition.contains(['\r', '\n']), "{disposition}");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let h = download_headers(&client, &format!("{base}/Gr%C3%BC%C3%9Fe.txt")).await;
    let disposition = h["content-disposition"].to_str().unwrap();
    assert!(
        disposition.contains("filename*=UTF-8''Gr%C3%BC%C3%9Fe.txt"),
        "{disposition}"
    );
}
