//! Why an IMAP command failed, and the one mapping of those reasons to a
//! tagged `NO` or `BAD` with its response code (RFC 9051 §7.1, RFC 5530).
//!
//! `BAD` means the peer sent something we could not accept in this state
//! (syntax, wrong state, oversized literal); `NO` means the command was
//! understood but could not be carried out (no such mailbox, quota, wrong
//! password, our bug). Server-side failures say so with `[SERVERBUG]` and
//! are logged at `error`; the text never carries passwords or bodies.

use std::path::PathBuf;

use imap_next::imap_types::core::{Atom, Charset};
use imap_next::imap_types::response::{Code, CodeOther, StatusKind};

use crate::ingest::DeliverError;
use crate::store::MailError;

/// The charsets SEARCH accepts (RFC 9051 §6.4.4 requires these two).
pub(crate) const SEARCH_CHARSETS: [&str; 2] = ["UTF-8", "US-ASCII"];

/// A failure of the IMAP server or of one command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImapError {
    /// The peer sent a command we cannot parse or accept as given.
    #[error("{detail}")]
    Syntax {
        /// What was wrong, for the client.
        detail: String,
    },
    /// The command is not allowed in the session's current state.
    #[error("{command} is not allowed now: {needed}")]
    WrongState {
        /// The command.
        command: &'static str,
        /// What must happen first.
        needed: &'static str,
    },
    /// A mailbox name that cannot name a mailbox here (not UTF-8, or not
    /// valid modified UTF-7): no such mailbox can exist, so the command
    /// is refused with NO like any other missing mailbox, not BAD (the
    /// command itself was well formed).
    #[error("{detail}")]
    InvalidName {
        /// What was wrong, for the client.
        detail: String,
    },
    /// The peer asked for something we do not implement.
    #[error("{what} is not supported by this server")]
    Unsupported {
        /// What.
        what: String,
    },
    /// Login or AUTHENTICATE failed (unknown user or wrong password; the
    /// two are not told apart on purpose).
    #[error("authentication failed")]
    AuthFailed,
    /// The app token the session logged in with was removed.
    #[error("the app token this session logged in with was revoked; log in again")]
    TokenRevoked,
    /// Plain-text login before STARTTLS on a server that has TLS.
    #[error("use STARTTLS first: logging in without TLS is disabled on this server")]
    PrivacyRequired,
    /// A write on a mailbox opened with EXAMINE.
    #[error("mailbox is read-only (opened with EXAMINE); SELECT it to change it")]
    ReadOnly,
    /// The target of APPEND, COPY or MOVE does not exist.
    #[error("no mailbox {name:?}; create it first")]
    TryCreate {
        /// The name the client gave.
        name: String,
    },
    /// GETQUOTA of a root that does not exist (RFC 9208 §4.3.1).
    #[error(
        "no quota root {root:?}; the account's quota root is \"\" (none when it has no quota)"
    )]
    NoQuotaRoot {
        /// The root the client named.
        root: String,
    },
    /// SETQUOTA: quotas are set by the operator (RFC 9208 §4.3.3).
    #[error("quotas are set by the server's operator (sealmail account quota EMAIL SIZE), not over IMAP")]
    QuotaAdminOnly,
    /// A message or literal over `max_literal_bytes`.
    #[error("message is {size} bytes, over this server's limit of {limit}; send a smaller one")]
    TooBig {
        /// Announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// FETCH of messages another session expunged after this session was
    /// last told about them: their data is gone (RFC 3501 §7.4.1 allows
    /// NO; RFC 5530 `EXPUNGEISSUED`). The others were answered. The
    /// text opens as Dovecot's does: clients and imaptest's stress mode
    /// tell this NO from a failed FETCH by "no longer exist".
    #[error(
        "Some of the requested messages no longer exist: {count} expunged by another session; NOOP shows which"
    )]
    ExpungedMeanwhile {
        /// How many could not be answered.
        count: usize,
    },
    /// SEARCH with a CHARSET other than UTF-8 or US-ASCII (RFC 9051
    /// §6.4.4: `NO [BADCHARSET]` listing the ones supported).
    #[error("charset {charset:?} is not supported for SEARCH; use UTF-8")]
    BadCharset {
        /// The charset the client named.
        charset: String,
    },
    /// FETCH BINARY of a part whose Content-Transfer-Encoding we cannot
    /// undo (RFC 3516 §4.2: `NO [UNKNOWN-CTE]`).
    #[error("cannot decode the Content-Transfer-Encoding {cte:?} of that part; fetch it with BODY[] instead")]
    UnknownCte {
        /// The encoding the part names.
        cte: String,
    },
    /// A CATENATE URL that names nothing this session can use (RFC 4469
    /// §6, `NO [BADURL url]`).
    #[error("CATENATE URL refused: {reason}")]
    BadUrl {
        /// The URL as sent, made fit for the response code.
        url: String,
        /// Why.
        reason: String,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// APPEND through the ingest pipeline failed.
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    /// A blocking task died: our bug.
    #[error("internal error (a bug in sealmail): {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The TLS certificate or key given by the operator cannot be used.
    #[error(
        "TLS setup from {path}: {detail}; give a PEM certificate chain and its PEM private key"
    )]
    Tls {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

impl ImapError {
    /// A syntax error with `detail`.
    pub(crate) fn syntax(detail: impl Into<String>) -> Self {
        Self::Syntax {
            detail: detail.into(),
        }
    }

    /// The tagged status kind and response code for this error: the one
    /// place where errors become wire replies.
    pub(crate) fn reply(&self) -> (StatusKind, Option<Code<'static>>) {
        match self {
            Self::Syntax { .. } | Self::WrongState { .. } | Self::Unsupported { .. } => {
                (StatusKind::Bad, None)
            }
            Self::InvalidName { .. } => (StatusKind::No, other("CANNOT")),
            Self::AuthFailed | Self::TokenRevoked => {
                (StatusKind::No, other("AUTHENTICATIONFAILED"))
            }
            Self::PrivacyRequired => (StatusKind::No, other("PRIVACYREQUIRED")),
            Self::ReadOnly => (StatusKind::No, Some(Code::ReadOnly)),
            Self::BadCharset { .. } => (
                StatusKind::No,
                Some(Code::BadCharset {
                    allowed: SEARCH_CHARSETS
                        .iter()
                        .filter_map(|c| Charset::try_from(*c).ok())
                        .collect(),
                }),
            ),
            Self::TryCreate { .. } => (StatusKind::No, Some(Code::TryCreate)),
            Self::TooBig { .. } => (StatusKind::No, Some(Code::TooBig)),
            Self::BadUrl { url, .. } => (
                StatusKind::No,
                Some(Code::Other(CodeOther::unvalidated(
                    format!("BADURL {url}").trim_end().as_bytes().to_vec(),
                ))),
            ),
            Self::NoQuotaRoot { .. } => (StatusKind::No, other("NONEXISTENT")),
            Self::QuotaAdminOnly => (StatusKind::No, other("NOPERM")),
            Self::ExpungedMeanwhile { .. } => (StatusKind::No, other("EXPUNGEISSUED")),
            Self::UnknownCte { .. } => (StatusKind::No, other("UNKNOWN-CTE")),
            Self::Mail(e) => (StatusKind::No, mail_code(e)),
            Self::Deliver(DeliverError::OverQuota { .. }) => {
                (StatusKind::No, Some(Code::OverQuota))
            }
            Self::Deliver(_) => (StatusKind::No, other("UNAVAILABLE")),
            Self::Task(_) | Self::Tls { .. } => (StatusKind::No, other("SERVERBUG")),
        }
    }

    /// Whether the server (not the peer) is at fault and an operator
    /// should look at the log.
    pub(crate) fn is_server_fault(&self) -> bool {
        match self {
            Self::Mail(e) => !e.is_user_error(),
            Self::Deliver(e) => !matches!(
                e,
                DeliverError::OverQuota { .. } | DeliverError::Refused { .. }
            ),
            Self::Task(_) | Self::Tls { .. } => true,
            _ => false,
        }
    }
}

fn mail_code(e: &MailError) -> Option<Code<'static>> {
    match e {
        MailError::MailboxNotFound { .. } | MailError::MessageNotFound { .. } => {
            other("NONEXISTENT")
        }
        MailError::MailboxExists { .. } => other("ALREADYEXISTS"),
        MailError::QuotaExceeded { .. } => Some(Code::OverQuota),
        MailError::InvalidMailboxName { .. }
        | MailError::MailboxHasChildren { .. }
        | MailError::InboxProtected
        | MailError::UidsExhausted { .. } => other("CANNOT"),
        e if !e.is_user_error() => other("SERVERBUG"),
        _ => None,
    }
}

/// A response code that imap-types has no variant for (RFC 5530 codes).
pub(crate) fn other(code: &'static str) -> Option<Code<'static>> {
    Atom::validate(code).ok()?;
    Some(Code::Other(CodeOther::unvalidated(code.as_bytes())))
}
