//! JMAP Quota (RFC 9425) against the real binary over raw HTTP (Python's
//! `urllib`, as a web client's `fetch` would): the capability in the
//! session, `Quota/get` with `used` that follows a delivery and
//! `hardLimit` that follows `sealmail account quota`, `Quota/changes`,
//! `Quota/query`, and no Quota object for an account without a quota.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};

use support::server::Server;
use support::tools::python;

const USER: &str = "alice@example.org";
const PASSWORD: &str = "pw";
const QUOTA: &str = "urn:ietf:params:jmap:quota";

/// GET the session (no body) or POST `body` to the API; prints the JSON.
const HTTP: &str = r#"
import base64, json, sys, urllib.request
port, user, password, body = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
if body:
    req = urllib.request.Request("http://127.0.0.1:%s/jmap/api" % port, data=body.encode(),
        headers={"Authorization": auth, "Content-Type": "application/json"})
else:
    req = urllib.request.Request("http://127.0.0.1:%s/.well-known/jmap" % port,
        headers={"Authorization": auth})
print(urllib.request.urlopen(req, timeout=30).read().decode())
"#;

fn http(server: &Server, body: Option<&Value>) -> Value {
    let body = body.map(Value::to_string).unwrap_or_default();
    let out = python(
        HTTP,
        &[&server.jmap_port.to_string(), USER, PASSWORD, &body],
    );
    serde_json::from_str(out.trim()).unwrap()
}

fn setup(quota: &str) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start_with_env(dir.path(), &[("SEALMAIL_LIMITS_ACCOUNT_QUOTA", quota)]);
    server.account_with_password(USER, PASSWORD);
    let session = http(&server, None);
    let account = session["primaryAccounts"][QUOTA]
        .as_str()
        .unwrap_or_else(|| panic!("no primary account for {QUOTA}: {session}"))
        .to_string();
    assert_eq!(session["capabilities"][QUOTA], json!({}), "{session}");
    assert_eq!(
        session["accounts"][&account]["accountCapabilities"][QUOTA],
        json!({}),
        "{session}"
    );
    (dir, server, account)
}

/// One call with the quota capability in `using`; its response.
fn call(server: &Server, method: &str, args: Value) -> (String, Value) {
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", QUOTA],
        "methodCalls": [[method, args, "c0"]],
    });
    let reply = http(server, Some(&body));
    let response = &reply["methodResponses"][0];
    (
        response[0].as_str().unwrap().to_string(),
        response[1].clone(),
    )
}

#[test]
fn quota_get_follows_delivery_and_the_cli() {
    let (_dir, server, account) = setup("1000000");
    let (name, got) = call(
        &server,
        "Quota/get",
        json!({"accountId": account, "ids": null}),
    );
    assert_eq!(name, "Quota/get", "{got}");
    let quota = &got["list"][0];
    assert_eq!(quota["used"], 0, "{got}");
    assert_eq!(quota["hardLimit"], 1_000_000, "{got}");
    assert_eq!(quota["resourceType"], "octets", "{got}");
    assert_eq!(quota["scope"], "account", "{got}");
    assert_eq!(quota["types"], json!(["Mail"]), "{got}");
    assert!(
        quota["name"].as_str().is_some_and(|n| !n.is_empty()),
        "{got}"
    );
    let id = quota["id"].as_str().unwrap().to_string();
    let state = got["state"].as_str().unwrap().to_string();

    let message = format!("Subject: q\r\n\r\n{}\r\n", "q".repeat(2000));
    assert!(server
        .lmtp_send(USER, message.as_bytes())
        .starts_with("250"));
    let (_, got) = call(
        &server,
        "Quota/get",
        json!({"accountId": account, "ids": [id, "nope"]}),
    );
    let used = got["list"][0]["used"].as_u64().unwrap();
    assert!(used >= 2000, "{got}");
    assert_eq!(got["notFound"], json!(["nope"]), "{got}");
    let (name, changes) = call(
        &server,
        "Quota/changes",
        json!({"accountId": account, "sinceState": state}),
    );
    assert_eq!(name, "Quota/changes", "{changes}");
    assert_eq!(changes["updated"], json!([id]), "{changes}");
    assert_ne!(changes["newState"], json!(state), "{changes}");

    server.ok(&["account", "quota", USER, "5MB"]);
    let (_, got) = call(&server, "Quota/get", json!({"accountId": account}));
    assert_eq!(got["list"][0]["hardLimit"], 5_000_000, "{got}");
    assert_eq!(got["list"][0]["used"], used, "{got}");
}

#[test]
fn quota_query_filters_and_query_changes_cannot_calculate() {
    let (_dir, server, account) = setup("1000000");
    let (_, all) = call(
        &server,
        "Quota/query",
        json!({"accountId": account, "filter": {"resourceType": "octets", "type": "Mail", "scope": "account"}, "sort": [{"property": "used"}]}),
    );
    assert_eq!(all["ids"].as_array().unwrap().len(), 1, "{all}");
    let (_, none) = call(
        &server,
        "Quota/query",
        json!({"accountId": account, "filter": {"resourceType": "count"}}),
    );
    assert_eq!(none["ids"], json!([]), "{none}");
    let (name, err) = call(
        &server,
        "Quota/queryChanges",
        json!({"accountId": account, "sinceQueryState": all["queryState"]}),
    );
    assert_eq!(name, "error", "{err}");
    assert_eq!(err["type"], "cannotCalculateChanges", "{err}");
}

#[test]
fn an_account_without_quota_has_no_quota_object() {
    let (_dir, server, account) = setup("0");
    let (name, got) = call(
        &server,
        "Quota/get",
        json!({"accountId": account, "ids": null}),
    );
    assert_eq!(name, "Quota/get", "{got}");
    assert_eq!(got["list"], json!([]), "{got}");
}
