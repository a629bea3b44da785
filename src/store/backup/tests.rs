use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::store::test_fixtures::message;
use crate::store::{AccountId, MailStore, MailboxId};

/// Bodies on both sides of the segment threshold (16 KiB).
fn bodies() -> Vec<Vec<u8>> {
    (0..6u8)
        .map(|i| {
            let size = if i.is_multiple_of(2) { 500 } else { 40_000 };
            let mut raw = format!("Subject: m{i}\r\n\r\n").into_bytes();
            raw.resize(size, b'a' + i);
            raw
        })
        .collect()
}

fn store_with_mail(dir: &Path) -> (MailStore, AccountId, MailboxId) {
    let mail = MailStore::open(dir).unwrap();
    let alice = mail
        .add_account("alice@example.org", Some("pw"), &[])
        .unwrap();
    let inbox = mail.mailbox_by_name(alice.id, "INBOX").unwrap();
    for raw in bodies() {
        mail.append(alice.id, inbox.id, message(&raw)).unwrap();
    }
    (mail, alice.id, inbox.id)
}

/// The bodies of `email`'s INBOX in the store of `data_dir`.
fn inbox_of(data_dir: &Path) -> Vec<Vec<u8>> {
    let mail = MailStore::open(data_dir).unwrap();
    let alice = mail
        .check_login("alice@example.org", "pw")
        .unwrap()
        .unwrap();
    let inbox = mail.mailbox_by_name(alice.id, "INBOX").unwrap();
    mail.list_messages(alice.id, inbox.id, None, 100)
        .unwrap()
        .iter()
        .map(|m| mail.get_blob(alice.id, m.blob).unwrap().unwrap())
        .collect()
}

#[test]
fn a_backup_restores_into_a_fresh_data_directory() {
    let live = tempfile::tempdir().unwrap();
    let (mail, alice, inbox) = store_with_mail(live.path());
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("backup");
    let manifest = mail.backup(&dir).unwrap();
    assert!(manifest
        .files
        .iter()
        .any(|f| f.path.starts_with("segments/")));
    assert!(manifest.files.iter().any(|f| f.path == "db/CURRENT"));
    assert!(!dir.join(".partial").exists());
    assert!(!live.path().join("backup-checkpoint").exists());

    // Mail after the cut is not in the backup.
    mail.append(alice, inbox, message(b"Subject: later\r\n\r\nlater\r\n"))
        .unwrap();
    assert_eq!(verify(&dir).unwrap(), manifest);
    let restored = tempfile::tempdir().unwrap();
    let report = restore(&dir, restored.path(), false).unwrap();
    assert!(report.moved_aside.is_none());
    assert_eq!(inbox_of(restored.path()), bodies());
}

#[test]
fn the_master_key_stays_out() {
    let live = tempfile::tempdir().unwrap();
    let (mail, _, _) = store_with_mail(live.path());
    let key = std::fs::read(live.path().join("master.key")).unwrap();
    let out = tempfile::tempdir().unwrap();
    let manifest = mail.backup(out.path()).unwrap();
    assert!(manifest.files.iter().all(|f| !f.path.contains("master")));
    for file in &manifest.files {
        let bytes = std::fs::read(out.path().join(&file.path)).unwrap();
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_slice()),
            "{} holds the master key",
            file.path
        );
    }
}

#[test]
fn refuses_a_directory_that_is_not_empty_or_not_absolute() {
    let live = tempfile::tempdir().unwrap();
    let (mail, _, _) = store_with_mail(live.path());
    let out = tempfile::tempdir().unwrap();
    std::fs::write(out.path().join("old"), b"x").unwrap();
    assert!(matches!(
        mail.backup(out.path()),
        Err(BackupError::NotEmpty { .. })
    ));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 1);
    assert!(matches!(
        mail.backup(Path::new("relative/dir")),
        Err(BackupError::NotAbsolute { .. })
    ));
    // A backup after the refusals works: nothing was left held.
    let fresh = tempfile::tempdir().unwrap();
    mail.backup(fresh.path()).unwrap();
}

#[test]
fn a_changed_file_is_named_and_nothing_is_restored() {
    let live = tempfile::tempdir().unwrap();
    let (mail, _, _) = store_with_mail(live.path());
    let out = tempfile::tempdir().unwrap();
    let manifest = mail.backup(out.path()).unwrap();
    let victim = manifest
        .files
        .iter()
        .find(|f| f.path.starts_with("segments/"))
        .unwrap();
    let path = out.path().join(&victim.path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let err = verify(out.path()).unwrap_err().to_string();
    assert!(err.contains(&victim.path), "{err}");
    let target = tempfile::tempdir().unwrap();
    let err = restore(out.path(), target.path(), false).unwrap_err();
    assert!(matches!(err, BackupError::Mismatch { .. }), "{err}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
}

#[test]
fn a_directory_without_manifest_is_not_a_backup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    let err = verify(dir.path()).unwrap_err();
    assert!(matches!(err, BackupError::NoManifest { .. }), "{err}");
}

#[test]
fn a_link_in_the_backup_is_not_followed() {
    let live = tempfile::tempdir().unwrap();
    let (mail, _, _) = store_with_mail(live.path());
    let out = tempfile::tempdir().unwrap();
    mail.backup(out.path()).unwrap();
    let moved = out.path().join("segments-real");
    std::fs::rename(out.path().join("segments"), &moved).unwrap();
    std::os::unix::fs::symlink(&moved, out.path().join("segments")).unwrap();
    let err = verify(out.path()).unwrap_err().to_string();
    assert!(err.contains("symbolic link"), "{err}");
}

#[test]
fn an_occupied_data_directory_is_refused_unless_replaced() {
    let live = tempfile::tempdir().unwrap();
    let (mail, _, _) = store_with_mail(live.path());
    let out = tempfile::tempdir().unwrap();
    mail.backup(out.path()).unwrap();
    drop(mail);

    let other = tempfile::tempdir().unwrap();
    let (other_mail, _, _) = store_with_mail(other.path());
    other_mail
        .add_account("bob@example.org", None, &[])
        .unwrap();
    drop(other_mail);
    let err = restore(out.path(), other.path(), false).unwrap_err();
    assert!(matches!(err, BackupError::DataDirInUse { .. }), "{err}");

    let report = restore(out.path(), other.path(), true).unwrap();
    let aside = report.moved_aside.unwrap();
    assert!(aside.join("db").is_dir() && aside.join("segments").is_dir());
    let back = MailStore::open(other.path()).unwrap();
    assert!(back.account_by_address("bob@example.org").is_err());
    drop(back);
    assert_eq!(inbox_of(other.path()), bodies());
}

#[test]
fn a_second_backup_at_once_is_refused() {
    let live = tempfile::tempdir().unwrap();
    let (mail, _, _) = store_with_mail(live.path());
    let local = mail.local.as_ref().unwrap();
    let _running = local.running.lock().unwrap();
    let out = tempfile::tempdir().unwrap();
    assert!(matches!(mail.backup(out.path()), Err(BackupError::Busy)));
}

#[test]
fn postgres_and_other_engines_say_how_to_back_up() {
    let dir = tempfile::tempdir().unwrap();
    let (db, blobs) = crate::store::RocksStore::open_pair(dir.path()).unwrap();
    let pair = crate::store::EnginePair::new(db as Arc<_>, blobs as Arc<_>);
    let mail = MailStore::new(pair, crate::store::MasterKey::from_bytes([3; 32]));
    let err = mail.backup(dir.path()).unwrap_err();
    assert!(err.to_string().contains("pg_dump"), "{err}");
}

#[test]
fn the_checkpoint_of_an_interrupted_backup_goes_at_the_next_open() {
    let live = tempfile::tempdir().unwrap();
    drop(store_with_mail(live.path()));
    let leftover = live.path().join("backup-checkpoint");
    std::fs::create_dir(&leftover).unwrap();
    std::fs::write(leftover.join("000009.sst"), b"old").unwrap();
    let _mail = MailStore::open(live.path()).unwrap();
    assert!(!leftover.exists());
}
