//! Opening the engine the configuration names (`store.engine`), and an
//! engine from a URL alone (for `sealmail store migrate --to URL`). Either
//! way an engine is a pair: its metadata [`Store`] and its
//! [`BlobStore`] for message bodies.

use std::sync::Arc;

use super::blobs::BlobStore;
use super::error::MailError;
use super::master_key::MasterKey;
use super::postgres::PgStore;
use super::{MailStore, Store, StoreError};
use crate::config::{Config, StoreEngine};

/// One engine: its metadata store and its blob store, what a
/// [`MailStore`] runs on.
#[derive(Debug, Clone)]
pub struct EnginePair {
    /// Metadata: accounts, mailboxes, messages, reference counts, ...
    pub store: Arc<dyn Store>,
    /// Message bodies.
    pub blobs: Arc<dyn BlobStore>,
}

impl EnginePair {
    /// The pair of `store` and `blobs`.
    pub fn new(store: Arc<dyn Store>, blobs: Arc<dyn BlobStore>) -> Self {
        Self { store, blobs }
    }
}

/// What [`RocksStore::open_pair`](super::RocksStore::open_pair) and
/// [`PgStore::open_pair`] return.
impl<S: Store, B: BlobStore> From<(Arc<S>, Arc<B>)> for EnginePair {
    fn from((store, blobs): (Arc<S>, Arc<B>)) -> Self {
        Self { store, blobs }
    }
}

impl MailStore {
    /// Opens the store `config` describes: RocksDB in `data_dir`, or the
    /// PostgreSQL database at `store.url` with `store.pool_size`
    /// connections. The master key is `[store] master_key` (default
    /// `data_dir/master.key`) either way, created if missing.
    pub fn open_config(config: &Config) -> Result<Self, MailError> {
        let master_key = config.master_key_path();
        match config.store.engine {
            StoreEngine::Postgres => {
                let url = config.store.url.as_ref().ok_or_else(|| {
                    StoreError::Engine {
                        op: "open",
                        message: "store.engine = \"postgres\" needs store.url, e.g. postgres://sealmail@127.0.0.1:5432/sealmail".into(),
                    }
                })?;
                let engine = open_engine_url(url.expose(), config.store.pool_size)?;
                let key = MasterKey::load_or_create(&master_key)?;
                let store = Self::new(engine, key);
                store.upgrade()?;
                Ok(store)
            }
            // why a catch-all: `StoreEngine` is non-exhaustive; RocksDB is
            // the default engine.
            _ => Self::open_with_master_key(&config.data_dir, &master_key),
        }
    }
}

/// The engine a URL names, opened with at most `pool_size` connections:
/// `postgres://` (or `postgresql://`) for [`PgStore`] and its blob tier,
/// the only engine reached by URL so far. Creates or migrates the schema.
pub fn open_engine_url(url: &str, pool_size: usize) -> Result<EnginePair, StoreError> {
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("postgres" | "postgresql") => Ok(PgStore::open_pair(url, pool_size)?.into()),
        _ => Err(StoreError::Engine {
            op: "open",
            message: "the store URL names no engine sealmail knows; write postgres://USER@HOST:PORT/DATABASE".into(),
        }),
    }
}
