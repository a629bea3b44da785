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

use super::auth::authenticate;
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
    headers: HeaderMap,
    body: Body,
) -> Response {
    let account = match authenticate(&server, &headers).await {
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
    headers: HeaderMap,
) -> Response {
    let account = match authenticate(&server, &headers).await {
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
        .filter(|t| t.contains('/') && !t.contains(['\r', '\n']))
        .unwrap_or_else(|| "application/octet-stream".into());
    let safe_name: String = name
        .chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .collect();
    (
        [
            (header::CONTENT_TYPE, ctype),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe_name}\""),
            ),
        ],
        Body::from(data),
    )
        .into_response()
}
