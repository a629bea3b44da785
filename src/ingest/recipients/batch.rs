//! The accounts of one transaction together (an LMTP DATA with many
//! RCPTs): their copies are sealed in parallel, each a bounded blocking
//! job holding a CPU slot as a single copy is (`budget.rs`), and then
//! written in one batch — the copies and their audit lines in one synced
//! write (group commit) — before any recipient is answered. A transaction
//! of a hundred recipients thus costs one WAL and one segment sync instead
//! of two hundred.
//!
//! Each recipient still gets its own outcome: a copy that cannot be
//! sealed (opted in without a usable certificate) is refused alone, and
//! when the batch is refused as a whole for one account's fault (quota),
//! the copies are written one by one so that only that account's fails.

use std::sync::Arc;

use futures_util::future::join_all;

use super::super::copy::{now, seal_lmtp_copy, LmtpCopy, STORED_ENCRYPTED};
use super::super::{DeliverError, Delivered, Envelope, Ingest};
use crate::store::{AccountId, AuditKind, DeliveryView, MailStore};

/// One recipient's outcome.
type Outcome = Result<Delivered, DeliverError>;

/// Bytes of sealed copies held for one write at most: a transaction of
/// 100 recipients of a 64 KiB message is one write; 1,000 recipients of a
/// 50 MiB message (the limits) are written a copy at a time instead of
/// holding 50 GB.
const BATCH_BYTES: usize = 64 << 20;

impl Ingest {
    /// Delivers `data` to each of `accounts` (distinct accounts, each with
    /// the RCPT that named it); one outcome per account, in order.
    pub(super) async fn deliver_to_accounts(
        &self,
        envelope: &Envelope,
        accounts: &[(AccountId, &str)],
        data: Arc<Vec<u8>>,
    ) -> Vec<Outcome> {
        let per_write = (BATCH_BYTES / data.len().max(1)).max(1);
        let mut outcomes = Vec::with_capacity(accounts.len());
        for group in accounts.chunks(per_write) {
            let views = self.views_of(group).await;
            // why one bounded job per copy, all at once: the CPU slots cap
            // how many run in parallel, and each copy keeps its own time
            // limit, so one slow hook refuses its own recipient only.
            let sealed: Vec<Result<LmtpCopy, DeliverError>> =
                join_all(group.iter().zip(views).map(|((id, rcpt), view)| {
                    self.seal_one(envelope, *id, rcpt, view, Arc::clone(&data))
                }))
                .await;
            outcomes.extend(self.write_group(group, sealed).await);
        }
        outcomes
    }

    /// The delivery views of `group`'s accounts, in one store read (one
    /// round trip on PostgreSQL instead of one per recipient). `None`
    /// for an account whose view could not be read: its copy reads it
    /// again itself, and reports the error as its own.
    async fn views_of(&self, group: &[(AccountId, &str)]) -> Vec<Option<Arc<DeliveryView>>> {
        let ids: Vec<AccountId> = group.iter().map(|(id, _)| *id).collect();
        let store = Arc::clone(&self.store);
        match tokio::task::spawn_blocking(move || store.delivery_views(&ids)).await {
            Ok(Ok(views)) => views.into_iter().map(Result::ok).collect(),
            _ => vec![None; group.len()],
        }
    }

    /// One account's copy, sealed in a bounded blocking job.
    async fn seal_one(
        &self,
        envelope: &Envelope,
        id: AccountId,
        rcpt: &str,
        view: Option<Arc<DeliveryView>>,
        data: Arc<Vec<u8>>,
    ) -> Result<LmtpCopy, DeliverError> {
        let store = Arc::clone(&self.store);
        let chain = self.chain.clone();
        let envelope = envelope.clone();
        let rcpt_owned = rcpt.to_string();
        self.bounded(rcpt, id, move |claim| {
            let ready = seal_lmtp_copy(
                &store,
                &chain,
                &envelope,
                &rcpt_owned,
                id,
                view,
                &data,
                claim,
            )?;
            // why here and not before the write: the copies are written
            // together later, so each is claimed before it leaves its job;
            // after that its waiter no longer gives up on it.
            claim.commit(&rcpt_owned)?;
            Ok(ready)
        })
        .await
    }

    /// Writes the sealed copies of `group` in one synced batch and
    /// announces them.
    async fn write_group(
        &self,
        group: &[(AccountId, &str)],
        sealed: Vec<Result<LmtpCopy, DeliverError>>,
    ) -> Vec<Outcome> {
        let rcpts: Vec<String> = group.iter().map(|(_, r)| (*r).to_string()).collect();
        let store = Arc::clone(&self.store);
        let written = tokio::task::spawn_blocking(move || write_all(&store, &rcpts, sealed)).await;
        let outcomes = match written {
            Ok(outcomes) => outcomes,
            Err(join) => {
                let e = Arc::new(DeliverError::Task(join));
                return group
                    .iter()
                    .map(|_| Err(DeliverError::Shared(Arc::clone(&e))))
                    .collect();
            }
        };
        outcomes
    }
}

/// Blocking: writes every sealed copy in one synced batch; the outcome
/// of each recipient, in order (`rcpts[i]` named `sealed[i]`).
fn write_all(
    store: &MailStore,
    rcpts: &[String],
    sealed: Vec<Result<LmtpCopy, DeliverError>>,
) -> Vec<Outcome> {
    let date = now();
    let ready: Vec<&LmtpCopy> = sealed.iter().filter_map(|r| r.as_ref().ok()).collect();
    if ready.is_empty() {
        return sealed.into_iter().map(|r| r.map(delivered)).collect();
    }
    let items = ready
        .iter()
        .map(|r| (r.id, r.mailbox, r.sealed.new_message(date)))
        .collect();
    let audits: Vec<(AccountId, AuditKind, &str)> = ready
        .iter()
        .filter(|r| r.audited)
        .map(|r| (r.id, AuditKind::DeliveryEncrypted, STORED_ENCRYPTED))
        .collect();
    match store.append_many_audited(items, &audits) {
        Ok(_) => sealed.into_iter().map(|r| r.map(delivered)).collect(),
        Err(e) if e.is_user_error() => {
            // why: the batch is all or nothing; one account over quota
            // must not hold back the others' copies.
            tracing::info!(error = %e, "batch refused; storing the copies one by one");
            sealed
                .into_iter()
                .zip(rcpts)
                .map(|(r, rcpt)| write_one(store, rcpt, r?, date))
                .collect()
        }
        Err(e) => {
            let shared = Arc::new(DeliverError::Store {
                rcpt: format!("{} recipients of this transaction", rcpts.len()),
                source: e,
            });
            sealed
                .into_iter()
                .map(|r| r.and(Err(DeliverError::Shared(Arc::clone(&shared)))))
                .collect()
        }
    }
}

/// One copy in a batch of its own (after the shared batch was refused).
fn write_one(store: &MailStore, rcpt: &str, ready: LmtpCopy, date: i64) -> Outcome {
    let audits: &[_] = if ready.audited {
        &[(ready.id, AuditKind::DeliveryEncrypted, STORED_ENCRYPTED)]
    } else {
        &[]
    };
    let item = (ready.id, ready.mailbox, ready.sealed.new_message(date));
    store
        .append_many_audited(vec![item], audits)
        .map_err(|e| DeliverError::store(rcpt, e))?;
    Ok(delivered(ready))
}

fn delivered(ready: LmtpCopy) -> Delivered {
    Delivered::Account {
        encrypted: ready.sealed.encrypted,
    }
}
