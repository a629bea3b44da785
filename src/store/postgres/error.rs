//! PostgreSQL errors as [`StoreError`]s: conflicts of concurrent writers
//! as `Conflict`, everything else as `Engine` with a message that names
//! the server (never the password) and what to check.

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// The server as error messages and logs show it:
/// `postgres://user@host:port/db`, without the password.
pub(super) fn target(config: &tokio_postgres::Config) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            Host::Tcp(name) => format!("{name}:{port}"),
            Host::Unix(dir) => format!("{}:{port}", dir.display()),
        })
        .collect();
    let db = config.get_dbname().unwrap_or(user);
    format!("postgres://{user}@{}/{db}", hosts.join(","))
}

/// Whether `e` is a conflict with a concurrent transaction: a
/// serialization failure, a deadlock (PostgreSQL aborted one side), or a
/// unique key taken by a concurrent insert. Nothing was written; reading
/// again and retrying is the answer.
pub(super) fn is_conflict(e: &tokio_postgres::Error) -> bool {
    e.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::UNIQUE_VIOLATION
    })
}

/// Whether the connection under `e` is gone (server restarted, backend
/// terminated, network cut): the pool replaces it, and an operation that
/// had not written yet may run again on another connection.
pub(super) fn is_broken(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if io {
        return true;
    }
    e.code().is_some_and(|code| {
        *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
    })
}

/// `e` in words: the server's own message and SQLSTATE for a database
/// error (tokio-postgres' `Display` says only "db error"), the error and
/// its causes otherwise.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `e`, met while doing `op` on the server `target`, as a [`StoreError`].
pub(super) fn store_error(op: &'static str, target: &str, e: &tokio_postgres::Error) -> StoreError {
    if is_conflict(e) {
        return StoreError::Conflict {
            detail: format!("PostgreSQL: {}", describe(e)),
        };
    }
    let hint = if is_broken(e) {
        "check that the server is running and reachable; the connection is replaced at the next operation"
    } else {
        "check the server's log"
    };
    StoreError::Engine {
        op,
        message: format!("PostgreSQL at {target}: {}; {hint}", describe(e)),
    }
}

/// A failure to connect, with what to check.
pub(super) fn connect_error(target: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Engine {
        op: "connect",
        message: format!(
            "cannot connect to PostgreSQL at {target}: {}; check `store.url`, that the server is running and reachable from here, and that it accepts the user's credentials (pg_hba.conf)",
            describe(e)
        ),
    }
}

/// An engine error of our own making (no PostgreSQL error under it).
pub(super) fn engine(op: &'static str, message: impl Into<String>) -> StoreError {
    StoreError::Engine {
        op,
        message: message.into(),
    }
}
