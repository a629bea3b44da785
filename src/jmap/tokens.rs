//! `AppToken/get` and `AppToken/set` of sealmail's auth extension,
//! capability `urn:sealmail:params:jmap:auth` (ARCHITECTURE.md "Outside
//! contracts").
//!
//! An `AppToken` is `id` (16 hex digits), `name`, `created` and
//! `lastUsed` (UTCDate, `null` before its first use). `AppToken/set`
//! creates with an optional `name` and returns, this once, the `secret`
//! in the created object; destroy revokes at once. Tokens cannot be
//! updated: a new name is a new token. The secret is never returned by
//! `/get` (the store keeps only its hash, `store::tokens`).

use serde_json::{json, Map, Value};

use super::call::{get_response, parse, pick, select, Call, GetArgs};
use super::error::Error;
use super::set::{object, only, prop, SetArgs, SetOutcome};
use crate::admin::api::utc;
use crate::store::{AppToken, Credential, TokenId};

/// The JMAP object of a token.
fn view(t: &AppToken) -> Map<String, Value> {
    let obj = json!({
        "id": t.id.to_string(),
        "name": t.name,
        "created": utc(t.created),
        "lastUsed": t.last_used.map(utc),
    });
    match obj {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `AppToken/get`.
pub(crate) async fn get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse(args)?;
    let account_id = args.check(call)?;
    let (state, all) = call
        .blocking(|s, id| Ok((s.account(id)?.modseq.to_string(), s.list_app_tokens(id)?)))
        .await?;
    let props = args.properties.as_deref();
    let (list, not_found) = pick(
        &all,
        args.ids.as_deref(),
        |all, id| {
            let tid = id.parse::<TokenId>().ok()?;
            all.iter().find(|t| t.id == tid)
        },
        |t| select(view(t), props),
    );
    Ok(get_response(account_id, state, list, not_found))
}

/// `AppToken/set`: create and destroy.
pub(crate) async fn set(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: SetArgs = parse(args)?;
    let mut out = SetOutcome::begin(call, &args).await?;
    for (cid, obj) in args.create.unwrap_or_default() {
        let r = create(call, obj).await;
        out.created(call, cid, r);
    }
    for (id, _) in args.update.unwrap_or_default() {
        let refusal = Error::InvalidProperties {
            properties: vec!["name".into()],
            description: "app tokens cannot be changed; create a new one and destroy the old"
                .into(),
        };
        out.updated(id, Err(refusal));
    }
    for id in args.destroy.unwrap_or_default() {
        let r = destroy(call, &id).await;
        out.destroyed(id, r);
    }
    out.finish(call).await
}

async fn create(call: &Call, obj: Value) -> Result<Value, Error> {
    let obj = object(obj)?;
    only(&obj, &["name"])?;
    let name: String = prop(&obj, "name")?.unwrap_or_default();
    let password = call.password.clone();
    let made = call
        .blocking(move |s, id| {
            let made = s.add_app_token(id, &name)?;
            // why: a token made with the password in hand carries its own
            // copy of the server-side reading keys (`crate::reading`).
            if let Some(password) = password {
                let keys = s.open_reading_keys(id, Credential::Password(&password))?;
                s.add_token_reading_copy(id, made.token.id, &made.secret, &keys)?;
            }
            Ok(made)
        })
        .await?;
    let mut obj = view(&made.token);
    obj.insert("secret".into(), json!(made.secret));
    Ok(Value::Object(obj))
}

async fn destroy(call: &Call, id: &str) -> Result<(), Error> {
    let token: TokenId = id.parse().map_err(|_| Error::NotFound)?;
    call.blocking(move |s, id| Ok(s.remove_app_token(id, token)?))
        .await
}
