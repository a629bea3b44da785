//! JMAP errors: request-level problems (RFC 8620 §3.6.1, RFC 7807 problem
//! details), method-level errors (§3.6.2) and SetErrors (§5.3).
//!
//! Handlers return [`Error`]; [`Error::classify`] is the one place that
//! decides which JMAP error type a failure is and what it says, so the
//! same cause reads the same as a method error or a SetError, and the
//! certificate rules' messages reach the user exactly as the CLI prints
//! them.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::certs::{CertError, RuleViolation};
use crate::ingest::DeliverError;
use crate::manage::ManageError;
use crate::store::MailError;

/// Why a method call, or one object of a `/set`, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The store refused or failed.
    #[error(transparent)]
    Store(Box<MailError>),
    /// Certificate rules or settings refused.
    #[error(transparent)]
    Manage(Box<ManageError>),
    /// The ingest pipeline refused an import.
    #[error(transparent)]
    Deliver(Box<DeliverError>),
    /// A blocking task died: our bug.
    #[error("internal error: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Arguments of the call do not fit the method.
    #[error("{0}")]
    InvalidArguments(String),
    /// Object properties that are wrong.
    #[error("{description}")]
    InvalidProperties {
        /// The offending properties.
        properties: Vec<String>,
        /// What is wrong and what to do.
        description: String,
    },
    /// The `accountId` is not the authenticated account.
    #[error("no such account for these credentials")]
    AccountNotFound,
    /// No method of that name.
    #[error("unknown method {0}")]
    UnknownMethod(String),
    /// The id names nothing.
    #[error("not found")]
    NotFound,
    /// A blob id that names no upload or stored blob of the account.
    #[error("blob {0} not found; upload it first")]
    BlobNotFound(String),
    /// The operation is not allowed here.
    #[error("{0}")]
    Forbidden(String),
    /// `ifInState` does not match.
    #[error("the state is {0}, not the one given in ifInState")]
    StateMismatch(String),
    /// `sinceState` is unknown or in the future.
    #[error("cannot calculate changes from state {0}; resynchronise")]
    CannotCalculateChanges(String),
    /// More changes than `maxChanges` (RFC 8620 §5.6 `tooManyChanges`).
    #[error("{0}")]
    TooManyChanges(String),
    /// Too many ids or operations in one call.
    #[error("{0}")]
    RequestTooLarge(String),
    /// A result reference that does not resolve.
    #[error("{0}")]
    InvalidResultReference(String),
    /// A filter this server does not implement.
    #[error("{0}")]
    UnsupportedFilter(String),
    /// A sort this server does not implement.
    #[error("{0}")]
    UnsupportedSort(String),
    /// A mailbox to destroy still holds messages.
    #[error("the mailbox holds messages; move them or set onDestroyRemoveEmails")]
    MailboxHasEmail,
    /// The `/query` anchor is not in the results.
    #[error("the anchor is not in the query results")]
    AnchorNotFound,
    /// A SetError of a method's own (RFC 8621 §7.5: `forbiddenFrom`,
    /// `invalidRecipients`, ...), with its extra members.
    #[error("{}", .0.description)]
    Set(Box<JmapError>),
    /// A singleton cannot be created or destroyed.
    #[error("EncryptionSettings is a singleton; update \"singleton\" instead")]
    Singleton,
}

// why boxed: the causes are large (certificate rule details); every
// handler returns `Result<_, Error>`, which should stay small.
impl From<MailError> for Error {
    fn from(e: MailError) -> Self {
        Error::Store(Box::new(e))
    }
}

impl From<ManageError> for Error {
    fn from(e: ManageError) -> Self {
        Error::Manage(Box::new(e))
    }
}

impl From<DeliverError> for Error {
    fn from(e: DeliverError) -> Self {
        Error::Deliver(Box::new(e))
    }
}

/// A JMAP error object: `type`, `description` and extra members.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JmapError {
    /// The error type (`invalidProperties`, `serverFail`, ...).
    pub(crate) kind: &'static str,
    /// Human-readable text.
    pub(crate) description: String,
    /// Type-specific members (`properties`, `existingId`).
    pub(crate) extra: Map<String, Value>,
}

impl JmapError {
    pub(crate) fn new(kind: &'static str, description: String) -> Self {
        Self {
            kind,
            description,
            extra: Map::new(),
        }
    }

    pub(crate) fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.to_string(), value);
        self
    }

    /// The error object as JSON.
    pub(crate) fn to_json(&self) -> Value {
        let mut obj = self.extra.clone();
        obj.insert("type".into(), json!(self.kind));
        obj.insert("description".into(), json!(self.description));
        Value::Object(obj)
    }
}

impl Error {
    /// The JMAP error this failure is: the one mapping of causes to types.
    pub(crate) fn classify(&self) -> JmapError {
        let text = self.to_string();
        let e = |kind| JmapError::new(kind, text.clone());
        match self {
            Error::Store(m) => store_error(m, text.clone()),
            Error::Manage(m) => match &**m {
                ManageError::Store(m) => store_error(m, text.clone()),
                ManageError::Cert(c) => cert_error(c, text.clone()),
                ManageError::TooManyCertificates { .. } => e("overQuota"),
                ManageError::UnknownAlgorithm { .. } => {
                    e("invalidProperties").with("properties", json!(["algorithm"]))
                }
                ManageError::UnknownKeyTransport { .. } => {
                    e("invalidProperties").with("properties", json!(["keyTransport"]))
                }
                ManageError::BadDescription(_) => {
                    e("invalidProperties").with("properties", json!(["description"]))
                }
                _ => e("invalidProperties"),
            },
            Error::Deliver(d) => match &**d {
                DeliverError::OverQuota { .. } => e("overQuota"),
                DeliverError::Refused { .. } => e("forbidden"),
                DeliverError::Store { source, .. } => store_error(source, text.clone()),
                _ => server_fail(text),
            },
            Error::Task(_) => server_fail(text),
            Error::InvalidArguments(_) => e("invalidArguments"),
            Error::InvalidProperties { properties, .. } => {
                e("invalidProperties").with("properties", json!(properties))
            }
            Error::AccountNotFound => e("accountNotFound"),
            Error::UnknownMethod(_) => e("unknownMethod"),
            Error::NotFound => e("notFound"),
            Error::BlobNotFound(id) => e("blobNotFound").with("notFound", json!([id])),
            Error::Forbidden(_) => e("forbidden"),
            Error::StateMismatch(_) => e("stateMismatch"),
            Error::CannotCalculateChanges(_) => e("cannotCalculateChanges"),
            Error::TooManyChanges(_) => e("tooManyChanges"),
            Error::RequestTooLarge(_) => e("requestTooLarge"),
            Error::InvalidResultReference(_) => e("invalidResultReference"),
            Error::UnsupportedFilter(_) => e("unsupportedFilter"),
            Error::UnsupportedSort(_) => e("unsupportedSort"),
            Error::AnchorNotFound => e("anchorNotFound"),
            Error::MailboxHasEmail => e("mailboxHasEmail"),
            Error::Singleton => e("singleton"),
            Error::Set(j) => (**j).clone(),
        }
    }
}

fn server_fail(text: String) -> JmapError {
    tracing::error!(error = %text, "JMAP method failed");
    JmapError::new("serverFail", text)
}

fn store_error(m: &MailError, text: String) -> JmapError {
    let props = |p: &[&str]| json!(p);
    match m {
        MailError::MailboxNotFound { .. }
        | MailError::MessageNotFound { .. }
        | MailError::CertificateNotFound { .. }
        | MailError::AppTokenNotFound { .. }
        | MailError::ReadingKeyNotFound { .. } => JmapError::new("notFound", text),
        MailError::TooManyReadingKeys { .. } => JmapError::new("overQuota", text),
        MailError::DuplicateReadingKey { fingerprint } => {
            JmapError::new("alreadyExists", text).with("existingId", json!(fingerprint.to_string()))
        }
        MailError::NoReadingKey => JmapError::new("invalidProperties", text)
            .with("properties", props(&["serverSideReading"])),
        MailError::TooManyAppTokens { .. } => JmapError::new("overQuota", text),
        MailError::InvalidAppTokenName { .. } => {
            JmapError::new("invalidProperties", text).with("properties", props(&["name"]))
        }
        MailError::AccountNotFound { .. } => JmapError::new("accountNotFound", text),
        MailError::MailboxExists { .. } => JmapError::new("alreadyExists", text),
        MailError::InvalidMailboxName { .. } => {
            JmapError::new("invalidProperties", text).with("properties", props(&["name"]))
        }
        MailError::MailboxHasChildren { .. } => JmapError::new("mailboxHasChild", text),
        MailError::InboxProtected => JmapError::new("forbidden", text),
        MailError::QuotaExceeded { .. } => JmapError::new("overQuota", text),
        MailError::DuplicateCertificate { fingerprint } => {
            JmapError::new("alreadyExists", text).with("existingId", json!(fingerprint.to_string()))
        }
        MailError::LastActiveCertificate { .. } => {
            JmapError::new("invalidProperties", text).with("properties", props(&["isActive"]))
        }
        MailError::NoActiveCertificate => {
            JmapError::new("invalidProperties", text).with("properties", props(&["isEnabled"]))
        }
        m if m.is_user_error() => JmapError::new("invalidProperties", text),
        _ => server_fail(text),
    }
}

fn cert_error(c: &CertError, text: String) -> JmapError {
    match c {
        CertError::Rule {
            violation: RuleViolation::Duplicate { fingerprint, .. },
            ..
        } => {
            JmapError::new("alreadyExists", text).with("existingId", json!(fingerprint.to_string()))
        }
        _ => JmapError::new("invalidProperties", text).with("properties", json!(["certificate"])),
    }
}

/// Prefix of RFC 8620's request-level error types.
const JMAP_ERROR: &str = "urn:ietf:params:jmap:error:";
/// Prefix of sealmail's request-level error types.
const SEALMAIL_ERROR: &str = "urn:sealmail:params:jmap:error:";

/// A request-level error (RFC 8620 §3.6.1), answered as problem details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    status: StatusCode,
    /// The type URI's prefix: RFC 8620's for its request-level errors,
    /// sealmail's own for refusals RFC 8620 has no type for.
    namespace: &'static str,
    kind: &'static str,
    detail: String,
    limit: Option<&'static str>,
}

impl Problem {
    /// The body is not JSON.
    pub(crate) fn not_json(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "notJSON", detail)
    }

    /// JSON, but not a request object.
    pub(crate) fn not_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "notRequest", detail)
    }

    /// A state-changing request from a page of another site (403).
    pub(crate) fn cross_origin(detail: impl Into<String>) -> Self {
        Self {
            namespace: SEALMAIL_ERROR,
            ..Self::new(StatusCode::FORBIDDEN, "crossOrigin", detail)
        }
    }

    /// An API request whose body is not declared `application/json` (415).
    pub(crate) fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self {
            namespace: SEALMAIL_ERROR,
            ..Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupportedMediaType",
                detail,
            )
        }
    }

    /// A limit of the session's core capability was exceeded.
    pub(crate) fn limit(limit: &'static str, detail: impl Into<String>) -> Self {
        let status = if limit.starts_with("maxSize") {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            limit: Some(limit),
            ..Self::new(status, "limit", detail)
        }
    }

    /// The session limit a `limit` problem names.
    #[cfg(test)]
    pub(crate) fn limit_name(&self) -> Option<&'static str> {
        self.limit
    }

    fn new(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            namespace: JMAP_ERROR,
            kind,
            detail: detail.into(),
            limit: None,
        }
    }
}

impl Problem {
    /// The problem details object (RFC 7807) of the response body; also
    /// the body of a WebSocket `RequestError` (RFC 8887 §4.3.4).
    pub(crate) fn to_json(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert(
            "type".into(),
            json!(format!("{}{}", self.namespace, self.kind)),
        );
        body.insert("status".into(), json!(self.status.as_u16()));
        body.insert("detail".into(), json!(self.detail));
        if let Some(limit) = self.limit {
            body.insert("limit".into(), json!(limit));
        }
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = Value::Object(self.to_json());
        (
            self.status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response()
    }
}
