//! A real mail store (RocksDB in a temporary directory) with the ingest
//! pipeline on top, for tests that deliver without a network.

use std::sync::Arc;

use sealmail::ingest::{DeliverError, Delivered, Envelope, HookChain, Ingest};
use sealmail::manage;
use sealmail::notify::Notifier;
use sealmail::store::{AccountId, BlobHash, MailStore};

use super::pki::KeyPair;

pub struct TestStore {
    pub ingest: Ingest,
    pub store: Arc<MailStore>,
    _dir: tempfile::TempDir,
}

impl TestStore {
    /// A store whose hook chain is `chain` (normally `["encrypt-at-rest"]`).
    pub fn with_chain(chain: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MailStore::open(dir.path()).unwrap());
        let names: Vec<String> = chain.iter().map(|s| s.to_string()).collect();
        let ingest = Ingest::new(
            Arc::clone(&store),
            HookChain::from_names(&names).unwrap(),
            Arc::new(Notifier::new()),
        );
        Self {
            ingest,
            store,
            _dir: dir,
        }
    }

    pub fn new() -> Self {
        Self::with_chain(&["encrypt-at-rest"])
    }

    /// A store whose list notices use `template`.
    pub fn with_notice_template(template: &str) -> Self {
        let t = Self::new();
        let ingest = Ingest::new(
            Arc::clone(&t.store),
            HookChain::from_names(&["encrypt-at-rest".to_string()]).unwrap(),
            Arc::new(Notifier::new()),
        )
        .with_notice_template(template.to_string());
        Self { ingest, ..t }
    }

    /// An account with the given certificates; encryption on if `encrypt`.
    pub fn account(&self, email: &str, certs: &[&KeyPair], encrypt: bool) -> AccountId {
        let account = self.store.add_account(email, None, &[]).unwrap();
        for k in certs {
            manage::add_certificates(&self.store, &account, &k.cert_pem(), "test").unwrap();
        }
        if encrypt {
            manage::update_encryption(&self.store, &account, Some(true), None, None).unwrap();
        }
        account.id
    }

    /// Delivers `data` from sender@example.net to `rcpts`.
    pub fn deliver(&self, rcpts: &[&str], data: &[u8]) -> Vec<Result<Delivered, DeliverError>> {
        let envelope = Envelope {
            mail_from: "sender@example.net".into(),
            lhlo: "mx.example.net".into(),
        };
        let rcpts: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(
            self.ingest
                .deliver(&envelope, &rcpts, Arc::new(data.to_vec())),
        )
    }

    /// Every stored message in the account's INBOX, as stored.
    pub fn inbox(&self, id: AccountId) -> Vec<Vec<u8>> {
        self.inbox_blobs(id)
            .into_iter()
            .map(|(_, raw)| raw)
            .collect()
    }

    /// Every stored message in the account's INBOX with its blob key.
    pub fn inbox_blobs(&self, id: AccountId) -> Vec<(BlobHash, Vec<u8>)> {
        let inbox = self.store.mailbox_by_name(id, "INBOX").unwrap();
        self.store
            .list_messages(id, inbox.id, None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|m| (m.blob, self.store.get_blob(id, m.blob).unwrap().unwrap()))
            .collect()
    }
}
