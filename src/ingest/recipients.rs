//! One copy per target in a transaction (RFC 2033 §4.2): the same address
//! given twice (in any letter case the store folds), or an account and
//! its alias, resolve to one target and get one stored copy; a list
//! address given twice fans out once. Each RCPT still gets its own
//! result, in order, which is the outcome of that one copy.

use std::sync::Arc;

use super::{DeliverError, Delivered, Envelope, Ingest};
use crate::store::{AccountId, Recipient as Addressee};

mod batch;

/// The outcome of one target's copy, shared by every RCPT that named it.
type Shared = Result<Delivered, Arc<DeliverError>>;

impl Ingest {
    /// Delivers `data` once per distinct target of `recipients`: the
    /// accounts together (`batch.rs`), then each list;
    /// returns one result per recipient, in order.
    #[expect(
        clippy::expect_used,
        reason = "uses[i] counts exactly the slots of target i, so only the last one takes its outcome"
    )]
    pub(crate) async fn deliver_each_once(
        &self,
        envelope: &Envelope,
        recipients: &[String],
        data: Arc<Vec<u8>>,
    ) -> Vec<Result<Delivered, DeliverError>> {
        // Each distinct target with the first RCPT that named it, in the
        // order first named; each RCPT with its target's index.
        let mut targets: Vec<(Addressee, &str)> = Vec::new();
        let mut slots: Vec<Result<usize, DeliverError>> = Vec::with_capacity(recipients.len());
        for (rcpt, resolved) in recipients.iter().zip(self.resolve_all(recipients).await) {
            // why a linear search: at most `max_recipients` (1000) a
            // transaction, and `Addressee` has no hash.
            slots.push(resolved.map(|t| {
                targets
                    .iter()
                    .position(|(x, _)| *x == t)
                    .unwrap_or_else(|| {
                        targets.push((t, rcpt));
                        targets.len() - 1
                    })
            }));
        }
        let mut outcomes: Vec<Option<Shared>> = (0..targets.len()).map(|_| None).collect();
        let accounts: Vec<(usize, (AccountId, &str))> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, (t, rcpt))| match t {
                Addressee::Account(id) => Some((i, (*id, *rcpt))),
                Addressee::List(_) => None,
            })
            .collect();
        // why together only from two: one account goes the single-copy
        // way, which is the same work without the chunking.
        if accounts.len() > 1 {
            let pairs: Vec<(AccountId, &str)> = accounts.iter().map(|(_, p)| *p).collect();
            let results = self
                .deliver_to_accounts(envelope, &pairs, Arc::clone(&data))
                .await;
            for ((i, _), result) in accounts.iter().zip(results) {
                if let Some(slot) = outcomes.get_mut(*i) {
                    *slot = Some(result.map_err(Arc::new));
                }
            }
        }
        for ((target, rcpt), outcome) in targets.iter().zip(outcomes.iter_mut()) {
            if outcome.is_some() {
                continue;
            }
            let result = self
                .deliver_to(envelope, rcpt, target, Arc::clone(&data))
                .await;
            *outcome = Some(result.map_err(Arc::new));
        }
        let mut uses = vec![0usize; targets.len()];
        for i in slots.iter().flatten() {
            uses[*i] += 1;
        }
        slots
            .into_iter()
            .map(|slot| {
                let i = slot?;
                uses[i] -= 1;
                // The last RCPT of a target takes its outcome; so a target
                // named once gets its error as it is, not wrapped.
                let outcome = if uses[i] == 0 {
                    outcomes[i].take()
                } else {
                    outcomes[i].clone()
                };
                match outcome.expect("taken only by the last of the slots `uses` counts") {
                    Ok(delivered) => Ok(delivered),
                    Err(e) => Err(Arc::try_unwrap(e).unwrap_or_else(DeliverError::Shared)),
                }
            })
            .collect()
    }

    /// What each of `recipients` delivers to, looked up in one blocking job
    /// (at RCPT time for the RCPTs of one pipelined batch, and again at
    /// DATA for the whole transaction).
    pub(super) async fn resolve_all(
        &self,
        recipients: &[String],
    ) -> Vec<Result<Addressee, DeliverError>> {
        let store = Arc::clone(&self.store);
        let addrs = recipients.to_vec();
        let found = tokio::task::spawn_blocking(move || {
            // why accounts first, all at once: one store read for a
            // transaction of a hundred recipients (one round trip on
            // PostgreSQL, not a hundred); the rest (lists, or any address
            // if that read failed) are looked up one by one, each with
            // its own error.
            let accounts = store
                .resolve_accounts(&addrs)
                .unwrap_or_else(|_| vec![None; addrs.len()]);
            addrs
                .iter()
                .zip(accounts)
                .map(|(a, id)| match id {
                    Some(id) => Ok(Some(crate::store::Recipient::Account(id))),
                    None => store.resolve_address(a),
                })
                .collect::<Vec<_>>()
        })
        .await;
        let found = match found {
            Ok(found) => found,
            Err(join) => {
                let e = Arc::new(DeliverError::Task(join));
                return recipients
                    .iter()
                    .map(|_| Err(DeliverError::Shared(Arc::clone(&e))))
                    .collect();
            }
        };
        recipients
            .iter()
            .zip(found)
            .map(|(rcpt, found)| {
                found
                    .map_err(|source| DeliverError::Store {
                        rcpt: rcpt.clone(),
                        source,
                    })?
                    .ok_or_else(|| DeliverError::UnknownRecipient { rcpt: rcpt.clone() })
            })
            .collect()
    }

    /// The one copy for `target`, named by the first RCPT that gave it.
    async fn deliver_to(
        &self,
        envelope: &Envelope,
        rcpt: &str,
        target: &Addressee,
        data: Arc<Vec<u8>>,
    ) -> Result<Delivered, DeliverError> {
        match target {
            Addressee::Account(id) => self.deliver_to_account(envelope, rcpt, *id, data).await,
            Addressee::List(list) => self
                .deliver_to_list(envelope, list, data)
                .await
                .inspect(crate::metrics::list_delivered),
        }
    }
}
