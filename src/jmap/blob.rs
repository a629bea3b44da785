//! Binary data (RFC 8620 §6): upload and download.
//!
//! Uploads are held in memory, per account, until they are used or for
//! an hour (§6.1 lets the server drop unreferenced blobs after that), and
//! at most [`PER_ACCOUNT_FACTOR`] × `maxSizeUpload` bytes per account: an
//! upload is only ever an input to `Email/import` or `Certificate/set`,
//! which store what they keep. Why not on disk: an upload for an
//! opted-in account can be a plaintext message, and plaintext must never
//! reach the store or a temporary file (ARCHITECTURE.md, fail closed);
//! the import encrypts it before it is stored.
//!
//! A blob id is the SHA-256 of the bytes. Download serves uploads and the
//! stored messages of the authenticated account; anything else, including
//! every blob of another account, is 404.
//!
//! A download is served so that a browser can only save it, never render
//! it in this server's origin (where it could script the API with the
//! user's credentials): `Content-Disposition: attachment`,
//! `X-Content-Type-Options: nosniff`, a sandboxing `Content-Security-Policy`,
//! and the `accept` type only when it is a well-formed MIME type that no
//! browser executes (see [`safe_type`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::auth::{authenticate, Peer};
use super::error::Problem;
use super::{ids, Server};
use crate::store::{AccountId, BlobHash};

/// Uploads live this long.
const TTL: Duration = Duration::from_secs(3600);
/// Bytes of uploads per account, as a multiple of `maxSizeUpload`.
const PER_ACCOUNT_FACTOR: u64 = 4;

#[derive(Debug)]
struct Upload {
    data: Arc<Vec<u8>>,
    at: Instant,
}

/// Uploaded blobs per account.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    // why a std Mutex: held only for map operations, never across an await.
    inner: Mutex<HashMap<(AccountId, BlobHash), Upload>>,
}

impl Uploads {
    /// Keeps `data` for `account`, dropping expired uploads and, past the
    /// account's budget, its oldest ones.
    fn put(&self, account: AccountId, data: Vec<u8>, budget: u64) -> BlobHash {
        let hash = BlobHash::of(&data);
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, u| u.at.elapsed() < TTL);
        let size = |u: &Upload| u64::try_from(u.data.len()).unwrap_or(u64::MAX);
        let mut mine: Vec<(Instant, BlobHash, u64)> = map
            .iter()
            .filter(|((a, _), _)| *a == account)
            .map(|((_, h), u)| (u.at, *h, size(u)))
            .collect();
        mine.sort();
        let mut used: u64 = mine.iter().map(|m| m.2).sum();
        let incoming = u64::try_from(data.len()).unwrap_or(u64::MAX);
        for (_, h, s) in mine {
            if used.saturating_add(incoming) <= budget {
                break;
            }
            map.remove(&(account, h));
            used = used.saturating_sub(s);
        }
        let upload = Upload {
            data: Arc::new(data),
            at: Instant::now(),
        };
        map.insert((account, hash), upload);
        hash
    }

    /// The upload `blob_id` of `account`, if it is still held.
    pub(crate) fn get(&self, account: AccountId, blob_id: &str) -> Option<Arc<Vec<u8>>> {
        let hash = ids::parse_blob(blob_id)?;
        let map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(account, hash))
            .filter(|u| u.at.elapsed() < TTL)
            .map(|u| Arc::clone(&u.data))
    }
}

/// `POST /jmap/upload/{accountId}/`.
pub(crate) async fn upload(
    State(server): State<Arc<Server>>,
    Path(account_id): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let account = match authenticate(&server, &headers, peer).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if account_id != ids::account(account.id) {
        return (StatusCode::NOT_FOUND, "no such account\n").into_response();
    }
    let Ok(_slot) = server.upload_slots.try_acquire() else {
        return Problem::limit(
            "maxConcurrentUpload",
            "too many uploads at once; retry later",
        )
        .into_response();
    };
    let max = server.ctx.max_upload_bytes;
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        let detail = format!("the upload is larger than maxSizeUpload ({max} bytes)");
        return Problem::limit("maxSizeUpload", detail).into_response();
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let size = bytes.len();
    let budget = max.saturating_mul(PER_ACCOUNT_FACTOR);
    let hash = server.uploads.put(account.id, bytes.to_vec(), budget);
    let body = json!({
        "accountId": account_id,
        "blobId": ids::blob(hash),
        "type": content_type,
        "size": size,
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

/// `?accept=` of a download.
#[derive(Debug, Deserialize)]
pub(crate) struct Accept {
    accept: Option<String>,
}

/// `GET /jmap/download/{accountId}/{blobId}/{name}?accept={type}`.
pub(crate) async fn download(
    State(server): State<Arc<Server>>,
    Path((account_id, blob_id, name)): Path<(String, String, String)>,
    Query(accept): Query<Accept>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    let account = match authenticate(&server, &headers, peer).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let not_found = || (StatusCode::NOT_FOUND, "no such blob\n").into_response();
    if account_id != ids::account(account.id) {
        return not_found();
    }
    let data = match server.uploads.get(account.id, &blob_id) {
        Some(d) => d.to_vec(),
        None => {
            let Some(hash) = ids::parse_blob(&blob_id) else {
                return not_found();
            };
            let store = Arc::clone(&server.ctx.store);
            match tokio::task::spawn_blocking(move || store.get_blob(account.id, hash)).await {
                Ok(Ok(Some(d))) => d,
                Ok(Ok(None)) => return not_found(),
                _ => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    };
    let ctype = accept
        .accept
        .as_deref()
        .and_then(safe_type)
        .unwrap_or(OCTET_STREAM)
        .to_string();
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CONTENT_DISPOSITION, disposition(&name)),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
            (
                header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'".to_string(),
            ),
        ],
        Body::from(data),
    )
        .into_response()
}

/// The type served when the asked one is unusable.
const OCTET_STREAM: &str = "application/octet-stream";

/// `asked` when it is `type/subtype` of RFC 9110 tokens with `; name=value`
/// token parameters, and not a type a browser renders actively (markup,
/// XML, scripts, multipart streams): those would run in this server's
/// origin if ever shown inline.
fn safe_type(asked: &str) -> Option<&str> {
    let is_token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    };
    let mut parts = asked.split(';');
    let essence = parts.next()?.trim();
    let (kind, subtype) = essence.split_once('/')?;
    let params_ok = parts.all(|p| {
        p.trim()
            .split_once('=')
            .is_some_and(|(n, v)| is_token(n.trim()) && is_token(v.trim()))
    });
    if !(is_token(kind) && is_token(subtype) && params_ok) || asked.len() > 200 {
        return None;
    }
    let (kind, subtype) = (kind.to_ascii_lowercase(), subtype.to_ascii_lowercase());
    // why "*": a wildcard is a pattern for Accept, not the type of a body.
    let active = kind == "*"
        || subtype == "*"
        || subtype.contains("html")
        || subtype.contains("script")
        || subtype == "xml"
        || subtype.ends_with("+xml")
        || subtype == "xsl"
        || subtype == "x-mixed-replace"
        || kind == "multipart"
        || subtype == "x-shockwave-flash"
        || subtype == "cache-manifest";
    (!active).then_some(asked)
}

/// `attachment` with the name as a quoted ASCII `filename` (controls,
/// quotes, backslashes and path separators removed, other non-ASCII as
/// `_`) and, when the name is not plain ASCII, the exact name as an
/// RFC 6266 / RFC 8187 `filename*=UTF-8''…`.
fn disposition(name: &str) -> String {
    let name: String = name
        .chars()
        .filter(|&c| !crate::text::is_control(c) && !matches!(c, '"' | '\\' | '/'))
        .take(200)
        .collect();
    let name = match name.trim() {
        "" => "download",
        n => n,
    };
    let ascii: String = name
        .chars()
        .map(|c| if c.is_ascii() { c } else { '_' })
        .collect();
    if ascii == name {
        return format!("attachment; filename=\"{ascii}\"");
    }
    let encoded: String =
        name.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
                b'!' | b'#' | b'$' | b'&' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|'
                | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_or_malformed_types_become_octet_stream() {
        for t in [
            "text/html",
            "TEXT/HTML; charset=utf-8",
            "application/xhtml+xml",
            "image/svg+xml",
            "text/xml",
            "application/xml",
            "text/javascript",
            "application/ecmascript",
            "multipart/x-mixed-replace; boundary=x",
            "text/plain\r\nSet-Cookie: a=b",
            "text/plain; charset=\"utf-8\"",
            "texthtml",
            "*/*",
        ] {
            assert_eq!(safe_type(t), None, "{t}");
        }
        for t in ["message/rfc822", "text/plain; charset=utf-8", "image/png"] {
            assert_eq!(safe_type(t), Some(t));
        }
    }

    #[test]
    fn names_cannot_break_the_header() {
        assert_eq!(
            disposition("a\"\r\nSet-Cookie: x=1.eml"),
            "attachment; filename=\"aSet-Cookie: x=1.eml\""
        );
        assert_eq!(
            disposition("Grüße.txt"),
            "attachment; filename=\"Gr__e.txt\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe.txt"
        );
        assert_eq!(disposition("\u{202e}"), "attachment; filename=\"download\"");
    }
}
