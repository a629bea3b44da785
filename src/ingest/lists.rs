//! List fan-out with the Sympa rules (ARCHITECTURE.md, "Mailing lists"):
//!
//! - plaintext in: each member gets its copy through the hook chain
//!   (encrypted for members with encryption, as it is for others);
//! - encrypted to one of the list's own certificates: decrypted with the
//!   list keys (each tried: rotation), then re-encrypted for each member;
//!   a member with no usable certificate gets a notice instead;
//! - encrypted otherwise: every member gets it intact.
//!
//! Members are processed in chunks on the blocking pool, and each chunk is
//! written in one batch. Two budgets bound a fan-out:
//!
//! - CPU: a chunk takes a slot of the fair CPU pool (`cpu.rs`) for each
//!   member copy it seals, owned by the list, so a list never holds every
//!   slot and another account's delivery gets its turn between two copies
//!   instead of after whole chunks; the write runs without a slot, so the
//!   next copies seal while this chunk waits for the disk sync.
//! - Memory, by bytes: every copy is charged an estimate of the bytes it
//!   holds from sealing to its write ([`copy_cost_kib`]) against
//!   `[limits] fanout_bytes`, shared by every fan-out of the server; a
//!   chunk starts only once its bytes are granted and gives them back
//!   right after its write. Chunks are as small as the budget needs (one
//!   copy for a message of tens of MiB, written at once), so memory stays
//!   bounded whatever the list's and the message's size.
//!
//! Every member copy reads the one shared message (`Arc`); the decrypted
//! plaintext lives only in memory (zeroed when dropped).

use std::sync::Arc;

use sealmail_plugin_api::Source;
use tokio::task::JoinSet;
use zeroize::Zeroizing;

use super::copy::{audit, now, seal, with_trace_fields, Sealed, Target};
use super::error::DeliverError;
use super::notice::{self, Original};
use super::{CpuPool, Delivered, Envelope, HookChain, Ingest, Owner};
use crate::smime::{
    already_encrypted, opened_message, AlreadyEncrypted, Decryptor, Enveloped, Split,
};
use crate::store::{AccountId, AuditKind, MailStore, MailboxId, MailingList};

/// Members per batch write at most. Large enough to amortise the WAL
/// sync; larger messages get smaller chunks (the byte budget).
const CHUNK: usize = 64;

/// KiB one member copy of a `len`-byte message may hold from the start of
/// its sealing to the end of its write: the copy with its trace fields,
/// the inner entity, the ciphertext and its base64 (about 1.4 × `len`),
/// and the store's write of it, about five times the message; plus 4 KiB
/// for the trace fields and a notice.
fn copy_cost_kib(len: usize) -> u64 {
    let bytes = u64::try_from(len).unwrap_or(u64::MAX);
    bytes.saturating_mul(5) / 1024 + 4
}

/// What the members receive.
#[derive(Debug)]
enum Content {
    /// Plaintext: through the hook chain as for any delivery.
    Plain(Arc<Vec<u8>>),
    /// Encrypted to someone else: stored intact.
    Intact(Arc<Vec<u8>>),
    /// Decrypted with a list key: must be re-encrypted per member.
    Decrypted(Arc<Zeroizing<Vec<u8>>>, Original),
}

impl Content {
    /// Bytes of what the members receive (a notice is far smaller).
    fn len(&self) -> usize {
        match self {
            Self::Plain(data) | Self::Intact(data) => data.len(),
            Self::Decrypted(plain, _) => plain.len(),
        }
    }
}

/// Tally of a fan-out.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    copies: usize,
    notices: usize,
    skipped: usize,
}

impl Ingest {
    /// Fans `data` out to the members of `list`.
    pub(crate) async fn deliver_to_list(
        &self,
        envelope: &Envelope,
        list: &str,
        data: Arc<Vec<u8>>,
    ) -> Result<Delivered, DeliverError> {
        let store = Arc::clone(&self.store);
        let name = list.to_string();
        // why a slot: decrypting with the list keys is CPU work too.
        let owner = Owner::List(Arc::from(list));
        let slot = self.cpu_permit(owner.clone(), list).await?;
        let (list_rec, members, content) = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            prepare(&store, &name, data)
        })
        .await?
        .map_err(|e| DeliverError::store(list, e))?;
        let list_rec = Arc::new(list_rec);
        let (per_chunk, chunk_kib) = self.chunking(content.len());
        let content = Arc::new(content);
        let mut jobs = JoinSet::new();
        let mut tally = Tally::default();
        let mut failure = None;
        for chunk in members.chunks(per_chunk) {
            let want = chunk_kib(chunk.len());
            let bytes = Arc::clone(&self.fanout_kib)
                .acquire_many_owned(want)
                .await
                .map_err(|_| super::shutting_down(list))?;
            let job = ChunkJob {
                store: Arc::clone(&self.store),
                chain: self.chain.clone(),
                cpu: self.cpu.clone(),
                owner: owner.clone(),
                envelope: envelope.clone(),
                list: Arc::clone(&list_rec),
                content: Arc::clone(&content),
                members: chunk.to_vec(),
                notice_template: self.notice_template.clone(),
            };
            jobs.spawn_blocking(move || job.run(bytes));
            while jobs.len() >= 2 * self.cores {
                collect(&mut jobs, &mut tally, &mut failure).await;
            }
        }
        while !jobs.is_empty() {
            collect(&mut jobs, &mut tally, &mut failure).await;
        }
        if let Some(e) = failure {
            return Err(e);
        }
        tracing::info!(list = %list, copies = tally.copies, notices = tally.notices, skipped = tally.skipped, "list delivered");
        Ok(Delivered::List {
            copies: tally.copies,
            notices: tally.notices,
            skipped: tally.skipped,
        })
    }
}

impl Ingest {
    /// Members per chunk for a message of `len` bytes, and the KiB a chunk
    /// of `n` members is charged. A chunk is charged at most
    /// `budget / (2 × cores)`, so that the `2 × cores` chunks a fan-out
    /// keeps in flight fit at once; it holds at least one copy, and a
    /// copy larger than the whole budget is charged the whole budget (it
    /// then runs alone).
    fn chunking(&self, len: usize) -> (usize, impl Fn(usize) -> u32) {
        let limit = u64::from(self.fanout_limit_kib);
        let per_copy = copy_cost_kib(len);
        let slices = u64::try_from(2 * self.cores.max(1)).unwrap_or(u64::MAX);
        let fit = (limit / slices) / per_copy.max(1);
        let per_chunk = usize::try_from(fit).unwrap_or(CHUNK).clamp(1, CHUNK);
        let cost = move |n: usize| {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            u32::try_from(per_copy.saturating_mul(n).min(limit)).unwrap_or(u32::MAX)
        };
        (per_chunk, cost)
    }
}

/// Waits for one chunk and adds its outcome.
async fn collect(
    jobs: &mut JoinSet<Result<Tally, DeliverError>>,
    tally: &mut Tally,
    failure: &mut Option<DeliverError>,
) {
    match jobs.join_next().await {
        Some(Ok(Ok(t))) => {
            tally.copies += t.copies;
            tally.notices += t.notices;
            tally.skipped += t.skipped;
        }
        Some(Ok(Err(e))) => {
            failure.get_or_insert(e);
        }
        Some(Err(e)) => {
            failure.get_or_insert(DeliverError::Task(e));
        }
        None => {}
    }
}

/// Blocking: the list, its members, and what they are to receive.
fn prepare(
    store: &MailStore,
    list: &str,
    data: Arc<Vec<u8>>,
) -> Result<(MailingList, Vec<String>, Content), crate::store::MailError> {
    let list_rec = store.get_list(list)?;
    let members = store.list_members(&list_rec.address)?;
    let split = Split::new(&data);
    let content = match already_encrypted(&data, &split) {
        None => Content::Plain(Arc::clone(&data)),
        Some(AlreadyEncrypted::Smime) => {
            match decrypt_with_list_keys(store, &list_rec.address, &data)? {
                Some(plain) => {
                    let original = Original {
                        subject: split
                            .field_value(b"subject")
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                        message_id: split
                            .field_value(b"message-id")
                            .map(|v| String::from_utf8_lossy(v).into_owned()),
                    };
                    Content::Decrypted(Arc::new(plain), original)
                }
                None => Content::Intact(Arc::clone(&data)),
            }
        }
        Some(_) => Content::Intact(Arc::clone(&data)),
    };
    Ok((list_rec, members, content))
}

/// The message with its inner entity decrypted by one of the list's keys:
/// clear outer fields (the S/MIME `Content-*` fields dropped) + the inner
/// entity. `None` when no list key opens it.
fn decrypt_with_list_keys(
    store: &MailStore,
    list: &str,
    data: &[u8],
) -> Result<Option<Zeroizing<Vec<u8>>>, crate::store::MailError> {
    // why parse once: every list key (rotation) tries the same envelope.
    let Ok(enveloped) = Enveloped::from_message(data) else {
        return Ok(None);
    };
    for pair in store.list_keys(list)? {
        let cert = match x509_cert::der::Decode::from_der(&pair.info.cert_der) {
            Ok(c) => c,
            Err(_) => continue,
        };
        let Ok(pem) = std::str::from_utf8(pair.private_key_pem.expose()) else {
            continue;
        };
        let Ok(decryptor) = Decryptor::from_pem(pem, Some(&cert)) else {
            continue;
        };
        if let Ok(inner) = decryptor.open(&enveloped) {
            let plain = opened_message(data, Zeroizing::new(inner));
            return Ok(Some(plain));
        }
    }
    Ok(None)
}

/// One chunk of members, processed on the blocking pool.
struct ChunkJob {
    store: Arc<MailStore>,
    chain: HookChain,
    cpu: CpuPool,
    owner: Owner,
    envelope: Envelope,
    list: Arc<MailingList>,
    content: Arc<Content>,
    members: Vec<String>,
    notice_template: Option<Arc<str>>,
}

impl ChunkJob {
    /// Seals the chunk's copies, each holding a CPU slot of the list's in
    /// its turn, then writes them without one; `bytes` (the chunk's share
    /// of the fan-out memory budget) is given back once they are written.
    fn run(self, bytes: tokio::sync::OwnedSemaphorePermit) -> Result<Tally, DeliverError> {
        let _bytes = bytes;
        let mut tally = Tally::default();
        let mut copies: Vec<(AccountId, MailboxId, Sealed)> =
            Vec::with_capacity(self.members.len());
        // why all at once: the chunk's addresses and delivery views in
        // two reads, not several per member (round trips on PostgreSQL).
        let store_error = |e| DeliverError::store(&self.list.address, e);
        let ids = self
            .store
            .resolve_accounts(&self.members)
            .map_err(store_error)?;
        let local: Vec<AccountId> = ids.iter().flatten().copied().collect();
        let mut views = self
            .store
            .delivery_views(&local)
            .map_err(store_error)?
            .into_iter();
        for (member, id) in self.members.iter().zip(ids) {
            // why `views.next()` only for a local member: one view each.
            let (Some(id), Some(view)) = (id, id.and_then(|_| views.next())) else {
                tracing::warn!(list = %self.list.address, member = %member, "list member is not a local account; skipped");
                tally.skipped += 1;
                continue;
            };
            let view = view.map_err(|e| DeliverError::store(member, e))?;
            let slot = self
                .cpu
                .acquire_blocking(self.owner.clone())
                .map_err(|_| super::shutting_down(&self.list.address))?;
            let copy = self.copy_for(member, id, &Target::of_view(&view));
            drop(slot);
            match copy? {
                Some((id, mailbox, sealed, is_notice)) => {
                    if is_notice {
                        tally.notices += 1;
                    }
                    copies.push((id, mailbox, sealed));
                }
                None => tally.skipped += 1,
            }
        }
        let date = now();
        let batch = copies
            .iter()
            .map(|(id, mb, s)| (*id, *mb, s.new_message(date)))
            .collect();
        match self.store.append_many(batch) {
            Ok(_) => {}
            Err(e) if e.is_user_error() => {
                // why: the batch is all or nothing; one member over quota
                // must not hold back the others, so store them one by one.
                tracing::warn!(list = %self.list.address, error = %e, "batch refused; storing member copies one by one");
                return self.store_one_by_one(copies, tally);
            }
            Err(e) => return Err(DeliverError::store(&self.list.address, e)),
        }
        tally.copies = copies.len();
        Ok(tally)
    }

    fn store_one_by_one(
        &self,
        copies: Vec<(AccountId, MailboxId, Sealed)>,
        mut tally: Tally,
    ) -> Result<Tally, DeliverError> {
        let mut stored = 0;
        for (id, mailbox, sealed) in copies {
            match self.store.append(id, mailbox, sealed.new_message(now())) {
                Ok(_) => stored += 1,
                Err(e) if e.is_user_error() => {
                    audit(
                        &self.store,
                        id,
                        AuditKind::DeliveryRefused,
                        &format!("list {}: {e}", self.list.address),
                    );
                    tally.skipped += 1;
                }
                Err(e) => return Err(DeliverError::store(&self.list.address, e)),
            }
        }
        tally.copies = stored;
        Ok(tally)
    }

    /// The copy for `member` (account `id`, delivering to `target`), or
    /// `None` when the member is skipped.
    fn copy_for(
        &self,
        member: &str,
        id: AccountId,
        target: &Target,
    ) -> Result<Option<(AccountId, MailboxId, Sealed, bool)>, DeliverError> {
        let store = &self.store;
        let (raw, must_encrypt, is_notice) = match self.content.as_ref() {
            Content::Plain(data) | Content::Intact(data) => (
                with_trace_fields(&self.envelope, member, data),
                false,
                false,
            ),
            Content::Decrypted(plain, _) if target.has_certificates() => (
                with_trace_fields(&self.envelope, member, plain),
                true,
                false,
            ),
            Content::Decrypted(_, original) => {
                let notice = notice::cert_missing(
                    &self.list.address,
                    &self.list.owner,
                    member,
                    original,
                    time::OffsetDateTime::now_utc(),
                    self.notice_template.as_deref(),
                );
                (
                    with_trace_fields(&self.envelope, member, &notice),
                    false,
                    true,
                )
            }
        };
        let sealed = seal(
            &self.chain,
            target,
            &self.envelope,
            member,
            &raw,
            must_encrypt,
            Source::Lmtp,
        );
        if must_encrypt {
            // Plaintext decrypted with a list key: wiped once sealed.
            // why only then: mail that arrived in clear is held unwiped
            // in the delivery's buffer anyway, and wiping each member's
            // 64 KiB copy (volatile byte writes) cost about 15 µs a copy.
            drop(Zeroizing::new(raw));
        }
        match sealed {
            Ok(sealed) => Ok(Some((id, target.mailbox, sealed, is_notice))),
            Err(e @ (DeliverError::Refused { .. } | DeliverError::NotEncrypted { .. })) => {
                // why: one member who cannot take the copy (opted in without
                // a usable certificate) must not hold the list back; the
                // refusal is in that member's audit log.
                audit(
                    store,
                    id,
                    AuditKind::DeliveryRefused,
                    &format!("list {}: {e}", self.list.address),
                );
                tracing::warn!(list = %self.list.address, member = %member, error = %e, "member copy refused");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
