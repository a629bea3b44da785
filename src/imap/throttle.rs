//! Failed-login slowdown per source address.
//!
//! Every failed LOGIN / AUTHENTICATE waits before its `NO`; the wait
//! doubles with each recent failure from the same address (shared by all
//! its connections), up to [`MAX_DELAY`], and a success or
//! [`FORGET_AFTER`] without failures clears it. A guesser opening many
//! connections from one address therefore gains little, and a user who
//! mistypes once waits only the base delay.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Longest wait after a failure (30 s: long enough to make guessing
/// pointless, short enough that a real user still gets an answer).
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A source with no failure for this long starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Addresses remembered at most; past it the stalest are dropped, so a
/// spray from many addresses cannot grow the table without bound.
const MAX_SOURCES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Failure counts per source address.
#[derive(Debug, Default)]
pub(crate) struct LoginThrottle {
    // why: a std Mutex; held for a map lookup, never across an await.
    sources: Mutex<HashMap<IpAddr, Record>>,
}

impl LoginThrottle {
    /// Records a failure from `ip`; returns how long to wait before answering.
    pub(crate) fn failed(&self, ip: IpAddr, base: Duration) -> Duration {
        let now = Instant::now();
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&ip) {
            sources.retain(|_, r| now.duration_since(r.last) < FORGET_AFTER);
            if sources.len() >= MAX_SOURCES {
                if let Some(stalest) = sources
                    .iter()
                    .min_by_key(|(_, r)| r.last)
                    .map(|(ip, _)| *ip)
                {
                    sources.remove(&stalest);
                }
            }
        }
        let record = sources.entry(ip).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.duration_since(record.last) >= FORGET_AFTER {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last = now;
        let factor = 1u32 << record.failures.saturating_sub(1).min(16);
        base.saturating_mul(factor).min(MAX_DELAY.max(base))
    }

    /// Forgets the failures of `ip` after a successful login.
    pub(crate) fn succeeded(&self, ip: IpAddr) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        sources.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_per_source_and_reset_on_success() {
        let t = LoginThrottle::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let base = Duration::from_millis(100);
        assert_eq!(t.failed(a, base), base);
        assert_eq!(t.failed(a, base), base * 2);
        assert_eq!(t.failed(a, base), base * 4);
        assert_eq!(t.failed(b, base), base, "another source is not slowed");
        for _ in 0..20 {
            t.failed(a, base);
        }
        assert_eq!(t.failed(a, base), MAX_DELAY);
        t.succeeded(a);
        assert_eq!(t.failed(a, base), base);
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = LoginThrottle::default();
        for i in 0..u32::try_from(MAX_SOURCES + 50).unwrap() {
            t.failed(IpAddr::from(i.to_be_bytes()), Duration::ZERO);
        }
        assert!(t.sources.lock().unwrap().len() <= MAX_SOURCES);
    }
}
