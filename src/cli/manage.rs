//! The commands that manage a running server: account, cert (add, list,
//! remove), encryption, list. Each is one management API call and a
//! printout.
//!
//! Everything printed goes through [`Output`]: a `Line` is escaped for the
//! terminal when it is printed, a `Text` is made only by the table
//! renderer or the JSON writer, which escape what they draw; error
//! messages (the server relays users' input in them) are escaped too.

use std::io::{BufRead as _, Read as _};
use std::process::ExitCode;

use base64::Engine as _;
use hyper::Method;
use serde::Serialize;

use super::client::{segment, AdminClient, ClientError};
use super::table::render;
use super::{
    AccountCommand, CertCommand, Cli, Command, EncryptionCommand, ListCommand, ListKeyCommand,
    MemberCommand, EXIT_USER,
};
use crate::admin::api::{
    AccountAdd, AccountView, CertAdd, CertView, EncryptionSet, EncryptionView, ListAdd, ListKeyAdd,
    ListView, MemberAdd, PasswordSet, QuotaSet,
};
use crate::text::{escape, escape_json};

/// What a command prints on success.
pub(super) enum Output {
    /// One line, escaped when printed.
    Line(String),
    /// Already safe for the terminal: made by `table::render`,
    /// `escape_json` or from escaped parts.
    Text(String),
}

pub(super) fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = match cli.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("sealmail: {e}");
            return Ok(ExitCode::from(EXIT_USER));
        }
    };
    let result = AdminClient::new(&config.data_dir)
        .map_err(Failure::from)
        .and_then(|client| dispatch(&client, &cli.command));
    match result {
        Ok(Output::Line(line)) => println!("{}", escape(&line)),
        Ok(Output::Text(text)) => print!("{text}"),
        Err(Failure::Client(e)) => {
            eprintln!("sealmail: {}", escape(&e.to_string()));
            return Ok(ExitCode::from(e.exit_code()));
        }
        Err(Failure::Input(message)) => {
            eprintln!("sealmail: {}", escape(&message));
            return Ok(ExitCode::from(EXIT_USER));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A command that could not be done.
pub(super) enum Failure {
    Client(ClientError),
    /// Local input (a file, standard input) that cannot be read.
    Input(String),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

fn dispatch(client: &AdminClient, command: &Command) -> Result<Output, Failure> {
    match command {
        Command::Account(c) => account(client, c),
        Command::Cert(c) => cert(client, c),
        Command::Encryption(c) => encryption(client, c),
        Command::List(c) => list(client, c),
        Command::Token(c) => super::tokens::run(client, c),
        Command::Reading(c) => super::reading::run(client, c),
        _ => Err(Failure::Input(
            "this command does not talk to the server".into(),
        )),
    }
}

pub(super) fn json_or<T: Serialize>(
    json: bool,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<Output, Failure> {
    if json {
        let text =
            serde_json::to_string_pretty(value).map_err(|e| Failure::Input(e.to_string()))?;
        // why escape_json and not only serde: serde writes DEL, C1 and bidi
        // controls raw, which a terminal acts on; as \uXXXX they decode to
        // the same strings for every JSON reader.
        Ok(Output::Text(format!("{}\n", escape_json(&text))))
    } else {
        Ok(Output::Text(table(value)))
    }
}

fn read_password() -> Result<String, Failure> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Failure::Input(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(Failure::Input("the password on standard input is empty; pipe one line, e.g. `echo secret | sealmail ...`".into()));
    }
    Ok(password)
}

fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Failure::Input(format!("cannot read {}: {e}", path.display())))?;
    Ok(bytes)
}

fn account(client: &AdminClient, command: &AccountCommand) -> Result<Output, Failure> {
    match command {
        AccountCommand::Add {
            email,
            password_stdin,
            aliases,
        } => {
            let password = password_stdin.then(read_password).transpose()?;
            let body = AccountAdd {
                email: email.clone(),
                password,
                aliases: aliases.clone(),
            };
            let a: AccountView = client.json(Method::POST, "/accounts", Some(&body))?;
            let login = if a.has_password {
                "can log in"
            } else {
                "receives mail, cannot log in (no password)"
            };
            Ok(Output::Line(format!("account {} added; {login}", a.email)))
        }
        AccountCommand::List(flag) => {
            let accounts: Vec<AccountView> = client.json(Method::GET, "/accounts", None::<&()>)?;
            json_or(flag.json, &accounts, |accounts| {
                let rows = accounts
                    .iter()
                    .map(|a| {
                        vec![
                            a.email.clone(),
                            a.aliases.join(","),
                            yes_no(a.has_password),
                            a.used_bytes.to_string(),
                            a.created.clone(),
                        ]
                    })
                    .collect::<Vec<_>>();
                render(&["ACCOUNT", "ALIASES", "LOGIN", "BYTES", "CREATED"], &rows)
            })
        }
        AccountCommand::Remove { email } => {
            client.call(
                Method::DELETE,
                &format!("/accounts/{}", segment(email)),
                None::<&()>,
            )?;
            Ok(Output::Line(format!(
                "account {email} removed with all its mail"
            )))
        }
        AccountCommand::Quota { email, size } => {
            let quota_bytes = parse_size(size)?;
            client.call(
                Method::PUT,
                &format!("/accounts/{}/quota", segment(email)),
                Some(&QuotaSet { quota_bytes }),
            )?;
            Ok(Output::Line(match quota_bytes {
                Some(bytes) => format!("quota of {email} set to {bytes} bytes"),
                None => format!("{email} uses the default quota (limits.account_quota)"),
            }))
        }
        AccountCommand::Passwd { email, .. } => {
            let body = PasswordSet {
                password: read_password()?,
            };
            client.call(
                Method::PUT,
                &format!("/accounts/{}/password", segment(email)),
                Some(&body),
            )?;
            Ok(Output::Line(format!("password of {email} changed")))
        }
    }
}

/// A size as `account quota` takes it: bytes, or a number with a unit
/// (KB, MB, GB, TB decimal; KiB, MiB, GiB, TiB binary; any case), or
/// `default` (`None`).
fn parse_size(text: &str) -> Result<Option<u64>, ClientError> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("default") {
        return Ok(None);
    }
    let bad = || {
        ClientError::Refused(format!(
        "{text:?} is not a size; give bytes (1048576), a number with a unit (500MB, 2GiB) or `default`"
    ))
    };
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return Err(bad()),
    };
    number.checked_mul(factor).map(Some).ok_or_else(bad)
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn cert_rows(certs: &[CertView]) -> String {
    let rows = certs
        .iter()
        .map(|c| {
            vec![
                c.fingerprint.clone(),
                if c.is_active { "active" } else { "inactive" }.to_string(),
                c.email_addresses.join(","),
                c.not_after.clone(),
                format!(
                    "{} {}",
                    c.key_algorithm,
                    c.key_size.map(|b| b.to_string()).unwrap_or_default()
                ),
                c.description.clone(),
            ]
        })
        .collect::<Vec<_>>();
    render(
        &[
            "FINGERPRINT",
            "STATE",
            "E-MAIL",
            "NOT AFTER",
            "KEY",
            "DESCRIPTION",
        ],
        &rows,
    )
}

fn cert(client: &AdminClient, command: &CertCommand) -> Result<Output, Failure> {
    match command {
        CertCommand::Add {
            email,
            file,
            description,
        } => {
            let body = CertAdd {
                data: base64::engine::general_purpose::STANDARD.encode(read_file(file)?),
                description: description.clone(),
            };
            let added: Vec<CertView> = client.json(
                Method::POST,
                &format!("/accounts/{}/certs", segment(email)),
                Some(&body),
            )?;
            Ok(Output::Text(format!(
                "added to {}:\n{}",
                escape(email),
                cert_rows(&added)
            )))
        }
        CertCommand::List { email, json } => {
            let certs: Vec<CertView> = client.json(
                Method::GET,
                &format!("/accounts/{}/certs", segment(email)),
                None::<&()>,
            )?;
            json_or(json.json, &certs, |c| cert_rows(c))
        }
        CertCommand::Remove { email, fingerprint } => {
            let path = format!(
                "/accounts/{}/certs/{}",
                segment(email),
                segment(fingerprint)
            );
            client.call(Method::DELETE, &path, None::<&()>)?;
            Ok(Output::Line(format!(
                "certificate {fingerprint} removed from {email}"
            )))
        }
        CertCommand::Inspect(_) => Err(Failure::Input("cert inspect works offline".into())),
    }
}

fn encryption(client: &AdminClient, command: &EncryptionCommand) -> Result<Output, Failure> {
    let (email, change) = match command {
        EncryptionCommand::Enable {
            email,
            algorithm,
            key_transport,
            append_in_clear,
            ..
        } => (
            email,
            Some(EncryptionSet {
                enabled: Some(true),
                algorithm: algorithm.map(|a| {
                    sealmail_plugin_api::ContentCipher::from(a)
                        .jmap_name()
                        .to_string()
                }),
                key_transport: key_transport.map(|k| {
                    sealmail_plugin_api::KeyTransport::from(k)
                        .jmap_name()
                        .to_string()
                }),
                encrypt_on_append: Some(!*append_in_clear),
            }),
        ),
        EncryptionCommand::Disable { email } => (
            email,
            Some(EncryptionSet {
                enabled: Some(false),
                ..EncryptionSet::default()
            }),
        ),
        EncryptionCommand::Status { email, .. } => (email, None),
    };
    let path = format!("/accounts/{}/encryption", segment(email));
    let view: EncryptionView = match &change {
        Some(body) => client.json(Method::PUT, &path, Some(body))?,
        None => client.json(Method::GET, &path, None::<&()>)?,
    };
    let json = matches!(command, EncryptionCommand::Status { json, .. } if json.json);
    json_or(json, &view, |v| {
        let mut text = render(
            &[
                "ACCOUNT",
                "ENCRYPTION",
                "ALGORITHM",
                "KEY TRANSPORT",
                "ON APPEND",
                "ACTIVE CERTS",
            ],
            &[vec![
                v.email.clone(),
                if v.is_enabled { "enabled" } else { "disabled" }.to_string(),
                v.algorithm.clone(),
                v.key_transport.clone(),
                yes_no(v.encrypt_on_append),
                v.active_certificates.to_string(),
            ]],
        );
        for w in &v.warnings {
            text.push_str(&format!("warning: {}\n", escape(w)));
        }
        text
    })
}

fn list(client: &AdminClient, command: &ListCommand) -> Result<Output, Failure> {
    let view: ListView = match command {
        ListCommand::Add {
            list,
            members,
            owner,
        } => {
            let body = ListAdd {
                address: list.clone(),
                owner: owner.clone(),
                members: members.clone(),
            };
            client.json(Method::POST, "/lists", Some(&body))?
        }
        ListCommand::Show(flag) => {
            let lists: Vec<ListView> = client.json(Method::GET, "/lists", None::<&()>)?;
            return json_or(flag.json, &lists, |lists| {
                let rows = lists
                    .iter()
                    .map(|l| {
                        vec![
                            l.address.clone(),
                            l.owner.clone(),
                            l.members.len().to_string(),
                            l.keys.len().to_string(),
                        ]
                    })
                    .collect::<Vec<_>>();
                render(&["LIST", "OWNER", "MEMBERS", "KEYS"], &rows)
            });
        }
        ListCommand::Member(MemberCommand::Add { list, email }) => {
            let body = MemberAdd {
                email: email.clone(),
            };
            client.json(
                Method::POST,
                &format!("/lists/{}/members", segment(list)),
                Some(&body),
            )?
        }
        ListCommand::Member(MemberCommand::Remove { list, email }) => {
            let path = format!("/lists/{}/members/{}", segment(list), segment(email));
            client.json(Method::DELETE, &path, None::<&()>)?
        }
        ListCommand::Key(ListKeyCommand::Add { list, cert, key }) => {
            let key_pem = String::from_utf8(read_file(key)?)
                .map_err(|_| Failure::Input(format!("{} is not a PEM text file", key.display())))?;
            let body = ListKeyAdd {
                cert: base64::engine::general_purpose::STANDARD.encode(read_file(cert)?),
                key: key_pem,
            };
            client.json(
                Method::POST,
                &format!("/lists/{}/keys", segment(list)),
                Some(&body),
            )?
        }
    };
    Ok(Output::Line(format!(
        "list {} (owner {}): {} members, {} keys",
        view.address,
        view.owner,
        view.members.len(),
        view.keys.len()
    )))
}
