//! Failed-login slowdown per source address, for IMAP and JMAP alike.
//!
//! Every failed LOGIN / AUTHENTICATE waits before its `NO`; the wait
//! doubles with each recent failure from the same address (shared by all
//! its connections), up to [`MAX_DELAY`]. A success forgets only the
//! failures for the account that logged in (a guesser who also owns an
//! account cannot clear the count of guesses at others by logging in to
//! it), and [`FORGET_AFTER`] without failures clears the address. A
//! guesser opening many connections from one address therefore gains
//! little, and a user who mistypes once waits only the base delay.
//!
//! Every failure is logged by [`log_failure`], the same line for IMAP and
//! JMAP (source address, login name, wait; never the password), so that
//! an operator or fail2ban sees guessing on either protocol; it also
//! counts the failure in the metrics (by protocol only).

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

/// Accounts whose failures are counted apart per address; failures for
/// further names count in the total only (a success never clears them).
const USERS_PER_SOURCE: usize = 32;

/// Characters of a login name that are logged at most: a real address
/// is shorter, and a guesser cannot flood the log through the name.
const LOGGED_USER_CHARS: usize = 128;

/// Logs a failed login over `protocol` from `source` as `user` (escaped
/// and shortened; the password is never passed here), with the `delay`
/// it waits. `warn`: the peer misbehaved or mistyped.
pub(crate) fn log_failure(
    protocol: &'static str,
    source: Option<IpAddr>,
    user: &str,
    delay: Duration,
) {
    crate::metrics::auth_failure(protocol);
    let user: String = user.chars().take(LOGGED_USER_CHARS).collect();
    let source = source.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
    // why `?user`: Debug quotes and escapes it, so a name with a newline
    // cannot forge a log line.
    tracing::warn!(
        protocol,
        %source,
        user = ?user,
        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        "failed login"
    );
}

#[derive(Debug, Clone)]
struct Record {
    failures: u32,
    /// Failures per login name (lowercased), part of `failures`.
    by_user: Vec<(String, u32)>,
    last: Instant,
}

/// Failure counts per source address.
#[derive(Debug, Default)]
pub(crate) struct LoginThrottle {
    // why: a std Mutex; held for a map lookup, never across an await.
    sources: Mutex<HashMap<IpAddr, Record>>,
}

impl LoginThrottle {
    /// Records a failure from `ip` to log in as `user`; returns how long
    /// to wait before answering.
    pub(crate) fn failed(&self, ip: IpAddr, user: &str, base: Duration) -> Duration {
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
            by_user: Vec::new(),
            last: now,
        });
        if now.duration_since(record.last) >= FORGET_AFTER {
            record.failures = 0;
            record.by_user.clear();
        }
        record.failures = record.failures.saturating_add(1);
        let user = user.to_lowercase();
        if let Some((_, n)) = record.by_user.iter_mut().find(|(u, _)| *u == user) {
            *n = n.saturating_add(1);
        } else if record.by_user.len() < USERS_PER_SOURCE {
            record.by_user.push((user, 1));
        }
        record.last = now;
        let factor = 1u32 << record.failures.saturating_sub(1).min(16);
        base.saturating_mul(factor).min(MAX_DELAY.max(base))
    }

    /// Forgets the failures of `ip` for `user` after `user` logged in.
    pub(crate) fn succeeded(&self, ip: IpAddr, user: &str) {
        let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        let Some(record) = sources.get_mut(&ip) else {
            return;
        };
        let user = user.to_lowercase();
        if let Some(i) = record.by_user.iter().position(|(u, _)| *u == user) {
            let (_, n) = record.by_user.swap_remove(i);
            record.failures = record.failures.saturating_sub(n);
        }
        if record.failures == 0 {
            sources.remove(&ip);
        }
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
        assert_eq!(t.failed(a, "u", base), base);
        assert_eq!(t.failed(a, "u", base), base * 2);
        assert_eq!(t.failed(a, "U", base), base * 4);
        assert_eq!(t.failed(b, "u", base), base, "another source is not slowed");
        for _ in 0..20 {
            t.failed(a, "u", base);
        }
        assert_eq!(t.failed(a, "u", base), MAX_DELAY);
        t.succeeded(a, "u");
        assert_eq!(t.failed(a, "u", base), base);
    }

    #[test]
    fn logging_in_to_ones_own_account_keeps_the_guesses_at_others() {
        let t = LoginThrottle::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let base = Duration::from_millis(100);
        t.failed(a, "victim", base);
        t.failed(a, "victim", base);
        t.failed(a, "me", base);
        t.succeeded(a, "me");
        assert_eq!(t.failed(a, "victim", base), base * 4, "two guesses remain");
    }

    #[test]
    fn the_table_stays_bounded() {
        let t = LoginThrottle::default();
        for i in 0..u32::try_from(MAX_SOURCES + 50).unwrap() {
            t.failed(IpAddr::from(i.to_be_bytes()), "u", Duration::ZERO);
        }
        assert!(t.sources.lock().unwrap().len() <= MAX_SOURCES);
    }
}
