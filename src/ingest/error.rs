//! Why a recipient's copy was not stored, and the one mapping of those
//! reasons to SMTP/LMTP reply codes.

use sealmail_plugin_api::HookError;

use crate::store::MailError;

/// Why one recipient's copy was not stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliverError {
    /// No account, alias or list has this address (peer's or operator's fault).
    #[error(
        "no mailbox for <{rcpt}>; add it to an account's addresses or fix the MTA's LMTP route"
    )]
    UnknownRecipient {
        /// The address.
        rcpt: String,
    },
    /// A hook refused the copy (encryption impossible, policy).
    #[error("<{rcpt}>: {source}")]
    Refused {
        /// The address.
        rcpt: String,
        /// The hook's reason.
        #[source]
        source: HookError,
    },
    /// The account is opted in but the chain left the copy in clear (the
    /// operator removed `encrypt-at-rest` from the chain): fail closed.
    #[error("<{rcpt}> has encryption enabled but the hook chain did not encrypt the copy; put \"encrypt-at-rest\" in [hooks] chain")]
    NotEncrypted {
        /// The address.
        rcpt: String,
    },
    /// The account is over its quota.
    #[error("<{rcpt}>: {source}")]
    OverQuota {
        /// The address.
        rcpt: String,
        /// The store's message.
        #[source]
        source: MailError,
    },
    /// The store failed.
    #[error("could not store the message for <{rcpt}>: {source}")]
    Store {
        /// The address.
        rcpt: String,
        /// The store's error.
        #[source]
        source: MailError,
    },
    /// The outcome of the one copy that several RCPTs of a transaction
    /// resolved to (RFC 2033 §4.2: one copy, one reply per RCPT).
    #[error("{0}")]
    Shared(std::sync::Arc<DeliverError>),
    /// A blocking task died; our bug.
    #[error("internal error: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl DeliverError {
    /// The store error for `rcpt`, telling quota apart from failure.
    pub(crate) fn store(rcpt: &str, source: MailError) -> Self {
        match source {
            MailError::QuotaExceeded { .. } => Self::OverQuota {
                rcpt: rcpt.to_string(),
                source,
            },
            source => Self::Store {
                rcpt: rcpt.to_string(),
                source,
            },
        }
    }

    /// SMTP reply code and enhanced status (RFC 3463) for this error.
    pub fn code(&self) -> (u16, String) {
        match self {
            Self::UnknownRecipient { .. } => (550, "5.1.1".into()),
            Self::Refused {
                source: HookError::Permanent { status, .. },
                ..
            } => (554, (*status).to_string()),
            Self::Refused {
                source: HookError::Temporary { status, .. },
                ..
            } => (451, (*status).to_string()),
            Self::Refused { .. } => (451, "4.3.0".into()),
            Self::NotEncrypted { .. } => (451, "4.7.0".into()),
            // RFC 3463: mailbox full is transient, unless the message
            // alone is larger than the whole quota.
            Self::OverQuota {
                source: MailError::QuotaExceeded { needed, quota, .. },
                ..
            } if needed > quota => (552, "5.2.2".into()),
            Self::OverQuota { .. } => (452, "4.2.2".into()),
            Self::Store { .. } | Self::Task(_) => (451, "4.3.0".into()),
            Self::Shared(e) => e.code(),
        }
    }
}
