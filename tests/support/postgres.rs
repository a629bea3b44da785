//! A real PostgreSQL for the integration tests: the same helper the unit
//! tests use (`src/store/postgres/test_server.rs`): one throwaway cluster
//! per test process, started on first use and stopped when the process
//! exits, and a fresh database per test.
#![allow(dead_code, unreachable_pub)] // why: included by test binaries that use a part

#[path = "../../src/store/postgres/test_server.rs"]
mod test_server;

#[allow(unused_imports)]
pub use test_server::{cluster, test_db, Cluster, TestDb, PG_BIN};
