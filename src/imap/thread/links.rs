//! Step 1 of THREAD=REFERENCES (RFC 5256 §4): the Message-ID table and
//! the parent links between the messages and the ids they refer to.
//!
//! Each message, in mailbox order, gets the node of its Message-ID (a
//! fresh node when it has none, or when an earlier message has the same
//! one). Its references are linked parent to child, a link only made
//! when the child has no parent yet and it makes no loop; then the
//! message goes under its last reference (a different parent it got
//! from an earlier message's References is dropped), unless that makes
//! a loop. The loop checks (a walk up the parents) share a budget of
//! [`LOOP_CHECK_STEPS`] per command, after which a link whose loop check
//! would not fit is not made.

use std::collections::HashMap;

use super::forest::Entry;

/// Parent steps the loop checks of one THREAD command may walk, in all.
/// Real threads need a few per link; the budget only bites on crafted
/// References fields (a loop check walks the whole depth above the new
/// parent), and keeps one command to well under a second of CPU.
const LOOP_CHECK_STEPS: u64 = 20_000_000;

/// A node of step 1: a message, or a dummy for a Message-ID only
/// referred to.
#[derive(Debug, Clone, Default)]
pub(super) struct Node {
    pub(super) entry: Option<usize>,
    pub(super) parent: Option<usize>,
    children: u32,
}

/// Step 1: the message-id table and the parent links.
pub(super) struct Links<'a> {
    nodes: Vec<Node>,
    ids: HashMap<&'a str, usize>,
    budget: u64,
}

impl<'a> Links<'a> {
    pub(super) fn build(entries: &'a [Entry]) -> Vec<Node> {
        let mut links = Links {
            nodes: Vec::with_capacity(entries.len()),
            ids: HashMap::with_capacity(entries.len()),
            budget: LOOP_CHECK_STEPS,
        };
        for (i, e) in entries.iter().enumerate() {
            links.add(i, e);
        }
        links.nodes
    }

    fn add(&mut self, index: usize, e: &'a Entry) {
        let own = match e.message_id.as_deref() {
            Some(id) => match self.ids.get(id) {
                Some(&n) if self.nodes.get(n).is_some_and(|n| n.entry.is_none()) => n,
                Some(_) => self.fresh(),
                None => self.node_of(id),
            },
            None => self.fresh(),
        };
        if let Some(node) = self.nodes.get_mut(own) {
            node.entry = Some(index);
        }
        let mut last = None;
        for id in &e.references {
            let node = self.node_of(id);
            if let Some(parent) = last {
                self.link(parent, node);
            }
            last = Some(node);
        }
        let current = self.nodes.get(own).and_then(|n| n.parent);
        if current.is_some() && current != last {
            self.unlink(own);
        }
        if let Some(parent) = last {
            self.link(parent, own);
        }
    }

    fn fresh(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    fn node_of(&mut self, id: &'a str) -> usize {
        if let Some(&n) = self.ids.get(id) {
            return n;
        }
        let n = self.fresh();
        self.ids.insert(id, n);
        n
    }

    /// Makes `parent` the parent of `child` if `child` has none and it
    /// makes no loop (a link that exists stays as it is).
    fn link(&mut self, parent: usize, child: usize) {
        let Some(c) = self.nodes.get(child) else {
            return;
        };
        if parent == child || c.parent.is_some() {
            return;
        }
        // why the child count: only a node with children can be above
        // `parent`, so most links need no walk at all.
        if c.children > 0 && self.is_above(child, parent) {
            return;
        }
        if let Some(c) = self.nodes.get_mut(child) {
            c.parent = Some(parent);
        }
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children += 1;
        }
    }

    fn unlink(&mut self, child: usize) {
        let parent = self.nodes.get_mut(child).and_then(|c| c.parent.take());
        if let Some(p) = parent.and_then(|p| self.nodes.get_mut(p)) {
            p.children = p.children.saturating_sub(1);
        }
    }

    /// Whether `above` is `node` or one of its ancestors; true too when
    /// the budget runs out (the link is then not made).
    fn is_above(&mut self, above: usize, node: usize) -> bool {
        let mut at = Some(node);
        while let Some(n) = at {
            if n == above {
                return true;
            }
            if self.budget == 0 {
                return true;
            }
            self.budget -= 1;
            at = self.nodes.get(n).and_then(|n| n.parent);
        }
        false
    }
}
