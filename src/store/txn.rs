//! Optimistic transactions: what keeps the mail layer's counters and the
//! address directory right when several processes share one engine.
//!
//! # Scopes and version keys
//!
//! Every record the mail layer writes belongs to one *scope*, and every
//! scope has one *version key* in [`Cf::Meta`] holding a u64 (a missing
//! key is version 0, so stores written before versions existed need no
//! migration):
//!
//! | scope | version key | covers |
//! |---|---|---|
//! | one account | `"rev"` + `acct` | every account-scoped CF of `acct`: the account record (UIDNEXT of its mailboxes lives in `mailboxes`, modseq, used bytes, audit seq), mailboxes and names, messages, blobs and their counts, certificates, settings, change and audit log, import markers |
//! | the directory | `"rev_directory"` | `next_account_id`, `addresses`, `lists`, `list_members`, `list_keys` |
//!
//! A change runs in a combinator of [`MailStore`] — `update_account`,
//! `update_accounts` (the many-recipient and list fan-out batches) or
//! `update_directory` (which may include account scopes: creating or
//! removing an account, aliases). The combinator reads the version of
//! each scope first, then runs the closure, which reads what it needs
//! and builds one [`Batch`] in a [`Tx`]; then it commits with
//! [`Store::write_if`], expecting every version it read unchanged and
//! writing each one bumped by one. A batch that another writer beat to
//! any of its scopes comes back as [`StoreError::Conflict`] having
//! written nothing, and the closure runs again from fresh reads, at most
//! [`MAX_ATTEMPTS`] times with a short random backoff; after that the
//! `Conflict` reaches the caller.
//!
//! Why this is enough: the closure's reads all come after its version
//! reads, and every write of a scope bumps that scope's version in the
//! same atomic batch, so if the versions still hold at commit, nothing
//! the closure read has changed since it read it. Reads of other scopes
//! are not protected, so a closure reads records of its own scopes only
//! (`add_account` adds the new account's scope from inside the closure,
//! before writing it: nothing of it existed to read).
//!
//! The closure may run several times: it must have no effect outside its
//! `Tx` (log after the combinator returns; the changes it logs are
//! announced to listeners at the commit, by `announce`). When it returns
//! an error, the combinator checks the versions once more and runs it
//! again if they moved, so an error is never the product of a view torn
//! by a concurrent commit. A closure that builds an empty batch (nothing
//! to change) writes nothing.
//!
//! A removed account keeps its version key (bumped by the removal), so
//! its version never goes back to an earlier value.
//!
//! The in-process lock stripes of [`MailStore`] are only a *conflict
//! reducer*: the combinators take them so that writers of one process
//! queue instead of conflicting; correctness does not rest on them.

use std::collections::BTreeSet;
use std::time::Duration;

use rand::Rng as _;

use super::accounts::AccountRecord;
use super::announce::Announced;
use super::error::{bug, MailError};
use super::keys::Key;
use super::log::{Change, ChangeKind, ChangedObject};
use super::mail::MailStore;
use super::records::{decode, encode, AccountId, Record};
use super::{Batch, BatchOp, Cf, Expect, KeyRange, Store, StoreError};

/// Attempts of one transaction before its `Conflict` reaches the caller.
/// Each conflict means another writer of the same scope committed, so
/// 64 lost races in a row take a pathological hot spot (or a broken
/// engine); giving up then beats spinning forever.
pub(crate) const MAX_ATTEMPTS: u32 = 64;

/// Longest sleep between two attempts. Random below it, growing with the
/// attempt (from 1/32 of it), so that two writers that just collided do
/// not collide again at once; 5 ms is a few synced writes, which is what
/// a winner needs to get out of the way.
const MAX_BACKOFF: Duration = Duration::from_millis(5);

/// Whose version a transaction expects: see the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// The address directory.
    Directory,
    /// One account's records.
    Account(AccountId),
}

impl Scope {
    fn key(self) -> Key {
        match self {
            Scope::Directory => Key::DirectoryVersion,
            Scope::Account(id) => Key::AccountVersion(id),
        }
    }
}

/// A version read at the start of an attempt.
#[derive(Debug)]
struct Guard {
    key: Vec<u8>,
    /// The bytes read, expected unchanged at commit (`None`: absent).
    read: Option<Vec<u8>>,
    /// Their value (0 when absent).
    version: u64,
}

/// A batch under construction, with typed puts and change logging, and
/// the versions its commit expects.
#[derive(Debug, Default)]
pub(crate) struct Tx {
    pub(crate) batch: Batch,
    guards: Vec<Guard>,
    /// Bodies to put into the blob store before the batch commits.
    blob_puts: Vec<(Vec<u8>, Vec<u8>)>,
    /// Bodies to delete from the blob store after the batch committed.
    blob_deletes: Vec<Vec<u8>>,
    /// Ranges of bodies to delete after the batch committed.
    blob_delete_ranges: Vec<KeyRange>,
    /// The changes to announce once the batch committed (`announce`).
    pub(crate) announced: Announced,
}

impl Tx {
    pub(crate) fn put<R: Record>(&mut self, key: &Key, value: &R) -> Result<(), MailError> {
        self.batch.put(key.cf(), key.encode(), encode(value)?);
        Ok(())
    }

    pub(crate) fn delete(&mut self, key: &Key) {
        self.batch.delete(key.cf(), key.encode());
    }

    /// A body the batch references, put into the blob store before the
    /// batch commits (the crash rule of `blobs`).
    pub(crate) fn put_blob(&mut self, key: &Key, body: &[u8]) {
        self.blob_puts.push((key.encode(), body.to_vec()));
    }

    /// A body whose last reference the batch drops, deleted from the blob
    /// store once the batch has committed.
    pub(crate) fn delete_blob(&mut self, key: &Key) {
        self.blob_deletes.push(key.encode());
    }

    /// Every body of `range`, deleted once the batch has committed.
    pub(crate) fn delete_blob_range(&mut self, range: KeyRange) {
        self.blob_delete_ranges.push(range);
    }

    /// The id the next [`Tx::change`] of `rec` gets: a new Email's id.
    pub(crate) fn next_change_id(rec: &AccountRecord) -> Result<u64, MailError> {
        rec.modseq
            .checked_add(1)
            .ok_or_else(|| MailError::from(bug("modseq overflow")))
    }

    /// Logs a change: bumps the account's modseq and returns it.
    pub(crate) fn change(
        &mut self,
        id: AccountId,
        rec: &mut AccountRecord,
        kind: ChangeKind,
        object: ChangedObject,
    ) -> Result<u64, MailError> {
        rec.modseq = rec
            .modseq
            .checked_add(1)
            .ok_or_else(|| bug("modseq overflow"))?;
        self.announce(id, &object, kind);
        let change = Change {
            id: rec.modseq,
            kind,
            object,
        };
        self.put(&Key::Change(id, rec.modseq), &change)?;
        Ok(rec.modseq)
    }

    /// Adds `scopes` to what the commit expects unchanged, reading their
    /// versions now (one multi-get). Call before reading any record of
    /// them; a scope already guarded is skipped.
    pub(crate) fn guard(&mut self, store: &dyn Store, scopes: &[Scope]) -> Result<(), MailError> {
        let mut keys: Vec<Vec<u8>> = scopes.iter().map(|s| s.key().encode()).collect();
        keys.sort_unstable();
        keys.dedup();
        keys.retain(|k| !self.guards.iter().any(|g| &g.key == k));
        let values = store.get_many(Cf::Meta, &keys)?;
        for (key, read) in keys.into_iter().zip(values) {
            let version = match &read {
                Some(bytes) => decode::<u64>(Cf::Meta, bytes)?,
                None => 0,
            };
            self.guards.push(Guard { key, read, version });
        }
        Ok(())
    }

    /// Whether every guarded version still holds (read again now).
    fn still_current(&self, store: &dyn Store) -> Result<bool, StoreError> {
        let keys: Vec<Vec<u8>> = self.guards.iter().map(|g| g.key.clone()).collect();
        let now = store.get_many(Cf::Meta, &keys)?;
        Ok(self.guards.iter().zip(now).all(|(g, v)| g.read == v))
    }

    /// The expectations and the batch with every version bumped.
    fn into_commit(self) -> Result<(Vec<Expect>, Batch), MailError> {
        let mut batch = self.batch;
        for id in viewed_accounts(&batch) {
            let fresh: [u8; 16] = rand::random();
            batch.put(Cf::Meta, Key::ViewVersion(id).encode(), fresh.to_vec());
        }
        let mut expect = Vec::with_capacity(self.guards.len());
        for g in self.guards {
            let next = g
                .version
                .checked_add(1)
                .ok_or_else(|| bug("version overflow"))?;
            batch.put(Cf::Meta, g.key.clone(), encode(&next)?);
            expect.push(Expect {
                cf: Cf::Meta,
                key: g.key,
                value: g.read,
            });
        }
        Ok((expect, batch))
    }
}

/// The column families whose records a delivery view holds: the
/// certificates, the encryption settings, and the mailbox names (which
/// say which mailbox is the INBOX). Each is keyed by account id first.
const VIEWED: [Cf; 3] = [Cf::Certs, Cf::Settings, Cf::MailboxNames];

/// The accounts whose delivery views `batch` changes: it writes, deletes
/// or range-deletes a key of a [`VIEWED`] column family under their id.
/// why here, for every batch: no write site can forget to say so, and a
/// view kept past such a change could encrypt for a removed certificate
/// or store plaintext for an account that just turned encryption on.
fn viewed_accounts(batch: &Batch) -> BTreeSet<AccountId> {
    batch
        .ops()
        .iter()
        .filter_map(|op| {
            let (cf, key) = match op {
                BatchOp::Put { cf, key, .. } | BatchOp::Delete { cf, key } => (cf, key.as_slice()),
                BatchOp::DeleteRange { cf, range } => (cf, range.start.as_slice()),
            };
            let id = key.get(..4)?.try_into().ok().map(u32::from_be_bytes)?;
            VIEWED.contains(cf).then_some(AccountId(id))
        })
        .collect()
}

impl MailStore {
    /// Runs `f` as one transaction of the account `id` (see the module
    /// doc): retried from fresh reads on a conflict, committed with one
    /// conditional write.
    pub(crate) fn update_account<T>(
        &self,
        id: AccountId,
        f: impl FnMut(&mut Tx) -> Result<T, MailError>,
    ) -> Result<T, MailError> {
        let _lock = self.lock_account(id);
        self.transact(&[Scope::Account(id)], f)
    }

    /// Runs `f` as one transaction over several accounts: the
    /// many-recipient and list fan-out batches, one synced write for all.
    pub(crate) fn update_accounts<T>(
        &self,
        ids: &[AccountId],
        f: impl FnMut(&mut Tx) -> Result<T, MailError>,
    ) -> Result<T, MailError> {
        let _locks = self.lock_accounts(ids);
        let scopes: Vec<Scope> = ids.iter().map(|&id| Scope::Account(id)).collect();
        self.transact(&scopes, f)
    }

    /// Runs `f` as one transaction of the address directory and of the
    /// accounts `ids` (accounts, aliases, lists). `f` may add the scope
    /// of an account it creates with [`Tx::guard`].
    pub(crate) fn update_directory<T>(
        &self,
        ids: &[AccountId],
        f: impl FnMut(&mut Tx) -> Result<T, MailError>,
    ) -> Result<T, MailError> {
        // why this order: every path takes the directory lock before any
        // account lock, so two callers cannot deadlock.
        let _dir = self.lock_directory();
        let _locks = self.lock_accounts(ids);
        let scopes: Vec<Scope> = std::iter::once(Scope::Directory)
            .chain(ids.iter().map(|&id| Scope::Account(id)))
            .collect();
        self.transact(&scopes, f)
    }

    /// The retry loop under the combinators; takes no lock (a caller
    /// that writes in several transactions, as COPY does, holds its lock
    /// across them).
    pub(crate) fn transact<T>(
        &self,
        scopes: &[Scope],
        mut f: impl FnMut(&mut Tx) -> Result<T, MailError>,
    ) -> Result<T, MailError> {
        let store = &*self.store;
        let mut attempt = 1;
        loop {
            let mut tx = Tx::default();
            tx.guard(store, scopes)?;
            let conflict = match f(&mut tx) {
                Err(e) if tx.still_current(store)? => return Err(e),
                Err(_) => StoreError::Conflict {
                    detail: "a read was torn by a concurrent commit".into(),
                },
                Ok(out) if tx.batch.is_empty() => return Ok(out),
                Ok(out) => {
                    let puts = std::mem::take(&mut tx.blob_puts);
                    let deletes = std::mem::take(&mut tx.blob_deletes);
                    let ranges = std::mem::take(&mut tx.blob_delete_ranges);
                    let announced = std::mem::take(&mut tx.announced);
                    let items: Vec<(&[u8], &[u8])> = puts
                        .iter()
                        .map(|(k, v)| (k.as_slice(), v.as_slice()))
                        .collect();
                    let started = std::time::Instant::now();
                    // why first: a body is durable before metadata names it.
                    self.blobs.put(&items)?;
                    drop(items);
                    let blob_bytes = puts.iter().map(|(_, v)| v.len()).sum();
                    drop(puts);
                    let (expect, batch) = tx.into_commit()?;
                    match store.write_if(&expect, batch) {
                        Ok(()) => {
                            crate::metrics::store_write(started.elapsed(), blob_bytes);
                            self.announce_committed(announced);
                            self.drop_blobs(&deletes, &ranges);
                            return Ok(out);
                        }
                        Err(StoreError::Conflict { detail }) => StoreError::Conflict { detail },
                        Err(e) => return Err(e.into()),
                    }
                }
            };
            if attempt >= MAX_ATTEMPTS {
                tracing::warn!(attempts = attempt, "transaction gave up after conflicts");
                return Err(give_up(conflict).into());
            }
            tracing::debug!(attempt, "transaction conflicted; retrying");
            backoff(attempt);
            attempt += 1;
        }
    }
}

impl MailStore {
    /// Deletes bodies whose last reference a committed batch dropped.
    /// A failure is logged, not returned: the change is committed, and
    /// what stays behind is an orphan that collection removes.
    fn drop_blobs(&self, keys: &[Vec<u8>], ranges: &[KeyRange]) {
        const PAGE: usize = 1_000;
        let mut result = self.blobs.delete(keys);
        for range in ranges {
            loop {
                let page = match self.blobs.keys(range, PAGE) {
                    Ok(page) => page,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                };
                if let Err(e) = self.blobs.delete(&page) {
                    result = Err(e);
                    break;
                }
                if page.len() < PAGE {
                    break;
                }
            }
        }
        if let Err(e) = result {
            tracing::warn!(error = %e, "deleting unreferenced bodies failed; orphan collection will");
        }
    }
}

/// The last conflict, saying that the retries are spent.
fn give_up(conflict: StoreError) -> StoreError {
    match conflict {
        StoreError::Conflict { detail } => StoreError::Conflict {
            detail: format!("{detail}; gave up after {MAX_ATTEMPTS} attempts"),
        },
        other => other,
    }
}

fn backoff(attempt: u32) {
    let ceiling = MAX_BACKOFF / 32 * (1u32 << attempt.min(5));
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    std::thread::sleep(Duration::from_nanos(
        rand::thread_rng().gen_range(0..=nanos),
    ));
}
