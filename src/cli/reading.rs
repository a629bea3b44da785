//! `sealmail reading enable|disable|status EMAIL`: server-side reading
//! over the management API (`admin::routes::reading`). `enable` sends the
//! key file and the account's own password, read from standard input; the
//! server stores the key only wrapped under that password.

use std::io::BufRead as _;

use hyper::Method;

use super::client::{segment, AdminClient};
use super::manage::{json_or, Failure, Output};
use super::table::render;
use super::ReadingCommand;
use crate::admin::api::{ReadingEnable, ReadingView};
use crate::reading::MAX_KEY_INPUT;

pub(super) fn run(client: &AdminClient, command: &ReadingCommand) -> Result<Output, Failure> {
    let path = |email: &str| format!("/accounts/{}/reading", segment(email));
    match command {
        ReadingCommand::Enable { email, key, .. } => {
            let bytes = std::fs::read(key)
                .map_err(|e| Failure::Input(format!("cannot read {}: {e}", key.display())))?;
            if bytes.len() > MAX_KEY_INPUT {
                return Err(Failure::Input(format!(
                    "{} is {} bytes; a private key file is at most {MAX_KEY_INPUT}; give the key itself (PEM)",
                    key.display(),
                    bytes.len()
                )));
            }
            let key_pem = String::from_utf8(bytes).map_err(|_| {
                Failure::Input(format!(
                    "{} is not a PEM file; convert a PKCS#12 file with `openssl pkcs12 -in F -nocerts -nodes`, or upload it over JMAP (PrivateKey/set with pkcs12)",
                    key.display()
                ))
            })?;
            let body = ReadingEnable {
                key_pem,
                password: read_password()?,
            };
            let view: ReadingView = client.json(Method::POST, &path(email), Some(&body))?;
            Ok(Output::Line(format!(
                "server-side reading enabled for {email}: {} key(s) held, wrapped under the account's password; sessions that log in with the password read its mail decrypted",
                view.keys.len()
            )))
        }
        ReadingCommand::Disable { email } => {
            let _: ReadingView = client.json(Method::DELETE, &path(email), None::<&()>)?;
            Ok(Output::Line(format!(
                "server-side reading disabled for {email}; its keys were removed from the server"
            )))
        }
        ReadingCommand::Status { email, json } => {
            let view: ReadingView = client.json(Method::GET, &path(email), None::<&()>)?;
            json_or(json.json, &view, rows)
        }
    }
}

/// The account's password: the first line of standard input.
fn read_password() -> Result<String, Failure> {
    let mut line = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Failure::Input(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        return Err(Failure::Input(
            "give the account's own password on standard input (the key is wrapped under it), e.g. `sealmail reading enable EMAIL --key F --password-stdin < pwfile`".into(),
        ));
    }
    Ok(password)
}

fn rows(view: &ReadingView) -> String {
    let state = if view.enabled { "on" } else { "off" };
    let unlocked = if view.unlocked { "yes" } else { "no" };
    let mut out = format!(
        "server-side reading for {}: {state}; unlocked on this server: {unlocked}\n",
        view.email
    );
    if view.keys.is_empty() {
        out.push_str("no private key held\n");
        return out;
    }
    let rows: Vec<Vec<String>> = view
        .keys
        .iter()
        .map(|k| vec![k.certificate.clone(), k.created.clone()])
        .collect();
    out.push_str(&render(&["CERTIFICATE", "HELD SINCE"], &rows));
    out
}
