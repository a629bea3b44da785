//! The DATA phase reader: finds the end-of-data indication and undoes
//! dot-stuffing (RFC 5321 §4.1.1.4 and §4.5.2), byte-exact otherwise.
//!
//! It is a byte-level state machine rather than a line reader, so it needs
//! no per-line limit and any chunking of the input gives the same result.
//!
//! Two deliberate choices:
//! - Only `CRLF "." CRLF` ends the data and only a dot after CRLF is
//!   unstuffed. Bare LF or bare CR around the dot are data. why: treating
//!   `LF . LF` as the end is what made SMTP smuggling possible
//!   (CVE-2023-51764 and relatives); the MTA in front of us speaks CRLF.
//! - No limit on line length in DATA. RFC 5321 §4.5.3.1.6 sets 1000 octets,
//!   but real mail exceeds it and the MTA has already accepted the message;
//!   refusing here would bounce it. Memory is bounded by the message limit
//!   instead: past it, bytes are counted and dropped, never buffered.

/// Where we are relative to a line start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// At the start of a line (also the start of the data).
    LineStart,
    /// After a "." at a line start.
    Dot,
    /// After "." CR at a line start.
    DotCr,
    /// Inside a line.
    Mid,
    /// After a CR inside a line.
    Cr,
}

/// Accumulates one message body.
pub(crate) struct DataReader {
    position: Position,
    data: Vec<u8>,
    /// Unstuffed size seen so far, including what was dropped.
    size: u64,
    limit: u64,
}

// why: by hand, so that debug output never contains the message body.
impl std::fmt::Debug for DataReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataReader")
            .field("position", &self.position)
            .field("size", &self.size)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl DataReader {
    /// A reader that keeps at most `limit` bytes.
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            position: Position::LineStart,
            data: Vec::new(),
            size: 0,
            limit,
        }
    }

    /// Consumes `input`. Returns how many bytes belonged to the data
    /// (terminator included) once the end of data is seen; `None` means all
    /// of `input` was data and more is needed.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Option<usize> {
        let mut rest = input;
        loop {
            if self.position == Position::Mid {
                // Fast path: copy up to the next CR in one go.
                match rest.iter().position(|&b| b == b'\r') {
                    Some(i) => {
                        let (line, tail) = rest.split_at_checked(i + 1)?;
                        self.push(line);
                        self.position = Position::Cr;
                        rest = tail;
                    }
                    None => {
                        self.push(rest);
                        return None;
                    }
                }
                continue;
            }
            let (&b, tail) = rest.split_first()?;
            rest = tail;
            self.position = match (self.position, b) {
                (Position::LineStart, b'.') => Position::Dot,
                (Position::Dot, b'\r') => Position::DotCr,
                (Position::DotCr, b'\n') => {
                    self.position = Position::LineStart;
                    return Some(input.len() - rest.len());
                }
                (Position::DotCr, _) => {
                    // "." CR then something else: the dot was stuffing.
                    self.push(b"\r");
                    self.after_cr(b)
                }
                (Position::Cr, _) => self.after_cr(b),
                // A dot at a line start followed by more text is dropped.
                (Position::LineStart | Position::Dot | Position::Mid, _) => {
                    self.push(&[b]);
                    if b == b'\r' {
                        Position::Cr
                    } else {
                        Position::Mid
                    }
                }
            };
        }
    }

    fn after_cr(&mut self, b: u8) -> Position {
        self.push(&[b]);
        match b {
            b'\n' => Position::LineStart,
            b'\r' => Position::Cr,
            _ => Position::Mid,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len() as u64);
        if self.size <= self.limit {
            self.data.extend_from_slice(bytes);
        } else if self.data.capacity() > 0 {
            // why: past the limit nothing is kept; free what we had.
            self.data = Vec::new();
        }
    }

    /// Bytes kept so far (for tests of the no-buffering-past-limit rule).
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.data.capacity()
    }

    /// The message, or its size if it went over the limit.
    pub(crate) fn finish(self) -> Result<Vec<u8>, u64> {
        if self.size > self.limit {
            Err(self.size)
        } else {
            Ok(self.data)
        }
    }
}
