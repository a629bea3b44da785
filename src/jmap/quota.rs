//! JMAP Quota (RFC 9425), capability `urn:ietf:params:jmap:quota`:
//! `Quota/get`, `Quota/changes`, `Quota/query` and `Quota/queryChanges`.
//!
//! An account has at most one Quota object, id `storage`: the octets its
//! stored mail may take (`limits.account_quota`, or the account's own
//! from `sealmail account quota`), `scope` `account`, `types` `["Mail"]`.
//! An account without a quota has no Quota object (RFC 9425 §4: a
//! resource without a limit is not a quota). Quotas are read-only over
//! JMAP: RFC 9425 defines no `Quota/set`.
//!
//! The state is the account's change-log counter, as for every type here
//! (see the module docs of `jmap`): it moves with every message created
//! or destroyed (usage) and with `account quota` (the limit, logged as an
//! account change). `Quota/changes` reports `storage` updated when such
//! an entry is in the log; `Quota/queryChanges` cannot calculate changes.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{get_response, parse, parse_filter, query_response, select, Call};
use super::call::{GetArgs, QueryArgs};
use super::changes::changes as log_changes;
use super::error::Error;
use crate::store::{ChangeKind, ChangedObject};

/// The id of the storage quota.
const STORAGE: &str = "storage";

/// The account's quota as now stored: `(state, object)`; no object when
/// the account has no quota.
async fn current(call: &Call) -> Result<(String, Option<Map<String, Value>>), Error> {
    call.blocking(|s, id| {
        let account = s.account(id)?;
        let object = s.effective_quota(&account).map(|limit| {
            let mut obj = Map::new();
            obj.insert("id".into(), json!(STORAGE));
            obj.insert("name".into(), json!(format!("Mail of {}", account.address)));
            obj.insert("resourceType".into(), json!("octets"));
            obj.insert("used".into(), json!(account.used_bytes));
            obj.insert("hardLimit".into(), json!(limit));
            obj.insert("warnLimit".into(), Value::Null);
            obj.insert("softLimit".into(), Value::Null);
            obj.insert("scope".into(), json!("account"));
            obj.insert("types".into(), json!(["Mail"]));
            obj.insert(
                "description".into(),
                json!("Bytes of mail stored in all mailboxes; set by the server's operator"),
            );
            obj
        });
        Ok((account.modseq.to_string(), object))
    })
    .await
}

/// `Quota/get` (RFC 9425 §4.2).
pub(crate) async fn get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse(args)?;
    let account_id = args.check(call)?;
    let (state, object) = current(call).await?;
    let props = args.properties.as_deref();
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    match (&args.ids, object) {
        (None, object) => list.extend(object.map(|o| select(o, props))),
        (Some(wanted), object) => {
            let mut object = object;
            for id in wanted {
                match object.take() {
                    Some(o) if id == STORAGE => list.push(select(o, props)),
                    other => {
                        object = other;
                        not_found.push(id.clone());
                    }
                }
            }
        }
    }
    Ok(get_response(account_id, state, list, not_found))
}

/// `Quota/changes` (RFC 9425 §4.3).
pub(crate) async fn changes(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    log_changes(call, args, |change| match (&change.object, change.kind) {
        (ChangedObject::Account, _)
        | (
            ChangedObject::Message { .. } | ChangedObject::Email(_),
            ChangeKind::Created | ChangeKind::Destroyed,
        ) => Some(vec![(STORAGE.to_string(), ChangeKind::Updated)]),
        _ => Some(Vec::new()),
    })
    .await
}

/// `Quota/query` filter (RFC 9425 §4.4.1).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    /// Contained in `name`.
    name: Option<String>,
    /// Equal to `scope`.
    scope: Option<String>,
    /// Equal to `resourceType`.
    resource_type: Option<String>,
    /// One of `types`.
    #[serde(rename = "type")]
    data_type: Option<String>,
}

impl Filter {
    fn matches(&self, obj: &Map<String, Value>) -> bool {
        let text = |key: &str| obj.get(key).and_then(Value::as_str).unwrap_or_default();
        let name = self
            .name
            .as_deref()
            .is_none_or(|n| text("name").contains(n));
        let scope = self.scope.as_deref().is_none_or(|s| text("scope") == s);
        let resource = self
            .resource_type
            .as_deref()
            .is_none_or(|r| text("resourceType") == r);
        let types = self.data_type.as_deref().is_none_or(|t| {
            obj.get("types")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(t)))
        });
        name && scope && resource && types
    }
}

/// `Quota/query` (RFC 9425 §4.4): sort by `name` or `used` (§4.4.2).
pub(crate) async fn query(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: QueryArgs = parse(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let filter: Filter = parse_filter(args.filter.as_ref(), "Quota")?;
    for comparator in args.sort.iter().flatten() {
        // why no reordering: there is at most one object, so only the
        // property names need checking.
        if !matches!(comparator.property.as_str(), "name" | "used") {
            return Err(Error::UnsupportedSort(format!(
                "cannot sort Quota by {}; use name or used",
                comparator.property
            )));
        }
    }
    let (state, object) = current(call).await?;
    let ids = object
        .filter(|o| filter.matches(o))
        .map(|_| STORAGE.to_string())
        .into_iter()
        .collect();
    query_response(account_id, state, &args, ids)
}

/// `Quota/queryChanges` (RFC 9425 §4.5): not calculated; the client
/// queries again (RFC 8620 §5.6 allows this answer).
pub(crate) async fn query_changes(
    call: &mut Call,
    args: Map<String, Value>,
) -> Result<Value, Error> {
    let account_id = args
        .get("accountId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    call.check_account(account_id)?;
    let since = args
        .get("sinceQueryState")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(Error::CannotCalculateChanges(since.to_string()))
}
