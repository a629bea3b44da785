//! A bounded wait for one copy's blocking work (hook chain + store write).
//!
//! A hook cannot be killed, so the async side stops *waiting* instead:
//! after [`HookChain::wait_limit`](super::HookChain) it replies `451 4.3.0`
//! and leaves the blocking thread to finish. A [`Claim`] shared by both
//! sides makes sure that the reply and the store agree: the blocking side
//! claims the copy right before its store write, the async side claims
//! the right to give up, and only one of them can win. A late finish thus
//! never stores a copy whose recipient was already told "try again"; and
//! once a write has begun, the async side waits for it and reports it.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use sealmail_plugin_api::HookError;

use super::copy::audit;
use super::{DeliverError, Ingest, Owner};
use crate::store::{AccountId, AuditKind};

const RUNNING: u8 = 0;
const COMMITTING: u8 = 1;
const ABANDONED: u8 = 2;

/// Who owns the outcome of one copy: the blocking work or the waiter.
#[derive(Debug, Clone, Default)]
pub(crate) struct Claim(Arc<AtomicU8>);

impl Claim {
    /// Blocking side, right before the store write: `Err` when the waiter
    /// has given up (nothing may be stored); after `Ok` the waiter waits
    /// for the write whatever the time.
    pub(crate) fn commit(&self, rcpt: &str) -> Result<(), DeliverError> {
        match self
            .0
            .compare_exchange(RUNNING, COMMITTING, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) | Err(COMMITTING) => Ok(()),
            Err(_) => {
                tracing::debug!(rcpt = %rcpt, "copy abandoned by the waiter; not stored");
                Err(overran(
                    rcpt,
                    "the copy was abandoned before its store write",
                ))
            }
        }
    }

    /// Whether the waiter gave up (and wrote the audit line already).
    pub(crate) fn is_abandoned(&self) -> bool {
        self.0.load(Ordering::Acquire) == ABANDONED
    }

    /// Waiter side: gives up unless the store write has begun.
    fn abandon(&self) -> bool {
        self.0
            .compare_exchange(RUNNING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// The refusal for a copy whose hook chain ran out of time.
fn overran(rcpt: &str, what: &str) -> DeliverError {
    DeliverError::Refused {
        rcpt: rcpt.to_string(),
        source: HookError::temporary(
            "4.3.0",
            format!("the storage hook chain did not finish in time ({what}); nothing stored"),
        ),
    }
}

impl Ingest {
    /// Runs `work` (one copy for `account`, named `rcpt`) on the blocking
    /// pool holding a CPU slot of `account`'s (in its turn among the
    /// owners, `cpu.rs`), and waits at most the chain's wait limit.
    /// `work` must call [`Claim::commit`] right before its store write.
    pub(crate) async fn bounded<T: Send + 'static>(
        &self,
        rcpt: &str,
        account: AccountId,
        work: impl FnOnce(&Claim) -> Result<T, DeliverError> + Send + 'static,
    ) -> Result<T, DeliverError> {
        let permit = self.cpu_permit(Owner::Account(account), rcpt).await?;
        let claim = Claim::default();
        let theirs = claim.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            // why held here: a hook that overruns keeps its core busy until
            // it returns, so the slot is given back only then.
            let _permit = permit;
            work(&theirs)
        });
        let limit = self.chain.wait_limit();
        match tokio::time::timeout(limit, &mut task).await {
            Ok(joined) => joined?,
            Err(_) if claim.abandon() => {
                let e = overran(rcpt, &format!("waited {} ms", limit.as_millis()));
                tracing::error!(rcpt = %rcpt, waited_ms = limit.as_millis(), "storage hook chain overran; copy refused, the hook thread finishes unobserved");
                let store = std::sync::Arc::clone(&self.store);
                let details = e.to_string();
                let recorded = tokio::task::spawn_blocking(move || {
                    audit(&store, account, AuditKind::DeliveryRefused, &details)
                })
                .await;
                if let Err(join) = recorded {
                    tracing::error!(error = %join, "could not write the audit log");
                }
                Err(e)
            }
            // why: the store write has begun; its outcome is the reply.
            Err(_) => task.await?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_side_wins() {
        let late = Claim::default();
        assert!(late.abandon());
        assert!(late.is_abandoned());
        assert!(late.commit("a@example.org").is_err());

        let writing = Claim::default();
        assert!(writing.commit("a@example.org").is_ok());
        assert!(!writing.abandon());
        assert!(!writing.is_abandoned());
    }
}
