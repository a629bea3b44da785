//! What every method handler shares: the authenticated call context, the
//! standard arguments of `/get` and `/query` (RFC 8620 §5.1, §5.5) and
//! the property selection of `/get` results.

use std::collections::HashMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::Error;
use super::{ids, limits, Server};
use crate::reading::Unlocked;
use crate::store::{Account, AccountId, MailStore};

/// One API request's context: who is calling and what was created so far.
#[derive(Debug)]
pub(crate) struct Call {
    /// The server.
    pub(crate) server: Arc<Server>,
    /// The authenticated account.
    pub(crate) account: Account,
    /// Creation id → server id, for `#creationId` references (RFC 8620 §5.3).
    pub(crate) created_ids: HashMap<String, String>,
    /// The account's private keys when server-side reading is on and they
    /// are unlocked (`crate::reading`); messages are then presented
    /// decrypted (`email::source`).
    pub(crate) reading: Option<Arc<Unlocked>>,
    /// The account's password when the request gave it (HTTP Basic, not
    /// an app token): what `PrivateKey/set` wraps a key under.
    pub(crate) password: Option<zeroize::Zeroizing<String>>,
    /// The client's own bytes of each Email created from JSON in this
    /// request (`Email/set` create), by Email number: what an
    /// `EmailSubmission` of it in the same request sends, even when the
    /// stored copy is encrypted. Dropped with the request.
    pub(crate) composed: HashMap<u64, Arc<Vec<u8>>>,
    /// Responses a method adds after its own (RFC 8621 §7.5: the implicit
    /// `Email/set` of `onSuccessUpdateEmail`), with its call id.
    pub(crate) follow_up: Vec<(String, Value)>,
}

impl Call {
    /// Runs `f` on the blocking pool with the store and the account.
    pub(crate) async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&MailStore, AccountId) -> Result<T, Error> + Send + 'static,
    {
        let store = Arc::clone(&self.server.ctx.store);
        let id = self.account.id;
        tokio::task::spawn_blocking(move || f(&store, id)).await?
    }

    /// The account's current state string (its modseq).
    pub(crate) async fn state(&self) -> Result<String, Error> {
        self.blocking(|s, id| Ok(s.account(id)?.modseq.to_string()))
            .await
    }

    /// Checks that `account_id` is the caller's account.
    pub(crate) fn check_account(&self, account_id: &str) -> Result<String, Error> {
        let own = ids::account(self.account.id);
        if account_id == own {
            Ok(own)
        } else {
            Err(Error::AccountNotFound)
        }
    }

    /// `id`, or the server id created for `#creationId` in this request.
    pub(crate) fn resolve_id(&self, id: &str) -> Result<String, Error> {
        match id.strip_prefix('#') {
            Some(cid) => self
                .created_ids
                .get(cid)
                .cloned()
                .ok_or_else(|| Error::InvalidArguments(format!("no creation id {cid:?}"))),
            None => Ok(id.to_string()),
        }
    }
}

/// Typed arguments of a method, or `invalidArguments`.
pub(crate) fn parse<T: DeserializeOwned>(args: Map<String, Value>) -> Result<T, Error> {
    serde_json::from_value(Value::Object(args)).map_err(|e| Error::InvalidArguments(e.to_string()))
}

/// A `/query` filter of `kind` (RFC 8620 §5.5): absent or null is the
/// default (match all); one that does not parse is `unsupportedFilter`.
pub(crate) fn parse_filter<F: DeserializeOwned + Default>(
    filter: Option<&Value>,
    kind: &str,
) -> Result<F, Error> {
    match filter {
        None | Some(Value::Null) => Ok(F::default()),
        Some(f) => serde_json::from_value(f.clone())
            .map_err(|e| Error::UnsupportedFilter(format!("{kind} filter: {e}"))),
    }
}

/// `/get` arguments (RFC 8620 §5.1).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct GetArgs {
    /// The account.
    pub(crate) account_id: String,
    /// Ids to fetch; `None` for all.
    pub(crate) ids: Option<Vec<String>>,
    /// Properties to return; `None` for all.
    pub(crate) properties: Option<Vec<String>>,
}

impl GetArgs {
    /// Checks the account and the id count; returns the account id.
    pub(crate) fn check(&self, call: &Call) -> Result<String, Error> {
        let account = call.check_account(&self.account_id)?;
        if self
            .ids
            .as_ref()
            .is_some_and(|i| i.len() > limits::OBJECTS_IN_GET)
        {
            return Err(Error::RequestTooLarge(format!(
                "at most {} ids per /get",
                limits::OBJECTS_IN_GET
            )));
        }
        Ok(account)
    }
}

/// Keeps `id` and the requested properties of `obj`.
pub(crate) fn select(obj: Map<String, Value>, properties: Option<&[String]>) -> Value {
    match properties {
        None => Value::Object(obj),
        Some(props) => Value::Object(
            obj.into_iter()
                .filter(|(k, _)| k == "id" || props.iter().any(|p| p == k))
                .collect(),
        ),
    }
}

/// The `list` and `notFound` of a `/get` over the objects `all`: each
/// of them when `ids` is absent; otherwise, per id, the object `find`
/// returns for it. `show` renders an object with the wanted properties.
pub(crate) fn pick<'a, T>(
    all: &'a [T],
    ids: Option<&[String]>,
    find: impl Fn(&'a [T], &str) -> Option<&'a T>,
    show: impl Fn(&T) -> Value,
) -> (Vec<Value>, Vec<String>) {
    let Some(wanted) = ids else {
        return (all.iter().map(show).collect(), Vec::new());
    };
    let (mut list, mut not_found) = (Vec::new(), Vec::new());
    for id in wanted {
        match find(all, id) {
            Some(object) => list.push(show(object)),
            None => not_found.push(id.clone()),
        }
    }
    (list, not_found)
}

/// The `/get` response.
pub(crate) fn get_response(
    account_id: String,
    state: String,
    list: Vec<Value>,
    not_found: Vec<String>,
) -> Value {
    json!({
        "accountId": account_id,
        "state": state,
        "list": list,
        "notFound": not_found,
    })
}

/// `/query` arguments (RFC 8620 §5.5) without the type-specific filter.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryArgs {
    /// The account.
    pub(crate) account_id: String,
    /// The filter, parsed by the type.
    #[serde(default)]
    pub(crate) filter: Option<Value>,
    /// The sort, parsed by the type.
    #[serde(default)]
    pub(crate) sort: Option<Vec<Comparator>>,
    /// First result (negative: from the end).
    #[serde(default)]
    pub(crate) position: i64,
    /// An id to start from instead of a position.
    #[serde(default)]
    pub(crate) anchor: Option<String>,
    /// Offset from the anchor.
    #[serde(default)]
    pub(crate) anchor_offset: i64,
    /// Most results to return.
    #[serde(default)]
    pub(crate) limit: Option<usize>,
    /// Whether to return `total`.
    #[serde(default)]
    pub(crate) calculate_total: bool,
}

/// One sort criterion.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Comparator {
    /// Property to sort by.
    pub(crate) property: String,
    /// Ascending (the default) or descending.
    #[serde(default = "yes")]
    pub(crate) is_ascending: bool,
}

fn yes() -> bool {
    true
}

/// An ordering as is (ascending) or reversed (descending), for sorts by
/// several comparators applied last to first with a stable sort.
pub(crate) fn direction(ascending: bool) -> impl Fn(std::cmp::Ordering) -> std::cmp::Ordering {
    move |o| if ascending { o } else { o.reverse() }
}

/// The `/query` response for the full, sorted result `all`.
pub(crate) fn query_response(
    account_id: String,
    state: String,
    args: &QueryArgs,
    all: Vec<String>,
) -> Result<Value, Error> {
    let total = all.len();
    let start = match &args.anchor {
        Some(anchor) => {
            let at = all
                .iter()
                .position(|id| id == anchor)
                .ok_or(Error::AnchorNotFound)?;
            clamp(
                i64::try_from(at)
                    .unwrap_or(i64::MAX)
                    .saturating_add(args.anchor_offset),
                total,
            )
        }
        None if args.position < 0 => clamp(
            i64::try_from(total)
                .unwrap_or(i64::MAX)
                .saturating_add(args.position),
            total,
        ),
        None => clamp(args.position, total),
    };
    let ids: Vec<String> = all
        .into_iter()
        .skip(start)
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    let mut out = json!({
        "accountId": account_id,
        "queryState": state,
        "canCalculateChanges": false,
        "position": start,
        "ids": ids,
    });
    if let (true, Some(obj)) = (args.calculate_total, out.as_object_mut()) {
        obj.insert("total".into(), json!(total));
    }
    Ok(out)
}

fn clamp(i: i64, len: usize) -> usize {
    usize::try_from(i.max(0)).unwrap_or(usize::MAX).min(len)
}
