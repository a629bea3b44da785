//! One connection's state machine (RFC 9051 §3): greeting, the command
//! loop with its per-command span, dispatch by state, tagged replies, and
//! the STARTTLS and IDLE hand-shakes. Command bodies live in the sibling
//! modules; this file only routes and answers.

use std::sync::Arc;

use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{Tag, Text};
use imap_next::imap_types::response::{Code, Greeting, Status, StatusKind};
use imap_next::imap_types::IntoStatic;
use imap_next::server::{Error as ProtocolError, Event, Options};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tracing::{debug, debug_span, error, info, warn, Instrument};

use super::connection::{Connection, ConnectionError, Incoming, Transport};
use super::error::ImapError;
use super::selected::Selected;
use super::ImapContext;
use crate::ingest::{shutting_down, Owner};
use crate::store::{Account, MailError, MailStore};

/// How long a TLS handshake may take.
pub(crate) const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A successful command's tagged `OK`.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) code: Option<Code<'static>>,
    pub(crate) text: &'static str,
}

impl Done {
    /// `OK` with `text`.
    pub(crate) fn ok(text: &'static str) -> Self {
        Self { code: None, text }
    }

    /// `OK [code]` with `text`.
    pub(crate) fn with_code(code: Code<'static>, text: &'static str) -> Self {
        Self {
            code: Some(code),
            text,
        }
    }
}

/// What the loop does after a command.
enum Flow {
    Continue,
    Logout,
    StartTls,
}

/// The per-connection state.
pub(crate) struct Session {
    pub(crate) ctx: Arc<ImapContext>,
    pub(crate) conn: Connection,
    /// The client's address (failed-login throttling).
    pub(crate) peer: std::net::IpAddr,
    /// The logged-in account: every mailbox name resolves within it.
    pub(crate) account: Option<Account>,
    pub(crate) selected: Option<Selected>,
    pub(crate) changes: Option<broadcast::Receiver<crate::notify::DataTypes>>,
    pub(crate) auth_tag: Option<Tag<'static>>,
    pub(crate) stop: watch::Receiver<bool>,
    /// Counts this connection against its address until it logs in.
    pub(crate) anonymous: Option<crate::net::SourceSlot>,
    /// The app token the session logged in with, checked again before
    /// each command so that revoking it ends the session.
    pub(crate) token: Option<crate::store::TokenId>,
    /// What the client enabled of RFC 7162 (CONDSTORE, QRESYNC).
    pub(crate) resync: super::condstore::Tracking,
    /// What the client enabled of UTF8=ACCEPT and IMAP4rev2 (`enable`).
    pub(crate) enabled: super::enable::Enabled,
    /// The account's server-side reading keys, held while logged in
    /// (opened at login with the password or the app token's own copy,
    /// `crate::reading`).
    pub(crate) reading: Option<crate::reading::Hold>,
}

/// What a connection refused for want of descriptors gets.
pub(crate) const BUSY: &[u8] = b"* BYE server busy, try again later\r\n";

/// Answers a connection over the limit and closes it.
pub(crate) async fn refuse(mut tcp: TcpStream) {
    let _ = tcp
        .write_all(b"* BYE too many connections, try again later\r\n")
        .await;
}

/// Runs one connection to its end.
pub(crate) async fn run(
    ctx: Arc<ImapContext>,
    tcp: TcpStream,
    peer: std::net::IpAddr,
    implicit_tls: bool,
    stop: watch::Receiver<bool>,
) {
    let transport = if implicit_tls {
        match super::tls::handshake(&ctx, tcp).await {
            Some(tls) => tls,
            None => return,
        }
    } else {
        Transport::Plain(tcp)
    };
    info!(tls = implicit_tls, "connected");
    let mut options = Options::default();
    options.max_literal_size = ctx.config.max_literal_bytes;
    // why: Dovecot's 64 KiB command limit on top of the largest literal,
    // as imap-next's default does for its own literal limit.
    options.max_command_size = ctx.config.max_literal_bytes.saturating_add(64 * 1024);
    options.crlf_relaxed = true;
    let _ = options.set_literal_reject_text(format!(
        "literal over this server's limit of {} bytes",
        ctx.config.max_literal_bytes
    ));
    let text = format!("{} IMAP4rev1 IMAP4rev2 sealmail ready", ctx.config.hostname);
    let greeting = Greeting::ok(None, text.as_str())
        .map(IntoStatic::into_static)
        .unwrap_or_else(|_| fallback_greeting());
    let limit = ctx.config.max_unauthenticated_per_source;
    let Some(anonymous) = ctx.config.anonymous.enter(peer, limit) else {
        warn!(
            limit,
            "too many unauthenticated connections from this address"
        );
        let text =
            "too many connections from your address that have not logged in; log in or close some";
        let bye = Greeting::bye(None, text).map(IntoStatic::into_static);
        let mut conn = Connection::new(transport, options, bye.unwrap_or(greeting));
        let _ = conn.flush().await;
        return;
    };
    let conn = Connection::new(transport, options, greeting);
    let mut session = Session {
        ctx,
        conn,
        peer,
        account: None,
        selected: None,
        changes: None,
        auth_tag: None,
        stop,
        anonymous: Some(anonymous),
        token: None,
        resync: super::condstore::Tracking::Off,
        enabled: super::enable::Enabled::default(),
        reading: None,
    };
    match session.serve().await {
        Ok(()) | Err(ConnectionError::Closed) => info!("disconnected"),
        Err(e) => info!(reason = %e, "disconnected"),
    }
}

#[expect(clippy::expect_used, reason = "a constant, valid text")]
fn fallback_greeting() -> Greeting<'static> {
    Greeting::ok(None, "IMAP ready").expect("constant greeting text is valid")
}

impl Session {
    async fn serve(&mut self) -> Result<(), ConnectionError> {
        loop {
            let timeout = Some(if self.account.is_some() {
                self.ctx.config.idle_timeout
            } else {
                self.ctx.config.login_timeout
            });
            let incoming = tokio::select! {
                incoming = self.conn.next(timeout) => incoming,
                _ = self.stop.changed() => return self.bye("server shutting down").await,
            };
            let incoming = match incoming {
                Err(ConnectionError::Timeout(_)) => {
                    return self.bye("autologout: idle too long").await
                }
                Err(ConnectionError::PreLogin(e)) => {
                    warn!(reason = %e, "pre-login limit");
                    return self.bye(e.to_string()).await;
                }
                other => other?,
            };
            let flow = match incoming {
                Incoming::Event(event) => self.event(event).await?,
                // RFC 5182: `$` replaced by the saved result, the
                // command runs as if the client had written it out.
                Incoming::Rejected(e) if self.uses_saved(&e) => self.saved_result(&e).await,
                Incoming::Rejected(e) => {
                    // why here: imap-codec parses only the RFC 3501 LIST;
                    // the RFC 5258 forms arrive as refused messages.
                    // So are SEARCH with RETURN (RFC 4731).
                    if let Some((tag, parsed)) = super::list::refused_list(&e) {
                        self.list_extended(tag, parsed).await;
                    } else if let Some((tag, parsed)) = super::esearch::refused_search(&e) {
                        self.search_extended(tag, self.check_search(parsed)).await;
                    } else if let Some((tag, parsed)) = super::utf8::refused_append(&e) {
                        self.utf8_append(tag, parsed).await;
                    } else if let Some((tag, parsed)) = super::context::refused_cancel_update(&e) {
                        self.cancel_update(tag, parsed).await;
                    } else if let Some((tag, parsed)) = super::multiappend::refused_append(&e) {
                        self.append_extended(tag, parsed).await;
                    } else {
                        self.rejected(&e);
                    }
                    Flow::Continue
                }
            };
            match flow {
                Flow::Continue => {}
                Flow::Logout => {
                    self.conn.flush().await?;
                    return Ok(());
                }
                Flow::StartTls => self.start_tls().await?,
            }
        }
    }

    pub(crate) async fn bye(&mut self, text: impl Into<String>) -> Result<(), ConnectionError> {
        let text: String = text.into();
        if let Ok(status) = Status::bye(None, text) {
            self.conn.status(status);
        }
        self.conn.flush().await
    }

    async fn event(&mut self, event: Event) -> Result<Flow, ConnectionError> {
        match event {
            Event::CommandReceived { command } => Ok(self.command(command).await),
            Event::CommandAuthenticateReceived {
                command_authenticate,
            } => {
                self.auth_tag = Some(command_authenticate.tag.clone());
                self.authenticate_start(command_authenticate).await;
                Ok(Flow::Continue)
            }
            Event::AuthenticateDataReceived { authenticate_data } => {
                let tag = self.auth_tag.take();
                self.authenticate_data(tag, authenticate_data).await;
                Ok(Flow::Continue)
            }
            Event::IdleCommandReceived { tag } => {
                self.idle(tag).await?;
                Ok(Flow::Continue)
            }
            Event::IdleDoneReceived | Event::GreetingSent { .. } | Event::ResponseSent { .. } => {
                Ok(Flow::Continue)
            }
        }
    }

    fn uses_saved(&self, e: &ProtocolError) -> bool {
        super::searchres::uses_saved(e, self.selected.as_ref())
    }

    /// A refused command that used `$` (RFC 5182), rewritten.
    async fn saved_result(&mut self, e: &ProtocolError) -> Flow {
        use super::searchres::Rewritten;
        match super::searchres::refused_with_saved(e, self.selected.as_ref()) {
            Some(Rewritten::Command(command)) => return self.command(command).await,
            Some(Rewritten::Search(tag, parsed)) => self.search_extended(tag, parsed).await,
            Some(Rewritten::Empty(tag)) => self.conn.status(status(
                Some(tag),
                StatusKind::Ok,
                None,
                "nothing to do: the saved result ($) is empty",
            )),
            Some(Rewritten::Bad(tag)) => self.conn.status(status(
                Some(tag),
                StatusKind::Bad,
                None,
                "syntax error in command (with $ replaced by the saved result)",
            )),
            None => self.rejected(e),
        }
        Flow::Continue
    }

    /// BAD for input imap-next could not accept; the session goes on.
    fn rejected(&mut self, e: &ProtocolError) {
        let (tag, text) = match e {
            ProtocolError::LiteralTooLong { .. } => {
                // imap-next already answered this one with a tagged BAD.
                debug!("literal over the limit refused");
                return;
            }
            ProtocolError::CommandTooLong { discarded_bytes } => (
                tag_of(discarded_bytes.declassify()),
                "command or literal too long",
            ),
            ProtocolError::MalformedMessage { discarded_bytes }
            | ProtocolError::ExpectedCrlfGotLf { discarded_bytes } => (
                tag_of(discarded_bytes.declassify()),
                super::status::syntax_hint(discarded_bytes.declassify())
                    .unwrap_or("syntax error in command"),
            ),
        };
        warn!("malformed command refused");
        let code = matches!(e, ProtocolError::CommandTooLong { .. }).then_some(Code::TooBig);
        self.conn.status(status(tag, StatusKind::Bad, code, text));
    }

    async fn command(&mut self, command: Command<'static>) -> Flow {
        let command = match self.route(command) {
            super::enable::Route::Command(command) => command,
            super::enable::Route::Search(tag, parsed) => {
                self.search_extended(tag, parsed).await;
                return Flow::Continue;
            }
        };
        let tag = command.tag.clone();
        let name = command.body.name();
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = name);
        let flow = match &command.body {
            CommandBody::Logout => Flow::Logout,
            CommandBody::StartTLS => Flow::StartTls,
            _ => Flow::Continue,
        };
        let started = std::time::Instant::now();
        let result = self.dispatch(command.body).instrument(span.clone()).await;
        if self.answer(tag, name, started, &span, result) {
            flow
        } else {
            Flow::Continue
        }
    }

    /// Records the command's time and answers it: the tagged OK of
    /// `result`, or its NO/BAD. Every command ends here, also those
    /// imap-codec refused and sealmail parsed itself (`list`, `esearch`).
    /// Returns whether the command succeeded.
    pub(crate) fn answer(
        &mut self,
        tag: Tag<'static>,
        name: &'static str,
        started: std::time::Instant,
        span: &tracing::Span,
        result: Result<Done, ImapError>,
    ) -> bool {
        crate::metrics::imap_command(name, started.elapsed());
        let _enter = span.enter();
        match result {
            Ok(done) => {
                debug!("ok");
                self.conn
                    .status(status(Some(tag), StatusKind::Ok, done.code, done.text));
                true
            }
            Err(e) => {
                self.reply_error(Some(tag), &e);
                false
            }
        }
    }

    /// The tagged NO/BAD for `e` (mapping in [`ImapError::reply`]).
    pub(crate) fn reply_error(&mut self, tag: Option<Tag<'static>>, e: &ImapError) {
        if e.is_server_fault() {
            error!(error = %e, "command failed");
        } else {
            debug!(error = %e, "command refused");
        }
        let (kind, code) = e.reply();
        let text = e.to_string();
        self.conn.status(status(tag, kind, code, &text));
    }

    /// The logged-in account, or the error for a command that needs one.
    pub(crate) fn account(&self) -> Result<&Account, ImapError> {
        self.account.as_ref().ok_or(ImapError::WrongState {
            command: "this command",
            needed: "log in first",
        })
    }

    /// The account's server-side reading keys, while this session holds
    /// them and they have not been forgotten (`crate::reading`).
    pub(crate) fn reading_keys(&self) -> Option<Arc<crate::reading::Unlocked>> {
        self.reading.as_ref().and_then(crate::reading::Hold::keys)
    }

    /// Runs `f` on the store on the blocking pool: the one place IMAP
    /// reaches the (blocking) store.
    pub(crate) async fn with_store<T, F>(&self, f: F) -> Result<T, ImapError>
    where
        T: Send + 'static,
        F: FnOnce(&MailStore) -> Result<T, MailError> + Send + 'static,
    {
        let store = Arc::clone(&self.ctx.store);
        Ok(tokio::task::spawn_blocking(move || f(&store)).await??)
    }

    /// As [`Session::with_store`], holding a slot of the shared CPU pool
    /// for the logged-in account (`ingest/cpu.rs`): for batches that parse
    /// or scan many messages, so that they neither run on the reactor nor
    /// take more than the account's share of the cores.
    pub(crate) async fn with_store_cpu<T, F>(&self, f: F) -> Result<T, ImapError>
    where
        T: Send + 'static,
        F: FnOnce(&MailStore) -> Result<T, MailError> + Send + 'static,
    {
        let account = self.account()?;
        let slot = self
            .ctx
            .ingest
            .cpu_pool()
            .acquire(Owner::Account(account.id))
            .await
            .map_err(|_| ImapError::Deliver(shutting_down(&account.address)))?;
        let store = Arc::clone(&self.ctx.store);
        Ok(tokio::task::spawn_blocking(move || {
            let _slot = slot;
            f(&store)
        })
        .await??)
    }

    /// After AUTHENTICATE completes, whichever way.
    pub(crate) fn auth_finish(&mut self, status: Status<'static>) {
        if let Err(status) = self.conn.server().authenticate_finish(status) {
            self.conn.status(status);
        }
    }
}

/// The tag at the start of a rejected command, if it has a valid one.
fn tag_of(bytes: &[u8]) -> Option<Tag<'static>> {
    let end = bytes.iter().position(|&b| b == b' ')?;
    let tag = bytes.get(..end)?;
    Tag::try_from(tag.to_vec()).ok()
}

/// A status response; text is made valid (one line, not empty).
pub(crate) fn status(
    tag: Option<Tag<'static>>,
    kind: StatusKind,
    code: Option<Code<'static>>,
    text: &str,
) -> Status<'static> {
    // why '?': resp-text is 7-bit (RFC 9051 §9 TEXT-CHAR); one non-ASCII
    // character (a name, a quoted charset) must not cost the whole text.
    let clean: String = text
        .chars()
        .map(|c| match c {
            c if c.is_control() => ' ',
            c if !c.is_ascii() => '?',
            c => c,
        })
        .collect();
    let clean = if clean.trim().is_empty() {
        "done".to_string()
    } else {
        clean
    };
    let text = Text::try_from(clean).unwrap_or_else(|_| Text::unvalidated("done"));
    match tag {
        Some(tag) => Status::Tagged(imap_next::imap_types::response::Tagged {
            tag,
            body: imap_next::imap_types::response::StatusBody { kind, code, text },
        }),
        None => Status::Untagged(imap_next::imap_types::response::StatusBody { kind, code, text }),
    }
}
