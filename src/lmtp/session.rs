//! The LMTP session as a sans-I/O state machine (RFC 2033 §4, on the
//! RFC 5321 §4.1.4 command order).
//!
//! ```text
//!            LHLO                MAIL              RCPT (1..n)           DATA
//! greeted ─────────▶ ready ─────────────▶ mail ─────────────▶ rcpt ───────────▶ data
//!    ▲                 ▲  RSET / LHLO        │   RSET / LHLO    │                │
//!    │                 └─────────────────────┴──────────────────┘                │
//!    │                 ▲          one reply per accepted RCPT (RFC 2033 §4.2)    │
//!    │                 └─────────────────────────────────────────────────────────┘
//!  QUIT from any state: 221 and close.
//! ```
//!
//! Bytes go in with [`Session::feed`]; [`Session::poll`] returns the next
//! [`Event`]. A RCPT or the end of DATA produces a request
//! ([`Event::CheckRecipients`], [`Event::Deliver`]) that the driver answers
//! with [`Session::recipients_checked`] / [`Session::delivered`]. Until it
//! does, input is only buffered, so pipelined commands (RFC 2920) are
//! processed in order and their replies keep that order. Consecutive
//! pipelined RCPTs already buffered are checked in one request (one store
//! read for a transaction's hundred recipients instead of a hundred).
//! Replies are batched: [`Event::Send`] carries everything produced since
//! the last one, and always comes before a request or [`Event::NeedInput`].
//!
//! The buffer is bounded: a command line is at most [`MAX_COMMAND_LINE`]
//! octets, and in DATA every fed byte is consumed at once.

use super::command::Command;
use super::data::DataReader;
use super::event::{Event, UnexpectedAnswer};
use super::reply::{ProtocolError, Reply};
use super::{LmtpConfig, Transaction};

/// Longest command line, CRLF included: 512 octets (RFC 5321 §4.5.3.1.4).
/// A longer line is answered `500 5.5.6` and the session continues.
pub const MAX_COMMAND_LINE: usize = 512;

/// Consecutive refused commands after which we answer 421 and close: a
/// peer that is not speaking LMTP (or is probing) gets cut off; 20 is far
/// above what a confused but honest client produces.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 20;

#[derive(Debug)]
enum Phase {
    Command,
    Data(DataReader),
    AwaitRecipients(Vec<String>),
    AwaitDelivery(usize),
    Closed,
}

/// The open transaction (RFC 5321 §3.3: MAIL starts it).
#[derive(Debug)]
struct Envelope {
    from: String,
    recipients: Vec<String>,
}

/// One LMTP connection's protocol state. Never panics on peer input.
pub struct Session {
    hostname: String,
    max_message_bytes: u64,
    max_recipients: usize,
    input: Vec<u8>,
    output: Vec<u8>,
    phase: Phase,
    /// A request produced while replies were still unsent.
    parked: Option<Event>,
    lhlo: Option<String>,
    envelope: Option<Envelope>,
    errors: u32,
    /// Inside a too-long command line, dropping bytes up to its LF.
    discarding: bool,
}

// why: by hand, so that debug output shows no raw peer bytes.
impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("phase", &self.phase)
            .field("lhlo", &self.lhlo)
            .field("envelope", &self.envelope)
            .field("errors", &self.errors)
            .field("input_bytes", &self.input.len())
            .finish_non_exhaustive()
    }
}

/// Outcome of one step of input processing.
enum Step {
    Continue,
    NeedInput,
    Request(Event),
}

impl Session {
    /// A new session; the first [`Session::poll`] returns the greeting
    /// `220 HOSTNAME LMTP sealmail ready` (RFC 5321 §4.3.1).
    pub fn new(config: &LmtpConfig) -> Self {
        let mut session = Self {
            hostname: config.hostname.clone(),
            max_message_bytes: config.max_message_bytes,
            max_recipients: config.max_recipients,
            input: Vec::new(),
            output: Vec::new(),
            phase: Phase::Command,
            parked: None,
            lhlo: None,
            envelope: None,
            errors: 0,
            discarding: false,
        };
        let greeting = format!("{} LMTP sealmail ready", session.hostname);
        session.reply(&Reply::new(220, "", greeting));
        session
    }

    /// Buffers bytes read from the peer. After the session closed they are
    /// dropped.
    pub fn feed(&mut self, bytes: &[u8]) {
        if !matches!(self.phase, Phase::Closed) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The next thing to do. While a request is unanswered, input is only
    /// buffered and this returns [`Event::NeedInput`].
    pub fn poll(&mut self) -> Event {
        if let Some(event) = self.parked.take() {
            return event;
        }
        loop {
            let step = match self.phase {
                Phase::Command => self.step_command(),
                Phase::Data(_) => self.step_data(),
                Phase::AwaitRecipients(_) | Phase::AwaitDelivery(_) => Step::NeedInput,
                Phase::Closed => Step::Request(Event::Close),
            };
            let event = match step {
                Step::Continue => continue,
                Step::NeedInput => Event::NeedInput,
                Step::Request(event) => event,
            };
            if self.output.is_empty() {
                return event;
            }
            if !matches!(event, Event::NeedInput) {
                self.parked = Some(event);
            }
            return Event::Send(std::mem::take(&mut self.output));
        }
    }

    /// The answer to [`Event::CheckRecipients`]: one reply per address,
    /// in order; a positive reply adds its recipient to the transaction,
    /// and each reply goes to the peer as is. A missing reply (a
    /// [`Delivery`](super::Delivery) bug) becomes `451 4.3.0`, so the MTA
    /// tries that recipient again.
    pub fn recipients_checked(&mut self, replies: Vec<Reply>) -> Result<(), UnexpectedAnswer> {
        let Phase::AwaitRecipients(addresses) = std::mem::replace(&mut self.phase, Phase::Command)
        else {
            return self.misuse();
        };
        if replies.len() != addresses.len() {
            tracing::error!(
                expected = addresses.len(),
                got = replies.len(),
                "recipient check returned the wrong number of replies"
            );
        }
        let missing = Reply::new(451, "4.3.0", "recipient not checked; try again later");
        for (i, address) in addresses.into_iter().enumerate() {
            let reply = replies.get(i).unwrap_or(&missing);
            if reply.is_positive() {
                if let Some(envelope) = &mut self.envelope {
                    envelope.recipients.push(address);
                }
            }
            self.reply(reply);
        }
        Ok(())
    }

    /// The answer to [`Event::Deliver`]: one reply per recipient, in order
    /// (RFC 2033 §4.2). A wrong count is a [`Delivery`](super::Delivery)
    /// bug; missing replies become `451 4.3.0` so the MTA retries them.
    pub fn delivered(&mut self, replies: Vec<Reply>) -> Result<(), UnexpectedAnswer> {
        let Phase::AwaitDelivery(count) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return self.misuse();
        };
        if replies.len() != count {
            tracing::error!(
                expected = count,
                got = replies.len(),
                "delivery returned the wrong number of replies"
            );
        }
        let missing = Reply::new(
            451,
            "4.3.0",
            "no delivery status for this recipient; try again later",
        );
        for i in 0..count {
            self.reply(replies.get(i).unwrap_or(&missing));
        }
        Ok(())
    }

    /// The peer sent nothing for the idle timeout: 421 4.4.2 and close.
    pub fn idle_timeout(&mut self) {
        self.close_with(ProtocolError::IdleTimeout);
    }

    /// The server is stopping: 421 4.3.2 and close (RFC 5321 §3.8).
    pub fn shutdown(&mut self) {
        self.close_with(ProtocolError::ShuttingDown);
    }

    /// The peer closed its side (or the connection failed): close without
    /// a reply.
    pub fn peer_closed(&mut self) {
        self.phase = Phase::Closed;
        self.input = Vec::new();
    }

    fn misuse(&mut self) -> Result<(), UnexpectedAnswer> {
        tracing::error!("{UnexpectedAnswer}");
        self.phase = Phase::Closed;
        Err(UnexpectedAnswer)
    }

    fn close_with(&mut self, error: ProtocolError) {
        if !matches!(self.phase, Phase::Closed) {
            self.reply(&error.reply());
            self.phase = Phase::Closed;
            self.input = Vec::new();
        }
    }

    fn reply(&mut self, reply: &Reply) {
        reply.write_to(&mut self.output);
    }

    fn step_command(&mut self) -> Step {
        let lf = self.input.iter().position(|&b| b == b'\n');
        if self.discarding {
            return match lf {
                Some(i) => {
                    self.input.drain(..=i);
                    self.discarding = false;
                    self.refuse(ProtocolError::LineTooLong);
                    Step::Continue
                }
                None => {
                    self.input.clear();
                    Step::NeedInput
                }
            };
        }
        match lf {
            Some(i) if i < MAX_COMMAND_LINE => {
                let mut line: Vec<u8> = self.input.drain(..=i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.command(&line)
            }
            Some(i) => {
                self.input.drain(..=i);
                self.refuse(ProtocolError::LineTooLong);
                Step::Continue
            }
            None if self.input.len() >= MAX_COMMAND_LINE => {
                self.discarding = true;
                self.input.clear();
                Step::NeedInput
            }
            None => Step::NeedInput,
        }
    }

    fn step_data(&mut self) -> Step {
        let Phase::Data(reader) = &mut self.phase else {
            return Step::Continue;
        };
        let Some(used) = reader.feed(&self.input) else {
            self.input.clear();
            return Step::NeedInput;
        };
        self.input.drain(..used);
        let Phase::Data(reader) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return Step::Continue;
        };
        let envelope = self.envelope.take();
        let (from, recipients) = envelope.map_or_else(Default::default, |e| (e.from, e.recipients));
        match reader.finish() {
            Ok(data) => {
                self.phase = Phase::AwaitDelivery(recipients.len());
                let lhlo = self.lhlo.clone().unwrap_or_default();
                let tx = Transaction {
                    mail_from: from,
                    recipients,
                    lhlo,
                    data,
                };
                Step::Request(Event::Deliver(tx))
            }
            Err(size) => {
                let error = ProtocolError::MessageTooLarge {
                    size,
                    limit: self.max_message_bytes,
                };
                tracing::info!(bytes = size, "message over the size limit refused");
                for _ in &recipients {
                    self.reply(&error.reply());
                }
                Step::Continue
            }
        }
    }

    fn command(&mut self, line: &[u8]) -> Step {
        match Command::parse(line).and_then(|cmd| self.execute(cmd)) {
            Ok(step) => {
                self.errors = 0;
                step
            }
            Err(error) => {
                self.refuse(error);
                Step::Continue
            }
        }
    }

    fn refuse(&mut self, error: ProtocolError) {
        tracing::debug!(%error, "command refused");
        self.reply(&error.reply());
        if error.counts_as_error() {
            self.errors += 1;
            if self.errors >= MAX_CONSECUTIVE_ERRORS {
                tracing::warn!(errors = self.errors, "too many errors, closing");
                self.close_with(ProtocolError::TooManyErrors);
            }
        }
    }

    fn execute(&mut self, command: Command) -> Result<Step, ProtocolError> {
        let ok = |text: &str| Reply::new(250, "2.0.0", text);
        let reply = match command {
            Command::Lhlo(domain) => {
                self.envelope = None;
                self.lhlo = Some(domain);
                self.lhlo_reply()
            }
            Command::Mail { from, size, .. } => self.mail(from, size)?,
            Command::Rcpt(to) => return self.rcpt(to),
            Command::Data => self.data()?,
            Command::Rset => {
                self.envelope = None;
                ok("reset")
            }
            Command::Noop => ok("ok"),
            Command::Vrfy => Reply::new(
                252,
                "2.5.0",
                "cannot VRFY, but will take the message and try to deliver it",
            ),
            Command::Quit => {
                self.reply(&Reply::new(
                    221,
                    "2.0.0",
                    format!("{} closing connection", self.hostname),
                ));
                self.phase = Phase::Closed;
                return Ok(Step::Continue);
            }
        };
        self.reply(&reply);
        Ok(Step::Continue)
    }

    /// RFC 2033 §4.1 / RFC 5321 §4.1.1.1: the extension list, no enhanced
    /// status codes on it (RFC 2034 §3).
    fn lhlo_reply(&self) -> Reply {
        let text = format!(
            "{}\nPIPELINING\nENHANCEDSTATUSCODES\n8BITMIME\nSIZE {}",
            self.hostname, self.max_message_bytes
        );
        Reply::new(250, "", text)
    }

    fn mail(&mut self, from: String, size: Option<u64>) -> Result<Reply, ProtocolError> {
        if self.lhlo.is_none() {
            return Err(ProtocolError::BadSequence("send LHLO first"));
        }
        if self.envelope.is_some() {
            return Err(ProtocolError::BadSequence(
                "MAIL already given; send RSET to start over",
            ));
        }
        if let Some(size) = size.filter(|&s| s > self.max_message_bytes) {
            // why: RFC 1870 §6.2, refuse at MAIL what would be refused at the end of DATA.
            return Err(ProtocolError::MessageTooLarge {
                size,
                limit: self.max_message_bytes,
            });
        }
        self.envelope = Some(Envelope {
            from,
            recipients: Vec::new(),
        });
        Ok(Reply::new(250, "2.1.0", "sender ok"))
    }

    fn rcpt(&mut self, to: String) -> Result<Step, ProtocolError> {
        let envelope = self
            .envelope
            .as_ref()
            .ok_or(ProtocolError::BadSequence("send MAIL first"))?;
        let room = self
            .max_recipients
            .saturating_sub(envelope.recipients.len());
        if room == 0 {
            return Err(ProtocolError::TooManyRecipients(self.max_recipients));
        }
        // why: an MTA pipelines a transaction's RCPTs (RFC 2920); those
        // already buffered behind this one are checked with it. At most
        // `room`: a refused one leaves room that the next round counts.
        let mut batch = vec![to];
        while batch.len() < room {
            match self.take_buffered_rcpt() {
                Some(next) => batch.push(next),
                None => break,
            }
        }
        self.phase = Phase::AwaitRecipients(batch.clone());
        Ok(Step::Request(Event::CheckRecipients(batch)))
    }

    /// The address of the next buffered command line if it is a complete,
    /// valid RCPT, which is then taken from the input; any other line (or
    /// none yet) stays for the normal command path.
    fn take_buffered_rcpt(&mut self) -> Option<String> {
        if self.discarding {
            return None;
        }
        let lf = self.input.iter().position(|&b| b == b'\n')?;
        if lf >= MAX_COMMAND_LINE {
            return None;
        }
        let line = self.input.get(..lf)?;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Ok(Command::Rcpt(to)) = Command::parse(line) else {
            return None;
        };
        self.input.drain(..=lf);
        Some(to)
    }

    fn data(&mut self) -> Result<Reply, ProtocolError> {
        let envelope = self
            .envelope
            .as_ref()
            .ok_or(ProtocolError::BadSequence("send MAIL first"))?;
        if envelope.recipients.is_empty() {
            return Err(ProtocolError::NoValidRecipients);
        }
        self.phase = Phase::Data(DataReader::new(self.max_message_bytes));
        Ok(Reply::new(354, "", "end data with <CR><LF>.<CR><LF>"))
    }
}

#[cfg(test)]
impl Session {
    /// Bytes held for the message being received.
    pub(crate) fn data_buffered(&self) -> usize {
        match &self.phase {
            Phase::Data(reader) => reader.buffered(),
            _ => 0,
        }
    }

    /// Bytes of unprocessed input.
    pub(crate) fn input_buffered(&self) -> usize {
        self.input.len()
    }
}
