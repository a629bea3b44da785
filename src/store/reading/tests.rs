//! Key custody: what opens a held key and what does not.

use std::sync::Arc;

use super::super::test_fixtures::cert;
use super::super::{Cf, EnginePair, MailError, MailStore, MasterKey, RocksStore, Store};
use super::*;
use crate::store::TokenId;

const DER: &[u8] = b"0\x82 pretend PKCS#8 private key material 0123456789";

fn open_with(dir: &std::path::Path, master: u8) -> (Arc<RocksStore>, MailStore) {
    let (rocks, blobs) = RocksStore::open_pair(dir).unwrap();
    let engine: Arc<dyn Store> = rocks.clone();
    let mail = MailStore::new(
        EnginePair::new(engine, blobs),
        MasterKey::from_bytes([master; 32]),
    );
    (rocks, mail)
}

/// An account `address` with password `pw` and one certificate.
fn account(s: &MailStore, address: &str, pw: &str, seed: u8) -> (AccountId, Fingerprint) {
    let a = s.add_account(address, Some(pw), &[]).unwrap();
    let c = s.add_certificate(a.id, cert(seed, address)).unwrap();
    (a.id, c.fingerprint)
}

fn secret() -> SecretBytes {
    SecretBytes::new(DER.to_vec())
}

#[test]
fn a_held_key_opens_with_the_password_and_master_key_only() {
    let dir = tempfile::tempdir().unwrap();
    let (rocks, s) = open_with(dir.path(), 1);
    let (id, fp) = account(&s, "a@example.org", "right horse", 1);
    s.add_reading_key(id, "right horse", fp, &secret()).unwrap();
    s.set_server_side_reading(id, true).unwrap();

    let opened = s
        .open_reading_keys(id, Credential::Password("right horse"))
        .unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].certificate, fp);
    assert_eq!(opened[0].pkcs8.expose(), DER);

    // The database and the master key without the password open nothing.
    assert!(s
        .open_reading_keys(id, Credential::Password("wrong horse"))
        .unwrap()
        .is_empty());
    assert!(s
        .open_reading_keys(id, Credential::Password(""))
        .unwrap()
        .is_empty());
    // Nor do the database and the password with another master key.
    drop(s);
    drop(rocks);
    let (_rocks, other) = open_with(dir.path(), 2);
    assert!(other
        .open_reading_keys(id, Credential::Password("right horse"))
        .unwrap()
        .is_empty());
}

#[test]
fn the_record_on_disk_holds_no_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let (rocks, s) = open_with(dir.path(), 1);
    let (id, fp) = account(&s, "a@example.org", "pw", 1);
    s.add_reading_key(id, "pw", fp, &secret()).unwrap();
    let stored = rocks
        .get(Cf::Settings, &Key::Reading(id).encode())
        .unwrap()
        .unwrap();
    assert!(!stored.windows(16).any(|w| DER.windows(16).any(|d| d == w)));
}

#[test]
fn a_sealed_key_does_not_open_in_another_account() {
    let dir = tempfile::tempdir().unwrap();
    let (rocks, s) = open_with(dir.path(), 1);
    let (a, fa) = account(&s, "a@example.org", "same", 1);
    let (b, fb) = account(&s, "b@example.org", "same", 2);
    s.add_reading_key(a, "same", fa, &secret()).unwrap();
    s.set_server_side_reading(a, true).unwrap();
    s.add_reading_key(b, "same", fb, &SecretBytes::new(b"b's".to_vec()))
        .unwrap();
    s.set_server_side_reading(b, true).unwrap();
    // Copy a's whole record over b's: same password, same master key.
    let a_rec = rocks
        .get(Cf::Settings, &Key::Reading(a).encode())
        .unwrap()
        .unwrap();
    let mut batch = crate::store::Batch::new();
    batch.put(Cf::Settings, Key::Reading(b).encode(), a_rec);
    rocks.write(batch).unwrap();
    assert!(s
        .open_reading_keys(b, Credential::Password("same"))
        .unwrap()
        .is_empty());
}

#[test]
fn adding_needs_the_accounts_password_and_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (_rocks, s) = open_with(dir.path(), 1);
    let (id, fp) = account(&s, "a@example.org", "pw", 1);
    let (_, other_fp) = account(&s, "b@example.org", "pw", 2);
    assert!(matches!(
        s.add_reading_key(id, "not it", fp, &secret()),
        Err(MailError::WrongPassword)
    ));
    assert!(matches!(
        s.add_reading_key(id, "pw", other_fp, &secret()),
        Err(MailError::CertificateNotFound { .. })
    ));
    assert!(matches!(
        s.set_server_side_reading(id, true),
        Err(MailError::NoReadingKey)
    ));
    s.add_reading_key(id, "pw", fp, &secret()).unwrap();
    assert!(matches!(
        s.add_reading_key(id, "pw", fp, &secret()),
        Err(MailError::DuplicateReadingKey { .. })
    ));
    assert!(s.reading_status(id).unwrap().keys.len() == 1);
}

#[test]
fn reading_stays_off_until_switched_on_and_goes_off_with_the_last_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_rocks, s) = open_with(dir.path(), 1);
    let (id, fp) = account(&s, "a@example.org", "pw", 1);
    s.add_reading_key(id, "pw", fp, &secret()).unwrap();
    assert!(!s.reading_status(id).unwrap().enabled);
    assert!(s
        .open_reading_keys(id, Credential::Password("pw"))
        .unwrap()
        .is_empty());
    s.set_server_side_reading(id, true).unwrap();
    assert!(s.reading_status(id).unwrap().enabled);
    s.remove_reading_key(id, fp).unwrap();
    let status = s.reading_status(id).unwrap();
    assert!(!status.enabled && status.keys.is_empty());
    assert!(matches!(
        s.remove_reading_key(id, fp),
        Err(MailError::ReadingKeyNotFound { .. })
    ));
}

#[test]
fn an_operator_password_reset_drops_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (_rocks, s) = open_with(dir.path(), 1);
    let (id, fp) = account(&s, "a@example.org", "old", 1);
    s.add_reading_key(id, "old", fp, &secret()).unwrap();
    s.set_server_side_reading(id, true).unwrap();
    s.set_password(id, Some("new")).unwrap();
    assert_eq!(s.reading_status(id).unwrap(), ReadingStatus::default());
    assert!(s
        .open_reading_keys(id, Credential::Password("new"))
        .unwrap()
        .is_empty());
    assert!(s
        .open_reading_keys(id, Credential::Password("old"))
        .unwrap()
        .is_empty());
    let audit = s.audit_events(id, 10).unwrap();
    assert!(audit.iter().any(|e| e.kind == AuditKind::ReadingKeyRemoved));
}

fn token(s: &MailStore, id: AccountId) -> (TokenId, String) {
    let made = s.add_app_token(id, "phone").unwrap();
    (made.token.id, made.secret)
}

#[test]
fn an_app_token_opens_its_own_copy_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_rocks, s) = open_with(dir.path(), 1);
    let (id, fp) = account(&s, "a@example.org", "pw", 1);
    s.add_reading_key(id, "pw", fp, &secret()).unwrap();
    s.set_server_side_reading(id, true).unwrap();
    let (with_copy, secret_a) = token(&s, id);
    let keys = s.open_reading_keys(id, Credential::Password("pw")).unwrap();
    s.add_token_reading_copy(id, with_copy, &secret_a, &keys)
        .unwrap();
    let (_without, secret_b) = token(&s, id);

    let opened = s
        .open_reading_keys(id, Credential::AppToken(&secret_a))
        .unwrap();
    assert_eq!(opened.len(), 1);
    assert_eq!(opened[0].pkcs8.expose(), DER);
    assert!(s
        .open_reading_keys(id, Credential::AppToken(&secret_b))
        .unwrap()
        .is_empty());
    // A forged secret naming the same token does not open it.
    let mut forged = secret_a.clone();
    forged.pop();
    forged.push(if secret_a.ends_with('A') { 'B' } else { 'A' });
    assert!(s
        .open_reading_keys(id, Credential::AppToken(&forged))
        .unwrap()
        .is_empty());
    // Nor does the token's copy open for another account.
    let (other, _) = account(&s, "b@example.org", "pw", 2);
    assert!(s
        .open_reading_keys(other, Credential::AppToken(&secret_a))
        .unwrap()
        .is_empty());
    // Revoking the token removes its copy.
    s.remove_app_token(id, with_copy).unwrap();
    assert!(s
        .open_reading_keys(id, Credential::AppToken(&secret_a))
        .unwrap()
        .is_empty());
}

#[test]
fn a_removed_key_leaves_the_token_copies_too() {
    let dir = tempfile::tempdir().unwrap();
    let (_rocks, s) = open_with(dir.path(), 1);
    let (id, fp) = account(&s, "a@example.org", "pw", 1);
    s.add_reading_key(id, "pw", fp, &secret()).unwrap();
    s.set_server_side_reading(id, true).unwrap();
    let (t, secret_t) = token(&s, id);
    let keys = s.open_reading_keys(id, Credential::Password("pw")).unwrap();
    s.add_token_reading_copy(id, t, &secret_t, &keys).unwrap();
    s.remove_reading_key(id, fp).unwrap();
    s.add_reading_key(id, "pw", fp, &secret()).unwrap();
    s.set_server_side_reading(id, true).unwrap();
    assert!(s
        .open_reading_keys(id, Credential::AppToken(&secret_t))
        .unwrap()
        .is_empty());
}
