//! The selected state (RFC 9051 §3.3): SELECT, EXAMINE, CLOSE, UNSELECT,
//! and the session's snapshot of the mailbox.
//!
//! The snapshot (`snapshot`, one small entry per message) is the list of
//! messages (UID order) this client has been told about; message sequence
//! numbers are positions in it (RFC 9051 §2.3.1.2). Other sessions and deliveries change the store; on NOOP,
//! IDLE and after most commands the session rereads the mailbox and tells
//! the client the difference: `EXPUNGE` in decreasing sequence order (so
//! each number is valid when the client applies it), then `EXISTS`, then
//! `FETCH (FLAGS)` for changed flags. During FETCH, STORE and SEARCH by
//! sequence number no `EXPUNGE` is sent (RFC 9051 §7.5.1); the expunged
//! messages stay in the snapshot until the next command that allows it.

use std::collections::BTreeSet;

use imap_next::imap_types::command::SelectParameter;
use imap_next::imap_types::core::Atom;
use imap_next::imap_types::flag::{Flag, FlagPerm};
use imap_next::imap_types::mailbox::Mailbox as WireMailbox;
use imap_next::imap_types::response::{Code, Data};

use super::condstore::wire_modseq;
use super::error::ImapError;
use super::mailboxes::name_of;
use super::session::{status, Done, Session};
use super::snapshot::{Current, Known, MAX_KEYWORDS};
use crate::store::{FlagChange, Flags, MailError, Mailbox, Uid};

/// The selected mailbox and what this session has told its client.
#[derive(Debug)]
pub(crate) struct Selected {
    /// The mailbox as it was selected (id and UIDVALIDITY are what count).
    pub(crate) mailbox: Mailbox,
    /// EXAMINE: no flag changes, no expunge, no implicit `\Seen`.
    pub(crate) read_only: bool,
    /// Messages known to the client, in UID order; index + 1 = sequence number.
    pub(crate) messages: Vec<Known>,
    /// HIGHESTMODSEQ the snapshot reflects; unchanged means nothing to do.
    pub(crate) modseq: u64,
    /// The keywords the client was told about in FLAGS (RFC 9051 §7.3.5):
    /// only ever grows during a selection.
    pub(crate) keywords: BTreeSet<String>,
    /// The result `SEARCH RETURN (SAVE)` kept, as UIDs in ascending
    /// order (RFC 5182, `searchres`): empty on each SELECT.
    pub(crate) saved: Vec<std::num::NonZeroU32>,
    /// Live searches with UPDATE (RFC 5267, `context`): end with the
    /// selection.
    pub(crate) contexts: Vec<super::context::Context>,
}

/// Messages per store write of a flag change.
const FLAG_BATCH: usize = 1000;

/// The mailbox's FLAGS: the system flags and the keywords in use.
fn mailbox_flags(keywords: &BTreeSet<String>) -> Vec<Flag<'static>> {
    let mut flags = vec![
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Seen,
        Flag::Draft,
    ];
    flags.extend(
        keywords
            .iter()
            .filter_map(|k| Atom::try_from(k.clone()).ok())
            .map(Flag::Keyword),
    );
    flags
}

/// PERMANENTFLAGS: all of FLAGS, and `\*` (any new keyword may be made).
fn permanent_flags(keywords: &BTreeSet<String>) -> Vec<FlagPerm<'static>> {
    let mut flags: Vec<FlagPerm<'static>> = mailbox_flags(keywords)
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
        parameters: &[SelectParameter],
    ) -> Result<Done, ImapError> {
        // RFC 7162 §3.2.5: QRESYNC only after ENABLE QRESYNC.
        let mut qresync = None;
        for p in parameters {
            match p {
                // why not enable_condstore: the SELECT answer itself carries
                // the new mailbox's HIGHESTMODSEQ.
                SelectParameter::CondStore => {
                    self.resync = self.resync.max(super::condstore::Tracking::CondStore);
                }
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.resync.qresync() {
                        return Err(ImapError::syntax(
                            "the QRESYNC parameter needs ENABLE QRESYNC first (RFC 7162, section 3.2.5)",
                        ));
                    }
                    qresync = Some((*uid_validity, mod_sequence_value.get(), known_uids.clone()));
                }
            }
        }
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
        let (mbox, current) = self
            .with_store(move |s| {
                let mbox = s.mailbox_by_name(id, &name)?;
                let current = Current::read(s, (id, mbox.id), mbox.highest_modseq, None, 0)?;
                Ok((mbox, current))
            })
            .await?;
        let highest = current.entries.last().map_or(0, |k| k.uid.get());
        let recent_above = self.recent_mark(&mbox, read_only, highest);
        let messages = current
            .entries
            .into_iter()
            .map(|k| Known {
                flags: k.flags.with_recent(k.uid.get() > recent_above),
                ..k
            })
            .collect();
        let sel = Selected {
            modseq: mbox.highest_modseq,
            mailbox: mbox,
            read_only,
            messages,
            keywords: current.keywords,
            saved: Vec::new(),
            contexts: Vec::new(),
        };
        self.announce(&sel);
        let validity = sel.mailbox.uid_validity;
        self.selected = Some(sel);
        self.select_list().await?;
        if let Some((client_validity, since, known)) = qresync {
            // RFC 7162 §3.2.5.1: another UIDVALIDITY means a full resync.
            if client_validity == validity {
                self.resync_report(since, known.as_ref()).await?;
            }
        }
        Ok(if read_only {
            Done::with_code(Code::ReadOnly, "EXAMINE completed")
        } else {
            Done::with_code(Code::ReadWrite, "SELECT completed")
        })
    }

    /// The untagged responses of SELECT (RFC 3501 §6.3.1, RFC 9051 §6.3.2).
    fn announce(&mut self, sel: &Selected) {
        let mbox = &sel.mailbox;
        self.conn.data(Data::Flags(mailbox_flags(&sel.keywords)));
        let exists = u32::try_from(sel.messages.len()).unwrap_or(u32::MAX);
        self.conn.data(Data::Exists(exists));
        // IMAP4rev2 has neither (RFC 9051 §6.3.2, `enable`).
        let rev2 = self.enabled.rev2;
        if !rev2 {
            self.conn.data(Data::Recent(sel.recent_count()));
        }
        let first_unseen = sel
            .messages
            .iter()
            .position(|k| !k.flags.seen())
            .filter(|_| !rev2)
            .map(|i| Code::Unseen(Selected::seq(i)));
        let codes = [
            first_unseen,
            Some(Code::UidValidity(mbox.uid_validity)),
            Some(Code::UidNext(mbox.uid_next.0)),
            Some(Code::PermanentFlags(if sel.read_only {
                Vec::new()
            } else {
                permanent_flags(&sel.keywords)
            })),
            Some(Code::HighestModSeq(wire_modseq(sel.modseq))),
        ];
        for code in codes.into_iter().flatten() {
            self.conn.status(status(
                None,
                imap_next::imap_types::response::StatusKind::Ok,
                Some(code),
                "ok",
            ));
        }
    }

    /// The UID above which messages are `\Recent` in this session: a
    /// read-write session claims every UID up to `highest` (RFC 3501
    /// §2.3.2), a read-only one only looks.
    fn recent_mark(&self, mbox: &Mailbox, read_only: bool, highest: u32) -> u32 {
        let Some(account) = self.account.as_ref() else {
            return u32::MAX;
        };
        let key = (account.id, mbox.id, mbox.uid_validity);
        let claims = &self.ctx.config.recent;
        let mark = if read_only {
            claims.mark(key)
        } else {
            claims.claim(key, highest)
        };
        // IMAP4rev2 has no \Recent (`enable`): claimed, never shown.
        if self.enabled.rev2 {
            u32::MAX
        } else {
            mark
        }
    }

    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` again when `keywords` holds
    /// some the client has not been told about (RFC 9051 §7.3.5): before
    /// any FETCH that shows them.
    pub(crate) fn announce_keywords<'k>(&mut self, keywords: impl IntoIterator<Item = &'k String>) {
        let Some(sel) = self.selected.as_mut() else {
            return;
        };
        let mut grew = false;
        for k in keywords {
            if sel.keywords.len() >= MAX_KEYWORDS {
                break;
            }
            grew |= sel.keywords.insert(k.clone());
        }
        if !grew {
            return;
        }
        let flags = mailbox_flags(&sel.keywords);
        let permanent = (!sel.read_only).then(|| permanent_flags(&sel.keywords));
        self.conn.data(Data::Flags(flags));
        if let Some(permanent) = permanent {
            self.conn.status(status(
                None,
                imap_next::imap_types::response::StatusKind::Ok,
                Some(Code::PermanentFlags(permanent)),
                "keywords",
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
                .filter(|m| m.flags.deleted())
                .map(|m| m.uid)
                .collect();
            if !uids.is_empty() {
                self.with_store(move |s| s.expunge(id, mbox, &uids)).await?;
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
        let last = sel.messages.last().map(|k| k.uid);
        let current = self
            .with_store(move |s| match s.get_mailbox(id, mbox) {
                Ok(m) if m.highest_modseq == known => Ok(None),
                Ok(m) => Current::read(s, (id, mbox), m.highest_modseq, last, known).map(Some),
                // Deleted by another session: everything is gone.
                Err(MailError::MailboxNotFound { .. }) => Ok(Some(Current::gone(known))),
                Err(e) => Err(e),
            })
            .await?;
        let Some(mut current) = current else {
            return Ok(());
        };
        let keywords = std::mem::take(&mut current.keywords);
        self.announce_keywords(&keywords);
        let Some(sel) = self.selected.as_ref() else {
            return Ok(());
        };
        let (mbox, read_only) = (sel.mailbox.clone(), sel.read_only);
        let highest = current.entries.last().map_or(0, |k| k.uid.get());
        let recent_above = self.recent_mark(&mbox, read_only, highest);
        let before = self.context_before();
        let Some(sel) = self.selected.as_mut() else {
            return Ok(());
        };
        let modseq = current.modseq;
        let (updates, complete) = sel.diff(current, allow_expunge, recent_above, self.resync);
        // why: with expunges held back the snapshot is not yet current, so
        // the next sync must not be skipped by the modseq shortcut.
        if complete {
            sel.modseq = modseq;
        }
        // RFC 5267 §4.3: REMOVEFROM before the EXPUNGEs, ADDTO after EXISTS.
        let (removals, additions) = self.context_updates(before).await;
        if !removals.is_empty() {
            self.conn.raw(&removals);
        }
        for data in updates {
            if !(self.enabled.rev2 && matches!(data, Data::Recent(_))) {
                self.conn.data(data);
            }
        }
        if !additions.is_empty() {
            self.conn.raw(&additions);
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
        Ok(self.change_flags_if(indices, change, None).await?.0)
    }

    /// [`Session::change_flags`] with `UNCHANGEDSINCE` (RFC 7162 §3.1.3):
    /// also returns the indices left alone because they changed after
    /// `unchanged_since`.
    pub(crate) async fn change_flags_if(
        &mut self,
        indices: &[usize],
        change: FlagChange,
        unchanged_since: Option<u64>,
    ) -> Result<(Vec<usize>, Vec<usize>), ImapError> {
        let id = self.account()?.id;
        let sel = self.selected.as_ref().ok_or(ImapError::WrongState {
            command: "STORE",
            needed: "SELECT a mailbox first",
        })?;
        if sel.read_only {
            return Err(ImapError::ReadOnly);
        }
        let mbox = sel.mailbox.id;
        let mut out = Vec::new();
        let mut modified = Vec::new();
        // why batches: one store write per batch, not one batch holding
        // every record of `STORE 1:* +FLAGS` over a huge mailbox.
        for chunk in indices.chunks(FLAG_BATCH) {
            let Some(sel) = self.selected.as_ref() else {
                break;
            };
            let uids: Vec<Uid> = chunk
                .iter()
                .filter_map(|&i| sel.messages.get(i).map(|m| m.uid))
                .collect();
            let change2 = change.clone();
            let mut set = self
                .with_store(move |s| {
                    s.set_flags_unchanged_since(id, mbox, &uids, &change2, unchanged_since)
                })
                .await?;
            set.changed.sort_unstable_by_key(|c| c.0);
            set.modified.sort_unstable();
            let Some(sel) = self.selected.as_mut() else {
                break;
            };
            for &i in chunk {
                if let Some(m) = sel.messages.get_mut(i) {
                    if let Ok(at) = set.changed.binary_search_by_key(&m.uid, |c| c.0) {
                        m.flags = m.flags.changed_by(&change);
                        m.modseq = set.changed.get(at).map_or(m.modseq, |c| c.1);
                        out.push(i);
                    } else if set.modified.binary_search(&m.uid).is_ok() {
                        modified.push(i);
                    }
                }
            }
        }
        Ok((out, modified))
    }
}

/// `\Seen` alone, for the implicit flag change of `BODY[]`.
pub(crate) fn seen() -> FlagChange {
    FlagChange::Add(Flags {
        seen: true,
        ..Flags::default()
    })
}
