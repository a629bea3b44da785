//! `sealmail reading enable|disable|status`: server-side reading of an
//! account (`crate::reading`). Enabling takes the key and the account's
//! own password (the key is stored only wrapped under it), checks that
//! the key belongs to an active certificate, and switches reading on;
//! disabling removes every held key and forgets them on this node at once.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;

use super::{account, blocking, ApiError, Store};
use crate::admin::api::{utc, ReadingEnable, ReadingKeyView, ReadingView};
use crate::reading::{import_key, ImportError, KeyInput, Keyring};
use crate::store::{AccountId, MailError, MailStore};

/// The keyring of the server the API runs in.
pub(super) type Ring = State<Arc<Keyring>>;

fn view(
    s: &MailStore,
    ring: &Keyring,
    id: AccountId,
    email: String,
) -> Result<ReadingView, ApiError> {
    let status = s.reading_status(id)?;
    Ok(ReadingView {
        email,
        enabled: status.enabled,
        keys: status
            .keys
            .iter()
            .map(|k| ReadingKeyView {
                certificate: k.certificate.to_string(),
                created: utc(k.created),
            })
            .collect(),
        unlocked: ring.holds(id),
    })
}

pub(super) async fn status(
    State(store): Store,
    State(ring): Ring,
    Path(email): Path<String>,
) -> Result<Json<ReadingView>, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        Ok(Json(view(s, &ring, a.id, a.address)?))
    })
    .await
}

pub(super) async fn enable(
    State(store): Store,
    State(ring): Ring,
    Path(email): Path<String>,
    Json(req): Json<ReadingEnable>,
) -> Result<Json<ReadingView>, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        let key_pem = zeroize::Zeroizing::new(req.key_pem);
        let password = zeroize::Zeroizing::new(req.password);
        let (fp, pkcs8) = match import_key(s, a.id, KeyInput::Pem(&key_pem)) {
            Ok(found) => found,
            Err(ImportError::Store(e)) => return Err(e.into()),
            Err(e) => return Err(ApiError::BadRequest(e.to_string())),
        };
        match s.add_reading_key(a.id, &password, fp, &pkcs8) {
            Ok(_) | Err(MailError::DuplicateReadingKey { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        s.set_server_side_reading(a.id, true)?;
        crate::reading::refresh(s, &ring, a.id, &password)?;
        Ok(Json(view(s, &ring, a.id, a.address)?))
    })
    .await
}

pub(super) async fn disable(
    State(store): Store,
    State(ring): Ring,
    Path(email): Path<String>,
) -> Result<Json<ReadingView>, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        s.set_server_side_reading(a.id, false)?;
        for key in s.reading_status(a.id)?.keys {
            s.remove_reading_key(a.id, key.certificate)?;
        }
        ring.forget(a.id);
        Ok(Json(view(s, &ring, a.id, a.address)?))
    })
    .await
}
