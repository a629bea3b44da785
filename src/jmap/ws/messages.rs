//! The messages of JMAP over WebSocket (RFC 8887 §4.3): what a client's
//! text message asks for, and the server's answers.
//!
//! Every client message is a JSON object whose `@type` says what it is:
//! `Request` (§4.3.2, the RFC 8620 request object plus an optional `id`),
//! `WebSocketPushEnable` (§4.3.5.2) or `WebSocketPushDisable` (§4.3.5.3).
//! Anything else is answered with a `RequestError` (§4.3.4): problem
//! details as the HTTP API gives them (`notJSON`, `notRequest`, `limit`),
//! with the request's `id` as `requestId` when one could be read.

use serde_json::{json, Map, Value};

use super::super::error::Problem;
use crate::notify::DataTypes;

/// What one client message asks for.
#[derive(Debug)]
pub(super) enum ClientMessage {
    /// Run the request object `request`; echo `id` as `requestId`.
    Request { id: Option<String>, request: Value },
    /// Push changes of `types`; `push_state` is the last `pushState`
    /// the client received, if it says.
    PushEnable {
        types: DataTypes,
        push_state: Option<String>,
    },
    /// Stop pushing.
    PushDisable,
}

/// A refused message: the problem and the request id it carried.
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) id: Option<String>,
    pub(super) problem: Problem,
}

/// Reads one text message (`text` is from the network: hostile).
pub(super) fn parse(text: &str) -> Result<ClientMessage, Refused> {
    let refuse = |id: Option<String>, problem| Refused { id, problem };
    let value: Value =
        serde_json::from_str(text).map_err(|e| refuse(None, Problem::not_json(e.to_string())))?;
    let Value::Object(mut obj) = value else {
        return Err(refuse(
            None,
            Problem::not_request("a JMAP WebSocket message is a JSON object with an @type"),
        ));
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(refuse(
                None,
                Problem::not_request("the request's id must be a string"),
            ))
        }
    };
    let kind = obj.remove("@type");
    match kind.as_ref().and_then(Value::as_str) {
        Some("Request") => Ok(ClientMessage::Request {
            id,
            request: Value::Object(obj),
        }),
        Some("WebSocketPushEnable") => push_enable(&obj).map_err(|p| refuse(id, p)),
        Some("WebSocketPushDisable") => Ok(ClientMessage::PushDisable),
        Some(other) => Err(refuse(
            id,
            Problem::not_request(format!(
                "unknown @type {other:?}: send Request, WebSocketPushEnable or WebSocketPushDisable"
            )),
        )),
        None => Err(refuse(
            id,
            Problem::not_request("the message has no @type (a string): Request, WebSocketPushEnable or WebSocketPushDisable"),
        )),
    }
}

/// `WebSocketPushEnable`: `dataTypes` (`null`: every type) and
/// `pushState` (optional).
fn push_enable(obj: &Map<String, Value>) -> Result<ClientMessage, Problem> {
    let types = match obj.get("dataTypes") {
        None | Some(Value::Null) => DataTypes::ALL,
        Some(Value::Array(names)) => {
            let names: Option<Vec<&str>> = names.iter().map(Value::as_str).collect();
            let names = names
                .ok_or_else(|| Problem::not_request("dataTypes lists type names (strings)"))?;
            DataTypes::from_names(names)
        }
        Some(_) => {
            return Err(Problem::not_request(
                "dataTypes is a list of type names, or null for every type",
            ))
        }
    };
    let push_state = match obj.get("pushState") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Problem::not_request("pushState is a string")),
    };
    Ok(ClientMessage::PushEnable { types, push_state })
}

/// A `Response` (§4.3.3): the response object with `@type` and, when
/// the request had one, `requestId`.
pub(super) fn response(id: Option<String>, mut out: Map<String, Value>) -> String {
    out.insert("@type".into(), json!("Response"));
    if let Some(id) = id {
        out.insert("requestId".into(), json!(id));
    }
    Value::Object(out).to_string()
}

/// A `RequestError` (§4.3.4) for `problem`.
pub(super) fn request_error(id: Option<String>, problem: &Problem) -> String {
    let mut out = problem.to_json();
    out.insert("@type".into(), json!("RequestError"));
    out.insert("requestId".into(), id.map_or(Value::Null, Value::String));
    Value::Object(out).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_type(text: &str) -> (Option<String>, String) {
        let refused = parse(text).unwrap_err();
        let body = request_error(refused.id, &refused.problem);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["@type"], "RequestError");
        (
            v["requestId"].as_str().map(str::to_string),
            v["type"].as_str().unwrap().to_string(),
        )
    }

    #[test]
    fn the_rfc_examples_parse() {
        // RFC 8887 §4.4.
        let push = r#"{ "@type": "WebSocketPushEnable", "dataTypes": [ "Mailbox", "Email" ], "pushState": "aaa" }"#;
        match parse(push).unwrap() {
            ClientMessage::PushEnable { types, push_state } => {
                assert_eq!(types, DataTypes::MAILBOX | DataTypes::EMAIL);
                assert_eq!(push_state.as_deref(), Some("aaa"));
            }
            other => panic!("{other:?}"),
        }
        let request = r#"{ "@type": "Request", "id": "R1", "using": [ "urn:ietf:params:jmap:core" ],
            "methodCalls": [ [ "Core/echo", { "hello": true, "high": 5 }, "b3ff" ] ] }"#;
        match parse(request).unwrap() {
            ClientMessage::Request { id, request } => {
                assert_eq!(id.as_deref(), Some("R1"));
                assert!(request.get("@type").is_none());
                assert_eq!(request["methodCalls"][0][2], "b3ff");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse(r#"{"@type":"WebSocketPushDisable"}"#),
            Ok(ClientMessage::PushDisable)
        ));
    }

    #[test]
    fn garbage_gets_request_errors() {
        let not_json = "urn:ietf:params:jmap:error:notJSON".to_string();
        let not_request = "urn:ietf:params:jmap:error:notRequest".to_string();
        assert_eq!(
            problem_type("The quick brown fox jumps over the lazy dog."),
            (None, not_json.clone())
        );
        assert_eq!(problem_type(""), (None, not_json));
        for junk in [
            "[]",
            "42",
            "{}",
            r#"{"@type":7}"#,
            r#"{"id":5,"@type":"Request"}"#,
        ] {
            assert_eq!(problem_type(junk), (None, not_request.clone()), "{junk}");
        }
        assert_eq!(
            problem_type(r#"{"@type":"Nope","id":"R9"}"#),
            (Some("R9".into()), not_request.clone())
        );
        assert_eq!(
            problem_type(r#"{"@type":"WebSocketPushEnable","dataTypes":"Email","id":"x"}"#),
            (Some("x".into()), not_request.clone())
        );
        assert_eq!(
            problem_type(r#"{"@type":"WebSocketPushEnable","dataTypes":[1]}"#),
            (None, not_request.clone())
        );
        assert_eq!(
            problem_type(r#"{"@type":"WebSocketPushEnable","pushState":1}"#),
            (None, not_request)
        );
    }

    #[test]
    fn a_response_echoes_the_request_id() {
        let mut out = Map::new();
        out.insert("methodResponses".into(), json!([]));
        let v: Value = serde_json::from_str(&response(Some("R1".into()), out.clone())).unwrap();
        assert_eq!(v["@type"], "Response");
        assert_eq!(v["requestId"], "R1");
        let v: Value = serde_json::from_str(&response(None, out)).unwrap();
        assert!(v.get("requestId").is_none());
    }
}
