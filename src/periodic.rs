//! Background jobs the server runs on a period (store housekeeping, the
//! certificate gauges, the key sweep, the memory tick) until it stops.

use std::future::Future;
use std::time::Duration;

use tokio::time::MissedTickBehavior;

/// When the first run of a periodic job comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum First {
    /// At once, then every period.
    AtOnce,
    /// One period in.
    AfterOnePeriod,
}

/// Runs `job` every `period` (a run that overruns delays the next rather
/// than bunching runs up) until `stopped` completes; a run under way is
/// finished first.
pub(crate) async fn every<Fut: Future<Output = ()>>(
    period: Duration,
    first: First,
    stopped: impl Future<Output = ()>,
    mut job: impl FnMut() -> Fut,
) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    tokio::pin!(stopped);
    if first == First::AfterOnePeriod {
        // why: an interval's first tick is immediate.
        tick.tick().await;
    }
    loop {
        tokio::select! {
            () = &mut stopped => return,
            _ = tick.tick() => job().await,
        }
    }
}
