//! STATUS (RFC 9051 §6.3.11) with DELETED (RFC 9051), DELETED-STORAGE
//! (RFC 9208 §4.2.1, required with the QUOTA STORAGE resource) and SIZE
//! (RFC 8438, STATUS=SIZE); the same answer follows each mailbox of a
//! `LIST ... RETURN (STATUS (...))` (RFC 5819, `list`).
//!
//! Counts that need every message (UNSEEN, DELETED, DELETED-STORAGE, SIZE)
//! are taken while walking the mailbox a page at a time, never holding it.
//!
//! why SIZE is summed rather than kept as a counter in the mailbox
//! record: the walk is already there for UNSEEN, a counter would need a
//! new mailbox record version kept right by every APPEND, COPY, MOVE,
//! EXPUNGE and JMAP change, and summing 10,000 message records measured
//! cheap (see the commit that added it).

use std::borrow::Cow;
use std::sync::Arc;

use imap_next::imap_types::mailbox::Mailbox as WireMailbox;
use imap_next::imap_types::response::Data;
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::error::ImapError;
use super::mailboxes::{name_of, wire_name};
use super::recent::RecentClaims;
use super::session::{Done, Session};
use crate::store::{AccountId, MailError, MailStore, Mailbox};

impl Session {
    /// STATUS.
    pub(crate) async fn status(
        &mut self,
        mailbox: &WireMailbox<'_>,
        items: &[StatusDataItemName],
    ) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let name = name_of(mailbox)?;
        let claims = Arc::clone(&self.ctx.config.recent);
        let wanted = items.to_vec();
        let (name, items) = self
            .with_store(move |s| {
                let mbox = s.mailbox_by_name(id, &name)?;
                let items = status_items(s, id, &mbox, &wanted, &claims)?;
                Ok((mbox.name, items))
            })
            .await?;
        self.conn
            .data(status_data(&name, items, self.enabled.utf8_names())?);
        Ok(Done::ok("STATUS completed"))
    }
}

/// The BAD text for a STATUS command imap-codec refused: most often an
/// item this server does not know, so name the ones it does.
pub(crate) fn syntax_hint(bytes: &[u8]) -> Option<&'static str> {
    let mut words = bytes.splitn(3, |&b| b == b' ');
    let _tag = words.next();
    let command = words.next()?;
    command.eq_ignore_ascii_case(b"STATUS").then_some(
        "STATUS syntax: STATUS mailbox (items), items among MESSAGES RECENT UIDNEXT \
         UIDVALIDITY UNSEEN DELETED DELETED-STORAGE SIZE HIGHESTMODSEQ (RFC 9051 section 6.3.11)",
    )
}

/// `* STATUS name (items)`, the name in UTF-8 when `utf8`.
pub(crate) fn status_data(
    name: &str,
    items: Vec<StatusDataItem>,
    utf8: bool,
) -> Result<Data<'static>, ImapError> {
    Ok(Data::Status {
        mailbox: wire_name(name, utf8)?,
        items: Cow::Owned(items),
    })
}

/// The STATUS items `wanted` of `mbox`, in the order asked; runs on the
/// blocking pool. Walks the messages only when an item needs them.
pub(crate) fn status_items(
    s: &MailStore,
    id: AccountId,
    mbox: &Mailbox,
    wanted: &[StatusDataItemName],
    claims: &RecentClaims,
) -> Result<Vec<StatusDataItem>, MailError> {
    let need_messages = wanted.iter().any(|i| {
        matches!(
            i,
            StatusDataItemName::Unseen
                | StatusDataItemName::Deleted
                | StatusDataItemName::DeletedStorage
                | StatusDataItemName::Recent
                | StatusDataItemName::Size
        )
    });
    // RFC 3501 §6.3.10: RECENT counts the messages no session has
    // claimed yet; STATUS claims none.
    let mut counts = Counts {
        recent_above: claims.mark((id, mbox.id, mbox.uid_validity)),
        ..Counts::default()
    };
    if need_messages {
        s.for_each_message(id, mbox.id, |m| {
            counts.add(&m);
            Ok(())
        })?;
    }
    Ok(wanted
        .iter()
        .filter_map(|item| {
            Some(match item {
                StatusDataItemName::Messages => StatusDataItem::Messages(mbox.exists),
                StatusDataItemName::Recent => StatusDataItem::Recent(counts.recent),
                StatusDataItemName::UidNext => StatusDataItem::UidNext(mbox.uid_next.0),
                StatusDataItemName::UidValidity => StatusDataItem::UidValidity(mbox.uid_validity),
                StatusDataItemName::Unseen => StatusDataItem::Unseen(counts.unseen),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(counts.deleted),
                StatusDataItemName::DeletedStorage => {
                    StatusDataItem::DeletedStorage(counts.deleted_storage)
                }
                StatusDataItemName::Size => StatusDataItem::Size(counts.size),
                StatusDataItemName::HighestModSeq => StatusDataItem::HighestModSeq(
                    super::condstore::wire_modseq(mbox.highest_modseq).get(),
                ),
                #[allow(unreachable_patterns)]
                _ => return None,
            })
        })
        .collect())
}

/// What STATUS counts over a mailbox's messages (walked a page at a
/// time, never held).
#[derive(Debug, Default)]
struct Counts {
    /// The claim mark of `\Recent`: UIDs above it count as recent.
    recent_above: u32,
    recent: u32,
    unseen: u32,
    deleted: u32,
    /// Octets of the `\Deleted` messages: RFC 9208 §4.2.1 DELETED-STORAGE,
    /// which a server with the STORAGE quota resource must support.
    deleted_storage: u64,
    /// Octets of all messages as stored (RFC 8438 SIZE): what FETCH
    /// RFC822.SIZE gives without server-side reading, so for an encrypted
    /// message the S/MIME size, never less than the decrypted one that
    /// server-side reading serves (RFC 8438 §3: at least the sum).
    size: u64,
}

impl Counts {
    fn add(&mut self, m: &crate::store::Message) {
        if m.uid.get() > self.recent_above {
            self.recent = self.recent.saturating_add(1);
        }
        if !m.flags.seen {
            self.unseen = self.unseen.saturating_add(1);
        }
        if m.flags.deleted {
            self.deleted = self.deleted.saturating_add(1);
            self.deleted_storage = self.deleted_storage.saturating_add(m.size);
        }
        self.size = self.size.saturating_add(m.size);
    }
}
