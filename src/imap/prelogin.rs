//! Limits on what a client may send before it has logged in.
//!
//! An unauthenticated client needs a few hundred bytes per command
//! (CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE PLAIN, ID), yet the protocol
//! layer accepts literals and command lines up to the APPEND limit (50 MiB)
//! and answers a non-synchronising literal over its limit with silence
//! while it reads and discards the bytes. Ten anonymous connections each
//! announcing 50 MB took the server from 33 to 635 MiB.
//!
//! [`CommandMeter`] watches the raw input before it reaches the protocol
//! layer and stops a command at [`MAX_PRELOGIN_COMMAND_BYTES`]: a literal
//! announced larger than what is left is refused as soon as its `{N}` or
//! `{N+}` (RFC 7888) is seen, before its bytes are read, and a line that
//! grows past the limit is refused as it grows. Literal contents are
//! skipped by count, so bytes inside a literal are never taken for syntax.
//! Sessions that have logged in are not metered.

/// Largest command (its lines and literals together) accepted before
/// login. why 64 KiB: the largest ID that RFC 2971 §3.3 allows (30
/// pairs of 30-octet fields and 1024-octet values) is about 32 KB and
/// may come before login (imaptest's `id` script sends 31.8 KB); a LOGIN
/// or an AUTHENTICATE PLAIN response is far smaller; 64 KiB is
/// Dovecot's line limit too. Ten anonymous connections at the limit
/// hold well under a MiB.
pub(crate) const MAX_PRELOGIN_COMMAND_BYTES: u64 = 64 * 1024;

/// Longest literal announcement looked at (`{` + 20 digits + `+}`).
const MAX_ANNOUNCEMENT_BYTES: usize = 24;

/// Why a pre-login command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TooLarge {
    /// A literal announced larger than the command may be.
    #[error("literal of {announced} bytes before login; log in first, commands before login may have at most {MAX_PRELOGIN_COMMAND_BYTES} bytes")]
    Literal {
        /// The announced length.
        announced: u64,
    },
    /// A command that grew past the limit.
    #[error("command over {MAX_PRELOGIN_COMMAND_BYTES} bytes before login; log in first")]
    Command,
}

/// Counts the bytes of the command being received.
#[derive(Debug, Default, Clone)]
pub(crate) struct CommandMeter {
    /// Bytes of the current command so far.
    command_bytes: u64,
    /// Literal bytes still to skip.
    literal_left: u64,
    /// The tail of the current line, enough to recognise `{N}` / `{N+}`
    /// at its end.
    tail: Vec<u8>,
    /// Whether bytes of the current line fell out of `tail`.
    truncated: bool,
}

impl CommandMeter {
    /// Accounts for `input`; an error means the command is over the limit.
    pub(crate) fn feed(&mut self, input: &[u8]) -> Result<(), TooLarge> {
        let mut rest = input;
        while !rest.is_empty() {
            if self.literal_left > 0 {
                let take = usize::try_from(self.literal_left)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                self.literal_left -= take as u64;
                rest = rest.get(take..).unwrap_or_default();
                continue;
            }
            let Some((&byte, after)) = rest.split_first() else {
                break;
            };
            rest = after;
            self.add(1)?;
            if byte != b'\n' {
                if self.tail.len() == MAX_ANNOUNCEMENT_BYTES {
                    self.tail.remove(0);
                    self.truncated = true;
                }
                self.tail.push(byte);
                continue;
            }
            match literal_announced(&self.tail, self.truncated) {
                Some(announced) => {
                    self.add(announced)
                        .map_err(|_| TooLarge::Literal { announced })?;
                    self.literal_left = announced;
                }
                None => self.command_bytes = 0,
            }
            self.tail.clear();
            self.truncated = false;
        }
        Ok(())
    }

    fn add(&mut self, bytes: u64) -> Result<(), TooLarge> {
        self.command_bytes = self.command_bytes.saturating_add(bytes);
        if self.command_bytes > MAX_PRELOGIN_COMMAND_BYTES {
            return Err(TooLarge::Command);
        }
        Ok(())
    }
}

/// The length of a literal announced at the end of `line` (the last
/// bytes of a line, without its LF; `truncated` when its start is gone):
/// `{N}`, `{N+}` or `~{N}`, optionally followed by CR. Digits that fill
/// the whole kept tail announce more than any limit.
fn literal_announced(line: &[u8], truncated: bool) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let inner = inner.strip_suffix(b"+").unwrap_or(inner);
    let digits = match inner.iter().rposition(|&b| b == b'{') {
        Some(open) => inner.get(open + 1..)?,
        None if truncated && !inner.is_empty() && inner.iter().all(u8::is_ascii_digit) => {
            return Some(u64::MAX)
        }
        None => return None,
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        std::str::from_utf8(digits)
            .ok()?
            .parse::<u64>()
            .unwrap_or(u64::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_commands_and_literals_pass() {
        let mut m = CommandMeter::default();
        m.feed(b"a LOGIN {5}\r\nalice {8+}\r\npassword\r\n")
            .unwrap();
        m.feed(b"b CAPABILITY\r\n").unwrap();
        for _ in 0..100 {
            m.feed(&[b'x'; 1000]).unwrap();
            m.feed(b"\r\n").unwrap();
        }
    }

    #[test]
    fn a_large_literal_is_refused_at_its_announcement() {
        let mut m = CommandMeter::default();
        assert_eq!(
            m.feed(b"a LOGIN {50000000+}\r\n"),
            Err(TooLarge::Literal {
                announced: 50_000_000
            })
        );
        let mut m = CommandMeter::default();
        assert!(m.feed(b"a LOGIN ~{99999999999999999999999}\r\n").is_err());
    }

    #[test]
    fn a_long_line_is_refused_as_it_grows() {
        let mut m = CommandMeter::default();
        let r = (0..100).try_for_each(|_| m.feed(&[b'x'; 1000]));
        assert_eq!(r, Err(TooLarge::Command));
        let mut m = CommandMeter::default();
        let id = format!("a ID ({})\r\n", ["\"field\" \"value\""; 30].join(" "))
            .replace("value", &"v".repeat(1024));
        assert_eq!(m.feed(id.as_bytes()), Ok(()));
        let mut m = CommandMeter::default();
        let r = (0..100).try_for_each(|_| m.feed(&[b'x'; 1000]));
        assert_eq!(r, Err(TooLarge::Command));
    }

    #[test]
    fn literal_contents_are_not_syntax() {
        let mut m = CommandMeter::default();
        // The literal's bytes look like a huge announcement; they are data.
        m.feed(b"a LOGIN {14}\r\n{99999999}\r\n\r\n pw\r\n")
            .unwrap();
        m.feed(b"b NOOP\r\n").unwrap();
    }

    proptest! {
        /// The verdict does not depend on how TCP splits the input.
        #[test]
        fn chunking_does_not_matter(
            parts in proptest::collection::vec(("[a-z ]{0,40}", proptest::option::of(0u64..30_000), any::<bool>()), 1..8),
            cuts in proptest::collection::vec(1usize..50, 1..40),
        ) {
            let mut input = Vec::new();
            for (text, literal, plus) in &parts {
                input.extend_from_slice(text.as_bytes());
                match literal {
                    Some(n) => {
                        input.extend_from_slice(format!("{{{n}{}}}\r\n", if *plus { "+" } else { "" }).as_bytes());
                        input.extend(std::iter::repeat_n(b'z', usize::try_from(*n).unwrap()));
                    }
                    None => input.extend_from_slice(b"\r\n"),
                }
            }
            let whole = CommandMeter::default().feed(&input).is_ok();
            let mut m = CommandMeter::default();
            let mut rest = &input[..];
            let mut ok = true;
            for cut in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let (a, b) = rest.split_at((*cut).min(rest.len()));
                if m.feed(a).is_err() { ok = false; break; }
                rest = b;
            }
            prop_assert_eq!(whole, ok);
        }
    }
}
