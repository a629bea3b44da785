//! The session resource (RFC 8620 §2): capabilities with the limits the
//! server enforces, the one account the credentials open, and the URLs,
//! built from `jmap.public_url` or else the request's `Host` (and a trusted
//! proxy's forwarded headers), so that a client reaches the server by the
//! same name it used (ARCHITECTURE.md; `origin`). The WebSocket endpoint
//! (RFC 8887 §3) is advertised as a capability, its `url` built the same
//! way.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde_json::{json, Value};

use super::auth::{authenticate, Peer};
use super::origin::Origin;
use super::{capability, ids, limits, Server};
use crate::store::Account;

/// `GET /.well-known/jmap` and `GET /jmap/session`.
pub(crate) async fn handle(
    State(server): State<Arc<Server>>,
    peer: Peer,
    Extension(origin): Extension<Origin>,
    headers: HeaderMap,
) -> Response {
    let account = match authenticate(&server, &headers, peer).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let base = match origin.base_url() {
        Ok(base) => base,
        Err(refusal) => return refusal.into_response(),
    };
    let sending = server.ctx.relay.is_some();
    Json(session(
        &account,
        &base,
        server.ctx.max_upload_bytes,
        sending,
    ))
    .into_response()
}

/// The state of the session object itself. It changes only when the
/// capabilities do, i.e. with a new sealmail version.
pub(crate) const SESSION_STATE: &str = concat!("s", env!("CARGO_PKG_VERSION"));

fn core_capability(max_upload: u64) -> Value {
    json!({
        "maxSizeUpload": max_upload,
        "maxConcurrentUpload": limits::CONCURRENT_UPLOAD,
        "maxSizeRequest": limits::SIZE_REQUEST,
        "maxConcurrentRequests": limits::CONCURRENT_REQUESTS,
        "maxCallsInRequest": limits::CALLS_IN_REQUEST,
        "maxObjectsInGet": limits::OBJECTS_IN_GET,
        "maxObjectsInSet": limits::OBJECTS_IN_SET,
        "collationAlgorithms": ["i;ascii-casemap", "i;octet", "i;unicode-casemap"],
    })
}

fn session(account: &Account, base: &str, max_upload: u64, sending: bool) -> Value {
    let id = ids::account(account.id);
    let mail = json!({
        // why 1: a stored message lives in exactly one mailbox.
        "maxMailboxesPerEmail": 1,
        "maxMailboxDepth": null,
        "maxSizeMailboxName": 255,
        "maxSizeAttachmentsPerEmail": max_upload,
        "emailQuerySortOptions": ["receivedAt", "sentAt", "size", "from", "to", "subject", "hasKeyword", "someInThreadHaveKeyword", "allInThreadHaveKeyword"],
        "mayCreateTopLevelMailbox": true,
    });
    let encryption = json!({
        "maxCertificates": limits::CERTIFICATES,
        "algorithms": ["AES-256-CBC", "AES-128-CBC", "AES-256-GCM", "AES-128-GCM"],
    });
    let mut out = json!({
        "capabilities": {
            capability::CORE: core_capability(max_upload),
            capability::MAIL: {},
            capability::ENCRYPTION: {},
            capability::QUOTA: {},
            capability::AUTH: {},
            capability::WEBSOCKET: super::ws::capability(base),
        },
        "accounts": {
            id.clone(): {
                "name": account.address,
                "isPersonal": true,
                "isReadOnly": false,
                "accountCapabilities": {
                    capability::MAIL: mail,
                    capability::ENCRYPTION: encryption,
                    capability::QUOTA: {},
                    capability::AUTH: { "maxAppTokens": crate::store::MAX_APP_TOKENS },
                },
            },
        },
        "primaryAccounts": {
            capability::MAIL: id,
            capability::ENCRYPTION: id.clone(),
            capability::QUOTA: id.clone(),
            capability::AUTH: id,
        },
        "username": account.address,
        "apiUrl": format!("{base}/jmap/api"),
        "downloadUrl": format!("{base}/jmap/download/{{accountId}}/{{blobId}}/{{name}}?accept={{type}}"),
        "uploadUrl": format!("{base}/jmap/upload/{{accountId}}/"),
        "eventSourceUrl": format!("{base}/jmap/eventsource/?types={{types}}&closeafter={{closeafter}}&ping={{ping}}"),
        "state": SESSION_STATE,
    });
    if sending {
        // RFC 8621 §1.3.3: no delayed sending (the relay queues, not us).
        let account_capability = json!({ "maxDelayedSend": 0, "submissionExtensions": {} });
        let id = ids::account(account.id);
        out["capabilities"][capability::SUBMISSION] = json!({});
        out["accounts"][&id]["accountCapabilities"][capability::SUBMISSION] = account_capability;
        out["primaryAccounts"][capability::SUBMISSION] = json!(id);
    }
    out
}
