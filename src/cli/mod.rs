//! The `sealmail` command line.
//!
//! Offline commands (`encrypt`, `cert inspect`) work on files and standard
//! streams. Exit codes are part of the contract: 0 ok, 1 a user error (the
//! message says what and how to fix it), 2 an internal error or an
//! unreachable server.

mod encrypt;
mod inspect;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use sealmail_plugin_api::ContentCipher;

/// A mail store that keeps opted-in accounts' mail encrypted at rest as S/MIME.
#[derive(Debug, Parser)]
#[command(name = "sealmail", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file (TOML); without it the embedded defaults apply.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Data directory of the server to talk to (overrides the config's `data_dir`).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Encrypt one message from standard input to standard output as S/MIME
    /// (offline filter; the e-mail address rule is not applied).
    Encrypt(EncryptArgs),
    /// Certificates.
    #[command(subcommand)]
    Cert(CertCommand),
}

/// `sealmail cert ...`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Show what would be recorded for a certificate file and whether it
    /// passes the rules for encryption.
    Inspect(InspectArgs),
}

/// Arguments of `sealmail encrypt`.
#[derive(Debug, Args)]
pub struct EncryptArgs {
    /// Recipient certificate file (PEM with one or several certificates,
    /// DER, or PKCS#7 bundle); repeat for several recipients.
    #[arg(long = "cert", value_name = "FILE", required = true)]
    pub certs: Vec<PathBuf>,
    /// Content-encryption algorithm.
    #[arg(long, value_enum, default_value_t = Algorithm::Aes256)]
    pub algorithm: Algorithm,
}

/// Arguments of `sealmail cert inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The certificate file (PEM, DER or PKCS#7 bundle).
    pub file: PathBuf,
    /// Check the e-mail address rule against this account address (repeat
    /// for aliases); without it that rule is reported as not checked.
    #[arg(long = "email", value_name = "EMAIL")]
    pub emails: Vec<String>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Content-encryption algorithm names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algorithm {
    /// AES-256-CBC (default).
    Aes256,
    /// AES-128-CBC.
    Aes128,
}

impl From<Algorithm> for ContentCipher {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::Aes256 => ContentCipher::Aes256Cbc,
            Algorithm::Aes128 => ContentCipher::Aes128Cbc,
        }
    }
}

/// Exit code for a user error: the message says what and how to fix it.
pub const EXIT_USER: u8 = 1;
/// Exit code for an internal error or an unreachable server.
pub const EXIT_INTERNAL: u8 = 2;

/// Parses the command line, runs the command and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Encrypt(args) => encrypt::run(args),
        Command::Cert(CertCommand::Inspect(args)) => inspect::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sealmail: {err:#}");
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}
