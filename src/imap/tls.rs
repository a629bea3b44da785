//! TLS: the implicit-TLS handshake (RFC 8314) and STARTTLS (RFC 9051
//! §6.2.1). After STARTTLS the protocol state restarts on the TLS stream
//! (see `Connection::resume`).

use tokio::net::TcpStream;
use tracing::{info, warn};

use super::connection::{ConnectionError, Transport};
use super::error::ImapError;
use super::session::{Done, Session, HANDSHAKE_TIMEOUT};
use super::ImapContext;

impl Session {
    pub(crate) fn check_start_tls(&self) -> Result<Done, ImapError> {
        if self.ctx.config.tls.is_none() {
            return Err(ImapError::Unsupported {
                what: "STARTTLS (no TLS certificate configured)".into(),
            });
        }
        if self.conn.is_tls() || self.account.is_some() {
            return Err(ImapError::WrongState {
                command: "STARTTLS",
                needed: "only once, before logging in",
            });
        }
        Ok(Done::ok("begin TLS negotiation now"))
    }

    pub(crate) async fn start_tls(&mut self) -> Result<(), ConnectionError> {
        self.conn.flush().await?;
        let (Some(tls), Some(tcp)) = (self.ctx.config.tls.clone(), self.conn.take_plain()) else {
            return Ok(());
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
            .await
            .map_err(|_| ConnectionError::Timeout(HANDSHAKE_TIMEOUT))??;
        info!("STARTTLS active");
        self.conn.resume(Transport::Tls(Box::new(stream)));
        Ok(())
    }
}

pub(crate) async fn handshake(ctx: &ImapContext, tcp: TcpStream) -> Option<Transport> {
    let Some(tls) = ctx.config.tls.clone() else {
        warn!("implicit TLS connection but no TLS configured; closing");
        return None;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(Transport::Tls(Box::new(stream))),
        Ok(Err(e)) => {
            info!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            info!("TLS handshake timed out");
            None
        }
    }
}
