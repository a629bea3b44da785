//! The management API's routes. Every handler moves its store work to the
//! blocking pool through [`blocking`] and maps errors to HTTP in
//! [`ApiError::into_response`], the one place that does. The migration
//! routes (`import`, `reencrypt`) live in `migrate` and go through the
//! ingest pipeline rather than straight to the store; `backup` writes an
//! online backup.

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use base64::Engine as _;

use super::api::{
    AccountAdd, AccountView, CertAdd, CertView, EncryptionSet, EncryptionView, ErrorBody, ListAdd,
    ListKeyAdd, ListView, MailboxView, MemberAdd, MessageView, PasswordSet, QuotaSet,
};
use crate::certs::Fingerprint;
use crate::ingest::{DeliverError, Ingest};
use crate::manage::{self, ManageError};
use crate::server::Services;
use crate::store::{Account, BlobHash, Flags, MailError, MailStore};

/// Largest request body: a certificate bundle or a list key, never mail.
const MAX_BODY_BYTES: usize = 1024 * 1024;

mod backup;
mod migrate;
mod reading;
mod tokens;

/// What the handlers share: the pipeline (and through it the store) and
/// the message size limit the migration routes enforce.
#[derive(Debug, Clone)]
struct AdminState {
    ingest: Arc<Ingest>,
    max_message_bytes: u64,
    keyring: Arc<crate::reading::Keyring>,
}

impl FromRef<AdminState> for Arc<crate::reading::Keyring> {
    fn from_ref(state: &AdminState) -> Self {
        Arc::clone(&state.keyring)
    }
}

impl FromRef<AdminState> for Arc<MailStore> {
    fn from_ref(state: &AdminState) -> Self {
        Arc::clone(state.ingest.store())
    }
}

/// The router over the services' ingest pipeline and its store; imported
/// messages are held to `limits.max_message_size`, as LMTP holds mail.
pub fn router(services: &Services) -> Router {
    let ingest = Arc::clone(&services.ingest);
    let max_message_bytes = services.config.limits.max_message_size;
    let import_body = migrate::import_body_limit(max_message_bytes);
    Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/accounts", get(list_accounts).post(add_account))
        .route("/accounts/{email}", delete(remove_account))
        .route("/accounts/{email}/password", put(set_password))
        .route("/accounts/{email}/quota", put(set_quota))
        .route("/accounts/{email}/certs", get(list_certs).post(add_cert))
        .route("/accounts/{email}/certs/{fingerprint}", delete(remove_cert))
        .route(
            "/accounts/{email}/encryption",
            get(get_encryption).put(set_encryption),
        )
        .route(
            "/accounts/{email}/tokens",
            get(tokens::list).post(tokens::add),
        )
        .route("/accounts/{email}/tokens/{id}", delete(tokens::remove))
        .route(
            "/accounts/{email}/reading",
            get(reading::status)
                .post(reading::enable)
                .delete(reading::disable),
        )
        .route("/accounts/{email}/mailboxes", get(list_mailboxes))
        .route(
            "/accounts/{email}/mailboxes/{name}/messages",
            get(list_messages),
        )
        .route("/accounts/{email}/blobs/{hash}", get(get_blob))
        .route(
            "/accounts/{email}/import",
            post(migrate::import_message).layer(axum::extract::DefaultBodyLimit::max(import_body)),
        )
        .route(
            "/accounts/{email}/reencrypt",
            get(migrate::reencrypt_status).post(migrate::reencrypt_page),
        )
        .route("/compact", post(migrate::compact))
        .route("/backup", post(backup::backup))
        .route("/lists", get(list_lists).post(add_list))
        .route("/lists/{address}/members", post(add_member))
        .route("/lists/{address}/members/{email}", delete(remove_member))
        .route("/lists/{address}/keys", post(add_list_key))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AdminState {
            ingest,
            max_message_bytes,
            keyring: Arc::clone(&services.keyring),
        })
}

type Store = State<Arc<MailStore>>;

/// An error on its way to becoming an HTTP reply.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// Refused or failed in the management layer.
    Manage(ManageError),
    /// The request itself is malformed.
    BadRequest(String),
    /// The ingest pipeline refused or failed to store a message.
    Deliver(DeliverError),
    /// A backup was refused or failed.
    Backup(crate::store::backup::BackupError),
    /// A blocking task died; a bug.
    Task(tokio::task::JoinError),
}

impl From<DeliverError> for ApiError {
    fn from(e: DeliverError) -> Self {
        Self::Deliver(e)
    }
}

impl From<ManageError> for ApiError {
    fn from(e: ManageError) -> Self {
        Self::Manage(e)
    }
}

impl From<MailError> for ApiError {
    fn from(e: MailError) -> Self {
        Self::Manage(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match &self {
            Self::Manage(ManageError::Store(
                e @ (MailError::AccountNotFound { .. }
                | MailError::ListNotFound { .. }
                | MailError::CertificateNotFound { .. }
                | MailError::AppTokenNotFound { .. }
                | MailError::ReadingKeyNotFound { .. }
                | MailError::MailboxNotFound { .. }),
            )) => (StatusCode::NOT_FOUND, e.to_string()),
            Self::Manage(ManageError::Store(
                e @ (MailError::DuplicateCertificate { .. }
                | MailError::AddressTaken { .. }
                | MailError::DuplicateListKey { .. }),
            )) => (StatusCode::CONFLICT, e.to_string()),
            Self::Manage(e) if e.is_user_error() => (StatusCode::BAD_REQUEST, e.to_string()),
            Self::Manage(e) => {
                tracing::error!(error = %e, "management request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            Self::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            Self::Deliver(
                e @ (DeliverError::Refused { .. }
                | DeliverError::NotEncrypted { .. }
                | DeliverError::OverQuota { .. }),
            ) => (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
            Self::Deliver(DeliverError::Store { source, .. }) if source.is_user_error() => {
                (StatusCode::BAD_REQUEST, source.to_string())
            }
            Self::Deliver(e) => {
                tracing::error!(error = %e, "management request failed in the pipeline");
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            Self::Backup(e @ crate::store::backup::BackupError::Busy) => {
                (StatusCode::CONFLICT, e.to_string())
            }
            Self::Backup(e) if e.is_user_error() => (StatusCode::BAD_REQUEST, e.to_string()),
            Self::Backup(e) => {
                tracing::error!(error = %e, "backup failed");
                (StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            Self::Task(e) => {
                tracing::error!(error = %e, "management task died");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("internal error: {e}"),
                )
            }
        };
        (status, Json(ErrorBody { error: message })).into_response()
    }
}

/// Runs `f` on the blocking pool (every store call is blocking).
async fn blocking<T, F>(store: Arc<MailStore>, f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&MailStore) -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(ApiError::Task)?
}

fn decode_base64(field: &str, data: &str) -> Result<Vec<u8>, ApiError> {
    base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .map_err(|e| ApiError::BadRequest(format!("`{field}` is not base64 ({e})")))
}

fn account(store: &MailStore, email: &str) -> Result<Account, ApiError> {
    Ok(store.account_by_address(email)?)
}

async fn list_accounts(State(store): Store) -> Result<Json<Vec<AccountView>>, ApiError> {
    blocking(store, |s| {
        Ok(Json(
            s.list_accounts()?.iter().map(AccountView::from).collect(),
        ))
    })
    .await
}

async fn add_account(
    State(store): Store,
    Json(req): Json<AccountAdd>,
) -> Result<(StatusCode, Json<AccountView>), ApiError> {
    blocking(store, move |s| {
        let a = s.add_account(&req.email, req.password.as_deref(), &req.aliases)?;
        Ok((StatusCode::CREATED, Json(AccountView::from(&a))))
    })
    .await
}

async fn remove_account(
    State(store): Store,
    State(ring): reading::Ring,
    Path(email): Path<String>,
) -> Result<StatusCode, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        s.remove_account(a.id)?;
        ring.forget(a.id);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn set_password(
    State(store): Store,
    State(ring): reading::Ring,
    Path(email): Path<String>,
    Json(req): Json<PasswordSet>,
) -> Result<StatusCode, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        // why forget: the reset dropped the server-side reading keys.
        s.set_password(a.id, Some(&req.password))?;
        ring.forget(a.id);
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn set_quota(
    State(store): Store,
    Path(email): Path<String>,
    Json(req): Json<QuotaSet>,
) -> Result<StatusCode, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        s.set_quota(a.id, req.quota_bytes)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

async fn list_certs(
    State(store): Store,
    Path(email): Path<String>,
) -> Result<Json<Vec<CertView>>, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        Ok(Json(
            s.list_certificates(a.id)?
                .iter()
                .map(CertView::from)
                .collect(),
        ))
    })
    .await
}

async fn add_cert(
    State(store): Store,
    Path(email): Path<String>,
    Json(req): Json<CertAdd>,
) -> Result<(StatusCode, Json<Vec<CertView>>), ApiError> {
    let file = decode_base64("data", &req.data)?;
    blocking(store, move |s| {
        let a = account(s, &email)?;
        let added = manage::add_certificates(s, &a, &file, &req.description)?;
        Ok((
            StatusCode::CREATED,
            Json(added.iter().map(CertView::from).collect()),
        ))
    })
    .await
}

async fn remove_cert(
    State(store): Store,
    Path((email, fingerprint)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let fp: Fingerprint = fingerprint
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("{e}")))?;
    blocking(store, move |s| {
        let a = account(s, &email)?;
        s.remove_certificate(a.id, fp)?;
        Ok(StatusCode::NO_CONTENT)
    })
    .await
}

fn encryption_view(s: &MailStore, a: &Account) -> Result<EncryptionView, ApiError> {
    let settings = s.encryption_settings(a.id)?;
    let certs = s.list_certificates(a.id)?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Ok(EncryptionView::new(&a.address, &settings, &certs, now))
}

async fn get_encryption(
    State(store): Store,
    Path(email): Path<String>,
) -> Result<Json<EncryptionView>, ApiError> {
    blocking(store, move |s| {
        Ok(Json(encryption_view(s, &account(s, &email)?)?))
    })
    .await
}

async fn set_encryption(
    State(store): Store,
    Path(email): Path<String>,
    Json(req): Json<EncryptionSet>,
) -> Result<Json<EncryptionView>, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        let change = manage::EncryptionChange {
            enabled: req.enabled,
            algorithm: req.algorithm.as_deref(),
            key_transport: req.key_transport.as_deref(),
            encrypt_on_append: req.encrypt_on_append,
        };
        manage::change_encryption(s, &a, change)?;
        Ok(Json(encryption_view(s, &a)?))
    })
    .await
}

async fn list_mailboxes(
    State(store): Store,
    Path(email): Path<String>,
) -> Result<Json<Vec<MailboxView>>, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        let boxes = s.list_mailboxes(a.id)?;
        Ok(Json(
            boxes
                .into_iter()
                .map(|m| MailboxView {
                    name: m.name,
                    exists: m.exists,
                })
                .collect(),
        ))
    })
    .await
}

async fn list_messages(
    State(store): Store,
    Path((email, name)): Path<(String, String)>,
) -> Result<Json<Vec<MessageView>>, ApiError> {
    blocking(store, move |s| {
        let a = account(s, &email)?;
        let mailbox = s.mailbox_by_name(a.id, &name)?;
        let messages = s.list_messages(a.id, mailbox.id, None, usize::MAX)?;
        Ok(Json(
            messages
                .into_iter()
                .map(|m| MessageView {
                    uid: m.uid.get(),
                    maildir_flags: maildir_flags(&m.flags),
                    internal_date: m.internal_date,
                    blob: m.blob.to_string(),
                    encrypted: m.encrypted,
                })
                .collect(),
        ))
    })
    .await
}

/// Maildir info letters in ASCII order (Maildir spec: "2," then flags).
fn maildir_flags(f: &Flags) -> String {
    [
        (f.draft, 'D'),
        (f.flagged, 'F'),
        (f.answered, 'R'),
        (f.seen, 'S'),
        (f.deleted, 'T'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect()
}

async fn get_blob(
    State(store): Store,
    Path((email, hash)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let blob = parse_blob_hash(&hash)?;
    blocking(store, move |s| {
        let a = account(s, &email)?;
        match s.get_blob(a.id, blob)? {
            Some(bytes) => Ok(([(header::CONTENT_TYPE, "message/rfc822")], bytes).into_response()),
            None => Err(ApiError::BadRequest(format!(
                "no blob {hash} in this account"
            ))),
        }
    })
    .await
}

fn parse_blob_hash(hex: &str) -> Result<BlobHash, ApiError> {
    let bad = || ApiError::BadRequest(format!("{hex:?} is not a blob id (64 hex digits)"));
    if hex.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = hex.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(BlobHash(out))
}

fn list_view(s: &MailStore, address: &str) -> Result<ListView, ApiError> {
    let list = s.get_list(address)?;
    Ok(ListView {
        members: s.list_members(&list.address)?,
        keys: s
            .list_key_infos(&list.address)?
            .iter()
            .map(|k| k.fingerprint.to_string())
            .collect(),
        address: list.address,
        owner: list.owner,
    })
}

async fn list_lists(State(store): Store) -> Result<Json<Vec<ListView>>, ApiError> {
    blocking(store, |s| {
        let lists = s.list_lists()?;
        Ok(Json(
            lists
                .iter()
                .map(|l| list_view(s, &l.address))
                .collect::<Result<_, _>>()?,
        ))
    })
    .await
}

async fn add_list(
    State(store): Store,
    Json(req): Json<ListAdd>,
) -> Result<(StatusCode, Json<ListView>), ApiError> {
    blocking(store, move |s| {
        let owner = req
            .owner
            .clone()
            .unwrap_or_else(|| default_owner(&req.address));
        let list = s.create_list(&req.address, &owner, &req.members)?;
        Ok((StatusCode::CREATED, Json(list_view(s, &list.address)?)))
    })
    .await
}

/// `owner-LOCAL@DOMAIN`, the Sympa convention for a list's owner address.
fn default_owner(list: &str) -> String {
    match list.split_once('@') {
        Some((local, domain)) => format!("owner-{local}@{domain}"),
        None => format!("owner-{list}"),
    }
}

async fn add_member(
    State(store): Store,
    Path(address): Path<String>,
    Json(req): Json<MemberAdd>,
) -> Result<Json<ListView>, ApiError> {
    blocking(store, move |s| {
        s.add_list_member(&address, &req.email)?;
        Ok(Json(list_view(s, &address)?))
    })
    .await
}

async fn remove_member(
    State(store): Store,
    Path((address, email)): Path<(String, String)>,
) -> Result<Json<ListView>, ApiError> {
    blocking(store, move |s| {
        s.remove_list_member(&address, &email)?;
        Ok(Json(list_view(s, &address)?))
    })
    .await
}

async fn add_list_key(
    State(store): Store,
    Path(address): Path<String>,
    Json(req): Json<ListKeyAdd>,
) -> Result<(StatusCode, Json<ListView>), ApiError> {
    let cert = decode_base64("cert", &req.cert)?;
    blocking(store, move |s| {
        manage::add_list_key(s, &address, &cert, &req.key)?;
        Ok((StatusCode::CREATED, Json(list_view(s, &address)?)))
    })
    .await
}
