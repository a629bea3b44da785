//! Routing a command to its handler by state (RFC 9051 §3, §6): any
//! state, then authenticated, then selected; and the CAPABILITY list each
//! state advertises (§7.2.2).

use imap_next::imap_types::command::{CommandBody, StoreModifier};
use imap_next::imap_types::core::Vec1;
use imap_next::imap_types::extensions::quota::Resource;
use imap_next::imap_types::response::{Capability, Data, Status};

use super::error::ImapError;
use super::session::{Done, Session};

impl Session {
    pub(crate) async fn dispatch(&mut self, body: CommandBody<'static>) -> Result<Done, ImapError> {
        let body = self.inbound(body)?;
        match body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.conn.data(Data::Capability(caps));
                Ok(Done::ok("CAPABILITY completed"))
            }
            CommandBody::Noop | CommandBody::Check => {
                self.sync(true).await?;
                Ok(Done::ok("done"))
            }
            CommandBody::Logout => {
                if let Ok(bye) = Status::bye(None, "logging out") {
                    self.conn.status(bye);
                }
                Ok(Done::ok("LOGOUT completed"))
            }
            CommandBody::StartTLS => self.check_start_tls(),
            CommandBody::Login { username, password } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let pass = String::from_utf8_lossy(password.declassify().as_ref()).into_owned();
                self.login(&user, &pass).await
            }
            CommandBody::Enable { capabilities } => self.enable(capabilities.as_ref()),
            CommandBody::Id { .. } => {
                self.conn.data(super::mailboxes::id_data());
                Ok(Done::ok("ID completed"))
            }
            body => self.dispatch_authenticated(body).await,
        }
    }

    async fn dispatch_authenticated(
        &mut self,
        body: CommandBody<'static>,
    ) -> Result<Done, ImapError> {
        let name = body.name();
        self.account()?;
        self.check_token().await?;
        match body {
            CommandBody::Select {
                mailbox,
                parameters,
            } => self.select(&mailbox, false, &parameters).await,
            CommandBody::Examine {
                mailbox,
                parameters,
            } => self.select(&mailbox, true, &parameters).await,
            CommandBody::Unselect => self.close(false).await,
            CommandBody::Close => self.close(true).await,
            CommandBody::Create { mailbox } => self.create(&mailbox).await,
            CommandBody::Delete { mailbox } => self.delete(&mailbox).await,
            CommandBody::Rename { from, to } => self.rename(&from, &to).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(&mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&mailbox, false).await,
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => self.list(&reference, &mailbox_wildcard, false).await,
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(&reference, &mailbox_wildcard, true).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => self.status(&mailbox, &item_names).await,
            CommandBody::GetQuota { root } => self.get_quota(&root).await,
            CommandBody::GetQuotaRoot { mailbox } => self.get_quota_root(&mailbox).await,
            CommandBody::SetQuota { .. } => Err(ImapError::QuotaAdminOnly),
            CommandBody::Namespace => {
                self.conn.data(super::mailboxes::namespace_data());
                Ok(Done::ok("NAMESPACE completed"))
            }
            CommandBody::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(&mailbox, &flags, date.as_ref(), message).await,
            body => self.dispatch_selected(name, body).await,
        }
    }

    async fn dispatch_selected(
        &mut self,
        name: &'static str,
        body: CommandBody<'static>,
    ) -> Result<Done, ImapError> {
        if self.selected.is_none() && is_selected_command(&body) {
            return Err(ImapError::WrongState {
                command: name,
                needed: "SELECT or EXAMINE a mailbox first",
            });
        }
        match body {
            CommandBody::Expunge => self.expunge(None).await,
            CommandBody::ExpungeUid { sequence_set } => self.expunge(Some(&sequence_set)).await,
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                self.search(charset.as_ref().map(AsRef::as_ref), criteria.as_ref(), uid)
                    .await
            }
            CommandBody::Sort {
                sort_criteria,
                charset,
                search_criteria,
                uid,
            } => {
                self.sort(
                    sort_criteria.as_ref(),
                    charset.as_ref(),
                    search_criteria.as_ref(),
                    uid,
                )
                .await
            }
            CommandBody::Thread {
                algorithm,
                charset,
                search_criteria,
                uid,
            } => {
                self.thread(&algorithm, charset.as_ref(), search_criteria.as_ref(), uid)
                    .await
            }
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                self.fetch(&sequence_set, macro_or_item_names, uid, &modifiers)
                    .await
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                let unchanged_since = modifiers
                    .iter()
                    .map(|StoreModifier::UnchangedSince(n)| *n)
                    .next();
                let store = super::messages::StoreArgs {
                    kind: &kind,
                    response: &response,
                    flags: &flags,
                    uid,
                    unchanged_since,
                };
                self.store(&sequence_set, store).await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.transfer(&sequence_set, &mailbox, uid, false).await,
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.transfer(&sequence_set, &mailbox, uid, true).await,
            other => Err(ImapError::Unsupported {
                what: other.name().to_string(),
            }),
        }
    }

    /// The capability list for the current state (RFC 9051 §7.2.2).
    pub(crate) fn capabilities(&self) -> Vec1<Capability<'static>> {
        let mut caps = vec![Capability::Imap4Rev1, other_cap("IMAP4rev2")];
        let tls_pending = self.ctx.config.tls.is_some() && !self.conn.is_tls();
        if self.account.is_none() {
            if tls_pending {
                caps.push(Capability::StartTls);
                caps.push(Capability::LoginDisabled);
            } else {
                caps.push(Capability::Auth(
                    imap_next::imap_types::auth::AuthMechanism::Plain,
                ));
            }
        }
        caps.extend([
            Capability::LiteralPlus,
            Capability::Idle,
            Capability::UidPlus,
            Capability::Move,
            Capability::Enable,
            Capability::Namespace,
            Capability::Id,
            Capability::Unselect,
            other_cap("SPECIAL-USE"),
            Capability::Quota,
            Capability::CondStore,
            Capability::QResync,
            Capability::QuotaRes(Resource::Storage),
            Capability::StatusSize,
            Capability::ListExtended,
            other_cap("LIST-STATUS"),
            other_cap("ESEARCH"),
            other_cap("SEARCHRES"),
            other_cap("SORT"),
            other_cap("SORT=DISPLAY"),
            other_cap("BINARY"),
            other_cap("UTF8=ACCEPT"),
            other_cap("ESORT"),
            other_cap("CONTEXT=SEARCH"),
            other_cap("CONTEXT=SORT"),
            other_cap("THREAD=ORDEREDSUBJECT"),
            other_cap("THREAD=REFERENCES"),
            other_cap("MULTIAPPEND"),
            other_cap("CATENATE"),
        ]);
        Vec1::try_from(caps).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
    }
}

fn is_selected_command(body: &CommandBody<'_>) -> bool {
    matches!(
        body,
        CommandBody::Expunge
            | CommandBody::ExpungeUid { .. }
            | CommandBody::Search { .. }
            | CommandBody::Sort { .. }
            | CommandBody::Thread { .. }
            | CommandBody::Fetch { .. }
            | CommandBody::Store { .. }
            | CommandBody::Copy { .. }
            | CommandBody::Move { .. }
    )
}

fn other_cap(name: &'static str) -> Capability<'static> {
    match imap_next::imap_types::core::Atom::try_from(name) {
        Ok(atom) => Capability::from(atom),
        Err(_) => Capability::Imap4Rev1,
    }
}
