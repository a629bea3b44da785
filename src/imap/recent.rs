//! The `\Recent` flag of IMAP4rev1 (RFC 3501 §2.3.2): a message is recent
//! in exactly one session, the first that selected its mailbox read-write
//! after the message arrived. EXAMINE and STATUS show which messages are
//! recent without claiming them (§6.3.2, §6.3.10).
//!
//! # Why this shape
//!
//! Messages arrive in UID order, so "not yet claimed" is "UID above the
//! mailbox's claim mark": one number per mailbox, kept in memory and
//! shared by the sessions of this process. A session that claims moves
//! the mark to the highest UID it has seen and remembers the UIDs it got
//! as a bit of its snapshot. Nothing is stored: RFC 9051 dropped
//! `\Recent` and modern clients ignore it, so after a restart every
//! message counts as not yet claimed once more (what a server that
//! cannot tell must assume), and each node of a PostgreSQL cluster keeps
//! its own marks.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;

use crate::store::{AccountId, MailboxId};

/// One mailbox incarnation: its UIDVALIDITY is part of the key, so a
/// mailbox whose UIDs restart starts unclaimed.
type Key = (AccountId, MailboxId, NonZeroU32);

/// The claim marks of every mailbox a session of this process selected:
/// about 20 bytes each, kept until the process ends (a deleted mailbox's
/// mark is never consulted again, ids are not reused).
#[derive(Debug, Default)]
pub(crate) struct RecentClaims {
    marks: Mutex<HashMap<Key, u32>>,
}

impl RecentClaims {
    /// The highest UID claimed so far in the mailbox (0: none).
    pub(crate) fn mark(&self, key: Key) -> u32 {
        self.lock().get(&key).copied().unwrap_or(0)
    }

    /// Claims every UID up to `highest`; returns the mark before, so the
    /// UIDs above it (up to `highest`) are recent in the caller's session.
    pub(crate) fn claim(&self, key: Key, highest: u32) -> u32 {
        let mut marks = self.lock();
        let mark = marks.entry(key).or_insert(0);
        let before = *mark;
        *mark = before.max(highest);
        before
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u32>> {
        // why: the map holds plain numbers, never half-updated; a panic
        // elsewhere while holding the lock leaves it consistent.
        self.marks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_uid_is_claimed_once() {
        let claims = RecentClaims::default();
        let key = (AccountId(1), MailboxId(2), NonZeroU32::MIN);
        assert_eq!(claims.mark(key), 0);
        assert_eq!(claims.claim(key, 5), 0);
        assert_eq!(claims.claim(key, 5), 5);
        assert_eq!(claims.claim(key, 3), 5);
        assert_eq!(claims.claim(key, 9), 5);
        assert_eq!(claims.mark(key), 9);
    }
}
