//! `Foo/changes` (RFC 8620 §5.2) for every type, from the store's
//! per-account change log.
//!
//! The log numbers every change of an account with one counter, so a
//! state is that number and the changes since it are the log entries
//! after it, filtered to the type. An id created and destroyed within the
//! window is left out; created then updated is reported as created.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{parse, Call};
use super::error::Error;
use crate::store::{Change, ChangeKind};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ChangesArgs {
    account_id: String,
    since_state: String,
    #[serde(default)]
    max_changes: Option<usize>,
}

/// What one log entry means for the type asked about: ids and what
/// happened to each.
pub(crate) type Pick = fn(&Change) -> Vec<(String, ChangeKind)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seen {
    created: bool,
    destroyed: bool,
}

/// The `/changes` response for the ids `pick` finds in the log.
pub(crate) async fn changes(
    call: &Call,
    args: Map<String, Value>,
    pick: Pick,
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
        let picked = pick(change);
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
                    created: false,
                    destroyed: false,
                }
            });
            match kind {
                ChangeKind::Created => entry.created = true,
                ChangeKind::Destroyed => entry.destroyed = true,
                _ => {}
            }
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
        match seen.get(id) {
            Some(Seen {
                created: true,
                destroyed: true,
            })
            | None => {}
            Some(Seen { created: true, .. }) => created.push(id),
            Some(Seen {
                destroyed: true, ..
            }) => destroyed.push(id),
            Some(_) => updated.push(id),
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
