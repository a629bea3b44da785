//! LSUB (RFC 3501 §6.3.9): the subscribed mailboxes that match a
//! pattern, and the parents that `%` stops at on the way to one.

use imap_next::imap_types::flag::FlagNameAttribute;

use super::mailboxes::{matches_pattern, DELIMITER};
use crate::store::Mailbox;

/// The LSUB answer for `pattern` (RFC 3501 §6.3.9), in name order: each
/// subscribed mailbox that matches, and each parent that is not
/// subscribed but that `%` stops at on the way to a subscribed
/// descendant, flagged `\Noselect` ("foo/bar" subscribed, "foo" not:
/// `LSUB "" %` answers `(\Noselect) "/" foo`).
///
/// `kept` are subscribed names whose mailbox is gone (RFC 3501 §6.3.6:
/// they stay subscribed); they are listed as any subscribed name.
pub(crate) fn lines(
    pattern: &str,
    all: &[Mailbox],
    kept: &[String],
) -> Vec<(String, Vec<FlagNameAttribute<'static>>)> {
    let subscribed: std::collections::BTreeSet<&str> = all
        .iter()
        .filter(|m| m.subscribed)
        .map(|m| m.name.as_str())
        .chain(kept.iter().map(String::as_str))
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for &name in &subscribed {
        if matches_pattern(pattern, name) {
            out.insert(name.to_string(), Vec::new());
            continue;
        }
        if !pattern.contains('%') {
            continue;
        }
        let parents = name
            .match_indices(DELIMITER)
            .filter_map(|(i, _)| name.get(..i));
        for parent in parents {
            if !subscribed.contains(parent) && matches_pattern(pattern, parent) {
                out.entry(parent.to_string())
                    .or_insert_with(|| vec![FlagNameAttribute::Noselect]);
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    fn mailbox(name: &str, subscribed: bool) -> crate::store::Mailbox {
        crate::store::Mailbox {
            id: crate::store::MailboxId(1),
            name: name.into(),
            parent: None,
            uid_validity: std::num::NonZeroU32::MIN,
            uid_next: crate::store::Uid::FIRST,
            highest_modseq: 1,
            role: None,
            subscribed,
            exists: 0,
        }
    }

    #[test]
    fn lsub_percent_shows_unsubscribed_parents_as_noselect() {
        let all = [
            mailbox("a", false),
            mailbox("a/b", true),
            mailbox("a/c", false),
            mailbox("a/c/d", true),
        ];
        let lines = super::lines("a/%", &all, &[]);
        let names: Vec<(&str, usize)> = lines.iter().map(|(n, i)| (n.as_str(), i.len())).collect();
        assert_eq!(names, vec![("a/b", 0), ("a/c", 1)]);
        let lines = super::lines("*", &all, &[]);
        let names: Vec<&str> = lines.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec!["a/b", "a/c/d"]);
    }
}
