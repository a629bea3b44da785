//! The IMAP server: IMAP4rev1 (RFC 3501) and the IMAP4rev2 core (RFC 9051)
//! with IDLE (RFC 2177), UIDPLUS (RFC 4315), MOVE (RFC 6851), ENABLE
//! (RFC 5161), NAMESPACE (RFC 2342), ID (RFC 2971), LITERAL+ (RFC 7888),
//! SPECIAL-USE (RFC 6154, with its LIST options of §4), LIST-EXTENDED
//! (RFC 5258), LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438), ESEARCH
//! (RFC 4731), SEARCHRES (RFC 5182), SORT and SORT=DISPLAY (RFC 5256, RFC 5957),
//! ESORT, CONTEXT=SEARCH and CONTEXT=SORT (RFC 5267, `context`),
//! THREAD=ORDEREDSUBJECT and THREAD=REFERENCES (RFC 5256, `thread`),
//! BINARY (RFC 3516), MULTIAPPEND (RFC 3502), CATENATE (RFC 4469), QUOTA
//! (RFC 9208, `quota`), UTF8=ACCEPT (RFC 6855, `utf8`), IMAP4rev2 on
//! ENABLE (`enable`) and STARTTLS / implicit TLS (RFC 9051 §6.2.1,
//! RFC 8314).
//!
//! # Shape
//!
//! Parsing, literals and response encoding are imap-codec / imap-next's
//! sans-I/O [`imap_next::server::Server`]; [`connection`] is the thin tokio
//! driver around it, and [`session`] holds the per-connection state
//! machine of RFC 9051 §3 (not authenticated → authenticated → selected →
//! logout). Command handlers are grouped by concept: `auth`, `mailboxes`,
//! `selected` with `snapshot` (the per-session index of UIDs, MODSEQs and
//! system flags, 16 bytes a message, that keeps sequence numbers
//! consistent, RFC 9051 §2.3.1.2 and §7.5.1), `fetch` and
//! `mime` (FETCH items, ENVELOPE and BODYSTRUCTURE, §6.4.5 and §7.5.2),
//! `search` (§6.4.4) with `esearch` (SEARCH with RETURN, which
//! imap-codec refuses: the session hands it those commands, and it hands
//! the criteria back to imap-codec), `searchres` (`$`, RFC 5182: a
//! refused command that uses it is rewritten with the saved result and
//! parsed again) and `sort` (SORT, parsed by
//! imap-codec, ordered here), `messages` (STORE, COPY, MOVE, EXPUNGE, APPEND),
//! with `append_command` (APPEND with several messages, CATENATE or
//! literal8, which imap-codec refuses: the session hands it those
//! commands, `multiappend` builds the messages, `catenate` resolves
//! their URLs, `literal8` re-encodes binary parts as base64),
//! `address` (address lists for ENVELOPE and address search), `list`
//! (LIST, plain and extended) with `list_command` (the RFC 5258 command
//! grammar, which imap-codec does not parse: the session hands it the
//! LIST commands imap-codec refused), `status`, `lsub`,
//! and `recent` (RFC 3501's `\Recent`, which IMAP4rev1 clients still
//! see); `enable` (ENABLE and what a session turned on: CONDSTORE,
//! QRESYNC, UTF8=ACCEPT, IMAP4rev2) and `utf8` (UTF-8 mailbox names,
//! respelled at the command boundary, and APPEND's UTF8 form).
//! Every store call runs on the blocking pool through one wrapper.
//!
//! Messages are served exactly as stored: an encrypted message is the
//! S/MIME `application/pkcs7-mime` message, decrypted by the client.
//! A session only ever names mailboxes of its own account: every name is
//! resolved against the logged-in account id, never globally.

mod address;
mod append_command;
mod auth;
mod binary;
mod catenate;
mod condstore;
mod connection;
mod context;
mod dates;
mod dispatch;
mod enable;
mod error;
mod esearch;
mod fetch;
mod idle;
mod list;
pub mod list_command;
mod literal8;
mod lsub;
mod mailboxes;
mod messages;
mod mime;
mod multiappend;
mod mutf7;
mod prelogin;
mod quota;
mod recent;
mod return_opts;
mod scan;
mod search;
mod searchres;
mod selected;
mod session;
mod snapshot;
mod sort;
mod status;
mod thread;
mod tls;
mod utf8;

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject as _};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, info_span, warn, Instrument};

pub use error::ImapError;

use crate::ingest::Ingest;
use crate::notify::Notifier;
use crate::store::MailStore;

/// Settings of the IMAP server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImapConfig {
    /// Name in the greeting.
    pub hostname: String,
    /// Largest literal (APPEND message) accepted; default 50 MiB, the
    /// store's `limits.max_message_size`, so that what LMTP accepts can
    /// also be appended back.
    pub max_literal_bytes: u32,
    /// Inactivity limit outside IDLE; default 30 minutes, the minimum RFC
    /// 9051 §5.4 allows for an autologout timer.
    pub idle_timeout: Duration,
    /// Inactivity limit before login; default 60 s. why shorter than
    /// `idle_timeout`: a client that has not logged in has nothing to wait
    /// for, and idle anonymous connections were one address's way to take
    /// every connection slot (RFC 9051 §5.4 lets unauthenticated sessions
    /// have a shorter timer).
    pub login_timeout: Duration,
    /// Connections not yet logged in from one address; more get `* BYE`.
    /// Default 50: far above what one mail client opens, far below
    /// `max_connections`, so that one address cannot shut others out.
    pub max_unauthenticated_per_source: usize,
    /// Concurrent connections; more get `* BYE` at once. Default 10,000:
    /// an idle session costs a task and two small buffers (tens of KiB),
    /// and a few thousand clients keeping IDLE open is an ordinary load;
    /// the file-descriptor limit of the process must allow it.
    pub max_connections: usize,
    /// TLS server configuration: enables STARTTLS on the plain port (and
    /// LOGINDISABLED before it) and implicit TLS on the TLS port.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Pause before answering a failed login, to slow password guessing;
    /// default 1 s, doubled per recent failure from the same address (see
    /// `throttle`). A real delay in every build (tests set it small).
    pub failed_login_delay: Duration,
    /// Failure counts per source address, shared by all connections.
    pub(crate) throttle: Arc<crate::login_throttle::LoginThrottle>,
    /// Unauthenticated connections per source address (an IPv6 /64
    /// counts as one address).
    pub(crate) anonymous: Arc<crate::net::SourceCounts>,
    /// Which messages some session already got as `\Recent` (RFC 3501
    /// §2.3.2), shared by all connections.
    pub(crate) recent: Arc<recent::RecentClaims>,
    /// Descriptors kept for the store: a connection whose descriptor
    /// falls in it gets `* BYE` at once. Default: none (the server sets
    /// `limits.reserved_files`).
    pub reserve: crate::net::FdReserve,
}

impl ImapConfig {
    /// The defaults, greeting as `hostname`.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            max_literal_bytes: 50 * 1024 * 1024,
            idle_timeout: Duration::from_secs(30 * 60),
            login_timeout: Duration::from_secs(60),
            max_unauthenticated_per_source: 50,
            max_connections: 10_000,
            tls: None,
            failed_login_delay: Duration::from_secs(1),
            throttle: Arc::default(),
            anonymous: Arc::default(),
            recent: Arc::default(),
            reserve: crate::net::FdReserve::none(),
        }
    }
}

/// What every IMAP session shares.
#[derive(Debug)]
pub struct ImapContext {
    /// The mail store.
    pub store: Arc<MailStore>,
    /// The ingest pipeline (APPEND goes through it).
    pub ingest: Arc<Ingest>,
    /// Change notifications (IDLE, NOOP).
    pub notifier: Arc<Notifier>,
    /// Settings.
    pub config: ImapConfig,
    /// Server-side reading keys unlocked on this node (`crate::reading`).
    pub keyring: Arc<crate::reading::Keyring>,
}

/// How long `serve` waits for sessions to say BYE after shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Accepts IMAP connections on `listener` until `shutdown` completes;
/// each connection runs in its own task. With `implicit_tls` every
/// connection starts with a TLS handshake (port 993 style); that needs
/// `ctx.config.tls`, without it such connections are refused.
pub async fn serve(
    listener: TcpListener,
    ctx: Arc<ImapContext>,
    implicit_tls: bool,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let limit = ctx.config.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(limit));
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut next_id: u64 = 0;
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // why: EMFILE and friends are transient; back off
                    // instead of spinning on accept.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        // why: a response written in pieces otherwise waits for the
        // client's delayed ACK (about 40 ms) on every command.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let span = info_span!("imap", conn = next_id, peer = %peer);
        if !ctx.config.reserve.admits(&tcp) {
            span.in_scope(|| warn!("open files near the limit; connection refused"));
            crate::net::refuse(tcp, session::BUSY);
            continue;
        }
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            span.in_scope(|| warn!(limit, "too many connections"));
            tokio::spawn(session::refuse(tcp));
            continue;
        };
        let ctx = Arc::clone(&ctx);
        let stop = stop_rx.clone();
        let open = crate::metrics::connection_opened(crate::metrics::Protocol::Imap);
        tokio::spawn(
            async move {
                session::run(ctx, tcp, peer.ip(), implicit_tls, stop).await;
                drop((permit, open));
            }
            .instrument(span),
        );
    }
    info!("IMAP listener stopping");
    let _ = stop_tx.send(true);
    let all = u32::try_from(limit).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(all)).await;
}

/// Loads a PEM certificate chain and its PEM private key (PKCS#8, PKCS#1
/// or SEC1) into a TLS server configuration.
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ImapError> {
    let tls_err = |path: &Path, detail: String| ImapError::Tls {
        path: path.to_path_buf(),
        detail,
    };
    let cert_pem = std::fs::read(cert).map_err(|e| tls_err(cert, e.to_string()))?;
    let key_pem = std::fs::read(key).map_err(|e| tls_err(key, e.to_string()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert, format!("bad PEM: {e}")))?;
    if chain.is_empty() {
        return Err(tls_err(cert, "no CERTIFICATE block found".into()));
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        pem::Error::NoItemsFound => tls_err(key, "no PRIVATE KEY block found".into()),
        e => tls_err(key, format!("bad PEM: {e}")),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| tls_err(key, format!("key does not fit the certificate: {e}")))?;
    Ok(Arc::new(config))
}
