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
//! `:2,FLAGS` suffix, internal date from the file's mtime. Import usually
//! runs as root on a tree a mail user may have shaped, so nothing below
//! PATH is followed if it is a link, and only regular files are read
//! (`nofollow`): a linked `cur/`, a link or FIFO among the messages is
//! skipped with a warning and counted. PATH itself is resolved once (a
//! link there is the operator's choice); an mbox must be a regular file. mbox: read with
//! mail-parser's reader (splits at every line starting with `From `,
//! un-escapes `>From `; writers escape `From ` inside bodies, which is
//! what makes that split safe), the blank separator line before the next
//! `From ` dropped, internal date from the `From ` line.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{BufReader, Read as _, Seek as _, SeekFrom};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::UNIX_EPOCH;

use base64::Engine as _;
use hyper::Method;
use mail_parser::mailbox::mbox::MessageIterator;
use rustix::fs::FileType;

use super::client::{segment, AdminClient, ClientError};
use super::progress::Progress;
use super::{Cli, ImportArgs, EXIT_USER};
use crate::admin::api::{ImportRequest, ImportResult, MailboxView};
use crate::nofollow::{Dir, TreeError};

/// `sealmail import --help`.
pub(super) const LONG_ABOUT: &str = "\
Bring a Maildir (a directory with cur/ and new/) or an mbox file into a
mailbox of an account (INBOX unless --mailbox; created when missing).

Each message goes through the server's hook chain like a delivery: for an
account with encryption enabled it is stored as S/MIME, or refused (and
not stored) when it cannot be encrypted. Maildir flags (S, R, F, T, D)
and file times are kept; mbox messages get the date of their From line.

Running the same import again stores nothing twice, so an interrupted
import can simply be started again.

Nothing inside PATH is followed if it is a symbolic link, and only
regular files are read: a linked cur/ or new/, and a link, FIFO or device
among the messages, are skipped with a warning and counted as skipped.
PATH itself may be a link; an mbox must be a regular file.

Exit code 1 when PATH cannot be read, the mailbox name is not allowed, or
any message was refused or skipped (the reasons are printed), 2 when the
server is unreachable or failed.";

/// One message read from PATH.
struct Item {
    /// File name or mbox position, for messages.
    label: String,
    raw: Vec<u8>,
    maildir_flags: String,
    internal_date: Option<i64>,
}

/// Why an entry of PATH was not sent.
#[derive(Debug)]
enum NotRead {
    /// Not a regular file (a link, FIFO, device, ...): never read.
    Skipped(String),
    /// Reading it failed.
    Failed(String),
}

/// What came of each message.
#[derive(Debug, Default)]
struct Tally {
    imported: u64,
    already: u64,
    refused: u64,
    skipped: u64,
}

/// One message file of a Maildir: its directory and name.
struct MaildirFile {
    dir: Rc<Dir>,
    name: OsString,
}

/// What PATH is.
enum Layout {
    /// The message files of a Maildir, in name order, and what was
    /// skipped while listing them.
    Maildir {
        files: Vec<MaildirFile>,
        skipped: Vec<String>,
    },
    /// An mbox file, opened.
    Mbox(PathBuf, File),
}

pub(super) fn run(cli: &Cli, args: &ImportArgs) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => return Ok(fail(&e.to_string(), EXIT_USER)),
    };
    // why: the server checks too, but a bad name would otherwise be refused
    // once per message.
    if let Err(e) = crate::store::normalize_mailbox_name(&args.mailbox) {
        return Ok(fail(&format!("--mailbox: {e}"), EXIT_USER));
    }
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
        "imported {}, already there {}, refused {}, skipped {} (into {} of {})",
        tally.imported, tally.already, tally.refused, tally.skipped, args.mailbox, args.email
    );
    match outcome {
        Err(e) => Ok(fail(&e.to_string(), e.exit_code())),
        Ok(()) if tally.refused + tally.skipped > 0 => Ok(ExitCode::from(EXIT_USER)),
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
            Err(NotRead::Skipped(why)) => {
                tally.skipped += 1;
                progress.note(&format!("sealmail import: skipped: {why}"));
                continue;
            }
            Err(NotRead::Failed(e)) => {
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
        let cannot = |e: &dyn std::fmt::Display| format!("cannot read {}: {e}", path.display());
        // why: the operator may name PATH through a link: resolved once, here;
        // below it nothing is followed.
        let real = std::fs::canonicalize(path).map_err(|e| cannot(&e))?;
        if std::fs::symlink_metadata(&real)
            .map_err(|e| cannot(&e))?
            .is_dir()
        {
            return Dir::open_root(&real, false)
                .map_err(|e| e.to_string())
                .and_then(maildir_files);
        }
        let (Some(parent), Some(name)) = (real.parent(), real.file_name()) else {
            return Err(cannot(&"neither a directory nor a file"));
        };
        let mut file = Dir::open_root(parent, false)
            .and_then(|dir| dir.open_regular(name))
            .map_err(|e| format!("{e}; give a Maildir (with cur/ and new/) or an mbox file"))?;
        let mut head = [0u8; 5];
        let n = file.read(&mut head).map_err(|e| cannot(&e))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| cannot(&e))?;
        if n == 0 || head.starts_with(b"From ") {
            return Ok(Layout::Mbox(path.to_owned(), file));
        }
        Err(format!(
            "{} is not an mbox file (its first line does not start with \"From \") nor a Maildir directory; give a Maildir (with cur/ and new/) or an mbox file",
            path.display()
        ))
    }

    /// How many entries, when known without reading them all.
    fn count(&self) -> Option<u64> {
        match self {
            Layout::Maildir { files, skipped } => u64::try_from(files.len() + skipped.len()).ok(),
            Layout::Mbox(..) => None,
        }
    }

    fn items(self) -> Box<dyn Iterator<Item = Result<Item, NotRead>>> {
        match self {
            Layout::Maildir { files, skipped } => Box::new(
                skipped
                    .into_iter()
                    .map(|why| Err(NotRead::Skipped(why)))
                    .chain(files.into_iter().map(|f| maildir_item(&f))),
            ),
            Layout::Mbox(path, file) => Box::new(mbox_items(path, file)),
        }
    }
}

/// The message files of the Maildir `root` (`new/` then `cur/`, each in
/// name order); dot files are passed over, as Maildir readers do, and
/// anything that is not a regular file is noted as skipped.
fn maildir_files(root: Dir) -> Result<Layout, String> {
    let (mut files, mut skipped, mut found) = (Vec::new(), Vec::new(), false);
    for sub in ["new", "cur"] {
        let dir = match root.open_dir(OsStr::new(sub)) {
            Ok(Some(dir)) => Rc::new(dir),
            Ok(None) => continue,
            Err(e @ (TreeError::Link(_) | TreeError::Kind { .. })) => {
                skipped.push(e.to_string());
                continue;
            }
            Err(e) => return Err(format!("cannot read {e}")),
        };
        found = true;
        for (name, kind) in dir.entries().map_err(|e| format!("cannot read {e}"))? {
            if name.as_bytes().starts_with(b".") {
                continue;
            }
            if kind == FileType::RegularFile {
                files.push(MaildirFile {
                    dir: Rc::clone(&dir),
                    name,
                });
            } else {
                skipped.push(TreeError::not_regular(dir.path().join(&name), kind).to_string());
            }
        }
    }
    if !found && skipped.is_empty() {
        return Err(format!(
            "{} is not a Maildir (it has no cur/ or new/ directory); give a Maildir or an mbox file",
            root.path().display()
        ));
    }
    Ok(Layout::Maildir { files, skipped })
}

fn maildir_item(f: &MaildirFile) -> Result<Item, NotRead> {
    let label = f.dir.path().join(&f.name).display().to_string();
    let mut file = f.dir.open_regular(&f.name).map_err(|e| match e {
        TreeError::Io(..) => NotRead::Failed(e.to_string()),
        e => NotRead::Skipped(e.to_string()),
    })?;
    let mut raw = Vec::new();
    file.read_to_end(&mut raw)
        .map_err(|e| NotRead::Failed(format!("{label}: {e}")))?;
    let internal_date = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok());
    Ok(Item {
        label,
        raw,
        maildir_flags: maildir_flags(&f.name.to_string_lossy()),
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

fn mbox_items(path: PathBuf, file: File) -> impl Iterator<Item = Result<Item, NotRead>> {
    MessageIterator::new(BufReader::new(file))
        .enumerate()
        .map(move |(n, msg)| {
            let label = format!("{} message {}", path.display(), n + 1);
            let msg = msg.map_err(|e| NotRead::Failed(format!("{label}: {e}")))?;
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
