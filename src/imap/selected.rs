//! The selected state (RFC 9051 §3.3): SELECT, EXAMINE, CLOSE, UNSELECT,
//! and the session's snapshot of the mailbox.
//!
//! The snapshot is the list of messages (UID order) this client has been
//! told about; message sequence numbers are positions in it (RFC 9051
//! §2.3.1.2). Other sessions and deliveries change the store; on NOOP,
//! IDLE and after most commands the session rereads the mailbox and tells
//! the client the difference: `EXPUNGE` in decreasing sequence order (so
//! each number is valid when the client applies it), then `EXISTS`, then
//! `FETCH (FLAGS)` for changed flags. During FETCH, STORE and SEARCH by
//! sequence number no `EXPUNGE` is sent (RFC 9051 §7.5.1); the expunged
//! messages stay in the snapshot until the next command that allows it.

use std::num::NonZeroU32;

use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::flag::{Flag, FlagPerm};
use imap_next::imap_types::mailbox::Mailbox as WireMailbox;
use imap_next::imap_types::response::{Code, Data};
use imap_next::imap_types::sequence::{SeqOrUid, Sequence, SequenceSet};

use super::error::ImapError;
use super::fetch::flag_items;
use super::mailboxes::name_of;
use super::session::{status, Done, Session};
use crate::store::{FlagChange, Flags, MailError, Mailbox, Message, Uid};

/// The selected mailbox and what this session has told its client.
#[derive(Debug)]
pub(crate) struct Selected {
    /// The mailbox as it was selected (id and UIDVALIDITY are what count).
    pub(crate) mailbox: Mailbox,
    /// EXAMINE: no flag changes, no expunge, no implicit `\Seen`.
    pub(crate) read_only: bool,
    /// Messages known to the client, in UID order; index + 1 = sequence number.
    pub(crate) messages: Vec<Message>,
    /// HIGHESTMODSEQ the snapshot reflects; unchanged means nothing to do.
    pub(crate) modseq: u64,
}

impl Selected {
    /// Indices of the messages in `set` (by UID or sequence number).
    pub(crate) fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        let Some(last) = self.messages.last() else {
            return Vec::new();
        };
        let largest = if uid {
            last.uid.0
        } else {
            NonZeroU32::new(u32::try_from(self.messages.len()).unwrap_or(u32::MAX))
                .unwrap_or(NonZeroU32::MIN)
        };
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, m)| {
                let n = if uid {
                    m.uid.get()
                } else {
                    u32::try_from(i + 1).unwrap_or(u32::MAX)
                };
                contains(set, n, largest)
            })
            .map(|(i, _)| i)
            .collect()
    }

    /// The sequence number of index `i`.
    pub(crate) fn seq(i: usize) -> NonZeroU32 {
        NonZeroU32::new(u32::try_from(i + 1).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
    }

    /// Responses that bring the client from the snapshot to `current`,
    /// updating the snapshot; the flag says whether it is now current
    /// (false while expunged messages are held back).
    fn diff(&mut self, current: Vec<Message>, allow_expunge: bool) -> (Vec<Data<'static>>, bool) {
        let mut out = Vec::new();
        let before = self.messages.len();
        let last_known = self.messages.last().map(|m| m.uid);
        let mut by_uid: std::collections::HashMap<Uid, Message> =
            current.into_iter().map(|m| (m.uid, m)).collect();
        if allow_expunge {
            for i in (0..self.messages.len()).rev() {
                let gone = self
                    .messages
                    .get(i)
                    .is_some_and(|m| !by_uid.contains_key(&m.uid));
                if gone {
                    self.messages.remove(i);
                    out.push(Data::Expunge(Self::seq(i)));
                }
            }
        }
        let complete = self.messages.iter().all(|m| by_uid.contains_key(&m.uid));
        let mut changed = Vec::new();
        for (i, known) in self.messages.iter_mut().enumerate() {
            if let Some(now) = by_uid.get(&known.uid) {
                if now.flags != known.flags {
                    changed.push(i);
                }
                *known = now.clone();
            }
        }
        let mut new: Vec<Message> = by_uid
            .drain()
            .map(|(_, m)| m)
            .filter(|m| last_known.is_none_or(|k| m.uid > k))
            .collect();
        new.sort_by_key(|m| m.uid);
        self.messages.extend(new);
        if self.messages.len() != before || !out.is_empty() {
            let exists = u32::try_from(self.messages.len()).unwrap_or(u32::MAX);
            out.push(Data::Exists(exists));
        }
        for i in changed {
            if let Some(m) = self.messages.get(i) {
                if let Ok(items) = Vec1::try_from(flag_items(m)) {
                    out.push(Data::Fetch {
                        seq: Self::seq(i),
                        items,
                    });
                }
            }
        }
        (out, complete)
    }
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

/// The system flags a client may set (PERMANENTFLAGS), plus keywords.
fn permanent_flags() -> Vec<FlagPerm<'static>> {
    let mut flags: Vec<FlagPerm<'static>> = [
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ]
    .into_iter()
    .map(FlagPerm::Flag)
    .collect();
    flags.push(FlagPerm::Asterisk);
    flags
}

impl Session {
    /// SELECT / EXAMINE.
    pub(crate) async fn select(
        &mut self,
        mailbox: &WireMailbox<'_>,
        read_only: bool,
    ) -> Result<Done, ImapError> {
        // RFC 9051 §6.3.2: a failed SELECT still leaves no mailbox selected.
        if self.selected.take().is_some() {
            self.conn.status(status(
                None,
                imap_next::imap_types::response::StatusKind::Ok,
                super::error::other("CLOSED"),
                "previous mailbox closed",
            ));
        }
        let id = self.account()?.id;
        let name = name_of(mailbox)?;
        let (mbox, messages) = self
            .with_store(move |s| {
                let mbox = s.mailbox_by_name(id, &name)?;
                let messages = s.list_messages(id, mbox.id, None, usize::MAX)?;
                Ok((mbox, messages))
            })
            .await?;
        self.announce(&mbox, messages.len(), read_only);
        self.selected = Some(Selected {
            modseq: mbox.highest_modseq,
            mailbox: mbox,
            read_only,
            messages,
        });
        Ok(if read_only {
            Done::with_code(Code::ReadOnly, "EXAMINE completed")
        } else {
            Done::with_code(Code::ReadWrite, "SELECT completed")
        })
    }

    /// The untagged responses of SELECT (RFC 9051 §6.3.2).
    fn announce(&mut self, mbox: &Mailbox, count: usize, read_only: bool) {
        let flags = [
            Flag::Answered,
            Flag::Flagged,
            Flag::Deleted,
            Flag::Seen,
            Flag::Draft,
        ];
        self.conn.data(Data::Flags(flags.to_vec()));
        let exists = u32::try_from(count).unwrap_or(u32::MAX);
        self.conn.data(Data::Exists(exists));
        self.conn.data(Data::Recent(0));
        let codes = [
            Code::UidValidity(mbox.uid_validity),
            Code::UidNext(mbox.uid_next.0),
            Code::PermanentFlags(if read_only {
                Vec::new()
            } else {
                permanent_flags()
            }),
        ];
        for code in codes {
            self.conn.status(status(
                None,
                imap_next::imap_types::response::StatusKind::Ok,
                Some(code),
                "ok",
            ));
        }
    }

    /// CLOSE (`expunge`: removes `\Deleted` messages silently) or UNSELECT.
    pub(crate) async fn close(&mut self, expunge: bool) -> Result<Done, ImapError> {
        let Some(sel) = self.selected.take() else {
            return Err(ImapError::WrongState {
                command: if expunge { "CLOSE" } else { "UNSELECT" },
                needed: "SELECT or EXAMINE a mailbox first",
            });
        };
        if expunge && !sel.read_only {
            let id = self.account()?.id;
            let mbox = sel.mailbox.id;
            let uids: Vec<Uid> = sel
                .messages
                .iter()
                .filter(|m| m.flags.deleted)
                .map(|m| m.uid)
                .collect();
            if !uids.is_empty() {
                self.with_store(move |s| s.expunge(id, mbox, &uids)).await?;
                self.ctx.notifier.notify(id);
            }
        }
        Ok(Done::ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        }))
    }

    /// Tells the client what changed in the selected mailbox since the
    /// snapshot (see the module docs); `allow_expunge` is false during
    /// commands that refer to messages by sequence number.
    pub(crate) async fn sync(&mut self, allow_expunge: bool) -> Result<(), ImapError> {
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let id = self.account()?.id;
        let (mbox, known) = (sel.mailbox.id, sel.modseq);
        let current = self
            .with_store(move |s| match s.get_mailbox(id, mbox) {
                Ok(m) if m.highest_modseq == known => Ok(None),
                Ok(m) => Ok(Some((
                    m.highest_modseq,
                    s.list_messages(id, mbox, None, usize::MAX)?,
                ))),
                // Deleted by another session: everything is gone.
                Err(MailError::MailboxNotFound { .. }) => Ok(Some((known, Vec::new()))),
                Err(e) => Err(e),
            })
            .await?;
        let Some((modseq, messages)) = current else {
            return Ok(());
        };
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        let (updates, complete) = sel.diff(messages, allow_expunge);
        // why: with expunges held back the snapshot is not yet current, so
        // the next sync must not be skipped by the modseq shortcut.
        if complete {
            sel.modseq = modseq;
        }
        for data in updates {
            self.conn.data(data);
        }
        Ok(())
    }

    /// Applies `change` to the messages at `indices`; returns the indices
    /// whose flags changed. Updates the snapshot and wakes other sessions.
    pub(crate) async fn change_flags(
        &mut self,
        indices: &[usize],
        change: FlagChange,
    ) -> Result<Vec<usize>, ImapError> {
        let id = self.account()?.id;
        let sel = self.selected.as_ref().ok_or(ImapError::WrongState {
            command: "STORE",
            needed: "SELECT a mailbox first",
        })?;
        if sel.read_only {
            return Err(ImapError::ReadOnly);
        }
        let mbox = sel.mailbox.id;
        let uids: Vec<Uid> = indices
            .iter()
            .filter_map(|&i| sel.messages.get(i).map(|m| m.uid))
            .collect();
        let change2 = change.clone();
        let changed = self
            .with_store(move |s| s.set_flags(id, mbox, &uids, &change2))
            .await?;
        let Some(sel) = self.selected.as_mut() else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for &i in indices {
            if let Some(m) = sel.messages.get_mut(i) {
                if let Some((_, modseq)) = changed.iter().find(|(u, _)| *u == m.uid) {
                    m.flags = change.applied_to(&m.flags);
                    m.modseq = *modseq;
                    out.push(i);
                }
            }
        }
        if !changed.is_empty() {
            self.ctx.notifier.notify(id);
        }
        Ok(out)
    }
}

/// `\Seen` alone, for the implicit flag change of `BODY[]`.
pub(crate) fn seen() -> FlagChange {
    FlagChange::Add(Flags {
        seen: true,
        ..Flags::default()
    })
}
