//! HTTP as the body-part tests speak it besides `JmapUser`: downloads
//! through the session's download URL, raw API requests, and walks over
//! the EmailBodyPart trees that come back.

use serde_json::Value;

use super::support::server::Server;

/// The password of every test account.
pub(crate) const PASSWORD: &str = "parts and pieces";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Downloads `blob` of `account` as `user`/`password` through the
/// session's downloadUrl; returns the status and the bytes.
pub(crate) fn download(server: &Server, user: &str, account: &str, blob: &str) -> (u16, Vec<u8>) {
    let url = format!(
        "http://127.0.0.1:{}/jmap/download/{account}/{blob}/part?accept=application/octet-stream",
        server.jmap_port
    );
    runtime().block_on(async {
        let r = reqwest::Client::new()
            .get(url)
            .basic_auth(user, Some(PASSWORD))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.bytes().await.unwrap().to_vec())
    })
}

/// The parts of `structure` depth first (multiparts included).
pub(crate) fn flatten(structure: &Value) -> Vec<Value> {
    let mut out = vec![structure.clone()];
    if let Some(subs) = structure["subParts"].as_array() {
        for s in subs {
            out.extend(flatten(s));
        }
    }
    out
}

pub(crate) fn part_of<'a>(list: &'a Value, ctype: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == ctype)
        .unwrap_or_else(|| panic!("no {ctype} in {list}"))
}

/// Posts the request object `body` to the API as `user`; returns the
/// response object.
pub(crate) fn api_raw(server: &Server, user: &str, body: &Value) -> Value {
    let url = format!("http://127.0.0.1:{}/jmap/api", server.jmap_port);
    runtime().block_on(async {
        let resp = reqwest::Client::new()
            .post(url)
            .basic_auth(user, Some(PASSWORD))
            .json(body)
            .send()
            .await
            .unwrap();
        resp.json().await.unwrap()
    })
}
