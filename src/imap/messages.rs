//! Commands that change messages: STORE (RFC 9051 §6.4.6), COPY (§6.4.7),
//! MOVE (RFC 6851), EXPUNGE and UID EXPUNGE (§6.4.3, RFC 4315), APPEND
//! (§6.3.12) with the UIDPLUS codes APPENDUID and COPYUID.
//!
//! APPEND goes through the ingest pipeline, which encrypts when the
//! account asked for encryption on append. After each change the other
//! sessions of the account are woken (IDLE, NOOP) through the notifier,
//! by the store's commit hook.

use std::num::NonZeroU32;

use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::datetime::DateTime;
use imap_next::imap_types::extensions::binary::LiteralOrLiteral8;
use imap_next::imap_types::extensions::uidplus::{UidElement, UidSet};
use imap_next::imap_types::flag::{Flag, StoreResponse, StoreType};
use imap_next::imap_types::mailbox::Mailbox as WireMailbox;
use imap_next::imap_types::response::{Code, CodeOther, StatusKind};
use imap_next::imap_types::sequence::SequenceSet;
use sealmail_plugin_api::Source;

use super::dates::unix_of;
use super::error::ImapError;
use super::mailboxes::name_of;
use super::selected::Selected;
use super::session::{status, Done, Session};
use crate::ingest::Append;
use crate::store::{FlagChange, Flags, MailError, Uid};

/// Stored flags from the wire (`\Recent` and other `\` extensions are
/// not stored and are ignored).
pub(crate) fn store_flags(flags: &[Flag<'_>]) -> Flags {
    let mut out = Flags::default();
    for flag in flags {
        match flag {
            Flag::Seen => out.seen = true,
            Flag::Answered => out.answered = true,
            Flag::Flagged => out.flagged = true,
            Flag::Deleted => out.deleted = true,
            Flag::Draft => out.draft = true,
            Flag::Keyword(k) => {
                out.keywords.insert(k.as_ref().to_string());
            }
            Flag::Extension(_) => {}
        }
    }
    out
}

/// STORE's arguments past the message set.
pub(crate) struct StoreArgs<'a> {
    pub(crate) kind: &'a StoreType,
    pub(crate) response: &'a StoreResponse,
    pub(crate) flags: &'a [Flag<'static>],
    pub(crate) uid: bool,
    /// CONDSTORE's `UNCHANGEDSINCE`.
    pub(crate) unchanged_since: Option<u64>,
}

/// UIDPLUS `COPYUID` for `(source, destination)` pairs.
fn copy_uid(validity: std::num::NonZeroU32, pairs: &[(Uid, Uid)]) -> Option<Code<'static>> {
    let source = uid_set(pairs.iter().map(|p| p.0))?;
    let destination = uid_set(pairs.iter().map(|p| p.1))?;
    Some(Code::CopyUid {
        uid_validity: validity,
        source,
        destination,
    })
}

/// The uid-set of `uids` (in their order) with each run of consecutive
/// UIDs as one range: `COPY 1:*` of a large mailbox answers `1:200000`,
/// not 200,000 numbers.
fn uid_set(uids: impl Iterator<Item = Uid>) -> Option<UidSet> {
    let elements: Vec<UidElement> = super::condstore::runs(uids.map(Uid::get))
        .into_iter()
        .filter_map(|(a, b)| {
            let (a, b) = (NonZeroU32::new(a)?, NonZeroU32::new(b)?);
            Some(if a == b {
                UidElement::Single(a)
            } else {
                UidElement::Range(a, b)
            })
        })
        .collect();
    Vec1::try_from(elements).ok().map(UidSet)
}

impl Session {
    /// The selected mailbox, writable.
    fn writable(&self, command: &'static str) -> Result<&Selected, ImapError> {
        let sel = self.selected.as_ref().ok_or(ImapError::WrongState {
            command,
            needed: "SELECT a mailbox first",
        })?;
        if sel.read_only {
            return Err(ImapError::ReadOnly);
        }
        Ok(sel)
    }

    /// STORE / UID STORE, with CONDSTORE's `UNCHANGEDSINCE` (RFC 7162
    /// §3.1.3): messages changed after it are left alone and named in
    /// `[MODIFIED]`. With CONDSTORE on, every changed message is answered
    /// with its new `MODSEQ`, even for `.SILENT`.
    pub(crate) async fn store(
        &mut self,
        set: &SequenceSet,
        args: StoreArgs<'_>,
    ) -> Result<Done, ImapError> {
        if args.unchanged_since.is_some() {
            self.enable_condstore();
        }
        let indices = self.writable("STORE")?.resolve(set, args.uid);
        let flags = store_flags(args.flags);
        if !matches!(args.kind, StoreType::Remove) {
            self.announce_keywords(&flags.keywords);
        }
        let change = match args.kind {
            StoreType::Replace => FlagChange::Replace(flags),
            StoreType::Add => FlagChange::Add(flags),
            StoreType::Remove => FlagChange::Remove(flags),
        };
        let (changed, modified) = self
            .change_flags_if(&indices, change, args.unchanged_since)
            .await?;
        if matches!(args.response, StoreResponse::Answer) {
            // why all of them: RFC 9051 §6.4.6 answers every message of
            // the set with its flags, changed or not.
            let answered: Vec<usize> = indices
                .iter()
                .copied()
                .filter(|i| modified.binary_search(i).is_err())
                .collect();
            self.send_flags(&answered).await?;
        } else if self.resync.condstore() {
            self.send_flags(&changed).await?;
        }
        self.sync(args.uid).await?;
        let Some(code) = self.modified_code(&modified, args.uid) else {
            return Ok(Done::ok("STORE completed"));
        };
        Ok(Done::with_code(
            code,
            "STORE completed, except for the messages in MODIFIED",
        ))
    }

    /// `[MODIFIED set]` of the messages at `indices` (UIDs for UID STORE).
    fn modified_code(&self, indices: &[usize], uid: bool) -> Option<Code<'static>> {
        let sel = self.selected.as_ref()?;
        let numbers = indices.iter().filter_map(|&i| {
            if uid {
                sel.messages.get(i).map(|m| m.uid.get())
            } else {
                Some(Selected::seq(i).get())
            }
        });
        super::condstore::sequence_set(&super::condstore::runs(numbers)).map(Code::Modified)
    }

    /// EXPUNGE, or UID EXPUNGE with `set`.
    pub(crate) async fn expunge(&mut self, set: Option<&SequenceSet>) -> Result<Done, ImapError> {
        let sel = self.writable("EXPUNGE")?;
        let in_set = set.map(|s| sel.resolve(s, true));
        let uids: Vec<Uid> = sel
            .messages
            .iter()
            .enumerate()
            .filter(|(i, m)| {
                m.flags.deleted() && in_set.as_ref().is_none_or(|s| s.binary_search(i).is_ok())
            })
            .map(|(_, m)| m.uid)
            .collect();
        let (id, mbox) = (self.account()?.id, sel.mailbox.id);
        if !uids.is_empty() {
            self.with_store(move |s| s.expunge(id, mbox, &uids)).await?;
        }
        // The snapshot still lists them: sync reports each as EXPUNGE.
        self.sync(true).await?;
        Ok(Done::ok("EXPUNGE completed"))
    }

    /// COPY / MOVE and their UID forms.
    pub(crate) async fn transfer(
        &mut self,
        set: &SequenceSet,
        target: &WireMailbox<'_>,
        uid: bool,
        remove: bool,
    ) -> Result<Done, ImapError> {
        let sel = if remove {
            self.writable("MOVE")?
        } else {
            self.selected.as_ref().ok_or(ImapError::WrongState {
                command: "COPY",
                needed: "SELECT a mailbox first",
            })?
        };
        let uids: Vec<Uid> = sel
            .resolve(set, uid)
            .into_iter()
            .filter_map(|i| sel.messages.get(i).map(|m| m.uid))
            .collect();
        let (id, from) = (self.account()?.id, sel.mailbox.id);
        let name = name_of(target)?;
        let (validity, pairs) = self
            .with_store(move |s| {
                let to = match s.mailbox_by_name(id, &name) {
                    Err(MailError::MailboxNotFound { .. }) => return Ok(None),
                    other => other?,
                };
                let pairs = if remove && to.id == from {
                    // RFC 6851 §3.3: MOVE into the selected mailbox itself
                    // is a COPY and an expunge of the originals; the
                    // messages get new UIDs. The store's move would leave
                    // them where they are.
                    let pairs = s.copy_messages(id, from, &uids, to.id)?;
                    let originals: Vec<Uid> = pairs.iter().map(|p| p.0).collect();
                    s.expunge(id, from, &originals)?;
                    pairs
                } else if remove {
                    s.move_messages(id, from, &uids, to.id)?
                } else {
                    s.copy_messages(id, from, &uids, to.id)?
                };
                Ok(Some((to.uid_validity, pairs)))
            })
            .await?
            .ok_or_else(|| ImapError::TryCreate {
                name: name_of(target).unwrap_or_default(),
            })?;
        let code = copy_uid(validity, &pairs);
        if !remove {
            return Ok(match code {
                Some(code) => Done::with_code(code, "COPY completed"),
                None => Done::ok("COPY completed"),
            });
        }
        // RFC 6851 §4.3: COPYUID comes untagged, before the EXPUNGEs.
        if let Some(code) = code {
            self.conn
                .status(status(None, StatusKind::Ok, Some(code), "moved"));
        }
        self.sync(true).await?;
        Ok(Done::ok("MOVE completed"))
    }

    /// APPEND of one message, as imap-codec parsed it (a `literal8` is
    /// made 7-bit safe first, `literal8`).
    pub(crate) async fn append(
        &mut self,
        target: &WireMailbox<'_>,
        flags: &[Flag<'static>],
        date: Option<&DateTime>,
        message: LiteralOrLiteral8<'static>,
    ) -> Result<Done, ImapError> {
        let raw = match message {
            LiteralOrLiteral8::Literal(l) => l.into_inner().into_owned(),
            LiteralOrLiteral8::Literal8(l) => {
                super::literal8::to_seven_bit_safe(l.data.into_owned())
            }
        };
        let one = NewAppend {
            flags: store_flags(flags),
            internal_date: date_of(date),
            raw,
        };
        let mailbox = self.append_target(target).await?;
        self.append_messages(&mailbox, vec![one]).await
    }

    /// The mailbox APPEND stores into, or `NO [TRYCREATE]`.
    pub(crate) async fn append_target(
        &self,
        target: &WireMailbox<'_>,
    ) -> Result<crate::store::Mailbox, ImapError> {
        let id = self.account()?.id;
        let name = name_of(target)?;
        let lookup = name.clone();
        self.with_store(move |s| match s.mailbox_by_name(id, &lookup) {
            Err(MailError::MailboxNotFound { .. }) => Ok(None),
            other => other.map(Some),
        })
        .await?
        .ok_or(ImapError::TryCreate { name })
    }

    /// Stores `messages` in `mailbox` through the ingest pipeline (which
    /// encrypts when the account asks for it), all of them or none (RFC
    /// 3502 §6.3.11), and answers `APPENDUID` with their UIDs.
    pub(crate) async fn append_messages(
        &mut self,
        mailbox: &crate::store::Mailbox,
        messages: Vec<NewAppend>,
    ) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let limit = u64::from(self.ctx.config.max_literal_bytes);
        for m in &messages {
            let size = u64::try_from(m.raw.len()).unwrap_or(u64::MAX);
            if size > limit {
                return Err(ImapError::TooBig { size, limit });
            }
        }
        let items = messages
            .into_iter()
            .map(|m| {
                let append = Append {
                    account: id,
                    mailbox: mailbox.id,
                    flags: m.flags,
                    internal_date: m.internal_date,
                    source: Source::ImapAppend,
                };
                (append, m.raw)
            })
            .collect();
        let stored = self.ctx.ingest.append_many(items).await?;
        if self
            .selected
            .as_ref()
            .is_some_and(|s| s.mailbox.id == mailbox.id)
        {
            self.sync(true).await?;
        }
        let code = match stored.as_slice() {
            [one] => Code::AppendUid {
                uid_validity: mailbox.uid_validity,
                uid: one.uid.0,
            },
            many => append_uids(mailbox.uid_validity, many.iter().map(|m| m.uid)),
        };
        Ok(Done::with_code(code, "APPEND completed"))
    }
}

/// One message of an APPEND, ready for the ingest pipeline.
pub(crate) struct NewAppend {
    pub(crate) flags: Flags,
    /// INTERNALDATE, unix seconds.
    pub(crate) internal_date: i64,
    pub(crate) raw: Vec<u8>,
}

/// The INTERNALDATE of an APPEND: its date, or now.
pub(crate) fn date_of(date: Option<&DateTime>) -> i64 {
    date.map_or_else(|| time::OffsetDateTime::now_utc().unix_timestamp(), unix_of)
}

/// `APPENDUID validity uid-set` of several messages (RFC 4315 §3, which
/// imap-types models for one UID only).
fn append_uids(validity: NonZeroU32, uids: impl Iterator<Item = Uid>) -> Code<'static> {
    let set: Vec<String> = super::condstore::runs(uids.map(Uid::get))
        .into_iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}:{b}")
            }
        })
        .collect();
    let text = format!("APPENDUID {validity} {}", set.join(","));
    Code::Other(CodeOther::unvalidated(text.into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_runs_in_the_given_order() {
        let uids = [1, 2, 3, 7, 9, 10, 4].map(|n| Uid::new(n).unwrap_or(Uid::FIRST));
        let set = uid_set(uids.into_iter()).map(|s| s.0.into_iter().collect::<Vec<_>>());
        let n = |v| std::num::NonZeroU32::new(v).unwrap_or(std::num::NonZeroU32::MIN);
        assert_eq!(
            set,
            Some(vec![
                UidElement::Range(n(1), n(3)),
                UidElement::Single(n(7)),
                UidElement::Range(n(9), n(10)),
                UidElement::Single(n(4)),
            ])
        );
        assert_eq!(uid_set(std::iter::empty()), None);
    }
}
