//! The thin I/O driver around imap-next's sans-I/O [`Server`]: bytes from
//! the socket go in, events and bytes come out (the shape STYLE.md asks
//! for). Owning the socket ourselves, rather than using imap-next's
//! `Stream`, lets STARTTLS swap the transport in place, batches small
//! responses into few writes, and keeps reads the only thing a `select!`
//! ever cancels (reads are cancel-safe, half-done writes are not).

use std::collections::VecDeque;
use std::time::Duration;

use imap_next::imap_types::response::{Data, Greeting, Status};
use imap_next::server::{Error as ProtocolError, Event, Options, Server};

use super::prelogin::CommandMeter;
use imap_next::{Interrupt, Io, State};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

/// Flush queued output once this much is buffered, so a long FETCH goes
/// out as it is produced instead of piling up in memory.
const WRITE_CHUNK_BYTES: usize = 256 * 1024;

/// Bytes read per `read` call.
const READ_CHUNK_BYTES: usize = 64 * 1024;

/// The socket, before or after TLS.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Clear TCP (port 143 before STARTTLS).
    Plain(TcpStream),
    /// TLS (implicit, or after STARTTLS).
    Tls(Box<TlsStream<TcpStream>>),
}

impl Transport {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf).await,
            Self::Tls(s) => s.read(buf).await,
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(buf).await,
            Self::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }
}

/// What the driver hands the session.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// A protocol event (command, AUTHENTICATE data, IDLE, DONE).
    Event(Event),
    /// The peer sent something imap-next rejected; the session answers BAD.
    Rejected(ProtocolError),
}

/// Why the connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectionError {
    /// The peer closed the connection.
    #[error("peer closed the connection")]
    Closed,
    /// No command within the idle timeout.
    #[error("no command for {0:?}")]
    Timeout(Duration),
    /// The socket failed.
    #[error("socket error: {0}")]
    Io(#[from] std::io::Error),
    /// A command over the pre-login limit.
    #[error(transparent)]
    PreLogin(#[from] super::prelogin::TooLarge),
}

/// One client connection: transport plus protocol state.
#[derive(Debug)]
pub(crate) struct Connection {
    transport: Option<Transport>,
    server: Server,
    options: Options,
    pending: VecDeque<Incoming>,
    out: Vec<u8>,
    read_buf: Vec<u8>,
    /// Meters input until the client has logged in.
    meter: Option<CommandMeter>,
}

impl Connection {
    /// A connection that greets the client with `greeting`.
    pub(crate) fn new(transport: Transport, options: Options, greeting: Greeting<'static>) -> Self {
        Self {
            transport: Some(transport),
            server: Server::new(options.clone(), greeting),
            options,
            pending: VecDeque::new(),
            out: Vec::new(),
            read_buf: vec![0; READ_CHUNK_BYTES],
            meter: Some(CommandMeter::default()),
        }
    }

    /// Lifts the pre-login limits: the client has logged in.
    pub(crate) fn logged_in(&mut self) {
        self.meter = None;
    }

    /// Queues an untagged data response.
    pub(crate) fn data(&mut self, data: Data<'static>) {
        self.server.enqueue_data(data);
    }

    /// Queues bytes the codec cannot produce (a LIST line with RFC 5258
    /// extended data), after everything queued before them.
    pub(crate) fn raw(&mut self, bytes: &[u8]) {
        loop {
            match self.server.next() {
                Ok(Event::ResponseSent { .. } | Event::GreetingSent { .. }) => {}
                Ok(event) => self.pending.push_back(Incoming::Event(event)),
                Err(Interrupt::Io(Io::Output(out))) => self.out.extend_from_slice(&out),
                Err(Interrupt::Io(Io::NeedMoreInput)) => break,
                Err(Interrupt::Error(e)) => self.pending.push_back(Incoming::Rejected(e)),
            }
        }
        self.out.extend_from_slice(bytes);
    }

    /// Queues a status response.
    pub(crate) fn status(&mut self, status: Status<'static>) {
        self.server.enqueue_status(status);
    }

    /// The protocol state, for the IDLE and AUTHENTICATE hand-shakes.
    pub(crate) fn server(&mut self) -> &mut Server {
        &mut self.server
    }

    /// Whether the transport is TLS.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self.transport, Some(Transport::Tls(_)))
    }

    /// Encodes everything queued and writes it out.
    pub(crate) async fn flush(&mut self) -> Result<(), ConnectionError> {
        loop {
            match self.server.next() {
                Ok(Event::ResponseSent { .. } | Event::GreetingSent { .. }) => {}
                Ok(event) => self.pending.push_back(Incoming::Event(event)),
                Err(Interrupt::Io(Io::Output(bytes))) => {
                    self.out.extend_from_slice(&bytes);
                    if self.out.len() >= WRITE_CHUNK_BYTES {
                        self.write_out().await?;
                    }
                }
                Err(Interrupt::Io(Io::NeedMoreInput)) => break,
                Err(Interrupt::Error(e)) => self.pending.push_back(Incoming::Rejected(e)),
            }
        }
        self.write_out().await
    }

    async fn write_out(&mut self) -> Result<(), ConnectionError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let transport = self.transport.as_mut().ok_or(ConnectionError::Closed)?;
        transport.write_all(&self.out).await?;
        self.out.clear();
        Ok(())
    }

    /// The next event, reading as needed; `timeout` bounds each read
    /// (`None` while IDLE). Cancel-safe once [`Connection::flush`] ran:
    /// then the only await is a read.
    pub(crate) async fn next(
        &mut self,
        timeout: Option<Duration>,
    ) -> Result<Incoming, ConnectionError> {
        self.flush().await?;
        loop {
            if let Some(incoming) = self.pending.pop_front() {
                return Ok(incoming);
            }
            match self.server.next() {
                Ok(Event::ResponseSent { .. } | Event::GreetingSent { .. }) => {}
                Ok(event) => return Ok(Incoming::Event(event)),
                Err(Interrupt::Error(e)) => return Ok(Incoming::Rejected(e)),
                Err(Interrupt::Io(Io::Output(bytes))) => {
                    self.out.extend_from_slice(&bytes);
                    self.write_out().await?;
                }
                Err(Interrupt::Io(Io::NeedMoreInput)) => self.read(timeout).await?,
            }
        }
    }

    async fn read(&mut self, timeout: Option<Duration>) -> Result<(), ConnectionError> {
        let transport = self.transport.as_mut().ok_or(ConnectionError::Closed)?;
        let read = transport.read(&mut self.read_buf);
        let n = match timeout {
            Some(limit) => tokio::time::timeout(limit, read)
                .await
                .map_err(|_| ConnectionError::Timeout(limit))??,
            None => read.await?,
        };
        if n == 0 {
            return Err(ConnectionError::Closed);
        }
        let bytes = self.read_buf.get(..n).ok_or(ConnectionError::Closed)?;
        if let Some(meter) = &mut self.meter {
            meter.feed(bytes)?;
        }
        self.server.enqueue_input(bytes);
        Ok(())
    }

    /// Takes the clear TCP stream out for a STARTTLS upgrade (everything
    /// queued must have been flushed).
    pub(crate) fn take_plain(&mut self) -> Option<TcpStream> {
        match self.transport.take() {
            Some(Transport::Plain(tcp)) => Some(tcp),
            other => {
                self.transport = other;
                None
            }
        }
    }

    /// Continues on `transport` (now TLS) with fresh protocol state.
    ///
    /// why: anything the client pipelined after STARTTLS arrived in clear
    /// and must not be executed inside the TLS session (the STARTTLS
    /// command-injection class of bugs, CVE-2011-0411), so the old parser
    /// and its buffered input are dropped, and the greeting a new
    /// [`Server`] insists on queueing is discarded unsent.
    pub(crate) fn resume(&mut self, transport: Transport) {
        self.transport = Some(transport);
        self.server = Server::new(self.options.clone(), silent_greeting());
        self.pending.clear();
        if self.meter.is_some() {
            self.meter = Some(CommandMeter::default());
        }
        // Drop the greeting's bytes unsent; the next call reports it sent.
        while let Err(Interrupt::Io(Io::Output(_))) = self.server.next() {}
    }
}

#[expect(
    clippy::expect_used,
    reason = "a constant, valid greeting text; checked by the unit test below"
)]
fn silent_greeting() -> Greeting<'static> {
    Greeting::ok(None, "ready").expect("constant greeting is valid")
}

#[cfg(test)]
mod tests {
    #[test]
    fn constant_greeting_is_valid() {
        let _ = super::silent_greeting();
    }
}
