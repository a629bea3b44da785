//! `sealmail import EMAIL PATH [--mailbox NAME]`: a Maildir or an mbox
//! file into one mailbox of an account, one management call per message.
//!
//! The server runs each message through the hook chain as a migration,
//! so an opted-in account's mail is encrypted before it is stored, and
//! refused (4.x, nothing stored) when it cannot be. The server keeps a
//! marker per account and SHA-256 of the message bytes sent, written with
//! the message, so running the same import again — complete or cut short
//! by Ctrl-C — stores every message once.
//!
//! Maildir: the files of `new/` and `cur/` in name order, flags from the
//! `:2,FLAGS` suffix, internal date from the file's mtime. mbox: read with
//! mail-parser's reader (splits at every line starting with `From `,
//! un-escapes `>From `; writers escape `From ` inside bodies, which is
//! what makes that split safe), the blank separator line before the next
//! `From ` dropped, internal date from the `From ` line.

use std::fs::File;
use std::io::{BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::UNIX_EPOCH;

use base64::Engine as _;
use hyper::Method;
use mail_parser::mailbox::mbox::MessageIterator;

use super::client::{segment, AdminClient, ClientError};
use super::progress::Progress;
use super::{Cli, ImportArgs, EXIT_USER};
use crate::admin::api::{ImportRequest, ImportResult, MailboxView};

/// `sealmail import --help`.
pub(super) const LONG_ABOUT: &str = "\
Bring a Maildir (a directory with cur/ and new/) or an mbox file into a
mailbox of an account (INBOX unless --mailbox; created when missing).

Each message goes through the server's hook chain like a delivery: for an
account with encryption enabled it is stored as S/MIME, or refused (and
not stored) when it cannot be encrypted. Maildir flags (S, R, F, T, D)
and file times are kept; mbox messages get the date of their From line.

Running the same import again stores nothing twice, so an interrupted
import can simply be started again. Exit code 1 when PATH cannot be read
or any message was refused (the reasons are printed), 2 when the server
is unreachable or failed.";

/// One message read from PATH.
struct Item {
    /// File name or mbox position, for messages.
    label: String,
    raw: Vec<u8>,
    maildir_flags: String,
    internal_date: Option<i64>,
}

/// What came of each message.
#[derive(Debug, Default)]
struct Tally {
    imported: u64,
    already: u64,
    refused: u64,
}

/// What PATH is.
enum Layout {
    /// The message files of a Maildir, in name order.
    Maildir(Vec<PathBuf>),
    /// An mbox file.
    Mbox(PathBuf),
}

pub(super) fn run(cli: &Cli, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => return Ok(fail(&e.to_string(), EXIT_USER)),
    };
    let layout = match Layout::open(&args.path) {
        Ok(l) => l,
        Err(message) => return Ok(fail(&message, EXIT_USER)),
    };
    let client = match AdminClient::new(&config.data_dir) {
        Ok(c) => c,
        Err(e) => return Ok(fail(&e.to_string(), e.exit_code())),
    };
    let mut tally = Tally::default();
    let outcome = import(&client, args, layout, &mut tally);
    println!(
        "imported {}, already there {}, refused {} (into {} of {})",
        tally.imported, tally.already, tally.refused, args.mailbox, args.email
    );
    match outcome {
        Err(e) => Ok(fail(&e.to_string(), e.exit_code())),
        Ok(()) if tally.refused > 0 => Ok(ExitCode::from(EXIT_USER)),
        Ok(()) => Ok(ExitCode::SUCCESS),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("sealmail import: {message}");
    ExitCode::from(code)
}

/// Sends every message; stops at the first error that is not about one
/// message (server gone, account unknown).
fn import(
    client: &AdminClient,
    args: &ImportArgs,
    layout: Layout,
    tally: &mut Tally,
) -> Result<(), ClientError> {
    let account = segment(&args.email);
    // why: an unknown account fails here once, not once per message.
    let _: Vec<MailboxView> = client.json(
        Method::GET,
        &format!("/accounts/{account}/mailboxes"),
        None::<&()>,
    )?;
    let path = format!("/accounts/{account}/import");
    let mut progress = Progress::new(layout.count());
    for (n, item) in layout.items().enumerate() {
        progress.update(u64::try_from(n).unwrap_or(u64::MAX));
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                tally.refused += 1;
                progress.note(&format!("sealmail import: cannot read: {e}"));
                continue;
            }
        };
        let label = item.label.clone();
        let request = ImportRequest {
            mailbox: args.mailbox.clone(),
            data: base64::engine::general_purpose::STANDARD.encode(&item.raw),
            maildir_flags: item.maildir_flags,
            internal_date: item.internal_date,
            source: item.label,
        };
        match client.json::<ImportResult>(Method::POST, &path, Some(&request)) {
            Ok(ImportResult { uid: Some(_), .. }) => tally.imported += 1,
            Ok(ImportResult { uid: None, .. }) => tally.already += 1,
            Err(ClientError::Refused(reason)) => {
                tally.refused += 1;
                progress.note(&format!("sealmail import: {label}: refused: {reason}"));
            }
            Err(e) => {
                progress.clear();
                return Err(e);
            }
        }
    }
    progress.clear();
    Ok(())
}

impl Layout {
    /// Decides what `path` is; the message says what is wrong otherwise.
    fn open(path: &Path) -> Result<Self, String> {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            return maildir_files(path).map(Layout::Maildir);
        }
        let mut head = [0u8; 5];
        let mut file =
            File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let n = file
            .read(&mut head)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if n == 0 || head.starts_with(b"From ") {
            return Ok(Layout::Mbox(path.to_owned()));
        }
        Err(format!(
            "{} is not an mbox file (its first line does not start with \"From \") nor a Maildir directory; give a Maildir (with cur/ and new/) or an mbox file",
            path.display()
        ))
    }

    /// How many messages, when known without reading them all.
    fn count(&self) -> Option<u64> {
        match self {
            Layout::Maildir(files) => u64::try_from(files.len()).ok(),
            Layout::Mbox(_) => None,
        }
    }

    fn items(self) -> Box<dyn Iterator<Item = Result<Item, String>>> {
        match self {
            Layout::Maildir(files) => Box::new(files.into_iter().map(|f| maildir_item(&f))),
            Layout::Mbox(path) => match File::open(&path) {
                Ok(file) => Box::new(mbox_items(path, file)),
                Err(e) => Box::new(std::iter::once(Err(format!("{}: {e}", path.display())))),
            },
        }
    }
}

/// The message files of the Maildir at `dir` (`new/` then `cur/`, each in
/// name order); dot files are skipped, as Maildir readers do.
fn maildir_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let (new, cur) = (dir.join("new"), dir.join("cur"));
    if !new.is_dir() && !cur.is_dir() {
        return Err(format!(
            "{} is not a Maildir (it has no cur/ or new/ directory); give a Maildir or an mbox file",
            dir.display()
        ));
    }
    let mut out = Vec::new();
    for sub in [new, cur].iter().filter(|d| d.is_dir()) {
        let entries =
            std::fs::read_dir(sub).map_err(|e| format!("cannot read {}: {e}", sub.display()))?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .map(|e| e.path())
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

fn maildir_item(file: &Path) -> Result<Item, String> {
    let label = file.display().to_string();
    let raw = std::fs::read(file).map_err(|e| format!("{label}: {e}"))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let internal_date = std::fs::metadata(file)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    Ok(Item {
        label,
        raw,
        maildir_flags: maildir_flags(&name),
        internal_date,
    })
}

/// The system flag letters of a Maildir file name (`...:2,FRS`);
/// lower-case letters are Dovecot keywords, not flags.
fn maildir_flags(name: &str) -> String {
    name.rsplit_once(":2,")
        .map(|(_, info)| info.chars().filter(char::is_ascii_uppercase).collect())
        .unwrap_or_default()
}

fn mbox_items(path: PathBuf, file: File) -> impl Iterator<Item = Result<Item, String>> {
    MessageIterator::new(BufReader::new(file))
        .enumerate()
        .map(move |(n, msg)| {
            let label = format!("{} message {}", path.display(), n + 1);
            let msg = msg.map_err(|e| format!("{label}: {e}"))?;
            let internal_date = i64::try_from(msg.internal_date()).ok().filter(|&d| d > 0);
            Ok(Item {
                label,
                raw: without_separator(msg.unwrap_contents()),
                maildir_flags: String::new(),
                internal_date,
            })
        })
}

/// Drops the blank line that separates a message from the next `From `
/// line: it belongs to the mbox format, not to the message.
fn without_separator(mut raw: Vec<u8>) -> Vec<u8> {
    if raw.ends_with(b"\r\n\r\n") {
        raw.truncate(raw.len() - 2);
    } else if raw.ends_with(b"\n\n") {
        raw.truncate(raw.len() - 1);
    }
    raw
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbox(text: &[u8]) -> Vec<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        std::fs::write(&path, text).unwrap();
        let layout = Layout::open(&path).unwrap();
        layout.items().map(|i| i.unwrap().raw).collect()
    }

    #[test]
    fn mbox_splits_unescapes_and_drops_the_separator() {
        let got = mbox(
            b"From a@x Sat Jan  3 01:05:34 1996\nSubject: 1\n\n>From here\nbody\n\n\
              From b@x Sat Jan  3 01:05:35 1996\nSubject: 2\n\ntwo\n",
        );
        assert_eq!(
            got,
            vec![
                b"Subject: 1\n\nFrom here\nbody\n".to_vec(),
                b"Subject: 2\n\ntwo\n".to_vec()
            ]
        );
    }

    #[test]
    fn maildir_flags_are_the_upper_case_letters_after_2_comma() {
        assert_eq!(maildir_flags("1700000000.M1P2.host:2,FRSa"), "FRS");
        assert_eq!(maildir_flags("1700000000.M1P2.host"), "");
    }

    #[test]
    fn neither_maildir_nor_mbox_is_refused_with_what_to_give() {
        let dir = tempfile::tempdir().unwrap();
        let err = Layout::open(dir.path()).err().unwrap();
        assert!(err.contains("not a Maildir"), "{err}");
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "hello").unwrap();
        let err = Layout::open(&file).err().unwrap();
        assert!(err.contains("not an mbox file"), "{err}");
    }
}
