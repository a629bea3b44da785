//! Wiring of the running server: the data directory lock, the store, the
//! listeners, and a clean shutdown.
//!
//! [`serve`] is what `sealmail serve` calls; [`run`] takes listeners that
//! are already bound and a shutdown future, so that tests can bind port 0
//! and stop the server when they like (mini-redis `server::run`).

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::net::SocketAddr;

use tokio::net::{TcpListener, UnixListener};

use crate::config::Config;
use crate::imap::{ImapConfig, ImapContext};
use crate::ingest::{HookChain, Ingest};
use crate::jmap::{HttpLimits, JmapContext};
use crate::lmtp::LmtpConfig;
use crate::net::FdReserve;
use crate::notify::Notifier;
use crate::store::{MailError, MailStore};

/// Name of the management socket inside `data_dir`.
pub const ADMIN_SOCKET: &str = "admin.sock";
/// How long a shutdown waits for connections to finish (an LMTP DATA
/// in progress usually completes well within it).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);
/// Name of the lock file inside `data_dir`.
const LOCK_FILE: &str = "sealmail.lock";

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// `[submission]` cannot be used.
    #[error(transparent)]
    Relay(crate::submission::RelayConfigError),
    /// The data directory cannot be created or used.
    #[error("cannot use data directory {path}: {source}; check that it exists and that this user may write to it")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another server runs on the same data directory.
    #[error("another sealmail server (pid {pid}) holds {path}; stop it first, or give this one another --data-dir")]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// The other server's pid, as it wrote it.
        pid: String,
    },
    /// The store cannot be opened.
    #[error("cannot open the store (data directory {path}): {source}")]
    Store {
        /// The data directory.
        path: PathBuf,
        /// The store's error.
        #[source]
        source: MailError,
    },
    /// A listener cannot be bound.
    #[error("cannot listen on {what} {address}: {source}; is another program using it?")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address or path.
        address: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `[lists] notice_template` cannot be read.
    #[error("cannot read [lists] notice_template {path}: {source}")]
    NoticeTemplate {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `[hooks] chain` names a hook that does not exist.
    #[error(transparent)]
    Hooks(crate::ingest::UnknownHook),
    /// The TLS certificate or key cannot be used.
    #[error(transparent)]
    Tls(crate::imap::ImapError),
    /// Only one of `tls.cert` and `tls.key` is set, or `imap.tls_listen`
    /// or `jmap.tls_listen` without them.
    #[error("TLS needs both tls.cert and tls.key (PEM files); imap.tls_listen and jmap.tls_listen need them too")]
    TlsIncomplete,
    /// A blocking start-up task died.
    #[error("internal error while starting: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Exclusive hold on a data directory for as long as it lives.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `dir`, creating the directory (mode 0700) if needed.
    pub fn acquire(dir: &Path) -> Result<Self, ServerError> {
        let io = |source| ServerError::DataDir {
            path: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        if file.try_lock().is_err() {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(ServerError::Locked {
                path: dir.to_owned(),
                pid: pid.trim().to_string(),
            });
        }
        file.set_len(0).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

/// Listeners bound before the server runs.
#[derive(Debug)]
pub struct Listeners {
    /// The management API's unix socket.
    pub admin: UnixListener,
    /// LMTP, where the MTA delivers.
    pub lmtp: TcpListener,
    /// JMAP over HTTP.
    pub jmap: TcpListener,
    /// IMAP (STARTTLS offered when TLS is configured).
    pub imap: TcpListener,
    /// IMAP with implicit TLS, when `imap.tls_listen` is set.
    pub imap_tls: Option<TcpListener>,
    /// JMAP over HTTPS, when `jmap.tls_listen` is set.
    pub jmap_tls: Option<TcpListener>,
    /// Prometheus metrics and health checks, when `metrics.listen` is set.
    pub metrics: Option<TcpListener>,
}

/// Binds a TCP listener, naming it in the error.
async fn bind_tcp(what: &'static str, address: SocketAddr) -> Result<TcpListener, ServerError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| ServerError::Bind {
            what,
            address: address.to_string(),
            source,
        })?;
    if let Ok(local) = listener.local_addr() {
        tracing::info!(service = what, address = %local, "listening");
    }
    Ok(listener)
}

/// What the running services share.
#[derive(Debug, Clone)]
pub struct Services {
    /// The store.
    pub store: Arc<MailStore>,
    /// The ingest pipeline.
    pub ingest: Arc<Ingest>,
    /// The configuration the server started with.
    pub config: Arc<Config>,
    /// TLS for IMAP, from `[tls]`.
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    /// Server-side reading keys unlocked on this node.
    pub keyring: Arc<crate::reading::Keyring>,
    /// Where JMAP `EmailSubmission` sends mail (`[submission]`).
    pub relay: Option<crate::submission::Relay>,
}

impl Services {
    /// The services over `store` as `config` describes them.
    pub fn new(store: Arc<MailStore>, config: Config) -> Result<Self, ServerError> {
        let chain = HookChain::from_names(&config.hooks.chain).map_err(ServerError::Hooks)?;
        let mut ingest = Ingest::new(Arc::clone(&store), chain, Arc::new(Notifier::new()))
            .with_fanout_bytes(config.limits.fanout_bytes);
        if let Some(path) = &config.lists.notice_template {
            let text =
                std::fs::read_to_string(path).map_err(|source| ServerError::NoticeTemplate {
                    path: path.clone(),
                    source,
                })?;
            ingest = ingest.with_notice_template(text);
        }
        let ingest = Arc::new(ingest);
        let keyring = Arc::new(crate::reading::Keyring::default());
        // why here: the keyring hears of other nodes' changes to an
        // account's reading through the same notifier as IDLE and push.
        keyring.watch(Arc::clone(ingest.notifier()), Arc::clone(&store));
        let tls = match (&config.tls.cert, &config.tls.key) {
            (Some(cert), Some(key)) => {
                Some(crate::imap::load_tls(cert, key).map_err(ServerError::Tls)?)
            }
            (None, None) => None,
            _ => return Err(ServerError::TlsIncomplete),
        };
        let wants_tls = config.imap.tls_listen.is_some() || config.jmap.tls_listen.is_some();
        if wants_tls && tls.is_none() {
            return Err(ServerError::TlsIncomplete);
        }
        let relay = crate::submission::Relay::from_config(&config).map_err(ServerError::Relay)?;
        Ok(Self {
            store,
            ingest,
            config: Arc::new(config),
            tls,
            keyring,
            relay,
        })
    }
}

/// Binds `data_dir/admin.sock` with mode 0600, replacing a stale socket
/// left by a killed server (the caller holds the data directory lock, so
/// no live server owns it).
pub fn bind_admin_socket(data_dir: &Path) -> Result<UnixListener, ServerError> {
    let path = data_dir.join(ADMIN_SOCKET);
    let bind_error = |source| ServerError::Bind {
        what: "management socket",
        address: path.display().to_string(),
        source,
    };
    match std::fs::remove_file(&path) {
        Ok(()) => tracing::info!(path = %path.display(), "replaced a stale management socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_error(e)),
    }
    let listener = UnixListener::bind(&path).map_err(bind_error)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(bind_error)?;
    Ok(listener)
}

/// Starts everything `config` asks for and runs until SIGTERM or Ctrl-C.
pub async fn serve(config: Config) -> Result<(), ServerError> {
    raise_open_files_limit();
    no_transparent_huge_pages();
    crate::reading::forbid_core_dumps();
    let data_dir = config.data_dir.clone();
    let _lock = DataDirLock::acquire(&data_dir)?;
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o700)).map_err(
        |source| ServerError::DataDir {
            path: data_dir.clone(),
            source,
        },
    )?;
    let store_config = config.clone();
    let default_quota = config.limits.default_quota();
    // why spawn_blocking: opening runs RocksDB recovery or connects to
    // PostgreSQL and migrates its schema; both block.
    let store = tokio::task::spawn_blocking(move || {
        MailStore::open_config(&store_config).map(|s| s.with_default_quota(default_quota))
    })
    .await?
    .map_err(|source| ServerError::Store {
        path: data_dir.clone(),
        source,
    })?;
    let listeners = Listeners {
        admin: bind_admin_socket(&data_dir)?,
        lmtp: bind_tcp("lmtp", config.lmtp.listen).await?,
        jmap: bind_tcp("jmap", config.jmap.listen).await?,
        imap: bind_tcp("imap", config.imap.listen).await?,
        imap_tls: match config.imap.tls_listen {
            Some(address) => Some(bind_tcp("imaps", address).await?),
            None => None,
        },
        jmap_tls: match config.jmap.tls_listen {
            Some(address) => Some(bind_tcp("jmap over https (jmap.tls_listen)", address).await?),
            None => None,
        },
        metrics: match config.metrics.listen {
            Some(address) => Some(bind_tcp("metrics (metrics.listen)", address).await?),
            None => None,
        },
    };
    // why before Services takes the config: the bus needs the store URL.
    let bus_url = match config.store.engine {
        crate::config::StoreEngine::Postgres => config.store.url.clone(),
        _ => None,
    };
    let services = Services::new(Arc::new(store), config)?;
    if let Some(url) = bus_url {
        // Other nodes on the same database learn of this node's changes
        // (IMAP IDLE, JMAP push) and this node of theirs.
        crate::notify::PgBus::install(url.expose(), services.ingest.notifier());
    }
    tracing::info!(data_dir = %data_dir.display(), "sealmail started");
    run(services, listeners, shutdown_signal()).await;
    let _ = std::fs::remove_file(data_dir.join(ADMIN_SOCKET));
    tracing::info!("sealmail stopped");
    Ok(())
}

/// Serves on `listeners` until `shutdown` completes, then lets work in
/// flight finish.
pub async fn run(
    services: Services,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    let admin = crate::admin::router(&services);
    let admin_stop = stopped();
    tasks.spawn(async move {
        if let Err(e) = axum::serve(listeners.admin, admin)
            .with_graceful_shutdown(admin_stop)
            .await
        {
            tracing::error!(error = %e, "management API stopped");
        }
    });
    tasks.spawn(maintain_periodically(
        Arc::clone(&services.store),
        stopped(),
    ));
    tasks.spawn(crate::memory::release_periodically(
        Arc::clone(&services.store),
        stopped(),
    ));
    let sweep = crate::reading::sweeper(Arc::clone(&services.keyring), Arc::clone(&services.store));
    let sweep_stop = stopped();
    tasks.spawn(async move {
        tokio::select! {
            () = sweep => {}
            () = sweep_stop => {}
        }
    });
    let config = &services.config;
    let reserve = FdReserve::of_process(config.limits.reserved_files);
    let lmtp_config = LmtpConfig {
        hostname: config.hostname.clone(),
        max_message_bytes: config.limits.max_message_size,
        max_connections: config.lmtp.max_connections,
        max_connections_per_source: config.lmtp.max_connections_per_source,
        // why half the reserve: deliveries go on while a flood of IMAP or
        // JMAP connections is already refused.
        reserve: reserve.for_delivery(),
        ..LmtpConfig::default()
    };
    tasks.spawn(crate::lmtp::serve(
        listeners.lmtp,
        Arc::clone(&services.ingest),
        lmtp_config,
        stopped(),
    ));
    let jmap = crate::jmap::router(Arc::new(JmapContext {
        store: Arc::clone(&services.store),
        ingest: Arc::clone(&services.ingest),
        notifier: Arc::clone(services.ingest.notifier()),
        max_upload_bytes: config.limits.max_message_size,
        urls: crate::jmap::UrlPolicy::new(&config.jmap),
        keyring: Arc::clone(&services.keyring),
        relay: services.relay.clone(),
    }));
    if let (Some(listener), Some(tls)) = (listeners.jmap_tls, services.tls.clone()) {
        tasks.spawn(crate::jmap::serve_tls(
            listener,
            tls,
            jmap.clone(),
            HttpLimits::new(&config.jmap, reserve),
            stopped(),
        ));
    }
    tasks.spawn(crate::jmap::serve(
        listeners.jmap,
        jmap,
        HttpLimits::new(&config.jmap, reserve),
        stopped(),
    ));
    let imap = Arc::new(ImapContext {
        store: Arc::clone(&services.store),
        ingest: Arc::clone(&services.ingest),
        notifier: Arc::clone(services.ingest.notifier()),
        config: imap_config(config, services.tls.clone(), reserve),
        keyring: Arc::clone(&services.keyring),
    });
    tasks.spawn(crate::imap::serve(
        listeners.imap,
        Arc::clone(&imap),
        false,
        stopped(),
    ));
    if let Some(listener) = listeners.imap_tls {
        tasks.spawn(crate::imap::serve(listener, imap, true, stopped()));
    }
    if let Some(listener) = listeners.metrics {
        let router = crate::metrics::router(Arc::clone(&services.store));
        tasks.spawn(crate::jmap::serve(
            listener,
            router,
            HttpLimits::metrics(reserve),
            stopped(),
        ));
        tasks.spawn(crate::metrics::watch_certificates(
            Arc::clone(&services.store),
            stopped(),
        ));
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    // why: long-lived connections (IMAP IDLE, the JMAP event source) would
    // hold a graceful shutdown open forever; give work in flight a grace
    // period, then stop. Acknowledged mail is already synced to disk.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; closing them");
    }
}

/// How often the store's routine housekeeping runs.
const MAINTENANCE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs [`MailStore::maintain`] every [`MAINTENANCE_EVERY`] (on the
/// blocking pool: it rewrites files) until `stopped` completes.
async fn maintain_periodically(store: Arc<MailStore>, stopped: impl Future<Output = ()>) {
    use crate::periodic::{every, First};
    every(MAINTENANCE_EVERY, First::AfterOnePeriod, stopped, || {
        let store = Arc::clone(&store);
        async move {
            match tokio::task::spawn_blocking(move || store.maintain()).await {
                Ok(Ok(())) => tracing::debug!("store maintenance done"),
                Ok(Err(e)) => tracing::warn!(error = %e, "store maintenance failed"),
                Err(e) => tracing::warn!(error = %e, "store maintenance task failed"),
            }
        }
    })
    .await;
}

/// Raises the soft limit on open files to the hard limit: every IMAP IDLE
/// client holds a socket, and the common soft default (1,024) is far below
/// the IMAP connection cap. Failing to raise it is logged, not fatal.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}

/// Turns transparent huge pages off for this process. The allocator asks
/// for them, and the kernel then zeroes 2 MiB at each first touch: a sixth
/// of the CPU of a fresh server's first list fan-out (benches/RESULTS.md),
/// for memory that is freed again within milliseconds. Failing is logged.
pub fn no_transparent_huge_pages() {
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %e, "could not turn transparent huge pages off");
    }
}

/// The IMAP settings from the server's configuration.
fn imap_config(
    config: &Config,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    reserve: FdReserve,
) -> ImapConfig {
    let mut imap = ImapConfig::new(config.hostname.clone());
    imap.max_literal_bytes = u32::try_from(config.limits.max_message_size).unwrap_or(u32::MAX);
    imap.tls = tls;
    imap.reserve = reserve;
    imap
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).unwrap_err();
        assert!(err.to_string().contains("another sealmail server"), "{err}");
        assert!(
            err.to_string().contains(&std::process::id().to_string()),
            "{err}"
        );
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}
