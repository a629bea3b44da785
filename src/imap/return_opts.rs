//! The return options of SEARCH and SORT with RETURN: MIN, MAX, COUNT
//! and ALL (RFC 4731 §3.1), SAVE (RFC 5182), and the context options of
//! RFC 5267 §4: PARTIAL, UPDATE and CONTEXT.
//!
//! ```abnf
//! search-return-opt = "MIN" / "MAX" / "ALL" / "COUNT" / "SAVE" /
//!                     "CONTEXT" / "UPDATE" / "PARTIAL" SP partial-range
//! partial-range     = nz-number ":" nz-number
//! ```
//!
//! CONTEXT only hints that the client may ask for updates later; it asks
//! for nothing by itself, so `RETURN (CONTEXT)` is `RETURN ()`, which
//! means ALL. PARTIAL `m:n` names positions m to n (1-based, either order:
//! `4:2` is `2:4`) of the result; it may not be combined with ALL (the
//! two would answer the same messages twice). RFC 9394's negative ranges
//! (counted from the end) are refused with a clear BAD: no client this
//! server knows sends them and the RFC 5267 grammar has none.

use std::num::NonZeroU32;

/// What `RETURN (...)` asked for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Returns {
    pub(crate) min: bool,
    pub(crate) max: bool,
    pub(crate) count: bool,
    pub(crate) all: bool,
    /// SEARCHRES (RFC 5182 §2.4): keep the result for `$`.
    pub(crate) save: bool,
    /// RFC 5267 §4.3: keep the search running and report changes.
    pub(crate) update: bool,
    /// RFC 5267 §4.4: positions `low..=high` of the result.
    pub(crate) partial: Option<Partial>,
}

impl Returns {
    /// Whether the answer has an ESEARCH line (SAVE alone has none,
    /// RFC 5182 §2.4).
    pub(crate) fn answers(self) -> bool {
        self.min || self.max || self.count || self.all || self.update || self.partial.is_some()
    }
}

/// A PARTIAL range, `low <= high`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Partial {
    pub(crate) low: NonZeroU32,
    pub(crate) high: NonZeroU32,
}

impl Partial {
    /// `m:n` with both numbers in 1..=4294967295, put in order.
    pub(crate) fn parse(word: &[u8]) -> Result<Self, String> {
        let text = std::str::from_utf8(word).map_err(|_| "PARTIAL range is not text")?;
        let bad = || {
            format!(
                "PARTIAL range {:?} is not m:n with numbers from 1 to 4294967295",
                shown(text)
            )
        };
        if text.starts_with('-') {
            return Err("negative PARTIAL ranges (RFC 9394) are not supported here".to_string());
        }
        let (a, b) = text.split_once(':').ok_or_else(bad)?;
        let number = |s: &str| -> Result<NonZeroU32, String> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(bad());
            }
            s.parse::<NonZeroU32>().map_err(|_| bad())
        };
        let (a, b) = (number(a)?, number(b)?);
        Ok(Self {
            low: a.min(b),
            high: a.max(b),
        })
    }

    /// Positions `low..=high` of `found` (empty past its end).
    pub(crate) fn of<T>(self, found: &[T]) -> &[T] {
        let start = usize::try_from(self.low.get() - 1).unwrap_or(usize::MAX);
        let end = usize::try_from(self.high.get())
            .unwrap_or(usize::MAX)
            .min(found.len());
        found.get(start..end).unwrap_or_default()
    }
}

/// The return options between the parentheses of `RETURN (...)`.
pub(crate) fn parse_returns(options: &[u8]) -> Result<Returns, String> {
    let mut returns = Returns::default();
    let mut words = options.split(|&b| b == b' ').filter(|w| !w.is_empty());
    while let Some(word) = words.next() {
        let flag = match word.to_ascii_uppercase().as_slice() {
            b"MIN" => &mut returns.min,
            b"MAX" => &mut returns.max,
            b"COUNT" => &mut returns.count,
            b"ALL" => &mut returns.all,
            b"SAVE" => &mut returns.save,
            b"UPDATE" => &mut returns.update,
            b"CONTEXT" => continue,
            b"PARTIAL" => {
                if returns.partial.is_some() {
                    return Err("RETURN option PARTIAL given twice".to_string());
                }
                let range = words.next().ok_or("PARTIAL needs a range m:n")?;
                returns.partial = Some(Partial::parse(range)?);
                continue;
            }
            other => {
                return Err(format!(
                "unknown RETURN option {} (MIN, MAX, COUNT, ALL, SAVE, CONTEXT, UPDATE, PARTIAL)",
                shown(&String::from_utf8_lossy(other))
            ))
            }
        };
        if *flag {
            return Err(format!(
                "RETURN option {} given twice",
                shown(&String::from_utf8_lossy(word))
            ));
        }
        *flag = true;
    }
    if returns.partial.is_some() && returns.all {
        return Err("PARTIAL and ALL cannot be combined (RFC 5267, section 4.4)".to_string());
    }
    // RFC 4731 §3.1: an empty list means ALL.
    if returns == Returns::default() {
        returns.all = true;
    }
    Ok(returns)
}

/// A word of the command for an error text, cut short.
pub(crate) fn shown(word: &str) -> String {
    word.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(low: u32, high: u32) -> Option<Partial> {
        Some(Partial {
            low: NonZeroU32::new(low).unwrap(),
            high: NonZeroU32::new(high).unwrap(),
        })
    }

    #[test]
    fn options_parse() {
        let r = parse_returns(b"").unwrap();
        assert!(r.all && !r.update);
        let r = parse_returns(b"CONTEXT").unwrap();
        assert!(r.all);
        let r = parse_returns(b"update").unwrap();
        assert!(r.update && !r.all && r.answers());
        let r = parse_returns(b"PARTIAL 4:2 COUNT").unwrap();
        assert_eq!(r.partial, range(2, 4));
        assert!(r.count);
        assert!(!parse_returns(b"SAVE").unwrap().answers());
        for bad in [
            &b"PARTIAL"[..],
            b"PARTIAL 1",
            b"PARTIAL 0:5",
            b"PARTIAL 1:*",
            b"PARTIAL *:1",
            b"PARTIAL 1:4294967296",
            b"PARTIAL -1:-5",
            b"PARTIAL 1:2 PARTIAL 3:4",
            b"PARTIAL 1:2 ALL",
            b"UPDATE UPDATE",
            b"FOO",
        ] {
            assert!(
                parse_returns(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(
            parse_returns(b"PARTIAL 1:4294967295").unwrap().partial,
            range(1, u32::MAX)
        );
    }

    #[test]
    fn partial_slices() {
        let v: Vec<u32> = (1..=5).collect();
        assert_eq!(range(2, 4).unwrap().of(&v), &[2, 3, 4]);
        assert_eq!(range(1, 6).unwrap().of(&v), &[1, 2, 3, 4, 5]);
        assert!(range(6, 6).unwrap().of(&v).is_empty());
        assert!(range(9, u32::MAX).unwrap().of(&v).is_empty());
    }
}
