//! The JMAP listener: HTTP/1.1 connections served by hyper, each counted
//! against the listener and its source address.
//!
//! # Why not `axum::serve`
//!
//! `axum::serve` accepts without limit and sets no timer, so a request
//! whose header never ends held its connection for as long as the client
//! liked: ten thousand of them took every descriptor of the process
//! (issue #14). Here each connection is served by hyper's HTTP/1 builder
//! with `header_read_timeout` (which also ends a keep-alive connection
//! that sends no new request within it), and admitted through a
//! [`Gate`]: a connection over `jmap.max_connections`, over
//! `jmap.max_connections_per_source`, or whose descriptor falls in the
//! store's reserve gets `503` with a short text and is closed. Slow
//! bodies are the handlers' business: the API reads its body within
//! `limits::BODY_READ_TIMEOUT`, an upload may pause for at most as long.
//!
//! A connection upgraded to a WebSocket (`ws`) leaves hyper but keeps
//! its places at the gate for as long as it is open ([`Held`]), and is
//! told when the server stops ([`Stopping`]).
//!
//! On `jmap.tls_listen` ([`serve_tls`]) the same connections speak TLS
//! with the `[tls]` certificate (as IMAP's implicit TLS, RFC 8314); the
//! handshake counts against the header timeout.
//!
//! The metrics listener (`metrics.listen`) is served by the same
//! [`serve`], with [`HttpLimits::metrics`]: a scraper or a probe meets the
//! same header timeout and caps as a JMAP client.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::rustls::ServerConfig;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use crate::metrics::Protocol;
use crate::net::{FdReserve, Gate, Pass, Refusal};

/// Pause after a failed `accept` (e.g. out of descriptors), so that a
/// persistent error does not spin the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connection limits of the JMAP listener.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpLimits {
    /// Connections at once (`jmap.max_connections`).
    pub max_connections: usize,
    /// Connections from one source address, an IPv6 /64 counting as one
    /// (`jmap.max_connections_per_source`).
    pub max_connections_per_source: usize,
    /// Longest wait for a request's header, and for the next request on
    /// an idle keep-alive connection (`jmap.header_timeout`).
    pub header_timeout: Duration,
    /// Descriptors kept for the store (`limits.reserved_files`).
    pub reserve: FdReserve,
    /// The connection series the listener's connections count in (none
    /// for the metrics listener: a scrape is not a client).
    pub(crate) counted_as: Option<Protocol>,
}

impl HttpLimits {
    /// The limits `config` sets, with `reserve`.
    pub fn new(config: &crate::config::Jmap, reserve: FdReserve) -> Self {
        Self {
            max_connections: config.max_connections,
            max_connections_per_source: config.max_connections_per_source,
            header_timeout: config.header_timeout,
            reserve,
            counted_as: Some(Protocol::Jmap),
        }
    }

    /// The limits of the metrics listener (`metrics.listen`): a few
    /// scrapers and probes, not clients. why 64 and 16 per address: room
    /// for a Prometheus pair, a load balancer's probes and an operator's
    /// curl, while a flood there stays small; 10 s for a header, as a
    /// scraper sends it at once.
    pub fn metrics(reserve: FdReserve) -> Self {
        Self {
            max_connections: 64,
            max_connections_per_source: 16,
            header_timeout: Duration::from_secs(10),
            reserve,
            counted_as: None,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then asks
/// every connection to finish its request in flight and waits for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_on(listener, None, router, limits, shutdown).await;
}

/// [`serve`] over TLS (`jmap.tls_listen`): each connection's handshake
/// runs in its own task within `header_timeout`, so a client that stalls
/// it holds only its own connection place.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    serve_on(listener, Some(acceptor), router, limits, shutdown).await;
}

async fn serve_on(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let gate = Gate::new(
        Some(limits.max_connections),
        limits.max_connections_per_source,
        limits.reserve,
    );
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let span = tracing::info_span!("http", conn = next_id, peer = %peer);
        let pass = match gate.admit(&tcp, peer.ip()) {
            Ok(pass) => pass,
            Err(refusal) => {
                span.in_scope(|| tracing::warn!(?refusal, "connection refused"));
                crate::net::refuse(tcp, &busy(refusal));
                continue;
            }
        };
        // why TCP_NODELAY: a response written in pieces otherwise waits
        // for the client's delayed ACK (about 40 ms on Linux) per request.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let open = limits.counted_as.map(crate::metrics::connection_opened);
        let held = (pass, open);
        let (router, timeout, stopped) = (router.clone(), limits.header_timeout, stopped.clone());
        match tls.clone() {
            None => {
                let connection = connection(tcp, peer, false, router, timeout, stopped, held);
                connections.spawn(connection.instrument(span));
            }
            Some(acceptor) => {
                let connection = async move {
                    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            connection(stream, peer, true, router, timeout, stopped, held).await;
                        }
                        Ok(Err(error)) => tracing::info!(%error, "TLS handshake failed"),
                        Err(_) => tracing::info!("TLS handshake timed out"),
                    }
                };
                connections.spawn(connection.instrument(span));
            }
        }
        while connections.try_join_next().is_some() {}
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// Serves one connection to its end; `_held` holds its places and its
/// count as open.
async fn connection<Io>(
    io: Io,
    peer: SocketAddr,
    tls: bool,
    router: Router,
    header_timeout: Duration,
    mut stopped: watch::Receiver<bool>,
    _held: (Pass, Option<crate::metrics::OpenConnection>),
) where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // why: the handlers take the client's address from `ConnectInfo`
    // (failed-login throttling), as `axum::serve` used to provide it, and
    // the session's URL scheme from `Secure`; a WebSocket (`ws`) keeps
    // the connection counted with `Held` and ends on `Stopping`.
    let held = Held {
        _places: Arc::new(_held),
    };
    let stopping = Stopping(stopped.clone());
    let service = router.map_request(move |mut request: axum::http::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        request.extensions_mut().insert(super::origin::Secure(tls));
        request.extensions_mut().insert(held.clone());
        request.extensions_mut().insert(stopping.clone());
        request
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended");
                }
                return;
            }
            _ = stopped.wait_for(|stop| *stop), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A connection's places at the [`Gate`] and its count as open, shared
/// with what outlives its HTTP exchange: hyper is done with a connection
/// once it is upgraded to a WebSocket, which must go on counting against
/// `jmap.max_connections` (and per source) for as long as it is open.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    _places: Arc<(Pass, Option<crate::metrics::OpenConnection>)>,
}

/// Turns true when the server stops; an upgraded connection, which
/// hyper's graceful shutdown no longer reaches, watches it.
#[derive(Debug, Clone)]
pub(crate) struct Stopping(pub(crate) watch::Receiver<bool>);

/// The `503` a refused connection gets; it names no internals.
fn busy(refusal: Refusal) -> Vec<u8> {
    let text = match refusal {
        Refusal::Source => "too many connections from your address; close some and try again\n",
        _ => "server busy; try again later\n",
    };
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nretry-after: 10\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )
    .into_bytes()
}
