//! The SMTP exchange itself (RFC 5321 §3, §4): EHLO, STARTTLS (RFC 3207),
//! AUTH PLAIN or LOGIN (RFC 4954), MAIL, one RCPT per recipient, DATA,
//! QUIT. One message per connection: submissions are a user's clicks,
//! not a bulk stream.

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

use super::tls::tls_config;
use super::Relay;

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512; servers
/// send longer EHLO lines).
const MAX_LINE: usize = 4096;
/// Most lines in one multi-line reply.
const MAX_REPLY_LINES: usize = 200;

/// What the relay said to each recipient, and that it took the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// One reply per recipient, in the order given.
    pub rcpt: Vec<RcptReply>,
    /// The reply to the end of DATA (e.g. `250 2.0.0 Ok: queued as ...`).
    pub data_reply: String,
    /// Whether the session ran inside TLS.
    pub tls: bool,
}

/// The relay's reply to one `RCPT TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptReply {
    /// The recipient.
    pub address: String,
    /// The reply code.
    pub code: u16,
    /// The whole reply, code first, lines joined by a space.
    pub text: String,
}

impl RcptReply {
    /// Whether the relay accepted this recipient.
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.code)
    }
}

/// Why nothing was sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The relay could not be reached or the connection failed.
    #[error("the mail relay {relay} could not be reached: {source}; try again later")]
    Connect {
        /// The relay.
        relay: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The relay did not answer in time.
    #[error("the mail relay {relay} did not answer within {seconds} s ({step}); try again later")]
    Timeout {
        /// The relay.
        relay: String,
        /// What was waited for.
        step: &'static str,
        /// The timeout.
        seconds: u64,
    },
    /// The relay answered something that is not SMTP.
    #[error("the mail relay {relay} broke the SMTP protocol ({what})")]
    Protocol {
        /// The relay.
        relay: String,
        /// What was wrong.
        what: String,
    },
    /// The relay refused a step other than a recipient.
    #[error("the mail relay refused {step}: {reply}")]
    Refused {
        /// `MAIL FROM`, `DATA`, `AUTH`, ...
        step: &'static str,
        /// Its reply code.
        code: u16,
        /// Its whole reply.
        reply: String,
    },
    /// The relay accepted none of the recipients.
    #[error("the mail relay refused every recipient: {}", .0.iter().map(|r| format!("{}: {}", r.address, r.text)).collect::<Vec<_>>().join("; "))]
    NoRecipient(Vec<RcptReply>),
    /// A password would have crossed the network in clear.
    #[error("the mail relay {0} offers no STARTTLS, so the submission password would be sent in clear; enable TLS on the relay (Postfix: smtpd_tls_security_level = may)")]
    AuthWithoutTls(String),
    /// AUTH is configured but the relay offers no mechanism we speak.
    #[error("the mail relay offers no AUTH PLAIN or LOGIN after EHLO (it offered: {0:?}); enable SASL there or remove submission.username")]
    NoAuthMechanism(String),
    /// The message needs an SMTP extension the relay lacks.
    #[error("the mail relay lacks {0}, which this message needs")]
    MissingExtension(&'static str),
}

impl SendError {
    /// Whether a retry later may succeed (a 4xx reply, a network failure).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } | Self::Timeout { .. } | Self::Protocol { .. } => true,
            Self::Refused { code, .. } => (400..500).contains(code),
            Self::NoRecipient(r) => r.iter().all(|r| (400..500).contains(&r.code)),
            _ => false,
        }
    }
}

/// One reply: its code and its lines' text after the code.
#[derive(Debug)]
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }

    fn positive(&self) -> bool {
        (200..400).contains(&self.code)
    }
}

/// The socket, before or after STARTTLS.
enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// `f`, or [`SendError::Timeout`] after the relay's per-step timeout.
async fn timed<T>(
    relay: &Relay,
    step: &'static str,
    f: impl std::future::Future<Output = Result<T, SendError>>,
) -> Result<T, SendError> {
    tokio::time::timeout(relay.timeout, f)
        .await
        .map_err(|_| SendError::Timeout {
            relay: relay.address.clone(),
            step,
            seconds: relay.timeout.as_secs(),
        })?
}

struct Session<'r> {
    relay: &'r Relay,
    transport: Option<Transport>,
    buf: Vec<u8>,
}

impl Session<'_> {
    fn relay_name(&self) -> String {
        self.relay.address.clone()
    }

    fn io(&self, source: std::io::Error) -> SendError {
        SendError::Connect {
            relay: self.relay_name(),
            source,
        }
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let r = match self.transport.as_mut() {
            Some(Transport::Plain(s)) => s.write_all(bytes).await,
            Some(Transport::Tls(s)) => match s.write_all(bytes).await {
                Ok(()) => s.flush().await,
                Err(e) => Err(e),
            },
            None => Err(std::io::ErrorKind::NotConnected.into()),
        };
        r.map_err(|e| self.io(e))
    }

    async fn read_more(&mut self) -> Result<(), SendError> {
        let mut chunk = [0u8; 4096];
        let n = match self.transport.as_mut() {
            Some(Transport::Plain(s)) => s.read(&mut chunk).await,
            Some(Transport::Tls(s)) => s.read(&mut chunk).await,
            None => Err(std::io::ErrorKind::NotConnected.into()),
        }
        .map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(self.io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    async fn line(&mut self) -> Result<String, SendError> {
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                let line = String::from_utf8_lossy(&line);
                return Ok(line.trim_end_matches(['\r', '\n']).to_string());
            }
            if self.buf.len() > MAX_LINE {
                return Err(self.protocol("a reply line longer than 4096 bytes"));
            }
            self.read_more().await?;
        }
    }

    fn protocol(&self, what: &str) -> SendError {
        SendError::Protocol {
            relay: self.relay_name(),
            what: what.to_string(),
        }
    }

    /// Reads one reply (all its lines, RFC 5321 §4.2.1).
    async fn reply(&mut self, step: &'static str) -> Result<Reply, SendError> {
        let relay = self.relay;
        timed(relay, step, async {
            let mut lines = Vec::new();
            loop {
                let line = self.line().await?;
                let code = line
                    .get(..3)
                    .and_then(|c| c.parse::<u16>().ok())
                    .filter(|c| (200..600).contains(c))
                    .ok_or_else(|| self.protocol(&format!("reply {line:?} has no code")))?;
                let sep = line.as_bytes().get(3).copied();
                lines.push(line.get(4..).unwrap_or("").to_string());
                if lines.len() > MAX_REPLY_LINES {
                    return Err(self.protocol("a reply of more than 200 lines"));
                }
                match sep {
                    Some(b'-') => continue,
                    None | Some(b' ') => return Ok(Reply { code, lines }),
                    Some(_) => return Err(self.protocol(&format!("reply line {line:?}"))),
                }
            }
        })
        .await
    }

    /// Sends `command` and reads its reply.
    async fn command(&mut self, step: &'static str, command: &str) -> Result<Reply, SendError> {
        let relay = self.relay;
        let line = format!("{command}\r\n");
        timed(relay, step, self.write(line.as_bytes())).await?;
        self.reply(step).await
    }

    /// Sends `command`; fails with the reply unless it is positive.
    async fn expect(&mut self, step: &'static str, command: &str) -> Result<Reply, SendError> {
        let reply = self.command(step, command).await?;
        if reply.positive() {
            Ok(reply)
        } else {
            Err(SendError::Refused {
                step,
                code: reply.code,
                reply: reply.text(),
            })
        }
    }

    async fn starttls(&mut self, host: &str) -> Result<(), SendError> {
        self.expect("STARTTLS", "STARTTLS").await?;
        if !self.buf.is_empty() {
            // why: bytes after the 220 would be injected into the TLS
            // session's clear text (CVE-2011-0411, the STARTTLS command
            // injection).
            return Err(self.protocol("data after the STARTTLS reply"));
        }
        let Some(Transport::Plain(tcp)) = self.transport.take() else {
            return Err(self.protocol("STARTTLS twice"));
        };
        // why a stand-in name: the certificate is not checked (module
        // doc), and an IP-literal relay has no DNS name to send as SNI.
        let name = ServerName::try_from(host.to_string())
            .or_else(|_| ServerName::try_from("localhost".to_string()))
            .map_err(|_| self.protocol("no TLS server name"))?;
        let connector = tokio_rustls::TlsConnector::from(tls_config());
        let relay = self.relay;
        let tls = timed(relay, "TLS handshake", async {
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| self.io(std::io::Error::other(e)))
        })
        .await?;
        self.transport = Some(Transport::Tls(Box::new(tls)));
        Ok(())
    }
}

/// What EHLO said the relay can do.
#[derive(Debug, Default)]
struct Extensions {
    starttls: bool,
    auth: Vec<String>,
    eight_bit: bool,
    smtputf8: bool,
    size: Option<u64>,
}

impl Extensions {
    fn of(reply: &Reply) -> Self {
        let mut ext = Self::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => ext.starttls = true,
                "8BITMIME" => ext.eight_bit = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "SIZE" => ext.size = words.next().and_then(|n| n.parse().ok()).filter(|&n| n > 0),
                "AUTH" => ext.auth = words.map(|w| w.to_ascii_uppercase()).collect(),
                _ => {}
            }
        }
        ext
    }
}

pub(super) async fn send(
    relay: &Relay,
    mail_from: &str,
    rcpt_to: &[String],
    message: &[u8],
) -> Result<Sent, SendError> {
    let host = relay
        .address
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .unwrap_or(&relay.address)
        .to_string();
    let tcp = tokio::time::timeout(relay.timeout, TcpStream::connect(&relay.address))
        .await
        .map_err(|_| SendError::Timeout {
            relay: relay.address.clone(),
            step: "connect",
            seconds: relay.timeout.as_secs(),
        })?
        .map_err(|source| SendError::Connect {
            relay: relay.address.clone(),
            source,
        })?;
    let loopback = tcp.peer_addr().is_ok_and(|a| a.ip().is_loopback());
    let _ = tcp.set_nodelay(true);
    let mut s = Session {
        relay,
        transport: Some(Transport::Plain(tcp)),
        buf: Vec::new(),
    };
    let greeting = s.reply("greeting").await?;
    if greeting.code != 220 {
        return Err(SendError::Refused {
            step: "the connection",
            code: greeting.code,
            reply: greeting.text(),
        });
    }
    let ehlo = format!("EHLO {}", relay.hostname);
    let mut ext = Extensions::of(&s.expect("EHLO", &ehlo).await?);
    let mut tls = false;
    if ext.starttls {
        s.starttls(&host).await?;
        tls = true;
        ext = Extensions::of(&s.expect("EHLO", &ehlo).await?);
    }
    if let Some((user, password)) = &relay.auth {
        if !tls && !loopback {
            return Err(SendError::AuthWithoutTls(relay.address.clone()));
        }
        authenticate(&mut s, &ext, user, password).await?;
    }
    let mut params = String::new();
    if message.iter().any(|&b| b >= 0x80) {
        if !ext.eight_bit {
            return Err(SendError::MissingExtension("8BITMIME"));
        }
        params.push_str(" BODY=8BITMIME");
    }
    let utf8_envelope = !mail_from.is_ascii() || rcpt_to.iter().any(|r| !r.is_ascii());
    if utf8_envelope {
        if !ext.smtputf8 {
            return Err(SendError::MissingExtension("SMTPUTF8"));
        }
        params.push_str(" SMTPUTF8");
    }
    if ext.size.is_some() {
        params.push_str(&format!(" SIZE={}", message.len()));
    }
    s.expect("MAIL FROM", &format!("MAIL FROM:<{mail_from}>{params}"))
        .await?;
    let mut rcpt = Vec::with_capacity(rcpt_to.len());
    for address in rcpt_to {
        let reply = s
            .command("RCPT TO", &format!("RCPT TO:<{address}>"))
            .await?;
        rcpt.push(RcptReply {
            address: address.clone(),
            code: reply.code,
            text: reply.text(),
        });
    }
    if !rcpt.iter().any(RcptReply::accepted) {
        let _ = s.command("QUIT", "QUIT").await;
        return Err(SendError::NoRecipient(rcpt));
    }
    let go = s.command("DATA", "DATA").await?;
    if go.code != 354 {
        return Err(SendError::Refused {
            step: "DATA",
            code: go.code,
            reply: go.text(),
        });
    }
    let body = dot_stuffed(message);
    timed(relay, "sending the message", s.write(&body)).await?;
    let done = s.reply("the end of DATA").await?;
    if !(200..300).contains(&done.code) {
        return Err(SendError::Refused {
            step: "the message",
            code: done.code,
            reply: done.text(),
        });
    }
    // why ignored: the message is the relay's now; a failed QUIT changes
    // nothing about that.
    let _ = s.command("QUIT", "QUIT").await;
    Ok(Sent {
        rcpt,
        data_reply: done.text(),
        tls,
    })
}

async fn authenticate(
    s: &mut Session<'_>,
    ext: &Extensions,
    user: &str,
    password: &str,
) -> Result<(), SendError> {
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    if ext.auth.iter().any(|m| m == "PLAIN") {
        let token = zeroize::Zeroizing::new(format!("\0{user}\0{password}"));
        let line = zeroize::Zeroizing::new(format!("AUTH PLAIN {}", b64(token.as_bytes())));
        s.expect("AUTH", &line).await?;
        return Ok(());
    }
    if ext.auth.iter().any(|m| m == "LOGIN") {
        let challenge = s.command("AUTH", "AUTH LOGIN").await?;
        if challenge.code != 334 {
            return Err(SendError::Refused {
                step: "AUTH",
                code: challenge.code,
                reply: challenge.text(),
            });
        }
        let next = s.command("AUTH", &b64(user.as_bytes())).await?;
        if next.code != 334 {
            return Err(SendError::Refused {
                step: "AUTH",
                code: next.code,
                reply: next.text(),
            });
        }
        let secret = zeroize::Zeroizing::new(b64(password.as_bytes()));
        s.expect("AUTH", &secret).await?;
        return Ok(());
    }
    Err(SendError::NoAuthMechanism(ext.auth.join(" ")))
}

/// `message` as DATA content: CRLF line ends, a leading `.` doubled
/// (RFC 5321 §4.5.2), ended by `CRLF.CRLF`.
fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 50 + 5);
    let mut at_line_start = true;
    let mut i = 0;
    while i < message.len() {
        let b = message[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if message.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
                at_line_start = true;
            }
            b'\r' | b'\n' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_ends_the_data() {
        assert_eq!(dot_stuffed(b"a\r\n.b\r\n"), b"a\r\n..b\r\n.\r\n");
        assert_eq!(dot_stuffed(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(dot_stuffed(b"x\n.\ny"), b"x\r\n..\r\ny\r\n.\r\n");
        assert_eq!(dot_stuffed(b"a\r\n"), b"a\r\n.\r\n");
    }

    #[test]
    fn ehlo_keywords_are_read() {
        let reply = Reply {
            code: 250,
            lines: vec![
                "mx.test".into(),
                "PIPELINING".into(),
                "SIZE 10240000".into(),
                "STARTTLS".into(),
                "AUTH PLAIN login".into(),
                "8BITMIME".into(),
            ],
        };
        let ext = Extensions::of(&reply);
        assert!(ext.starttls && ext.eight_bit && !ext.smtputf8);
        assert_eq!(ext.size, Some(10_240_000));
        assert_eq!(ext.auth, vec!["PLAIN".to_string(), "LOGIN".to_string()]);
    }
}
