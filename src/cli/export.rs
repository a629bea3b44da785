//! `sealmail export`: one Maildir per mailbox under the target directory,
//! each message file exactly as stored (S/MIME for an encrypted account).
//!
//! File names follow the Maildir convention `TIME.uUID.HOST:2,FLAGS` in
//! `cur/`; a second export into the same directory skips messages whose
//! file is already there, so an interrupted export can be run again.
//!
//! Mailbox names are chosen by mail users and export usually runs as
//! root, so a name never decides where a file goes: each level is encoded
//! as a safe file name (`maildir_path`), and every directory and file
//! below DIR is created without following links (`nofollow`). A link
//! found inside DIR stops the export with a message; DIR itself may be a
//! link (the operator chose it).

use std::ffi::OsStr;
use std::io::Write as _;
use std::process::ExitCode;

use hyper::Method;

use super::client::{segment, AdminClient, ClientError};
use super::maildir_path;
use super::{Cli, ExportArgs, EXIT_USER};
use crate::admin::api::{MailboxView, MessageView};
use crate::nofollow::{Dir, TreeError};

/// `sealmail export --help`.
pub(super) const LONG_ABOUT: &str = "\
Write an account's mail as Maildir under DIR, one Maildir per mailbox,
each message file exactly as stored (S/MIME for an encrypted account).
Running it again into the same DIR writes only what is missing.

Mailbox names become directories: each level of a name (levels are
separated by /) is one directory, INBOX at DIR/INBOX, Archive/2024 at
DIR/Archive/2024. In a level, ASCII letters and digits, space, - _ + ,
and non-ASCII letters are kept; every other character (. / \\ % : control
characters, ...) is written as %XX per UTF-8 byte, a level named cur, new
or tmp gets its first letter encoded (%63ur), and an empty level is %.
So no name can step out of DIR or make a hidden file, and two mailboxes
never share a directory.

Nothing inside DIR is followed if it is a symbolic link: export stops
and names the link (DIR itself may be a link). A mailbox whose encoded
name would be over 255 bytes per level is skipped and named; exit code 1
then.";

pub(super) fn run(cli: &Cli, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sealmail export: {e}");
            return Ok(ExitCode::from(EXIT_USER));
        }
    };
    let outcome = AdminClient::new(&config.data_dir)
        .map_err(ExportError::from)
        .and_then(|client| export(&client, args));
    Ok(report(args, outcome))
}

/// Prints what came of the export; the exit code.
fn report(args: &ExportArgs, outcome: Result<Exported, ExportError>) -> ExitCode {
    let to = args.to.display();
    match outcome {
        Ok(done) => {
            for skipped in &done.skipped {
                eprintln!("sealmail export: skipped: {skipped}");
            }
            let skipped = match done.skipped.len() {
                0 => String::new(),
                n => format!(" ({n} mailboxes skipped, see above)"),
            };
            println!(
                "exported {} messages of {} to {to}{skipped}",
                done.count, args.email
            );
            if done.skipped.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_USER)
            }
        }
        Err(ExportError::Client(e)) => {
            eprintln!("sealmail export: {e}");
            ExitCode::from(e.exit_code())
        }
        Err(ExportError::Tree(TreeError::Link(path))) => {
            eprintln!(
                "sealmail export: {path:?} is a symbolic link; export never follows links inside {to} (a link there could send an account's mail elsewhere): remove it, or export into a new directory"
            );
            ExitCode::from(EXIT_USER)
        }
        Err(ExportError::Tree(e)) => {
            eprintln!("sealmail export: cannot write under {to}: {e}");
            ExitCode::from(EXIT_USER)
        }
    }
}

/// What an export did.
#[derive(Debug, Default)]
struct Exported {
    count: usize,
    /// Mailboxes that could not be written, with the reason.
    skipped: Vec<String>,
}

enum ExportError {
    Client(ClientError),
    Tree(TreeError),
}

impl From<ClientError> for ExportError {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

impl From<TreeError> for ExportError {
    fn from(e: TreeError) -> Self {
        Self::Tree(e)
    }
}

fn export(client: &AdminClient, args: &ExportArgs) -> Result<Exported, ExportError> {
    let account = segment(&args.email);
    let mailboxes: Vec<MailboxView> = client.json(
        Method::GET,
        &format!("/accounts/{account}/mailboxes"),
        None::<&()>,
    )?;
    let wanted: Vec<&MailboxView> = match &args.mailbox {
        Some(name) => {
            let found: Vec<&MailboxView> = mailboxes.iter().filter(|m| &m.name == name).collect();
            if found.is_empty() {
                let names: Vec<&str> = mailboxes.iter().map(|m| m.name.as_str()).collect();
                return Err(ClientError::Refused(format!(
                    "no mailbox {name:?} in {}; it has: {}",
                    args.email,
                    names.join(", ")
                ))
                .into());
            }
            found
        }
        None => mailboxes.iter().collect(),
    };
    let root = Dir::open_root(&args.to, true)?;
    let mut done = Exported::default();
    for mailbox in wanted {
        let levels = match maildir_path::levels(&mailbox.name) {
            Ok(levels) => levels,
            Err(why) => {
                done.skipped.push(why);
                continue;
            }
        };
        let maildir = Maildir::create(&root, &levels)?;
        let path = format!(
            "/accounts/{account}/mailboxes/{}/messages",
            segment(&mailbox.name)
        );
        let messages: Vec<MessageView> = client.json(Method::GET, &path, None::<&()>)?;
        for m in &messages {
            done.count += export_message(client, &account, &maildir, m)?;
        }
    }
    Ok(done)
}

/// The `cur/` and `tmp/` of one mailbox's Maildir.
struct Maildir {
    cur: Dir,
    tmp: Dir,
}

impl Maildir {
    /// Creates (or opens) `root/levels.../{cur,new,tmp}`, never through a link.
    fn create(root: &Dir, levels: &[String]) -> Result<Self, TreeError> {
        let mut below: Option<Dir> = None;
        for level in levels {
            let parent = below.as_ref().unwrap_or(root);
            below = Some(parent.create_dir(OsStr::new(level))?);
        }
        let dir = below.as_ref().unwrap_or(root);
        let cur = dir.create_dir(OsStr::new("cur"))?;
        dir.create_dir(OsStr::new("new"))?;
        let tmp = dir.create_dir(OsStr::new("tmp"))?;
        Ok(Self { cur, tmp })
    }
}

/// Writes one message through `tmp/` (Maildir's crash-safe delivery);
/// returns 0 when it was already exported.
fn export_message(
    client: &AdminClient,
    account: &str,
    maildir: &Maildir,
    m: &MessageView,
) -> Result<usize, ExportError> {
    // why: only the flag letters go into a file name, whatever the server sent.
    let flags: String = m
        .maildir_flags
        .chars()
        .filter(char::is_ascii_uppercase)
        .collect();
    let base = format!("{}.u{}.sealmail", m.internal_date, m.uid);
    let name = format!("{base}:2,{flags}");
    match maildir.cur.kind(OsStr::new(&name))? {
        None => {}
        Some(rustix::fs::FileType::RegularFile) => return Ok(0),
        Some(rustix::fs::FileType::Symlink) => {
            return Err(TreeError::Link(maildir.cur.path().join(&name)).into())
        }
        Some(_) => {
            return Err(TreeError::Kind {
                path: maildir.cur.path().join(&name),
                found: "in the way: not a regular file",
            }
            .into())
        }
    }
    let bytes = client.call(
        Method::GET,
        &format!("/accounts/{account}/blobs/{}", m.blob),
        None::<&()>,
    )?;
    let tmp_name = OsStr::new(&base);
    // why: a file left in tmp/ by an interrupted export is ours to replace.
    maildir.tmp.remove_file(tmp_name)?;
    let io = |e| TreeError::Io(maildir.tmp.path().join(&base), e);
    let mut file = maildir.tmp.create_new(tmp_name)?;
    file.write_all(&bytes).map_err(io)?;
    maildir
        .tmp
        .rename(tmp_name, &maildir.cur, OsStr::new(&name))?;
    Ok(1)
}
