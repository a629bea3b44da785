//! `Identity/get` and `Identity/changes` (RFC 8621 §6): one Identity per
//! address of the account, its primary address first, then its aliases.
//! These are the addresses the account may send from
//! (`EmailSubmission`, `submission`): an operator adds an address with
//! `sealmail account add EMAIL --alias OTHER`, and users cannot create
//! identities of their own (`Identity/set` is not offered), so that no
//! account sends as another.
//!
//! An Identity's id is derived from its address, so it stays the same for
//! as long as the address belongs to the account; the state is derived
//! from the whole list, so it changes exactly when the list does.

use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};

use super::call::{get_response, parse, pick, select, Call, GetArgs};
use super::changes::ChangesArgs;
use super::error::Error;
use crate::store::Account;

/// One identity: its id and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `I` and 16 hex digits of the SHA-256 of the address.
    pub(crate) id: String,
    /// The address, lowercased as the account record keeps it.
    pub(crate) email: String,
}

fn short_hash(prefix: &str, text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// The identities of `account`.
pub(crate) fn of(account: &Account) -> Vec<Identity> {
    std::iter::once(&account.address)
        .chain(&account.aliases)
        .map(|a| Identity {
            id: short_hash("I", a),
            email: a.clone(),
        })
        .collect()
}

/// The Identity state of `account`.
fn state(account: &Account) -> String {
    let all: Vec<&str> = std::iter::once(account.address.as_str())
        .chain(account.aliases.iter().map(String::as_str))
        .collect();
    short_hash("i", &all.join("\n"))
}

fn view(i: &Identity) -> Map<String, Value> {
    let obj = json!({
        "id": i.id,
        "name": "",
        "email": i.email,
        "replyTo": null,
        "bcc": null,
        "textSignature": "",
        "htmlSignature": "",
        "mayDelete": false,
    });
    match obj {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The account as the store has it now (aliases may have changed since
/// the request authenticated).
async fn current(call: &Call) -> Result<Account, Error> {
    call.blocking(|s, id| Ok(s.account(id)?)).await
}

/// `Identity/get`.
pub(crate) async fn get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse(args)?;
    let account_id = args.check(call)?;
    let account = current(call).await?;
    let all = of(&account);
    let props = args.properties.as_deref();
    let (list, not_found) = pick(
        &all,
        args.ids.as_deref(),
        |all, id| all.iter().find(|i| i.id == id),
        |i| select(view(i), props),
    );
    Ok(get_response(account_id, state(&account), list, not_found))
}

/// `Identity/changes`: nothing since the current state; from any other
/// state the client must fetch the list again (`cannotCalculateChanges`,
/// RFC 8620 §5.2), which for a handful of addresses costs nothing.
pub(crate) async fn changes(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: ChangesArgs = parse(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let account = current(call).await?;
    let now = state(&account);
    if args.since_state != now {
        return Err(Error::CannotCalculateChanges(args.since_state));
    }
    Ok(json!({
        "accountId": account_id,
        "oldState": now,
        "newState": now,
        "hasMoreChanges": false,
        "created": [],
        "updated": [],
        "destroyed": [],
    }))
}
