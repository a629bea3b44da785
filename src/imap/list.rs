//! LIST (RFC 9051 §6.3.9) with LIST-EXTENDED (RFC 5258): selection
//! options SUBSCRIBED, REMOTE and RECURSIVEMATCH, return options
//! SUBSCRIBED and CHILDREN, several patterns, `\Subscribed` and the
//! CHILDINFO extended data item; LIST-STATUS (RFC 5819); and SPECIAL-USE
//! as selection and return option (RFC 6154 §4).
//!
//! A plain LIST arrives parsed by imap-codec, an extended one by
//! `list_command`; both become one [`ListCommand`] and one answer. The
//! answer is computed on the blocking pool (matching many patterns
//! against every name is CPU work), then sent: each LIST line, and the
//! STATUS line of its mailbox right after it when asked (RFC 5819 §2).
//!
//! A subscription lives on its mailbox's record while the mailbox exists
//! and in the store's list of subscriptions without a mailbox after a
//! DELETE (RFC 3501 §6.3.6): `LIST (SUBSCRIBED)` shows those as
//! `\Subscribed \NonExistent`, and RECURSIVEMATCH a missing parent of one
//! as `\NonExistent` with CHILDINFO (RFC 5258 §3, §3.5). The
//! store creates the superiors of a new mailbox, so nothing is
//! `\Noselect`.

use std::sync::Arc;

use imap_next::imap_types::core::{QuotedChar, Tag};
use imap_next::imap_types::flag::FlagNameAttribute;
use imap_next::imap_types::response::{Data, Response};
use imap_next::imap_types::status::{StatusDataItem, StatusDataItemName};
use imap_next::server::Error as ProtocolError;
use tracing::{debug_span, Instrument};

use super::error::ImapError;
use super::list_command::{ListCommand, ListSyntaxError, Selection, MAX_PATTERN_BYTES};
use super::mailboxes::{attribute, matches_pattern, special_use, wire_name, DELIMITER};
use super::session::{Done, Session};
use crate::store::Mailbox;

/// One mailbox of the answer.
struct Line {
    name: String,
    attributes: Vec<FlagNameAttribute<'static>>,
    /// RECURSIVEMATCH found descendants that meet the selection but are
    /// not listed themselves (RFC 5258 §3.5): the base options they met.
    child_info: Vec<&'static str>,
    status: Option<Vec<StatusDataItem>>,
}

impl Session {
    /// LIST, plain or extended.
    pub(crate) async fn list_mailboxes(&mut self, cmd: ListCommand) -> Result<Done, ImapError> {
        let id = self.account()?.id;
        let reference = super::mailboxes::from_wire(&cmd.reference)?;
        let mut patterns = Vec::with_capacity(cmd.patterns.len());
        for p in &cmd.patterns {
            let full = format!("{reference}{}", super::mailboxes::pattern_from_wire(p)?);
            if full.len() > MAX_PATTERN_BYTES {
                return Err(ImapError::syntax(
                    ListSyntaxError::PatternTooLong.to_string(),
                ));
            }
            patterns.push(full);
        }
        let claims = Arc::clone(&self.ctx.config.recent);
        let lines = self
            .with_store(move |s| {
                let all = s.list_mailboxes(id)?;
                let kept = s.subscriptions_without_mailbox(id)?;
                let mut lines = answer(&cmd, &patterns, &all, &kept);
                if let Some(items) = cmd.returns.as_ref().and_then(|r| r.status.as_ref()) {
                    // RFC 5819 §2: STATUS only for what can be selected.
                    for (line, mbox) in &mut lines {
                        if let Some(mbox) = mbox {
                            line.status =
                                Some(super::status::status_items(s, id, mbox, items, &claims)?);
                        }
                    }
                }
                Ok(lines.into_iter().map(|(line, _)| line).collect::<Vec<_>>())
            })
            .await?;
        let delimiter = QuotedChar::try_from(DELIMITER).ok();
        let utf8 = self.enabled.utf8_names();
        for line in lines {
            let data = Data::List {
                items: line.attributes,
                delimiter,
                mailbox: wire_name(&line.name, utf8)?,
            };
            if line.child_info.is_empty() {
                self.conn.data(data);
            } else {
                self.conn.raw(&with_child_info(data, &line.child_info));
            }
            if let Some(items) = line.status {
                self.conn
                    .data(super::status::status_data(&line.name, items, utf8)?);
            }
        }
        Ok(Done::ok("LIST completed"))
    }
}

impl Session {
    /// A LIST that imap-codec refused, parsed by `list_command`: answered
    /// as any command is (span, metrics, OK or NO/BAD with its reason).
    pub(crate) async fn list_extended(
        &mut self,
        tag: Tag<'static>,
        parsed: Result<ListCommand, ListSyntaxError>,
    ) {
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = "LIST");
        let started = std::time::Instant::now();
        let result: Result<Done, ImapError> = async {
            let cmd = parsed.map_err(|e| ImapError::syntax(e.to_string()))?;
            let cmd = super::utf8::respell_list(cmd, self.enabled.utf8_names());
            let status = cmd.returns.as_ref().and_then(|r| r.status.as_ref());
            if self.enabled.rev2 && status.is_some_and(|s| s.contains(&StatusDataItemName::Recent))
            {
                return Err(ImapError::syntax(
                    "STATUS RECENT is not an IMAP4rev2 item (RFC 9051 section 6.3.11)",
                ));
            }
            self.account()?;
            self.check_token().await?;
            self.list_mailboxes(cmd).await
        }
        .instrument(span.clone())
        .await;
        self.answer(tag, "LIST", started, &span, result);
    }
}

/// The tag and the parse of a message imap-codec refused, when it is a
/// LIST command (`tag SP "LIST" SP ...`); `None` for anything else.
pub(crate) fn refused_list(
    e: &ProtocolError,
) -> Option<(Tag<'static>, Result<ListCommand, ListSyntaxError>)> {
    let super::scan::Refused {
        tag, command: rest, ..
    } = super::scan::refused(e)?;
    let word = rest.get(..5)?;
    if !word.eq_ignore_ascii_case(b"LIST ") {
        return None;
    }
    Some((tag, super::list_command::parse(rest)))
}

/// A name LIST may answer: a mailbox, or (RFC 5258 §3) a subscribed name
/// whose mailbox is gone, or a missing parent of one (`\NonExistent`).
struct Entry<'n, 'm> {
    name: &'n str,
    mailbox: Option<&'m Mailbox>,
    subscribed: bool,
}

/// The mailboxes, then the subscribed names without one and their
/// missing parents.
fn entries<'n, 'm: 'n>(all: &'m [Mailbox], kept: &'n [String]) -> Vec<Entry<'n, 'm>> {
    let mut out: Vec<Entry<'n, 'm>> = all
        .iter()
        .map(|m| Entry {
            name: &m.name,
            mailbox: Some(m),
            subscribed: m.subscribed,
        })
        .collect();
    let mut known: std::collections::HashSet<&'n str> =
        all.iter().map(|m| m.name.as_str()).collect();
    for name in kept {
        if known.insert(name) {
            out.push(Entry {
                name,
                mailbox: None,
                subscribed: true,
            });
        }
    }
    for name in kept {
        for (i, _) in name.match_indices(DELIMITER) {
            let Some(parent) = name.get(..i) else {
                continue;
            };
            if known.insert(parent) {
                out.push(Entry {
                    name: parent,
                    mailbox: None,
                    subscribed: false,
                });
            }
        }
    }
    out
}

/// The lines of the answer, in the store's order, each with its mailbox
/// (`None` for a `\NonExistent` name).
fn answer<'a>(
    cmd: &ListCommand,
    patterns: &[String],
    all: &'a [Mailbox],
    kept: &[String],
) -> Vec<(Line, Option<&'a Mailbox>)> {
    let select = cmd.select.unwrap_or_default();
    let returns = cmd.returns.clone().unwrap_or_default();
    let show_subscribed = select.subscribed || returns.subscribed;
    let matched = |name: &str| patterns.iter().any(|p| matches_pattern(p, name));
    let entries = entries(all, kept);
    let mut lines = Vec::new();
    for entry in &entries {
        if !matched(entry.name) {
            continue;
        }
        let child_info = if select.recursive_match {
            // RFC 5258 §3.5: only when a descendant that meets the
            // selection is not listed itself (no redundant CHILDINFO).
            let prefix = format!("{}{DELIMITER}", entry.name);
            let hidden = entries
                .iter()
                .any(|e| e.name.starts_with(&prefix) && meets(&select, e) && !matched(e.name));
            if hidden {
                base_options(&select)
            } else {
                Vec::new()
            }
        } else {
            Vec::new()
        };
        if !meets(&select, entry) && child_info.is_empty() {
            continue;
        }
        let mut attributes = match entry.mailbox {
            Some(mbox) => attributes(mbox, all),
            None => vec![attribute("NonExistent")],
        };
        if show_subscribed && entry.subscribed {
            attributes.push(attribute("Subscribed"));
        }
        let line = Line {
            name: entry.name.to_string(),
            attributes,
            child_info,
            status: None,
        };
        lines.push((line, entry.mailbox));
    }
    lines
}

/// Whether `entry` meets the base selection options (RFC 5258 §3, RFC
/// 6154 §4); with none, every mailbox does, and no name without one.
/// REMOTE adds nothing here: this server has no remote mailboxes.
fn meets(select: &Selection, entry: &Entry<'_, '_>) -> bool {
    match entry.mailbox {
        Some(mbox) => {
            (!select.subscribed || mbox.subscribed)
                && (!select.special_use || special_use(mbox).is_some())
        }
        None => select.subscribed && entry.subscribed && !select.special_use,
    }
}

/// The base options a CHILDINFO names.
fn base_options(select: &Selection) -> Vec<&'static str> {
    let mut out = Vec::new();
    if select.subscribed {
        out.push("SUBSCRIBED");
    }
    if select.special_use {
        out.push("SPECIAL-USE");
    }
    out
}

/// Children (RFC 5258 §4, always sent: §4 allows it without CHILDREN)
/// and special use (RFC 6154 §2, always sent as before RETURN existed).
pub(crate) fn attributes(mbox: &Mailbox, all: &[Mailbox]) -> Vec<FlagNameAttribute<'static>> {
    let prefix = format!("{}{DELIMITER}", mbox.name);
    let children = all.iter().any(|m| m.name.starts_with(&prefix));
    let mut items = vec![attribute(if children {
        "HasChildren"
    } else {
        "HasNoChildren"
    })];
    if let Some(role) = special_use(mbox) {
        items.push(attribute(role));
    }
    items
}

/// `data` encoded, with the extended data item
/// `("CHILDINFO" ("SUBSCRIBED"))` before its line end (RFC 5258 §6
/// `mbox-list-extended`), which imap-types' LIST response cannot carry.
fn with_child_info(data: Data<'static>, options: &[&str]) -> Vec<u8> {
    use imap_codec::encode::Encoder as _;
    let mut bytes = imap_codec::ResponseCodec::default()
        .encode(&Response::Data(data))
        .dump();
    if bytes.ends_with(b"\r\n") {
        bytes.truncate(bytes.len() - 2);
    }
    let quoted: Vec<String> = options.iter().map(|o| format!("\"{o}\"")).collect();
    bytes.extend_from_slice(format!(" (\"CHILDINFO\" ({}))\r\n", quoted.join(" ")).as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::super::list_command::parse;

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

    fn names(line: &str, all: &[crate::store::Mailbox]) -> Vec<(String, usize)> {
        let cmd = parse(format!("{line}\r\n").as_bytes()).unwrap();
        let patterns: Vec<String> = cmd
            .patterns
            .iter()
            .map(|p| String::from_utf8(p.clone()).unwrap())
            .collect();
        super::answer(&cmd, &patterns, all, &[])
            .into_iter()
            .map(|(l, _)| (l.name, l.child_info.len()))
            .collect()
    }

    /// The RECURSIVEMATCH cases of imaptest's `listext` script.
    #[test]
    fn recursivematch_childinfo_only_for_unlisted_children() {
        let all = [
            mailbox("t2", false),
            mailbox("t2/t1", true),
            mailbox("t7", false),
            mailbox("t7/t7", true),
            mailbox("t8", false),
            mailbox("t8/t8", true),
            mailbox("t8/t9", true),
        ];
        let n = |s: &str| names(s, &all);
        let v = |l: &[(&str, usize)]| -> Vec<(String, usize)> {
            l.iter().map(|(a, b)| ((*a).to_string(), *b)).collect()
        };
        assert_eq!(
            n("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" t2%"),
            v(&[("t2", 1)])
        );
        assert_eq!(
            n("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" *t7"),
            v(&[("t7/t7", 0)])
        );
        assert_eq!(
            n("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" *t8"),
            v(&[("t8", 1), ("t8/t8", 0)])
        );
        assert_eq!(
            n("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (t2 t2/t1)"),
            v(&[("t2/t1", 0)])
        );
        assert_eq!(n("LIST (SUBSCRIBED) \"\" t2"), v(&[]));
    }
}
