//! A real PostgreSQL for the integration tests: the same helper the unit
//! tests use (`src/store/postgres/test_server.rs`): one throwaway cluster
//! per test process, started on first use and stopped when the process
//! exits, and a fresh database per test.

#[path = "../../src/store/postgres/test_server.rs"]
mod test_server;

#[allow(unused_imports)] // why: each test binary uses a part.
pub use test_server::{cluster, test_db, Cluster, TestDb, PG_BIN};
