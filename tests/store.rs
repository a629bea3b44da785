//! The store against each real engine — RocksDB in a temporary directory,
//! and a database of its own on a real PostgreSQL server — with the same
//! test bodies (`on_both_engines!`): round trips per entity, reopening,
//! atomicity through a failing engine wrapper, the certificate rules, UID
//! rules and account removal. Lists and secrets at rest: `store_lists.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::Ordering;

use sealmail::store::{
    AccountId, AuditKind, Cf, ChangeKind, ChangedObject, Cipher, EncryptionSettings, FlagChange,
    Flags, KeyRange, KeyValue, MailError, MailStore, Order, Recipient, SecretBytes, Store, Uid,
};

#[path = "support/postgres.rs"]
mod postgres;

#[path = "support/secrets.rs"]
mod secrets;
use secrets::fake_pem;

#[path = "store/fixture.rs"]
mod fixture;
use fixture::{cert, msg, Engine, Fixture};

#[path = "store/bodies.rs"]
mod bodies;
use bodies::{
    identical_bodies_share_a_key_only_on_a_private_engine,
    large_bodies_are_read_whole_and_in_ranges_until_their_last_reference_goes,
};

/// Runs each named test body (`fn(&Fixture)`) once per engine, as
/// `rocksdb::NAME` and `pg::NAME`.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod rocksdb {
            $(#[test]
            fn $name() {
                super::$name(&super::Fixture::new(super::Engine::Rocks));
            })*
        }
        mod pg {
            $(#[test]
            fn $name() {
                super::$name(&super::Fixture::new(super::Engine::Postgres));
            })*
        }
    };
}

on_both_engines!(
    account_round_trip,
    mailbox_hierarchy_rename_delete,
    messages_flags_copy_move_and_blob_sharing,
    uids_increase_and_are_never_reused,
    quota_is_enforced,
    everything_survives_reopen,
    changes_since_and_audit_latest_first,
    certificate_round_trip_and_duplicate,
    last_active_certificate_rule,
    failed_write_leaves_nothing_and_each_operation_is_one_batch,
    account_removal_leaves_no_key_behind,
    append_many_spans_accounts_all_or_nothing,
    identical_bodies_share_a_key_only_on_a_private_engine,
    large_bodies_are_read_whole_and_in_ranges_until_their_last_reference_goes,
);

/// Every metadata column family. Not `blobs`: bodies are put before the
/// metadata that names them commits, so a failed write may leave an
/// unreferenced body there (an orphan, which collection removes).
fn dump(store: &dyn Store) -> Vec<(Cf, Vec<KeyValue>)> {
    let all = KeyRange::prefix(&[]);
    Cf::ALL
        .iter()
        .filter(|&&cf| cf != Cf::Blobs)
        .map(|&cf| {
            (
                cf,
                store.scan(cf, &all, Order::Forward, usize::MAX).unwrap(),
            )
        })
        .collect()
}

fn alice(mail: &MailStore) -> AccountId {
    mail.add_account(
        "Alice@Example.org",
        Some("s3cret"),
        &["al@example.org".into()],
    )
    .unwrap()
    .id
}

fn inbox(mail: &MailStore, id: AccountId) -> sealmail::store::MailboxId {
    mail.mailbox_by_name(id, "inbox").unwrap().id
}

fn enabled() -> EncryptionSettings {
    EncryptionSettings {
        enabled: true,
        algorithm: Cipher::Aes128Cbc,
        ..EncryptionSettings::default()
    }
}

fn account_round_trip(fx: &Fixture) {
    let mail = fx.open();
    let id = alice(&mail);
    let acct = mail.account_by_address("AL@example.ORG").unwrap();
    assert_eq!(acct.id, id);
    assert_eq!(acct.address, "alice@example.org");
    assert_eq!(acct.aliases, vec!["al@example.org".to_string()]);
    assert!(mail.verify_password(id, "s3cret").unwrap());
    assert!(!mail.verify_password(id, "wrong").unwrap());
    assert_eq!(
        mail.resolve_address("<alice@example.org>").unwrap(),
        Some(Recipient::Account(id))
    );
    assert_eq!(mail.resolve_address("nobody@example.org").unwrap(), None);
    assert_eq!(mail.resolve_address("not an address").unwrap(), None);
    assert!(matches!(
        mail.add_account("al@example.org", None, &[]),
        Err(MailError::AddressTaken { .. })
    ));
    mail.set_aliases(id, &["other@example.org".into()]).unwrap();
    assert_eq!(mail.resolve_address("al@example.org").unwrap(), None);
    assert_eq!(
        mail.resolve_address("other@example.org").unwrap(),
        Some(Recipient::Account(id))
    );
    mail.set_password(id, None).unwrap();
    assert!(!mail.verify_password(id, "s3cret").unwrap());
    let bob = mail.add_account("bob@example.org", None, &[]).unwrap();
    assert!(!bob.has_password);
    let all: Vec<_> = mail
        .list_accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.address)
        .collect();
    assert_eq!(all, ["alice@example.org", "bob@example.org"]);
    let names: Vec<_> = mail
        .list_mailboxes(bob.id)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(
        names,
        ["INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive"]
    );
}

fn mailbox_hierarchy_rename_delete(fx: &Fixture) {
    let mail = fx.open();
    let id = alice(&mail);
    let leaf = mail.create_mailbox(id, "Work/2024/Q1").unwrap();
    let work = mail.mailbox_by_name(id, "Work").unwrap();
    let year = mail.mailbox_by_name(id, "Work/2024").unwrap();
    assert_eq!(year.parent, Some(work.id));
    assert_eq!(leaf.parent, Some(year.id));
    assert!(matches!(
        mail.create_mailbox(id, "Work"),
        Err(MailError::MailboxExists { .. })
    ));
    assert!(matches!(
        mail.delete_mailbox(id, work.id),
        Err(MailError::MailboxHasChildren { .. })
    ));
    let renamed = mail.rename_mailbox(id, work.id, "Old/Work").unwrap();
    assert_eq!(renamed.name, "Old/Work");
    assert_eq!(
        mail.get_mailbox(id, leaf.id).unwrap().name,
        "Old/Work/2024/Q1"
    );
    assert!(mail.mailbox_by_name(id, "Work/2024").is_err());
    let old = mail.mailbox_by_name(id, "Old").unwrap();
    assert_eq!(renamed.parent, Some(old.id));
    assert!(matches!(
        mail.rename_mailbox(id, inbox(&mail, id), "X"),
        Err(MailError::InboxProtected)
    ));
    mail.set_subscribed(id, leaf.id, false).unwrap();
    assert!(!mail.get_mailbox(id, leaf.id).unwrap().subscribed);
    let raw = b"to be deleted with its mailbox";
    let m = mail.append(id, leaf.id, msg(raw)).unwrap();
    mail.delete_mailbox(id, leaf.id).unwrap();
    assert!(mail.get_blob(id, m.blob).unwrap().is_none());
    assert_eq!(mail.account(id).unwrap().used_bytes, 0);
    // A mailbox created again under the same name gets a new UIDVALIDITY.
    let again = mail.create_mailbox(id, "Old/Work/2024/Q1").unwrap();
    assert_ne!(again.uid_validity, leaf.uid_validity);
}

fn messages_flags_copy_move_and_blob_sharing(fx: &Fixture) {
    let mail = fx.open();
    let id = alice(&mail);
    let inbox = inbox(&mail, id);
    let archive = mail.mailbox_by_name(id, "Archive").unwrap().id;
    let a = mail.append(id, inbox, msg(b"message a")).unwrap();
    let b = mail.append(id, inbox, msg(b"message b")).unwrap();
    assert_eq!((a.uid.get(), b.uid.get()), (1, 2));
    assert!(b.modseq > a.modseq);
    let got = mail.get_message(id, inbox, a.uid).unwrap();
    assert_eq!(got.headers.subject.as_deref(), Some("Hello"));
    assert_eq!(mail.get_blob(id, got.blob).unwrap().unwrap(), b"message a");

    let seen = Flags {
        seen: true,
        keywords: ["$Forwarded".to_string()].into(),
        ..Flags::default()
    };
    let changed = mail
        .set_flags(id, inbox, &[a.uid, b.uid], &FlagChange::Add(seen))
        .unwrap();
    assert_eq!(changed.len(), 2);
    let box_after = mail.get_mailbox(id, inbox).unwrap();
    assert_eq!(box_after.highest_modseq, changed[1].1);
    let remove = FlagChange::Remove(Flags {
        seen: true,
        ..Flags::default()
    });
    mail.set_flags(id, inbox, &[a.uid], &remove).unwrap();
    let flags = mail.get_message(id, inbox, a.uid).unwrap().flags;
    assert!(!flags.seen && flags.keywords.contains("$Forwarded"));

    let copied = mail.copy_messages(id, inbox, &[a.uid], archive).unwrap();
    assert_eq!(copied, vec![(a.uid, Uid::FIRST)]);
    mail.expunge(id, inbox, &[a.uid]).unwrap();
    // The copy still holds the shared blob.
    assert_eq!(mail.get_blob(id, a.blob).unwrap().unwrap(), b"message a");
    mail.expunge(id, archive, &[Uid::FIRST]).unwrap();
    assert!(mail.get_blob(id, a.blob).unwrap().is_none());

    let moved = mail.move_messages(id, inbox, &[b.uid], archive).unwrap();
    assert_eq!(moved, vec![(b.uid, Uid::new(2).unwrap())]);
    assert!(mail.list_messages(id, inbox, None, 10).unwrap().is_empty());
    assert_eq!(mail.get_mailbox(id, archive).unwrap().exists, 1);
    assert_eq!(mail.account(id).unwrap().used_bytes, 9);
}

fn uids_increase_and_are_never_reused(fx: &Fixture) {
    let (id, inbox) = {
        let mail = fx.open();
        let id = alice(&mail);
        let inbox = inbox(&mail, id);
        let uids: Vec<Uid> = (0..3)
            .map(|i| {
                mail.append(id, inbox, msg(format!("m{i}").as_bytes()))
                    .unwrap()
                    .uid
            })
            .collect();
        assert_eq!(uids.iter().map(|u| u.get()).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(mail.expunge(id, inbox, &uids).unwrap(), uids);
        (id, inbox)
    };
    let mail = fx.open();
    let next = mail.append(id, inbox, msg(b"after reopen")).unwrap();
    assert_eq!(next.uid.get(), 4);
    let page = mail.list_messages(id, inbox, None, 10).unwrap();
    assert_eq!(page.len(), 1);
    let first = mail.append(id, inbox, msg(b"five")).unwrap();
    let after = mail.list_messages(id, inbox, Some(next.uid), 10).unwrap();
    assert_eq!(after.iter().map(|m| m.uid).collect::<Vec<_>>(), [first.uid]);
}

fn quota_is_enforced(fx: &Fixture) {
    let mail = fx.open();
    let id = alice(&mail);
    mail.set_quota(id, Some(10)).unwrap();
    mail.append(id, inbox(&mail, id), msg(b"12345678")).unwrap();
    let err = mail.append(id, inbox(&mail, id), msg(b"123")).unwrap_err();
    assert!(matches!(
        err,
        MailError::QuotaExceeded {
            used: 8,
            needed: 3,
            quota: 10
        }
    ));
    assert!(err.is_user_error());
}

fn everything_survives_reopen(fx: &Fixture) {
    let pem = fake_pem();
    let (id, stored) = {
        let mail = fx.open();
        let id = alice(&mail);
        let stored = mail
            .append(id, inbox(&mail, id), msg(b"persistent"))
            .unwrap();
        mail.add_certificate(id, cert(1)).unwrap();
        mail.set_encryption_settings(id, enabled()).unwrap();
        mail.create_list(
            "list@example.org",
            "owner@example.org",
            &["alice@example.org".into()],
        )
        .unwrap();
        mail.add_list_key(
            "list@example.org",
            b"list cert der",
            &SecretBytes::new(pem.clone()),
        )
        .unwrap();
        (id, stored)
    };
    let mail = fx.open();
    assert_eq!(mail.account_by_address("alice@example.org").unwrap().id, id);
    assert!(mail.verify_password(id, "s3cret").unwrap());
    let inbox = inbox(&mail, id);
    assert_eq!(mail.get_message(id, inbox, stored.uid).unwrap(), stored);
    assert_eq!(
        mail.get_blob(id, stored.blob).unwrap().unwrap(),
        b"persistent"
    );
    let certs = mail.list_certificates(id).unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].der, cert(1).der);
    assert_eq!(mail.encryption_settings(id).unwrap(), enabled());
    assert_eq!(
        mail.list_members("list@example.org").unwrap(),
        ["alice@example.org"]
    );
    let keys = mail.list_keys("list@example.org").unwrap();
    assert_eq!(keys[0].private_key_pem.expose(), pem.as_slice());
    assert_eq!(
        mail.resolve_address("LIST@example.org").unwrap(),
        Some(Recipient::List("list@example.org".into()))
    );
    let changes = mail.changes_since(id, 0, 1000).unwrap();
    assert_eq!(changes.last().unwrap().id, mail.account(id).unwrap().modseq);
    let audit = mail.audit_events(id, 10).unwrap();
    assert_eq!(audit[0].kind, AuditKind::EncryptionEnabled);
    assert_eq!(audit[1].kind, AuditKind::CertificateAdded);
}

fn changes_since_and_audit_latest_first(fx: &Fixture) {
    let mail = fx.open();
    let id = alice(&mail);
    let state = mail.account(id).unwrap().modseq;
    let m = mail.append(id, inbox(&mail, id), msg(b"x")).unwrap();
    mail.add_certificate(id, cert(1)).unwrap();
    let changes = mail.changes_since(id, state, 10).unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[0].kind, ChangeKind::Created);
    assert!(
        matches!(&changes[0].object, ChangedObject::Email(e)
            if e.email == m.email_id && e.mailbox == m.mailbox && e.uid == m.uid),
        "{:?}",
        changes[0].object
    );
    assert_eq!(
        changes[0].id, m.email_id,
        "an Email id is its creation's change id"
    );
    assert_eq!(
        changes[1].object,
        ChangedObject::Certificate(cert(1).fingerprint)
    );
    assert_eq!(mail.changes_since(id, state, 1).unwrap().len(), 1);
    mail.record_audit(id, AuditKind::DeliveryRefused, "no usable certificate")
        .unwrap();
    mail.record_audit(id, AuditKind::DeliveryEncrypted, "<1@example.org>")
        .unwrap();
    let audit = mail.audit_events(id, 2).unwrap();
    assert_eq!(audit[0].kind, AuditKind::DeliveryEncrypted);
    assert_eq!(audit[1].details, "no usable certificate");
    assert!(audit[0].seq > audit[1].seq);
}

fn certificate_round_trip_and_duplicate(fx: &Fixture) {
    let mail = fx.open();
    let id = alice(&mail);
    let added = mail.add_certificate(id, cert(1)).unwrap();
    let fp = added.fingerprint;
    assert_eq!(mail.get_certificate(id, fp).unwrap(), added);
    let dup = mail.add_certificate(id, cert(1)).unwrap_err();
    assert!(matches!(dup, MailError::DuplicateCertificate { fingerprint } if fingerprint == fp));
    let mut wrong = cert(2);
    wrong.fingerprint = fp;
    assert!(matches!(
        mail.add_certificate(id, wrong),
        Err(MailError::FingerprintMismatch { .. })
    ));
    let updated = mail.set_certificate_description(id, fp, "phone").unwrap();
    assert_eq!(updated.description, "phone");
    assert!(
        !mail
            .set_certificate_active(id, fp, false)
            .unwrap()
            .is_active
    );
    mail.remove_certificate(id, fp).unwrap();
    assert!(matches!(
        mail.get_certificate(id, fp),
        Err(MailError::CertificateNotFound { .. })
    ));
}

fn last_active_certificate_rule(fx: &Fixture) {
    let mail = fx.open();
    let id = alice(&mail);
    let err = mail.set_encryption_settings(id, enabled()).unwrap_err();
    assert!(matches!(err, MailError::NoActiveCertificate), "{err}");
    assert!(err.to_string().contains("add a certificate first"));

    let one = mail.add_certificate(id, cert(1)).unwrap().fingerprint;
    mail.set_encryption_settings(id, enabled()).unwrap();
    for err in [
        mail.remove_certificate(id, one).unwrap_err(),
        mail.set_certificate_active(id, one, false).unwrap_err(),
    ] {
        assert!(
            matches!(err, MailError::LastActiveCertificate { .. }),
            "{err}"
        );
        assert!(err
            .to_string()
            .contains("disable encryption or add a certificate first"));
    }
    let mut inactive = cert(2);
    inactive.is_active = false;
    let two = mail.add_certificate(id, inactive).unwrap().fingerprint;
    assert!(
        mail.remove_certificate(id, one).is_err(),
        "an inactive one does not count"
    );
    mail.set_certificate_active(id, two, true).unwrap();
    mail.set_certificate_active(id, one, false).unwrap();
    mail.remove_certificate(id, one).unwrap();
    assert!(mail.remove_certificate(id, two).is_err());
    mail.set_encryption_settings(id, EncryptionSettings::default())
        .unwrap();
    mail.remove_certificate(id, two).unwrap();
    let kinds: Vec<_> = mail
        .audit_events(id, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds[0], AuditKind::CertificateRemoved);
    assert_eq!(kinds[1], AuditKind::EncryptionDisabled);
    assert!(kinds.contains(&AuditKind::CertificateDeactivated));
}

fn failed_write_leaves_nothing_and_each_operation_is_one_batch(fx: &Fixture) {
    let (engine, mail) = fx.faulty();
    let id = alice(&mail);
    let inbox = inbox(&mail, id);
    let before = dump(engine.as_ref());
    engine.fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        mail.append(id, inbox, msg(b"lost")),
        Err(MailError::Store(_))
    ));
    assert!(matches!(
        mail.add_certificate(id, cert(1)),
        Err(MailError::Store(_))
    ));
    assert_eq!(
        dump(engine.as_ref()),
        before,
        "a failed write left something behind"
    );
    engine.fail.store(false, Ordering::SeqCst);

    let writes = engine.writes.load(Ordering::SeqCst);
    let m = mail.append(id, inbox, msg(b"kept")).unwrap();
    mail.add_certificate(id, cert(1)).unwrap();
    assert_eq!(
        engine.writes.load(Ordering::SeqCst),
        writes + 2,
        "one batch per operation"
    );
    assert_eq!(m.uid, Uid::FIRST, "the failed append consumed no UID");
}

fn account_removal_leaves_no_key_behind(fx: &Fixture) {
    let (engine, mail) = fx.faulty();
    let bob = mail.add_account("bob@example.org", None, &[]).unwrap().id;
    let before_alice = dump(engine.as_ref());
    let id = alice(&mail);
    let inbox = inbox(&mail, id);
    mail.append(id, inbox, msg(b"one")).unwrap();
    let everything = KeyRange::prefix(&[]);
    assert_eq!(mail.blob_store().keys(&everything, 10).unwrap().len(), 1);
    mail.create_mailbox(id, "Projects/x").unwrap();
    mail.add_certificate(id, cert(1)).unwrap();
    mail.set_encryption_settings(id, enabled()).unwrap();
    mail.record_audit(id, AuditKind::DeliveryEncrypted, "x")
        .unwrap();
    mail.remove_account(id).unwrap();
    let mut after = dump(engine.as_ref());
    // The account-id counter moved on; everything else is as before.
    let meta = |d: &mut Vec<(Cf, Vec<KeyValue>)>| d.retain(|(cf, _)| *cf != Cf::Meta);
    let mut before = before_alice;
    meta(&mut before);
    meta(&mut after);
    assert_eq!(after, before);
    // Its bodies went from the blob store after the metadata commit.
    assert!(mail.blob_store().keys(&everything, 10).unwrap().is_empty());
    assert_eq!(mail.resolve_address("al@example.org").unwrap(), None);
    assert!(matches!(
        mail.account(id),
        Err(MailError::AccountNotFound { .. })
    ));
    assert_eq!(mail.list_accounts().unwrap().len(), 1);
    assert!(mail.account(bob).is_ok());
    // The address is free again and the new account gets a new id.
    assert_ne!(alice(&mail), id);
}

fn append_many_spans_accounts_all_or_nothing(fx: &Fixture) {
    let (engine, mail) = fx.faulty();
    let a = alice(&mail);
    let b = mail.add_account("bob@example.org", None, &[]).unwrap().id;
    let (ia, ib) = (inbox(&mail, a), inbox(&mail, b));
    let writes = engine.writes.load(Ordering::SeqCst);
    let stored = mail
        .append_many(vec![
            (a, ia, msg(b"copy a")),
            (b, ib, msg(b"copy b")),
            (a, ia, msg(b"copy a")),
        ])
        .unwrap();
    assert_eq!(engine.writes.load(Ordering::SeqCst), writes + 1);
    let uids: Vec<u32> = stored.iter().map(|m| m.uid.get()).collect();
    assert_eq!(uids, [1, 1, 2]);
    // Two messages with the same bytes share one blob where the blob store
    // is private to this process; either way the second outlives the first.
    assert_eq!(stored[0].blob == stored[2].blob, fx.db.is_none());
    mail.expunge(a, ia, &[Uid::FIRST]).unwrap();
    assert_eq!(
        mail.get_blob(a, stored[2].blob).unwrap().unwrap(),
        b"copy a"
    );

    mail.set_quota(b, Some(10)).unwrap();
    let before = dump(engine.as_ref());
    let err = mail
        .append_many(vec![
            (a, ia, msg(b"fits")),
            (b, ib, msg(b"too large for bob")),
        ])
        .unwrap_err();
    assert!(matches!(err, MailError::QuotaExceeded { .. }));
    assert_eq!(dump(engine.as_ref()), before);
}
