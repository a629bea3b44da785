//! Where each test of `tests/store.rs` keeps its store (a RocksDB
//! directory, or a PostgreSQL database of its own), opened as the server
//! opens it, and an engine wrapper that fails writes on demand.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use sealmail::certs::Fingerprint;
use sealmail::config::Config;
use sealmail::store::{
    Batch, Cf, EnginePair, Expect, Flags, HeaderFields, KeyRange, KeyValue, MailStore, MasterKey,
    NewCertificate, NewMessage, Order, RocksStore, Store, StoreError,
};

use super::postgres;

/// An engine that fails its writes when armed, and counts them: proves
/// that each mail operation is exactly one batch and that a failed batch
/// leaves nothing behind. Also shows the trait is implementable outside
/// the crate.
#[derive(Debug)]
pub(crate) struct FaultyStore {
    pub(crate) inner: Arc<dyn Store>,
    pub(crate) fail: AtomicBool,
    pub(crate) writes: AtomicUsize,
}

impl Store for FaultyStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(cf, key)
    }

    fn scan(
        &self,
        cf: Cf,
        range: &KeyRange,
        order: Order,
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        self.inner.scan(cf, range, order, limit)
    }

    fn write_if(&self, expect: &[Expect], batch: Batch) -> Result<(), StoreError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Engine {
                op: "write",
                message: "injected".into(),
            });
        }
        self.inner.write_if(expect, batch)
    }
}

/// The engines every test here runs on.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Engine {
    Rocks,
    Postgres,
}

/// Where one test's store lives: a temporary directory (the RocksDB
/// database, and the master key for either engine) and, for PostgreSQL,
/// a database of its own on the test cluster.
pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    pub(crate) db: Option<postgres::TestDb>,
}

impl Fixture {
    pub(crate) fn new(engine: Engine) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            db: match engine {
                Engine::Rocks => None,
                Engine::Postgres => Some(postgres::test_db()),
            },
        }
    }

    /// The mail store, opened as the server opens it (from its config);
    /// each call opens the engine again (a restart).
    pub(crate) fn open(&self) -> MailStore {
        let data_dir = self.dir.path().display().to_string();
        let mut env = vec![("SEALMAIL_DATA_DIR".to_string(), data_dir)];
        if let Some(db) = &self.db {
            env.push(("SEALMAIL_STORE_ENGINE".into(), "postgres".into()));
            env.push(("SEALMAIL_STORE_URL".into(), db.url.clone()));
            env.push(("SEALMAIL_STORE_POOL_SIZE".into(), "4".into()));
        }
        MailStore::open_config(&Config::load(None, env).unwrap()).unwrap()
    }

    /// A fresh handle on the engine alone: its metadata store and its
    /// blob store.
    pub(crate) fn engine(&self) -> EnginePair {
        match &self.db {
            None => RocksStore::open_pair(self.dir.path()).unwrap().into(),
            Some(db) => sealmail::store::open_engine_url(&db.url, 4).unwrap(),
        }
    }

    pub(crate) fn faulty(&self) -> (Arc<FaultyStore>, MailStore) {
        let EnginePair {
            store: inner,
            blobs,
        } = self.engine();
        let engine = Arc::new(FaultyStore {
            inner,
            fail: AtomicBool::new(false),
            writes: AtomicUsize::new(0),
        });
        let mail = MailStore::new(
            EnginePair::new(engine.clone(), blobs),
            MasterKey::from_bytes([9; 32]),
        );
        (engine, mail)
    }
}

/// A plaintext message of `raw` with a subject and a Message-ID.
pub(crate) fn msg(raw: &[u8]) -> NewMessage<'_> {
    NewMessage {
        raw,
        flags: Flags::default(),
        internal_date: 1_700_000_000,
        headers: HeaderFields {
            subject: Some("Hello".into()),
            message_id: Some("<1@example.org>".into()),
            ..HeaderFields::default()
        },
        encrypted: false,
        unique: false,
    }
}

/// An active certificate record for alice@example.org, distinct per
/// `seed` (the store does not parse it).
pub(crate) fn cert(seed: u8) -> NewCertificate {
    let der = vec![seed; 500];
    NewCertificate {
        fingerprint: Fingerprint::of_der(&der),
        der,
        subject: format!("CN=user {seed}"),
        issuer: "CN=Test CA".into(),
        serial_number: format!("{seed:02x}"),
        email_addresses: vec!["alice@example.org".into()],
        not_before: 1_600_000_000,
        not_after: 2_000_000_000,
        key_algorithm: "RSA".into(),
        key_size: Some(2048),
        description: "laptop".into(),
        is_active: true,
    }
}
