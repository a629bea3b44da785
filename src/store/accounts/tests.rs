//! Every way a login can fail costs the same work as a wrong password.

use crate::store::EnginePair;
use std::cell::Cell;

use crate::store::{MailStore, MasterKey, RocksStore};

thread_local! {
    /// argon2id verifications run on this thread (tests run one per thread).
    pub(super) static VERIFICATIONS: Cell<u32> = const { Cell::new(0) };
}

fn open() -> (tempfile::TempDir, MailStore) {
    let dir = tempfile::tempdir().unwrap();
    let (engine, blobs) = RocksStore::open_pair(dir.path()).unwrap();
    (
        dir,
        MailStore::new(
            EnginePair::new(engine, blobs),
            MasterKey::from_bytes([1; 32]),
        ),
    )
}

/// argon2id verifications `f` runs.
fn verifications(f: impl FnOnce()) -> u32 {
    let before = VERIFICATIONS.with(Cell::get);
    f();
    VERIFICATIONS.with(Cell::get) - before
}

#[test]
fn every_failed_login_runs_exactly_one_password_verification() {
    let (_dir, store) = open();
    store
        .add_account(
            "alice@example.org",
            Some("right"),
            &["al@example.org".into()],
        )
        .unwrap();
    store.add_account("nopass@example.org", None, &[]).unwrap();
    store
        .create_list("list@example.org", "alice@example.org", &[])
        .unwrap();
    // The dummy hash is made on first use; make it outside the count.
    store.check_login("warm@example.org", "x").unwrap();
    for (user, password) in [
        ("alice@example.org", "wrong"),
        ("al@example.org", "wrong"),
        ("nobody@example.org", "wrong"),
        ("nopass@example.org", ""),
        ("list@example.org", "right"),
        ("not an address", "wrong"),
        ("", ""),
    ] {
        let n = verifications(|| {
            assert!(
                store.check_login(user, password).unwrap().is_none(),
                "{user}"
            );
        });
        assert_eq!(n, 1, "{user:?} ran {n} verifications");
    }
    let n = verifications(|| {
        let ok = store.check_login("alice@example.org", "right").unwrap();
        assert_eq!(ok.unwrap().address, "alice@example.org");
    });
    assert_eq!(n, 1, "a success costs the same");
}
