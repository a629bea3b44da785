//! The JMAP server: RFC 8620 core (session, API, upload/download), RFC 8621
//! mail objects and sealmail's encryption extension
//! (`urn:sealmail:params:jmap:encryption`, ARCHITECTURE.md "Outside
//! contracts").
//!
//! # Shape
//!
//! [`router`] is an axum `Router` that [`serve`] serves on `jmap.listen`
//! (`listen`: connection caps and the header timeout).
//! Every request is authenticated with HTTP Basic (RFC 8620 §1.6.1 leaves
//! the scheme open) against the store's password hash, or with an app
//! token (`Authorization: Bearer`). The API endpoint
//! (`api`) parses the request object (RFC 8620 §3.3), enforces the limits
//! announced in the session (§2), resolves result references (§3.7) and
//! hands each method call to one handler per object type:
//!
//! - `mailbox`: `Mailbox/get|query|changes|set` (RFC 8621 §2);
//! - `email`: `Email/get|query|changes|set|import|parse` and `Thread/get`
//!   (RFC 8621 §3, §4), body-part blobs;
//! - `certificate`, `settings`: the encryption extension;
//! - `quota`: `Quota/get|changes|query|queryChanges` (RFC 9425);
//! - `tokens`: `AppToken/get|set` (`urn:sealmail:params:jmap:auth`);
//! - `events`: push of state changes over an event source (§7.3);
//! - `ws`: JMAP over WebSocket (RFC 8887), requests and push;
//! - `send_test`: `EncryptionSettings/sendTest`, a test message to oneself.
//!
//! `page` serves the self-service account page (`/account/`, a JMAP client
//! in the browser; `/` redirects there).
//!
//! Handlers talk to the blocking [`MailStore`] only through
//! `spawn_blocking`. Every failure becomes a JMAP error in one place
//! (`error::Error::classify`), so a method error and a SetError for the
//! same cause always read the same.
//!
//! # Ids and states
//!
//! The store keeps one record per (mailbox, UID), so an Email id encodes
//! both: `e{mailbox}_{uid}`; the Thread id is `t{mailbox}_{uid}` (one
//! thread per message, RFC 8621 §3 allows any grouping). A mailbox is
//! `m{id}`, the account `a{id}`, a certificate its SHA-256 fingerprint in
//! hex, a blob the SHA-256 of its bytes in hex. Moving an Email to another
//! mailbox (`Email/set` `mailboxIds`) therefore gives it a new id: `/changes`
//! reports the old id destroyed and the new one created, and `Email/set`
//! names the new id in its `updated` entry (`id`). Every state string is
//! the account's change-log counter (modseq): one number for all types,
//! which RFC 8620 §1.6 permits (a state must change when the data does).

mod api;
mod auth;
mod blob;
mod call;
mod certificate;
mod changes;
mod email;
mod error;
mod events;
mod guard;
mod identity;
mod ids;
mod listen;
mod mailbox;
mod origin;
mod page;
mod private_key;
mod quota;
mod reference;
mod send_test;
mod session;
mod set;
mod settings;
mod submission;
mod tokens;
mod ws;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

pub use listen::{serve, serve_tls, HttpLimits};
pub use origin::UrlPolicy;

use crate::ingest::Ingest;
use crate::notify::Notifier;
use crate::store::MailStore;

/// What the JMAP server needs from the rest of sealmail.
#[derive(Debug)]
pub struct JmapContext {
    /// The mail store.
    pub store: Arc<MailStore>,
    /// The ingest pipeline (`Email/import` goes through it, so that
    /// `encryptOnAppend` is honoured).
    pub ingest: Arc<Ingest>,
    /// Change notifications (every committed change of an account).
    pub notifier: Arc<Notifier>,
    /// Largest upload accepted (`limits.max_message_size`).
    pub max_upload_bytes: u64,
    /// How the session's URLs are made and whose forwarded headers count.
    pub urls: UrlPolicy,
    /// Server-side reading keys unlocked on this node (`crate::reading`).
    pub keyring: Arc<crate::reading::Keyring>,
    /// Where `EmailSubmission` sends mail; `None`: sending is off and
    /// `urn:ietf:params:jmap:submission` is not advertised.
    pub relay: Option<crate::submission::Relay>,
}

/// Limits announced in the session's core capability and enforced.
pub(crate) mod limits {
    /// Uploads in flight per account.
    pub(crate) const CONCURRENT_UPLOAD: usize = 4;
    /// Largest API request body.
    pub(crate) const SIZE_REQUEST: usize = 10 * 1024 * 1024;
    /// API requests in flight per account.
    pub(crate) const CONCURRENT_REQUESTS: usize = 8;
    /// Longest wait for a request body. why: a client that announces a
    /// body and stalls holds one of its account's request slots.
    pub(crate) const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
    /// Method calls in one request.
    pub(crate) const CALLS_IN_REQUEST: usize = 32;
    /// Objects one `/get` may return.
    pub(crate) const OBJECTS_IN_GET: usize = 500;
    /// Operations (create + update + destroy) in one `/set`.
    pub(crate) const OBJECTS_IN_SET: usize = 500;
    /// Certificates per account. why: each active certificate adds one
    /// RSA key transport (and ~300 bytes) to every stored message, and a
    /// rotation needs two or three; 20 leaves room for mistakes while
    /// bounding per-delivery cost.
    pub(crate) const CERTIFICATES: usize = crate::manage::MAX_CERTIFICATES;
}

/// Capability URIs.
pub(crate) mod capability {
    /// RFC 8620.
    pub(crate) const CORE: &str = "urn:ietf:params:jmap:core";
    /// RFC 8621.
    pub(crate) const MAIL: &str = "urn:ietf:params:jmap:mail";
    /// sealmail's encryption extension.
    pub(crate) const ENCRYPTION: &str = "urn:sealmail:params:jmap:encryption";
    /// RFC 9425.
    pub(crate) const QUOTA: &str = "urn:ietf:params:jmap:quota";
    /// sealmail's app tokens (`AppToken`).
    pub(crate) const AUTH: &str = "urn:sealmail:params:jmap:auth";
    /// RFC 8621 §7 (Identity, EmailSubmission).
    pub(crate) const SUBMISSION: &str = "urn:ietf:params:jmap:submission";
    /// RFC 8887.
    pub(crate) const WEBSOCKET: &str = "urn:ietf:params:jmap:websocket";
}

/// Shared state of the routes.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) ctx: Arc<JmapContext>,
    pub(crate) uploads: blob::Uploads,
    pub(crate) request_slots: auth::AccountSlots,
    pub(crate) upload_slots: auth::AccountSlots,
    /// Failed logins per source address.
    pub(crate) throttle: crate::login_throttle::LoginThrottle,
    /// When each account last sent itself a test message.
    pub(crate) test_sends: send_test::SendTestLimit,
}

/// The JMAP routes: session, API, upload, download, event source,
/// WebSocket, the health checks `/healthz` and `/readyz`, and the account page.
pub fn router(ctx: Arc<JmapContext>) -> Router {
    // why outside the cross-site guard: probes carry no credentials and
    // change nothing.
    let health = crate::metrics::health_routes(Arc::clone(&ctx.store));
    let server = Arc::new(Server {
        ctx,
        uploads: blob::Uploads::default(),
        request_slots: auth::AccountSlots::new(limits::CONCURRENT_REQUESTS),
        upload_slots: auth::AccountSlots::new(limits::CONCURRENT_UPLOAD),
        throttle: crate::login_throttle::LoginThrottle::default(),
        test_sends: send_test::SendTestLimit::default(),
    });
    Router::new()
        .route("/.well-known/jmap", get(session::handle))
        .route("/jmap/session", get(session::handle))
        .route("/jmap/api", post(api::handle))
        .route("/jmap/upload/{account}/", post(blob::upload))
        .route("/jmap/eventsource/", get(events::handle))
        .route(ws::PATH, get(ws::handle))
        .route(
            "/jmap/download/{account}/{blob}/{name}",
            get(blob::download),
        )
        // why: the handlers read bodies with their own limits (the
        // announced maxSizeRequest / maxSizeUpload), so that an oversized
        // body gets a JMAP problem response, not axum's plain 413.
        .layer(DefaultBodyLimit::disable())
        // why a layer over every route: a state-changing route added later
        // is refused to foreign pages without its author thinking of it.
        .layer(axum::middleware::from_fn(guard::refuse_cross_site))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&server),
            origin::resolve,
        ))
        .with_state(server)
        .merge(health)
        .merge(page::routes())
}
