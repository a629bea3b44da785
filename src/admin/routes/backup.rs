//! `POST /backup`: an online backup of the store into a directory the
//! operator names (`sealmail backup DIR`).
//!
//! Only the management API offers it, and that is served on `admin.sock`
//! (mode 0600) alone: whoever may call it is the server's user or root
//! already, and the server writes the backup with its own rights, below
//! a directory that must be empty, never following a link inside it
//! (`store::backup`).

use std::path::PathBuf;

use axum::extract::State;
use axum::Json;

use super::{blocking, ApiError, Store};
use crate::admin::api::{BackupRequest, BackupView};

pub(super) async fn backup(
    State(store): Store,
    Json(req): Json<BackupRequest>,
) -> Result<Json<BackupView>, ApiError> {
    let dir = PathBuf::from(&req.dir);
    blocking(store, move |s| {
        let manifest = s.backup(&dir).map_err(ApiError::Backup)?;
        Ok(Json(BackupView {
            dir: req.dir,
            files: manifest.files.len(),
            bytes: manifest.bytes(),
            created: manifest.created,
        }))
    })
    .await
}
