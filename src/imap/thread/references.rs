//! THREAD=REFERENCES (RFC 5256 §4), with Dovecot's choices where the RFC
//! leaves room (imaptest's thread scripts check them):
//!
//! 1. Each message, in mailbox order, gets the node of its Message-ID (a
//!    fresh node when it has none, or when an earlier message has the
//!    same one). Its references are linked parent to child, a link only
//!    made when the child has no parent yet and it makes no loop; then
//!    the message goes under its last reference (a different parent it
//!    got from an earlier message's References is dropped), unless that
//!    makes a loop.
//! 2. to 4. The nodes without parent are the roots. Dummies (referred to,
//!    not here) go away, their children moving up to the nearest message
//!    above; a dummy at the top stays while it has two children or more,
//!    one with a single child gives way to that child.
//! 5. Roots with the same base subject merge: a dummy takes the other in,
//!    a reply goes under a non-reply, two of a kind go under a new dummy.
//! 6. Siblings are ordered by sent date (a dummy by its first child's),
//!    then mailbox order.
//!
//! Step 1 is [`super::links`]. Hostile input: nothing recurses, and the
//! loop checks of step 1 have a budget.

use std::collections::HashMap;

use super::forest::{by_sent, Entry, Forest};
use super::links::{Links, Node};

/// A thread at the top during steps 4 to 6.
#[derive(Debug, Clone)]
struct Root {
    node: usize,
    dummy: bool,
    /// Merged into another thread, or an empty dummy: not shown.
    gone: bool,
    /// The entry its place among the roots is decided by.
    first: usize,
    /// Step 5: the root it merges into (an index into the roots).
    into: Option<usize>,
    reply: bool,
}

/// THREAD=REFERENCES over `entries` (in mailbox order).
pub(crate) fn references(entries: &[Entry]) -> Forest {
    let nodes = Links::build(entries);
    let mut forest = prune(&nodes);
    let mut roots: Vec<Root> = forest
        .roots
        .iter()
        .map(|&node| Root {
            node,
            dummy: forest.entry.get(node).is_some_and(Option::is_none),
            gone: false,
            first: 0,
            into: None,
            reply: false,
        })
        .collect();
    order_roots(&mut forest, &mut roots, entries);
    gather_subjects(&forest, &mut roots, entries);
    if merge_subjects(&mut forest, &mut roots) {
        order_roots(&mut forest, &mut roots, entries);
    }
    forest.roots = roots.iter().filter(|r| !r.gone).map(|r| r.node).collect();
    for kids in &mut forest.children {
        kids.sort_by(|&a, &b| first_entry(&forest.entry, a, b, entries));
    }
    forest
}

fn first_entry(
    entry: &[Option<usize>],
    a: usize,
    b: usize,
    entries: &[Entry],
) -> std::cmp::Ordering {
    let e = |n: usize| entry.get(n).copied().flatten().unwrap_or(usize::MAX);
    by_sent(entries, e(a), e(b))
}

/// Steps 2 to 4: each message under its nearest message above, or under
/// the dummy at the top of its thread when there is none.
fn prune(nodes: &[Node]) -> Forest {
    // The node a node's children go under: itself when it is a message
    // or at the top, else that of its parent (filled in top-down order
    // with a stack, as chains of dummies can be long).
    let mut anchor: Vec<Option<usize>> = vec![None; nodes.len()];
    for start in 0..nodes.len() {
        let mut path = Vec::new();
        let mut at = start;
        let found = loop {
            if let Some(a) = anchor.get(at).copied().flatten() {
                break a;
            }
            let node = nodes.get(at);
            match node.and_then(|n| n.parent) {
                Some(p) if node.is_some_and(|n| n.entry.is_none()) => {
                    path.push(at);
                    at = p;
                }
                _ => break at,
            }
        };
        if let Some(slot) = anchor.get_mut(at) {
            *slot = Some(found);
        }
        for n in path {
            if let Some(slot) = anchor.get_mut(n) {
                *slot = Some(found);
            }
        }
    }
    let mut forest = Forest {
        entry: nodes.iter().map(|n| n.entry).collect(),
        children: vec![Vec::new(); nodes.len()],
        roots: Vec::new(),
    };
    for (i, n) in nodes.iter().enumerate() {
        match n.parent {
            None => forest.roots.push(i),
            Some(p) if n.entry.is_some() => {
                if let Some(kids) = anchor
                    .get(p)
                    .copied()
                    .flatten()
                    .and_then(|a| forest.children.get_mut(a))
                {
                    kids.push(i);
                }
            }
            Some(_) => {}
        }
    }
    forest
}

/// Sorts the roots by their first message; a dummy without children
/// goes, one with a single child gives way to it.
fn order_roots(forest: &mut Forest, roots: &mut [Root], entries: &[Entry]) {
    for root in roots.iter_mut().filter(|r| !r.gone) {
        if !root.dummy {
            root.first = forest.entry.get(root.node).copied().flatten().unwrap_or(0);
            continue;
        }
        let Some(kids) = forest.children.get_mut(root.node) else {
            root.gone = true;
            continue;
        };
        kids.sort_by(|&a, &b| first_entry(&forest.entry, a, b, entries));
        match kids.as_slice() {
            [] => root.gone = true,
            [only] => {
                root.node = *only;
                root.dummy = false;
                root.first = forest.entry.get(*only).copied().flatten().unwrap_or(0);
            }
            [first, ..] => {
                root.first = forest.entry.get(*first).copied().flatten().unwrap_or(0);
            }
        }
    }
    roots.sort_by(|a, b| by_sent(entries, a.first, b.first));
}

/// Step 5 B: the subject table, noting in `into` which root each root
/// merges into.
fn gather_subjects(forest: &Forest, roots: &mut [Root], entries: &[Entry]) {
    let mut table: HashMap<String, usize> = HashMap::new();
    for i in 0..roots.len() {
        let Some(root) = roots.get(i) else { break };
        if root.gone {
            continue;
        }
        let subject_of = if root.dummy {
            forest
                .children
                .get(root.node)
                .and_then(|k| k.first())
                .copied()
        } else {
            Some(root.node)
        };
        let Some(e) = subject_of.and_then(|n| forest.entry.get(n).copied().flatten()) else {
            continue;
        };
        let Some((base, reply)) = entries.get(e).map(Entry::base_subject) else {
            continue;
        };
        if base.is_empty() {
            continue;
        }
        let dummy = root.dummy;
        match table.get(&base).copied() {
            None => {
                table.insert(base, i);
            }
            Some(held) => {
                let replace = roots
                    .get(held)
                    .is_some_and(|h| !h.dummy && (dummy || (h.reply && !reply)));
                if replace {
                    if let Some(h) = roots.get_mut(held) {
                        h.into = Some(i);
                    }
                    table.insert(base, i);
                } else if let Some(r) = roots.get_mut(i) {
                    r.into = Some(held);
                }
            }
        }
        if let Some(r) = roots.get_mut(i) {
            r.reply = reply;
        }
    }
}

/// Step 5 C: each root that has somewhere to go merges there. Whether
/// anything merged.
fn merge_subjects(forest: &mut Forest, roots: &mut Vec<Root>) -> bool {
    let mut changed = false;
    for i in 0..roots.len() {
        let Some(cur) = roots.get(i).cloned() else {
            break;
        };
        if cur.gone || cur.into.is_none() {
            continue;
        }
        changed = true;
        let mut top = i;
        let mut hops = 0;
        while let Some(next) = roots.get(top).and_then(|r| r.into) {
            top = next;
            hops += 1;
            if hops > roots.len() {
                break;
            }
        }
        let Some(held) = roots.get(top).cloned() else {
            continue;
        };
        if cur.dummy {
            if held.dummy {
                let moved = forest
                    .children
                    .get_mut(cur.node)
                    .map(std::mem::take)
                    .unwrap_or_default();
                if let Some(kids) = forest.children.get_mut(held.node) {
                    kids.extend(moved);
                }
                mark_gone(roots, i);
            }
        } else if held.dummy || (cur.reply && !held.reply) {
            if let Some(kids) = forest.children.get_mut(held.node) {
                kids.push(cur.node);
            }
            mark_gone(roots, i);
        } else {
            under_new_dummy(forest, roots, top, i);
        }
    }
    changed
}

/// Step 5 C, last case: a new dummy at the top takes in the roots `held`
/// and `cur`, and stands for their subject from now on.
fn under_new_dummy(forest: &mut Forest, roots: &mut Vec<Root>, held: usize, cur: usize) {
    let node = |i: usize| roots.get(i).map(|r| r.node);
    let (Some(a), Some(b)) = (node(held), node(cur)) else {
        return;
    };
    let dummy = forest.entry.len();
    forest.entry.push(None);
    forest.children.push(vec![a, b]);
    let new = roots.len();
    if let Some(h) = roots.get_mut(held) {
        h.into = Some(new);
        h.gone = true;
    }
    mark_gone(roots, cur);
    roots.push(Root {
        node: dummy,
        dummy: true,
        gone: false,
        first: 0,
        into: None,
        reply: false,
    });
}

fn mark_gone(roots: &mut [Root], i: usize) {
    if let Some(r) = roots.get_mut(i) {
        r.gone = true;
    }
}

#[cfg(test)]
mod tests {
    use super::super::forest::tests::entry;
    use super::*;

    /// An entry with a Message-ID and references (ids without brackets).
    fn mail(n: u32, sent: i64, subject: &str, id: Option<&str>, refs: &[&str]) -> Entry {
        Entry {
            message_id: id.map(str::to_string),
            references: refs.iter().map(|r| r.to_string()).collect(),
            ..entry(n, sent, subject)
        }
    }

    fn thread(entries: &[Entry]) -> String {
        let text = String::from_utf8(references(entries).response(entries)).unwrap();
        text.trim_end().to_string()
    }

    /// imaptest's thread, thread2 .. thread8 (their mailboxes as entries,
    /// also after their expunges).
    #[test]
    fn imaptest_scripts() {
        let (a, b, c) = (Some("a@b"), Some("b@b"), Some("c@b"));
        // thread: a loop b -> c -> b is broken; c's guessed parent a goes.
        let t1 = [
            mail(1, 17, "", a, &[]),
            mail(2, 15, "", b, &["a@b", "c@b"]),
            mail(3, 16, "", c, &["b@b"]),
        ];
        assert_eq!(thread(&t1), "* THREAD (3 2)(1)");
        let t1b = [
            mail(1, 15, "", b, &["a@b", "c@b"]),
            mail(2, 16, "", c, &["b@b"]),
        ];
        assert_eq!(thread(&t1b), "* THREAD (2 1)");
        // thread2: a duplicate Message-ID makes its own thread.
        assert_eq!(
            thread(&[mail(1, 1, "", a, &[]), mail(2, 1, "", a, &[])]),
            "* THREAD (1)(2)"
        );
        // thread3, thread4: a reply goes under the same base subject.
        let t3 = [mail(1, 1, "foo", a, &[]), mail(2, 2, "Re: foo", a, &[])];
        assert_eq!(thread(&t3), "* THREAD (1 2)");
        let t4 = [
            mail(1, 1, "foo", a, &[]),
            mail(2, 2, "Re: foo", b, &["c@b"]),
        ];
        assert_eq!(thread(&t4), "* THREAD (1 2)");
        // thread5
        let t5 = [
            mail(1, 17, "", Some("1@b"), &[]),
            mail(2, 15, "", Some("2@b"), &["1@b"]),
            mail(3, 15, "", Some("3@b"), &["1@b"]),
            mail(4, 15, "", Some("4@b"), &["2@b"]),
        ];
        assert_eq!(thread(&t5), "* THREAD (1 (2 4)(3))");
        let t5b = [
            mail(1, 15, "", Some("3@b"), &["1@b"]),
            mail(2, 15, "", Some("4@b"), &["2@b"]),
        ];
        assert_eq!(thread(&t5b), "* THREAD (1)(2)");
        let mut t5c = t5b.to_vec();
        t5c.push(mail(3, 15, "", Some("5@b"), &["2@b"]));
        assert_eq!(thread(&t5c), "* THREAD (1)((2)(3))");
        // thread6: no Message-ID, one common reference.
        assert_eq!(
            thread(&[
                mail(1, 1, "", None, &["a@b"]),
                mail(2, 2, "", None, &["a@b"])
            ]),
            "* THREAD ((1)(2))"
        );
        // thread7
        let t7 = [
            mail(1, 1, "", a, &[]),
            mail(2, 1, "", b, &["a@b"]),
            mail(3, 1, "", c, &["b@b"]),
            mail(4, 1, "", b, &["a@b"]),
        ];
        assert_eq!(thread(&t7), "* THREAD (1 (2 3)(4))");
        let t7b = [
            mail(1, 1, "", a, &[]),
            mail(2, 1, "", c, &["b@b"]),
            mail(3, 1, "", b, &["a@b"]),
        ];
        assert_eq!(thread(&t7b), "* THREAD (1 3 2)");
        // thread8
        assert_eq!(
            thread(&[mail(1, 1, "", a, &[]), mail(2, 1, "", b, &["a@b"])]),
            "* THREAD (1 2)"
        );
        assert_eq!(thread(&[mail(1, 1, "", a, &[])]), "* THREAD (1)");
        assert_eq!(thread(&[]), "* THREAD");
    }

    /// Step 5: dummies take in, replies go under, equals get a dummy.
    #[test]
    fn subjects_merge() {
        let entries = [
            mail(1, 1, "hello", Some("1"), &[]),
            mail(2, 2, "Hello", Some("2"), &[]),
            mail(3, 3, "Re: hello", Some("3"), &[]),
            mail(4, 4, "other", Some("4"), &["x"]),
            mail(5, 5, "Re: other", Some("5"), &["x"]),
            mail(6, 6, "Fwd: other", Some("6"), &[]),
            mail(7, 7, "", Some("7"), &[]),
            mail(8, 8, "", Some("8"), &[]),
        ];
        assert_eq!(thread(&entries), "* THREAD ((1)(2)(3))((4)(5)(6))(7)(8)");
    }

    /// Loops, self references and a chain of 10,000 dummies.
    #[test]
    fn hostile_references() {
        let looped = [
            mail(1, 1, "", Some("a"), &["b"]),
            mail(2, 2, "", Some("b"), &["a"]),
            mail(3, 3, "", Some("c"), &["c", "c"]),
            mail(4, 4, "", Some("d"), &["d", "e", "d"]),
        ];
        // B is above A (A's link to B came first).
        assert_eq!(thread(&looped), "* THREAD (2 1)(3)(4)");
        let chain: Vec<String> = (0..10_000).map(|i| format!("id{i}")).collect();
        let refs: Vec<&str> = chain.iter().map(String::as_str).collect();
        let mut reversed = refs.clone();
        reversed.reverse();
        let entries = [
            mail(1, 1, "", Some("top"), &refs),
            mail(2, 2, "", Some("id5000"), &reversed),
            mail(3, 3, "", Some("other"), &refs),
            mail(4, 4, "", Some("id0"), &["top"]),
        ];
        // 2 (id5000) moved up under id0 (4); 1 and 3 sit under id9999,
        // a dummy below 2.
        assert_eq!(thread(&entries), "* THREAD (4 2 (1)(3))");
    }

    /// Every message replying to the one before, 200,000 deep.
    #[test]
    fn long_chains_stay_flat() {
        let ids: Vec<String> = (0..200_000).map(|i| format!("m{i}")).collect();
        let entries: Vec<Entry> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let refs: Vec<&str> = i
                    .checked_sub(1)
                    .map(|p| ids[p].as_str())
                    .into_iter()
                    .collect();
                let n = u32::try_from(i + 1).unwrap();
                mail(n, i64::from(n), "", Some(id), &refs)
            })
            .collect();
        let text = thread(&entries);
        assert!(text.starts_with("* THREAD (1 2 3 4 "));
        assert_eq!(text.matches('(').count(), 1);
    }
}
