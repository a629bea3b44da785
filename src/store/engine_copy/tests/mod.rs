//! The copy between two real RocksDB stores on disk: a full installation
//! filled through `MailStore`, interrupted and resumed runs, refusals and
//! a tampered target.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::super::{
    Cf, Cipher, EncryptionSettings, FlagChange, Flags, KeyRange, KeyValue, MailStore, MasterKey,
    Order, RocksStore, SecretBytes, Store, Uid,
};
use super::*;
use crate::store::test_fixtures::{cert, message};

const MASTER: [u8; 32] = [7; 32];

/// One installation: the RocksDB engine and its blob tier.
struct Inst {
    store: Arc<RocksStore>,
    blobs: Arc<crate::store::SegmentBlobStore>,
}

impl Inst {
    fn p(&self) -> StorePair<'_> {
        StorePair {
            store: &*self.store,
            blobs: &*self.blobs,
        }
    }
}

impl std::ops::Deref for Inst {
    type Target = RocksStore;
    fn deref(&self) -> &RocksStore {
        &self.store
    }
}

fn rocks() -> (tempfile::TempDir, Inst) {
    let dir = tempfile::tempdir().unwrap();
    let (store, blobs) = RocksStore::open_pair(dir.path()).unwrap();
    (dir, Inst { store, blobs })
}

fn mail_over(inst: &Inst) -> MailStore {
    let engine: Arc<dyn Store> = inst.store.clone();
    MailStore::new(
        crate::store::EnginePair::new(engine, inst.blobs.clone()),
        MasterKey::from_bytes(MASTER),
    )
}

fn dump(store: &StorePair<'_>) -> Vec<(Cf, Vec<KeyValue>)> {
    let all = KeyRange::prefix(&[]);
    Cf::ALL
        .iter()
        .map(|&cf| {
            (
                cf,
                store.scan(cf, &all, Order::Forward, usize::MAX).unwrap(),
            )
        })
        .collect()
}

fn keys_in(store: &StorePair<'_>) -> u64 {
    dump(store).iter().map(|(_, rows)| rows.len() as u64).sum()
}

/// A body of `len` bytes that is not all one byte (segments compress
/// nothing, but a pattern catches a shifted copy).
fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from(i * 31 % 251).unwrap())
        .collect()
}

const LIST_KEY_PEM: &[u8] = b"-----BEGIN PRIVATE KEY-----\nMIIfake\n-----END PRIVATE KEY-----\n";

/// Fills `mail` with one of everything the mail layer stores.
fn fill(mail: &MailStore) {
    let alice = mail
        .add_account(
            "alice@example.org",
            Some("alice-pw"),
            &["al@example.org".into()],
        )
        .unwrap();
    mail.set_quota(alice.id, Some(1 << 30)).unwrap();
    let bob = mail.add_account("bob@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(alice.id, "INBOX").unwrap();
    let archive = mail.create_mailbox(alice.id, "Archive/2024").unwrap();
    for i in 0..20 {
        let raw = format!("Subject: {i}\r\n\r\nbody {i}\r\n");
        mail.append(alice.id, inbox.id, message(raw.as_bytes()))
            .unwrap();
    }
    mail.append(alice.id, archive.id, message(&body(5 << 20)))
        .unwrap();
    mail.append(
        bob.id,
        mail.mailbox_by_name(bob.id, "INBOX").unwrap().id,
        message(b"hi"),
    )
    .unwrap();
    let seen = Flags {
        seen: true,
        keywords: BTreeSet::from(["$Label1".to_string()]),
        ..Flags::default()
    };
    let uids = [Uid::new(2).unwrap(), Uid::new(3).unwrap()];
    mail.set_flags(alice.id, inbox.id, &uids, &FlagChange::Add(seen))
        .unwrap();
    let gone = [Uid::new(5).unwrap(), Uid::new(20).unwrap()];
    assert_eq!(mail.expunge(alice.id, inbox.id, &gone).unwrap().len(), 2);
    mail.add_certificate(alice.id, cert(1, "alice@example.org"))
        .unwrap();
    let settings = EncryptionSettings {
        enabled: true,
        algorithm: Cipher::Aes128Gcm,
        ..EncryptionSettings::default()
    };
    mail.set_encryption_settings(alice.id, settings).unwrap();
    mail.create_list(
        "news@example.org",
        "owner@example.org",
        &["alice@example.org".into()],
    )
    .unwrap();
    mail.add_list_member("news@example.org", "carol@example.net")
        .unwrap();
    let pem = SecretBytes::new(LIST_KEY_PEM.to_vec());
    mail.add_list_key("news@example.org", b"list cert", &pem)
        .unwrap();
}

fn small_chunks(label: &str) -> CopyOptions {
    CopyOptions {
        max_chunk_keys: 7,
        max_chunk_bytes: 1 << 20,
        ..CopyOptions::new(label)
    }
}

/// What IMAP and the rest rely on is the same through a `MailStore` over
/// the target as over the source.
fn assert_same_mail(source: &MailStore, target: &MailStore) {
    let accounts = source.list_accounts().unwrap();
    assert_eq!(target.list_accounts().unwrap(), accounts);
    for account in &accounts {
        let id = account.id;
        let boxes = source.list_mailboxes(id).unwrap();
        assert_eq!(target.list_mailboxes(id).unwrap(), boxes);
        for mbox in &boxes {
            let theirs = target.get_mailbox(id, mbox.id).unwrap();
            assert_eq!(theirs.uid_validity, mbox.uid_validity);
            assert_eq!(theirs.uid_next, mbox.uid_next);
            assert_eq!(theirs.highest_modseq, mbox.highest_modseq);
            let msgs = source.list_messages(id, mbox.id, None, usize::MAX).unwrap();
            assert_eq!(
                target.list_messages(id, mbox.id, None, usize::MAX).unwrap(),
                msgs
            );
            for m in &msgs {
                assert_eq!(
                    target.get_blob(id, m.blob).unwrap().unwrap(),
                    source.get_blob(id, m.blob).unwrap().unwrap()
                );
            }
        }
        assert_eq!(
            target.encryption_settings(id).unwrap(),
            source.encryption_settings(id).unwrap()
        );
        assert_eq!(
            target.list_certificates(id).unwrap(),
            source.list_certificates(id).unwrap()
        );
        assert_eq!(
            target.changes_since(id, 0, usize::MAX).unwrap(),
            source.changes_since(id, 0, usize::MAX).unwrap()
        );
    }
}

#[test]
fn copies_a_whole_installation_exactly() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    let mail = mail_over(&source);
    fill(&mail);
    let report = migrate_engine(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut NoProgress,
    )
    .unwrap();
    assert!(report.copy.finished && !report.copy.resumed);
    assert_eq!(report.copy.copied, keys_in(&source.p()));
    let verification = report.verification.unwrap();
    assert!(verification.is_equal());
    assert_eq!(verification.keys(), keys_in(&source.p()));
    // The marker is gone: the target is exactly the source.
    assert_eq!(dump(&target.p()), dump(&source.p()));

    let copy = mail_over(&target);
    assert_same_mail(&mail, &copy);
    let alice = copy.account_by_address("al@example.org").unwrap();
    assert_eq!(alice.quota_bytes, Some(1 << 30));
    assert!(copy
        .check_login("alice@example.org", "alice-pw")
        .unwrap()
        .is_some());
    let inbox = copy.mailbox_by_name(alice.id, "INBOX").unwrap();
    assert_eq!(
        inbox.uid_next,
        Uid::new(21).unwrap(),
        "UIDNEXT above the last UID"
    );
    let msgs = copy.list_messages(alice.id, inbox.id, None, 100).unwrap();
    assert_eq!(msgs.len(), 18);
    assert!(msgs[1].flags.seen && msgs[1].flags.keywords.contains("$Label1"));
    let archive = copy.mailbox_by_name(alice.id, "Archive/2024").unwrap();
    let big = copy.list_messages(alice.id, archive.id, None, 1).unwrap();
    assert_eq!(
        copy.get_blob(alice.id, big[0].blob).unwrap().unwrap(),
        body(5 << 20)
    );
    let keys = copy.list_keys("news@example.org").unwrap();
    assert_eq!(
        keys[0].private_key_pem.expose(),
        LIST_KEY_PEM,
        "opens with the same master key"
    );
    let members = copy.list_members("news@example.org").unwrap();
    assert!(members.contains(&"carol@example.net".to_string()));
    assert_eq!(members, mail.list_members("news@example.org").unwrap());
}

#[test]
fn an_interrupted_copy_resumes_after_the_last_chunk() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    fill(&mail_over(&source));
    let total = keys_in(&source.p());
    let first = CopyOptions {
        max_chunks: Some(3),
        ..small_chunks("src")
    };
    let stopped = migrate_engine(&source.p(), &target.p(), &first, &mut NoProgress).unwrap();
    assert!(!stopped.copy.finished && stopped.verification.is_none());
    assert_eq!(stopped.copy.chunks, 3);
    assert!(stopped.copy.copied > 0 && stopped.copy.copied < total);
    assert_eq!(
        keys_in(&target.p()),
        stopped.copy.copied + 1,
        "the chunks and the marker"
    );
    assert!(target.get(Cf::Meta, MARKER_KEY).unwrap().is_some());

    let rest = migrate_engine(
        &source.p(),
        &target.p(),
        &small_chunks("src"),
        &mut NoProgress,
    )
    .unwrap();
    assert!(rest.copy.resumed && rest.copy.finished);
    assert_eq!(
        rest.copy.copied,
        total - stopped.copy.copied,
        "only the rest"
    );
    assert_eq!(rest.copy.done, total, "nothing counted twice");
    assert!(rest.verification.unwrap().is_equal());
    assert_eq!(dump(&target.p()), dump(&source.p()));
}

#[test]
fn chunks_are_bounded_by_bytes() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    let mail = mail_over(&source);
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    for i in 0..4u8 {
        let mut raw = body(100 << 10);
        raw[0] = i;
        mail.append(acct.id, inbox.id, message(&raw)).unwrap();
    }
    let options = CopyOptions {
        max_chunk_bytes: 64 << 10,
        ..CopyOptions::new("src")
    };
    let report = copy_store(&source.p(), &target.p(), &options, &mut NoProgress).unwrap();
    let non_empty = dump(&source.p())
        .iter()
        .filter(|(_, rows)| !rows.is_empty())
        .count() as u64;
    // One chunk per column family, but each 100 KiB body alone.
    assert_eq!(report.chunks, non_empty - 1 + 4);
    assert!(verify_copy(&source.p(), &target.p(), &mut NoProgress)
        .unwrap()
        .is_equal());
}

#[test]
fn an_empty_source_copies_nothing() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    let report = migrate_engine(
        &source.p(),
        &target.p(),
        &CopyOptions::new("src"),
        &mut NoProgress,
    )
    .unwrap();
    assert_eq!((report.copy.copied, report.copy.chunks), (0, 0));
    assert!(report.verification.unwrap().is_equal());
    assert_eq!(keys_in(&target.p()), 0);
}

/// Records what the progress receiver is told.
#[derive(Default)]
struct Recorded(Vec<(Phase, u64)>, u64);

impl CopyProgress for Recorded {
    fn phase(&mut self, phase: Phase, total: u64) {
        self.0.push((phase, total));
    }
    fn advance(&mut self, done: u64) {
        self.1 = done;
    }
}

#[test]
fn progress_totals_come_from_the_count() {
    let (_s, source) = rocks();
    let (_t, target) = rocks();
    fill(&mail_over(&source));
    let mut seen = Recorded::default();
    let options = small_chunks("src");
    let report = migrate_engine(&source.p(), &target.p(), &options, &mut seen).unwrap();
    let total = keys_in(&source.p());
    assert_eq!(report.copy.total, total, "blob_refs count the blobs");
    let phases: Vec<Phase> = seen.0.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        phases,
        vec![Phase::Counting, Phase::Copying, Phase::Verifying]
    );
    assert_eq!(seen.0[1].1, total);
    assert_eq!(seen.1, 2 * total, "verification read both sides");
}

mod refusals;
