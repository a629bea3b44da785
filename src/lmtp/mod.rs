//! LMTP server (RFC 2033): how mail enters sealmail from the MTA.
//!
//! LMTP is SMTP's command set (RFC 5321 §4.1) with `LHLO` in place of
//! `EHLO` and, after DATA, one reply per accepted recipient (RFC 2033
//! §4.2), so the MTA learns each recipient's fate and queues only the
//! failed ones. We advertise PIPELINING (RFC 2920), ENHANCEDSTATUSCODES
//! (RFC 2034), 8BITMIME (RFC 6152) and SIZE (RFC 1870).
//!
//! The shape follows STYLE.md's "protocol crates do no I/O":
//! - `session`, `event`: the pure state machine, bytes in, [`Event`]s out;
//! - `command`, `data`: the command grammar and the DATA reader it uses;
//! - `reply`: wire replies and the one peer-fault → reply mapping;
//! - `driver`: the tokio wrapper, [`serve`].
//!
//! This layer keeps the message exactly as received (dot-unstuffed only):
//! `Return-Path` and `Delivered-To` are added by ingest, per recipient,
//! because only it knows how a list address fans out.

mod command;
mod data;
mod driver;
mod event;
mod reply;
mod session;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use driver::serve;
pub use event::{Event, UnexpectedAnswer};
pub use reply::Reply;
pub use session::{Session, MAX_COMMAND_LINE, MAX_CONSECUTIVE_ERRORS};

/// A message accepted at end of DATA, with its envelope.
pub struct Transaction {
    /// Reverse-path without `<>`; `""` for the null sender (bounces).
    pub mail_from: String,
    /// Accepted RCPT addresses in order, without `<>`.
    pub recipients: Vec<String>,
    /// The client's LHLO argument.
    pub lhlo: String,
    /// Dot-unstuffed, CRLF line endings as received, without any header
    /// added by the LMTP layer.
    pub data: Vec<u8>,
}

// why: by hand, so that logging a transaction never logs the message body.
impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("mail_from", &self.mail_from)
            .field("recipients", &self.recipients)
            .field("lhlo", &self.lhlo)
            .field("data", &format_args!("<{} bytes>", self.data.len()))
            .finish()
    }
}

/// What LMTP needs from the mail store. Implemented by the ingest pipeline.
pub trait Delivery: Send + Sync + 'static {
    /// RCPT TO time, for one or more RCPTs in a row: accept (250 2.1.5)
    /// or refuse (e.g. 550 5.1.1 unknown) each; exactly one reply per
    /// address, same order (a missing one becomes `451 4.3.0`). Each
    /// address is peer-controlled: any printable ASCII without spaces
    /// outside quotes, at most 254 octets; at most `max_recipients` of
    /// them. Must not panic.
    fn check_recipients(
        &self,
        addresses: &[String],
    ) -> impl std::future::Future<Output = Vec<Reply>> + Send;

    /// End of DATA: exactly one reply per entry of `tx.recipients`, same
    /// order (RFC 2033 §4.2). `tx.data` is peer-controlled. A reply
    /// missing from the vector becomes `451 4.3.0` for that recipient.
    fn deliver(&self, tx: Transaction) -> impl std::future::Future<Output = Vec<Reply>> + Send;
}

/// Limits and names for the LMTP listener.
#[derive(Debug, Clone)]
pub struct LmtpConfig {
    /// Our name in the greeting and LHLO reply. Default `localhost`, as
    /// the top-level `hostname` setting.
    pub hostname: String,
    /// Largest message accepted, after dot-unstuffing; advertised as
    /// `SIZE`. Default 50 MiB, as `limits.max_message_size`: well above
    /// common MTA limits (Postfix's `message_size_limit` is 10 MB).
    pub max_message_bytes: u64,
    /// Recipients per transaction; more get `452 4.5.3` and the MTA sends
    /// them in another transaction. Default 1000, Postfix's
    /// `smtpd_recipient_limit`; RFC 5321 §4.5.3.1.8 requires at least 100.
    pub max_recipients: usize,
    /// How long one read from the peer may take before `421 4.4.2`.
    /// Default 5 minutes, RFC 5321 §4.5.3.2.7's server timeout.
    pub idle_timeout: Duration,
    /// Connections served at once (`lmtp.max_connections`); further ones
    /// wait in the listen backlog, which holds no descriptor of ours.
    /// Default 256: Postfix opens `lmtp_destination_concurrency_limit`
    /// (20 by default, raised to 100 on busy hosts) to one server, and
    /// this leaves room for two such MTAs; message memory is bounded by
    /// the bytes actually sent, which an MTA only sends for real mail.
    pub max_connections: usize,
    /// Connections from one source address (an IPv6 /64 counts as one)
    /// (`lmtp.max_connections_per_source`); more get `421 4.3.2`. Default
    /// 100: one MTA on a busy host, while a runaway or hostile source
    /// cannot take every slot.
    pub max_connections_per_source: usize,
    /// Descriptors kept for the store: a connection whose descriptor
    /// falls in it gets `421 4.3.2` at once. Default: none (the server
    /// sets `limits.reserved_files`).
    pub reserve: crate::net::FdReserve,
}

impl Default for LmtpConfig {
    fn default() -> Self {
        Self {
            hostname: "localhost".into(),
            max_message_bytes: 50 * 1024 * 1024,
            max_recipients: 1000,
            idle_timeout: Duration::from_secs(5 * 60),
            max_connections: 256,
            max_connections_per_source: 100,
            reserve: crate::net::FdReserve::none(),
        }
    }
}
