//! Mail in: from an accepted LMTP transaction (or an IMAP APPEND, a JMAP
//! import, `sealmail import`) to stored copies.
//!
//! ```text
//! transaction ──▶ per RCPT: resolve address ──▶ account ─┐
//!                                           └─▶ list ──▶ members (lists.rs, Sympa rules)
//!   per copy: Return-Path + Delivered-To ──▶ hook chain (blocking pool, CPU-capped)
//!            ──▶ fail-closed check ──▶ MailStore::append ──▶ notify IMAP IDLE / JMAP
//! ```
//!
//! Every recipient gets its own result; one recipient's failure never
//! touches another's copy. RCPTs that resolve to the same account or
//! list share one copy and its result (RFC 2033 §4.2, `recipients.rs`).
//! A hook that panics or overruns its time budget refuses its copy
//! (`hooks.rs`, `budget.rs`).
//!
//! Every door first gives the message CRLF line ends
//! ([`crate::smime::to_crlf`]): [`Ingest::deliver`] (LMTP and list
//! fan-out), [`Ingest::append`] (IMAP APPEND, JMAP), [`Ingest::import`] and
//! [`Ingest::reencrypt`], so that clients fetch one convention and the
//! header splitter sees the lines a strict reader sees.

mod budget;
mod copy;
mod cpu;
mod encrypt_hook;
mod error;
mod hooks;
mod lists;
mod lmtp;
mod notice;
mod recipients;

use std::sync::Arc;

use tokio::sync::Semaphore;

pub use copy::Append;
pub(crate) use cpu::{CpuPool, CpuSlot, Owner};
pub use encrypt_hook::EncryptAtRest;
pub use error::DeliverError;
pub use hooks::{HookChain, UnknownHook, DEFAULT_BUDGET as DEFAULT_HOOK_BUDGET};

use crate::notify::Notifier;
use crate::store::MailStore;

/// Default of `[limits] fanout_bytes`: 256 MiB of list copies in flight.
///
/// why 256 MiB: a 64 KiB message still fans out in full chunks (64 copies
/// × a few hundred KiB each per chunk, several chunks at once), while a
/// 50 MiB message (the size limit) is sealed one copy at a time, so a
/// fan-out of any size stays within a few hundred MiB (issue #14: a
/// 15 MiB message to 130 members peaked at 3.9 GiB before).
pub const DEFAULT_FANOUT_BYTES: u64 = 256 * 1024 * 1024;

/// `bytes` as KiB permits of a `Semaphore`: at least one, at most what
/// one `acquire_many` can ask for (4 TiB).
fn kib_permits(bytes: u64) -> u32 {
    u32::try_from(bytes / 1024).unwrap_or(u32::MAX).max(1)
}

/// `kib` as a `Semaphore`'s permit count.
fn as_permits(kib: u32) -> usize {
    usize::try_from(kib).unwrap_or(usize::MAX)
}

/// The refusal of work asked for while the server shuts down.
pub(crate) fn shutting_down(rcpt: &str) -> DeliverError {
    DeliverError::Refused {
        rcpt: rcpt.to_string(),
        source: sealmail_plugin_api::HookError::temporary("4.3.2", "server is shutting down"),
    }
}

/// A message with its envelope, as it arrived.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `MAIL FROM` reverse path, without `<>`; empty for a bounce.
    pub mail_from: String,
    /// The LHLO name of the MTA.
    pub lhlo: String,
}

/// What happened to one recipient of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivered {
    /// Stored for an account; `encrypted` says how.
    Account {
        /// Whether the stored copy is S/MIME.
        encrypted: bool,
    },
    /// A list fanned out.
    List {
        /// Copies stored (content or notice).
        copies: usize,
        /// Members that got a notice instead of the content.
        notices: usize,
        /// Members skipped (not local, or opted in without a usable certificate).
        skipped: usize,
    },
}

/// The ingest pipeline, shared by every protocol.
#[derive(Debug)]
pub struct Ingest {
    pub(crate) store: Arc<MailStore>,
    pub(crate) chain: HookChain,
    pub(crate) notifier: Arc<Notifier>,
    /// Caps concurrent CPU-heavy work (the hook chain, IMAP batches that
    /// parse many messages) near the number of cores, fairly per owner
    /// (`cpu.rs`), so work queues instead of thrashing the blocking pool
    /// and no account or list starves the others.
    pub(crate) cpu: CpuPool,
    /// The number of cores.
    pub(crate) cores: usize,
    /// Bytes of list fan-out copies in flight (sealing, sealed, being
    /// written), in KiB permits; `[limits] fanout_bytes`.
    pub(crate) fanout_kib: Arc<Semaphore>,
    /// The permits of `fanout_kib` in all.
    pub(crate) fanout_limit_kib: u32,
    /// Body of the cert-missing notice (`[lists] notice_template`); the
    /// built-in text when `None`.
    pub(crate) notice_template: Option<Arc<str>>,
}

impl Ingest {
    /// A pipeline over `store` with `chain`. From now on every committed
    /// change of the store is announced on `notifier` (the store's commit
    /// hook, `store::announce`).
    pub fn new(store: Arc<MailStore>, chain: HookChain, notifier: Arc<Notifier>) -> Self {
        store.set_notifier(Arc::clone(&notifier));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            store,
            chain,
            notifier,
            cpu: CpuPool::new(cores),
            cores,
            fanout_kib: Arc::new(Semaphore::new(as_permits(kib_permits(
                DEFAULT_FANOUT_BYTES,
            )))),
            fanout_limit_kib: kib_permits(DEFAULT_FANOUT_BYTES),
            notice_template: None,
        }
    }

    /// The same pipeline with `bytes` as the memory list fan-outs may
    /// hold in copies at once (`[limits] fanout_bytes`).
    #[must_use]
    pub fn with_fanout_bytes(mut self, bytes: u64) -> Self {
        self.fanout_limit_kib = kib_permits(bytes);
        self.fanout_kib = Arc::new(Semaphore::new(as_permits(self.fanout_limit_kib)));
        self
    }

    /// The same pipeline with `template` as the body of the notice a list
    /// member without a certificate gets (placeholders `{list}`,
    /// `{member}`, `{subject}`, `{message_id}`, `{marker}`).
    #[must_use]
    pub fn with_notice_template(mut self, template: String) -> Self {
        self.notice_template = Some(template.into());
        self
    }

    /// A slot of the CPU-heavy work pool for `owner`, in its turn
    /// (`cpu.rs`); refused (4.3.2, naming `rcpt`) only when the server is
    /// shutting down and the pool is closed.
    pub(crate) async fn cpu_permit(
        &self,
        owner: Owner,
        rcpt: &str,
    ) -> Result<CpuSlot, DeliverError> {
        self.cpu
            .acquire(owner)
            .await
            .map_err(|_| shutting_down(rcpt))
    }

    /// The CPU pool, for other CPU-heavy work than the hook chain (IMAP
    /// FETCH and SEARCH batches).
    pub(crate) fn cpu_pool(&self) -> &CpuPool {
        &self.cpu
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<MailStore> {
        &self.store
    }

    /// The notifier the store announces changes on.
    pub fn notifier(&self) -> &Arc<Notifier> {
        &self.notifier
    }

    /// Delivers `data` to each of `recipients`; one result per recipient,
    /// in order. Recipients that resolve to the same account or list share
    /// one copy and its outcome (`recipients.rs`). Targets are handled one
    /// after the other; a list's members are fanned out in parallel inside.
    /// Bare CR and LF in `data` become CRLF first.
    pub async fn deliver(
        &self,
        envelope: &Envelope,
        recipients: &[String],
        data: Arc<Vec<u8>>,
    ) -> Vec<Result<Delivered, DeliverError>> {
        // why here: once per transaction, before any copy or list member
        // reads it; LMTP DATA is nearly always CRLF already (no copy then).
        let data = match crate::smime::to_crlf(&data) {
            std::borrow::Cow::Owned(fixed) => Arc::new(fixed),
            std::borrow::Cow::Borrowed(_) => Arc::clone(&data),
        };
        self.deliver_each_once(envelope, recipients, data).await
    }
}
