//! `sealmail store migrate --to URL`: move a stopped RocksDB installation
//! to another engine.
//!
//! Unlike the other commands this one does not talk to a server: the
//! server must be stopped (the source may not change under the copy), so
//! it takes the data directory's lock itself, the same lock `serve`
//! holds, and opens the RocksDB store directly. The copy, its resumption
//! and its verification are engine-neutral (`store::migrate_engine`);
//! this file only opens both sides, draws the progress line and reports.

use std::path::Path;
use std::process::ExitCode;

use super::progress::Progress;
use super::{Cli, MigrateArgs, EXIT_INTERNAL, EXIT_USER};
use crate::server::{DataDirLock, ServerError};
use crate::store::{
    migrate_engine, CopyError, CopyOptions, CopyProgress, EnginePair, MigrationReport, Phase,
    RocksStore, StoreError, StorePair, Verification,
};

/// `sealmail store migrate --help`.
pub(super) const LONG_ABOUT: &str = "\
Copy everything the embedded RocksDB store of this data directory holds
(accounts, mailboxes, messages, certificates, lists, logs) into another
storage engine given by URL, e.g. --to postgres://sealmail@db.example.org/sealmail.

Stop the server first: the command takes the data directory's lock and
refuses to run while a server holds it. The target must be a new, empty
database; a target holding other data is refused and nothing is written.

The copy is resumable: it writes in chunks, each together with a progress
marker in the target, so after an interruption (Ctrl-C, a lost
connection) running the same command again continues after the last chunk
written. When everything is copied both sides are read again and compared:
for every column family the number of keys and a SHA-256 over every key
and value (message bodies included) must be equal. Only then is the
progress marker removed and the migration reported as done; a difference
is reported and the exit code is 2.

Afterwards:
  - copy the master key file (data_dir/master.key, or the file set as
    store.master_key) to every node that will serve from the new engine,
    same bytes, mode 0600: it seals the mailing-list keys, and without it
    they cannot be opened;
  - set store.engine = \"postgres\" and store.url = \"postgres://...\" in
    the configuration of every node, then start the servers.
The RocksDB files stay as they were; keep them until the new
installation runs.";

/// The metadata store and blob store a migration writes to.
type Target = EnginePair;

/// `sealmail store migrate`: the configuration, then the migration.
pub(super) fn run(cli: &Cli, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => return Ok(fail(&e.to_string(), EXIT_USER)),
    };
    Ok(migrate_dir(&config.data_dir, || open_target(&args.to)))
}

/// The migration of the store in `data_dir` into what `open` opens
/// (called only once the data directory's lock is held); the exit code.
fn migrate_dir(data_dir: &Path, open: impl FnOnce() -> Result<Target, TargetError>) -> ExitCode {
    if !data_dir.join("db").is_dir() {
        let message = format!(
            "no sealmail store at {}: give the data directory of the installation to move with --data-dir or --config",
            data_dir.join("db").display()
        );
        return fail(&message, EXIT_USER);
    }
    let _lock = match DataDirLock::acquire(data_dir) {
        Ok(lock) => lock,
        Err(e) => return lock_failed(data_dir, &e),
    };
    let target = match open() {
        Ok(t) => t,
        Err(e) => return fail(&e.to_string(), e.exit_code()),
    };
    let target = StorePair {
        store: &*target.store,
        blobs: &*target.blobs,
    };
    let (source, source_blobs) = match RocksStore::open_pair(data_dir) {
        Ok(s) => s,
        Err(e) => return fail(&format!("cannot open the source store: {e}"), EXIT_INTERNAL),
    };
    let label = std::fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let options = CopyOptions::new(label.display().to_string());
    let mut progress = Line::default();
    let source = StorePair {
        store: &*source,
        blobs: &*source_blobs,
    };
    let outcome = migrate_engine(&source, &target, &options, &mut progress);
    progress.clear();
    match outcome {
        Ok(report) => done(&report),
        Err(e) => {
            if let CopyError::Mismatch(v) = &e {
                eprint!("{}", table(v));
            }
            let code = if e.is_user_error() {
                EXIT_USER
            } else {
                EXIT_INTERNAL
            };
            fail(&e.to_string(), code)
        }
    }
}

/// Why the target could not be opened.
#[derive(Debug, thiserror::Error)]
enum TargetError {
    /// The URL names no engine this build has.
    #[error("{0}")]
    Unsupported(String),
    /// The engine could not be reached or opened.
    #[error("cannot open the target store: {0}")]
    Engine(#[source] StoreError),
}

impl TargetError {
    fn exit_code(&self) -> u8 {
        match self {
            TargetError::Unsupported(_) => EXIT_USER,
            TargetError::Engine(_) => EXIT_INTERNAL,
        }
    }
}

/// Opens the engine `url` names. The one place a URL becomes an engine:
/// the PostgreSQL engine plugs in here (`store::open_engine_url`).
fn open_target(url: &str) -> Result<Target, TargetError> {
    // why only a plain scheme in messages: the URL may carry a password.
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s)
        .filter(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        })
        .unwrap_or("");
    match scheme {
        // why 2 connections: the copy is one writer and one reader.
        "postgres" | "postgresql" => {
            crate::store::open_engine_url(url, 2).map_err(TargetError::Engine)
        }
        _ => Err(TargetError::Unsupported(format!(
            "unsupported target URL (scheme {:?}); give the new engine as --to postgres://USER@HOST:PORT/DATABASE",
            scheme
        ))),
    }
}

fn lock_failed(data_dir: &Path, e: &ServerError) -> ExitCode {
    match e {
        ServerError::Locked { pid, .. } => fail(
            &format!(
                "a sealmail server{} is running on {}; stop the server first, then run this command again",
                if pid.is_empty() { String::new() } else { format!(" (pid {pid})") },
                data_dir.display()
            ),
            EXIT_USER,
        ),
        other => fail(&other.to_string(), EXIT_USER),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("sealmail store migrate: {}", crate::text::escape(message));
    ExitCode::from(code)
}

/// Prints the outcome of a migration that did not fail.
fn done(report: &MigrationReport) -> ExitCode {
    let copy = &report.copy;
    let earlier = copy.done.saturating_sub(copy.copied);
    let resumed = if copy.resumed {
        format!(" ({earlier} copied by an earlier run)")
    } else {
        String::new()
    };
    println!(
        "copied {} keys in {} chunks{resumed}",
        copy.copied, copy.chunks
    );
    let Some(v) = &report.verification else {
        println!("stopped before the end; run the command again to continue");
        return ExitCode::from(EXIT_INTERNAL);
    };
    print!("{}", table(v));
    println!(
        "verified: {} keys in {} column families, equal on both sides; the migration is complete",
        v.keys(),
        v.cfs.len()
    );
    println!("next: copy the master key file to every node, set store.engine = \"postgres\" and store.url, start the servers");
    ExitCode::SUCCESS
}

/// Both sides per column family.
fn table(v: &Verification) -> String {
    let hex = |d: &[u8; 32]| {
        d.iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let rows: Vec<Vec<String>> = v
        .cfs
        .iter()
        .map(|(cf, s, t)| {
            vec![
                cf.to_string(),
                s.keys.to_string(),
                t.keys.to_string(),
                hex(&s.sha256),
                hex(&t.sha256),
                if s == t { "ok" } else { "DIFFERS" }.to_string(),
            ]
        })
        .collect();
    super::table::render(
        &[
            "CF",
            "SOURCE KEYS",
            "TARGET KEYS",
            "SOURCE SHA-256",
            "TARGET SHA-256",
            "",
        ],
        &rows,
    )
}

/// The progress line: one phase at a time.
#[derive(Debug, Default)]
struct Line {
    line: Option<Progress>,
}

impl Line {
    fn clear(&self) {
        if let Some(line) = &self.line {
            line.clear();
        }
    }
}

impl CopyProgress for Line {
    fn phase(&mut self, phase: Phase, total: u64) {
        self.clear();
        let mut line = Progress::counting(Some(total), "keys");
        line.note(match phase {
            Phase::Counting => "counting the source's column families",
            Phase::Copying => "copying keys",
            Phase::Verifying => "verifying: reading both sides again (keys of both sides)",
        });
        self.line = Some(line);
    }

    fn advance(&mut self, done: u64) {
        if let Some(line) = &mut self.line {
            line.update(done);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Flags, HeaderFields, MailStore, MasterKey, NewMessage};

    /// A stopped installation: one account with a password and a message.
    fn installation() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let mail = MailStore::open(dir.path()).unwrap();
        let alice = mail
            .add_account("alice@example.org", Some("pw"), &[])
            .unwrap();
        let inbox = mail.mailbox_by_name(alice.id, "INBOX").unwrap();
        let msg = NewMessage {
            raw: b"Subject: moved\r\n\r\nhello\r\n",
            flags: Flags::default(),
            internal_date: 1_700_000_000,
            headers: HeaderFields::default(),
            encrypted: false,
            unique: false,
        };
        mail.append(alice.id, inbox.id, msg).unwrap();
        dir
    }

    #[test]
    fn migrates_once_then_refuses_the_full_target() {
        let dir = installation();
        let target_dir = tempfile::tempdir().unwrap();
        let target: EnginePair = RocksStore::open_pair(target_dir.path()).unwrap().into();
        let code = migrate_dir(dir.path(), || Ok(target.clone()));
        assert_eq!(code, ExitCode::SUCCESS);

        let key = MasterKey::load_or_create(&dir.path().join("master.key")).unwrap();
        let moved = MailStore::new(target.clone(), key);
        let alice = moved
            .check_login("alice@example.org", "pw")
            .unwrap()
            .unwrap();
        let inbox = moved.mailbox_by_name(alice.id, "INBOX").unwrap();
        let msgs = moved.list_messages(alice.id, inbox.id, None, 10).unwrap();
        let raw = moved.get_blob(alice.id, msgs[0].blob).unwrap().unwrap();
        assert_eq!(raw, b"Subject: moved\r\n\r\nhello\r\n");

        let again = migrate_dir(dir.path(), || Ok(target.clone()));
        assert_eq!(
            again,
            ExitCode::from(EXIT_USER),
            "a target with data is refused"
        );
    }

    #[test]
    fn a_held_lock_refuses_before_opening_anything() {
        let dir = installation();
        let _server = DataDirLock::acquire(dir.path()).unwrap();
        let code = migrate_dir(dir.path(), || unreachable!("the target is not opened"));
        assert_eq!(code, ExitCode::from(EXIT_USER));
    }
}
