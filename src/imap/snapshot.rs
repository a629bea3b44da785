//! The session's snapshot of the selected mailbox: one 16-byte entry per
//! message (UID, MODSEQ, system flags) and no per-message heap record.
//!
//! # Why this shape
//!
//! Message sequence numbers are positions in the list of messages the
//! client has been told about (RFC 9051 §2.3.1.2), so the session must
//! keep that list. Keeping the stored records instead (header fields,
//! keywords, blob key) cost ~350 bytes a message: each SELECT of a
//! 2-million-message mailbox added ~700 MiB (issue 14 item 7). What else
//! a command needs (dates, sizes, header fields, keywords, content) is
//! read from the store a batch at a time when the command runs. The
//! system flags stay here because CLOSE, EXPUNGE, implicit `\Seen` and
//! flag SEARCHes need them for every message; MODSEQ tells a flag change
//! apart (keywords included) when the mailbox is reread.

use std::collections::BTreeSet;
use std::num::NonZeroU32;

use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::response::Data;
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::condstore::{runs, vanished, Tracking};
use super::fetch::flag_items;
use super::selected::Selected;
use crate::store::{AccountId, FlagChange, Flags, MailError, MailStore, MailboxId, Message, Uid};

/// The system flags of a message as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct SystemFlags(u8);

const SEEN: u8 = 1;
const ANSWERED: u8 = 2;
const FLAGGED: u8 = 4;
const DELETED: u8 = 8;
const DRAFT: u8 = 16;
/// Session-local (never stored): see `recent`.
const RECENT: u8 = 32;

impl SystemFlags {
    /// The system flags of `flags`.
    pub(crate) fn of(flags: &Flags) -> Self {
        let bits = [
            (flags.seen, SEEN),
            (flags.answered, ANSWERED),
            (flags.flagged, FLAGGED),
            (flags.deleted, DELETED),
            (flags.draft, DRAFT),
        ];
        Self(bits.iter().filter(|(on, _)| *on).fold(0, |a, (_, b)| a | b))
    }

    /// `\Seen`.
    pub(crate) fn seen(self) -> bool {
        self.0 & SEEN != 0
    }

    /// `\Answered`.
    pub(crate) fn answered(self) -> bool {
        self.0 & ANSWERED != 0
    }

    /// `\Flagged`.
    pub(crate) fn flagged(self) -> bool {
        self.0 & FLAGGED != 0
    }

    /// `\Deleted`.
    pub(crate) fn deleted(self) -> bool {
        self.0 & DELETED != 0
    }

    /// `\Draft`.
    pub(crate) fn draft(self) -> bool {
        self.0 & DRAFT != 0
    }

    /// `\Recent` (RFC 3501 §2.3.2): recent in this session.
    pub(crate) fn recent(self) -> bool {
        self.0 & RECENT != 0
    }

    /// These flags with `\Recent` on or off.
    pub(crate) fn with_recent(self, on: bool) -> Self {
        if on {
            Self(self.0 | RECENT)
        } else {
            Self(self.0 & !RECENT)
        }
    }

    /// These flags after `change` (`\Recent` is not the client's to change).
    pub(crate) fn changed_by(self, change: &FlagChange) -> Self {
        match change {
            FlagChange::Replace(f) => Self::of(f).with_recent(self.recent()),
            FlagChange::Add(f) => Self(self.0 | Self::of(f).0),
            FlagChange::Remove(f) => Self(self.0 & !Self::of(f).0),
        }
    }

    /// As stored flags (without keywords, which are not kept here).
    fn to_flags(self) -> Flags {
        Flags {
            seen: self.seen(),
            answered: self.answered(),
            flagged: self.flagged(),
            deleted: self.deleted(),
            draft: self.draft(),
            ..Flags::default()
        }
    }
}

/// What the session knows of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Known {
    /// Its UID.
    pub(crate) uid: Uid,
    /// Its MODSEQ when the client was last told about it.
    pub(crate) modseq: u64,
    /// Its system flags then.
    pub(crate) flags: SystemFlags,
}

impl Known {
    pub(crate) fn of(m: &Message) -> Self {
        Self {
            uid: m.uid,
            modseq: m.modseq,
            flags: SystemFlags::of(&m.flags),
        }
    }
}

/// A mailbox as reread from the store.
#[derive(Debug, Default)]
pub(crate) struct Current {
    /// Its HIGHESTMODSEQ when the reading started.
    pub(crate) modseq: u64,
    /// Every message, in UID order.
    pub(crate) entries: Vec<Known>,
    /// Full flags (keywords too) of the messages up to the snapshot's last
    /// UID that changed after the snapshot's MODSEQ, in UID order: only
    /// these need a `FETCH (FLAGS)`, so only these are kept whole.
    changed: Vec<(Uid, Flags)>,
    /// Every keyword in use (up to [`MAX_KEYWORDS`]): the mailbox's FLAGS.
    pub(crate) keywords: BTreeSet<String>,
}

/// Most keywords a mailbox lists in FLAGS and PERMANENTFLAGS. Real
/// mailboxes use a handful (`$Forwarded`, `$Junk`, a few labels); the cap
/// keeps a mailbox that a client filled with unique keywords from making
/// every SELECT answer with megabytes. A keyword beyond it still works
/// (STORE, SEARCH, FETCH); `\*` in PERMANENTFLAGS says new ones may be
/// made.
pub(crate) const MAX_KEYWORDS: usize = 1000;

impl Current {
    /// Reads a mailbox a page at a time. `last_known` and `since` are the
    /// snapshot's last UID and MODSEQ (`None` for a fresh SELECT).
    pub(crate) fn read(
        store: &MailStore,
        (id, mailbox): (AccountId, MailboxId),
        modseq: u64,
        last_known: Option<Uid>,
        since: u64,
    ) -> Result<Self, MailError> {
        let mut current = Self {
            modseq,
            ..Self::default()
        };
        store.for_each_message(id, mailbox, |m| {
            current.entries.push(Known::of(&m));
            for k in &m.flags.keywords {
                if current.keywords.len() < MAX_KEYWORDS && !current.keywords.contains(k) {
                    current.keywords.insert(k.clone());
                }
            }
            if last_known.is_some_and(|last| m.uid <= last) && m.modseq > since {
                current.changed.push((m.uid, m.flags));
            }
            Ok(())
        })?;
        Ok(current)
    }

    /// The mailbox is gone (deleted by another session).
    pub(crate) fn gone(modseq: u64) -> Self {
        Self {
            modseq,
            ..Self::default()
        }
    }

    fn position(&self, uid: Uid) -> Option<usize> {
        self.entries.binary_search_by_key(&uid, |k| k.uid).ok()
    }

    fn flags_of(&self, known: &Known) -> Flags {
        match self.changed.binary_search_by_key(&known.uid, |c| c.0) {
            Ok(i) => self.changed.get(i).map(|c| c.1.clone()).unwrap_or_default(),
            Err(_) => known.flags.to_flags(),
        }
    }
}

impl Selected {
    /// Indices of the messages in `set` (by UID or sequence number), in
    /// ascending order, each once (see [`resolve`]).
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        resolve(&self.messages, set, uid)
    }

    /// How many messages are `\Recent` in this session.
    pub(crate) fn recent_count(&self) -> u32 {
        let n = self.messages.iter().filter(|k| k.flags.recent()).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// The sequence number of index `i`.
    pub(crate) fn seq(i: usize) -> NonZeroU32 {
        NonZeroU32::new(u32::try_from(i + 1).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
    }

    /// Responses that bring the client from the snapshot to `current`,
    /// updating the snapshot; the flag says whether it is now current
    /// (false while expunged messages are held back). Order: `EXPUNGE`
    /// in decreasing sequence order, `EXISTS`, then `FETCH (FLAGS)`.
    ///
    /// Messages new to the snapshot with a UID above `recent_above` are
    /// `\Recent` in this session.
    pub(crate) fn diff(
        &mut self,
        current: Current,
        allow_expunge: bool,
        recent_above: u32,
        resync: Tracking,
    ) -> (Vec<Data<'static>>, bool) {
        let mut out = Vec::new();
        let before = self.messages.len();
        let last_known = self.messages.last().map(|k| k.uid);
        if allow_expunge {
            let mut gone = Vec::new();
            for i in (0..self.messages.len()).rev() {
                let missing = self
                    .messages
                    .get(i)
                    .filter(|k| current.position(k.uid).is_none());
                if let Some(k) = missing {
                    gone.push(k.uid.get());
                    // QRESYNC sends one VANISHED instead (RFC 7162 §3.2.10).
                    if !resync.qresync() {
                        out.push(Data::Expunge(Self::seq(i)));
                    }
                }
            }
            if !gone.is_empty() {
                self.messages.retain(|k| current.position(k.uid).is_some());
                if resync.qresync() {
                    gone.reverse();
                    out.extend(vanished(&runs(gone), false));
                }
            }
        }
        let mut complete = true;
        let mut changed = Vec::new();
        for (i, known) in self.messages.iter_mut().enumerate() {
            let now = current
                .position(known.uid)
                .and_then(|j| current.entries.get(j));
            match now {
                None => complete = false,
                Some(now) if now.modseq != known.modseq => {
                    let recent = known.flags.recent();
                    changed.push((i, current.flags_of(now), now.uid, recent, now.modseq));
                    *known = *now;
                    known.flags = known.flags.with_recent(recent);
                }
                Some(_) => {}
            }
        }
        let new = current
            .entries
            .iter()
            .filter(|k| last_known.is_none_or(|last| k.uid > last))
            .map(|k| Known {
                flags: k.flags.with_recent(k.uid.get() > recent_above),
                ..*k
            });
        let kept = self.messages.len();
        self.messages.extend(new);
        if self.messages.len() != before || !out.is_empty() {
            let exists = u32::try_from(self.messages.len()).unwrap_or(u32::MAX);
            out.push(Data::Exists(exists));
        }
        if self.messages.len() > kept {
            out.push(Data::Recent(self.recent_count()));
        }
        for (i, flags, uid, recent, modseq) in changed {
            let modseq = resync.condstore().then_some(modseq);
            if let Ok(items) = Vec1::try_from(flag_items(&flags, uid, recent, modseq)) {
                out.push(Data::Fetch {
                    seq: Self::seq(i),
                    items,
                });
            }
        }
        (out, complete)
    }
}

/// Indices into `messages` of the messages in `set` (by UID or sequence
/// number), ascending, each once. Linear in the answer: each range is
/// found by binary search and overlapping ranges are merged, so `1:*,1:*`
/// over millions of messages costs what `1:*` does.
fn resolve(messages: &[Known], set: &SequenceSet, uid: bool) -> Vec<usize> {
    let Some(last) = messages.last() else {
        return Vec::new();
    };
    let largest = if uid {
        last.uid.0
    } else {
        Selected::seq(messages.len() - 1)
    };
    let mut ranges: Vec<(usize, usize)> = set
        .0
        .as_ref()
        .iter()
        .filter_map(|seq| {
            let (a, b) = match seq {
                Sequence::Single(v) => (expand(v, largest), expand(v, largest)),
                Sequence::Range(a, b) => (expand(a, largest), expand(b, largest)),
            };
            index_range(messages, a.min(b), a.max(b), uid)
        })
        .collect();
    ranges.sort_unstable();
    let mut out = Vec::new();
    let mut next = 0;
    for (start, end) in ranges {
        let start = start.max(next);
        if start < end {
            out.extend(start..end);
            next = end;
        }
    }
    out
}

/// The indices `start..end` of the numbers `low..=high`, if any.
fn index_range(messages: &[Known], low: u32, high: u32, uid: bool) -> Option<(usize, usize)> {
    let (start, end) = if uid {
        (
            messages.partition_point(|k| k.uid.get() < low),
            messages.partition_point(|k| k.uid.get() <= high),
        )
    } else {
        let to_index = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
        (
            to_index(low).saturating_sub(1),
            to_index(high).min(messages.len()),
        )
    };
    (start < end).then_some((start, end))
}

/// Whether `n` is in `set`, with `*` standing for `largest`.
pub(crate) fn contains(set: &SequenceSet, n: u32, largest: NonZeroU32) -> bool {
    set.0.as_ref().iter().any(|seq| match seq {
        Sequence::Single(v) => expand(v, largest) == n,
        Sequence::Range(a, b) => {
            let (a, b) = (expand(a, largest), expand(b, largest));
            a.min(b) <= n && n <= a.max(b)
        }
    })
}

fn expand(v: &SeqOrUid, largest: NonZeroU32) -> u32 {
    v.expand(largest).get()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Snapshot entries for `uids` (MODSEQ 1, no flags).
    pub(crate) fn known(uids: &[u32]) -> Vec<Known> {
        uids.iter()
            .map(|&u| Known {
                uid: Uid::new(u).unwrap_or(Uid::FIRST),
                modseq: 1,
                flags: SystemFlags::default(),
            })
            .collect()
    }

    /// A sequence set from its wire form.
    pub(crate) fn set(text: &str) -> SequenceSet {
        SequenceSet::try_from(text).unwrap()
    }

    #[test]
    fn sequence_numbers_merge_overlaps_and_clip_to_the_mailbox() {
        let m = known(&[3, 5, 9, 10, 20]);
        assert_eq!(resolve(&m, &set("1:*,2:3,1:*"), false), vec![0, 1, 2, 3, 4]);
        assert_eq!(resolve(&m, &set("4,2,5:4"), false), vec![1, 3, 4]);
        assert_eq!(resolve(&m, &set("9:7"), false), Vec::<usize>::new());
        assert_eq!(resolve(&m, &set("*"), false), vec![4]);
    }

    #[test]
    fn uids_are_found_by_value_and_star_is_the_last_uid() {
        let m = known(&[3, 5, 9, 10, 20]);
        assert_eq!(resolve(&m, &set("4:10"), true), vec![1, 2, 3]);
        assert_eq!(resolve(&m, &set("1,2,4"), true), Vec::<usize>::new());
        // RFC 9051 §6.4.8: 559:* includes the last message even when 559
        // is above every UID.
        assert_eq!(resolve(&m, &set("559:*"), true), vec![4]);
        assert_eq!(resolve(&[], &set("1:*"), true), Vec::<usize>::new());
    }

    #[test]
    fn system_flags_follow_flag_changes() {
        let seen = Flags {
            seen: true,
            ..Flags::default()
        };
        let deleted = Flags {
            deleted: true,
            ..Flags::default()
        };
        let f = SystemFlags::of(&seen).changed_by(&FlagChange::Add(deleted.clone()));
        assert!(f.seen() && f.deleted() && !f.draft());
        let f = f.changed_by(&FlagChange::Remove(seen));
        assert!(!f.seen() && f.deleted());
        assert_eq!(
            f.changed_by(&FlagChange::Replace(Flags::default())),
            SystemFlags::default()
        );
    }
}
