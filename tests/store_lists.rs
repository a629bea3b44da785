//! Mailing lists in the store, and secrets at rest against a real RocksDB
//! in a temporary directory: list membership and keys, the list private
//! key never in clear in any file, the master key file's mode.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use sealmail::store::{EnginePair, MailError, MailStore, MasterKey, RocksStore, SecretBytes};

#[path = "support/secrets.rs"]
mod secrets;
use secrets::fake_pem;

#[test]
fn lists_members_and_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mail = MailStore::open(dir.path()).unwrap();
    mail.add_account("alice@example.org", None, &[]).unwrap();
    assert!(matches!(
        mail.create_list("alice@example.org", "o@example.org", &[]),
        Err(MailError::AddressTaken { .. })
    ));
    mail.create_list(
        "l@example.org",
        "owner@example.org",
        &["B@example.org".into()],
    )
    .unwrap();
    mail.add_list_member("l@example.org", "a@example.org")
        .unwrap();
    mail.add_list_member("l@example.org", "a@example.org")
        .unwrap();
    assert_eq!(
        mail.list_members("l@example.org").unwrap(),
        ["a@example.org", "b@example.org"]
    );
    mail.remove_list_member("l@example.org", "b@example.org")
        .unwrap();
    assert_eq!(
        mail.list_members("l@example.org").unwrap(),
        ["a@example.org"]
    );
    let pem = SecretBytes::new(fake_pem());
    let info = mail
        .add_list_key("l@example.org", b"cert one", &pem)
        .unwrap();
    assert!(matches!(
        mail.add_list_key("l@example.org", b"cert one", &pem),
        Err(MailError::DuplicateListKey { .. })
    ));
    mail.add_list_key("l@example.org", b"cert two", &pem)
        .unwrap();
    assert_eq!(mail.list_keys("l@example.org").unwrap().len(), 2);
    assert!(!format!("{:?}", mail.list_keys("l@example.org").unwrap()).contains("PRIVATE"));
    mail.remove_list_key("l@example.org", info.fingerprint)
        .unwrap();
    assert_eq!(mail.list_key_infos("l@example.org").unwrap().len(), 1);
    mail.remove_list("l@example.org").unwrap();
    assert!(matches!(
        mail.list_members("l@example.org"),
        Err(MailError::ListNotFound { .. })
    ));
    assert_eq!(mail.resolve_address("l@example.org").unwrap(), None);
}

#[test]
fn list_private_key_is_not_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let pem = fake_pem();
    let body = pem_body_line(&pem);
    let (rocks, blobs) = RocksStore::open_pair(dir.path()).unwrap();
    let key = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
    let mail = MailStore::new(EnginePair::new(rocks.clone(), blobs.clone()), key);
    mail.create_list("l@example.org", "o@example.org", &[])
        .unwrap();
    // Positive control: the certificate is stored in clear, so the scan
    // below must find it; otherwise it proves nothing.
    let cert_marker = b"list-cert-der-marker-7f3a9c1e55".to_vec();
    mail.add_list_key(
        "l@example.org",
        &cert_marker,
        &SecretBytes::new(pem.clone()),
    )
    .unwrap();
    rocks.flush().unwrap();
    let mut files = 0;
    let mut marker_seen = false;
    for entry in walk(rocks.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        marker_seen |= bytes.windows(cert_marker.len()).any(|w| w == cert_marker);
        assert!(
            !bytes.windows(body.len()).any(|w| w == body),
            "private key in clear in {}",
            entry.display()
        );
    }
    assert!(
        files > 3,
        "expected SST, WAL and manifest files, found {files}"
    );
    assert!(marker_seen, "the scan did not see the stored certificate");
    assert_eq!(
        mail.list_keys("l@example.org").unwrap()[0]
            .private_key_pem
            .expose(),
        pem
    );
    // A different master key cannot open it.
    let other = MailStore::new(
        EnginePair::new(rocks, blobs),
        MasterKey::from_bytes([0; 32]),
    );
    assert!(matches!(
        other.list_keys("l@example.org"),
        Err(MailError::ListKeyUnreadable { .. })
    ));
}

#[test]
fn master_key_is_created_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    drop(MailStore::open(dir.path()).unwrap());
    let meta = std::fs::metadata(dir.path().join("master.key")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
}

/// One full base64 line from the middle of the PEM body.
fn pem_body_line(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    text.lines().nth(3).unwrap().as_bytes().to_vec()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
