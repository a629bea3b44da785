//! FETCH and UID FETCH (RFC 9051 §6.4.5, §7.5.2).
//!
//! Messages are fetched in batches: one blocking call loads a batch's
//! blobs and builds its responses (parsing, when ENVELOPE, BODYSTRUCTURE
//! or a section is asked for, under a slot of the shared CPU pool: never
//! on the reactor), they are written, then the next batch is loaded, so `FETCH 1:* BODY.PEEK[]` over a large mailbox streams
//! instead of holding the mailbox in memory. `BODY[...]` and `RFC822` /
//! `RFC822.TEXT` set `\Seen` unless PEEK or EXAMINE (§6.4.5); the new
//! flags are then sent with the data. `BINARY[...]` (RFC 3516) likewise;
//! its items are written by [`super::binary`], and a FETCH line holding
//! one goes out as raw bytes.

use std::collections::BTreeSet;

use imap_next::imap_types::command::FetchModifier;
use imap_next::imap_types::core::{Atom, NString, Vec1};
use imap_next::imap_types::fetch::{
    MacroOrMessageDataItemNames, MessageDataItem, MessageDataItemName,
};
use imap_next::imap_types::flag::{Flag, FlagFetch};
use imap_next::imap_types::response::Data;
use imap_next::imap_types::sequence::SequenceSet;
use imap_next::imap_types::IntoStatic;

use super::binary::{self, BinaryError};
use super::condstore::{absent, modseq_item, vanished as vanished_data};
use super::dates::internal_date;
use super::error::ImapError;
use super::mime;
use super::selected::{seen, Selected};
use super::session::{Done, Session};
use super::snapshot::Known;
use crate::reading::Unlocked;
use crate::store::{AccountId, Flags, MailError, MailStore, MailboxId, Message, Uid};

/// One FETCH batch's responses (up to a message whose BINARY item
/// failed, and that failure), how many of its messages were expunged
/// meanwhile, the snapshot entries of those whose FLAGS it sent, and the
/// keywords those FLAGS show.
type Batch = (
    (Vec<Out>, Option<BinaryError>),
    usize,
    Vec<(usize, Known)>,
    BTreeSet<String>,
);

/// One FETCH response: encoded by imap-codec, or (with BINARY items) as
/// bytes.
enum Out {
    Data(Data<'static>),
    Raw(Vec<u8>),
}

/// Messages per batch (one store round trip, one write).
const FETCH_BATCH: usize = 64;

/// The FLAGS of stored `flags` (`\Recent` is the session's, see
/// [`flag_items`]).
pub(crate) fn wire_flags(flags: &Flags) -> Vec<Flag<'static>> {
    let mut out = Vec::new();
    let system = [
        (flags.seen, Flag::Seen),
        (flags.answered, Flag::Answered),
        (flags.flagged, Flag::Flagged),
        (flags.deleted, Flag::Deleted),
        (flags.draft, Flag::Draft),
    ];
    out.extend(system.into_iter().filter(|(on, _)| *on).map(|(_, f)| f));
    out.extend(
        flags
            .keywords
            .iter()
            .filter_map(|k| Atom::try_from(k.clone()).ok())
            .map(Flag::Keyword),
    );
    out
}

/// `FLAGS (...) UID n [MODSEQ (m)]` of a message: the unsolicited flag
/// update; `recent`: the message is `\Recent` in this session (RFC 3501
/// §2.3.2); `modseq` once the session has CONDSTORE on (RFC 7162 §3.1.4).
pub(crate) fn flag_items(
    flags: &Flags,
    uid: Uid,
    recent: bool,
    modseq: Option<u64>,
) -> Vec<MessageDataItem<'static>> {
    let mut fetch: Vec<FlagFetch<'static>> =
        wire_flags(flags).into_iter().map(FlagFetch::Flag).collect();
    if recent {
        fetch.push(FlagFetch::Recent);
    }
    let mut items = vec![MessageDataItem::Flags(fetch), MessageDataItem::Uid(uid.0)];
    items.extend(modseq.map(modseq_item));
    items
}

/// A message of the snapshot as read from the store for one command.
pub(crate) struct Loaded {
    /// Its index in the snapshot.
    pub(crate) index: usize,
    /// Its record.
    pub(crate) msg: Message,
    /// Its bytes, when asked for.
    pub(crate) raw: Option<Vec<u8>>,
    /// `\Recent` in this session.
    pub(crate) recent: bool,
}

/// `bytes` as a literal, a NUL sent as 0x80 (`mime::nul_free_literal`);
/// BINARY gives the exact bytes.
fn literal(bytes: Vec<u8>) -> NString<'static> {
    NString(Some(mime::nul_free_literal(bytes)))
}

fn needs_blob(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::Body
            | MessageDataItemName::BodyExt { .. }
            | MessageDataItemName::BodyStructure
            | MessageDataItemName::Envelope
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Header
            | MessageDataItemName::Rfc822Text
            | MessageDataItemName::Binary { .. }
            | MessageDataItemName::BinarySize { .. }
    )
}

fn sets_seen(name: &MessageDataItemName<'_>) -> bool {
    matches!(
        name,
        MessageDataItemName::BodyExt { peek: false, .. }
            | MessageDataItemName::Binary { peek: false, .. }
            | MessageDataItemName::Rfc822
            | MessageDataItemName::Rfc822Text
    )
}

/// How much of the message an item needs parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Parse {
    /// Flags, UID, sizes, dates, the whole `BODY[]`: no parsing.
    Nothing,
    /// ENVELOPE, the header, the root text: the header alone.
    Header,
    /// BODY, BODYSTRUCTURE and numbered sections: the MIME parts.
    Parts,
}

fn needs_parse(name: &MessageDataItemName<'_>) -> Parse {
    match name {
        MessageDataItemName::Body | MessageDataItemName::BodyStructure => Parse::Parts,
        MessageDataItemName::BodyExt {
            section: Some(s), ..
        } if mime::has_path(s) => Parse::Parts,
        MessageDataItemName::Binary { section, .. }
        | MessageDataItemName::BinarySize { section } => {
            if section.is_empty() {
                Parse::Header
            } else {
                Parse::Parts
            }
        }
        MessageDataItemName::Envelope
        | MessageDataItemName::Rfc822Header
        | MessageDataItemName::Rfc822Text
        | MessageDataItemName::BodyExt {
            section: Some(_), ..
        } => Parse::Header,
        _ => Parse::Nothing,
    }
}

/// The item names asked for, with UID first for UID FETCH.
fn item_names(
    items: MacroOrMessageDataItemNames<'static>,
    uid: bool,
) -> Result<Vec<MessageDataItemName<'static>>, ImapError> {
    let mut names: Vec<MessageDataItemName<'static>> = match items {
        MacroOrMessageDataItemNames::Macro(m) => m
            .expand()
            .into_iter()
            .map(IntoStatic::into_static)
            .collect(),
        MacroOrMessageDataItemNames::MessageDataItemNames(v) => v,
    };
    if uid && !names.contains(&MessageDataItemName::Uid) {
        names.insert(0, MessageDataItemName::Uid);
    }
    Ok(names)
}

impl Session {
    /// FETCH / UID FETCH, with CONDSTORE's `CHANGEDSINCE` and QRESYNC's
    /// `VANISHED` modifiers (RFC 7162 §3.1.4.1, §3.2.6).
    pub(crate) async fn fetch(
        &mut self,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: &[FetchModifier],
    ) -> Result<Done, ImapError> {
        let mut names = item_names(items, uid)?;
        let changed_since = modifiers.iter().find_map(|m| match m {
            FetchModifier::ChangedSince(n) => Some(n.get()),
            FetchModifier::Vanished => None,
        });
        let vanished = modifiers.contains(&FetchModifier::Vanished);
        if vanished && !(uid && changed_since.is_some() && self.resync.qresync()) {
            return Err(ImapError::syntax(
                "VANISHED needs UID FETCH with CHANGEDSINCE after ENABLE QRESYNC (RFC 7162, section 3.2.6)",
            ));
        }
        if changed_since.is_some() || names.contains(&MessageDataItemName::ModSeq) {
            self.enable_condstore();
        }
        if self.resync.condstore()
            && changed_since.is_some()
            && !names.contains(&MessageDataItemName::ModSeq)
        {
            names.push(MessageDataItemName::ModSeq);
        }
        let (indices, read_only) = match &self.selected {
            Some(sel) => (sel.resolve(set, uid), sel.read_only),
            None => return Ok(Done::ok("FETCH completed")),
        };
        if let (true, Some(sel)) = (vanished, self.selected.as_ref()) {
            let gone = absent(&sel.messages, sel.mailbox.uid_next.0, Some(set));
            if let Some(v) = vanished_data(&gone, true) {
                self.conn.data(v);
            }
        }
        // why the size too: with server-side reading, RFC822.SIZE is the
        // size of the message as served, known once it is decrypted.
        let load = names.iter().any(needs_blob)
            || (self.reading.is_some() && names.contains(&MessageDataItemName::Rfc822Size));
        let parse = names
            .iter()
            .map(needs_parse)
            .max()
            .unwrap_or(Parse::Nothing);
        let mark = !read_only && names.iter().any(sets_seen);
        let names = std::sync::Arc::new(names);
        let mut missing = 0;
        for chunk in indices.chunks(FETCH_BATCH) {
            let marked = if mark {
                self.mark_seen(chunk).await?
            } else {
                Vec::new()
            };
            let modseq = self.resync.condstore();
            let ((out, failed), gone, fresh, keywords) = self
                .fetch_batch(
                    chunk,
                    (load, parse, modseq, changed_since),
                    std::sync::Arc::clone(&names),
                    marked,
                )
                .await?;
            missing += gone;
            // The client now knows these flags: the next sync must not
            // tell them again.
            if let Some(sel) = self.selected.as_mut() {
                for (i, k) in fresh {
                    if let Some(m) = sel.messages.get_mut(i) {
                        let recent = m.flags.recent();
                        *m = k;
                        m.flags = m.flags.with_recent(recent);
                    }
                }
            }
            // RFC 9051 §7.3.5: a keyword another session made since this
            // one's FLAGS is announced before a FETCH shows it.
            self.announce_keywords(&keywords);
            for out in out {
                match out {
                    Out::Data(data) => self.conn.data(data),
                    Out::Raw(bytes) => self.conn.raw(&bytes),
                }
            }
            if let Some(e) = failed {
                return Err(e.into());
            }
            if self.conn.flush().await.is_err() {
                break;
            }
        }
        self.sync(uid).await?;
        if missing > 0 {
            return Err(ImapError::ExpungedMeanwhile { count: missing });
        }
        Ok(Done::ok("FETCH completed"))
    }

    /// The FETCH responses of the messages at `chunk`, loaded and encoded
    /// on the blocking pool, and how many of them were expunged meanwhile
    /// (no response: an empty body would be a lie); a batch that parses
    /// messages (ENVELOPE, BODYSTRUCTURE, sections) holds a slot of the
    /// shared CPU pool too.
    async fn fetch_batch(
        &self,
        chunk: &[usize],
        (blobs, parse, modseq, changed_since): (bool, Parse, bool, Option<u64>),
        names: std::sync::Arc<Vec<MessageDataItemName<'static>>>,
        marked: Vec<usize>,
    ) -> Result<Batch, ImapError> {
        let Some((id, mbox, wanted)) = self.wanted(chunk)? else {
            return Ok(((Vec::new(), None), 0, Vec::new(), BTreeSet::new()));
        };
        let keys = self.reading_keys();
        let decrypts = blobs && keys.is_some();
        let work = move |s: &MailStore| {
            let mut loaded = load(s, id, mbox, &wanted, blobs, keys.as_deref())?;
            let missing = wanted.len().saturating_sub(loaded.len());
            // why the stored MODSEQ, not the snapshot's: another session's
            // change since this session last synced must be found.
            if let Some(since) = changed_since {
                loaded.retain(|l| l.msg.modseq > since);
            }
            let flags = names.contains(&MessageDataItemName::Flags);
            let fresh = if flags {
                loaded
                    .iter()
                    .map(|l| (l.index, Known::of(&l.msg)))
                    .collect()
            } else {
                Vec::new()
            };
            let keywords = loaded
                .iter()
                .filter(|l| flags || marked.contains(&l.index))
                .flat_map(|l| l.msg.flags.keywords.iter().cloned())
                .collect();
            let out = responses(loaded, &names, &marked, modseq);
            Ok((out, missing, fresh, keywords))
        };
        if parse == Parse::Nothing && !decrypts {
            self.with_store(work).await
        } else {
            self.with_store_cpu(work).await
        }
    }

    /// Sets `\Seen` on the unseen messages of `chunk`; returns those changed.
    async fn mark_seen(&mut self, chunk: &[usize]) -> Result<Vec<usize>, ImapError> {
        let unseen: Vec<usize> = match &self.selected {
            Some(sel) => chunk
                .iter()
                .copied()
                .filter(|&i| sel.messages.get(i).is_some_and(|m| !m.flags.seen()))
                .collect(),
            None => return Ok(Vec::new()),
        };
        if unseen.is_empty() {
            return Ok(unseen);
        }
        self.change_flags(&unseen, seen()).await
    }

    /// The records of the messages at `chunk` (ascending indices) and,
    /// with `blobs`, their bytes, in one store call (FETCH, STORE, SEARCH).
    /// A message expunged meanwhile by another session is left out (its
    /// record, or with `blobs` its bytes, are gone): the caller answers
    /// for it (RFC 3501 §7.4.1).
    pub(crate) async fn load_batch(
        &self,
        chunk: &[usize],
        blobs: bool,
    ) -> Result<Vec<Loaded>, ImapError> {
        let Some((id, mbox, wanted)) = self.wanted(chunk)? else {
            return Ok(Vec::new());
        };
        let keys = if blobs { self.reading_keys() } else { None };
        self.with_store(move |s| load(s, id, mbox, &wanted, blobs, keys.as_deref()))
            .await
    }

    /// The account, the selected mailbox and the `(UID, index)` of each
    /// message at `chunk`, by UID; `None` with no mailbox selected.
    pub(crate) fn wanted(&self, chunk: &[usize]) -> Result<Option<Wanted>, ImapError> {
        let id = self.account()?.id;
        let Some(sel) = &self.selected else {
            return Ok(None);
        };
        let mut wanted: Vec<(Uid, usize, bool)> = chunk
            .iter()
            .filter_map(|&i| sel.messages.get(i).map(|m| (m.uid, i, m.flags.recent())))
            .collect();
        wanted.sort_unstable();
        Ok(Some((id, sel.mailbox.id, wanted)))
    }
}

/// What [`Session::wanted`] gives: account, mailbox, `(UID, index,
/// \Recent)` by UID.
pub(crate) type Wanted = (AccountId, MailboxId, Vec<(Uid, usize, bool)>);

/// Blocking: the records (and with `blobs` the bytes) of `wanted`; with
/// server-side reading `keys`, an encrypted message the keys open as
/// served: decrypted, and its record saying so.
pub(crate) fn load(
    s: &MailStore,
    id: AccountId,
    mbox: MailboxId,
    wanted: &[(Uid, usize, bool)],
    blobs: bool,
    keys: Option<&Unlocked>,
) -> Result<Vec<Loaded>, MailError> {
    let uids: Vec<Uid> = wanted.iter().map(|w| w.0).collect();
    let mut out = Vec::with_capacity(uids.len());
    for mut msg in s.messages_by_uid(id, mbox, &uids)? {
        let Ok(at) = wanted.binary_search_by_key(&msg.uid, |w| w.0) else {
            continue;
        };
        let (index, recent) = wanted.get(at).map_or((0, false), |w| (w.1, w.2));
        let raw = if blobs {
            // why skip: the record was read before another session's
            // expunge removed the bytes; serving "" would be a lie.
            let Some(raw) = s.get_blob(id, msg.blob)? else {
                continue;
            };
            Some(crate::reading::present(keys, &mut msg, raw))
        } else {
            None
        };
        out.push(Loaded {
            index,
            msg,
            raw,
            recent,
        });
    }
    Ok(out)
}

/// Blocking: the FETCH responses of `loaded`; the messages at `marked`
/// had `\Seen` set by this command and show their new flags (and with
/// `modseq`, CONDSTORE on, their new MODSEQ). A BINARY item that cannot
/// be answered ends the batch: the responses before it and the reason.
fn responses(
    loaded: Vec<Loaded>,
    names: &[MessageDataItemName<'static>],
    marked: &[usize],
    modseq: bool,
) -> (Vec<Out>, Option<BinaryError>) {
    let mut out = Vec::with_capacity(loaded.len());
    for loaded in loaded {
        let m = &loaded.msg;
        let (mut items, wire) = match message_items(m, loaded.recent, loaded.raw.as_deref(), names)
        {
            Ok(both) => both,
            Err(e) => return (out, Some(e)),
        };
        if marked.contains(&loaded.index) && !names.contains(&MessageDataItemName::Flags) {
            items.extend(
                flag_items(&m.flags, m.uid, loaded.recent, None)
                    .into_iter()
                    .take(1),
            );
            if modseq && !names.contains(&MessageDataItemName::ModSeq) {
                items.push(modseq_item(m.modseq));
            }
        }
        let seq = Selected::seq(loaded.index);
        if !wire.is_empty() {
            out.push(Out::Raw(binary::fetch_line(seq, items, &wire)));
        } else if let Ok(items) = Vec1::try_from(items) {
            out.push(Out::Data(Data::Fetch { seq, items }));
        }
    }
    (out, None)
}

/// The FETCH items of one message, and its BINARY items as wire bytes.
fn message_items(
    m: &Message,
    recent: bool,
    raw: Option<&[u8]>,
    names: &[MessageDataItemName<'static>],
) -> Result<(Vec<MessageDataItem<'static>>, Vec<Vec<u8>>), BinaryError> {
    let raw_bytes = raw.unwrap_or_default();
    let parsed = match names.iter().map(needs_parse).max() {
        Some(Parse::Parts) => mime::parse(raw_bytes, true),
        Some(Parse::Header) => mime::parse(raw_bytes, false),
        Some(Parse::Nothing) | None => None,
    };
    let mut items = Vec::with_capacity(names.len());
    let mut wire = Vec::new();
    for name in names {
        let item = match name {
            MessageDataItemName::Flags => {
                flag_items(&m.flags, m.uid, recent, None).into_iter().next()
            }
            MessageDataItemName::ModSeq => Some(modseq_item(m.modseq)),
            MessageDataItemName::Uid => Some(MessageDataItem::Uid(m.uid.0)),
            MessageDataItemName::InternalDate => {
                internal_date(m.internal_date).map(MessageDataItem::InternalDate)
            }
            MessageDataItemName::Rfc822Size => Some(MessageDataItem::Rfc822Size(
                u32::try_from(m.size).unwrap_or(u32::MAX),
            )),
            MessageDataItemName::Envelope => parsed
                .as_ref()
                .map(|p| MessageDataItem::Envelope(mime::envelope(p))),
            MessageDataItemName::BodyStructure => parsed
                .as_ref()
                .map(|p| MessageDataItem::BodyStructure(mime::body_structure(p, true))),
            MessageDataItemName::Body => parsed
                .as_ref()
                .map(|p| MessageDataItem::Body(mime::body_structure(p, false))),
            MessageDataItemName::Rfc822 => {
                Some(MessageDataItem::Rfc822(literal(raw_bytes.to_vec())))
            }
            MessageDataItemName::Rfc822Header => {
                Some(MessageDataItem::Rfc822Header(literal(section_bytes(
                    parsed.as_ref(),
                    Some(&imap_next::imap_types::fetch::Section::Header(None)),
                ))))
            }
            MessageDataItemName::Rfc822Text => {
                Some(MessageDataItem::Rfc822Text(literal(section_bytes(
                    parsed.as_ref(),
                    Some(&imap_next::imap_types::fetch::Section::Text(None)),
                ))))
            }
            MessageDataItemName::BodyExt {
                section, partial, ..
            } => Some(body_ext(
                raw_bytes,
                parsed.as_ref(),
                section.as_ref(),
                *partial,
            )),
            MessageDataItemName::BinarySize { section } => {
                Some(binary::size_item(parsed.as_ref(), raw_bytes, section)?)
            }
            MessageDataItemName::Binary {
                section, partial, ..
            } => {
                wire.push(binary::fetch_item(
                    parsed.as_ref(),
                    raw_bytes,
                    section,
                    *partial,
                )?);
                None
            }
        };
        items.extend(item);
    }
    Ok((items, wire))
}

/// `BODY[section]<partial>`.
fn body_ext(
    raw: &[u8],
    parsed: Option<&mail_parser::Message<'_>>,
    section: Option<&imap_next::imap_types::fetch::Section<'static>>,
    partial: Option<(u32, std::num::NonZeroU32)>,
) -> MessageDataItem<'static> {
    let data = match section {
        None => raw.to_vec(),
        Some(s) => section_bytes(parsed, Some(s)),
    };
    let (origin, data) = match partial {
        Some((start, len)) => (Some(start), cut(data, start, len.get())),
        None => (None, data),
    };
    MessageDataItem::BodyExt {
        section: section.cloned(),
        origin,
        data: literal(data),
    }
}

fn section_bytes(
    parsed: Option<&mail_parser::Message<'_>>,
    section: Option<&imap_next::imap_types::fetch::Section<'_>>,
) -> Vec<u8> {
    parsed
        .and_then(|p| mime::section(p, section))
        .unwrap_or_default()
}

/// `<start.len>` of RFC 9051 §6.4.5: a start past the end gives "".
fn cut(data: Vec<u8>, start: u32, len: u32) -> Vec<u8> {
    let start = start as usize;
    let end = start.saturating_add(len as usize).min(data.len());
    data.get(start..end).map(<[u8]>::to_vec).unwrap_or_default()
}
