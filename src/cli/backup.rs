//! `sealmail backup DIR` (asks the running server, which owns the
//! database, for an online backup: `POST /backup`) and `sealmail restore
//! DIR` (server stopped: takes the data directory's lock itself, as
//! `store migrate` does, and restores with `store::backup::restore`).

use std::path::Path;
use std::process::ExitCode;

use hyper::Method;

use super::client::AdminClient;
use super::{BackupArgs, Cli, RestoreArgs, EXIT_INTERNAL, EXIT_USER};
use crate::admin::api::{BackupRequest, BackupView};
use crate::config::{Config, StoreEngine};
use crate::server::{DataDirLock, ServerError};
use crate::store::backup::{restore, BackupError, RestoreReport};
use crate::text::escape;

/// `sealmail backup --help`.
pub(super) const BACKUP_ABOUT: &str = "\
Write a consistent copy of the running server's store into DIR, without
stopping delivery: the RocksDB database and the message segment files as
they were at one moment, and DIR/manifest.json listing every file with its
size and SHA-256. Mail acknowledged before the command started is in it;
mail arriving meanwhile may or may not be.

DIR must be empty or not exist yet (it is created, mode 0700). The server
writes it, with its own user's rights: DIR must be writable by that user
(under the systemd unit, also listed in ReadWritePaths=). Files are
written below DIR/.partial and moved into place when complete, the
manifest last; a directory without manifest.json is not a backup.

The master key (data_dir/master.key, or store.master_key) is NOT in the
backup: keep a copy of it elsewhere. Without it the mailing lists' private
keys in the backup cannot be opened.

With store.engine = \"postgres\" this command refuses: back up the
database with pg_dump or pg_basebackup instead, and keep the master key.";

/// `sealmail restore --help`.
pub(super) const RESTORE_ABOUT: &str = "\
Bring a backup written by `sealmail backup` back into the configured data
directory. Stop the server first: the command takes the data directory's
lock and refuses while a server holds it.

Every file is checked against DIR/manifest.json (size and SHA-256) before
anything is written; a missing or changed file is named and nothing is
restored. The data directory must not hold a store yet (no db/ or
segments/ with files in them); with --replace the present db/ and
segments/ are moved to data_dir/pre-restore-<unix time>/ first (delete it
once the restored server runs as it should).

The master key is not in the backup: put the one kept for this
installation at data_dir/master.key (or store.master_key) before starting
the server. A server started without it makes a new one, and the
mailing lists' private keys can then not be opened.";

/// `sealmail backup DIR`.
pub(super) fn run_backup(cli: &Cli, args: &BackupArgs) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => return Ok(fail("backup", &e.to_string(), EXIT_USER)),
    };
    if config.store.engine == StoreEngine::Postgres {
        return Ok(fail(
            "backup",
            &BackupError::NotEmbedded.to_string(),
            EXIT_USER,
        ));
    }
    // why absolute here: the server resolves the path, from its own
    // working directory.
    let dir = match std::path::absolute(&args.dir) {
        Ok(d) => d,
        Err(e) => return Ok(fail("backup", &format!("{:?}: {e}", args.dir), EXIT_USER)),
    };
    let Some(dir_text) = dir.to_str() else {
        let message = format!("{dir:?} is not UTF-8; give a backup directory whose path is");
        return Ok(fail("backup", &message, EXIT_USER));
    };
    let request = BackupRequest {
        dir: dir_text.to_string(),
    };
    let answer = AdminClient::new(&config.data_dir)
        .and_then(|c| c.json::<BackupView>(Method::POST, "/backup", Some(&request)));
    match answer {
        Ok(view) => {
            println!(
                "backup written to {}: {} files, {} bytes, cut at {}",
                escape(&view.dir),
                view.files,
                view.bytes,
                escape(&view.created)
            );
            println!("{}", master_key_note(&config));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(fail("backup", &e.to_string(), e.exit_code())),
    }
}

/// `sealmail restore DIR [--replace]`.
pub(super) fn run_restore(cli: &Cli, args: &RestoreArgs) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => return Ok(fail("restore", &e.to_string(), EXIT_USER)),
    };
    if config.store.engine == StoreEngine::Postgres {
        let message = "store.engine = \"postgres\": `sealmail restore` brings back the embedded store only; restore the PostgreSQL database with pg_restore (or from its base backup), then put the master key file in place";
        return Ok(fail("restore", message, EXIT_USER));
    }
    let data_dir = &config.data_dir;
    let _lock = match DataDirLock::acquire(data_dir) {
        Ok(lock) => lock,
        Err(ServerError::Locked { pid, .. }) => {
            let message = format!(
                "a sealmail server (pid {pid}) is running on {}; stop it first, then run this command again",
                data_dir.display()
            );
            return Ok(fail("restore", &message, EXIT_USER));
        }
        Err(e) => return Ok(fail("restore", &e.to_string(), EXIT_USER)),
    };
    eprintln!(
        "checking every file of {} against its manifest ...",
        escape(&args.dir.display().to_string())
    );
    match restore(&args.dir, data_dir, args.replace) {
        Ok(report) => {
            restored(&report, data_dir, &config);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let code = if e.is_user_error() {
                EXIT_USER
            } else {
                EXIT_INTERNAL
            };
            Ok(fail("restore", &e.to_string(), code))
        }
    }
}

fn restored(report: &RestoreReport, data_dir: &Path, config: &Config) {
    let manifest = &report.manifest;
    println!(
        "restored {} files ({} bytes, backup taken {} by sealmail {}) into {}",
        manifest.files.len(),
        manifest.bytes(),
        escape(&manifest.created),
        escape(&manifest.sealmail_version),
        escape(&data_dir.display().to_string())
    );
    if let Some(aside) = &report.moved_aside {
        println!(
            "the store that was there is now in {}; delete it once the restored server runs as it should",
            escape(&aside.display().to_string())
        );
    }
    let key = config.master_key_path();
    if key.exists() {
        println!(
            "master key: {} (the backup has none; make sure it is the key of this installation)",
            escape(&key.display().to_string())
        );
    } else {
        println!(
            "no master key at {}: put the one kept for this installation there (mode 0600) before starting the server, or the mailing lists' private keys cannot be opened",
            escape(&key.display().to_string())
        );
    }
}

fn master_key_note(config: &Config) -> String {
    format!(
        "the master key {} is not in the backup: keep a copy of it apart from the backup (without it the mailing lists' private keys in it cannot be opened)",
        escape(&config.master_key_path().display().to_string())
    )
}

fn fail(command: &str, message: &str, code: u8) -> ExitCode {
    eprintln!("sealmail {command}: {}", escape(message));
    ExitCode::from(code)
}
