//! What every TCP listener shares: connections counted per source address,
//! a reserve of file descriptors kept for the store, and the answer a
//! refused connection gets before it is closed.
//!
//! # Why
//!
//! Ten thousand half-sent HTTP requests held on the JMAP port once took
//! every descriptor of the process; the store could then not open a file
//! and deliveries failed with `451 … Too many open files`. Each listener
//! therefore caps its connections, in all and per source address
//! ([`sources`]), and no listener keeps a connection whose descriptor
//! falls into the reserve at the top of `RLIMIT_NOFILE` ([`reserve`]).
//!
//! # Shape
//!
//! [`Gate`] bundles the three checks an accept loop makes on a fresh
//! connection; a [`Pass`] holds its places and gives them back when the
//! connection's task drops it. A refused connection is answered in the
//! listener's protocol ([`refuse`]) and closed at once.

pub mod reserve;
pub mod sources;

use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use reserve::FdReserve;
pub use sources::{SourceCounts, SourceKey, SourceSlot};

/// Why a fresh connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// Its descriptor lies in the reserve kept for the store.
    Reserve,
    /// The listener holds its maximum of connections.
    Listener,
    /// Its source address holds its maximum of connections.
    Source,
}

/// The admission checks of one listener.
#[derive(Debug, Clone)]
pub struct Gate {
    /// Connections of the whole listener; `None` when the accept loop
    /// caps them itself (LMTP waits for a slot before `accept`).
    slots: Option<Arc<Semaphore>>,
    per_source: usize,
    sources: Arc<SourceCounts>,
    reserve: FdReserve,
}

/// The places one admitted connection holds; dropped when it closes.
#[derive(Debug)]
pub struct Pass {
    _slot: Option<OwnedSemaphorePermit>,
    _source: SourceSlot,
}

impl Gate {
    /// A gate admitting at most `max_connections` (none: not counted
    /// here), `per_source` from one address, and no descriptor in
    /// `reserve`.
    pub fn new(max_connections: Option<usize>, per_source: usize, reserve: FdReserve) -> Self {
        Self {
            slots: max_connections.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            per_source: per_source.max(1),
            sources: Arc::default(),
            reserve,
        }
    }

    /// Whether `tcp`, from `peer`, may be served; the reserve is checked
    /// first, since a refusal there must not even wait for a slot.
    pub fn admit(&self, tcp: &TcpStream, peer: IpAddr) -> Result<Pass, Refusal> {
        if !self.reserve.admits(tcp) {
            return Err(Refusal::Reserve);
        }
        let slot = match &self.slots {
            Some(slots) => Some(
                Arc::clone(slots)
                    .try_acquire_owned()
                    .map_err(|_| Refusal::Listener)?,
            ),
            None => None,
        };
        let source = self
            .sources
            .enter(peer, self.per_source)
            .ok_or(Refusal::Source)?;
        Ok(Pass {
            _slot: slot,
            _source: source,
        })
    }
}

/// Most bytes of a request read (and dropped) before a refusal is sent.
const DRAIN_BYTES: usize = 16 * 1024;

/// Sends `reply` on a connection that will not be served and closes it,
/// without waiting and without a task: a refused connection may sit in
/// the reserve, so it gives its descriptor back at once. What the peer
/// already sent is read first, so that the close is a FIN, not a reset
/// that would make the peer drop the reply unread.
pub fn refuse(tcp: TcpStream, reply: &[u8]) {
    let Ok(mut socket) = tcp.into_std() else {
        return;
    };
    // why non-blocking (as tokio leaves it): a peer that sends or reads
    // nothing must not hold the accept loop.
    let mut sink = [0u8; 1024];
    let mut drained = 0;
    while drained < DRAIN_BYTES {
        match socket.read(&mut sink) {
            Ok(n) if n > 0 => drained += n,
            _ => break,
        }
    }
    let _ = socket.write_all(reply);
    let _ = socket.shutdown(std::net::Shutdown::Write);
}
