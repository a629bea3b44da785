//! JMAP ids (RFC 8620 §1.2) of sealmail's objects, and their parsing.
//!
//! Every id is built from account-local store keys, so an id of one
//! account means nothing in another: a foreign id simply is not found.
//! Ids start with a letter naming the type (the RFC advises against ids
//! that look like numbers); certificates and blobs are SHA-256 hex.
//!
//! Email and Thread ids (RFC 8621 §3, §4.1.1) are `e{account}-{n}` and
//! `t{account}-{n}`, where `n` is the store's Email id (a per-account
//! number that never changes, also when the message moves). The account
//! in the id makes the ids of two accounts differ; an id naming another
//! account than the caller's is not found. Ids of the earlier shape
//! (`e{mailbox}_{uid}`, before ids were stable) parse as nothing.

use crate::certs::Fingerprint;
use crate::store::{AccountId, BlobHash, MailboxId};

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

/// `e{account}-{n}`: the Email `n` of an account.
pub(crate) fn email(account: AccountId, n: u64) -> String {
    format!("e{account}-{n}")
}

/// `t{account}-{n}`: the Thread `n` of an account.
pub(crate) fn thread(account: AccountId, n: u64) -> String {
    format!("t{account}-{n}")
}

fn parse_numbered(s: &str, prefix: char, account: AccountId) -> Option<u64> {
    let (a, n) = s.strip_prefix(prefix)?.split_once('-')?;
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(a) || !digits(n) || a.parse::<u32>().ok()? != account.0 {
        return None;
    }
    n.parse().ok()
}

/// The Email number of an Email id of `account`'s.
pub(crate) fn parse_email(s: &str, account: AccountId) -> Option<u64> {
    parse_numbered(s, 'e', account)
}

/// The Thread number of a Thread id of `account`'s.
pub(crate) fn parse_thread(s: &str, account: AccountId) -> Option<u64> {
    parse_numbered(s, 't', account)
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
        let a = AccountId(4);
        assert_eq!(parse_email(&email(a, 7), a), Some(7));
        assert_eq!(parse_thread(&thread(a, 7), a), Some(7));
        assert_eq!(parse_email(&email(a, 7), AccountId(5)), None);
        assert_ne!(email(a, 7), email(AccountId(5), 7));
        assert_eq!(parse_mailbox(&mailbox(MailboxId(9))), Some(MailboxId(9)));
        let h = BlobHash::of(b"x");
        assert_eq!(parse_blob(&blob(h)), Some(h));
        for bad in [
            "", "e1", "e1_0", "e4_7", "m", "mx", "t4-7", "e_1", "e4-", "e-7", "e4-+7", "e+4-7",
        ] {
            assert!(
                parse_email(bad, a).is_none() && parse_mailbox(bad).is_none(),
                "{bad}"
            );
        }
    }
}
