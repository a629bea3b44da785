//! `Certificate/get|query|changes|set` of the encryption extension
//! (ARCHITECTURE.md, "Outside contracts").
//!
//! A Certificate's id is its SHA-256 fingerprint. Creating one goes
//! through [`manage::add_certificates`], the same code as `sealmail cert
//! add`, so a rejection's `description` is the CLI's message, word for
//! word. A file may hold a chain: CA certificates in it are skipped; if it
//! holds several end-entity certificates all are added and the first is
//! the one reported as created (the others show up in
//! `Certificate/changes`).

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{
    direction, get_response, parse, parse_filter, pick, query_response, select, Call, GetArgs,
    QueryArgs,
};
use super::changes::changes as log_changes;
use super::error::Error;
use super::ids;
use super::set::{object, only, prop, SetArgs, SetOutcome};
use crate::admin::api::CertView;
use crate::manage;
use crate::store::{Certificate, ChangedObject};

/// The JMAP object of a stored certificate.
fn view(c: &Certificate) -> Map<String, Value> {
    let mut obj = match serde_json::to_value(CertView::from(c)) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    obj.insert("id".into(), json!(ids::certificate(c.fingerprint)));
    obj
}

/// `Certificate/get`.
pub(crate) async fn get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse(args)?;
    let account_id = args.check(call)?;
    let (state, all) = call
        .blocking(|s, id| Ok((s.account(id)?.modseq.to_string(), s.list_certificates(id)?)))
        .await?;
    let props = args.properties.as_deref();
    let (list, not_found) = pick(
        &all,
        args.ids.as_deref(),
        |all, id| {
            let fp = ids::parse_certificate(id)?;
            all.iter().find(|c| c.fingerprint == fp)
        },
        |c| select(view(c), props),
    );
    Ok(get_response(account_id, state, list, not_found))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    is_active: Option<bool>,
}

/// `Certificate/query`: filter `isActive`; sort `notAfter` or
/// `fingerprint` (the default).
pub(crate) async fn query(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: QueryArgs = parse(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let filter: Filter = parse_filter(args.filter.as_ref(), "Certificate")?;
    let (state, mut all) = call
        .blocking(|s, id| Ok((s.account(id)?.modseq.to_string(), s.list_certificates(id)?)))
        .await?;
    all.retain(|c| filter.is_active.is_none_or(|a| c.is_active == a));
    for comparator in args.sort.iter().flatten().rev() {
        let dir = direction(comparator.is_ascending);
        match comparator.property.as_str() {
            "notAfter" => all.sort_by(|a, b| dir(a.not_after.cmp(&b.not_after))),
            "fingerprint" => all.sort_by(|a, b| dir(a.fingerprint.cmp(&b.fingerprint))),
            other => return Err(Error::UnsupportedSort(format!("cannot sort by {other}"))),
        }
    }
    let ids = all
        .iter()
        .map(|c| ids::certificate(c.fingerprint))
        .collect();
    query_response(account_id, state, &args, ids)
}

/// `Certificate/changes`.
pub(crate) async fn changes(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    log_changes(call, args, |change| match &change.object {
        ChangedObject::Certificate(fp) => Some(vec![(ids::certificate(*fp), change.kind)]),
        _ => Some(Vec::new()),
    })
    .await
}

/// `Certificate/set`.
pub(crate) async fn set(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: SetArgs = parse(args)?;
    let mut out = SetOutcome::begin(call, &args).await?;
    for (cid, obj) in args.create.unwrap_or_default() {
        let r = create(call, obj).await;
        out.created(call, cid, r);
    }
    for (id, patch) in args.update.unwrap_or_default() {
        let r = update(call, &id, patch).await;
        out.updated(id, r.map(|()| None));
    }
    for id in args.destroy.unwrap_or_default() {
        let r = destroy(call, &id).await;
        out.destroyed(id, r);
    }
    out.finish(call).await
}

async fn create(call: &Call, obj: Value) -> Result<Value, Error> {
    let obj = object(obj)?;
    only(&obj, &["certificate", "blobId", "description"])?;
    let text: Option<String> = prop(&obj, "certificate")?;
    let blob: Option<String> = prop(&obj, "blobId")?;
    let description: String = prop(&obj, "description")?.unwrap_or_default();
    let (bytes, field) = match (text, blob) {
        (Some(text), None) => (decode_text(&text)?, "certificate"),
        (None, Some(blob)) => {
            let data = call
                .server
                .uploads
                .get(call.account.id, &blob)
                .ok_or(Error::BlobNotFound(blob))?;
            (data.to_vec(), "blobId")
        }
        _ => return Err(Error::InvalidProperties {
            properties: vec!["certificate".into(), "blobId".into()],
            description:
                "give exactly one of certificate (PEM text or base64 DER) and blobId (an upload)"
                    .into(),
        }),
    };
    let added = call
        .blocking(move |s, id| {
            let account = s.account(id)?;
            Ok(manage::add_certificates(s, &account, &bytes, &description)?)
        })
        .await
        .map_err(|e| named(e, field))?;
    let first = added.first().ok_or(Error::NotFound)?;
    Ok(Value::Object(view(first)))
}

/// `invalidProperties` naming the property the certificate came in.
fn named(e: Error, field: &str) -> Error {
    let j = e.classify();
    let from_rules = matches!(&e, Error::Manage(m) if matches!(**m, manage::ManageError::Cert(_)));
    if j.kind == "invalidProperties" && from_rules {
        Error::InvalidProperties {
            properties: vec![field.to_string()],
            description: j.description,
        }
    } else {
        e
    }
}

/// PEM text as it is; anything else is base64 of DER (or of PKCS#7).
fn decode_text(text: &str) -> Result<Vec<u8>, Error> {
    if text.contains("-----BEGIN") {
        return Ok(text.as_bytes().to_vec());
    }
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| Error::InvalidProperties {
            properties: vec!["certificate".into()],
            description: format!("certificate is neither PEM text nor base64 DER ({e}); give the PEM file's text or its DER bytes in base64"),
        })
}

async fn update(call: &Call, id: &str, patch: Value) -> Result<(), Error> {
    let fp = ids::parse_certificate(id).ok_or(Error::NotFound)?;
    let patch = object(patch)?;
    only(&patch, &["description", "isActive"])?;
    let description: Option<String> = prop(&patch, "description")?;
    if let Some(d) = &description {
        manage::check_description(d)?;
    }
    let active: Option<bool> = prop(&patch, "isActive")?;
    call.blocking(move |s, id| {
        s.get_certificate(id, fp)?;
        // why this order: only the activity change can be refused, and
        // then nothing of the patch is applied.
        if let Some(a) = active {
            s.set_certificate_active(id, fp, a)?;
        }
        if let Some(d) = description {
            s.set_certificate_description(id, fp, &d)?;
        }
        Ok(())
    })
    .await
}

async fn destroy(call: &Call, id: &str) -> Result<(), Error> {
    let fp = ids::parse_certificate(id).ok_or(Error::NotFound)?;
    call.blocking(move |s, id| Ok(s.remove_certificate(id, fp)?))
        .await
}
