//! What a [`Session`] asks of its driver, and the one way
//! a driver can misuse it.

#[cfg(doc)]
use super::Session;
use super::Transaction;

/// What the driver must do next.
#[derive(Debug)]
pub enum Event {
    /// Write these bytes to the peer.
    Send(Vec<u8>),
    /// Ask [`Delivery::check_recipients`](super::Delivery::check_recipients)
    /// about these peer-controlled addresses (one or more RCPTs in a row,
    /// in order), then call [`Session::recipients_checked`].
    CheckRecipients(Vec<String>),
    /// Hand the message to [`Delivery::deliver`](super::Delivery::deliver),
    /// then call [`Session::delivered`] with its replies.
    Deliver(Transaction),
    /// Read more bytes and [`Session::feed`] them (apply the idle timeout).
    NeedInput,
    /// Close the connection; everything to send has been returned.
    Close,
}

/// [`Session::recipients_checked`] or [`Session::delivered`] was called when
/// the session had not asked for it: a driver bug, not a peer fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("LMTP session got an answer to a request it did not make; the driver must answer each CheckRecipients/Deliver event once")]
pub struct UnexpectedAnswer;
