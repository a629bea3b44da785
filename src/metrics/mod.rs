//! Operational metrics in the Prometheus text format, and the health
//! checks, served on `metrics.listen` (ARCHITECTURE.md, "Web page and
//! metrics").
//!
//! # Why this shape
//!
//! The series live in one process-wide registry of atomics (`METRICS`):
//! recording is a relaxed `fetch_add` on a slot picked by an enum or by
//! a lookup in a short constant list, with no lock and no allocation, so
//! it can sit on every reply, accept and commit. The instrumented code
//! calls one function of this module per event (`lmtp_delivery`,
//! `connection_opened`, `store_write`, ...) at its edge; nothing else
//! there knows about Prometheus. A scrape (`scrape`) reads the atomics
//! once and writes them in the text format (`text`); it may see one
//! series a moment newer than another, never a histogram whose buckets
//! disagree with its count (the count is the sum of the buckets it read).
//!
//! why a static rather than a handle passed down: one server runs per
//! process, the events are at the edges of every protocol module, and
//! threading a handle through each of them would touch every context
//! type for no gain in what is measured.
//!
//! # What the labels may hold
//!
//! Every label value comes from a constant list here: reply classes,
//! protocol names, cipher names, IMAP command names and JMAP method names
//! (a name not in the list counts as `other`). No series carries an
//! account name, an address, a mailbox name or anything of a message.

mod http;
mod scrape;
mod text;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use sealmail_plugin_api::ContentCipher;

pub use http::{health_routes, router, watch_certificates};

pub(crate) use scrape::scrape;
use text::Exposition;

/// Upper bounds (seconds) of the latency histograms' buckets: from half a
/// millisecond (a cached IMAP NOOP, a RocksDB write of a small batch) to
/// ten seconds (a FETCH of many large messages, a synced write under
/// load); slower still lands in `+Inf`.
const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BUCKETS: usize = LATENCY_BOUNDS.len() + 1;

/// IMAP command names with a latency series of their own (imap-types'
/// `CommandBody::name`); any other counts as `other`.
const IMAP_COMMANDS: [&str; 33] = [
    "CAPABILITY",
    "NOOP",
    "LOGOUT",
    "STARTTLS",
    "AUTHENTICATE",
    "LOGIN",
    "SELECT",
    "UNSELECT",
    "EXAMINE",
    "CREATE",
    "DELETE",
    "RENAME",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "LIST",
    "LSUB",
    "STATUS",
    "APPEND",
    "CHECK",
    "CLOSE",
    "EXPUNGE",
    "SEARCH",
    "FETCH",
    "STORE",
    "COPY",
    "MOVE",
    "IDLE",
    "ENABLE",
    "GETQUOTA",
    "GETQUOTAROOT",
    "SETQUOTA",
    "ID",
    "NAMESPACE",
];

/// JMAP methods with a latency series of their own (the API's method
/// table); a name the client made up counts as `other`.
const JMAP_METHODS: [&str; 22] = [
    "Core/echo",
    "Mailbox/get",
    "Mailbox/query",
    "Mailbox/changes",
    "Mailbox/set",
    "Email/get",
    "Email/query",
    "Email/changes",
    "Email/set",
    "Email/import",
    "Thread/get",
    "Thread/changes",
    "Certificate/get",
    "Certificate/query",
    "Certificate/changes",
    "Certificate/set",
    "EncryptionSettings/get",
    "EncryptionSettings/set",
    "Quota/get",
    "Quota/changes",
    "Quota/query",
    "Quota/queryChanges",
];

/// The label of a name outside those lists.
const OTHER: &str = "other";

/// Content ciphers, in the order of their encryption series.
const CIPHERS: [ContentCipher; 4] = [
    ContentCipher::Aes256Cbc,
    ContentCipher::Aes128Cbc,
    ContentCipher::Aes256Gcm,
    ContentCipher::Aes128Gcm,
];

/// A protocol that accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// Deliveries from the MTA.
    Lmtp,
    /// IMAP, plain and implicit TLS.
    Imap,
    /// JMAP (and the page and health paths on its listener).
    Jmap,
}

impl Protocol {
    const ALL: [Protocol; 3] = [Protocol::Lmtp, Protocol::Imap, Protocol::Jmap];

    fn label(self) -> &'static str {
        match self {
            Protocol::Lmtp => "lmtp",
            Protocol::Imap => "imap",
            Protocol::Jmap => "jmap",
        }
    }
}

/// What the encrypt-at-rest hook did with one copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encryption {
    /// Sealed as S/MIME.
    Encrypted,
    /// Already encrypted when it came: stored as it was.
    AlreadyEncrypted,
    /// Could not be sealed: refused with a temporary failure.
    Failed,
}

impl Encryption {
    const ALL: [Encryption; 3] = [
        Encryption::Encrypted,
        Encryption::AlreadyEncrypted,
        Encryption::Failed,
    ];

    fn label(self) -> &'static str {
        match self {
            Encryption::Encrypted => "encrypted",
            Encryption::AlreadyEncrypted => "already_encrypted",
            Encryption::Failed => "failed",
        }
    }
}

/// Reply classes of LMTP, by the first digit of the code.
const CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

/// The class index of an LMTP reply `code`: what the MTA acts on.
/// why 4xx for a code outside 2xx and 5xx: the LMTP layer puts any code
/// it cannot send as it is on the wire as `451`.
fn class_of(code: u16) -> usize {
    match code {
        200..=299 => 0,
        500..=599 => 2,
        _ => 1,
    }
}

/// A monotonic count.
#[derive(Debug)]
struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    fn add(&self, n: u64) {
        self.0.fetch_add(n, Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug)]
struct Gauge(AtomicI64);

impl Gauge {
    const fn new() -> Self {
        Self(AtomicI64::new(0))
    }
}

/// Durations in `LATENCY_BOUNDS` buckets (not cumulative: each
/// observation is counted in one bucket), with their sum.
#[derive(Debug)]
struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_nanos: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Self {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Relaxed);
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// Writes the series unless nothing was observed yet (so that the
    /// dozens of commands a server never sees add no lines).
    fn write(&self, out: &mut Exposition, name: &str, labels: &[text::Label<'_>]) {
        let counts: Vec<u64> = self.counts.iter().map(|c| c.load(Relaxed)).collect();
        if counts.iter().all(|c| *c == 0) {
            return;
        }
        // why f64: the sum of seconds is a float in the format; a u64 of
        // nanoseconds is exact in f64 up to 104 days of summed latency.
        #[expect(clippy::cast_precision_loss, reason = "see above")]
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        out.histogram(name, labels, &LATENCY_BOUNDS, &counts, sum);
    }
}

/// Every series of the server.
#[derive(Debug)]
struct Registry {
    lmtp_deliveries: [Counter; 3],
    lmtp_rcpt_refusals: [Counter; 3],
    encryptions: [[Counter; CIPHERS.len() + 1]; 3],
    fanout_copies: Counter,
    connections_open: [Gauge; 3],
    connections_accepted: [Counter; 3],
    auth_failures: [Counter; 3],
    imap_commands: [Histogram; IMAP_COMMANDS.len() + 1],
    jmap_methods: [Histogram; JMAP_METHODS.len() + 1],
    store_writes: Histogram,
    blob_bytes: Counter,
    certificates_expiring: Gauge,
    certificates_expired: Gauge,
}

/// The registry every event is recorded in.
static METRICS: Registry = Registry {
    lmtp_deliveries: [const { Counter::new() }; 3],
    lmtp_rcpt_refusals: [const { Counter::new() }; 3],
    encryptions: [const { [const { Counter::new() }; CIPHERS.len() + 1] }; 3],
    fanout_copies: Counter::new(),
    connections_open: [const { Gauge::new() }; 3],
    connections_accepted: [const { Counter::new() }; 3],
    auth_failures: [const { Counter::new() }; 3],
    imap_commands: [const { Histogram::new() }; IMAP_COMMANDS.len() + 1],
    jmap_methods: [const { Histogram::new() }; JMAP_METHODS.len() + 1],
    store_writes: Histogram::new(),
    blob_bytes: Counter::new(),
    certificates_expiring: Gauge::new(),
    certificates_expired: Gauge::new(),
};

/// One LMTP reply after DATA (one per recipient), by its `code`.
pub(crate) fn lmtp_delivery(code: u16) {
    if let Some(c) = METRICS.lmtp_deliveries.get(class_of(code)) {
        c.add(1);
    }
}

/// A recipient refused at RCPT, by the reply `code`.
pub(crate) fn lmtp_rcpt_refused(code: u16) {
    if let Some(c) = METRICS.lmtp_rcpt_refusals.get(class_of(code)) {
        c.add(1);
    }
}

/// What the encrypt-at-rest hook did with a copy for an account that
/// uses `cipher`.
pub(crate) fn encryption(outcome: Encryption, cipher: ContentCipher) {
    let row = Encryption::ALL.iter().position(|o| *o == outcome);
    let column = CIPHERS
        .iter()
        .position(|c| *c == cipher)
        .unwrap_or(CIPHERS.len());
    if let Some(c) = row.and_then(|r| METRICS.encryptions.get(r)?.get(column)) {
        c.add(1);
    }
}

/// What a list's fan-out stored: its copies (content or notice) count.
pub(crate) fn list_delivered(delivered: &crate::ingest::Delivered) {
    if let crate::ingest::Delivered::List { copies, .. } = delivered {
        let copies = u64::try_from(*copies).unwrap_or(u64::MAX);
        METRICS.fanout_copies.add(copies);
    }
}

/// A connection of `protocol` being served; counted open until dropped.
#[derive(Debug)]
#[must_use = "the connection counts as open until this is dropped"]
pub(crate) struct OpenConnection(usize);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(open) = METRICS.connections_open.get(self.0) {
            open.0.fetch_sub(1, Relaxed);
        }
    }
}

/// A connection of `protocol` was accepted and is now served.
pub(crate) fn connection_opened(protocol: Protocol) -> OpenConnection {
    let i = Protocol::ALL
        .iter()
        .position(|p| *p == protocol)
        .unwrap_or_default();
    if let Some(c) = METRICS.connections_accepted.get(i) {
        c.add(1);
    }
    if let Some(open) = METRICS.connections_open.get(i) {
        open.0.fetch_add(1, Relaxed);
    }
    OpenConnection(i)
}

/// A failed login over `protocol` (`"imap"`, `"jmap"`).
pub(crate) fn auth_failure(protocol: &str) {
    if let Some(i) = Protocol::ALL.iter().position(|p| p.label() == protocol) {
        if let Some(c) = METRICS.auth_failures.get(i) {
            c.add(1);
        }
    }
}

/// An IMAP command `name` took `elapsed`.
pub(crate) fn imap_command(name: &str, elapsed: Duration) {
    let i = IMAP_COMMANDS
        .iter()
        .position(|c| *c == name)
        .unwrap_or(IMAP_COMMANDS.len());
    if let Some(h) = METRICS.imap_commands.get(i) {
        h.observe(elapsed);
    }
}

/// A JMAP method call `name` (as the client wrote it) took `elapsed`.
pub(crate) fn jmap_method(name: &str, elapsed: Duration) {
    let i = JMAP_METHODS
        .iter()
        .position(|m| *m == name)
        .unwrap_or(JMAP_METHODS.len());
    if let Some(h) = METRICS.jmap_methods.get(i) {
        h.observe(elapsed);
    }
}

/// A store commit (bodies, then the metadata batch) took `elapsed` and
/// stored `blob_bytes` of message bodies.
pub(crate) fn store_write(elapsed: Duration, blob_bytes: usize) {
    METRICS.store_writes.observe(elapsed);
    METRICS
        .blob_bytes
        .add(u64::try_from(blob_bytes).unwrap_or(u64::MAX));
}

/// The certificate counts of the last look at the store.
pub(crate) fn set_certificates(expiring: u64, expired: u64) {
    let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    METRICS
        .certificates_expiring
        .0
        .store(gauge(expiring), Relaxed);
    METRICS
        .certificates_expired
        .0
        .store(gauge(expired), Relaxed);
}

#[cfg(test)]
mod tests;
