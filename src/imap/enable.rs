//! ENABLE (RFC 5161) and what it turns on for the rest of the session:
//! CONDSTORE and QRESYNC (RFC 7162, `condstore`), UTF8=ACCEPT (RFC 6855,
//! names in `utf8`) and IMAP4rev2 (RFC 9051 §6.3.1).
//!
//! A session that enables nothing is an IMAP4rev1 session and sees what
//! it always saw. `ENABLED` lists only what the command newly turned on
//! (RFC 5161 §3.2); anything unknown, and UTF8=ONLY (not advertised: this
//! server keeps modified UTF-7 for the clients that need it), is left off
//! and not listed.
//!
//! IMAP4rev2 changes these responses (RFC 9051 Appendix E):
//!
//! - No message is `\Recent` in the session: no `\Recent` in FETCH, no
//!   `* n RECENT` on SELECT, EXAMINE or new mail, no `[UNSEEN n]` on
//!   SELECT (§6.3.2 no longer has it), and `STATUS (RECENT)` is a BAD
//!   (not a rev2 item). The session still claims new messages, so a rev1
//!   session does not see them as `\Recent` after a rev2 one did.
//! - SELECT and EXAMINE also answer the mailbox's LIST line (§6.3.2).
//! - SEARCH without RETURN is answered as `RETURN (ALL)`: `* ESEARCH`
//!   (§6.4.4, §7.3.4).
//! - Mailbox names travel in UTF-8 (§5.1), as after UTF8=ACCEPT.
//!
//! What RFC 9051 made part of the base protocol and rev1 sessions here
//! already get (LIST's `\HasChildren`, `\HasNoChildren`, `\NonExistent`,
//! STATUS DELETED and SIZE, UIDPLUS, MOVE, ...) is the same for both.

use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{QuotedChar, Tag};
use imap_next::imap_types::extensions::enable::CapabilityEnable;
use imap_next::imap_types::response::Data;
use imap_next::imap_types::status::StatusDataItemName;
use imap_next::imap_types::IntoStatic;

use super::condstore::Tracking;
use super::error::ImapError;
use super::esearch::{ExtendedSearch, Returns};
use super::mailboxes::{wire_name, DELIMITER};
use super::session::{Done, Session};

/// The BAD text for a charset after UTF8=ACCEPT (RFC 6855 §3 and its
/// erratum 4029: the client must not label its strings twice).
const CHARSET_AFTER_UTF8: &str =
    "no CHARSET after ENABLE UTF8=ACCEPT: search strings are UTF-8 (RFC 6855 section 3)";

/// What the client enabled besides RFC 7162 (which `Tracking` holds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Enabled {
    /// UTF8=ACCEPT (RFC 6855): UTF-8 names, no SEARCH CHARSET.
    pub(crate) utf8_accept: bool,
    /// IMAP4rev2 (RFC 9051 §6.3.1): the responses listed in the module doc.
    pub(crate) rev2: bool,
}

impl Enabled {
    /// Whether mailbox names travel in UTF-8 rather than modified UTF-7.
    pub(crate) fn utf8_names(self) -> bool {
        self.utf8_accept || self.rev2
    }
}

/// What one ENABLE argument turns on.
#[derive(Debug, Clone, Copy)]
enum Extension {
    Tracking(Tracking),
    Utf8Accept,
    Rev2,
}

fn extension(cap: &CapabilityEnable<'_>) -> Option<Extension> {
    match cap.to_string().to_ascii_uppercase().as_str() {
        "CONDSTORE" => Some(Extension::Tracking(Tracking::CondStore)),
        "QRESYNC" => Some(Extension::Tracking(Tracking::QResync)),
        "UTF8=ACCEPT" => Some(Extension::Utf8Accept),
        "IMAP4REV2" => Some(Extension::Rev2),
        _ => None,
    }
}

impl Session {
    /// ENABLE (RFC 5161), in the authenticated and selected states.
    pub(crate) fn enable(&mut self, wanted: &[CapabilityEnable<'_>]) -> Result<Done, ImapError> {
        self.account()?;
        let mut enabled = Vec::new();
        for cap in wanted {
            if extension(cap).is_some_and(|ext| self.turn_on(ext)) {
                enabled.push(cap.clone().into_static());
            }
        }
        self.conn.data(Data::Enabled {
            capabilities: enabled,
        });
        Ok(Done::ok("ENABLE completed"))
    }

    /// Turns `ext` on; false when it already was.
    fn turn_on(&mut self, ext: Extension) -> bool {
        match ext {
            Extension::Tracking(level) => {
                let newly = self.resync < level;
                self.resync = self.resync.max(level);
                newly
            }
            Extension::Utf8Accept => !std::mem::replace(&mut self.enabled.utf8_accept, true),
            Extension::Rev2 => {
                if std::mem::replace(&mut self.enabled.rev2, true) {
                    return false;
                }
                // A selection made before: its messages stop being \Recent.
                if let Some(sel) = self.selected.as_mut() {
                    for k in &mut sel.messages {
                        k.flags = k.flags.with_recent(false);
                    }
                }
                true
            }
        }
    }

    /// What the enabled extensions refuse of a command (BAD), and its
    /// mailbox names respelled for the handlers (`utf8::respell`).
    pub(crate) fn inbound(
        &self,
        body: CommandBody<'static>,
    ) -> Result<CommandBody<'static>, ImapError> {
        let utf8 = self.enabled.utf8_accept;
        match &body {
            CommandBody::Search {
                charset: Some(_), ..
            } if utf8 => return Err(ImapError::syntax(CHARSET_AFTER_UTF8)),
            // Erratum 4029: SORT's charset is mandatory; only UTF-8 then.
            // The same for THREAD's (RFC 5256 grammar).
            CommandBody::Sort { charset, .. } | CommandBody::Thread { charset, .. }
                if utf8 && !charset.as_ref().eq_ignore_ascii_case("UTF-8") =>
            {
                return Err(ImapError::syntax(
                    "the charset of SORT and THREAD after ENABLE UTF8=ACCEPT is UTF-8 (RFC 6855 section 3)",
                ));
            }
            CommandBody::Status { item_names, .. }
                if self.enabled.rev2 && item_names.contains(&StatusDataItemName::Recent) =>
            {
                return Err(ImapError::syntax(
                    "STATUS RECENT is not an IMAP4rev2 item (RFC 9051 section 6.3.11)",
                ));
            }
            _ => {}
        }
        super::utf8::respell(body, self.enabled.utf8_names())
    }

    /// How a command is run: a rev2 session's SEARCH without RETURN is
    /// `SEARCH RETURN (ALL)` (RFC 9051 §6.4.4), answered by `esearch`.
    pub(crate) fn route(&self, command: Command<'static>) -> Route {
        if !self.enabled.rev2 {
            return Route::Command(command);
        }
        match command.body {
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                let search = ExtendedSearch {
                    uid,
                    returns: Returns {
                        all: true,
                        ..Returns::default()
                    },
                    charset: charset.map(|c| c.as_ref().to_string()),
                    criteria: criteria.as_ref().to_vec(),
                    sort: None,
                };
                Route::Search(command.tag, self.check_search(Ok(search)))
            }
            body => Route::Command(Command {
                tag: command.tag,
                body,
            }),
        }
    }

    /// A SEARCH or SORT with RETURN (`esearch`) as the enabled extensions
    /// allow it: after UTF8=ACCEPT no CHARSET on SEARCH, and only UTF-8
    /// on SORT, whose grammar requires one.
    pub(crate) fn check_search(
        &self,
        parsed: Result<ExtendedSearch, String>,
    ) -> Result<ExtendedSearch, String> {
        let Ok(search) = parsed else {
            return parsed;
        };
        if !self.enabled.utf8_accept {
            return Ok(search);
        }
        match (&search.sort, &search.charset) {
            (None, Some(_)) => Err(CHARSET_AFTER_UTF8.to_string()),
            (Some(_), Some(c)) if !c.eq_ignore_ascii_case("UTF-8") => Err(
                "the charset of SORT after ENABLE UTF8=ACCEPT is UTF-8 (RFC 6855 section 3)".into(),
            ),
            _ => Ok(search),
        }
    }

    /// RFC 9051 §6.3.2: a rev2 SELECT or EXAMINE also answers the LIST
    /// line of the mailbox, with its attributes; nothing for rev1.
    pub(crate) async fn select_list(&mut self) -> Result<(), ImapError> {
        let Some(sel) = self.selected.as_ref().filter(|_| self.enabled.rev2) else {
            return Ok(());
        };
        let mbox = sel.mailbox.clone();
        let id = self.account()?.id;
        let all = self.with_store(move |s| s.list_mailboxes(id)).await?;
        // The store's record: the name as it is now, under its id.
        let Some(now) = all.iter().find(|m| m.id == mbox.id) else {
            return Ok(());
        };
        self.conn.data(Data::List {
            items: super::list::attributes(now, &all),
            delimiter: QuotedChar::try_from(DELIMITER).ok(),
            mailbox: wire_name(&now.name, true)?,
        });
        Ok(())
    }
}

/// How the session runs a command ([`Session::route`]).
#[derive(Debug)]
pub(crate) enum Route {
    /// As parsed, through `dispatch`.
    Command(Command<'static>),
    /// As a SEARCH with RETURN, through `esearch`.
    Search(Tag<'static>, Result<ExtendedSearch, String>),
}
