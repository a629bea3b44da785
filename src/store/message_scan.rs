//! Reading a mailbox's message records in bounded pieces.
//!
//! A mailbox can hold millions of messages; IMAP SELECT, STATUS, SEARCH
//! and COPY must not hold a decoded record of each at once (issue 14 item
//! 7: each SELECT of a 2-million-message mailbox used to add ~700 MiB).
//! [`MailStore::for_each_message`] walks a mailbox one page at a time and
//! [`MailStore::messages_by_uid`] reads the records of one batch of UIDs.

use super::error::MailError;
use super::keys::{self, Key};
use super::mail::MailStore;
use super::message_record::Message;
use super::records::{AccountId, MailboxId, Uid};
use super::{Cf, Order};

/// Records decoded per page while walking a whole mailbox.
const PAGE: usize = 1024;

impl MailStore {
    /// Calls `f` with every message of a mailbox in UID order, reading a
    /// page of records at a time, so that walking a mailbox of any size
    /// holds one page in memory. Messages appended meanwhile may or may
    /// not be seen.
    pub fn for_each_message(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        mut f: impl FnMut(Message) -> Result<(), MailError>,
    ) -> Result<(), MailError> {
        let mut after = None;
        loop {
            let page = self.list_messages(id, mailbox, after, PAGE)?;
            let full = page.len() == PAGE;
            for m in page {
                after = Some(m.uid);
                f(m)?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The records of those of `uids` that exist, in UID order. Dense UIDs
    /// (the usual `1:*` or a run of sequence numbers) are read with one
    /// range scan, sparse ones one by one. Meant for batches of at most a
    /// few thousand UIDs.
    pub fn messages_by_uid(
        &self,
        id: AccountId,
        mailbox: MailboxId,
        uids: &[Uid],
    ) -> Result<Vec<Message>, MailError> {
        let mut wanted = uids.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let (Some(&first), Some(&last)) = (wanted.first(), wanted.last()) else {
            return Ok(Vec::new());
        };
        let span = usize::try_from(last.get() - first.get()).unwrap_or(usize::MAX);
        // why 2x: a scan reads at most `span + 1` records; past twice the
        // number wanted, point reads of the wanted ones cost less.
        if span < wanted.len().saturating_mul(2) {
            let mut range = keys::messages_range(id, mailbox, Uid::new(first.get() - 1));
            let mut end = Key::Message(id, mailbox, last).encode();
            end.push(0);
            range.end = Some(end);
            let rows = self.scan_records::<Message>(
                Cf::Messages,
                &range,
                Order::Forward,
                span.saturating_add(1),
            )?;
            return Ok(rows
                .into_iter()
                .map(|(_, m)| m)
                .filter(|m| wanted.binary_search(&m.uid).is_ok())
                .collect());
        }
        let mut out = Vec::with_capacity(wanted.len());
        for uid in wanted {
            out.extend(self.load::<Message>(&Key::Message(id, mailbox, uid))?);
        }
        Ok(out)
    }
}
