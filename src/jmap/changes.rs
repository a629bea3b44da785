//! `Foo/changes` (RFC 8620 §5.2) for every type, from the store's
//! per-account change log.
//!
//! The log numbers every change of an account with one counter, so a
//! state is that number and the changes since it are the log entries
//! after it, filtered to the type. Per id, its first and last change in
//! the window decide (RFC 8620 §5.2): created first and destroyed last is
//! left out, created first is `created`, destroyed last is `destroyed`,
//! anything else (also destroyed then created again: a Thread whose last
//! Email went and which a reply brought back) is `updated`. An entry the
//! type cannot name (a message logged before Email ids existed) makes the
//! answer `cannotCalculateChanges`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{parse, Call};
use super::error::Error;
use crate::store::{Change, ChangeKind};

/// `/changes` arguments (RFC 8620 §5.2).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChangesArgs {
    /// The account.
    pub(crate) account_id: String,
    /// The state the client has.
    pub(crate) since_state: String,
    /// Most ids to return.
    #[serde(default)]
    pub(crate) max_changes: Option<usize>,
}

/// What one log entry means for the type asked about: ids and what
/// happened to each; `None` when the entry cannot say.
pub(crate) type Picked = Option<Vec<(String, ChangeKind)>>;

/// The first and the last change of one id in the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    first: ChangeKind,
    last: ChangeKind,
}

/// The `/changes` response for the ids `pick` finds in the log.
pub(crate) async fn changes(
    call: &Call,
    args: Map<String, Value>,
    pick: impl Fn(&Change) -> Picked,
) -> Result<Value, Error> {
    let args: ChangesArgs = parse(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let bad_state = || Error::CannotCalculateChanges(args.since_state.clone());
    let since: u64 = args.since_state.parse().map_err(|_| bad_state())?;
    if args.max_changes == Some(0) {
        return Err(Error::InvalidArguments(
            "maxChanges must be positive".into(),
        ));
    }
    let (current, log) = call
        .blocking(move |s, id| {
            let current = s.account(id)?.modseq;
            let log = if since <= current {
                s.changes_since(id, since, usize::MAX)?
            } else {
                Vec::new()
            };
            Ok((current, log))
        })
        .await?;
    if since > current {
        return Err(bad_state());
    }
    let max = args.max_changes.unwrap_or(usize::MAX);
    let mut order: Vec<String> = Vec::new();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut new_state = current;
    let mut has_more = false;
    for change in &log {
        let picked = pick(change).ok_or_else(bad_state)?;
        let fresh = picked
            .iter()
            .filter(|(id, _)| !seen.contains_key(id))
            .count();
        if order.len() + fresh > max && !order.is_empty() {
            new_state = change.id.saturating_sub(1);
            has_more = true;
            break;
        }
        for (id, kind) in picked {
            let entry = seen.entry(id.clone()).or_insert_with(|| {
                order.push(id);
                Seen {
                    first: kind,
                    last: kind,
                }
            });
            entry.last = kind;
        }
    }
    Ok(response(
        account_id,
        &args.since_state,
        new_state,
        has_more,
        &order,
        &seen,
    ))
}

fn response(
    account_id: String,
    old_state: &str,
    new_state: u64,
    has_more: bool,
    order: &[String],
    seen: &HashMap<String, Seen>,
) -> Value {
    let (mut created, mut updated, mut destroyed) = (Vec::new(), Vec::new(), Vec::new());
    for id in order {
        let Some(&Seen { first, last }) = seen.get(id) else {
            continue;
        };
        match (first, last) {
            (ChangeKind::Created, ChangeKind::Destroyed) => {}
            (ChangeKind::Created, _) => created.push(id),
            (_, ChangeKind::Destroyed) => destroyed.push(id),
            _ => updated.push(id),
        }
    }
    json!({
        "accountId": account_id,
        "oldState": old_state,
        "newState": new_state.to_string(),
        "hasMoreChanges": has_more,
        "created": created,
        "updated": updated,
        "destroyed": destroyed,
        "updatedProperties": null,
    })
}
