//! HTTP Basic authentication (RFC 7617) of every JMAP request against the
//! account's argon2id password hash. RFC 8620 §1.6.1 leaves the scheme to
//! the server; Basic is what the jmap-client crate and curl speak.
//!
//! Any failure (no header, unknown user, wrong password, an account that
//! cannot log in) gives the same 401, so the answer does not tell which
//! addresses exist.

use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;

use super::Server;
use crate::store::Account;

/// The authenticated account of a request, or the 401 to send.
pub(crate) async fn authenticate(
    server: &Server,
    headers: &HeaderMap,
) -> Result<Account, Response> {
    let Some((user, password)) = basic_credentials(headers) else {
        return Err(unauthorized());
    };
    let store = Arc::clone(&server.ctx.store);
    let checked = tokio::task::spawn_blocking(move || {
        let account = store.account_by_address(&user).ok()?;
        match store.verify_password(account.id, &password) {
            Ok(true) => Some(account),
            Ok(false) => None,
            Err(e) => {
                tracing::error!(error = %e, "password check failed");
                None
            }
        }
    })
    .await;
    match checked {
        Ok(Some(account)) => Ok(account),
        _ => Err(unauthorized()),
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
