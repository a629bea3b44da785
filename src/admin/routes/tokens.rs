//! `sealmail token add|list|remove`: app tokens of an account
//! (`store::tokens`). Adding answers with the secret, the one time it is
//! shown; listing never shows it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::{account, blocking, ApiError, Store};
use crate::admin::api::{TokenAdd, TokenCreated, TokenView};
use crate::store::TokenId;

pub(super) async fn list(
    State(store): Store,
    Path(email): Path<String>,
) -> Result<Json<Vec<TokenView>>, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        let tokens = s.list_app_tokens(a.id)?;
        Ok(Json(tokens.iter().map(TokenView::from).collect()))
    })
    .await
}

pub(super) async fn add(
    State(store): Store,
    Path(email): Path<String>,
    Json(req): Json<TokenAdd>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        let made = s.add_app_token(a.id, &req.name)?;
        Ok((
            StatusCode::CREATED,
            Json(TokenCreated {
                token: TokenView::from(&made.token),
                secret: made.secret,
            }),
        ))
    })
    .await
}

pub(super) async fn remove(
    State(store): Store,
    Path((email, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        let token: TokenId = id.parse()?;
        s.remove_app_token(a.id, token)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}
