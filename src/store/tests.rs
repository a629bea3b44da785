//! Mail-layer atomicity against the real engine: a failure injected
//! inside RocksDB's batch, after each possible number of operations,
//! leaves the store exactly as it was. Also the migration primitives
//! (import markers, content replacement) that rely on it.

use crate::store::EnginePair;
use std::sync::Arc;

use super::test_fixtures::{cert, message};
use super::*;

fn open() -> (tempfile::TempDir, Arc<RocksStore>, MailStore) {
    let dir = tempfile::tempdir().unwrap();
    let (rocks, blobs) = RocksStore::open_pair(dir.path()).unwrap();
    let engine: Arc<dyn Store> = rocks.clone();
    let mail = MailStore::new(
        EnginePair::new(engine, blobs),
        MasterKey::from_bytes([1; 32]),
    );
    (dir, rocks, mail)
}

/// Every metadata column family. Not `blobs`: the bodies of a change are
/// put before its metadata commits, so a failed commit leaves orphans
/// there (see the crash rule in `blobs`), which collection removes.
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

/// Runs `op` with a failure injected after 0, 1, 2, ... batch operations
/// until it succeeds; every failed attempt must leave the store unchanged.
fn fails_cleanly_at_every_point<T: std::fmt::Debug>(
    rocks: &RocksStore,
    mut op: impl FnMut() -> Result<T, MailError>,
) -> T {
    for k in 0.. {
        let before = dump(rocks);
        rocks.fail_next_write_after(k);
        match op() {
            Ok(v) => {
                rocks.disarm_failure();
                return v;
            }
            Err(MailError::Store(StoreError::Engine { .. })) => {
                assert_eq!(dump(rocks), before, "half-done after {k} ops");
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    unreachable!()
}

#[test]
fn append_is_all_or_nothing() {
    let (_dir, rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let stored = fails_cleanly_at_every_point(&rocks, || {
        mail.append(acct.id, inbox.id, message(b"Subject: x\r\n\r\nbody"))
    });
    // No UID was consumed by the failed attempts.
    assert_eq!(stored.uid, Uid::FIRST);
    assert_eq!(
        mail.get_blob(acct.id, stored.blob).unwrap().unwrap(),
        b"Subject: x\r\n\r\nbody"
    );
}

#[test]
fn cert_add_and_move_are_all_or_nothing() {
    let (_dir, rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    fails_cleanly_at_every_point(&rocks, || {
        mail.add_certificate(acct.id, cert(1, "a@example.org"))
    });
    assert_eq!(mail.list_certificates(acct.id).unwrap().len(), 1);
    assert_eq!(mail.audit_events(acct.id, 10).unwrap().len(), 1);

    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let trash = mail.mailbox_by_name(acct.id, "Trash").unwrap();
    let m = mail.append(acct.id, inbox.id, message(b"m")).unwrap();
    let pairs = fails_cleanly_at_every_point(&rocks, || {
        mail.move_messages(acct.id, inbox.id, &[m.uid], trash.id)
    });
    assert_eq!(pairs, vec![(Uid::FIRST, Uid::FIRST)]);
    assert!(mail
        .list_messages(acct.id, inbox.id, None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn expunge_of_last_copy_is_all_or_nothing() {
    let (_dir, rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let m = mail.append(acct.id, inbox.id, message(b"m")).unwrap();
    let gone = fails_cleanly_at_every_point(&rocks, || mail.expunge(acct.id, inbox.id, &[m.uid]));
    assert_eq!(gone, vec![m.uid]);
    assert_eq!(mail.get_blob(acct.id, m.blob).unwrap(), None);
}

#[test]
fn import_marker_is_written_with_the_message_and_only_once() {
    let (_dir, rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let source = BlobHash::of(b"as read from the maildir");
    let stored = fails_cleanly_at_every_point(&rocks, || {
        mail.append_imported(acct.id, inbox.id, source, message(b"sealed form"))
    })
    .expect("first import stores");
    assert!(mail.is_imported(acct.id, source).unwrap());
    let again = mail
        .append_imported(acct.id, inbox.id, source, message(b"sealed form"))
        .unwrap();
    assert_eq!(
        again, None,
        "a second import of the same source stores nothing"
    );
    // An expunged import is not brought back by importing the source again.
    mail.expunge(acct.id, inbox.id, &[stored.uid]).unwrap();
    let after = mail
        .append_imported(acct.id, inbox.id, source, message(b"sealed form"))
        .unwrap();
    assert_eq!(after, None);
    assert!(mail
        .list_messages(acct.id, inbox.id, None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn removing_an_account_removes_its_import_markers() {
    let (_dir, rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let source = BlobHash::of(b"m");
    mail.append_imported(acct.id, inbox.id, source, message(b"m"))
        .unwrap();
    mail.remove_account(acct.id).unwrap();
    let all = KeyRange::prefix(&[]);
    assert!(rocks
        .scan(Cf::Imports, &all, Order::Forward, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn replace_content_is_all_or_nothing_and_keeps_uid_flags_date() {
    let (_dir, rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let mut plain = message(b"Subject: s\r\n\r\nplaintext");
    plain.flags.seen = true;
    let old = mail.append(acct.id, inbox.id, plain).unwrap();
    let sealed = b"Subject: s\r\nContent-Type: application/pkcs7-mime\r\n\r\nMIIB-longer".to_vec();
    let new = fails_cleanly_at_every_point(&rocks, || {
        mail.replace_content(acct.id, inbox.id, old.uid, old.blob, &sealed, true)
    });
    assert_eq!(
        (new.uid, new.mailbox, &new.flags),
        (old.uid, old.mailbox, &old.flags)
    );
    assert_eq!(new.internal_date, old.internal_date);
    assert!(new.encrypted && new.modseq > old.modseq);
    assert_eq!(mail.get_message(acct.id, inbox.id, old.uid).unwrap(), new);
    assert_eq!(
        mail.get_blob(acct.id, old.blob).unwrap(),
        None,
        "plaintext blob gone"
    );
    assert_eq!(
        mail.get_blob(acct.id, new.blob).unwrap(),
        Some(sealed.clone())
    );
    let used = mail.account(acct.id).unwrap().used_bytes;
    assert_eq!(used, u64::try_from(sealed.len()).unwrap());
    let last = mail.changes_since(acct.id, old.modseq, 10).unwrap();
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].kind, ChangeKind::Updated);
}

#[test]
fn replace_content_refuses_a_changed_message_and_keeps_shared_blobs() {
    let (_dir, _rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let archive = mail.mailbox_by_name(acct.id, "Archive").unwrap();
    let m = mail.append(acct.id, inbox.id, message(b"shared")).unwrap();
    mail.copy_messages(acct.id, inbox.id, &[m.uid], archive.id)
        .unwrap();
    let wrong = BlobHash::of(b"something else");
    assert!(matches!(
        mail.replace_content(acct.id, inbox.id, m.uid, wrong, b"x", true),
        Err(MailError::ContentChanged { .. })
    ));
    mail.replace_content(acct.id, inbox.id, m.uid, m.blob, b"sealed", true)
        .unwrap();
    assert_eq!(
        mail.get_blob(acct.id, m.blob).unwrap().as_deref(),
        Some(&b"shared"[..]),
        "the copy in Archive still needs the old blob"
    );
    mail.replace_content(acct.id, archive.id, Uid::FIRST, m.blob, b"sealed2", true)
        .unwrap();
    assert_eq!(mail.get_blob(acct.id, m.blob).unwrap(), None);
}

#[test]
fn compact_keeps_live_data() {
    let (_dir, _rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let big = vec![b'x'; 10_000];
    let m = mail.append(acct.id, inbox.id, message(&big)).unwrap();
    mail.compact().unwrap();
    assert_eq!(mail.get_blob(acct.id, m.blob).unwrap(), Some(big));
}

#[test]
fn prefix_range_bounds() {
    let r = KeyRange::prefix(&[1, 0xff]);
    assert_eq!(r.end, Some(vec![2]));
    assert!(r.contains(&[1, 0xff, 0]));
    assert!(!r.contains(&[2]));
    assert_eq!(KeyRange::prefix(&[0xff, 0xff]).end, None);
    assert_eq!(KeyRange::prefix(&[]).end, None);
}

#[test]
fn cf_names_are_unique() {
    let mut names: Vec<_> = Cf::ALL.iter().map(|c| c.name()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Cf::ALL.len());
}

#[test]
fn equal_messages_share_a_blob_and_unique_copies_do_not() {
    let (_dir, _rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    let inbox = mail.mailbox_by_name(acct.id, "INBOX").unwrap();
    let raw = b"Subject: same\r\n\r\nbody";
    let a = mail.append(acct.id, inbox.id, message(raw)).unwrap();
    let b = mail.append(acct.id, inbox.id, message(raw)).unwrap();
    assert_eq!(a.blob, b.blob, "content address");
    assert_eq!(a.blob, BlobHash::of(raw));

    let sealed = NewMessage {
        unique: true,
        ..message(raw)
    };
    let c = mail.append(acct.id, inbox.id, sealed.clone()).unwrap();
    let d = mail.append(acct.id, inbox.id, sealed).unwrap();
    assert_ne!(c.blob, d.blob);
    assert_ne!(c.blob, a.blob);
    // Each unique copy is its own blob: expunging one keeps the other.
    mail.expunge(acct.id, inbox.id, &[c.uid]).unwrap();
    assert_eq!(mail.get_blob(acct.id, c.blob).unwrap(), None);
    assert_eq!(mail.get_blob(acct.id, d.blob).unwrap().unwrap(), raw);
    assert_eq!(mail.get_blob(acct.id, a.blob).unwrap().unwrap(), raw);
}

#[test]
fn settings_written_before_appends_were_encrypted_by_default_are_upgraded() {
    let (_dir, rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    assert!(mail.encryption_settings(acct.id).unwrap().encrypt_on_append);
    // A version-1 record (enabled, AES-128-CBC, encrypt_on_append false),
    // laid out as sealmail wrote it: version byte, then postcard fields.
    let mut batch = Batch::new();
    batch.put(
        Cf::Settings,
        keys::Key::Settings(acct.id).encode(),
        vec![1, 1, 1, 0],
    );
    rocks.write(batch).unwrap();
    let settings = mail.encryption_settings(acct.id).unwrap();
    assert!(settings.enabled);
    assert_eq!(settings.algorithm, Cipher::Aes128Cbc);
    assert!(
        settings.encrypt_on_append,
        "the old default is read as the new one"
    );
    // An explicit opt-out is written as version 2 and kept.
    let clear = EncryptionSettings {
        encrypt_on_append: false,
        ..settings
    };
    mail.add_certificate(acct.id, cert(1, "a@example.org"))
        .unwrap();
    mail.set_encryption_settings(acct.id, clear).unwrap();
    assert_eq!(mail.encryption_settings(acct.id).unwrap(), clear);
}

#[test]
fn settings_written_before_the_key_transport_choice_read_as_pkcs1() {
    let (_dir, rocks, mail) = open();
    let acct = mail.add_account("a@example.org", None, &[]).unwrap();
    // A version-2 record (enabled, AES-128-CBC, appends in clear) as
    // sealmail wrote it: version byte, then postcard fields.
    let mut batch = Batch::new();
    batch.put(
        Cf::Settings,
        keys::Key::Settings(acct.id).encode(),
        vec![2, 1, 1, 0],
    );
    rocks.write(batch).unwrap();
    let settings = mail.encryption_settings(acct.id).unwrap();
    assert!(settings.enabled && !settings.encrypt_on_append);
    assert_eq!(settings.algorithm, Cipher::Aes128Cbc);
    assert_eq!(settings.key_transport, KeyTransport::RsaPkcs1v15);
    // OAEP with GCM is written as version 3 and read back.
    let oaep = EncryptionSettings {
        algorithm: Cipher::Aes256Gcm,
        key_transport: KeyTransport::RsaOaep,
        ..settings
    };
    mail.add_certificate(acct.id, cert(1, "a@example.org"))
        .unwrap();
    mail.set_encryption_settings(acct.id, oaep).unwrap();
    assert_eq!(mail.encryption_settings(acct.id).unwrap(), oaep);
    let stored = rocks
        .get(Cf::Settings, &keys::Key::Settings(acct.id).encode())
        .unwrap()
        .unwrap();
    assert_eq!(stored.first(), Some(&3));
}
