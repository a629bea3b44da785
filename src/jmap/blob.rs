//! Binary data (RFC 8620 §6): upload and download.
//!
//! Uploads are held in memory, per account, until they are used or for
//! an hour (§6.1 lets the server drop unreferenced blobs after that), and
//! at most [`PER_ACCOUNT_FACTOR`] × `maxSizeUpload` bytes and
//! [`HELD_UPLOADS`] uploads per account: an upload is only ever an input
//! to `Email/import` or `Certificate/set`, which store what they keep.
//! Past either bound the account's oldest uploads are dropped, as §6.1
//! asks of a server whose upload quota is reached ("the server SHOULD
//! delete previously uploaded (but unreferenced) blobs before their
//! expiry time"), so a client importing a mailbox one message at a time
//! never meets a refusal. Why not on disk: an upload for an opted-in
//! account can be a plaintext message, and plaintext must never reach the
//! store or a temporary file (ARCHITECTURE.md, fail closed); the import
//! encrypts it before it is stored.
//!
//! `maxConcurrentUpload` counts per account, after authentication, like
//! API requests: one account's stalled uploads never take another's
//! slots. A body that pauses longer than [`BODY_IDLE_TIMEOUT`] is dropped.
//!
//! A blob id is the SHA-256 of the bytes, or names a body part
//! (`email::part_blob`). Download serves uploads, the stored messages of
//! the authenticated account and their parts (and the parts of its
//! uploads), each part decoded (RFC 8621 §4.1.4) and read through
//! `email::source`; anything else, including every blob of another
//! account, an Email that is gone and a part that is not there, is 404.
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

use super::auth::{self, authenticate, Peer};
use super::email::part_blob::{self, Origin, PartBlob};
use super::error::Problem;
use super::{ids, limits, Server};
use crate::store::{AccountId, BlobHash};

/// Uploads live this long.
const TTL: Duration = Duration::from_secs(3600);
/// Bytes of uploads per account, as a multiple of `maxSizeUpload`.
const PER_ACCOUNT_FACTOR: u64 = 4;
/// Uploads held per account at most. why 1,000: a client uploads what
/// the next few requests import (one message or certificate bundle
/// each); 1,000 covers any such batch, while a flood of tiny uploads
/// cannot grow the table (each entry costs about 150 bytes beyond its
/// data, and every upload of the account scans its entries).
pub(crate) const HELD_UPLOADS: usize = 1_000;
/// Longest pause while an upload's body arrives. why 30 s: as for API
/// bodies; a client that keeps sending may take as long as it needs.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often expired uploads of all accounts are dropped (an account's
/// own are dropped at each of its uploads).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Upload {
    data: Arc<Vec<u8>>,
    at: Instant,
}

/// Uploaded blobs per account.
#[derive(Debug, Default)]
pub(crate) struct Uploads {
    // why a std Mutex: held only for map operations, never across an await.
    inner: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    accounts: HashMap<AccountId, HashMap<BlobHash, Upload>>,
    swept: Option<Instant>,
}

impl Held {
    /// Drops every account's expired uploads, at most every [`SWEEP_EVERY`].
    fn sweep(&mut self) {
        if self.swept.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return;
        }
        self.swept = Some(Instant::now());
        for uploads in self.accounts.values_mut() {
            uploads.retain(|_, u| u.at.elapsed() < TTL);
        }
        self.accounts.retain(|_, uploads| !uploads.is_empty());
    }
}

fn size_of(u: &Upload) -> u64 {
    u64::try_from(u.data.len()).unwrap_or(u64::MAX)
}

impl Uploads {
    /// Keeps `data` for `account`, dropping expired uploads and, past the
    /// account's byte `budget` or [`HELD_UPLOADS`], its oldest ones.
    fn put(&self, account: AccountId, data: Vec<u8>, budget: u64) -> BlobHash {
        let hash = BlobHash::of(&data);
        let incoming = u64::try_from(data.len()).unwrap_or(u64::MAX);
        let mut held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        held.sweep();
        let mine = held.accounts.entry(account).or_default();
        mine.retain(|h, u| u.at.elapsed() < TTL && *h != hash);
        let mut oldest: Vec<(Instant, BlobHash, u64)> =
            mine.iter().map(|(h, u)| (u.at, *h, size_of(u))).collect();
        oldest.sort();
        let mut used: u64 = oldest.iter().map(|o| o.2).sum();
        let mut count = mine.len();
        for (_, h, size) in oldest {
            if count < HELD_UPLOADS && used.saturating_add(incoming) <= budget {
                break;
            }
            mine.remove(&h);
            used = used.saturating_sub(size);
            count -= 1;
        }
        let upload = Upload {
            data: Arc::new(data),
            at: Instant::now(),
        };
        mine.insert(hash, upload);
        hash
    }

    /// The upload `blob_id` of `account`, if it is still held.
    pub(crate) fn get(&self, account: AccountId, blob_id: &str) -> Option<Arc<Vec<u8>>> {
        let hash = ids::parse_blob(blob_id)?;
        let held = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        held.accounts
            .get(&account)?
            .get(&hash)
            .filter(|u| u.at.elapsed() < TTL)
            .map(|u| Arc::clone(&u.data))
    }
}

/// Why an upload's body was not read whole.
#[derive(Debug)]
enum BodyError {
    /// Longer than the limit.
    TooLarge,
    /// Nothing arrived for [`BODY_IDLE_TIMEOUT`].
    Stalled,
    /// The connection failed.
    Broken,
}

/// Reads at most `limit` bytes of `body`, waiting at most `idle` for
/// each piece.
async fn read_body(body: Body, limit: usize, idle: Duration) -> Result<Vec<u8>, BodyError> {
    use http_body_util::BodyExt as _;
    let mut body = body;
    let mut out = Vec::new();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled),
            Ok(None) => return Ok(out),
            Ok(Some(Err(_))) => return Err(BodyError::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if out.len().saturating_add(data.len()) > limit {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
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
    let Some(_slot) = server.upload_slots.try_acquire(account.id) else {
        let detail = format!(
            "at most {} uploads of one account at once; retry when one has finished",
            limits::CONCURRENT_UPLOAD
        );
        return Problem::limit("maxConcurrentUpload", detail).into_response();
    };
    let max = server.ctx.max_upload_bytes;
    let too_large = || {
        let detail = format!("the upload is larger than maxSizeUpload ({max} bytes)");
        Problem::limit("maxSizeUpload", detail).into_response()
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > max) {
        return too_large();
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let bytes = match read_body(body, limit, BODY_IDLE_TIMEOUT).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Stalled) => {
            let text = format!(
                "the upload paused for more than {} s; send it again",
                BODY_IDLE_TIMEOUT.as_secs()
            );
            return (StatusCode::REQUEST_TIMEOUT, text).into_response();
        }
        Err(BodyError::Broken) => {
            return (
                StatusCode::BAD_REQUEST,
                "the upload broke off; send it again\n",
            )
                .into_response()
        }
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_string();
    let size = bytes.len();
    let budget = max.saturating_mul(PER_ACCOUNT_FACTOR);
    let hash = server.uploads.put(account.id, bytes, budget);
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
        None if blob_id.len() > 64 => match part(&server, &headers, account.id, &blob_id).await {
            Ok(Some(d)) => d,
            Ok(None) => return not_found(),
            Err(()) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
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

/// The decoded bytes of the part `blob_id` names, if it names one of
/// `account`'s, read with the account's server-side reading keys when
/// the request opens them (as an API request does); `Err` when the store
/// fails.
async fn part(
    server: &Server,
    headers: &HeaderMap,
    account: AccountId,
    blob_id: &str,
) -> Result<Option<Vec<u8>>, ()> {
    let Some(part) = PartBlob::parse(blob_id, account) else {
        return Ok(None);
    };
    let upload = match part.origin {
        Origin::Upload(hash) => server.uploads.get(account, &ids::blob(hash)),
        Origin::Email { .. } => None,
    };
    let keys = match part.origin {
        Origin::Email {
            decrypted: true, ..
        } => auth::reading_keys(server, account, headers).await,
        _ => None,
    };
    let store = Arc::clone(&server.ctx.store);
    let read = move || {
        let upload = upload.as_deref().map(Vec::as_slice);
        part_blob::read(&store, &part, upload, keys.as_deref())
    };
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(found)) => Ok(found),
        _ => Err(()),
    }
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

    fn held(u: &Uploads, account: AccountId) -> usize {
        let held = u.inner.lock().unwrap();
        held.accounts.get(&account).map_or(0, HashMap::len)
    }

    #[test]
    fn an_account_holds_at_most_held_uploads_and_loses_the_oldest() {
        let u = Uploads::default();
        let (me, other) = (AccountId(1), AccountId(2));
        let theirs = ids::blob(u.put(other, b"theirs".to_vec(), 1 << 20));
        let first = ids::blob(u.put(me, b"0".to_vec(), 1 << 20));
        for i in 1..=HELD_UPLOADS {
            u.put(me, i.to_string().into_bytes(), 1 << 20);
        }
        assert_eq!(held(&u, me), HELD_UPLOADS);
        assert!(u.get(me, &first).is_none(), "the oldest went");
        assert!(u.get(me, &ids::blob(BlobHash::of(b"1"))).is_some());
        assert!(u.get(other, &theirs).is_some(), "others keep theirs");
        // Uploading held bytes again refreshes them instead of adding one.
        u.put(me, b"1".to_vec(), 1 << 20);
        u.put(me, b"new".to_vec(), 1 << 20);
        assert!(u.get(me, &ids::blob(BlobHash::of(b"1"))).is_some());
        assert!(u.get(me, &ids::blob(BlobHash::of(b"2"))).is_none());
    }

    #[test]
    fn an_account_holds_at_most_its_byte_budget() {
        let u = Uploads::default();
        let me = AccountId(1);
        let a = ids::blob(u.put(me, vec![b'a'; 40], 100));
        let b = ids::blob(u.put(me, vec![b'b'; 40], 100));
        let c = ids::blob(u.put(me, vec![b'c'; 40], 100));
        assert!(u.get(me, &a).is_none());
        assert!(u.get(me, &b).is_some() && u.get(me, &c).is_some());
    }

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
