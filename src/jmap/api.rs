//! The API endpoint (RFC 8620 §3): request object, limits, method calls
//! in order with result references, the method table.
//!
//! Capabilities in `using` that the server does not know are ignored, not
//! rejected (ARCHITECTURE.md: clients such as the jmap-client crate send
//! many); a method whose own capability is missing from `using` is an
//! `unknownMethod`, as §3.6.2 asks.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::{authenticate, Peer};
use super::call::Call;
use super::error::{Error, Problem};
use super::reference::{self, Answered};
use super::session::SESSION_STATE;
use super::{capability, certificate, email, guard, limits, mailbox, quota, settings, Server};

/// The request object (RFC 8620 §3.3).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    using: Vec<String>,
    method_calls: Vec<(String, Map<String, Value>, String)>,
    #[serde(default)]
    created_ids: Option<HashMap<String, String>>,
}

/// `POST /jmap/api`.
pub(crate) async fn handle(
    State(server): State<Arc<Server>>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(p) = guard::require_json(&headers) {
        return p.into_response();
    }
    let account = match authenticate(&server, &headers, peer).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(_slot) = server.request_slots.try_acquire(account.id) else {
        let detail = format!(
            "at most {} API requests of one account at once; retry when one has finished",
            limits::CONCURRENT_REQUESTS
        );
        return Problem::limit("maxConcurrentRequests", detail).into_response();
    };
    let request = match read_request(body).await {
        Ok(r) => r,
        Err(p) => return p.into_response(),
    };
    let mut call = Call {
        server: Arc::clone(&server),
        account,
        created_ids: request.created_ids.clone().unwrap_or_default(),
    };
    let answered = run(&mut call, &request.using, request.method_calls).await;
    let mut out = json!({
        "methodResponses": answered,
        "sessionState": SESSION_STATE,
    });
    if let (Some(_), Some(obj)) = (request.created_ids, out.as_object_mut()) {
        obj.insert("createdIds".into(), json!(call.created_ids));
    }
    Json(out).into_response()
}

async fn read_request(body: Body) -> Result<Request, Problem> {
    let read = axum::body::to_bytes(body, limits::SIZE_REQUEST);
    let bytes = tokio::time::timeout(limits::BODY_READ_TIMEOUT, read)
        .await
        .map_err(|_| {
            Problem::not_request(format!(
                "the request body did not arrive within {} s; send it whole",
                limits::BODY_READ_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|_| {
            Problem::limit(
                "maxSizeRequest",
                format!("the request is larger than {} bytes", limits::SIZE_REQUEST),
            )
        })?;
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| Problem::not_json(e.to_string()))?;
    let request: Request =
        serde_json::from_value(value).map_err(|e| Problem::not_request(e.to_string()))?;
    if request.method_calls.len() > limits::CALLS_IN_REQUEST {
        return Err(Problem::limit(
            "maxCallsInRequest",
            format!(
                "{} method calls, at most {} per request",
                request.method_calls.len(),
                limits::CALLS_IN_REQUEST
            ),
        ));
    }
    Ok(request)
}

/// Runs the calls in order; each sees the responses before it.
async fn run(
    call: &mut Call,
    using: &[String],
    calls: Vec<(String, Map<String, Value>, String)>,
) -> Vec<Answered> {
    let mut answered: Vec<Answered> = Vec::with_capacity(calls.len());
    for (name, args, call_id) in calls {
        let result = match reference::resolve(args, &answered) {
            Ok(args) => dispatch(call, using, &name, args).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(value) => answered.push((name, value, call_id)),
            Err(e) => answered.push(("error".into(), e.classify().to_json(), call_id)),
        }
    }
    answered
}

/// The capability a method belongs to.
fn capability_of(name: &str) -> &'static str {
    match name.split_once('/').map(|(t, _)| t) {
        Some("Core") => capability::CORE,
        Some("Certificate" | "EncryptionSettings") => capability::ENCRYPTION,
        Some("Quota") => capability::QUOTA,
        _ => capability::MAIL,
    }
}

async fn dispatch(
    call: &mut Call,
    using: &[String],
    name: &str,
    args: Map<String, Value>,
) -> Result<Value, Error> {
    let needed = capability_of(name);
    if needed != capability::CORE && !using.iter().any(|u| u == needed) {
        return Err(Error::UnknownMethod(format!(
            "{name} (add {needed} to `using`)"
        )));
    }
    match name {
        "Core/echo" => Ok(Value::Object(args)),
        "Mailbox/get" => mailbox::get(call, args).await,
        "Mailbox/query" => mailbox::query(call, args).await,
        "Mailbox/changes" => mailbox::changes(call, args).await,
        "Mailbox/set" => mailbox::set(call, args).await,
        "Email/get" => email::get(call, args).await,
        "Email/query" => email::query(call, args).await,
        "Email/changes" => email::changes(call, args).await,
        "Email/set" => email::set(call, args).await,
        "Email/import" => email::import(call, args).await,
        "Thread/get" => email::thread_get(call, args).await,
        "Thread/changes" => email::thread_changes(call, args).await,
        "Certificate/get" => certificate::get(call, args).await,
        "Certificate/query" => certificate::query(call, args).await,
        "Certificate/changes" => certificate::changes(call, args).await,
        "Certificate/set" => certificate::set(call, args).await,
        "EncryptionSettings/get" => settings::get(call, args).await,
        "EncryptionSettings/set" => settings::set(call, args).await,
        "Quota/get" => quota::get(call, args).await,
        "Quota/changes" => quota::changes(call, args).await,
        "Quota/query" => quota::query(call, args).await,
        "Quota/queryChanges" => quota::query_changes(call, args).await,
        _ => Err(Error::UnknownMethod(name.to_string())),
    }
}
