//! Hostile JMAP request bodies: random bytes, truncated and mutated valid
//! requests, deeply nested JSON. Each gets a 4xx problem document (or a
//! method-level error), never a 5xx or a dead server, and a normal
//! request still works afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use support::jmap::JmapServer;

const VALID: &str = r#"{"using":["urn:ietf:params:jmap:core","urn:ietf:params:jmap:mail"],"methodCalls":[["Mailbox/get",{"accountId":"ACCOUNT","ids":null},"c0"],["Email/query",{"accountId":"ACCOUNT","filter":{"inMailbox":"m1"}},"c1"]]}"#;

fn bodies() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (0..VALID.len()).prop_map(|cut| VALID.as_bytes()[..cut].to_vec()),
        (0..VALID.len(), any::<u8>()).prop_map(|(i, b)| {
            let mut v = VALID.as_bytes().to_vec();
            v[i] = b;
            v
        }),
        (1usize..2000).prop_map(|depth| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()),
        Just(br#"{"using":[],"methodCalls":[["Email/get",{"accountId":"nope","ids":["x"]},"c"]],"createdIds":5}"#.to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_bodies_get_4xx_and_the_server_lives_on() {
    let server = JmapServer::start();
    let account = server.account("fuzz@example.org", "pw");
    let client = server.client("fuzz@example.org", "pw", &account);
    let valid = VALID.replace("ACCOUNT", &client.account_id);
    let mut runner = TestRunner::new(Config {
        cases: 300,
        ..Config::default()
    });
    let mut cases: Vec<Vec<u8>> = Vec::new();
    let strategy = bodies();
    for _ in 0..300 {
        cases.push(strategy.new_tree(&mut runner).unwrap().current());
    }
    for body in cases {
        let body = String::from_utf8_lossy(&body)
            .replace("ACCOUNT", &client.account_id)
            .into_bytes();
        let resp = client
            .post("/jmap/api")
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(
            status < 500,
            "{status} for {:?}",
            String::from_utf8_lossy(&body)
        );
    }
    let (status, out) = client.request(&serde_json::from_str(&valid).unwrap()).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["methodResponses"][0][0], json!("Mailbox/get"));
}
