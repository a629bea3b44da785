//! Sending mail for JMAP `EmailSubmission` (RFC 8621 §7): a small SMTP
//! client (RFC 5321) that hands one message to the operator's MTA, the
//! `submission.relay`, which queues and delivers it.
//!
//! sealmail does not queue. A submission is either accepted by the relay
//! (then the relay owns it, and the JMAP submission is `final`) or refused
//! there and then, with the relay's reply in the error; a client retries.
//!
//! # Transport security
//!
//! STARTTLS is used whenever the relay offers it, without checking the
//! relay's certificate: the relay is the operator's own MTA, usually on
//! the same host, with the self-signed certificate a Debian Postfix ships
//! (Postfix's own client does the same at `smtp_tls_security_level =
//! may`). The password (`submission.password_file`) is only ever sent
//! inside TLS, or in clear to a loopback relay; a remote relay that offers
//! no STARTTLS gets no password and the submission fails, saying so.

mod smtp;
mod tls;

use std::path::Path;
use std::time::Duration;

use zeroize::Zeroizing;

pub use smtp::{RcptReply, SendError, Sent};

/// How long one SMTP exchange (connect, a command and its reply) may take
/// before the submission fails. why 60 s: RFC 5321 §4.5.3.2 allows a
/// server minutes for DATA, but a client waits on this call; an MTA on
/// loopback answers in milliseconds.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and as whom mail is sent.
#[derive(Debug, Clone)]
pub struct Relay {
    /// `host:port`.
    address: String,
    /// The name sent in EHLO.
    hostname: String,
    /// SMTP AUTH user and password.
    auth: Option<(String, Zeroizing<String>)>,
    /// Per-exchange timeout.
    timeout: Duration,
}

/// Why the relay settings cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayConfigError {
    /// `submission.password_file` could not be read.
    #[error("cannot read submission.password_file {path}: {source}")]
    PasswordFile {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no password.
    #[error("submission.password_file {0} is empty; put the relay password on its first line")]
    EmptyPassword(String),
    /// `submission.relay` is not `host:port`.
    #[error("submission.relay {0:?} is not host:port (e.g. \"127.0.0.1:587\")")]
    BadAddress(String),
}

impl Relay {
    /// The relay of `config`, or `None` when sending is off.
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Self>, RelayConfigError> {
        let sub = &config.submission;
        let Some(address) = sub.relay.clone() else {
            return Ok(None);
        };
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
        if !port_ok {
            return Err(RelayConfigError::BadAddress(address));
        }
        let auth = match (&sub.username, &sub.password_file) {
            (Some(user), Some(file)) => Some((user.clone(), read_password(file)?)),
            _ => None,
        };
        Ok(Some(Self {
            address,
            hostname: config.hostname.clone(),
            auth,
            timeout: STEP_TIMEOUT,
        }))
    }

    /// A relay at `address` without AUTH (tests, tools).
    pub fn new(address: &str, hostname: &str) -> Self {
        Self {
            address: address.to_string(),
            hostname: hostname.to_string(),
            auth: None,
            timeout: STEP_TIMEOUT,
        }
    }

    /// `host:port` of the relay.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Hands `message` to the relay for `rcpt_to`, from `mail_from`.
    /// Succeeds when the relay accepted the message for at least one
    /// recipient; the replies to each RCPT say which.
    pub async fn send(
        &self,
        mail_from: &str,
        rcpt_to: &[String],
        message: &[u8],
    ) -> Result<Sent, SendError> {
        smtp::send(self, mail_from, rcpt_to, message).await
    }
}

/// The first line of `path`.
fn read_password(path: &Path) -> Result<Zeroizing<String>, RelayConfigError> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
        RelayConfigError::PasswordFile {
            path: path.display().to_string(),
            source,
        }
    })?);
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(RelayConfigError::EmptyPassword(path.display().to_string()));
    }
    Ok(Zeroizing::new(first.to_string()))
}

/// Whether `address` is an SMTP envelope address this client will send:
/// `local@domain` without spaces, controls, angle brackets or quotes
/// (what would let a JMAP client add SMTP commands or parameters).
pub fn is_envelope_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && address.len() <= 254
        && address
            .chars()
            .all(|c| !c.is_control() && !c.is_whitespace() && !"<>\"\\,;:()[]".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_addresses_cannot_carry_smtp() {
        assert!(is_envelope_address("alice@example.org"));
        assert!(is_envelope_address("a.b+tag@sub.example.org"));
        for bad in [
            "",
            "alice",
            "@example.org",
            "alice@",
            "alice@example.org>\r\nRCPT TO:<x@y.z",
            "alice@example.org> SIZE=1",
            "alice @example.org",
            "\"a b\"@example.org",
        ] {
            assert!(!is_envelope_address(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_relay_needs_host_and_port() {
        let mut config = crate::config::Config::default();
        config.submission.relay = Some("127.0.0.1".into());
        assert!(matches!(
            Relay::from_config(&config),
            Err(RelayConfigError::BadAddress(_))
        ));
        config.submission.relay = Some("127.0.0.1:587".into());
        let relay = Relay::from_config(&config).ok().flatten();
        assert_eq!(relay.map(|r| r.address), Some("127.0.0.1:587".into()));
    }
}
