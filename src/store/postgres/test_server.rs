//! A real PostgreSQL server for the tests: one throwaway cluster per test
//! process (`scripts/pg-test-server.sh`), and a fresh database per test so
//! tests run in parallel. Shared by the unit tests (as
//! `store::postgres::test_server`) and the integration tests (through
//! `tests/support/postgres.rs`).
//!
//! The cluster is started on first use, by a thread that lives as long as
//! the process and is the script's parent; the script gets SIGTERM as its
//! parent-death signal (util-linux `setpriv --pdeathsig`), so when the
//! test process exits — normally, by a panic or by SIGKILL — the script
//! stops the server and removes its directory. No postgres process
//! outlives the tests.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, OnceLock};

/// The PostgreSQL 15 programs (Debian's `postgresql` package).
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The running cluster.
#[derive(Debug)]
pub struct Cluster {
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// Its directory (data, socket, log).
    pub dir: PathBuf,
}

/// A database of its own for one test.
#[derive(Debug, Clone)]
pub struct TestDb {
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    /// The database name.
    pub name: String,
    /// The cluster's port.
    pub port: u16,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NEXT_DB: AtomicUsize = AtomicUsize::new(0);

/// The process's cluster, started on first call; panics with the
/// server's log when it cannot start.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(start_cluster) {
        Ok(cluster) => cluster,
        Err(log) => panic!("the test PostgreSQL cluster did not start:\n{log}"),
    }
}

/// A new, empty database on the process's cluster.
pub fn test_db() -> TestDb {
    let cluster = cluster();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let out = Command::new(format!("{PG_BIN}/createdb"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &cluster.port.to_string(),
            "-U",
            "postgres",
            &name,
        ])
        .output()
        .expect("run createdb");
    assert!(
        out.status.success(),
        "createdb {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    TestDb {
        url: format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port),
        name,
        port: cluster.port,
    }
}

impl TestDb {
    /// Runs `sql` in this database with `psql`; returns its output
    /// (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(format!("{PG_BIN}/psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args([
                "-d",
                &self.name,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// Starts the script on a free port (three tries against a port taken in
/// between) from a thread that never ends.
fn start_cluster() -> Result<Cluster, String> {
    let mut log = String::new();
    for _ in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("test-postgres".into())
            .spawn(move || keep(port, &tx))
            .map_err(|e| e.to_string())?;
        match rx.recv() {
            Ok(Ok(dir)) => return Ok(Cluster { port, dir }),
            Ok(Err(e)) => log = e,
            Err(_) => log = "the keeper thread ended".into(),
        }
    }
    Err(log)
}

/// Runs the script as this thread's child, reports "ready" (or its error
/// output) on `ready`, then waits for it for the rest of the process.
fn keep(port: u16, ready: &mpsc::Sender<Result<PathBuf, String>>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test-server.sh");
    // why setpriv here: the parent-death signal must be set in the child
    // before it runs the script, and unsafe pre_exec code is forbidden.
    let child = Command::new("setpriv")
        .args([
            "--pdeathsig",
            "TERM",
            "--",
            "bash",
            script,
            &port.to_string(),
        ])
        .env("PG_BIN", PG_BIN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot run setpriv/bash: {e}")));
            return;
        }
    };
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    match line.trim().strip_prefix("ready ") {
        Some(dir) => {
            let _ = ready.send(Ok(PathBuf::from(dir)));
            // why drain stderr: the server log is printed there only at the
            // end; reading it keeps the pipe from filling.
            let mut rest = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = err.read_to_string(&mut rest);
            }
            // why wait here: this thread is the script's parent; had it
            // ended, the parent-death signal would stop the cluster early.
            let _ = child.wait();
        }
        None => {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            let _ = ready.send(Err(format!("{line}{err}")));
        }
    }
}
