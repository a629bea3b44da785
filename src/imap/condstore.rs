//! CONDSTORE and QRESYNC (RFC 7162): quick flag resynchronisation and
//! quick mailbox resynchronisation.
//!
//! Every message record already carries the MODSEQ of its last change and
//! every mailbox its HIGHESTMODSEQ (the store raises it for new messages,
//! flag changes and expunges alike), so what is here is the protocol:
//!
//! - `HIGHESTMODSEQ` on every SELECT / EXAMINE and in STATUS; `MODSEQ` in
//!   FETCH; `FETCH (CHANGEDSINCE n)`; `STORE (UNCHANGEDSINCE n)` with the
//!   `[MODIFIED]` code, tested and applied in one store transaction;
//!   `SEARCH MODSEQ n`.
//! - A session turns CONDSTORE on with ENABLE or with its first command
//!   that uses it (RFC 7162 §3.1); from then on every FETCH response that
//!   carries flags carries `MODSEQ` too.
//! - `ENABLE QRESYNC` (which implies CONDSTORE) allows `SELECT (QRESYNC
//!   (uidvalidity modseq [known-uids]))` and `UID FETCH (CHANGEDSINCE n
//!   VANISHED)`, and replaces `EXPUNGE` by `VANISHED` for the session.
//!
//! VANISHED (EARLIER) lists the UIDs, of those the client names (or of
//! all below UIDNEXT), that are not in the mailbox: every message expunged
//! since the client's MODSEQ is among them, and so are UIDs that were
//! expunged earlier or never used, which RFC 7162 §3.2.5.1 allows a server
//! without a full expunge history to send (the client ignores UIDs it
//! does not have). It is one range per gap, not one number per message.

use std::num::{NonZeroU32, NonZeroU64};

use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::fetch::MessageDataItem;
use imap_next::imap_types::response::{Code, Data, StatusKind};
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::error::ImapError;
use super::fetch::flag_items;
use super::selected::Selected;
use super::session::{status, Session};
use super::snapshot::Known;

/// What a session enabled of RFC 7162. Ordered: QRESYNC includes
/// CONDSTORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) enum Tracking {
    /// Neither: responses carry no MODSEQ.
    #[default]
    Off,
    /// CONDSTORE: flag updates carry MODSEQ.
    CondStore,
    /// QRESYNC: also VANISHED instead of EXPUNGE.
    QResync,
}

impl Tracking {
    /// Whether FETCH responses carry MODSEQ.
    pub(crate) fn condstore(self) -> bool {
        self >= Tracking::CondStore
    }

    /// Whether expunges are told as VANISHED.
    pub(crate) fn qresync(self) -> bool {
        self == Tracking::QResync
    }
}

/// A MODSEQ as the wire has it: never 0 (RFC 7162 §3.1.1; a mailbox
/// that has seen no change yet answers 1).
pub(crate) fn wire_modseq(modseq: u64) -> NonZeroU64 {
    NonZeroU64::new(modseq).unwrap_or(NonZeroU64::MIN)
}

/// The `MODSEQ (n)` item of a FETCH response.
pub(crate) fn modseq_item(modseq: u64) -> MessageDataItem<'static> {
    MessageDataItem::ModSeq(wire_modseq(modseq))
}

impl Session {
    /// A CONDSTORE enabling command was used (RFC 7162 §3.1): SELECT
    /// (CONDSTORE), FETCH MODSEQ or CHANGEDSINCE, STORE UNCHANGEDSINCE,
    /// SEARCH MODSEQ.
    /// With a mailbox selected, the first one also reports its
    /// HIGHESTMODSEQ in an untagged OK (RFC 7162 §3.1, as Dovecot does;
    /// imaptest's esearch-condstore expects it).
    pub(crate) fn enable_condstore(&mut self) {
        if self.resync == Tracking::Off {
            if let Some(sel) = self.selected.as_ref() {
                let code = Code::HighestModSeq(wire_modseq(sel.modseq));
                self.conn
                    .status(status(None, StatusKind::Ok, Some(code), "Highest"));
            }
        }
        self.resync = self.resync.max(Tracking::CondStore);
    }

    /// What `SELECT (QRESYNC (validity since [known]))` tells after the
    /// usual responses (RFC 7162 §3.2.5.1): `VANISHED (EARLIER)` for the
    /// UIDs gone, then `FETCH (UID FLAGS MODSEQ)` of every message changed
    /// (or new) since `since`.
    pub(crate) async fn resync_report(
        &mut self,
        since: u64,
        known: Option<&SequenceSet>,
    ) -> Result<(), ImapError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let gone = absent(&sel.messages, sel.mailbox.uid_next.0, known);
        if let Some(v) = vanished(&gone, true) {
            self.conn.data(v);
        }
        let changed: Vec<usize> = sel
            .messages
            .iter()
            .enumerate()
            .filter(|(_, k)| k.modseq > since)
            .map(|(i, _)| i)
            .collect();
        self.send_flags(&changed).await
    }

    /// `FETCH (FLAGS UID [MODSEQ])` of the messages at `indices`, read
    /// from the store (keywords are not in the snapshot), a batch at a
    /// time.
    pub(crate) async fn send_flags(&mut self, indices: &[usize]) -> Result<(), ImapError> {
        let modseq = self.resync.condstore();
        for chunk in indices.chunks(FLAG_ANSWER_BATCH) {
            let batch = self.load_batch(chunk, false).await?;
            // RFC 9051 §7.3.5: keywords another session made are announced
            // in FLAGS before a FETCH shows them.
            self.announce_keywords(batch.iter().flat_map(|l| &l.msg.flags.keywords));
            for loaded in batch {
                let m = &loaded.msg;
                let items = flag_items(&m.flags, m.uid, loaded.recent, modseq.then_some(m.modseq));
                if let Ok(items) = Vec1::try_from(items) {
                    self.conn.data(Data::Fetch {
                        seq: Selected::seq(loaded.index),
                        items,
                    });
                }
            }
            if self.conn.flush().await.is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Messages per store read while answering with their flags.
const FLAG_ANSWER_BATCH: usize = 256;

/// `VANISHED [(EARLIER)] uids`, or nothing when `uids` is empty. `uids`
/// must be ascending.
pub(crate) fn vanished(uids: &[(u32, u32)], earlier: bool) -> Option<Data<'static>> {
    Some(Data::Vanished {
        earlier,
        known_uids: sequence_set(uids)?,
    })
}

/// The sequence set of `runs` (each `(first, last)`, ascending), one
/// range per run; `None` when there is none.
pub(crate) fn sequence_set(runs: &[(u32, u32)]) -> Option<SequenceSet> {
    let seqs: Vec<Sequence> = runs
        .iter()
        .filter_map(|&(a, b)| {
            let a = NonZeroU32::new(a)?;
            let b = NonZeroU32::new(b)?;
            Some(if a == b {
                Sequence::Single(SeqOrUid::Value(a))
            } else {
                Sequence::Range(SeqOrUid::Value(a), SeqOrUid::Value(b))
            })
        })
        .collect();
    Some(SequenceSet(Vec1::try_from(seqs).ok()?))
}

/// Consecutive runs of ascending `uids`.
pub(crate) fn runs(uids: impl IntoIterator<Item = u32>) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for uid in uids {
        match out.last_mut() {
            Some((_, end)) if end.checked_add(1) == Some(uid) => *end = uid,
            _ => out.push((uid, uid)),
        }
    }
    out
}

/// The UIDs below `uid_next` that `within` names (all of them without
/// it) and that are not among `present` (ascending), as runs: what
/// VANISHED (EARLIER) answers. `*` in `within` is the last UID used.
pub(crate) fn absent(
    present: &[Known],
    uid_next: NonZeroU32,
    within: Option<&SequenceSet>,
) -> Vec<(u32, u32)> {
    let Some(top) = uid_next.get().checked_sub(1).filter(|&t| t > 0) else {
        return Vec::new();
    };
    let mut ranges: Vec<(u32, u32)> = match within {
        None => vec![(1, top)],
        Some(set) => set
            .0
            .as_ref()
            .iter()
            .map(|s| {
                let value = |v: &SeqOrUid| match v {
                    SeqOrUid::Value(n) => n.get(),
                    SeqOrUid::Asterisk => top,
                };
                match s {
                    Sequence::Single(v) => (value(v), value(v)),
                    Sequence::Range(a, b) => {
                        let (a, b) = (value(a), value(b));
                        (a.min(b), a.max(b))
                    }
                }
            })
            .filter(|&(a, _)| a <= top)
            .map(|(a, b)| (a, b.min(top)))
            .collect(),
    };
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (a, b) in ranges {
        match merged.last_mut() {
            Some((_, end)) if a <= end.saturating_add(1) => *end = (*end).max(b),
            _ => merged.push((a, b)),
        }
    }
    let mut out = Vec::new();
    for (a, b) in merged {
        let start = present.partition_point(|k| k.uid.get() < a);
        let mut next = a;
        for k in present.get(start..).unwrap_or_default() {
            let uid = k.uid.get();
            if uid > b {
                break;
            }
            if uid > next {
                out.push((next, uid - 1));
            }
            next = uid.saturating_add(1);
        }
        if next <= b {
            out.push((next, b));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::snapshot::tests::{known, set};

    #[test]
    fn absent_uids_are_the_gaps_below_uidnext() {
        let present = known(&[2, 3, 7]);
        let next = NonZeroU32::new(10).unwrap();
        assert_eq!(absent(&present, next, None), vec![(1, 1), (4, 6), (8, 9)]);
        assert_eq!(
            absent(&present, next, Some(&set("3:5,9,1:2"))),
            vec![(1, 1), (4, 5), (9, 9)]
        );
        assert_eq!(absent(&present, next, Some(&set("8:*"))), vec![(8, 9)]);
        assert_eq!(absent(&present, next, Some(&set("20:30"))), vec![]);
        assert!(absent(&[], NonZeroU32::MIN, None).is_empty());
    }

    #[test]
    fn runs_join_consecutive_uids() {
        assert_eq!(runs([1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
        assert_eq!(runs([u32::MAX]), vec![(u32::MAX, u32::MAX)]);
    }
}
