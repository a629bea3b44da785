//! A one-line progress display on standard error for long commands
//! (`import`, `reencrypt`): `\r 1234/5000 messages`, redrawn at most ten
//! times a second, and only when standard error is a terminal, so logs
//! and pipes get the final summary alone.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

/// Shortest time between two redraws.
const REDRAW: Duration = Duration::from_millis(100);

/// The progress line of one run.
#[derive(Debug)]
pub(super) struct Progress {
    on_terminal: bool,
    total: Option<u64>,
    unit: &'static str,
    last: Option<Instant>,
}

impl Progress {
    /// A line counting towards `total` (none: unknown, count only).
    pub(super) fn new(total: Option<u64>) -> Self {
        Self::counting(total, "messages")
    }

    /// A line counting `unit` (a plural noun) towards `total`.
    pub(super) fn counting(total: Option<u64>, unit: &'static str) -> Self {
        Self {
            on_terminal: std::io::stderr().is_terminal(),
            total,
            unit,
            last: None,
        }
    }

    /// Redraws the line with `done` units, if it is time to.
    pub(super) fn update(&mut self, done: u64) {
        if !self.on_terminal || self.last.is_some_and(|t| t.elapsed() < REDRAW) {
            return;
        }
        self.last = Some(Instant::now());
        let line = match self.total {
            Some(total) => format!("\r {done}/{total} {}", self.unit),
            None => format!("\r {done} {}", self.unit),
        };
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(line.as_bytes());
        let _ = err.flush();
    }

    /// Prints `message` on its own line, above the progress line.
    pub(super) fn note(&mut self, message: &str) {
        self.clear();
        // why escape: notes quote file names and the server's reasons.
        eprintln!("{}", crate::text::escape(message));
        self.last = None;
    }

    /// Removes the progress line (before the summary).
    pub(super) fn clear(&self) {
        if self.on_terminal {
            eprint!("\r\x1b[K");
        }
    }
}
