//! `EncryptionSettings/get|set` of the encryption extension: a singleton
//! (id `singleton`, as RFC 8621 §8 does for VacationResponse) with
//! `isEnabled`, `algorithm`, `keyTransport`, `encryptOnAppend` (true
//! unless the user opts out: drafts and sent copies the client stores are
//! then plaintext on disk), `serverSideReading` (`crate::reading`; on
//! needs a held private key) and read-only `warnings`.
//!
//! Changes go through [`manage::change_encryption`], as `sealmail
//! encryption enable` does, so enabling with no active certificate is
//! refused with the same message; `warnings` are computed as the
//! management API's `EncryptionView` does.

use serde_json::{json, Map, Value};

use super::call::{get_response, parse, select, Call, GetArgs};
use super::error::Error;
use super::set::{object, only, prop, SetArgs, SetOutcome};
use crate::admin::api::EncryptionView;
use crate::manage;

/// The singleton's id.
const SINGLETON: &str = "singleton";

/// `EncryptionSettings/get`.
pub(crate) async fn get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse(args)?;
    let account_id = args.check(call)?;
    let (state, obj) = call
        .blocking(|s, id| {
            let account = s.account(id)?;
            let settings = s.encryption_settings(id)?;
            let certs = s.list_certificates(id)?;
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let view = EncryptionView::new(&account.address, &settings, &certs, now);
            let mut obj = object_of(view);
            let reading = s.reading_status(id)?.enabled;
            obj.insert("serverSideReading".into(), json!(reading));
            Ok((account.modseq.to_string(), obj))
        })
        .await?;
    let props = args.properties.as_deref();
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    match &args.ids {
        None => list.push(select(obj, props)),
        Some(wanted) => {
            for id in wanted {
                if id == SINGLETON && list.is_empty() {
                    list.push(select(obj.clone(), props));
                } else if id != SINGLETON {
                    not_found.push(id.clone());
                }
            }
        }
    }
    Ok(get_response(account_id, state, list, not_found))
}

fn object_of(view: EncryptionView) -> Map<String, Value> {
    let mut obj = Map::new();
    obj.insert("id".into(), json!(SINGLETON));
    obj.insert("isEnabled".into(), json!(view.is_enabled));
    obj.insert("algorithm".into(), json!(view.algorithm));
    obj.insert("keyTransport".into(), json!(view.key_transport));
    obj.insert("encryptOnAppend".into(), json!(view.encrypt_on_append));
    obj.insert("warnings".into(), json!(view.warnings));
    obj
}

/// `EncryptionSettings/set`: update `singleton` only.
pub(crate) async fn set(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: SetArgs = parse(args)?;
    let mut out = SetOutcome::begin(call, &args).await?;
    for (cid, _) in args.create.unwrap_or_default() {
        out.created(call, cid, Err(Error::Singleton));
    }
    for (id, patch) in args.update.unwrap_or_default() {
        let r = if id == SINGLETON {
            update(call, patch).await
        } else {
            Err(Error::NotFound)
        };
        out.updated(id, r.map(|()| None));
    }
    for id in args.destroy.unwrap_or_default() {
        out.destroyed(id, Err(Error::Singleton));
    }
    out.finish(call).await
}

async fn update(call: &Call, patch: Value) -> Result<(), Error> {
    let patch = object(patch)?;
    only(
        &patch,
        &[
            "isEnabled",
            "algorithm",
            "keyTransport",
            "encryptOnAppend",
            "serverSideReading",
        ],
    )?;
    let reading: Option<bool> = prop(&patch, "serverSideReading")?;
    let enabled: Option<bool> = prop(&patch, "isEnabled")?;
    let algorithm: Option<String> = prop(&patch, "algorithm")?;
    let key_transport: Option<String> = prop(&patch, "keyTransport")?;
    let on_append: Option<bool> = prop(&patch, "encryptOnAppend")?;
    call.blocking(move |s, id| {
        let account = s.account(id)?;
        let change = manage::EncryptionChange {
            enabled,
            algorithm: algorithm.as_deref(),
            key_transport: key_transport.as_deref(),
            encrypt_on_append: on_append,
        };
        manage::change_encryption(s, &account, change)?;
        if let Some(on) = reading {
            s.set_server_side_reading(id, on)?;
        }
        Ok(())
    })
    .await?;
    if reading == Some(false) {
        call.server.ctx.keyring.forget(call.account.id);
    }
    Ok(())
}
