//! Moving an installation from one engine to another: a copy of every
//! column family from one [`Store`] to another, resumable and verified
//! (`sealmail store migrate`, ARCHITECTURE.md).
//!
//! # Why this shape
//!
//! Every key and value is engine-neutral bytes (the layout is in the
//! module documentation of `store`), so a move is a copy of each [`Cf`],
//! in key order, through nothing but the [`Store`] trait. It runs with the
//! server stopped: the source does not change under it.
//!
//! - **Chunks.** The copy reads a chunk of at most
//!   [`CopyOptions::max_chunk_keys`] keys and about
//!   [`CopyOptions::max_chunk_bytes`] bytes and writes it to the target in
//!   one [`Store::write_if`], together with a progress marker (`meta` key
//!   [`MARKER_KEY`]: source, column family, last key copied, keys done).
//!   An interrupted run (Ctrl-C, a lost connection, a crash) leaves every
//!   chunk either written with its marker or not at all, so the next run
//!   starts right after the last chunk written and counts nothing twice.
//! - **A live target is never clobbered.** A target that holds data but
//!   no marker of an earlier run from the same source is refused before
//!   anything is written. Every chunk expects the marker the previous one
//!   wrote, so two copies into one target cannot interleave.
//! - **Verification.** At the end both sides are read again, and per
//!   column family the key count and a SHA-256 over every key and value
//!   (message bodies included) must be equal. Only then is the marker
//!   removed; a mismatch keeps it and is an error.

mod chunks;
mod error;
mod marker;
mod side;
mod verify;

#[cfg(test)]
mod tests;

use super::{Batch, Cf, Expect, Store, StoreError};
use chunks::{count_keys, read_chunk, successor, Limits};
pub use error::CopyError;
use marker::Marker;
pub use marker::MARKER_KEY;
pub use side::StorePair;
pub use verify::{verify_copy, CfDigest, Verification};

/// Keys per chunk: one write of a thousand small records is far from any
/// engine's batch limit, and a run interrupted loses at most that.
const DEFAULT_CHUNK_KEYS: usize = 1_000;

/// Bytes per chunk (keys and values): 32 MiB keeps a chunk of message
/// bodies (up to 50 MiB each by default, `limits.max_message_size`) within
/// memory and within one PostgreSQL transaction of reasonable size; a
/// single larger value makes a chunk of its own.
const DEFAULT_CHUNK_BYTES: usize = 32 << 20;

/// How to copy.
#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Names the source in the progress marker (the CLI: the canonical
    /// data directory); a resumed run must come from the same source.
    pub source_label: String,
    /// Most keys per chunk (at least 1).
    pub max_chunk_keys: usize,
    /// Bytes of keys and values after which a chunk ends (one value
    /// larger than this is a chunk of its own).
    pub max_chunk_bytes: usize,
    /// Stop after writing this many chunks in this run (`None`: copy
    /// everything). For tests of resumption, and for copying in slices.
    pub max_chunks: Option<u64>,
}

impl CopyOptions {
    /// The defaults for a source named `source_label`.
    pub fn new(source_label: impl Into<String>) -> Self {
        Self {
            source_label: source_label.into(),
            max_chunk_keys: DEFAULT_CHUNK_KEYS,
            max_chunk_bytes: DEFAULT_CHUNK_BYTES,
            max_chunks: None,
        }
    }

    fn limits(&self) -> Limits {
        Limits {
            keys: self.max_chunk_keys.max(1),
            bytes: self.max_chunk_bytes.max(1),
        }
    }
}

/// A step of a migration, for the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Counting the source's keys.
    Counting,
    /// Copying chunks.
    Copying,
    /// Reading both sides again and comparing.
    Verifying,
}

/// Receives the progress of a migration (the CLI draws a progress line).
pub trait CopyProgress {
    /// A new phase begins; `total` items will be counted by
    /// [`CopyProgress::advance`] (keys; while verifying, keys of both sides).
    fn phase(&mut self, _phase: Phase, _total: u64) {}
    /// `done` items of the phase's total are finished.
    fn advance(&mut self, _done: u64) {}
}

/// A progress receiver that ignores everything.
#[derive(Debug, Default)]
pub struct NoProgress;

impl CopyProgress for NoProgress {}

/// What a copy run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// Keys in the source when the run began (`blobs` estimated by their
    /// reference counts, see [`copy_store`]).
    pub total: u64,
    /// Keys copied so far, by this run and earlier ones.
    pub done: u64,
    /// Keys copied by this run.
    pub copied: u64,
    /// Chunks written by this run.
    pub chunks: u64,
    /// Whether the run continued an interrupted one.
    pub resumed: bool,
    /// Whether every column family is copied (false: stopped at
    /// [`CopyOptions::max_chunks`]).
    pub finished: bool,
}

/// A whole migration: the copy and, when it finished, its verification.
#[derive(Debug, Clone)]
pub struct MigrationReport {
    /// The copy.
    pub copy: CopyReport,
    /// The verification; `None` when the copy stopped early.
    pub verification: Option<Verification>,
}

/// Copies, verifies and, when both sides are equal, removes the progress
/// marker: the whole migration. Stops early (unverified, marker kept)
/// when [`CopyOptions::max_chunks`] is reached.
pub fn migrate_engine(
    source: &StorePair<'_>,
    target: &StorePair<'_>,
    options: &CopyOptions,
    progress: &mut dyn CopyProgress,
) -> Result<MigrationReport, CopyError> {
    let copy = copy_store(source, target, options, progress)?;
    if !copy.finished {
        return Ok(MigrationReport {
            copy,
            verification: None,
        });
    }
    // why twice the total: verification reads every key on both sides.
    progress.phase(Phase::Verifying, copy.total.saturating_mul(2));
    let verification = verify_copy(source, target, progress)?;
    if !verification.is_equal() {
        return Err(CopyError::Mismatch(verification));
    }
    finish_copy(target.store)?;
    Ok(MigrationReport {
        copy,
        verification: Some(verification),
    })
}

/// The copy step alone: counts the source, checks the target, then
/// copies chunk by chunk from where an earlier run stopped.
///
/// The count of `blobs` is taken from `blob_refs` (one reference count
/// per blob): counting `blobs` itself would read every message body once
/// more just for the progress display.
pub fn copy_store(
    source: &StorePair<'_>,
    target: &StorePair<'_>,
    options: &CopyOptions,
    progress: &mut dyn CopyProgress,
) -> Result<CopyReport, CopyError> {
    if source
        .get(Cf::Meta, MARKER_KEY)
        .map_err(CopyError::Source)?
        .is_some()
    {
        return Err(CopyError::SourceIsTarget);
    }
    let start = starting_point(target, &options.source_label)?;
    progress.phase(Phase::Counting, Cf::ALL.len() as u64);
    let mut total = 0;
    for (i, cf) in Cf::ALL.into_iter().enumerate() {
        // why: see the doc comment; a wrong estimate only moves the bar.
        let counted = if cf == Cf::Blobs { Cf::BlobRefs } else { cf };
        total += count_keys(source, counted).map_err(CopyError::Source)?;
        progress.advance(i as u64 + 1);
    }
    let mut run = Run {
        source,
        target,
        options,
        limits: options.limits(),
        report: CopyReport {
            total,
            done: start.as_ref().map_or(0, |m| m.done),
            copied: 0,
            chunks: 0,
            resumed: start.is_some(),
            finished: false,
        },
        marker: start,
    };
    progress.phase(Phase::Copying, total);
    progress.advance(run.report.done);
    run.report.finished = run.copy_all(progress)?;
    Ok(run.report)
}

/// Removes the progress marker after a verified copy (nothing to do when
/// there is none: an empty source wrote no chunk).
pub fn finish_copy(target: &dyn Store) -> Result<(), CopyError> {
    let Some(current) = target
        .get(Cf::Meta, MARKER_KEY)
        .map_err(CopyError::Target)?
    else {
        return Ok(());
    };
    let mut batch = Batch::new();
    batch.delete(Cf::Meta, MARKER_KEY.to_vec());
    let expect = [Expect {
        cf: Cf::Meta,
        key: MARKER_KEY.to_vec(),
        value: Some(current),
    }];
    match target.write_if(&expect, batch) {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(CopyError::Concurrent),
        Err(e) => Err(CopyError::Target(e)),
    }
}

/// The marker to resume from, or `None` for a fresh start on an empty
/// target; refuses any other target.
fn starting_point(target: &StorePair<'_>, source_label: &str) -> Result<Option<Marker>, CopyError> {
    if let Some(raw) = target
        .get(Cf::Meta, MARKER_KEY)
        .map_err(CopyError::Target)?
    {
        let marker = Marker::decode(&raw).map_err(|detail| CopyError::BadMarker { detail })?;
        if marker.source != source_label {
            return Err(CopyError::OtherSource {
                source_label: marker.source,
            });
        }
        return Ok(Some(marker));
    }
    for cf in Cf::ALL {
        let any = target
            .scan(cf, &super::KeyRange::prefix(&[]), super::Order::Forward, 1)
            .map_err(CopyError::Target)?;
        if !any.is_empty() {
            return Err(CopyError::TargetNotEmpty { cf });
        }
    }
    Ok(None)
}

/// Writes `batch` if the target's marker still holds `expected`.
fn write_expecting(
    target: &StorePair<'_>,
    expected: Option<Vec<u8>>,
    batch: Batch,
) -> Result<(), CopyError> {
    let expect = [Expect {
        cf: Cf::Meta,
        key: MARKER_KEY.to_vec(),
        value: expected,
    }];
    match target.write_if(&expect, batch) {
        Ok(()) => Ok(()),
        Err(StoreError::Conflict { .. }) => Err(CopyError::Concurrent),
        Err(e) => Err(CopyError::Target(e)),
    }
}

/// One copy run in progress.
struct Run<'a> {
    source: &'a StorePair<'a>,
    target: &'a StorePair<'a>,
    options: &'a CopyOptions,
    limits: Limits,
    report: CopyReport,
    /// The marker last written (or found at the start).
    marker: Option<Marker>,
}

impl Run<'_> {
    /// Copies every column family from the marker on; false when stopped
    /// at the chunk limit.
    fn copy_all(&mut self, progress: &mut dyn CopyProgress) -> Result<bool, CopyError> {
        let resume = self.marker.as_ref().map(|m| (m.cf, successor(&m.last_key)));
        let first = resume.as_ref().map_or(0, |(cf, _)| {
            Cf::ALL.iter().position(|c| c == cf).unwrap_or(0)
        });
        for (i, cf) in Cf::ALL.into_iter().enumerate().skip(first) {
            let mut start = match &resume {
                Some((at, key)) if i == first && *at == cf => key.clone(),
                _ => Vec::new(),
            };
            loop {
                if self
                    .options
                    .max_chunks
                    .is_some_and(|max| self.report.chunks >= max)
                {
                    return Ok(false);
                }
                let Some(next) = self.copy_chunk(cf, &start)? else {
                    break;
                };
                progress.advance(self.report.done);
                start = next;
            }
        }
        Ok(true)
    }

    /// Copies the chunk of `cf` from `start`; the key to continue from,
    /// or `None` when `cf` is done.
    fn copy_chunk(&mut self, cf: Cf, start: &[u8]) -> Result<Option<Vec<u8>>, CopyError> {
        let rows = read_chunk(self.source, cf, start, self.limits).map_err(CopyError::Source)?;
        let Some(last) = rows.last().map(|(k, _)| k.clone()) else {
            return Ok(None);
        };
        let n = rows.len() as u64;
        let marker = Marker {
            source: self.options.source_label.clone(),
            cf,
            last_key: last,
            done: self.report.done + n,
        };
        let mut batch = Batch::new();
        for (key, value) in rows {
            batch.put(cf, key, value);
        }
        batch.put(Cf::Meta, MARKER_KEY.to_vec(), marker.encode());
        let expected = self.marker.as_ref().map(Marker::encode);
        write_expecting(self.target, expected, batch)?;
        self.report.done += n;
        self.report.copied += n;
        self.report.chunks += 1;
        let next = successor(&marker.last_key);
        self.marker = Some(marker);
        Ok(Some(next))
    }
}
