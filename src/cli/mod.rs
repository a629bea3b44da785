//! The `sealmail` command line.
//!
//! Offline commands (`encrypt`, `cert inspect`) work on files and standard
//! streams; `serve` runs the server; `store migrate` and `restore` work on
//! a stopped server's store; every other command is a client of the running
//! server's management API on `data_dir/admin.sock`. Exit codes
//! are part of the contract: 0 ok, 1 a user error (the message says what
//! and how to fix it), 2 an internal error or an unreachable server.

mod backup;
mod client;
mod encrypt;
mod export;
mod import;
mod inspect;
mod maildir_path;
mod manage;
mod progress;
mod reading;
mod reencrypt;
mod serve;
mod store;
mod table;
mod tokens;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use sealmail_plugin_api::{ContentCipher, KeyTransport};

use crate::text;

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
    /// Run the server (LMTP, IMAP, JMAP, management socket).
    Serve(ServeArgs),
    /// Accounts.
    #[command(subcommand)]
    Account(AccountCommand),
    /// Certificates of an account, and offline inspection.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Encryption at rest of an account.
    #[command(subcommand)]
    Encryption(EncryptionCommand),
    /// Mailing lists.
    #[command(subcommand)]
    List(ListCommand),
    /// App tokens of an account: secrets that log in to JMAP (Bearer)
    /// and IMAP (as the password) instead of the account password.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Server-side reading of an account: its private key held (wrapped
    /// under its password) so that any client reads its mail decrypted.
    #[command(subcommand)]
    Reading(ReadingCommand),
    /// Write an account's mail as Maildir, each message exactly as stored.
    #[command(long_about = export::LONG_ABOUT)]
    Export(ExportArgs),
    /// Bring a Maildir or an mbox file into a mailbox, through the hook
    /// chain (so an opted-in account's mail is stored encrypted).
    #[command(long_about = import::LONG_ABOUT)]
    Import(ImportArgs),
    /// Encrypt an account's mail that is still stored in clear.
    #[command(long_about = reencrypt::LONG_ABOUT)]
    Reencrypt(ReencryptArgs),
    /// Encrypt one message from standard input to standard output as S/MIME
    /// (offline filter; the e-mail address rule is not applied).
    Encrypt(EncryptArgs),
    /// The storage engine (server stopped).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Write a consistent backup of the running server into DIR (online:
    /// delivery goes on).
    #[command(long_about = backup::BACKUP_ABOUT)]
    Backup(BackupArgs),
    /// Bring a backup back into the data directory (server stopped).
    #[command(long_about = backup::RESTORE_ABOUT)]
    Restore(RestoreArgs),
}

/// Arguments of `sealmail backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup directory: new or empty.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Arguments of `sealmail restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory written by `sealmail backup`.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Move a store already in the data directory (db/, segments/) aside
    /// to data_dir/pre-restore-<unix time>/ instead of refusing.
    #[arg(long)]
    pub replace: bool,
}

/// `sealmail store ...`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Move this RocksDB installation to another engine (server stopped,
    /// resumable, verified).
    #[command(long_about = store::LONG_ABOUT)]
    Migrate(MigrateArgs),
}

/// Arguments of `sealmail store migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The target engine, e.g. postgres://USER@HOST:PORT/DATABASE (a new, empty database).
    #[arg(long, value_name = "URL")]
    pub to: String,
}

/// Arguments of `sealmail serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Log format on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

/// Log formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// `--json` for listing and status commands.
#[derive(Debug, Clone, Copy, Args)]
pub struct JsonFlag {
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `sealmail account ...`
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account (without --password-stdin it receives mail but cannot log in).
    Add {
        /// Primary address.
        email: String,
        /// Read the login password from standard input (first line).
        #[arg(long)]
        password_stdin: bool,
        /// Another address that delivers to this account; repeat for several.
        #[arg(long = "alias", value_name = "EMAIL")]
        aliases: Vec<String>,
    },
    /// List accounts.
    List(JsonFlag),
    /// Remove an account and all its mail, certificates and logs.
    Remove {
        /// The account.
        email: String,
    },
    /// Set an account's quota: bytes of stored mail it may hold.
    Quota {
        /// The account.
        email: String,
        /// A size such as 2GiB, 500MB or 1048576 (bytes), or `default` for
        /// `limits.account_quota`.
        size: String,
    },
    /// Set an account's password, read from standard input.
    Passwd {
        /// The account.
        email: String,
        /// Read the password from standard input (required).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

/// `sealmail cert ...`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Add the certificates of FILE (PEM, DER or PKCS#7) to an account.
    Add {
        /// The account.
        email: String,
        /// The certificate file.
        file: PathBuf,
        /// A note shown in listings.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List an account's certificates.
    List {
        /// The account.
        email: String,
        /// JSON output.
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Remove a certificate by fingerprint (hex; colons and upper case accepted).
    Remove {
        /// The account.
        email: String,
        /// SHA-256 fingerprint.
        fingerprint: String,
    },
    /// Show what would be recorded for a certificate file and whether it
    /// passes the rules for encryption.
    Inspect(InspectArgs),
}

/// `sealmail reading ...`
#[derive(Debug, Subcommand)]
pub enum ReadingCommand {
    /// Hand over a private key (unencrypted PEM) matching an active
    /// certificate and switch server-side reading on; the account's own
    /// password is read from standard input.
    Enable {
        /// The account.
        email: String,
        /// The private key file (PEM: PKCS#8, PKCS#1 or SEC 1).
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Read the account's password from standard input (it is read
        /// from there in any case).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Switch server-side reading off and remove the held keys.
    Disable {
        /// The account.
        email: String,
    },
    /// Whether reading is on, which keys are held, whether unlocked.
    Status {
        /// The account.
        email: String,
        /// JSON output.
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `sealmail token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make an app token; its secret is printed this once.
    Add {
        /// The account.
        email: String,
        /// A name to tell it apart (e.g. the device).
        #[arg(long, default_value = "")]
        name: String,
        /// JSON output.
        #[command(flatten)]
        json: JsonFlag,
    },
    /// List an account's app tokens (never their secrets).
    List {
        /// The account.
        email: String,
        /// JSON output.
        #[command(flatten)]
        json: JsonFlag,
    },
    /// Revoke an app token: the next login with it fails.
    Remove {
        /// The account.
        email: String,
        /// The token's id (from `token list`).
        id: String,
    },
}

/// `sealmail encryption ...`
#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    /// Store the account's new mail encrypted for its active certificates.
    ///
    /// Both what arrives over LMTP and what the account's own mail clients
    /// store (IMAP APPEND, JMAP Email/import: drafts, sent copies) are
    /// encrypted. With --append-in-clear the clients' copies are stored as
    /// the clients send them: clients without the user's key (webmail, a
    /// phone) can then read drafts and sent mail, but those copies lie in
    /// plaintext on the server's disk.
    Enable {
        /// The account.
        email: String,
        /// Content-encryption algorithm (kept as it is when not given; aes256 at first).
        #[arg(long, value_enum)]
        algorithm: Option<Algorithm>,
        /// Key transport to the account's RSA certificates (kept as it is
        /// when not given; pkcs1 at first). oaep is RSAES-OAEP with
        /// SHA-256: OpenSSL opens it, many mail clients do not (README).
        #[arg(long, value_enum)]
        key_transport: Option<KeyTransportArg>,
        /// Store mail the account's clients append (drafts, sent copies)
        /// as sent: readable without the user's key, but plaintext on disk.
        #[arg(long)]
        append_in_clear: bool,
        /// Accepted for old scripts and changes nothing: appended mail is
        /// encrypted by default.
        #[arg(long, hide = true, conflicts_with = "append_in_clear")]
        encrypt_on_append: bool,
    },
    /// Store new mail as it arrives.
    Disable {
        /// The account.
        email: String,
    },
    /// Show the account's encryption settings and warnings.
    Status {
        /// The account.
        email: String,
        /// JSON output.
        #[command(flatten)]
        json: JsonFlag,
    },
}

/// `sealmail list ...`
#[derive(Debug, Subcommand)]
pub enum ListCommand {
    /// Create a mailing list.
    Add {
        /// The list's address.
        list: String,
        /// A member address; repeat for several.
        #[arg(long = "member", value_name = "EMAIL")]
        members: Vec<String>,
        /// Owner address, sender of notices (default owner-LIST).
        #[arg(long)]
        owner: Option<String>,
    },
    /// Show lists with their members and keys.
    Show(JsonFlag),
    /// Members of a list.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Key pairs of a list (decrypt mail sent encrypted to the list).
    #[command(subcommand)]
    Key(ListKeyCommand),
}

/// `sealmail list member ...`
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member.
    Add {
        /// The list.
        list: String,
        /// The member.
        email: String,
    },
    /// Remove a member.
    Remove {
        /// The list.
        list: String,
        /// The member.
        email: String,
    },
}

/// `sealmail list key ...`
#[derive(Debug, Subcommand)]
pub enum ListKeyCommand {
    /// Add a key pair: the list's certificate and its unencrypted PEM private key.
    Add {
        /// The list.
        list: String,
        /// Certificate file (PEM or DER).
        #[arg(long)]
        cert: PathBuf,
        /// Private key file (unencrypted PEM, PKCS#8 or PKCS#1).
        #[arg(long)]
        key: PathBuf,
    },
}

/// Arguments of `sealmail export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The account.
    pub email: String,
    /// Directory to write one Maildir per mailbox into (INBOX at DIR/INBOX).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
    /// Only this mailbox.
    #[arg(long)]
    pub mailbox: Option<String>,
}

/// Arguments of `sealmail import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The account.
    pub email: String,
    /// A Maildir (a directory with cur/ and new/) or an mbox file.
    pub path: PathBuf,
    /// Mailbox to import into; created when missing.
    #[arg(long, default_value = "INBOX")]
    pub mailbox: String,
}

/// Arguments of `sealmail reencrypt`.
#[derive(Debug, Args)]
pub struct ReencryptArgs {
    /// The account (encryption must be enabled).
    pub email: String,
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
    /// Key transport to RSA certificates.
    #[arg(long, value_enum, default_value_t = KeyTransportArg::Pkcs1)]
    pub key_transport: KeyTransportArg,
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
    /// AES-256-GCM (AuthEnvelopedData).
    #[value(name = "aes256-gcm")]
    Aes256Gcm,
    /// AES-128-GCM (AuthEnvelopedData).
    #[value(name = "aes128-gcm")]
    Aes128Gcm,
}

impl From<Algorithm> for ContentCipher {
    fn from(a: Algorithm) -> Self {
        match a {
            Algorithm::Aes256 => ContentCipher::Aes256Cbc,
            Algorithm::Aes128 => ContentCipher::Aes128Cbc,
            Algorithm::Aes256Gcm => ContentCipher::Aes256Gcm,
            Algorithm::Aes128Gcm => ContentCipher::Aes128Gcm,
        }
    }
}

/// Key transport names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTransportArg {
    /// RSAES-PKCS1-v1_5 (default).
    Pkcs1,
    /// RSAES-OAEP with SHA-256 and MGF1-SHA-256.
    Oaep,
}

impl From<KeyTransportArg> for KeyTransport {
    fn from(k: KeyTransportArg) -> Self {
        match k {
            KeyTransportArg::Pkcs1 => KeyTransport::RsaPkcs1v15,
            KeyTransportArg::Oaep => KeyTransport::RsaOaep,
        }
    }
}

impl Cli {
    /// The configuration the command line points at (`--config`, the
    /// environment, the defaults), with `--data-dir` applied.
    pub fn config(&self) -> Result<crate::config::Config, crate::config::ConfigError> {
        let mut config = crate::config::Config::from_process(self.config.as_deref())?;
        if let Some(dir) = &self.data_dir {
            config.data_dir.clone_from(dir);
        }
        Ok(config)
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
        Command::Serve(args) => serve::run(&cli, args),
        Command::Export(args) => export::run(&cli, args),
        Command::Import(args) => import::run(&cli, args),
        Command::Reencrypt(args) => reencrypt::run(&cli, args),
        Command::Store(StoreCommand::Migrate(args)) => store::run(&cli, args),
        Command::Backup(args) => backup::run_backup(&cli, args),
        Command::Restore(args) => backup::run_restore(&cli, args),
        _ => manage::run(&cli),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("sealmail: {}", text::escape(&format!("{err:#}")));
            ExitCode::from(EXIT_INTERNAL)
        }
    }
}
