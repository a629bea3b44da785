//! `PrivateKey/get` and `PrivateKey/set` of the encryption extension
//! (ARCHITECTURE.md "JMAP encryption extension"): the private keys an
//! account hands over for server-side reading (`crate::reading`).
//!
//! A `PrivateKey` is `id` (its certificate's fingerprint, one key per
//! certificate), `certificateId`, `fingerprint` and `created`. Create
//! takes `privateKey` (unencrypted PEM) or `pkcs12` (base64) with
//! `pkcs12Password`; the key must match one of the account's active
//! certificates. It is wrapped under the password the request
//! authenticated with, so a request made with an app token cannot create
//! one (`forbidden`: it carries no password). (An app token made over
//! JMAP gets its own copy of the keys held then: `tokens`.) No key material is ever
//! returned. Destroy forgets the key on this node at once.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::call::{get_response, parse, pick, select, Call, GetArgs};
use super::error::Error;
use super::ids;
use super::set::{object, only, prop, SetArgs, SetOutcome};
use crate::admin::api::utc;
use crate::reading::{import_key, ImportError, KeyInput, MAX_KEY_INPUT};
use crate::store::HeldKey;

/// The JMAP object of a held key.
fn view(k: &HeldKey) -> Map<String, Value> {
    let id = ids::certificate(k.certificate);
    let obj = json!({
        "id": id,
        "certificateId": id,
        "fingerprint": k.certificate.to_string(),
        "created": utc(k.created),
    });
    match obj {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// `PrivateKey/get`.
pub(crate) async fn get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse(args)?;
    let account_id = args.check(call)?;
    let (state, all) = call
        .blocking(|s, id| {
            Ok((
                s.account(id)?.modseq.to_string(),
                s.reading_status(id)?.keys,
            ))
        })
        .await?;
    let props = args.properties.as_deref();
    let (list, not_found) = pick(
        &all,
        args.ids.as_deref(),
        |all, id| {
            let fp = ids::parse_certificate(id)?;
            all.iter().find(|k| k.certificate == fp)
        },
        |k| select(view(k), props),
    );
    Ok(get_response(account_id, state, list, not_found))
}

/// `PrivateKey/set`: create and destroy.
pub(crate) async fn set(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: SetArgs = parse(args)?;
    let mut out = SetOutcome::begin(call, &args).await?;
    for (cid, obj) in args.create.unwrap_or_default() {
        let r = create(call, obj).await;
        out.created(call, cid, r);
    }
    for (id, _) in args.update.unwrap_or_default() {
        let refusal = Error::InvalidProperties {
            properties: Vec::new(),
            description: "a private key cannot be changed; destroy it and create it again".into(),
        };
        out.updated(id, Err(refusal));
    }
    for id in args.destroy.unwrap_or_default() {
        let r = destroy(call, &id).await;
        out.destroyed(id, r);
    }
    out.finish(call).await
}

fn bad(property: &str, description: impl Into<String>) -> Error {
    Error::InvalidProperties {
        properties: vec![property.into()],
        description: description.into(),
    }
}

async fn create(call: &Call, obj: Value) -> Result<Value, Error> {
    let Some(password) = call.password.clone() else {
        return Err(Error::Forbidden(
            "a private key is wrapped under the account's password; \
             create it with password authentication (HTTP Basic), not an app token"
                .into(),
        ));
    };
    let obj = object(obj)?;
    only(&obj, &["privateKey", "pkcs12", "pkcs12Password"])?;
    let pem: Option<String> = prop(&obj, "privateKey")?;
    let p12: Option<String> = prop(&obj, "pkcs12")?;
    let p12_password: Option<String> = prop(&obj, "pkcs12Password")?;
    let pem = pem.map(zeroize::Zeroizing::new);
    let p12_password = zeroize::Zeroizing::new(p12_password.unwrap_or_default());
    let p12 = match p12 {
        Some(b64) if b64.len() <= MAX_KEY_INPUT * 4 / 3 + 4 => {
            let cleaned: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(cleaned)
                .map_err(|_| bad("pkcs12", "pkcs12 is not base64"))?;
            Some(zeroize::Zeroizing::new(der))
        }
        Some(_) => {
            return Err(bad(
                "pkcs12",
                format!("the PKCS#12 file is over {MAX_KEY_INPUT} bytes"),
            ))
        }
        None => None,
    };
    if pem.is_some() == p12.is_some() {
        return Err(bad(
            "privateKey",
            "give exactly one of privateKey (PEM) or pkcs12 (base64, with pkcs12Password)",
        ));
    }
    let property = if pem.is_some() {
        "privateKey"
    } else {
        "pkcs12"
    };
    let ring = std::sync::Arc::clone(&call.server.ctx.keyring);
    let imported = call
        .blocking(move |s, id| {
            let input = match (&pem, &p12) {
                (Some(pem), _) => KeyInput::Pem(pem),
                (None, Some(der)) => KeyInput::Pkcs12 {
                    der,
                    password: &p12_password,
                },
                (None, None) => return Ok(Err(ImportError::NoMatchingCertificate)),
            };
            let (fp, pkcs8) = match import_key(s, id, input) {
                Ok(found) => found,
                Err(ImportError::Store(e)) => return Err(e.into()),
                Err(e) => return Ok(Err(e)),
            };
            let held = s.add_reading_key(id, &password, fp, &pkcs8)?;
            crate::reading::refresh(s, &ring, id, &password)?;
            Ok(Ok(held))
        })
        .await?;
    let held = imported.map_err(|e| bad(property, e.to_string()))?;
    Ok(Value::Object(view(&held)))
}

async fn destroy(call: &Call, id: &str) -> Result<(), Error> {
    let fp = ids::parse_certificate(id).ok_or(Error::NotFound)?;
    call.blocking(move |s, id| Ok(s.remove_reading_key(id, fp)?))
        .await?;
    call.server.ctx.keyring.drop_key(call.account.id, fp);
    Ok(())
}
