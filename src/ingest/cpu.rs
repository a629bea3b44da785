//! The CPU pool: slots for CPU-heavy work (sealing a copy, parsing or
//! inspecting a batch of stored messages), shared fairly between owners.
//!
//! why not a plain `Semaphore`: its queue is first come, first served, so
//! an owner with many queued requests (an account hit by many deliveries
//! at once, a list fanning out to thousands) makes every other owner wait
//! behind all of them (issue #14: 41 costly certificates on one account
//! held every other delivery for 23 s). Here:
//!
//! - the pool has `cores + 1` slots and one owner (an account or a list)
//!   holds at most `cores` of them, so a slot is always out of any single
//!   owner's reach and a newcomer starts at once even while a big fan-out
//!   runs (the OS shares the cores between the `cores + 1` threads);
//! - a freed slot goes to the waiting owners round-robin, the owner served
//!   last going to the back, so a hundred queued requests of one owner
//!   cost another owner at most one turn;
//! - slots are held for one copy (or one batch), not for a whole fan-out,
//!   so turns are short.
//!
//! Waiting works from both sides: [`CpuPool::acquire`] from async code,
//! [`CpuPool::acquire_blocking`] from a thread of the blocking pool (a
//! fan-out chunk takes a slot per member copy). Closing the pool (server
//! shutdown) refuses every waiter.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::store::AccountId;

/// Who a piece of CPU work is done for: the unit of fairness.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Owner {
    /// One account (a delivery, an append, an IMAP command).
    Account(AccountId),
    /// A list's fan-out, by list address (every delivery to the list).
    List(Arc<str>),
}

/// The pool is closed (the server is shutting down).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the CPU pool is closed (server shutting down)")]
pub(crate) struct Closed;

/// A held slot; given back (to the next owner in turn) when dropped.
#[derive(Debug)]
#[must_use = "the slot is given back as soon as it is dropped"]
pub(crate) struct CpuSlot {
    pool: Arc<Shared>,
    owner: Owner,
}

impl Drop for CpuSlot {
    fn drop(&mut self) {
        self.pool.release(&self.owner);
    }
}

/// The fair pool; cheap to clone (one shared state).
#[derive(Debug, Clone)]
pub(crate) struct CpuPool(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Slots one owner may hold at once.
    per_owner: usize,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    closed: bool,
    /// Slots held, by owner (owners holding none are removed).
    held: HashMap<Owner, usize>,
    /// Waiters by owner, first come first served within an owner.
    waiting: HashMap<Owner, VecDeque<oneshot::Sender<()>>>,
    /// Owners with waiters, in turn order.
    turns: VecDeque<Owner>,
}

impl CpuPool {
    /// A pool for `cores` cores: `cores + 1` slots, at most `cores` per
    /// owner.
    pub(crate) fn new(cores: usize) -> Self {
        let cores = cores.max(1);
        Self::with_slots(cores + 1, cores)
    }

    /// A pool of `slots` slots, at most `per_owner` of them per owner.
    pub(crate) fn with_slots(slots: usize, per_owner: usize) -> Self {
        let slots = slots.max(1);
        Self(Arc::new(Shared {
            state: Mutex::new(State {
                free: slots,
                ..State::default()
            }),
            per_owner: per_owner.clamp(1, slots),
        }))
    }

    /// A slot for `owner`, waiting for its turn.
    pub(crate) async fn acquire(&self, owner: Owner) -> Result<CpuSlot, Closed> {
        let rx = match self.0.try_take_or_queue(&owner)? {
            Ok(slot) => return Ok(slot),
            Err(rx) => rx,
        };
        let mut waiter = Waiter {
            rx: Some(rx),
            pool: &self.0,
            owner: &owner,
        };
        let granted = match waiter.rx.as_mut() {
            Some(rx) => rx.await.is_ok(),
            None => false,
        };
        waiter.rx = None;
        drop(waiter);
        self.0.granted(owner, granted)
    }

    /// A slot for `owner` from a thread of the blocking pool (never from
    /// async code: it blocks the thread until the turn comes).
    pub(crate) fn acquire_blocking(&self, owner: Owner) -> Result<CpuSlot, Closed> {
        match self.0.try_take_or_queue(&owner)? {
            Ok(slot) => Ok(slot),
            Err(rx) => {
                let granted = rx.blocking_recv().is_ok();
                self.0.granted(owner, granted)
            }
        }
    }

    /// Refuses every waiter and every later request.
    // why test-only: the server's shutdown stops accepting work and waits
    // for what runs; nothing closes the pool yet, but waiters must still
    // handle a pool that refuses them.
    #[cfg(test)]
    pub(crate) fn close(&self) {
        let mut state = self.0.lock();
        state.closed = true;
        state.turns.clear();
        // Dropping the senders wakes the waiters with an error.
        state.waiting.clear();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // why: the state is a few counters updated without panicking
        // code in between; a poisoned lock still holds consistent numbers.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot at once when free and within `owner`'s share (and no one of
    /// the same owner waits ahead); otherwise a place in the queue.
    fn try_take_or_queue(self: &Arc<Self>, owner: &Owner) -> Result<TakeOrWait, Closed> {
        let mut state = self.lock();
        if state.closed {
            return Err(Closed);
        }
        let held = state.held.get(owner).copied().unwrap_or(0);
        let queued = state.waiting.get(owner).is_some_and(|q| !q.is_empty());
        if state.free > 0 && held < self.per_owner && !queued {
            state.free -= 1;
            *state.held.entry(owner.clone()).or_insert(0) += 1;
            return Ok(Ok(CpuSlot {
                pool: Arc::clone(self),
                owner: owner.clone(),
            }));
        }
        let (tx, rx) = oneshot::channel();
        let queue = state.waiting.entry(owner.clone()).or_default();
        queue.push_back(tx);
        if queue.len() == 1 {
            state.turns.push_back(owner.clone());
        }
        Ok(Err(rx))
    }

    /// The slot a waiter was handed (already counted for it), or `Closed`.
    fn granted(self: &Arc<Self>, owner: Owner, granted: bool) -> Result<CpuSlot, Closed> {
        if granted {
            Ok(CpuSlot {
                pool: Arc::clone(self),
                owner,
            })
        } else {
            Err(Closed)
        }
    }

    /// Gives `owner`'s slot back and hands free slots on.
    fn release(&self, owner: &Owner) {
        let mut state = self.lock();
        if let Some(n) = state.held.get_mut(owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                state.held.remove(owner);
            }
        }
        state.free += 1;
        self.hand_on(&mut state);
    }

    /// While a slot is free: the first owner in turn order that is within
    /// its share gets it (its first waiter), then goes to the back.
    fn hand_on(&self, state: &mut State) {
        while state.free > 0 && !state.closed {
            let per_owner = self.per_owner;
            let at = state
                .turns
                .iter()
                .position(|o| state.held.get(o).copied().unwrap_or(0) < per_owner);
            let Some(owner) = at.and_then(|i| state.turns.remove(i)) else {
                return;
            };
            let Some(queue) = state.waiting.get_mut(&owner) else {
                continue;
            };
            let Some(tx) = queue.pop_front() else {
                state.waiting.remove(&owner);
                continue;
            };
            let more = !queue.is_empty();
            if !more {
                state.waiting.remove(&owner);
            }
            // Counted before the send: the waiter owns it from here on,
            // and gives it back itself if it stopped waiting (`Waiter`).
            state.free -= 1;
            *state.held.entry(owner.clone()).or_insert(0) += 1;
            let sent = tx.send(()).is_ok();
            if more {
                state.turns.push_back(owner.clone());
            }
            if !sent {
                // The waiter is gone (its future dropped): take it back.
                state.free += 1;
                if let Some(n) = state.held.get_mut(&owner) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        state.held.remove(&owner);
                    }
                }
            }
        }
    }
}

/// A slot at once, or the receiver its turn comes on.
type TakeOrWait = Result<CpuSlot, oneshot::Receiver<()>>;

/// An async waiter; if its future is dropped after the slot was handed
/// to it but before it took it, the slot goes back.
struct Waiter<'a> {
    rx: Option<oneshot::Receiver<()>>,
    pool: &'a Arc<Shared>,
    owner: &'a Owner,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        if let Some(mut rx) = self.rx.take() {
            rx.close();
            if rx.try_recv().is_ok() {
                self.pool.release(self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(n: u32) -> Owner {
        Owner::Account(AccountId(n))
    }

    #[tokio::test]
    async fn one_owner_never_holds_every_slot() {
        let pool = CpuPool::new(2);
        let a1 = pool.acquire(account(1)).await.unwrap();
        let _a2 = pool.acquire(account(1)).await.unwrap();
        // A third slot of the same owner waits, another owner's does not.
        let third = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire(account(1)).await.map(drop) }
        });
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        let _b = pool.acquire(account(2)).await.unwrap();
        drop(a1);
        third.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn freed_slots_go_round_robin() {
        let pool = CpuPool::with_slots(1, 1);
        let first = pool.acquire(account(1)).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Owner 1 queues three requests before owner 2 queues one.
        for owner in [1, 1, 1, 2] {
            let pool = pool.clone();
            let order = Arc::clone(&order);
            tasks.push(tokio::spawn(async move {
                let _slot = pool.acquire(account(owner)).await.unwrap();
                order.lock().unwrap().push(owner);
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [1, 2, 1, 1]);
    }

    #[tokio::test]
    async fn a_cancelled_waiter_gives_its_slot_back() {
        let pool = CpuPool::with_slots(1, 1);
        let held = pool.acquire(account(1)).await.unwrap();
        let gone = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire(account(2)).await.map(drop) }
        });
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(held);
        let again =
            tokio::time::timeout(std::time::Duration::from_secs(5), pool.acquire(account(3))).await;
        assert!(again.is_ok_and(|s| s.is_ok()));
    }

    #[tokio::test]
    async fn closing_refuses_waiters() {
        let pool = CpuPool::with_slots(1, 1);
        let _held = pool.acquire(account(1)).await.unwrap();
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.acquire(account(2)).await.map(drop) }
        });
        tokio::task::yield_now().await;
        pool.close();
        assert!(waiting.await.unwrap().is_err());
        assert!(pool.acquire(account(3)).await.is_err());
    }

    #[test]
    fn blocking_waiters_are_served_too() {
        let pool = CpuPool::with_slots(1, 1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let held = rt.block_on(pool.acquire(account(1))).unwrap();
        let t = std::thread::spawn({
            let pool = pool.clone();
            move || pool.acquire_blocking(account(2)).map(drop)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(held);
        assert!(t.join().unwrap().is_ok());
    }
}
