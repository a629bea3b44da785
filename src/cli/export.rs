//! `sealmail export`: one Maildir per mailbox under the target directory,
//! each message file exactly as stored (S/MIME for an encrypted account).
//!
//! File names follow the Maildir convention `TIME.uUID.HOST:2,FLAGS` in
//! `cur/`; a second export into the same directory skips messages whose
//! file is already there, so an interrupted export can be run again.

use std::path::Path;
use std::process::ExitCode;

use hyper::Method;

use super::client::{segment, AdminClient, ClientError};
use super::{Cli, ExportArgs, EXIT_USER};
use crate::admin::api::{MailboxView, MessageView};

pub(super) fn run(cli: &Cli, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sealmail export: {e}");
            return Ok(ExitCode::from(EXIT_USER));
        }
    };
    match AdminClient::new(&config.data_dir)
        .map_err(ExportError::from)
        .and_then(|client| export(&client, args))
    {
        Ok(count) => {
            println!(
                "exported {count} messages of {} to {}",
                args.email,
                args.to.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ExportError::Client(e)) => {
            eprintln!("sealmail export: {e}");
            Ok(ExitCode::from(e.exit_code()))
        }
        Err(ExportError::Io(e)) => {
            eprintln!(
                "sealmail export: cannot write under {}: {e}",
                args.to.display()
            );
            Ok(ExitCode::from(EXIT_USER))
        }
    }
}

enum ExportError {
    Client(ClientError),
    Io(std::io::Error),
}

impl From<ClientError> for ExportError {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

impl From<std::io::Error> for ExportError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

fn export(client: &AdminClient, args: &ExportArgs) -> Result<usize, ExportError> {
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
    let mut count = 0;
    for mailbox in wanted {
        let dir = args.to.join(&mailbox.name);
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(dir.join(sub))?;
        }
        let path = format!(
            "/accounts/{account}/mailboxes/{}/messages",
            segment(&mailbox.name)
        );
        let messages: Vec<MessageView> = client.json(Method::GET, &path, None::<&()>)?;
        for m in &messages {
            count += export_message(client, &account, &dir, m)?;
        }
    }
    Ok(count)
}

/// Writes one message through `tmp/` (Maildir's crash-safe delivery);
/// returns 0 when it was already exported.
fn export_message(
    client: &AdminClient,
    account: &str,
    dir: &Path,
    m: &MessageView,
) -> Result<usize, ExportError> {
    let base = format!("{}.u{}.sealmail", m.internal_date, m.uid);
    let name = format!("{base}:2,{}", m.maildir_flags);
    let target = dir.join("cur").join(&name);
    if target.exists() {
        return Ok(0);
    }
    let bytes = client.call(
        Method::GET,
        &format!("/accounts/{account}/blobs/{}", m.blob),
        None::<&()>,
    )?;
    let tmp = dir.join("tmp").join(&base);
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, &target)?;
    Ok(1)
}
