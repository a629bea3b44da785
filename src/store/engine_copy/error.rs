//! Errors of a copy between engines: what is the operator's to fix (a
//! target that is not empty, another migration) apart from what an
//! engine did.

use super::super::{Cf, StoreError};
use super::Verification;

/// Why a copy or its verification failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CopyError {
    /// Reading the source failed.
    #[error("reading the source store failed: {0}")]
    Source(#[source] StoreError),
    /// Reading or writing the target failed; running again resumes.
    #[error("the target store failed: {0}; every chunk is written whole or not at all, so running the command again resumes after the last one written")]
    Target(#[source] StoreError),
    /// The target holds data that no earlier run of this copy wrote.
    #[error("the target already holds data (column family `{cf}` is not empty) and no unfinished migration from this source; nothing was written. The target must be a new, empty database: create one, or empty this one if nothing in it is needed. If an earlier migration into it finished, it is done and needs no new run")]
    TargetNotEmpty {
        /// The first non-empty column family found.
        cf: Cf,
    },
    /// The target holds an unfinished migration from another source.
    #[error("the target holds an unfinished migration from {source_label}; nothing was written. Resume it from that data directory, or empty the target to start over from this one")]
    OtherSource {
        /// The source named in the target's marker.
        source_label: String,
    },
    /// The source itself holds a progress marker.
    #[error("the source holds a migration progress marker (meta key `migrate_progress`): it is the target of an unfinished migration itself; finish that migration first")]
    SourceIsTarget,
    /// The target's marker does not decode.
    #[error("the target's migration progress marker (meta key `migrate_progress`) is unreadable ({detail}); empty the target and run again")]
    BadMarker {
        /// What did not decode.
        detail: String,
    },
    /// Another writer changed the target's marker during the copy.
    #[error("another process changed the target's migration progress while this copy ran; run only one migration into a target at a time")]
    Concurrent,
    /// The copy finished but the two sides differ.
    #[error("verification failed: {}; the progress marker stays, so running again verifies again. Was the server started on the source between two runs? Then empty the target and migrate again", mismatch_summary(.0))]
    Mismatch(Verification),
}

impl CopyError {
    /// Whether the operator's input or the state they set up is at fault
    /// (exit code 1), not an engine (exit code 2).
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            CopyError::TargetNotEmpty { .. }
                | CopyError::OtherSource { .. }
                | CopyError::SourceIsTarget
                | CopyError::Concurrent
        )
    }
}

fn mismatch_summary(v: &Verification) -> String {
    v.mismatches()
        .map(|(cf, s, t)| {
            format!(
                "`{cf}` has {} keys in the source, {} in the target, digests {}",
                s.keys,
                t.keys,
                if s.sha256 == t.sha256 {
                    "equal"
                } else {
                    "differ"
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
