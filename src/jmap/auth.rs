//! Authentication of every JMAP request: HTTP Basic (RFC 7617) against the
//! account's argon2id password hash, or an app token (`store::tokens`) as
//! `Authorization: Bearer SECRET` (RFC 6750 §2.1) or as the Basic
//! password. RFC 8620 §1.6.1 leaves the scheme to the server; Basic is
//! what the jmap-client crate and curl speak, Bearer what web clients
//! and scripts prefer.
//!
//! Any failure (no header, unknown user, wrong password, an account that
//! cannot log in) gives the same 401, so the answer does not tell which
//! addresses exist.
//!
//! Checking an argon2id hash costs tens of milliseconds of CPU by design,
//! and a JMAP client sends its credentials with every request; the store
//! remembers a recent success (never the password) and refuses a removed
//! account or a changed password at once. A full check costs the same
//! whether or not the address exists
//! ([`MailStore::check_login`](crate::store::MailStore::check_login)).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::Server;
use crate::store::{Account, AccountId};

/// Base wait before a 401 for wrong credentials, doubled per recent
/// failure from the same address (as IMAP does; see `login_throttle`).
const FAILED_LOGIN_DELAY: Duration = Duration::from_secs(1);

/// The client's address: the one a trusted proxy forwarded (`origin`),
/// else the peer when the listener records it (`ConnectInfo`; the
/// server's listener does, an in-process test router may not).
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

/// The name failed Bearer logins are counted and logged under (a Bearer
/// request names no user; the parentheses keep it from being an address).
const BEARER_LOGIN: &str = "(bearer token)";

/// The authenticated account of a request, or the 401 to send (after the
/// failed-login wait of `peer`'s address).
pub(crate) async fn authenticate(
    server: &Server,
    headers: &HeaderMap,
    peer: Peer,
) -> Result<Account, Response> {
    let Some(credentials) = credentials(headers) else {
        return Err(unauthorized());
    };
    let (login, found) = match credentials {
        Credentials::Token { user, secret } => {
            let login = user.clone().unwrap_or_else(|| BEARER_LOGIN.into());
            (login, check_token(server, user, secret).await)
        }
        Credentials::Password { user, password } => {
            (user.clone(), check_password(server, user, password).await)
        }
    };
    match found {
        Some(account) => {
            // why the account's address for a Bearer success: clearing
            // the failures counted under BEARER_LOGIN would let whoever
            // holds one good token reset their count of guessed ones.
            let name = if login == BEARER_LOGIN {
                account.address.as_str()
            } else {
                login.as_str()
            };
            if let Peer(Some(ip)) = peer {
                server.throttle.succeeded(ip, name);
            }
            Ok(account)
        }
        None => {
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

/// The account and password, checked against the hash (or the store's
/// memory of a recent success, `MailStore::check_login`).
async fn check_password(server: &Server, user: String, password: String) -> Option<Account> {
    let _slot = server.ctx.store.login_slot().await;
    let store = Arc::clone(&server.ctx.store);
    let checked = tokio::task::spawn_blocking(move || store.check_login(&user, &password)).await;
    match checked.ok()? {
        Ok(found) => found,
        Err(e) => {
            tracing::error!(error = %e, "password check failed");
            None
        }
    }
}

/// The account an app token opens; with `user` (a token given as the
/// Basic password), only when that is the token's own account. Not
/// cached: the check is one read and one SHA-256, and a removed token
/// must fail on its very next request.
async fn check_token(server: &Server, user: Option<String>, secret: String) -> Option<Account> {
    let store = Arc::clone(&server.ctx.store);
    let checked = tokio::task::spawn_blocking(move || {
        let (account, _) = match store.check_app_token(&secret) {
            Ok(found) => found?,
            Err(e) => {
                tracing::error!(error = %e, "app token check failed");
                return None;
            }
        };
        match user {
            None => Some(account),
            Some(user) => {
                let named = store.account_by_address(&user).ok()?;
                (named.id == account.id).then_some(account)
            }
        }
    })
    .await;
    checked.ok()?
}

/// What an `Authorization` header offers.
enum Credentials {
    /// Basic with a password.
    Password { user: String, password: String },
    /// `Bearer SECRET`, or Basic whose password is an app token's secret
    /// (for clients that speak only Basic).
    Token {
        user: Option<String>,
        secret: String,
    },
}

/// The credentials of an `Authorization: Basic` or `Bearer` header
/// (RFC 7617, RFC 6750 §2.1).
fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials::Token {
            user: None,
            secret: rest.trim().to_string(),
        });
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    if password.starts_with(crate::store::TOKEN_PREFIX) {
        return Some(Credentials::Token {
            user: Some(user.to_string()),
            secret: password.to_string(),
        });
    }
    Some(Credentials::Password {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// The password of an `Authorization: Basic` header, when it is one (not
/// an app token): what server-side reading keys open with. Call only for a
/// request [`authenticate`] accepted.
pub(crate) fn basic_password(headers: &HeaderMap) -> Option<zeroize::Zeroizing<String>> {
    match credentials(headers)? {
        Credentials::Password { password, .. } => Some(zeroize::Zeroizing::new(password)),
        Credentials::Token { .. } => None,
    }
}

/// The account's server-side reading keys for a request [`authenticate`]
/// accepted (`crate::reading`): held on this node already, or opened now
/// with the request's password (one Argon2id evaluation when reading is
/// on, one read when it is off) or its app token's own copy.
pub(crate) async fn reading_keys(
    server: &Server,
    account: AccountId,
    headers: &HeaderMap,
) -> Option<Arc<crate::reading::Unlocked>> {
    let ring = Arc::clone(&server.ctx.keyring);
    let credentials = credentials(headers)?;
    if let (Credentials::Password { .. }, Some(keys)) = (&credentials, ring.get(account)) {
        return Some(keys);
    }
    let store = Arc::clone(&server.ctx.store);
    let opened = tokio::task::spawn_blocking(move || {
        let credential = match &credentials {
            Credentials::Password { password, .. } => crate::store::Credential::Password(password),
            Credentials::Token { secret, .. } => crate::store::Credential::AppToken(secret),
        };
        crate::reading::unlock(&store, &ring, account, credential)
    })
    .await;
    match opened {
        Ok(Ok(keys)) => keys,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "server-side reading keys could not be read");
            None
        }
        Err(_) => None,
    }
}

fn unauthorized() -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        "authentication required: give the account's address and password (HTTP Basic), or an app token (Authorization: Bearer)\n",
    )
        .into_response();
    // why two challenges (RFC 9110 §11.6.1): a browser prompts for
    // Basic, a script learns that Bearer is taken too.
    let headers = response.headers_mut();
    for challenge in [
        "Basic realm=\"sealmail\", charset=\"UTF-8\"",
        "Bearer realm=\"sealmail\"",
    ] {
        headers.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}
