//! Server-side reading over JMAP: PrivateKey/set (PEM and PKCS#12),
//! serverSideReading, Email/get, search and snippets of decrypted mail,
//! hostile keys, app tokens, and jmapc (PyPI) over HTTPS.

use std::process::Command;

use base64::Engine as _;
use serde_json::json;

use super::support;
use super::support::pki::pair;
use super::support::server::Server;
use super::support::tools::run;
use super::{enable_reading, encrypted_user_with_mail, message, read, PASSWORD, USER};

#[test]
fn jmap_private_key_and_server_side_reading() {
    let marker = "NARWHAL8812";
    let (server, keys) = encrypted_user_with_mail(marker);
    let user = server.jmap(USER, PASSWORD);
    let pem = String::from_utf8(keys.key_pem()).unwrap();
    // On without a key is refused.
    let refused = user.call(
        "EncryptionSettings/set",
        json!({"update": {"singleton": {"serverSideReading": true}}}),
    );
    assert_eq!(
        refused["notUpdated"]["singleton"]["type"],
        "invalidProperties"
    );

    let made = user.call(
        "PrivateKey/set",
        json!({"create": {"k": {"privateKey": pem}}}),
    );
    let created = &made["created"]["k"];
    assert_eq!(
        created["certificateId"].as_str().unwrap().len(),
        64,
        "{made}"
    );
    assert!(!made.to_string().contains("PRIVATE KEY"));
    let on = user.call(
        "EncryptionSettings/set",
        json!({"update": {"singleton": {"serverSideReading": true}}}),
    );
    assert!(on["updated"].get("singleton").is_some(), "{on}");
    let settings = user.call("EncryptionSettings/get", json!({"ids": null}));
    assert_eq!(settings["list"][0]["serverSideReading"], true);

    let got = email_text(&user);
    assert!(got.contains(&format!("{marker}-body")), "{got}");
    // Search and snippets see the decrypted body too (RFC 8621 §4.4.1, §5.1).
    let word = format!("{marker}-body");
    let found = user.calls(json!([
        ["Email/query", {"filter": {"body": word}}, "q"],
        ["SearchSnippet/get", {"filter": {"body": word},
            "#emailIds": {"resultOf": "q", "name": "Email/query", "path": "/ids"}}, "s"],
    ]));
    assert_eq!(found[0][1]["ids"].as_array().unwrap().len(), 1, "{found:?}");
    let preview = found[1][1]["list"][0]["preview"]
        .as_str()
        .unwrap_or_default();
    assert!(
        preview.contains(&format!("<mark>{word}</mark>")),
        "{found:?}"
    );

    // Destroying the key shows the message as stored again, at once.
    let id = created["id"].as_str().unwrap();
    let gone = user.call("PrivateKey/set", json!({"destroy": [id]}));
    assert_eq!(gone["destroyed"], json!([id]));
    let got = email_text(&user);
    assert!(!got.contains(&format!("{marker}-body")), "{got}");
    let listed = user.call("PrivateKey/get", json!({"ids": null}));
    assert_eq!(listed["list"], json!([]));
}

/// The text body value and preview of the first INBOX message.
fn email_text(user: &support::server::JmapUser) -> String {
    let replies = user.calls(json!([
        ["Email/query", {}, "q"],
        ["Email/get", {"#ids": {"resultOf": "q", "name": "Email/query", "path": "/ids"},
                       "properties": ["preview", "textBody", "bodyValues", "attachments"],
                       "fetchTextBodyValues": true}, "g"],
    ]));
    replies[1][1]["list"][0].to_string()
}

#[test]
fn jmap_refuses_hostile_keys_and_app_tokens() {
    let (server, keys) = encrypted_user_with_mail("IBIS9021");
    let user = server.jmap(USER, PASSWORD);
    let stranger = pair("stranger@example.org", 2048);
    let cases = [
        json!({"privateKey": String::from_utf8(stranger.key_pem()).unwrap()}),
        json!({"privateKey": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
        json!({"privateKey": "x".repeat(200_000)}),
        json!({"pkcs12": "not base64 !!"}),
        json!({"pkcs12": base64::engine::general_purpose::STANDARD.encode(b"garbage")}),
        json!({"privateKey": String::from_utf8(keys.key_pem()).unwrap(), "pkcs12": "AAAA"}),
        json!({"privateKey": String::from_utf8(keys.key_pem()).unwrap(), "extra": 1}),
    ];
    for case in cases {
        let r = user.call("PrivateKey/set", json!({"create": {"k": case}}));
        let kind = &r["notCreated"]["k"]["type"];
        assert!(kind == "invalidProperties", "{case}: {r}");
    }
    // An app token carries no password to wrap the key under.
    let token: serde_json::Value =
        serde_json::from_str(&server.ok(&["token", "add", USER, "--json"])).unwrap();
    let secret = token["secret"].as_str().unwrap().to_string();
    let reply = bearer_call(
        &server,
        &secret,
        json!(["PrivateKey/set", {"accountId": user.account_id,
               "create": {"k": {"privateKey": String::from_utf8(keys.key_pem()).unwrap()}}}, "c"]),
    );
    assert_eq!(reply["notCreated"]["k"]["type"], "forbidden", "{reply}");
}

pub(super) fn bearer_call(
    server: &Server,
    secret: &str,
    call: serde_json::Value,
) -> serde_json::Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{}/jmap/api", server.jmap_port);
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail",
                  "urn:sealmail:params:jmap:encryption"],
        "methodCalls": [call],
    });
    let reply: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(url)
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    reply["methodResponses"][0][1].clone()
}

#[test]
fn a_pkcs12_key_rotates_in_beside_the_first() {
    let (server, keys) = encrypted_user_with_mail("MARMOT6650");
    let user = server.jmap(USER, PASSWORD);
    let pem = String::from_utf8(keys.key_pem()).unwrap();
    user.call(
        "PrivateKey/set",
        json!({"create": {"k": {"privateKey": pem}}}),
    );
    // A second certificate, its key handed over as PKCS#12 (OpenSSL 3's
    // default PBES2/AES-256 encryption).
    let second = support::pki::self_signed(
        support::pki::scratch(),
        "reader-second",
        "rsa:2048",
        &format!("/CN=second/emailAddress={USER}"),
        &support::pki::smime_extensions(USER),
    );
    server.ok(&["cert", "add", USER, second.cert.to_str().unwrap()]);
    let p12 = run(
        Command::new("openssl").args([
            "pkcs12",
            "-export",
            "-inkey",
            second.key.to_str().unwrap(),
            "-in",
            second.cert.to_str().unwrap(),
            "-passout",
            "pass:p12 secret",
        ]),
        b"",
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode(&p12);
    let wrong = user.call(
        "PrivateKey/set",
        json!({"create": {"k": {"pkcs12": b64, "pkcs12Password": "nope"}}}),
    );
    let text = wrong["notCreated"]["k"]["description"]
        .as_str()
        .unwrap_or_default();
    assert!(text.contains("password"), "{wrong}");
    let made = user.call(
        "PrivateKey/set",
        json!({"create": {"k": {"pkcs12": b64, "pkcs12Password": "p12 secret"}}}),
    );
    assert!(made["created"].get("k").is_some(), "{made}");
    user.call(
        "EncryptionSettings/set",
        json!({"update": {"singleton": {"serverSideReading": true}}}),
    );
    let listed = user.call("PrivateKey/get", json!({"ids": null}));
    assert_eq!(listed["list"].as_array().unwrap().len(), 2);
    // New mail, encrypted to both certificates, opens; so does the old.
    let reply = server.lmtp_send(USER, &message("MARMOT6651"));
    assert!(reply.starts_with("250"));
    let seen = read(&server, USER, PASSWORD, "MARMOT6651-body");
    assert_eq!(seen["body_search"], "2");
    let first = read(&server, USER, PASSWORD, "MARMOT6650-body");
    assert!(first["body"].as_str().unwrap().contains("MARMOT6650-body"));
}

/// jmapc (PyPI), an independent JMAP client, over HTTPS: the session, an
/// Email/query and an Email/get with text body values.
const JMAPC: &str = r#"
import json, sys
from jmapc import Client, Ref
from jmapc.methods import EmailGet, EmailQuery
host, user, password = sys.argv[1:4]
client = Client.create_with_password(host=host, user=user, password=password)
results = client.request([
    EmailQuery(),
    EmailGet(ids=Ref("/ids"), fetch_text_body_values=True,
             properties=["subject", "textBody", "bodyValues", "preview"]),
])
email = results[1].response.data[0]
print(json.dumps({
    "subject": email.subject,
    "values": [v.value for v in (email.body_values or {}).values()],
    "preview": email.preview,
}))
"#;

#[test]
fn jmapc_gets_the_decrypted_body_values() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = support::imap::server_cert(dir.path(), "localhost");
    let tls_port = support::server::free_port();
    let listen = format!("127.0.0.1:{tls_port}");
    let server = Server::start_with_env(
        &dir.path().join("data"),
        &[
            ("SEALMAIL_TLS_CERT", cert.to_str().unwrap()),
            ("SEALMAIL_TLS_KEY", key.to_str().unwrap()),
            ("SEALMAIL_JMAP_TLS_LISTEN", &listen),
        ],
    );
    server.account_with_password(USER, PASSWORD);
    let keys = pair(USER, 2048);
    server.ok(&["cert", "add", USER, keys.cert.to_str().unwrap()]);
    server.ok(&["encryption", "enable", USER]);
    let marker = "QUOKKA7001";
    assert!(server.lmtp_send(USER, &message(marker)).starts_with("250"));
    enable_reading(&server, &keys);
    support::tools::require("python3");
    let script = dir.path().join("read_with_jmapc.py");
    std::fs::write(&script, JMAPC).unwrap();
    let out = run(
        Command::new("python3")
            .arg(&script)
            .args([&format!("localhost:{tls_port}"), USER, PASSWORD])
            .env("REQUESTS_CA_BUNDLE", &cert),
        b"",
    );
    let seen: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(seen["subject"].as_str().unwrap().contains(marker), "{seen}");
    let values = seen["values"].to_string();
    assert!(
        values.contains(&format!("The secret word is {marker}-body.")),
        "{seen}"
    );
    assert!(seen["preview"].as_str().unwrap().contains(marker), "{seen}");
}
