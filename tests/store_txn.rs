//! The mail layer's optimistic transactions against a real RocksDB: TWO
//! `MailStore`s over ONE shared engine, hammered from several threads.
//! Each `MailStore` has its own in-process lock stripes, exactly like two
//! `sealmail serve` processes sharing one engine, so these tests pass only
//! if the counters (UIDNEXT, MODSEQ, used bytes, account ids) and the
//! address directory are kept right by the engine's conditional writes,
//! not by a lock. Plus: the retry bound gives up with a clear `Conflict`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use sealmail::store::{
    AccountId, Batch, Cf, EnginePair, FlagChange, Flags, HeaderFields, KeyRange, KeyValue,
    MailError, MailStore, MailboxId, MasterKey, NewMessage, Order, Recipient, RocksStore, Store,
    StoreError, Uid,
};

/// Two mail stores (two "processes") over one engine.
fn pair(dir: &tempfile::TempDir) -> (MailStore, MailStore) {
    let (engine, blobs) = RocksStore::open_pair(dir.path()).unwrap();
    let a = MailStore::new(
        EnginePair::new(engine.clone(), blobs.clone()),
        MasterKey::from_bytes([3; 32]),
    );
    let b = MailStore::new(
        EnginePair::new(engine, blobs),
        MasterKey::from_bytes([3; 32]),
    );
    (a, b)
}

fn msg(raw: &[u8]) -> NewMessage<'_> {
    NewMessage {
        raw,
        flags: Flags::default(),
        internal_date: 1_700_000_000,
        headers: HeaderFields::default(),
        encrypted: false,
        unique: false,
    }
}

fn inbox(mail: &MailStore, id: AccountId) -> MailboxId {
    mail.mailbox_by_name(id, "INBOX").unwrap().id
}

/// Threads per store.
const THREADS: usize = 2;

/// Runs `f(store, thread_index)` on `THREADS` threads per store, all
/// started together; returns every thread's result.
fn hammer<T: Send>(stores: [&MailStore; 2], f: impl Fn(&MailStore, usize) -> T + Sync) -> Vec<T> {
    let start = Barrier::new(2 * THREADS);
    thread::scope(|s| {
        let handles: Vec<_> = (0..2 * THREADS)
            .map(|t| {
                let (f, start, store) = (&f, &start, stores[t % 2]);
                s.spawn(move || {
                    start.wait();
                    f(store, t)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn concurrent_appends_get_unique_increasing_uids_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let id = a.add_account("alice@example.org", None, &[]).unwrap().id;
    let mbox = inbox(&a, id);
    const PER_THREAD: usize = 40;
    let results = hammer([&a, &b], |store, t| {
        (0..PER_THREAD)
            .map(|i| {
                let raw = format!("From: t{t}\r\n\r\nmessage {i} of thread {t}\r\n");
                let stored = store.append(id, mbox, msg(raw.as_bytes())).unwrap();
                (stored.uid, stored.modseq, raw)
            })
            .collect::<Vec<_>>()
    });
    let appended: Vec<(Uid, u64, String)> = results.into_iter().flatten().collect();
    let total = appended.len();
    let uids: BTreeSet<Uid> = appended.iter().map(|(u, ..)| *u).collect();
    assert_eq!(uids.len(), total, "two appends got the same UID");

    let listed = b.list_messages(id, mbox, None, usize::MAX).unwrap();
    assert_eq!(listed.len(), total, "a message was lost");
    // UIDs increase in commit order: the later UID has the later MODSEQ.
    for pair in listed.windows(2) {
        assert!(
            pair[0].modseq < pair[1].modseq,
            "UID order is not commit order"
        );
    }
    let by_uid: BTreeMap<Uid, &String> = appended.iter().map(|(u, _, raw)| (*u, raw)).collect();
    for m in &listed {
        let raw = b
            .get_blob(id, m.blob)
            .unwrap()
            .expect("blob of a listed message");
        assert_eq!(
            raw,
            by_uid[&m.uid].as_bytes(),
            "UID {} holds other bytes",
            m.uid
        );
    }
    let mailbox = a.get_mailbox(id, mbox).unwrap();
    assert_eq!(mailbox.uid_next.get() as usize, total + 1);
    assert_eq!(mailbox.exists as usize, total);
    let sizes: u64 = appended.iter().map(|(.., raw)| raw.len() as u64).sum();
    let account = b.account(id).unwrap();
    assert_eq!(account.used_bytes, sizes);
    assert_eq!(mailbox.highest_modseq, account.modseq);
}

#[test]
fn concurrent_flag_changes_get_unique_modseqs() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let id = a.add_account("bob@example.org", None, &[]).unwrap().id;
    let mbox = inbox(&a, id);
    let uids: Vec<Uid> = (0..3)
        .map(|i| {
            a.append(id, mbox, msg(format!("m{i}").as_bytes()))
                .unwrap()
                .uid
        })
        .collect();
    let results = hammer([&a, &b], |store, t| {
        let mut out = Vec::new();
        for i in 0..30 {
            let flags = Flags {
                keywords: BTreeSet::from([format!("k{t}-{i}")]),
                ..Flags::default()
            };
            let changed = store
                .set_flags(id, mbox, &uids, &FlagChange::Replace(flags))
                .unwrap();
            assert_eq!(changed.len(), uids.len());
            out.extend(changed);
        }
        out
    });
    let changes: Vec<(Uid, u64)> = results.into_iter().flatten().collect();
    let modseqs: BTreeSet<u64> = changes.iter().map(|(_, m)| *m).collect();
    assert_eq!(
        modseqs.len(),
        changes.len(),
        "two flag changes got the same MODSEQ"
    );
    let highest = *modseqs.last().unwrap();
    assert_eq!(b.get_mailbox(id, mbox).unwrap().highest_modseq, highest);
    assert_eq!(b.account(id).unwrap().modseq, highest);
    for uid in &uids {
        let last = changes
            .iter()
            .filter(|(u, _)| u == uid)
            .map(|(_, m)| *m)
            .max();
        assert_eq!(Some(b.get_message(id, mbox, *uid).unwrap().modseq), last);
    }
    let log = a.changes_since(id, 0, usize::MAX).unwrap();
    let ids: BTreeSet<u64> = log.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), log.len());
    assert_eq!(
        log.last().unwrap().id,
        highest,
        "a change-log entry was overwritten"
    );
    assert_eq!(log.len() as u64, highest, "change log has a gap");
}

#[test]
fn concurrent_account_creation_allocates_unique_ids() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let created = hammer([&a, &b], |store, t| {
        (0..8)
            .map(|i| {
                let address = format!("user{t}-{i}@example.org");
                let account = store.add_account(&address, None, &[]).unwrap();
                (account.id, address)
            })
            .collect::<Vec<_>>()
    });
    let created: Vec<(AccountId, String)> = created.into_iter().flatten().collect();
    let ids: BTreeSet<AccountId> = created.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), created.len(), "two accounts got the same id");
    assert_eq!(a.list_accounts().unwrap().len(), created.len());
    for (id, address) in &created {
        assert_eq!(
            b.resolve_address(address).unwrap(),
            Some(Recipient::Account(*id))
        );
        assert_eq!(a.account(*id).unwrap().address, *address);
        assert_eq!(b.list_mailboxes(*id).unwrap().len(), 6);
    }
}

#[test]
fn concurrent_creation_of_one_address_has_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    for round in 0..12 {
        let address = format!("same{round}@example.org");
        let outcomes = hammer([&a, &b], |store, t| {
            // why both kinds: accounts and lists share one address space.
            if t == 3 {
                store
                    .create_list(&address, "owner@example.org", &[])
                    .map(|_| None)
            } else {
                store
                    .add_account(&address, None, &[])
                    .map(|acc| Some(acc.id))
            }
        });
        let winners: Vec<_> = outcomes.iter().filter(|o| o.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        for o in &outcomes {
            if let Err(e) = o {
                assert!(matches!(e, MailError::AddressTaken { .. }), "{e}");
            }
        }
        let expected = match winners[0] {
            Ok(Some(id)) => Recipient::Account(*id),
            _ => Recipient::List(address.clone()),
        };
        assert_eq!(a.resolve_address(&address).unwrap(), Some(expected));
    }
    let accounts = a.list_accounts().unwrap();
    let ids: BTreeSet<AccountId> = accounts.iter().map(|acc| acc.id).collect();
    assert_eq!(ids.len(), accounts.len());
}

#[test]
fn concurrent_expunge_and_append_keep_counters_and_blobs_right() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let id = a.add_account("carol@example.org", None, &[]).unwrap().id;
    let mbox = inbox(&a, id);
    let done = AtomicBool::new(false);
    let appended = AtomicUsize::new(0);
    hammer([&a, &b], |store, t| {
        if t < 2 {
            for i in 0..40 {
                // why shared bytes for every third: their blob is shared, so
                // the reference count races too.
                let raw = if i % 3 == 0 {
                    "shared body".to_string()
                } else {
                    format!("body {i} of {t}")
                };
                store.append(id, mbox, msg(raw.as_bytes())).unwrap();
                appended.fetch_add(1, Ordering::SeqCst);
            }
            if appended.load(Ordering::SeqCst) == 80 {
                done.store(true, Ordering::SeqCst);
            }
        } else {
            while !done.load(Ordering::SeqCst) {
                let listed = store.list_messages(id, mbox, None, usize::MAX).unwrap();
                let uids: Vec<Uid> = listed
                    .iter()
                    .map(|m| m.uid)
                    .filter(|u| usize::try_from(u.get()).unwrap() % 2 == t % 2)
                    .collect();
                store.expunge(id, mbox, &uids).unwrap();
            }
        }
    });
    let remaining = a.list_messages(id, mbox, None, usize::MAX).unwrap();
    let mailbox = b.get_mailbox(id, mbox).unwrap();
    assert_eq!(mailbox.exists as usize, remaining.len());
    assert_eq!(mailbox.uid_next.get(), 81);
    let used: u64 = remaining.iter().map(|m| m.size).sum();
    assert_eq!(b.account(id).unwrap().used_bytes, used);
    for m in &remaining {
        assert!(
            a.get_blob(id, m.blob).unwrap().is_some(),
            "UID {} lost its blob",
            m.uid
        );
    }
    // Expunging the rest leaves no blob behind: the counts were right.
    let uids: Vec<Uid> = remaining.iter().map(|m| m.uid).collect();
    a.expunge(id, mbox, &uids).unwrap();
    assert_eq!(b.account(id).unwrap().used_bytes, 0);
    let engine = a.engine();
    let range = KeyRange::prefix(&id.0.to_be_bytes());
    assert_eq!(
        engine
            .scan(Cf::BlobRefs, &range, Order::Forward, 10)
            .unwrap(),
        vec![]
    );
}

#[test]
fn list_member_changes_race_with_list_removal() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let list = "team@example.org";
    for round in 0..15 {
        a.create_list(list, "owner@example.org", &[]).unwrap();
        hammer([&a, &b], |store, t| match t {
            0 => {
                store.remove_list(list).unwrap();
            }
            _ => {
                for i in 0..3 {
                    let member = format!("m{round}-{t}-{i}@example.org");
                    match store.add_list_member(list, &member) {
                        Ok(()) | Err(MailError::ListNotFound { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        });
        // why: a member written after the list was removed would come
        // back with the next list of that address.
        assert!(a.get_list(list).is_err());
        a.create_list(list, "owner@example.org", &[]).unwrap();
        assert_eq!(
            b.list_members(list).unwrap(),
            Vec::<String>::new(),
            "round {round}"
        );
        a.remove_list(list).unwrap();
    }
}

#[test]
fn list_member_adds_and_removes_from_two_stores_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = pair(&dir);
    let list = "crew@example.org";
    a.create_list(list, "owner@example.org", &[]).unwrap();
    hammer([&a, &b], |store, t| {
        for i in 0..10 {
            store
                .add_list_member(list, &format!("m{t}-{i}@example.org"))
                .unwrap();
        }
        for i in (1..10).step_by(2) {
            store
                .remove_list_member(list, &format!("m{t}-{i}@example.org"))
                .unwrap();
        }
    });
    let expected: Vec<String> = (0..2 * THREADS)
        .flat_map(|t| {
            (0..10)
                .step_by(2)
                .map(move |i| format!("m{t}-{i}@example.org"))
        })
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(a.list_members(list).unwrap(), expected);
}

/// An engine whose conditional writes always conflict once armed (as if
/// another process won every race), counting the attempts.
#[derive(Debug)]
struct AlwaysConflicts {
    inner: Arc<RocksStore>,
    armed: AtomicBool,
    attempts: AtomicUsize,
}

impl Store for AlwaysConflicts {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan(cf, range, order, limit)
    }

    fn write_if(&self, expect: &[sealmail::store::Expect], batch: Batch) -> Result<(), StoreError> {
        if self.armed.load(Ordering::SeqCst) {
            self.attempts.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Conflict {
                detail: "injected".into(),
            });
        }
        self.inner.write_if(expect, batch)
    }
}

#[test]
fn endless_conflicts_give_up_after_the_retry_bound_with_a_conflict_error() {
    let dir = tempfile::tempdir().unwrap();
    let (rocks, blobs) = RocksStore::open_pair(dir.path()).unwrap();
    let engine = Arc::new(AlwaysConflicts {
        inner: rocks,
        armed: AtomicBool::new(false),
        attempts: AtomicUsize::new(0),
    });
    let mail = MailStore::new(
        EnginePair::new(engine.clone(), blobs),
        MasterKey::from_bytes([4; 32]),
    );
    let id = mail.add_account("dave@example.org", None, &[]).unwrap().id;
    let mbox = inbox(&mail, id);

    engine.armed.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let err = mail.append(id, mbox, msg(b"never stored")).unwrap_err();
    assert!(
        matches!(err, MailError::Store(StoreError::Conflict { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("try again"), "{err}");
    // The documented bound: 64 attempts, then the Conflict reaches the caller.
    assert_eq!(engine.attempts.load(Ordering::SeqCst), 64);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    engine.armed.store(false, Ordering::SeqCst);
    assert!(mail.list_messages(id, mbox, None, 10).unwrap().is_empty());
    let stored = mail.append(id, mbox, msg(b"stored")).unwrap();
    assert_eq!(stored.uid, Uid::FIRST, "the failed attempts used up a UID");
}
