//! The file descriptors kept for the store.
//!
//! # Why the descriptor's number
//!
//! The kernel gives a new descriptor the lowest free number (POSIX
//! `open`, `accept`), so when `accept` returns descriptor `n`, every
//! number below `n` is in use. A listener that keeps only connections
//! whose number is below `limit − reserved` therefore never holds a
//! descriptor in the top `reserved` numbers: those stay for what the
//! store opens (RocksDB's WAL and table files, blob segments), whatever
//! the clients do. The check is one comparison, with no counting of open
//! files, and it cannot be wrong in the unsafe direction: a descriptor
//! below the line may leave holes above it, but connections never go
//! above the line.
//!
//! Mail delivery may use the lower half of the reserve: a flood of IMAP
//! or JMAP connections stops at the line while LMTP still accepts, so
//! mail keeps arriving; the upper half stays the store's alone.

use std::os::fd::AsRawFd;

/// Where the reserve starts, for one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdReserve {
    /// Descriptors at or above this number are refused.
    line: u64,
    /// The open files limit it was made for.
    limit: u64,
}

impl FdReserve {
    /// No reserve: every descriptor is admitted.
    pub fn none() -> Self {
        Self {
            line: u64::MAX,
            limit: u64::MAX,
        }
    }

    /// The reserve of `reserved` descriptors below the soft
    /// `RLIMIT_NOFILE` of this process. why at most half the limit: a
    /// reserve larger than that (a low limit, or a large setting) would
    /// leave too little for connections; it is logged when cut.
    pub fn of_process(reserved: u64) -> Self {
        match rlimit::Resource::NOFILE.get() {
            Ok((soft, _)) => Self::below(soft, reserved),
            Err(error) => {
                tracing::warn!(%error, "cannot read the open files limit; no descriptor reserve");
                Self::none()
            }
        }
    }

    /// The reserve of `reserved` descriptors below `limit`.
    pub fn below(limit: u64, reserved: u64) -> Self {
        if limit == rlimit::INFINITY {
            return Self::none();
        }
        let kept = reserved.min(limit / 2);
        if kept < reserved {
            tracing::warn!(
                limit,
                reserved,
                kept,
                "limits.reserved_files is over half the open files limit; keeping half"
            );
        }
        Self {
            line: limit - kept,
            limit,
        }
    }

    /// The reserve for mail delivery: half of this one, so that deliveries
    /// go on while other listeners are already refusing.
    pub fn for_delivery(self) -> Self {
        let kept = self.limit.saturating_sub(self.line);
        Self {
            line: self.limit - kept / 2,
            limit: self.limit,
        }
    }

    /// Whether a connection on `fd` may be kept.
    pub fn admits(&self, fd: &impl AsRawFd) -> bool {
        u64::try_from(fd.as_raw_fd()).is_ok_and(|n| n < self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for a socket with descriptor number `0`.
    struct Fd(i32);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> std::os::fd::RawFd {
            self.0
        }
    }

    #[test]
    fn descriptors_in_the_reserve_are_refused() {
        let r = FdReserve::below(1024, 100);
        assert!(r.admits(&Fd(923)));
        assert!(!r.admits(&Fd(924)));
        let lmtp = r.for_delivery();
        assert!(lmtp.admits(&Fd(973)));
        assert!(!lmtp.admits(&Fd(974)));
    }

    #[test]
    fn the_reserve_is_at_most_half_the_limit() {
        let r = FdReserve::below(256, 1024);
        assert!(r.admits(&Fd(127)));
        assert!(!r.admits(&Fd(128)));
    }

    #[test]
    fn no_limit_no_reserve() {
        assert!(FdReserve::below(rlimit::INFINITY, 1024).admits(&Fd(i32::MAX)));
        assert!(FdReserve::none().admits(&Fd(i32::MAX)));
        assert!(FdReserve::none().for_delivery().admits(&Fd(i32::MAX)));
    }
}
