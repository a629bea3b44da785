//! Giving freed memory back to the system while the server is idle.
//!
//! Two holders keep memory after a burst (imaptest's stress mode, a list
//! fan-out) that an idle server no longer needs:
//!
//! - The allocator (mimalloc, see `main.rs`, which also serves RocksDB's
//!   C++ allocations) returns freed pages to the system only after a
//!   short delay (`MIMALLOC_PURGE_DELAY`), and it carries out a due return
//!   only from inside a later allocation or free that releases a whole
//!   page. After a burst the last frees fall inside the delay and nothing
//!   follows, so it kept tens of MiB until the next connection. Calling
//!   the allocator's `mi_collect` would need unsafe FFI, which the
//!   workspace forbids; instead a tick allocates and releases a huge
//!   block (a page of its own, never touched, so it costs no resident
//!   memory) [`COLLECT_AFTER`] times. A release is what lets mimalloc
//!   purge what is due, and that many allocations off the fast path make
//!   the thread collect its heap (`MIMALLOC_GENERIC_COLLECT`, set in
//!   `main.rs`): the blocks other threads freed into its pages (a
//!   connection's buffers are often freed on another thread than the one
//!   that made them) and the pages that left empty. Measured with
//!   heaptrack, what an idle server still holds live after imaptest's
//!   stress run is 0.4 MiB more than at its start (benches/RESULTS.md);
//!   the rest of its growth is pages the allocator had not collected, of
//!   which this takes back about half. A tick costs under 1 ms of CPU.
//! - The store's engine keeps what was written in memory beside its
//!   durable copy (RocksDB's memtables), and blocks it read in its block
//!   cache; the same tick asks it to write the first out and empty the
//!   second once writes have stopped
//!   ([`MailStore::release_memory_when_quiet`]), and the next ticks give
//!   the freed memory back.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::store::MailStore;

/// How often the tick runs: twice the idle time the purge delay needs at
/// most, so that an idle server is back to its working set within a few
/// seconds.
const TICK_EVERY: Duration = Duration::from_secs(2);

/// Bytes of the block released each tick: above mimalloc's largest
/// size class (512 KiB on 64-bit), so the block gets a page of its own and
/// its release frees that page, the event on which due purges run.
const HUGE_BLOCK_BYTES: usize = 4 << 20;

/// Runs the tick until `stopped` completes.
pub(crate) async fn release_periodically(store: Arc<MailStore>, stopped: impl Future<Output = ()>) {
    crate::periodic::every(TICK_EVERY, crate::periodic::First::AtOnce, stopped, || {
        // why not on the blocking pool: the call only reads memory and
        // starts a background flush; a blocking job every tick would also
        // keep up to five idle pool threads (and their allocator pages)
        // alive for good.
        if let Err(e) = store.release_memory_when_quiet() {
            tracing::warn!(error = %e, "could not release the store's memory");
        }
        release_due();
        std::future::ready(())
    })
    .await;
}

/// Huge allocations a tick makes: mimalloc looks at its collect counter
/// once per 1,000 allocations off the fast path (`_mi_malloc_generic`).
const COLLECT_AFTER: usize = 1000;

/// [`COLLECT_AFTER`] allocations of a huge block and their releases, kept
/// from being optimised away.
fn release_due() {
    for _ in 0..COLLECT_AFTER {
        let block: Vec<u8> = Vec::with_capacity(HUGE_BLOCK_BYTES);
        drop(std::hint::black_box(block));
    }
}
