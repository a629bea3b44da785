//! `sealmail reencrypt EMAIL`: encrypt the mail an account still holds in
//! clear (stored before encryption was enabled), in place.
//!
//! The server does the work in pages (`POST /accounts/{email}/reencrypt`
//! with a cursor): each message goes through the hook chain — the same
//! encrypt-at-rest code as a delivery — and replaces its plaintext in one
//! batch, keeping UID, flags, internal date and mailbox. Encrypted
//! messages are skipped, so an interrupted run is finished by running it
//! again. At the end the server compacts its storage so that the
//! plaintext blobs leave the database files.
//!
//! What this cannot promise: RocksDB's write-ahead log holds recent
//! writes, plaintext included, until its files are obsolete; the
//! compaction flushes every column family, which makes them so and lets
//! RocksDB delete them, but deleted files' blocks stay on the disk until
//! overwritten, and backups or snapshots taken before keep the plaintext.

use std::process::ExitCode;

use hyper::Method;

use super::client::{segment, AdminClient, ClientError};
use super::progress::Progress;
use super::{Cli, ReencryptArgs, EXIT_USER};
use crate::admin::api::{ReencryptPage, ReencryptRequest, ReencryptStatus};

/// `sealmail reencrypt --help`.
pub(super) const LONG_ABOUT: &str = "\
Encrypt every message of the account that is still stored in clear (mail
stored before encryption was enabled), in all mailboxes, for the
account's active certificates. Each message keeps its UID, flags,
internal date and mailbox; its plaintext is removed in the same step.
Messages already encrypted are left as they are, so an interrupted run is
completed by running the command again.

Enable encryption first: sealmail encryption enable EMAIL.

Afterwards the server compacts its database so the removed plaintext
leaves its data files. Limitations: the server's write-ahead log can hold
recent plaintext until its files are retired (the compaction forces
that), deleted files' blocks remain on the disk until overwritten, and
backups or snapshots taken before keep the plaintext. IMAP clients that
cached a message keep their cached copy.";

/// Messages asked for per call: small enough that a call returns within
/// seconds, so the progress line moves and Ctrl-C loses little work.
const PAGE: u32 = 50;

pub(super) fn run(cli: &Cli, args: &ReencryptArgs) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => return Ok(fail(&e.to_string(), EXIT_USER)),
    };
    let outcome =
        AdminClient::new(&config.data_dir).and_then(|client| reencrypt(&client, &args.email));
    match outcome {
        Ok((encrypted, skipped, already)) => {
            println!(
                "encrypted {encrypted} messages of {} ({already} were already encrypted, {skipped} changed or expunged meanwhile)",
                crate::text::escape(&args.email)
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(fail(&e.to_string(), e.exit_code())),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("sealmail reencrypt: {}", crate::text::escape(message));
    ExitCode::from(code)
}

/// Pages through the account; returns (encrypted, skipped, already
/// encrypted before the run).
fn reencrypt(client: &AdminClient, email: &str) -> Result<(u64, u64, u64), ClientError> {
    let path = format!("/accounts/{}/reencrypt", segment(email));
    let status: ReencryptStatus = client.json(Method::GET, &path, None::<&()>)?;
    let mut progress = Progress::new(Some(status.plaintext));
    let (mut encrypted, mut skipped) = (0u64, 0u64);
    let mut request = ReencryptRequest {
        cursor: None,
        limit: PAGE,
    };
    loop {
        progress.update(encrypted + skipped);
        let page: ReencryptPage = match client.json(Method::POST, &path, Some(&request)) {
            Ok(page) => page,
            Err(e) => {
                progress.clear();
                return Err(e);
            }
        };
        encrypted += u64::from(page.encrypted);
        skipped += u64::from(page.skipped);
        match page.cursor {
            Some(cursor) => request.cursor = Some(cursor),
            None => break,
        }
    }
    progress.clear();
    if encrypted > 0 {
        client.call(Method::POST, "/compact", None::<&()>)?;
    }
    let already = status.total.saturating_sub(status.plaintext);
    Ok((encrypted, skipped, already))
}
