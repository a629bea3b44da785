//! The tokio driver: accepts connections and runs one [`Session`] per
//! connection, answering its requests through [`Delivery`]. It only moves
//! bytes and awaits; every protocol decision is in the session.
//!
//! Shaped like mini-redis' server: a semaphore caps connections (acquired
//! before `accept`, so excess peers wait in the backlog), each connection
//! is a task in a `tracing` span, and shutdown stops accepting, asks idle
//! sessions to close with `421 4.3.2` (RFC 5321 §3.8) and waits for
//! running deliveries to finish.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::{Delivery, Event, LmtpConfig, Session};
use crate::net::{Gate, Pass, Refusal};

/// Bytes read per call. In DATA the session consumes all of it at once;
/// for commands it bounds what a pipelining peer can queue up.
const READ_CHUNK: usize = 64 * 1024;

/// Pause after a failed `accept` (e.g. out of file descriptors), so that a
/// persistent error does not spin the accept loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves connections on `listener` until `shutdown` completes; each
/// connection a task with a tracing span (conn id, peer), a Semaphore caps
/// connections. Returns once every connection has ended.
pub async fn serve<D: Delivery>(
    listener: TcpListener,
    delivery: Arc<D>,
    config: LmtpConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    // why no listener cap in the gate: `slots` is taken before `accept`.
    let gate = Gate::new(None, config.max_connections_per_source, config.reserve);
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut next_id: u64 = 0;
    tokio::pin!(shutdown);
    tracing::info!(addr = ?listener.local_addr().ok(), "LMTP listening");
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = Arc::clone(&slots).acquire_owned() => permit,
        };
        // The semaphore is never closed, so this is always Ok.
        let Ok(permit) = permit else { break };
        let (socket, peer) = tokio::select! {
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
        // why: replies are written as the session produces them; with
        // Nagle's algorithm each exchange waited for the MTA's delayed ACK
        // (about 40 ms), which capped a connection at ~23 messages/s.
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%error, "TCP_NODELAY not set");
        }
        let span = tracing::info_span!("lmtp", conn = next_id, peer = %peer);
        let Some((socket, pass)) =
            span.in_scope(|| admit(&gate, socket, peer.ip(), &config.hostname))
        else {
            continue;
        };
        let (delivery, config, stopped) =
            (Arc::clone(&delivery), Arc::clone(&config), stopped.clone());
        let open = crate::metrics::connection_opened(crate::metrics::Protocol::Lmtp);
        connections.spawn(
            async move {
                connection(socket, delivery, &config, stopped).await;
                drop((permit, pass, open));
            }
            .instrument(span),
        );
        while connections.try_join_next().is_some() {}
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    tracing::info!("LMTP stopped");
}

/// The per-source cap and the descriptor reserve for a fresh connection
/// (the listener's own cap is the semaphore taken before `accept`). A
/// refused connection gets `421 4.3.2` (RFC 5321 §3.8: the MTA keeps the
/// mail queued and tries again) and is closed.
fn admit(
    gate: &Gate,
    socket: TcpStream,
    peer: std::net::IpAddr,
    hostname: &str,
) -> Option<(TcpStream, Pass)> {
    match gate.admit(&socket, peer) {
        Ok(pass) => Some((socket, pass)),
        Err(refusal) => {
            let why = match refusal {
                Refusal::Source => "too many connections from your address",
                _ => "too busy",
            };
            tracing::warn!(?refusal, "connection refused");
            let reply = format!("421 4.3.2 {hostname} {why}, try again later\r\n");
            crate::net::refuse(socket, reply.as_bytes());
            None
        }
    }
}

/// Runs one session to its end.
async fn connection<D: Delivery>(
    mut socket: TcpStream,
    delivery: Arc<D>,
    config: &LmtpConfig,
    mut stopped: watch::Receiver<bool>,
) {
    tracing::info!("connected");
    let mut session = Session::new(config);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let answered = match session.poll() {
            Event::Send(bytes) => {
                if !write(&mut socket, &bytes, config.idle_timeout).await {
                    break;
                }
                Ok(())
            }
            Event::CheckRecipients(addresses) => {
                let replies = delivery.check_recipients(&addresses).await;
                for reply in &replies {
                    tracing::debug!(code = reply.code, "recipient checked");
                    if !reply.is_positive() {
                        crate::metrics::lmtp_rcpt_refused(reply.code);
                    }
                }
                session.recipients_checked(replies)
            }
            Event::Deliver(tx) => {
                let span = tracing::info_span!(
                    "deliver",
                    rcpts = tx.recipients.len(),
                    bytes = tx.data.len()
                );
                let rcpts = tx.recipients.len();
                let replies = delivery.deliver(tx).instrument(span).await;
                // why `rcpts` and 451: the session sends one reply per
                // recipient, `451` for any the delivery left out.
                (0..rcpts).for_each(|i| {
                    crate::metrics::lmtp_delivery(replies.get(i).map_or(451, |r| r.code));
                });
                session.delivered(replies)
            }
            Event::NeedInput => {
                read(
                    &mut socket,
                    &mut buf,
                    &mut session,
                    config.idle_timeout,
                    &mut stopped,
                )
                .await;
                Ok(())
            }
            Event::Close => break,
        };
        if let Err(error) = answered {
            tracing::error!(%error, "driver bug");
            break;
        }
    }
    tracing::info!("disconnected");
}

/// Reads once into the session; EOF, a read error, the idle timeout or
/// shutdown close it.
async fn read(
    socket: &mut TcpStream,
    buf: &mut [u8],
    session: &mut Session,
    idle: Duration,
    stopped: &mut watch::Receiver<bool>,
) {
    tokio::select! {
        read = tokio::time::timeout(idle, socket.read(buf)) => match read {
            Ok(Ok(n)) if n > 0 => session.feed(buf.get(..n).unwrap_or_default()),
            Ok(Ok(_)) => {
                tracing::debug!("peer closed");
                session.peer_closed();
            }
            Ok(Err(error)) => {
                tracing::debug!(%error, "read failed");
                session.peer_closed();
            }
            Err(_) => {
                tracing::warn!("idle timeout");
                session.idle_timeout();
            }
        },
        // why: a dropped sender also means the server is going away.
        _ = stopped.wait_for(|stop| *stop) => session.shutdown(),
    }
}

/// Writes `bytes`; false if the peer is gone or does not read for `idle`.
async fn write(socket: &mut TcpStream, bytes: &[u8], idle: Duration) -> bool {
    match tokio::time::timeout(idle, socket.write_all(bytes)).await {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            tracing::debug!(%error, "write failed");
            false
        }
        Err(_) => {
            tracing::warn!("write timeout");
            false
        }
    }
}
