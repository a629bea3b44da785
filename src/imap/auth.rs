//! LOGIN (RFC 9051 §6.2.3) and AUTHENTICATE PLAIN (§6.2.2, RFC 4616).
//!
//! The password may be an app token's secret (`smt_...`, `store::tokens`)
//! of the same account; a session that logged in with one checks before
//! each command that the token still exists, so revoking it ends the
//! session at its next command.
//!
//! Unknown user and wrong password look the same to the client, and both
//! wait `failed_login_delay` before the `NO`: a real delay in every
//! build, so that the binary we test is the one we ship. Before STARTTLS
//! on a server with TLS, both are refused (`LOGINDISABLED`, RFC 9051
//! §6.2.3). A failure is logged with the source and the login name
//! (`login_throttle::log_failure`); passwords are never logged.

use std::sync::Arc;

use imap_next::imap_types::auth::{AuthMechanism, AuthenticateData};
use imap_next::imap_types::response::{Code, CommandContinuationRequest, StatusKind};
use imap_next::types::CommandAuthenticate;
use tracing::info;

use super::error::ImapError;
use super::session::{status, Done, Session};
use crate::store::{Account, Credential, MailError, MailStore, TokenId, TOKEN_PREFIX};

/// The account an app token's `secret` opens, if it is `user`'s own: a
/// token never logs in to another account.
fn check_token(
    store: &MailStore,
    user: &str,
    secret: &str,
) -> Result<Option<(Account, Option<TokenId>)>, MailError> {
    let Some((account, token)) = store.check_app_token(secret)? else {
        return Ok(None);
    };
    let named = match store.account_by_address(user) {
        Ok(named) => named,
        Err(MailError::AccountNotFound { .. } | MailError::InvalidAddress { .. }) => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    Ok((named.id == account.id).then_some((account, Some(token))))
}

impl Session {
    /// Whether a clear-text password must be refused here.
    fn privacy_required(&self) -> bool {
        self.ctx.config.tls.is_some() && !self.conn.is_tls()
    }

    /// LOGIN `user` `pass`.
    pub(crate) async fn login(&mut self, user: &str, pass: &str) -> Result<Done, ImapError> {
        if self.account.is_some() {
            return Err(ImapError::WrongState {
                command: "LOGIN",
                needed: "already logged in",
            });
        }
        if self.privacy_required() {
            return Err(ImapError::PrivacyRequired);
        }
        self.verify(user, pass).await?;
        let caps = self.capabilities();
        Ok(Done::with_code(Code::Capability(caps), "LOGIN completed"))
    }

    /// Checks the credentials (the password, or an app token's secret
    /// given as the password) and enters the authenticated state.
    async fn verify(&mut self, user: &str, pass: &str) -> Result<(), ImapError> {
        let user_owned = user.to_string();
        let pass = zeroize::Zeroizing::new(pass.to_string());
        let ring = Arc::clone(&self.ctx.keyring);
        let store = Arc::clone(&self.ctx.store);
        // why not for a token: its check is one SHA-256, no argon2id.
        let slot = if pass.starts_with(TOKEN_PREFIX) {
            None
        } else {
            store.login_slot().await
        };
        let found = self
            .with_store(move |store| {
                if pass.starts_with(TOKEN_PREFIX) {
                    let Some((account, token)) = check_token(store, &user_owned, &pass)? else {
                        return Ok(None);
                    };
                    let credential = Credential::AppToken(&pass);
                    let hold = crate::reading::unlock_held(store, &ring, account.id, credential)?;
                    return Ok(Some((account, token, hold)));
                }
                let Some(account) = store.check_login(&user_owned, &pass)? else {
                    return Ok(None);
                };
                // why here: a login is what opens the server-side reading
                // keys (`crate::reading`).
                let credential = Credential::Password(&pass);
                let hold = crate::reading::unlock_held(store, &ring, account.id, credential)?;
                Ok(Some((account, None, hold)))
            })
            .await?;
        // why now: a failure waits out the throttle's delay below (up to
        // 30 s), and a slot held through it would make every other login
        // wait too.
        drop(slot);
        match found {
            Some((account, token, hold)) => {
                self.ctx.config.throttle.succeeded(self.peer, user);
                self.token = token;
                self.reading = hold;
                self.logged_in(account);
                Ok(())
            }
            None => {
                self.wait_after_failure(user).await;
                Err(ImapError::AuthFailed)
            }
        }
    }

    /// Counts and logs a failed login as `user`, then waits as the
    /// throttle says.
    async fn wait_after_failure(&self, user: &str) {
        let config = &self.ctx.config;
        let delay = config
            .throttle
            .failed(self.peer, user, config.failed_login_delay);
        crate::login_throttle::log_failure("imap", Some(self.peer), user, delay);
        tokio::time::sleep(delay).await;
    }

    /// Refuses the command, and leaves the authenticated state, when the
    /// app token the session logged in with has been removed.
    pub(crate) async fn check_token(&mut self) -> Result<(), ImapError> {
        let (Some(token), Some(account)) = (self.token, self.account.as_ref()) else {
            return Ok(());
        };
        let id = account.id;
        let exists = self
            .with_store(move |store| store.app_token_exists(id, token))
            .await?;
        if exists {
            return Ok(());
        }
        info!(account = %id, token = %token, "app token revoked; session logged out");
        self.token = None;
        self.reading = None;
        self.selected = None;
        self.changes = None;
        self.account = None;
        Err(ImapError::TokenRevoked)
    }

    fn logged_in(&mut self, account: Account) {
        self.anonymous = None;
        self.conn.logged_in();
        info!(account = %account.id, "logged in");
        self.changes = Some(self.ctx.notifier.subscribe(account.id));
        self.account = Some(account);
    }

    /// AUTHENTICATE: only PLAIN, with or without an initial response.
    pub(crate) async fn authenticate_start(&mut self, cmd: CommandAuthenticate) {
        let tag = cmd.tag.clone();
        let refusal = if self.account.is_some() {
            Some(ImapError::WrongState {
                command: "AUTHENTICATE",
                needed: "already logged in",
            })
        } else if self.privacy_required() {
            Some(ImapError::PrivacyRequired)
        } else if cmd.mechanism != AuthMechanism::Plain {
            Some(ImapError::Unsupported {
                what: format!("SASL mechanism {}", cmd.mechanism),
            })
        } else {
            None
        };
        if let Some(e) = refusal {
            self.auth_tag = None;
            self.finish_error(tag, &e);
            return;
        }
        match cmd.initial_response {
            Some(ir) => {
                self.auth_tag = None;
                let data = ir.declassify().to_vec();
                self.plain(tag, &data).await;
            }
            None => {
                let cont = CommandContinuationRequest::base64(Vec::new());
                if let Err(_cont) = self.conn.server().authenticate_continue(cont) {
                    self.auth_tag = None;
                }
            }
        }
    }

    /// The client's answer to our empty challenge.
    pub(crate) async fn authenticate_data(
        &mut self,
        tag: Option<imap_next::imap_types::core::Tag<'static>>,
        data: AuthenticateData<'static>,
    ) {
        let Some(tag) = tag else {
            return;
        };
        match data {
            AuthenticateData::Continue(bytes) => {
                let bytes = bytes.declassify().to_vec();
                self.plain(tag, &bytes).await;
            }
            AuthenticateData::Cancel => {
                let e = ImapError::syntax("AUTHENTICATE cancelled");
                self.finish_error(tag, &e);
            }
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`.
    async fn plain(&mut self, tag: imap_next::imap_types::core::Tag<'static>, data: &[u8]) {
        let mut fields = data.split(|&b| b == 0);
        let (Some(authz), Some(user), Some(pass), None) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            let e = ImapError::syntax("PLAIN response must be authzid NUL user NUL password");
            self.finish_error(tag, &e);
            return;
        };
        let user = String::from_utf8_lossy(user).into_owned();
        let pass = String::from_utf8_lossy(pass).into_owned();
        let authz = String::from_utf8_lossy(authz).into_owned();
        // why: acting as another user (authzid) is not offered; only the
        // empty authzid or the user's own address is accepted.
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(&user) {
            self.wait_after_failure(&user).await;
            self.finish_error(tag, &ImapError::AuthFailed);
            return;
        }
        match self.verify(&user, &pass).await {
            Ok(()) => {
                let caps = self.capabilities();
                let ok = status(
                    Some(tag),
                    StatusKind::Ok,
                    Some(Code::Capability(caps)),
                    "AUTHENTICATE completed",
                );
                self.auth_finish(ok);
            }
            Err(e) => self.finish_error(tag, &e),
        }
    }

    fn finish_error(&mut self, tag: imap_next::imap_types::core::Tag<'static>, e: &ImapError) {
        let (kind, code) = e.reply();
        self.auth_finish(status(Some(tag), kind, code, &e.to_string()));
    }
}
