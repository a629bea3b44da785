//! Connections counted per source address, for the per-source caps of
//! every listener (LMTP, JMAP, and IMAP before login).
//!
//! An IPv6 peer is counted by its /64: one host, or one site behind a
//! router, usually holds a whole /64 and can pick any address in it
//! (RFC 4291 §2.5.1 interface identifiers, RFC 8981 temporary
//! addresses), so counting single addresses would not cap it at all. An
//! IPv4-mapped IPv6 address counts as the IPv4 address it carries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// What a connection is counted under: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKey {
    /// The whole IPv4 address.
    V4(u32),
    /// The first 64 bits of an IPv6 address.
    V6(u64),
}

impl SourceKey {
    /// The key `ip` is counted under.
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6(prefix_64(u128::from(v6))),
        }
    }
}

/// The top 64 bits of `bits`.
fn prefix_64(bits: u128) -> u64 {
    u64::try_from(bits >> 64).unwrap_or(u64::MAX)
}

/// Connections per source, shared by the tasks of one listener.
#[derive(Debug, Default)]
pub struct SourceCounts {
    // why a std Mutex: held for one map operation, never across an await.
    counts: Mutex<HashMap<SourceKey, usize>>,
}

impl SourceCounts {
    /// A place for one more connection from `ip`, unless its source holds
    /// `limit` already. The place is given back when the slot is dropped.
    pub fn enter(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<SourceSlot> {
        let key = SourceKey::of(ip);
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(key).or_insert(0);
        if *n >= limit {
            if *n == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(SourceSlot {
            counts: Arc::clone(self),
            key,
        })
    }

    /// Connections counted for `ip`'s source now.
    pub fn count(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.get(&SourceKey::of(ip)).copied().unwrap_or(0)
    }
}

/// One connection counted against its source.
#[derive(Debug)]
pub struct SourceSlot {
    counts: Arc<SourceCounts>,
    key: SourceKey,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = counts.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_source_gets_its_limit_and_no_more() {
        let counts = Arc::new(SourceCounts::default());
        let held: Vec<_> = (0..3)
            .map(|_| counts.enter(ip("192.0.2.1"), 3).unwrap())
            .collect();
        assert!(counts.enter(ip("192.0.2.1"), 3).is_none());
        assert!(counts.enter(ip("192.0.2.2"), 3).is_some());
        drop(held);
        assert_eq!(counts.count(ip("192.0.2.1")), 0);
        assert!(counts.enter(ip("192.0.2.1"), 3).is_some());
    }

    #[test]
    fn an_ipv6_source_is_its_64() {
        let counts = Arc::new(SourceCounts::default());
        let _a = counts.enter(ip("2001:db8:1:2::1"), 2).unwrap();
        let _b = counts.enter(ip("2001:db8:1:2:ffff::9"), 2).unwrap();
        assert!(counts.enter(ip("2001:db8:1:2:abcd::1"), 2).is_none());
        assert!(counts.enter(ip("2001:db8:1:3::1"), 2).is_some());
    }

    #[test]
    fn a_mapped_ipv4_address_is_the_ipv4_address() {
        assert_eq!(
            SourceKey::of(ip("::ffff:192.0.2.7")),
            SourceKey::of(ip("192.0.2.7"))
        );
        assert_ne!(
            SourceKey::of(ip("192.0.2.7")),
            SourceKey::of(ip("192.0.2.8"))
        );
    }
}
