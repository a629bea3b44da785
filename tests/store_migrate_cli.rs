//! `sealmail store migrate` as the operator runs it: the real binary on a
//! real data directory, with and without a server holding it.
//!
//! This build has no PostgreSQL engine yet, so the end-to-end copy is
//! tested in `store::engine_copy` (RocksDB into RocksDB); here the command
//! line's refusals and messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Output;

use support::pki::tempdir;
use support::server::{binary, Server};
use support::tools::run_unchecked;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn migrate(data_dir: &std::path::Path, to: &str) -> Output {
    let mut cmd = binary();
    cmd.args(["store", "migrate", "--to", to])
        .arg("--data-dir")
        .arg(data_dir);
    run_unchecked(&mut cmd, b"")
}

#[test]
fn a_running_server_makes_migrate_refuse() {
    let server = Server::start();
    server.ok(&["account", "add", "alice@example.org"]);
    let out = migrate(
        &server.data_dir,
        "postgres://sealmail@127.0.0.1:5432/sealmail",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("stop the server first"),
        "{}",
        stderr(&out)
    );
    // The server still runs and still has its data.
    assert!(server
        .ok(&["account", "list"])
        .contains("alice@example.org"));
}

#[test]
fn without_a_server_postgres_is_not_in_this_build() {
    let dir = tempdir();
    let mut server = Server::start_on(dir.path());
    server.ok(&["account", "add", "alice@example.org"]);
    assert!(server.terminate().success());
    let out = migrate(
        dir.path(),
        "postgres://sealmail:s3cret@127.0.0.1:5432/sealmail",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no postgres engine"),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("s3cret"),
        "a password in the URL is never printed"
    );
    // The lock was released: a server starts again on the directory.
    let server = Server::start_on(dir.path());
    assert!(server
        .ok(&["account", "list"])
        .contains("alice@example.org"));
}

#[test]
fn other_url_schemes_and_missing_stores_are_user_errors() {
    let dir = tempdir();
    let mut server = Server::start_on(dir.path());
    assert!(server.terminate().success());
    let out = migrate(dir.path(), "mysql://root@localhost/mail");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--to postgres://"),
        "{}",
        stderr(&out)
    );

    let empty = tempdir();
    let out = migrate(empty.path(), "postgres://localhost/mail");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no sealmail store"),
        "{}",
        stderr(&out)
    );
    assert!(!empty.path().join("db").exists(), "nothing created");
}

#[test]
fn help_explains_the_procedure() {
    let out = run_unchecked(binary().args(["store", "migrate", "--help"]), b"");
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    for words in [
        "Stop the server first",
        "resumable",
        "SHA-256",
        "master key file",
        "store.engine = \"postgres\"",
    ] {
        assert!(help.contains(words), "{words:?} missing from:\n{help}");
    }
}
