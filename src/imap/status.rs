//! STATUS (RFC 9051 §6.3.11) with DELETED (RFC 9051) and DELETED-STORAGE
//! (RFC 9208 §4.2.1, required with the QUOTA STORAGE resource).
//!
//! Counts that need every message (UNSEEN, DELETED, DELETED-STORAGE) are
//! taken while walking the mailbox a page at a time, never holding it.

use std::borrow::Cow;

use imap_next::imap_types::mailbox::Mailbox as WireMailbox;
use imap_next::imap_types::response::Data;
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};

use super::error::ImapError;
use super::mailboxes::{name_of, wire_name};
use super::session::{Done, Session};

impl Session {
    /// STATUS.
    pub(crate) async fn status(
        &mut self,
        mailbox: &WireMailbox<'_>,
        items: &[StatusDataItemName],
    ) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let name = name_of(mailbox)?;
        let need_messages = items.iter().any(|i| {
            matches!(
                i,
                StatusDataItemName::Unseen
                    | StatusDataItemName::Deleted
                    | StatusDataItemName::DeletedStorage
                    | StatusDataItemName::Recent
            )
        });
        let claims = std::sync::Arc::clone(&self.ctx.config.recent);
        let (mbox, counts) = self
            .with_store(move |s| {
                let mbox = s.mailbox_by_name(id, &name)?;
                // RFC 3501 §6.3.10: RECENT counts the messages no session
                // has claimed yet; STATUS claims none.
                let mark = claims.mark((id, mbox.id, mbox.uid_validity));
                let mut counts = Counts {
                    recent_above: mark,
                    ..Counts::default()
                };
                if need_messages {
                    s.for_each_message(id, mbox.id, |m| {
                        counts.add(&m);
                        Ok(())
                    })?;
                }
                Ok((mbox, counts))
            })
            .await?;
        let mut out = Vec::new();
        for item in items {
            out.push(match item {
                StatusDataItemName::Messages => StatusDataItem::Messages(mbox.exists),
                StatusDataItemName::Recent => StatusDataItem::Recent(counts.recent),
                StatusDataItemName::UidNext => StatusDataItem::UidNext(mbox.uid_next.0),
                StatusDataItemName::UidValidity => StatusDataItem::UidValidity(mbox.uid_validity),
                StatusDataItemName::Unseen => StatusDataItem::Unseen(counts.unseen),
                StatusDataItemName::Deleted => StatusDataItem::Deleted(counts.deleted),
                StatusDataItemName::DeletedStorage => {
                    StatusDataItem::DeletedStorage(counts.deleted_storage)
                }
                StatusDataItemName::HighestModSeq => StatusDataItem::HighestModSeq(
                    super::condstore::wire_modseq(mbox.highest_modseq).get(),
                ),
                #[allow(unreachable_patterns)]
                _ => continue,
            });
        }
        self.conn.data(Data::Status {
            mailbox: wire_name(&mbox.name)?,
            items: Cow::Owned(out),
        });
        Ok(Done::ok("STATUS completed"))
    }
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
    }
}
