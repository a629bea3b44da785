//! Mailbox commands of the authenticated state (RFC 9051 §6.3): CREATE,
//! DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, the plain LIST (answered by
//! `list`, with LIST-EXTENDED), LSUB, NAMESPACE (RFC 2342) and ID (RFC
//! 2971).
//!
//! The hierarchy delimiter is `/`, as the store names mailboxes. Names
//! are stored in UTF-8 and travel in modified UTF-7 (`mutf7`), or in
//! UTF-8 to a session that enabled UTF8=ACCEPT or IMAP4rev2 (`utf8`
//! respells its names before they reach the handlers here); a name sent
//! with 8-bit bytes is taken as UTF-8 as sent (what UTF-8 clients send).
//! Names are always resolved within the logged-in account.

use imap_next::imap_types::core::{AString, Atom, IString, NString, QuotedChar};
use imap_next::imap_types::extensions::namespace::Namespace;
use imap_next::imap_types::extensions::utf8::QuotedUtf8;
use imap_next::imap_types::flag::FlagNameAttribute;
use imap_next::imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};
use imap_next::imap_types::response::Data;

use super::error::ImapError;
use super::list_command::ListCommand;
use super::session::{Done, Session};
use crate::store::{MailError, Mailbox, MailboxRole};

/// The hierarchy delimiter.
pub(crate) const DELIMITER: char = '/';

/// A mailbox name from the wire as the store spells it.
pub(crate) fn name_of(mailbox: &WireMailbox<'_>) -> Result<String, ImapError> {
    match mailbox {
        WireMailbox::Inbox => Ok("INBOX".into()),
        WireMailbox::Other(other) => from_wire(other.as_ref()),
    }
}

/// A name or pattern as sent: modified UTF-7, or UTF-8 when it has 8-bit
/// bytes.
pub(crate) fn from_wire(bytes: &[u8]) -> Result<String, ImapError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ImapError::InvalidName {
        detail: "mailbox name is not UTF-8".into(),
    })?;
    if !text.is_ascii() {
        return Ok(text.to_string());
    }
    super::mutf7::decode(text).map_err(|e| ImapError::InvalidName {
        detail: format!(
            "mailbox name {text:?} is not valid modified UTF-7 ({}); spell non-ASCII names as RFC 3501 section 5.1.3 says",
            e.0
        ),
    })
}

/// A LIST pattern as sent: as [`from_wire`], but a pattern that is not
/// valid modified UTF-7 is matched as the text it is (it then matches
/// only names that are spelled that way, usually none) rather than
/// refused: RFC 3501 §6.3.8 LIST answers what matches.
pub(crate) fn pattern_from_wire(bytes: &[u8]) -> Result<String, ImapError> {
    match from_wire(bytes) {
        Err(ImapError::InvalidName { .. }) if bytes.is_ascii() => {
            Ok(String::from_utf8_lossy(bytes).into_owned())
        }
        other => other,
    }
}

/// A stored name on the wire: in modified UTF-7, or with `utf8` (the
/// session enabled UTF-8 names) as it is, a quoted string when it can be.
pub(crate) fn wire_name(name: &str, utf8: bool) -> Result<WireMailbox<'static>, ImapError> {
    if utf8 && !name.is_ascii() {
        if let Ok(quoted) = QuotedUtf8::try_from(name.to_string()) {
            return Ok(WireMailbox::from(AString::String(IString::QuotedUtf8(
                quoted,
            ))));
        }
    }
    let spelled = if utf8 {
        name.to_string()
    } else {
        super::mutf7::encode(name)
    };
    WireMailbox::try_from(spelled)
        .map_err(|_| ImapError::syntax(format!("mailbox name {name:?} cannot be sent")))
}

impl Session {
    /// CREATE.
    pub(crate) async fn create(&mut self, mailbox: &WireMailbox<'_>) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let name = name_of(mailbox)?;
        // RFC 9051 §6.3.4: a trailing delimiter only says "will have children".
        let name = name.trim_end_matches(DELIMITER).to_string();
        self.with_store(move |s| {
            let before: std::collections::HashSet<_> =
                s.list_mailboxes(id)?.into_iter().map(|m| m.id).collect();
            let kept = s.subscriptions_without_mailbox(id)?;
            s.create_mailbox(id, &name)?;
            // why: the store subscribes new mailboxes (what JMAP and the
            // CLI want), but an IMAP CREATE does not subscribe (RFC 3501
            // §6.3.3, §6.3.6): clients that want it send SUBSCRIBE, and
            // LSUB must show implied parents as \Noselect, not as
            // subscribed. Superiors CREATE made are new too. A name whose
            // subscription outlived its old mailbox stays subscribed.
            for m in s.list_mailboxes(id)? {
                if !before.contains(&m.id) && !kept.contains(&m.name) {
                    s.set_subscribed(id, m.id, false)?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(Done::ok("CREATE completed"))
    }

    /// DELETE.
    pub(crate) async fn delete(&mut self, mailbox: &WireMailbox<'_>) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let name = name_of(mailbox)?;
        let selected = self.selected.as_ref().map(|s| s.mailbox.id);
        let deleted = self
            .with_store(move |s| {
                let mbox = s.mailbox_by_name(id, &name)?;
                s.delete_mailbox(id, mbox.id)?;
                Ok(mbox.id)
            })
            .await?;
        if selected == Some(deleted) {
            self.selected = None;
        }
        Ok(Done::ok("DELETE completed"))
    }

    /// RENAME.
    pub(crate) async fn rename(
        &mut self,
        from: &WireMailbox<'_>,
        to: &WireMailbox<'_>,
    ) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let (from, to) = (name_of(from)?, name_of(to)?);
        if from == "INBOX" {
            return Err(ImapError::Unsupported {
                what: "renaming INBOX (moving its messages)".into(),
            });
        }
        self.with_store(move |s| {
            let mbox = s.mailbox_by_name(id, &from)?;
            s.rename_mailbox(id, mbox.id, &to)
        })
        .await?;
        Ok(Done::ok("RENAME completed"))
    }

    /// SUBSCRIBE / UNSUBSCRIBE.
    pub(crate) async fn subscribe(
        &mut self,
        mailbox: &WireMailbox<'_>,
        on: bool,
    ) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let name = name_of(mailbox)?;
        self.with_store(move |s| match s.mailbox_by_name(id, &name) {
            Ok(mbox) => s.set_subscribed(id, mbox.id, on),
            // RFC 3501 §6.3.7: a subscription may outlive its mailbox,
            // and UNSUBSCRIBE removes it then too.
            Err(e @ MailError::MailboxNotFound { .. }) if !on => {
                if s.unsubscribe_name(id, &name)? {
                    Ok(())
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        })
        .await?;
        Ok(Done::ok(if on {
            "SUBSCRIBE completed"
        } else {
            "UNSUBSCRIBE completed"
        }))
    }

    /// LIST and LSUB.
    pub(crate) async fn list(
        &mut self,
        reference_wire: &WireMailbox<'_>,
        pattern_wire: &ListMailbox<'_>,
        lsub: bool,
    ) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let reference = name_of(reference_wire)?;
        let pattern = match pattern_wire {
            ListMailbox::Token(t) => pattern_from_wire(t.as_ref())?,
            ListMailbox::String(s) => pattern_from_wire(s.as_ref())?,
        };
        if pattern.is_empty() && !lsub {
            self.conn.data(Data::List {
                items: vec![FlagNameAttribute::Noselect],
                delimiter: QuotedChar::try_from(DELIMITER).ok(),
                mailbox: empty_mailbox(),
            });
            return Ok(Done::ok("LIST completed"));
        }
        if !lsub {
            let reference = match reference_wire {
                WireMailbox::Inbox => b"INBOX".to_vec(),
                WireMailbox::Other(other) => other.as_ref().to_vec(),
            };
            let pattern = match pattern_wire {
                ListMailbox::Token(t) => t.as_ref().to_vec(),
                ListMailbox::String(s) => s.as_ref().to_vec(),
            };
            let cmd = ListCommand {
                reference,
                patterns: vec![pattern],
                ..ListCommand::default()
            };
            return self.list_mailboxes(cmd).await;
        }
        let full = format!("{reference}{pattern}");
        let (all, kept) = self
            .with_store(move |s| Ok((s.list_mailboxes(id)?, s.subscriptions_without_mailbox(id)?)))
            .await?;
        let delimiter = QuotedChar::try_from(DELIMITER).ok();
        for (name, items) in super::lsub::lines(&full, &all, &kept) {
            self.conn.data(Data::Lsub {
                items,
                delimiter,
                mailbox: wire_name(&name, self.enabled.utf8_names())?,
            });
        }
        Ok(Done::ok("LSUB completed"))
    }
}

fn empty_mailbox() -> WireMailbox<'static> {
    WireMailbox::try_from("").unwrap_or(WireMailbox::Inbox)
}

/// The special-use attribute of `mbox` (RFC 6154 §2), if it has one.
pub(crate) fn special_use(mbox: &Mailbox) -> Option<&'static str> {
    match mbox.role {
        Some(MailboxRole::Sent) => Some("Sent"),
        Some(MailboxRole::Drafts) => Some("Drafts"),
        Some(MailboxRole::Trash) => Some("Trash"),
        Some(MailboxRole::Junk) => Some("Junk"),
        Some(MailboxRole::Archive) => Some("Archive"),
        _ => None,
    }
}

pub(crate) fn attribute(name: &'static str) -> FlagNameAttribute<'static> {
    Atom::try_from(name).map_or(FlagNameAttribute::Marked, FlagNameAttribute::from)
}

/// RFC 9051 §6.3.9: `*` matches anything, `%` anything but the delimiter;
/// INBOX matches case-insensitively.
pub(crate) fn matches_pattern(pattern: &str, name: &str) -> bool {
    let pattern = normalise_inbox(pattern);
    wildcard(pattern.as_bytes(), name.as_bytes())
}

fn normalise_inbox(pattern: &str) -> String {
    let head = pattern.get(..5).unwrap_or_default();
    let tail = pattern.get(5..).unwrap_or_default();
    if head.eq_ignore_ascii_case("INBOX") && (tail.is_empty() || tail.starts_with(DELIMITER)) {
        format!("INBOX{tail}")
    } else {
        pattern.to_string()
    }
}

/// Matches by simulating the pattern as an automaton over the name: one
/// pass over the name with the set of pattern positions reachable so far,
/// O(name × pattern) at worst.
///
/// why not backtracking: a pattern such as `*a*a*a*a*a*a*a*a*b` against a
/// 60-byte name took 51 s of a worker thread that way (exponential), and a
/// LIST is any logged-in user's to send.
fn wildcard(p: &[u8], n: &[u8]) -> bool {
    let mut active = vec![false; p.len() + 1];
    let mut next = vec![false; p.len() + 1];
    active[0] = true;
    close_over_wildcards(p, &mut active);
    for &c in n {
        next.fill(false);
        for (i, &pc) in p.iter().enumerate() {
            if !active[i] {
                continue;
            }
            match pc {
                b'*' => next[i] = true,
                b'%' if c != b'/' => next[i] = true,
                b'%' => {}
                _ if pc == c => next[i + 1] = true,
                _ => {}
            }
        }
        if !next.contains(&true) {
            return false;
        }
        close_over_wildcards(p, &mut next);
        std::mem::swap(&mut active, &mut next);
    }
    active[p.len()]
}

/// A wildcard may match nothing: whoever stands before one also stands
/// after it.
fn close_over_wildcards(p: &[u8], states: &mut [bool]) {
    for (i, &pc) in p.iter().enumerate() {
        if states[i] && matches!(pc, b'*' | b'%') {
            states[i + 1] = true;
        }
    }
}

/// `* ID ("name" "sealmail" ...)`.
pub(crate) fn id_data() -> Data<'static> {
    let pair = |k: &'static str, v: &'static str| {
        IString::try_from(k)
            .ok()
            .map(|k| (k, NString(IString::try_from(v).ok())))
    };
    let parameters = [
        pair("name", "sealmail"),
        pair("version", env!("CARGO_PKG_VERSION")),
    ]
    .into_iter()
    .flatten()
    .collect();
    Data::Id {
        parameters: Some(parameters),
    }
}

/// One personal namespace, `""` with delimiter `/`; no others.
pub(crate) fn namespace_data() -> Data<'static> {
    let personal = IString::try_from("")
        .ok()
        .map(|prefix| Namespace::new(prefix, QuotedChar::try_from(DELIMITER).ok()));
    Data::Namespace {
        personal: personal.into_iter().collect(),
        other: Vec::new(),
        shared: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::matches_pattern as m;

    #[test]
    fn wildcards() {
        assert!(m("*", "INBOX"));
        assert!(m("*", "a/b/c"));
        assert!(m("%", "a"));
        assert!(!m("%", "a/b"));
        assert!(m("a/%", "a/b"));
        assert!(m("inbox", "INBOX"));
        assert!(!m("Sent", "Sentx"));
        assert!(m("a*%", "a/b"));
        assert!(m("%/%", "a/b"));
        assert!(!m("%/%", "a/b/c"));
        assert!(m("*%*", ""));
        assert!(!m("a", ""));
    }

    /// The pattern that took 51 s by backtracking, with room to spare.
    #[test]
    fn adversarial_pattern_is_quick() {
        let name = "a".repeat(4000);
        let pattern = format!("{}b", "*a".repeat(500));
        assert!(!m(&pattern, &name));
        assert!(m(&format!("{}*", "*a".repeat(500)), &name));
    }

    /// The reference: RFC 9051 §6.3.9 read literally, by backtracking.
    fn reference(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| reference(rest, &n[i..])),
            Some((b'%', rest)) => {
                let stop = n.iter().position(|&c| c == b'/').unwrap_or(n.len());
                (0..=stop).any(|i| reference(rest, &n[i..]))
            }
            Some((c, rest)) => n
                .split_first()
                .is_some_and(|(d, t)| c == d && reference(rest, t)),
        }
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_backtracking(p in "[ab/*%]{0,8}", n in "[ab/]{0,10}") {
            proptest::prop_assert_eq!(super::wildcard(p.as_bytes(), n.as_bytes()), reference(p.as_bytes(), n.as_bytes()));
        }
    }
}
