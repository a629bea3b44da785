//! The delivery views a node keeps of recent recipients (the account's
//! address, INBOX, encryption settings and active certificates): reused
//! while nothing they hold changed, read again at once when a certificate
//! or the settings change — on the node that made the change and, on
//! PostgreSQL, on another node. A stale view would encrypt for a removed
//! certificate or store plaintext for an account that just opted in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use sealmail::certs::Fingerprint;
use sealmail::store::{AccountId, EncryptionSettings, MailError, MailStore};

#[path = "support/postgres.rs"]
mod postgres;

#[path = "store/fixture.rs"]
#[allow(dead_code)]
mod fixture;
use fixture::{cert, msg, Engine, Fixture};

fn fingerprints(mail: &MailStore, id: AccountId) -> Vec<Fingerprint> {
    let view = mail.delivery_view(id).unwrap();
    view.certificates.iter().map(|c| c.fingerprint).collect()
}

fn enabled() -> EncryptionSettings {
    EncryptionSettings {
        enabled: true,
        ..EncryptionSettings::default()
    }
}

/// One node: deliveries reuse the view; every change of what it holds
/// is seen by the next delivery.
fn reused_until_what_it_holds_changes(fx: &Fixture) {
    let mail = fx.open();
    let id = mail.add_account("Carol@example.org", None, &[]).unwrap().id;
    let first = mail.delivery_view(id).unwrap();
    assert_eq!(first.address, "carol@example.org");
    assert!(first.certificates.is_empty());
    assert!(!first.settings.enabled);
    let inbox = mail.mailbox_by_name(id, "INBOX").unwrap().id;
    assert_eq!(first.inbox, inbox);

    // Deliveries change the account's records, not the view's.
    for _ in 0..3 {
        mail.append(id, inbox, msg(b"Subject: hi\r\n\r\nbody\r\n"))
            .unwrap();
    }
    let again = mail.delivery_view(id).unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "the view was read again although only messages changed"
    );

    let a = mail.add_certificate(id, cert(1)).unwrap().fingerprint;
    assert_eq!(fingerprints(&mail, id), vec![a]);
    mail.set_encryption_settings(id, enabled()).unwrap();
    assert!(mail.delivery_view(id).unwrap().settings.enabled);

    // Rotation: a second key, then the first deactivated and removed.
    let b = mail.add_certificate(id, cert(2)).unwrap().fingerprint;
    let mut both = vec![a, b];
    both.sort();
    assert_eq!(fingerprints(&mail, id), both);
    mail.set_certificate_active(id, a, false).unwrap();
    assert_eq!(fingerprints(&mail, id), vec![b]);
    mail.remove_certificate(id, a).unwrap();
    assert_eq!(fingerprints(&mail, id), vec![b]);

    mail.set_encryption_settings(id, EncryptionSettings::default())
        .unwrap();
    assert!(!mail.delivery_view(id).unwrap().settings.enabled);

    mail.remove_account(id).unwrap();
    assert!(matches!(
        mail.delivery_view(id),
        Err(MailError::AccountNotFound { .. })
    ));
}

/// Several at once: one error per unreadable account, the others served.
fn many_with_a_missing_account(fx: &Fixture) {
    let mail = fx.open();
    let a = mail.add_account("a@example.org", None, &[]).unwrap().id;
    let b = mail.add_account("b@example.org", None, &[]).unwrap().id;
    mail.remove_account(b).unwrap();
    let views = mail.delivery_views(&[a, b, a]).unwrap();
    assert_eq!(views.len(), 3);
    assert_eq!(views[0].as_ref().unwrap().address, "a@example.org");
    assert!(matches!(views[1], Err(MailError::AccountNotFound { .. })));
    assert_eq!(views[2].as_ref().unwrap().address, "a@example.org");
    assert_eq!(
        mail.resolve_accounts(&[
            "A@Example.org".into(),
            "b@example.org".into(),
            "not an address".into(),
            "<a@example.org>".into(),
        ])
        .unwrap(),
        vec![Some(a), None, None, Some(a)]
    );
}

mod rocksdb {
    #[test]
    fn reused_until_what_it_holds_changes() {
        super::reused_until_what_it_holds_changes(&super::Fixture::new(super::Engine::Rocks));
    }

    #[test]
    fn many_with_a_missing_account() {
        super::many_with_a_missing_account(&super::Fixture::new(super::Engine::Rocks));
    }
}

mod pg {
    use super::*;

    #[test]
    fn reused_until_what_it_holds_changes() {
        super::reused_until_what_it_holds_changes(&Fixture::new(Engine::Postgres));
    }

    #[test]
    fn many_with_a_missing_account() {
        super::many_with_a_missing_account(&Fixture::new(Engine::Postgres));
    }

    /// Two nodes on one database: a certificate added or deactivated,
    /// and encryption turned on, through node A reach node B's next
    /// delivery although B holds a view of the account.
    #[test]
    fn a_change_on_one_node_reaches_the_other() {
        let fx = Fixture::new(Engine::Postgres);
        let a = fx.open();
        let b = fx.open();
        let id = a.add_account("carol@example.org", None, &[]).unwrap().id;
        let before = b.delivery_view(id).unwrap();
        assert!(before.certificates.is_empty());
        assert!(Arc::ptr_eq(&before, &b.delivery_view(id).unwrap()));

        let first = a.add_certificate(id, cert(1)).unwrap().fingerprint;
        a.set_encryption_settings(id, enabled()).unwrap();
        let seen = b.delivery_view(id).unwrap();
        assert!(seen.settings.enabled, "node B missed encryption turned on");
        assert_eq!(fingerprints(&b, id), vec![first]);

        let second = a.add_certificate(id, cert(2)).unwrap().fingerprint;
        a.set_certificate_active(id, first, false).unwrap();
        assert_eq!(fingerprints(&b, id), vec![second]);
    }
}
