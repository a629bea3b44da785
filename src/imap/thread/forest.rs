//! The input and output of threading: one [`Entry`] per message, a
//! [`Forest`] of threads, its `thread-list`s on the wire (RFC 5256 §4),
//! and ORDEREDSUBJECT (RFC 5256 §3), which needs nothing more.
//!
//! Nothing here recurses: a thread can be as deep as the mailbox is
//! large, so trees are walked with explicit stacks.

use std::cmp::Ordering;
use std::num::NonZeroU32;

use crate::imap::sort::{base_subject_reply, casemap};

/// One message to thread, given in mailbox order (the order that breaks
/// ties between equal sent dates, RFC 5256 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// What the response names it by: its sequence number, or its UID
    /// for UID THREAD.
    pub(crate) number: NonZeroU32,
    /// Sent date, unix seconds: the `Date:` field in UTC, the internal
    /// date when it is missing or unreadable (RFC 5256 §2.2).
    pub(crate) sent: i64,
    /// The decoded `Subject:` field ("" when missing).
    pub(crate) subject: String,
    /// Its first `<msg-id>` of `Message-ID:`.
    pub(crate) message_id: Option<String>,
    /// The `<msg-id>`s of `References:`, or when there are none the first
    /// of `In-Reply-To:` (RFC 5256 §4 step 1).
    pub(crate) references: Vec<String>,
}

impl Entry {
    /// The subject's base subject, upper-cased for comparison
    /// (i;ascii-casemap, as SORT compares), and whether the message is a
    /// reply or forward.
    pub(crate) fn base_subject(&self) -> (String, bool) {
        let (base, reply) = base_subject_reply(&self.subject);
        (casemap(&base), reply)
    }
}

/// Threads over entries: `roots` in order, each node's children in order.
/// A node is an entry index, or a dummy (a message that is referred to
/// but not here) that groups its children.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Forest {
    /// Per node: its entry, `None` for a dummy.
    pub(crate) entry: Vec<Option<usize>>,
    /// Per node: its children, in output order.
    pub(crate) children: Vec<Vec<usize>>,
    /// The nodes at the top, in output order.
    pub(crate) roots: Vec<usize>,
}

impl Forest {
    /// The `* THREAD` response line (RFC 5256 §4 `thread-data`), CRLF
    /// included.
    pub(crate) fn response(&self, entries: &[Entry]) -> Vec<u8> {
        let mut out = b"* THREAD".to_vec();
        if !self.roots.is_empty() {
            out.push(b' ');
        }
        for &root in &self.roots {
            self.write_list(entries, root, &mut out);
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    /// One `thread-list` for `top`: `(` then its members, one after the
    /// other while each has a single child, then `thread-nested` when one
    /// has several, `)`.
    fn write_list(&self, entries: &[Entry], top: usize, out: &mut Vec<u8>) {
        enum Step {
            Open(usize),
            Close,
        }
        let mut stack = vec![Step::Open(top)];
        while let Some(step) = stack.pop() {
            let mut node = match step {
                Step::Close => {
                    out.push(b')');
                    continue;
                }
                Step::Open(node) => node,
            };
            out.push(b'(');
            let mut first = true;
            let kids = loop {
                let kids = self.children.get(node).map_or(&[][..], Vec::as_slice);
                if let Some(number) = self.number(entries, node) {
                    if !first {
                        out.push(b' ');
                    }
                    out.extend_from_slice(number.to_string().as_bytes());
                    first = false;
                }
                match kids {
                    [only] => node = *only,
                    _ => break kids,
                }
            };
            stack.push(Step::Close);
            if !kids.is_empty() && !first {
                out.push(b' ');
            }
            stack.extend(kids.iter().rev().map(|&k| Step::Open(k)));
        }
    }

    fn number(&self, entries: &[Entry], node: usize) -> Option<NonZeroU32> {
        let e = (*self.entry.get(node)?)?;
        entries.get(e).map(|e| e.number)
    }
}

/// The order of two entries by sent date, then mailbox order.
pub(crate) fn by_sent(entries: &[Entry], a: usize, b: usize) -> Ordering {
    let date = |i: usize| entries.get(i).map_or(i64::MAX, |e| e.sent);
    date(a).cmp(&date(b)).then(a.cmp(&b))
}

/// ORDEREDSUBJECT (RFC 5256 §3): the messages sorted by base subject,
/// then sent date; each run of one base subject is a thread whose first
/// message is the parent of all the others; threads in the order of
/// their first messages' sent dates.
pub(crate) fn ordered_subject(entries: &[Entry]) -> Forest {
    let subjects: Vec<String> = entries.iter().map(|e| e.base_subject().0).collect();
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by(|&a, &b| {
        subjects
            .get(a)
            .cmp(&subjects.get(b))
            .then(by_sent(entries, a, b))
    });
    let mut forest = Forest {
        entry: (0..entries.len()).map(Some).collect(),
        children: vec![Vec::new(); entries.len()],
        roots: Vec::new(),
    };
    let mut current: Option<usize> = None;
    for i in order {
        match current {
            Some(top) if subjects.get(top) == subjects.get(i) => {
                if let Some(kids) = forest.children.get_mut(top) {
                    kids.push(i);
                }
            }
            _ => {
                forest.roots.push(i);
                current = Some(i);
            }
        }
    }
    forest.roots.sort_by(|&a, &b| by_sent(entries, a, b));
    forest
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An entry numbered `n` (its sequence number).
    pub(crate) fn entry(n: u32, sent: i64, subject: &str) -> Entry {
        Entry {
            number: NonZeroU32::new(n).unwrap(),
            sent,
            subject: subject.to_string(),
            message_id: None,
            references: Vec::new(),
        }
    }

    #[test]
    fn lists_are_written_flat_then_nested() {
        let entries: Vec<Entry> = (1..=7).map(|n| entry(n, 0, "")).collect();
        // 0 -> 1 -> {2 -> 3, 4}; dummy 7 -> {5, 6}
        let forest = Forest {
            entry: vec![
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                Some(6),
                None,
            ],
            children: vec![
                vec![1],
                vec![2, 4],
                vec![3],
                vec![],
                vec![],
                vec![],
                vec![],
                vec![5, 6],
            ],
            roots: vec![0, 7],
        };
        assert_eq!(
            String::from_utf8(forest.response(&entries)).unwrap(),
            "* THREAD (1 2 (3 4)(5))((6)(7))\r\n"
        );
        assert_eq!(Forest::default().response(&[]), b"* THREAD\r\n");
    }

    /// A chain of 100,000 and a staircase 50,000 deep (each node with a
    /// leaf and the next step) are written without recursion.
    #[test]
    fn deep_trees_do_not_recurse() {
        let n = 100_000usize;
        let entries: Vec<Entry> = (1..=u32::try_from(n).unwrap())
            .map(|k| entry(k, 0, ""))
            .collect();
        let chain = Forest {
            entry: (0..n).map(Some).collect(),
            children: (0..n)
                .map(|i| if i + 1 < n { vec![i + 1] } else { vec![] })
                .collect(),
            roots: vec![0],
        };
        let text = chain.response(&entries);
        assert!(text.starts_with(b"* THREAD (1 2 3 "));
        assert!(text.ends_with(b" 100000)\r\n"));
        let stairs = Forest {
            entry: (0..n).map(Some).collect(),
            children: (0..n)
                .map(|i| {
                    if i % 2 == 0 && i + 2 < n {
                        vec![i + 1, i + 2]
                    } else {
                        vec![]
                    }
                })
                .collect(),
            roots: vec![0],
        };
        let text = String::from_utf8(stairs.response(&entries)).unwrap();
        assert!(
            text.starts_with("* THREAD (1 (2)(3 (4)(5 "),
            "{}",
            &text[..40]
        );
        assert_eq!(text.matches('(').count(), text.matches(')').count());
    }

    /// imaptest's thread-orderedsubject and thread-orderedsubject2.
    #[test]
    fn ordered_subject_groups_base_subjects() {
        let subjects = [
            "a",
            "C",
            "b",
            "_",
            "[foo] Fwd: [bar] Re: fw: b (fWd)  (fwd)",
            "b (a)",
            "Re: [FWD: c]",
            "[xyz]",
            "",
            " ",
            "Re: b",
            "RE: C",
            "Re: c",
            "Ad: Re: Ad: Re: Ad: x",
            "re: [fwd: [fwd: re: [fwd: babylon]]]",
        ];
        let entries: Vec<Entry> = (1..).zip(subjects).map(|(n, s)| entry(n, 100, s)).collect();
        assert_eq!(
            ordered_subject(&entries).response(&entries),
            b"* THREAD (1)(2 (7)(12)(13))(3 (5)(11))(4)(6)(8)(9 10)(14)(15)\r\n"
        );
        let dates = [10, 9, 8, 7, 30, 29, 28, 27];
        let entries: Vec<Entry> = (1..)
            .zip(dates)
            .map(|(n, d)| entry(n, d, if n % 2 == 1 { "a" } else { "b" }))
            .collect();
        assert_eq!(
            ordered_subject(&entries).response(&entries),
            b"* THREAD (4 (2)(8)(6))(3 (1)(7)(5))\r\n"
        );
        assert_eq!(ordered_subject(&[]).response(&[]), b"* THREAD\r\n");
    }
}
