//! Mail-layer atomicity against the real engine: a failure injected
//! inside RocksDB's batch, after each possible number of operations,
//! leaves the store exactly as it was.

use std::sync::Arc;

use super::*;
use crate::certs::Fingerprint;

fn open() -> (tempfile::TempDir, Arc<RocksStore>, MailStore) {
    let dir = tempfile::tempdir().unwrap();
    let rocks = Arc::new(RocksStore::open(dir.path()).unwrap());
    let engine: Arc<dyn Store> = rocks.clone();
    let mail = MailStore::new(engine, MasterKey::from_bytes([1; 32]));
    (dir, rocks, mail)
}

fn dump(store: &dyn Store) -> Vec<(Cf, Vec<KeyValue>)> {
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

fn message(raw: &[u8]) -> NewMessage<'_> {
    NewMessage {
        raw,
        flags: Flags::default(),
        internal_date: 1_700_000_000,
        headers: HeaderFields::default(),
        encrypted: false,
    }
}

fn cert(seed: u8) -> NewCertificate {
    let der = vec![seed; 300];
    NewCertificate {
        fingerprint: Fingerprint::of_der(&der),
        der,
        subject: format!("CN=test {seed}"),
        issuer: "CN=CA".into(),
        serial_number: "01".into(),
        email_addresses: vec!["a@example.org".into()],
        not_before: 0,
        not_after: 4_000_000_000,
        key_algorithm: "RSA".into(),
        key_size: Some(2048),
        description: String::new(),
        is_active: true,
    }
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
    fails_cleanly_at_every_point(&rocks, || mail.add_certificate(acct.id, cert(1)));
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
