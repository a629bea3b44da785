//! The API endpoint (RFC 8620 §3): request object, limits, method calls
//! in order with result references, the method table.
//!
//! Capabilities in `using` that the server does not know are ignored, not
//! rejected (ARCHITECTURE.md: clients such as the jmap-client crate send
//! many); a method whose own capability is missing from `using` is an
//! `unknownMethod`, as §3.6.2 asks.
//!
//! What one request may cost is bounded: its body by `maxSizeRequest`, its
//! calls by `maxCallsInRequest`, the values its result references add by
//! `maxSizeRequest` too (see `reference`), and the response it builds by
//! [`SIZE_RESPONSE`]. A request over a session limit gets the request-level
//! `limit` error naming it (RFC 8620 §3.6.1); a call whose answer would
//! pass [`SIZE_RESPONSE`] gets `requestTooLarge` in its place and the calls
//! after it still run, so that no outcome of an earlier `/set` is lost.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::auth::{self, authenticate, Peer};
use super::call::Call;
use super::error::{Error, Problem};
use super::reference::{self, Answered, Budget, Unresolved};
use super::session::SESSION_STATE;
use super::{
    capability, certificate, email, guard, identity, limits, mailbox, private_key, quota,
    send_test, settings, submission, tokens, Server,
};
use crate::store::Account;

/// Bytes (as compact JSON) the method responses of one request may take
/// together. why 16 MiB: a response is held whole in memory while it is
/// built and sent; 16 MiB is above any answer a client needs at once
/// (500 Emails with their headers and previews take a few MiB) and
/// bounds what one request can make the server hold. RFC 8620 has no
/// session field for it, so it is not announced.
pub(crate) const SIZE_RESPONSE: usize = 16 * 1024 * 1024;

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
    let (request, request_bytes) = match read_request(body).await {
        Ok(r) => r,
        Err(p) => return p.into_response(),
    };
    match execute(&server, account, &headers, request, request_bytes).await {
        Ok(out) => Json(Value::Object(out)).into_response(),
        Err(p) => p.into_response(),
    }
}

/// Runs the request object `request` (`request_bytes` long as sent) for
/// `account` and gives the response object (RFC 8620 §3.4). The caller
/// has authenticated with the credentials in `auth` (the request's, or
/// the WebSocket handshake's) and holds one of the account's request
/// slots; the HTTP endpoint and the WebSocket (`ws`) share this.
pub(crate) async fn execute(
    server: &Arc<Server>,
    account: Account,
    auth: &HeaderMap,
    request: Value,
    request_bytes: usize,
) -> Result<Map<String, Value>, Problem> {
    let request: Request =
        serde_json::from_value(request).map_err(|e| Problem::not_request(e.to_string()))?;
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
    let password = auth::basic_password(auth);
    let reading = auth::reading_keys(server, account.id, auth).await;
    let mut call = Call {
        server: Arc::clone(server),
        account,
        created_ids: request.created_ids.clone().unwrap_or_default(),
        reading,
        password,
        composed: HashMap::new(),
        follow_up: Vec::new(),
    };
    let budget = Budget::new(request_bytes);
    let answered = run(&mut call, &request.using, request.method_calls, budget).await?;
    let mut out = Map::new();
    out.insert("methodResponses".into(), json!(answered));
    out.insert("sessionState".into(), json!(SESSION_STATE));
    if request.created_ids.is_some() {
        out.insert("createdIds".into(), json!(call.created_ids));
    }
    Ok(out)
}

/// The request body as JSON and its length.
async fn read_request(body: Body) -> Result<(Value, usize), Problem> {
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
    Ok((value, bytes.len()))
}

/// Runs the calls in order; each sees the responses before it. A request
/// whose references pass `maxSizeRequest` stops with that problem; the
/// calls before it have run (RFC 8620 has no way to report a request
/// processed in part; only a request built to amplify itself gets here).
async fn run(
    call: &mut Call,
    using: &[String],
    calls: Vec<(String, Map<String, Value>, String)>,
    mut budget: Budget,
) -> Result<Vec<Answered>, Problem> {
    let mut answered: Vec<Answered> = Vec::with_capacity(calls.len());
    let mut response_left = SIZE_RESPONSE;
    for (name, args, call_id) in calls {
        let started = std::time::Instant::now();
        let result = match reference::resolve(args, &answered, &name, &mut budget) {
            Ok(args) => dispatch(call, using, &name, args).await,
            Err(Unresolved::Call(e)) => Err(e),
            Err(Unresolved::Request(p)) => return Err(p),
        };
        crate::metrics::jmap_method(&name, started.elapsed());
        let (name, value) = match result {
            Ok(value) => within_response(&mut response_left, name, value),
            Err(e) => error_response(&mut response_left, &e),
        };
        let follow_up = std::mem::take(&mut call.follow_up);
        answered.push((name, value, call_id.clone()));
        for (name, value) in follow_up {
            let (name, value) = within_response(&mut response_left, name, value);
            answered.push((name, value, call_id.clone()));
        }
    }
    Ok(answered)
}

/// `value` as the call's answer, unless it would take the response past
/// [`SIZE_RESPONSE`]: then `requestTooLarge` in its place.
fn within_response(left: &mut usize, name: String, value: Value) -> (String, Value) {
    match reference::json_len(&value, *left) {
        Some(n) => {
            *left -= n;
            (name, value)
        }
        None => {
            let e = Error::RequestTooLarge(format!(
                "the answer to {name} would take the response past {SIZE_RESPONSE} bytes; \
                 ask for fewer ids or properties (or set maxBodyValueBytes), \
                 or split the calls over several requests"
            ));
            error_response(left, &e)
        }
    }
}

/// The method error `e` as a call's answer, charged to the response.
fn error_response(left: &mut usize, e: &Error) -> (String, Value) {
    let value = e.classify().to_json();
    // why no refusal: an error object is a few hundred bytes, and a
    // request has at most maxCallsInRequest of them.
    *left = left.saturating_sub(reference::json_len(&value, *left).unwrap_or(*left));
    ("error".into(), value)
}

/// The capability a method belongs to.
fn capability_of(name: &str) -> &'static str {
    match name.split_once('/').map(|(t, _)| t) {
        Some("Core") => capability::CORE,
        Some("Certificate" | "EncryptionSettings" | "PrivateKey") => capability::ENCRYPTION,
        Some("Quota") => capability::QUOTA,
        Some("AppToken") => capability::AUTH,
        Some("Identity" | "EmailSubmission") => capability::SUBMISSION,
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
        "Email/queryChanges" => email::query_changes(call, args).await,
        "SearchSnippet/get" => email::snippet_get(call, args).await,
        "Email/changes" => email::changes(call, args).await,
        "Email/set" => email::set(call, args).await,
        "Email/import" => email::import(call, args).await,
        "Email/parse" => email::parse_blobs(call, args).await,
        "Thread/get" => email::thread_get(call, args).await,
        "Thread/changes" => email::thread_changes(call, args).await,
        "Certificate/get" => certificate::get(call, args).await,
        "Certificate/query" => certificate::query(call, args).await,
        "Certificate/changes" => certificate::changes(call, args).await,
        "Certificate/set" => certificate::set(call, args).await,
        "EncryptionSettings/get" => settings::get(call, args).await,
        "EncryptionSettings/set" => settings::set(call, args).await,
        "EncryptionSettings/sendTest" => send_test::send_test(call, args).await,
        "PrivateKey/get" => private_key::get(call, args).await,
        "PrivateKey/set" => private_key::set(call, args).await,
        "AppToken/get" => tokens::get(call, args).await,
        "AppToken/set" => tokens::set(call, args).await,
        "Identity/get" => identity::get(call, args).await,
        "Identity/changes" => identity::changes(call, args).await,
        "EmailSubmission/set" => submission::set(call, args).await,
        "Quota/get" => quota::get(call, args).await,
        "Quota/changes" => quota::changes(call, args).await,
        "Quota/query" => quota::query(call, args).await,
        "Quota/queryChanges" => quota::query_changes(call, args).await,
        _ => Err(Error::UnknownMethod(name.to_string())),
    }
}
