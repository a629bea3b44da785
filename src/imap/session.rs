//! One connection's state machine (RFC 9051 §3): greeting, the command
//! loop with its per-command span, dispatch by state, tagged replies, and
//! the STARTTLS and IDLE hand-shakes. Command bodies live in the sibling
//! modules; this file only routes and answers.

use std::sync::Arc;

use imap_next::imap_types::command::{Command, CommandBody};
use imap_next::imap_types::core::{Tag, Text, Vec1};
use imap_next::imap_types::response::{
    Capability, Code, CommandContinuationRequest, Data, Greeting, Status, StatusKind,
};
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
use crate::store::{Account, MailError, MailStore};

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
    /// The logged-in account: every mailbox name resolves within it.
    pub(crate) account: Option<Account>,
    pub(crate) selected: Option<Selected>,
    pub(crate) changes: Option<broadcast::Receiver<()>>,
    pub(crate) auth_tag: Option<Tag<'static>>,
    stop: watch::Receiver<bool>,
}

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
    implicit_tls: bool,
    stop: watch::Receiver<bool>,
) {
    let transport = if implicit_tls {
        match handshake(&ctx, tcp).await {
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
    let conn = Connection::new(transport, options, greeting);
    let mut session = Session {
        ctx,
        conn,
        account: None,
        selected: None,
        changes: None,
        auth_tag: None,
        stop,
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

async fn handshake(ctx: &ImapContext, tcp: TcpStream) -> Option<Transport> {
    let Some(tls) = ctx.config.tls.clone() else {
        warn!("implicit TLS connection but no TLS configured; closing");
        return None;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(Transport::Tls(Box::new(stream))),
        Ok(Err(e)) => {
            info!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            info!("TLS handshake timed out");
            None
        }
    }
}

impl Session {
    async fn serve(&mut self) -> Result<(), ConnectionError> {
        loop {
            let timeout = Some(self.ctx.config.idle_timeout);
            let incoming = tokio::select! {
                incoming = self.conn.next(timeout) => incoming,
                _ = self.stop.changed() => return self.bye("server shutting down").await,
            };
            let incoming = match incoming {
                Err(ConnectionError::Timeout(_)) => {
                    return self.bye("autologout: idle too long").await
                }
                other => other?,
            };
            let flow = match incoming {
                Incoming::Event(event) => self.event(event).await?,
                Incoming::Rejected(e) => {
                    self.rejected(&e);
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

    async fn bye(&mut self, text: &'static str) -> Result<(), ConnectionError> {
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
                "syntax error in command",
            ),
        };
        warn!("malformed command refused");
        let code = matches!(e, ProtocolError::CommandTooLong { .. }).then_some(Code::TooBig);
        self.conn.status(status(tag, StatusKind::Bad, code, text));
    }

    async fn command(&mut self, command: Command<'static>) -> Flow {
        let tag = command.tag.clone();
        let name = command.body.name();
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = name);
        let flow = match &command.body {
            CommandBody::Logout => Flow::Logout,
            CommandBody::StartTLS => Flow::StartTls,
            _ => Flow::Continue,
        };
        let result = self.dispatch(command.body).instrument(span.clone()).await;
        let _enter = span.enter();
        match result {
            Ok(done) => {
                debug!("ok");
                let text = done.text;
                self.conn
                    .status(status(Some(tag), StatusKind::Ok, done.code, text));
                flow
            }
            Err(e) => {
                self.reply_error(Some(tag), &e);
                Flow::Continue
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

    async fn dispatch(&mut self, body: CommandBody<'static>) -> Result<Done, ImapError> {
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
            CommandBody::Enable { .. } => {
                // why: none of the ENABLE-able extensions (CONDSTORE,
                // UTF8=ACCEPT, IMAP4rev2 semantics) is implemented, and
                // RFC 5161 §3.1 lets the server enable nothing.
                self.account()?;
                self.conn.data(Data::Enabled {
                    capabilities: Vec::new(),
                });
                Ok(Done::ok("ENABLE completed"))
            }
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
        match body {
            CommandBody::Select { mailbox, .. } => self.select(&mailbox, false).await,
            CommandBody::Examine { mailbox, .. } => self.select(&mailbox, true).await,
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
            CommandBody::Search { criteria, uid, .. } => self.search(criteria.as_ref(), uid).await,
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                ..
            } => self.fetch(&sequence_set, macro_or_item_names, uid).await,
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                ..
            } => {
                self.store(&sequence_set, &kind, &response, &flags, uid)
                    .await
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

    /// The logged-in account, or the error for a command that needs one.
    pub(crate) fn account(&self) -> Result<&Account, ImapError> {
        self.account.as_ref().ok_or(ImapError::WrongState {
            command: "this command",
            needed: "log in first",
        })
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
        ]);
        Vec1::try_from(caps).unwrap_or_else(|_| Vec1::from(Capability::Imap4Rev1))
    }

    fn check_start_tls(&self) -> Result<Done, ImapError> {
        if self.ctx.config.tls.is_none() {
            return Err(ImapError::Unsupported {
                what: "STARTTLS (no TLS certificate configured)".into(),
            });
        }
        if self.conn.is_tls() || self.account.is_some() {
            return Err(ImapError::WrongState {
                command: "STARTTLS",
                needed: "only once, before logging in",
            });
        }
        Ok(Done::ok("begin TLS negotiation now"))
    }

    async fn start_tls(&mut self) -> Result<(), ConnectionError> {
        self.conn.flush().await?;
        let (Some(tls), Some(tcp)) = (self.ctx.config.tls.clone(), self.conn.take_plain()) else {
            return Ok(());
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
            .await
            .map_err(|_| ConnectionError::Timeout(HANDSHAKE_TIMEOUT))??;
        info!("STARTTLS active");
        self.conn.resume(Transport::Tls(Box::new(stream)));
        Ok(())
    }

    /// RFC 2177: accept IDLE, push changes as they happen until DONE.
    async fn idle(&mut self, tag: Tag<'static>) -> Result<(), ConnectionError> {
        let span = debug_span!("cmd", tag = %tag.inner(), cmd = "IDLE");
        if self.account.is_none() {
            let e = ImapError::WrongState {
                command: "IDLE",
                needed: "log in first",
            };
            let (kind, code) = e.reply();
            let _ = self
                .conn
                .server()
                .idle_reject(status(Some(tag), kind, code, &e.to_string()));
            return Ok(());
        }
        if let Ok(cont) = CommandContinuationRequest::basic(None, "idling") {
            let _ = self.conn.server().idle_accept(cont);
        }
        if let Err(e) = self.sync(true).instrument(span.clone()).await {
            self.reply_error(None, &e);
        }
        loop {
            let woke = self.wait_idle().await?;
            if let Some(event) = woke {
                if !matches!(event, Incoming::Event(Event::IdleDoneReceived)) {
                    debug!(parent: &span, "unexpected input while idling");
                }
                self.conn
                    .status(status(Some(tag), StatusKind::Ok, None, "IDLE terminated"));
                return Ok(());
            }
            if let Err(e) = self.sync(true).instrument(span.clone()).await {
                self.reply_error(None, &e);
            }
        }
    }

    /// `Some(input)` when the client spoke, `None` when the account changed.
    async fn wait_idle(&mut self) -> Result<Option<Incoming>, ConnectionError> {
        let changes = self.changes.as_mut();
        tokio::select! {
            incoming = self.conn.next(None) => Ok(Some(incoming?)),
            _ = recv_change(changes) => Ok(None),
            _ = self.stop.changed() => {
                self.bye("server shutting down").await?;
                Err(ConnectionError::Closed)
            }
        }
    }

    /// After AUTHENTICATE completes, whichever way.
    pub(crate) fn auth_finish(&mut self, status: Status<'static>) {
        if let Err(status) = self.conn.server().authenticate_finish(status) {
            self.conn.status(status);
        }
    }
}

async fn recv_change(changes: Option<&mut broadcast::Receiver<()>>) {
    match changes {
        // Lagged or a message: either way, something changed.
        Some(rx) => {
            let _ = rx.recv().await;
        }
        None => std::future::pending().await,
    }
}

fn is_selected_command(body: &CommandBody<'_>) -> bool {
    matches!(
        body,
        CommandBody::Expunge
            | CommandBody::ExpungeUid { .. }
            | CommandBody::Search { .. }
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
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
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
