//! The JMAP encryption extension (`urn:sealmail:params:jmap:encryption`)
//! over HTTP against an in-process server: Certificate/set with every
//! rule, rotation checked with `openssl cms -decrypt`, EncryptionSettings.
//! The jmap-client crate cannot express custom methods, so these post the
//! JSON themselves (reqwest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use base64::Engine as _;
use serde_json::{json, Value};

use support::cert_corpus as corpus;
use support::jmap::{Client, JmapServer};
use support::pki::{self, pair, smime_extensions, KeyPair};
use support::tools::{lf, openssl_decrypt, run_unchecked};

const PASSWORD: &str = "correct horse";

fn setup(email: &str) -> (JmapServer, Client) {
    let server = JmapServer::start();
    let account = server.account(email, PASSWORD);
    let client = server.client(email, PASSWORD, &account);
    (server, client)
}

async fn create_cert(client: &Client, cert: Value) -> Value {
    let (name, args) = client
        .call("Certificate/set", json!({ "create": { "k1": cert } }))
        .await;
    assert_eq!(name, "Certificate/set", "{args}");
    args
}

fn pem_text(k: &KeyPair) -> String {
    String::from_utf8(k.cert_pem()).unwrap()
}

/// The SetError of creation `k1`, asserting its type.
fn not_created<'a>(args: &'a Value, kind: &str) -> &'a Value {
    let err = &args["notCreated"]["k1"];
    assert_eq!(err["type"], kind, "{args}");
    err
}

#[tokio::test]
async fn create_from_pem_then_get_query_changes() {
    let email = "pem@example.org";
    let (_server, client) = setup(email);
    let k = pair(email, 2048);
    let (_, before) = client.call("Certificate/get", json!({ "ids": null })).await;
    let args = create_cert(
        &client,
        json!({ "certificate": pem_text(&k), "description": "laptop" }),
    )
    .await;
    let created = &args["created"]["k1"];
    let fp = corpus::openssl_fingerprint(&k.cert);
    assert_eq!(created["id"], fp.as_str(), "{args}");
    assert_eq!(created["fingerprint"], fp.as_str());
    assert_eq!(created["emailAddresses"], json!([email]));
    assert_eq!(created["keyAlgorithm"], "RSA");
    assert_eq!(created["keySize"], 2048);
    assert_eq!(created["isActive"], true);
    assert!(created["notAfter"].as_str().unwrap().ends_with('Z'));

    let (_, got) = client.call("Certificate/get", json!({ "ids": [fp] })).await;
    assert_eq!(got["list"][0]["description"], "laptop");
    let (_, q) = client
        .call(
            "Certificate/query",
            json!({ "filter": { "isActive": true } }),
        )
        .await;
    assert_eq!(q["ids"], json!([fp]));
    let (_, ch) = client
        .call(
            "Certificate/changes",
            json!({ "sinceState": before["state"] }),
        )
        .await;
    assert_eq!(ch["created"], json!([fp]), "{ch}");
}

#[tokio::test]
async fn create_from_der_upload_by_blob_id() {
    let email = "der@example.org";
    let (_server, client) = setup(email);
    let k = pair(email, 2048);
    let (status, up) = client.upload(&client.account_id, k.cert_der()).await;
    assert_eq!(status, 201, "{up}");
    let args = create_cert(&client, json!({ "blobId": up["blobId"] })).await;
    assert_eq!(
        args["created"]["k1"]["id"],
        corpus::openssl_fingerprint(&k.cert).as_str(),
        "{args}"
    );
}

#[tokio::test]
async fn create_from_base64_der_text() {
    let email = "b64@example.org";
    let (_server, client) = setup(email);
    let k = pair(email, 2048);
    let b64 = base64::engine::general_purpose::STANDARD.encode(k.cert_der());
    let args = create_cert(&client, json!({ "certificate": b64 })).await;
    assert_eq!(
        args["created"]["k1"]["fingerprint"],
        corpus::openssl_fingerprint(&k.cert).as_str()
    );
}

#[tokio::test]
async fn chain_keeps_the_leaf_and_skips_the_ca() {
    let email = "chain@example.org";
    let (_server, client) = setup(email);
    let dir = pki::tempdir();
    let (leaf, ca) = corpus::chain(dir.path(), email);
    let pem = String::from_utf8(corpus::concat(&[&leaf, &ca])).unwrap();
    let args = create_cert(&client, json!({ "certificate": pem })).await;
    assert_eq!(
        args["created"]["k1"]["id"],
        corpus::openssl_fingerprint(&leaf).as_str(),
        "{args}"
    );
    let (_, all) = client.call("Certificate/get", json!({ "ids": null })).await;
    assert_eq!(all["list"].as_array().unwrap().len(), 1, "{all}");
}

#[tokio::test]
async fn duplicate_is_already_exists_with_existing_id() {
    let email = "dup@example.org";
    let (_server, client) = setup(email);
    let k = pair(email, 2048);
    create_cert(&client, json!({ "certificate": pem_text(&k) })).await;
    let args = create_cert(&client, json!({ "certificate": pem_text(&k) })).await;
    let err = not_created(&args, "alreadyExists");
    assert_eq!(
        err["existingId"],
        corpus::openssl_fingerprint(&k.cert).as_str()
    );
}

/// Rejections carry the CLI's message: the rule and what to do.
async fn rejected(email: &str, cert_pem: Vec<u8>, words: &[&str]) {
    let (_server, client) = setup(email);
    let text = String::from_utf8(cert_pem).unwrap();
    let args = create_cert(&client, json!({ "certificate": text })).await;
    let err = not_created(&args, "invalidProperties");
    assert_eq!(err["properties"], json!(["certificate"]));
    let description = err["description"].as_str().unwrap();
    for w in words {
        assert!(description.contains(w), "{description:?} lacks {w:?}");
    }
}

#[tokio::test]
async fn expired_is_refused_naming_the_date() {
    let dir = pki::tempdir();
    let email = "old@example.org";
    let cert = corpus::dated(dir.path(), email, "20200101000000Z", "20210101000000Z");
    rejected(
        email,
        std::fs::read(cert).unwrap(),
        &["expired on 2021-01-01", "upload a current one"],
    )
    .await;
}

#[tokio::test]
async fn ca_certificate_is_refused() {
    let dir = pki::tempdir();
    let ca = corpus::ca(dir.path());
    rejected(
        "ca@example.org",
        std::fs::read(ca).unwrap(),
        &["CA certificate"],
    )
    .await;
}

#[tokio::test]
async fn wrong_address_is_refused() {
    let other = pair("someone-else@example.org", 2048);
    rejected(
        "me@example.org",
        other.cert_pem(),
        &["matches none of the account's addresses", "me@example.org"],
    )
    .await;
}

#[tokio::test]
async fn ec_key_on_another_curve_is_refused() {
    let dir = pki::tempdir();
    let email = "ec@example.org";
    let key = corpus::shared_key(
        "ec-k1",
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
        ],
    );
    let cert = corpus::self_signed(
        dir.path(),
        "ec",
        &key,
        &corpus::subject_for(email),
        &smime_extensions(email),
    );
    rejected(
        email,
        std::fs::read(cert).unwrap(),
        &["secp256k1", "P-256, P-384 or P-521"],
    )
    .await;
}

#[tokio::test]
async fn neither_certificate_nor_blob_is_invalid() {
    let (_server, client) = setup("none@example.org");
    let args = create_cert(&client, json!({ "description": "x" })).await;
    not_created(&args, "invalidProperties");
    let args = create_cert(&client, json!({ "blobId": "00".repeat(32) })).await;
    not_created(&args, "blobNotFound");
}

async fn enable(client: &Client, on: bool) -> Value {
    let (_, args) = client
        .call(
            "EncryptionSettings/set",
            json!({ "update": { "singleton": { "isEnabled": on } } }),
        )
        .await;
    args
}

#[tokio::test]
async fn settings_get_and_set() {
    let email = "settings@example.org";
    let (_server, client) = setup(email);
    let (_, got) = client
        .call("EncryptionSettings/get", json!({ "ids": null }))
        .await;
    let s = &got["list"][0];
    assert_eq!(s["id"], "singleton");
    assert_eq!(s["isEnabled"], false);
    assert_eq!(s["algorithm"], "AES-256-CBC");
    assert_eq!(
        s["encryptOnAppend"], true,
        "appends are encrypted by default"
    );
    assert_eq!(s["warnings"], json!([]));

    let refused = enable(&client, true).await;
    let err = &refused["notUpdated"]["singleton"];
    assert_eq!(err["type"], "invalidProperties", "{refused}");
    assert!(err["description"]
        .as_str()
        .unwrap()
        .contains("no active certificate"));

    create_cert(
        &client,
        json!({ "certificate": pem_text(&pair(email, 2048)) }),
    )
    .await;
    let (_, ok) = client
        .call(
            "EncryptionSettings/set",
            json!({ "update": { "singleton": { "isEnabled": true, "algorithm": "AES-128-CBC", "encryptOnAppend": false } } }),
        )
        .await;
    assert!(
        ok["updated"].as_object().unwrap().contains_key("singleton"),
        "{ok}"
    );
    let (_, got) = client
        .call(
            "EncryptionSettings/get",
            json!({ "ids": ["singleton", "other"] }),
        )
        .await;
    assert_eq!(got["list"][0]["isEnabled"], true);
    assert_eq!(got["list"][0]["algorithm"], "AES-128-CBC");
    assert_eq!(
        got["list"][0]["encryptOnAppend"], false,
        "the user opted out"
    );
    assert_eq!(got["notFound"], json!(["other"]));

    let (_, bad) = client
        .call(
            "EncryptionSettings/set",
            json!({ "update": { "singleton": { "warnings": [] } } }),
        )
        .await;
    assert_eq!(bad["notUpdated"]["singleton"]["type"], "invalidProperties");
}

#[tokio::test]
async fn last_active_certificate_cannot_go_while_encryption_is_on() {
    let email = "last@example.org";
    let (_server, client) = setup(email);
    let k = pair(email, 2048);
    let fp = corpus::openssl_fingerprint(&k.cert);
    create_cert(&client, json!({ "certificate": pem_text(&k) })).await;
    enable(&client, true).await;
    let (_, args) = client
        .call(
            "Certificate/set",
            json!({ "update": { fp.clone(): { "isActive": false } }, "destroy": [fp] }),
        )
        .await;
    for err in [&args["notUpdated"][&fp], &args["notDestroyed"][&fp]] {
        assert_eq!(err["type"], "invalidProperties", "{args}");
        assert!(err["description"]
            .as_str()
            .unwrap()
            .contains("disable encryption or add a certificate first"));
    }
}

#[tokio::test]
async fn over_quota_past_twenty_certificates() {
    let email = "many@example.org";
    let (server, client) = setup(email);
    let account = server.store.account_by_address(email).unwrap();
    let dir = pki::tempdir();
    let key = corpus::rsa_key();
    for i in 0..20 {
        // Same key, distinct certificates: each self-signed run gets a new serial.
        let cert = corpus::self_signed(
            dir.path(),
            &format!("c{i}"),
            &key,
            &corpus::subject_for(email),
            &smime_extensions(email),
        );
        sealmail::manage::add_certificates(
            &server.store,
            &account,
            &std::fs::read(cert).unwrap(),
            "",
        )
        .unwrap();
    }
    let args = create_cert(
        &client,
        json!({ "certificate": pem_text(&pair(email, 2048)) }),
    )
    .await;
    not_created(&args, "overQuota");
}

/// A bundle counts each of its certificates: 21 in one PKCS#7 upload on
/// an empty account are refused whole, over JMAP and from the CLI's door
/// (`manage::add_certificates`).
#[tokio::test]
async fn a_bundle_counts_each_certificate_against_the_limit() {
    let email = "bundle@example.org";
    let (server, client) = setup(email);
    let dir = pki::tempdir();
    let key = corpus::rsa_key();
    let certs: Vec<_> = (0..21)
        .map(|i| {
            corpus::self_signed(
                dir.path(),
                &format!("b{i}"),
                &key,
                &corpus::subject_for(email),
                &smime_extensions(email),
            )
        })
        .collect();
    let paths: Vec<&std::path::Path> = certs.iter().map(|p| p.as_path()).collect();
    let bundle = corpus::pkcs7(&paths, false);
    let args = create_cert(
        &client,
        json!({ "certificate": String::from_utf8(bundle.clone()).unwrap() }),
    )
    .await;
    let err = not_created(&args, "overQuota");
    assert!(
        err["description"].as_str().unwrap().contains("at most 20"),
        "{err}"
    );
    let account = server.store.account_by_address(email).unwrap();
    assert!(server
        .store
        .list_certificates(account.id)
        .unwrap()
        .is_empty());
    let cli_door = sealmail::manage::add_certificates(&server.store, &account, &bundle, "");
    assert!(
        matches!(
            cli_door,
            Err(sealmail::manage::ManageError::TooManyCertificates { adding: 21, .. })
        ),
        "{cli_door:?}"
    );
    // Twenty fit.
    let twenty = corpus::pkcs7(&paths[..20], false);
    sealmail::manage::add_certificates(&server.store, &account, &twenty, "").unwrap();
    assert_eq!(
        server.store.list_certificates(account.id).unwrap().len(),
        20
    );
}

fn decrypts(smime: &[u8], k: &KeyPair) -> bool {
    let out = run_unchecked(
        Command::new("openssl")
            .args(["cms", "-decrypt", "-binary", "-recip"])
            .arg(&k.cert)
            .arg("-inkey")
            .arg(&k.key),
        smime,
    );
    out.status.success()
}

/// The stored bytes of the newest message in the inbox, downloaded.
async fn newest_download(client: &Client) -> Vec<u8> {
    let out = client
        .calls(json!([
            ["Email/query", { "accountId": client.account_id, "sort": [{ "property": "receivedAt", "isAscending": false }] }, "q"],
            ["Email/get", { "accountId": client.account_id, "#ids": { "resultOf": "q", "name": "Email/query", "path": "/ids" }, "properties": ["blobId", "receivedAt"] }, "g"]
        ]))
        .await;
    let list = out[1][1]["list"].as_array().unwrap();
    let blob = list[0]["blobId"].as_str().unwrap();
    let (status, bytes) = client.download(&client.account_id, blob).await;
    assert_eq!(status, 200);
    bytes
}

#[tokio::test]
async fn rotation_two_active_then_deactivate_the_first() {
    let email = "rotate@example.org";
    let (server, client) = setup(email);
    let first = pair(email, 2048);
    let dir = pki::tempdir();
    let second = pki::self_signed(
        dir.path(),
        "second",
        "rsa:2048",
        &corpus::subject_for(email),
        &smime_extensions(email),
    );
    for k in [&first, &second] {
        let args = create_cert(&client, json!({ "certificate": pem_text(k) })).await;
        assert!(args["created"]["k1"].is_object(), "{args}");
    }
    enable(&client, true).await;
    let message =
        b"From: a@example.net\r\nTo: rotate@example.org\r\nSubject: one\r\n\r\nfirst secret\r\n";
    server.deliver(email, message).await.unwrap();
    let stored = newest_download(&client).await;
    for k in [&first, &second] {
        let inner = openssl_decrypt(&stored, &k.cert, &k.key);
        assert!(
            lf(&inner).ends_with(b"\n\nfirst secret\n"),
            "{}",
            String::from_utf8_lossy(&inner)
        );
    }

    let fp = corpus::openssl_fingerprint(&first.cert);
    let (_, args) = client
        .call(
            "Certificate/set",
            json!({ "update": { fp.clone(): { "isActive": false } } }),
        )
        .await;
    assert!(
        args["updated"].as_object().unwrap().contains_key(&fp),
        "{args}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await; // a later receivedAt
    let message =
        b"From: a@example.net\r\nTo: rotate@example.org\r\nSubject: two\r\n\r\nsecond secret\r\n";
    server.deliver(email, message).await.unwrap();
    let stored = newest_download(&client).await;
    assert!(decrypts(&stored, &second));
    assert!(
        !decrypts(&stored, &first),
        "a deactivated certificate must not be a recipient"
    );
}
