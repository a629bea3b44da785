//! JMAP ids (RFC 8620 §1.2) of sealmail's objects, and their parsing.
//!
//! Every id is built from account-local store keys, so an id of one
//! account means nothing in another: a foreign id simply is not found.
//! Ids start with a letter naming the type (the RFC advises against ids
//! that look like numbers); certificates and blobs are SHA-256 hex.

use crate::certs::Fingerprint;
use crate::store::{AccountId, BlobHash, MailboxId, Uid};

/// `a{n}`: an account.
pub(crate) fn account(id: AccountId) -> String {
    format!("a{id}")
}

/// `m{n}`: a mailbox.
pub(crate) fn mailbox(id: MailboxId) -> String {
    format!("m{id}")
}

/// The mailbox of `m{n}`.
pub(crate) fn parse_mailbox(s: &str) -> Option<MailboxId> {
    s.strip_prefix('m')?.parse().ok().map(MailboxId)
}

/// `e{mailbox}_{uid}`: an Email.
pub(crate) fn email(mailbox: MailboxId, uid: Uid) -> String {
    format!("e{mailbox}_{uid}")
}

/// `t{mailbox}_{uid}`: the thread of an Email (one message per thread).
pub(crate) fn thread(mailbox: MailboxId, uid: Uid) -> String {
    format!("t{mailbox}_{uid}")
}

fn parse_pair(s: &str, prefix: char) -> Option<(MailboxId, Uid)> {
    let (m, u) = s.strip_prefix(prefix)?.split_once('_')?;
    let uid = Uid::new(u.parse().ok()?)?;
    Some((MailboxId(m.parse().ok()?), uid))
}

/// The mailbox and UID of an Email id.
pub(crate) fn parse_email(s: &str) -> Option<(MailboxId, Uid)> {
    parse_pair(s, 'e')
}

/// The mailbox and UID of a Thread id.
pub(crate) fn parse_thread(s: &str) -> Option<(MailboxId, Uid)> {
    parse_pair(s, 't')
}

/// A blob: the SHA-256 of its bytes, hex.
pub(crate) fn blob(hash: BlobHash) -> String {
    hash.to_string()
}

/// The hash of a blob id.
pub(crate) fn parse_blob(s: &str) -> Option<BlobHash> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2)?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(BlobHash(out))
}

/// A certificate: its fingerprint, lowercase hex.
pub(crate) fn certificate(fp: Fingerprint) -> String {
    fp.to_string()
}

/// The fingerprint of a certificate id (lenient, as the CLI is).
pub(crate) fn parse_certificate(s: &str) -> Option<Fingerprint> {
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let uid = Uid::new(7).unwrap();
        assert_eq!(
            parse_email(&email(MailboxId(3), uid)),
            Some((MailboxId(3), uid))
        );
        assert_eq!(
            parse_thread(&thread(MailboxId(3), uid)),
            Some((MailboxId(3), uid))
        );
        assert_eq!(parse_mailbox(&mailbox(MailboxId(9))), Some(MailboxId(9)));
        let h = BlobHash::of(b"x");
        assert_eq!(parse_blob(&blob(h)), Some(h));
        for bad in ["", "e1", "e1_0", "m", "mx", "t1_x", "e_1"] {
            assert!(
                parse_email(bad).is_none() && parse_mailbox(bad).is_none(),
                "{bad}"
            );
        }
    }
}
