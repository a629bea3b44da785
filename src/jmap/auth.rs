//! HTTP Basic authentication (RFC 7617) of every JMAP request against the
//! account's argon2id password hash. RFC 8620 §1.6.1 leaves the scheme to
//! the server; Basic is what the jmap-client crate and curl speak.
//!
//! Any failure (no header, unknown user, wrong password, an account that
//! cannot log in) gives the same 401, so the answer does not tell which
//! addresses exist.
//!
//! Checking an argon2id hash costs tens of milliseconds of CPU by design,
//! and a JMAP client sends its credentials with every request, so a
//! successful check is remembered for [`CACHE_TTL`] under a salted SHA-256
//! of the credentials (never the password itself). The account and a stamp
//! of its stored password hash are loaded afresh on every request, so a
//! removed account and a changed password are refused at once. A full
//! check costs the same whether or not the address exists
//! ([`MailStore::check_login`](crate::store::MailStore::check_login)).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::Server;
use crate::store::{Account, AccountId};

/// How long a successful password check is remembered.
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Entries kept at most; the table is emptied when full (a spray of
/// distinct credentials cannot grow it, and real clients simply re-check).
const CACHE_ENTRIES: usize = 10_000;

/// Successful credential checks, keyed by a salted hash of the credentials.
#[derive(Debug)]
pub(crate) struct AuthCache {
    salt: [u8; 32],
    // why: a std Mutex, held for one map operation, never across an await.
    entries: Mutex<HashMap<[u8; 32], Remembered>>,
}

/// A successful check: whose, against which password hash, when.
#[derive(Debug, Clone, Copy)]
struct Remembered {
    id: AccountId,
    stamp: [u8; 32],
    at: Instant,
}

impl Default for AuthCache {
    fn default() -> Self {
        let mut salt = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut salt);
        Self {
            salt,
            entries: Mutex::default(),
        }
    }
}

impl AuthCache {
    fn key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(user.as_bytes());
        h.update([0]);
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn get(&self, key: &[u8; 32]) -> Option<Remembered> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|r| r.at.elapsed() < CACHE_TTL)
            .copied()
    }

    fn put(&self, key: [u8; 32], id: AccountId, stamp: [u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_ENTRIES {
            entries.clear();
        }
        let at = Instant::now();
        entries.insert(key, Remembered { id, stamp, at });
    }
}

/// Base wait before a 401 for wrong credentials, doubled per recent
/// failure from the same address (as IMAP does; see `login_throttle`).
const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);

/// The client's address, when the listener records it (`ConnectInfo`;
/// the server's listener does, an in-process test router may not).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // why the origin first: behind a trusted proxy the peer is the
        // proxy, and throttling it would slow every user down for one
        // guesser.
        if let Some(origin) = parts.extensions.get::<super::origin::Origin>() {
            return Ok(Peer(origin.client));
        }
        let info = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Peer(info.map(|c| c.0.ip())))
    }
}

/// Requests in flight per account (API requests, uploads), taken after
/// authentication, so that neither wrong-password floods nor one
/// account's stalled requests take the slots of others.
#[derive(Debug)]
pub(crate) struct AccountSlots {
    per_account: usize,
    // why: a std Mutex; held for one map operation, never across an await.
    slots: Mutex<HashMap<AccountId, Arc<Semaphore>>>,
}

impl AccountSlots {
    /// At most `per_account` at once for each account.
    pub(crate) fn new(per_account: usize) -> Self {
        Self {
            per_account,
            slots: Mutex::default(),
        }
    }

    /// A slot of `id`'s, unless all `per_account` are taken.
    pub(crate) fn try_acquire(&self, id: AccountId) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let entry = slots
                .entry(id)
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_account)));
            Arc::clone(entry)
        };
        semaphore.try_acquire_owned().ok()
    }
}

/// The authenticated account of a request, or the 401 to send (after the
/// failed-login wait of `peer`'s address).
pub(crate) async fn authenticate(
    server: &Server,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<Account, Response> {
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(unauthorized());
    };
    let login = user.clone();
    let cache_key = server.auth_cache.key(&user, &password);
    let cached = server.auth_cache.get(&cache_key);
    let store = Arc::clone(&server.ctx.store);
    let checked = tokio::task::spawn_blocking(move || {
        if let Some(hit) = cached {
            // why the stamp: a password changed since the check must stop
            // working now, not when the entry expires.
            let account = store.account_by_address(&user).ok()?;
            let stamp = store.password_stamp(account.id).ok()??;
            if account.id == hit.id && stamp == hit.stamp {
                return Some((account, stamp));
            }
        }
        let account = match store.check_login(&user, &password) {
            Ok(found) => found?,
            Err(e) => {
                tracing::error!(error = %e, "password check failed");
                return None;
            }
        };
        let stamp = store.password_stamp(account.id).ok()??;
        Some((account, stamp))
    })
    .await;
    match checked {
        Ok(Some((account, stamp))) => {
            server.auth_cache.put(cache_key, account.id, stamp);
            if let Peer(Some(ip)) = peer {
                server.throttle.succeeded(ip, &login);
            }
            Ok(account)
        }
        _ => {
            let delay = match peer {
                Peer(Some(ip)) => server.throttle.failed(ip, &login, FAILED_LOGIN_DELAY),
                Peer(None) => Duration::ZERO,
            };
            crate::login_throttle::log_failure("jmap", peer.0, &login, delay);
            tokio::time::sleep(delay).await;
            Err(unauthorized())
        }
    }
}

/// `user:password` of an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Basic realm=\"sealmail\", charset=\"UTF-8\"",
        )],
        "authentication required: give the account's address and password (HTTP Basic)\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_keyed_by_user_and_password() {
        let cache = AuthCache::default();
        let key = cache.key("a@example.org", "right");
        assert_ne!(key, cache.key("a@example.org", "wrong"));
        assert_ne!(
            key,
            cache.key("a@example.orgr", "ight"),
            "the separator keeps fields apart"
        );
        assert_ne!(
            key,
            AuthCache::default().key("a@example.org", "right"),
            "salted per server"
        );
        assert!(cache.get(&key).is_none());
        cache.put(key, AccountId(7), [1; 32]);
        assert_eq!(
            cache.get(&key).map(|r| (r.id, r.stamp)),
            Some((AccountId(7), [1; 32]))
        );
        assert!(cache.get(&cache.key("a@example.org", "wrong")).is_none());
    }
}
