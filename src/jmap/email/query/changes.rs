//! `Email/queryChanges` (RFC 8620 §5.6, RFC 8621 §4.5): what to remove
//! from and add to a client's cached query results to reach the current
//! ones.
//!
//! The query state is the account's change-log counter, the same value
//! `Email/query` returns as `queryState`. The old results are not kept;
//! instead the query runs again now, and the change log since
//! `sinceQueryState` says which Emails may have moved:
//!
//! - every Email with a log entry in the window (created, keywords
//!   changed, moved, destroyed), and, when the query looks at threads
//!   (`collapseThreads`, an `...InThreadHaveKeyword` condition or sort),
//!   every Email of each thread such an Email is in;
//! - each of them is in `removed` (except those created in the window,
//!   which cannot have been in the old results), and each of them that
//!   is in the current results is in `added` with its index.
//!
//! Every other Email kept its place relative to the others: whether it
//! matches and where it sorts depends only on its own properties (and
//! its thread's, covered above), and ties are broken by Email id (see
//! `sort`). So a client that removes `removed` and then inserts `added`
//! by ascending index has the current results, as RFC 8620 §5.6 asks;
//! `removed` may name Emails that were not in the old results, which the
//! RFC allows. With an immutable filter and sort, additions after
//! `upToId` are left out (RFC 8620 §5.6).
//!
//! `cannotCalculateChanges`: a state that is not a number, one from the
//! future, one more than [`LOG_WINDOW`] changes back (reading further
//! would cost more than the client's fresh query), or a window holding
//! entries logged before Email ids existed. More changes than
//! `maxChanges` is `tooManyChanges`.

use std::collections::HashSet;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::super::super::call::{parse as parse_args, Call};
use super::super::super::error::Error;
use super::super::super::ids;
use super::{own_account, Spec};
use crate::store::{ChangeKind, ChangedObject};

/// Most log entries read back from the current state; an older
/// `sinceQueryState` is `cannotCalculateChanges`.
pub(crate) const LOG_WINDOW: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Args {
    account_id: String,
    since_query_state: String,
    #[serde(default)]
    max_changes: Option<usize>,
    #[serde(default)]
    up_to_id: Option<String>,
    #[serde(default)]
    calculate_total: bool,
}

/// The Emails whose place may have changed since a state: all of them,
/// and those first seen as created in the window.
#[derive(Debug, Default)]
struct Touched {
    order: Vec<u64>,
    all: HashSet<u64>,
    created: HashSet<u64>,
}

impl Touched {
    fn add(&mut self, email: u64, created: bool) {
        if self.all.insert(email) {
            self.order.push(email);
            if created {
                self.created.insert(email);
            }
        }
    }
}

/// `Email/queryChanges`.
pub(crate) async fn query_changes(
    call: &mut Call,
    args: Map<String, Value>,
) -> Result<Value, Error> {
    own_account(call, &args)?;
    let spec = Spec::parse(&args)?;
    let args: Args = parse_args(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let old = args.since_query_state.clone();
    let bad_state = move || Error::CannotCalculateChanges(old.clone());
    let since: u64 = args.since_query_state.parse().map_err(|_| bad_state())?;
    if args.max_changes == Some(0) {
        return Err(Error::InvalidArguments(
            "maxChanges must be positive".into(),
        ));
    }
    let acct = call.account.id;
    let up_to = args
        .up_to_id
        .as_deref()
        .and_then(|u| ids::parse_email(u, acct));
    let immutable = spec.immutable();
    let bad = bad_state.clone();
    let keys = call.reading.clone();
    let (state, touched, results) = call
        .blocking(move |s, id| {
            // why the state first: see `query`.
            let state = s.account(id)?.modseq;
            if since > state {
                return Err(bad());
            }
            let log = s.changes_since(id, since, LOG_WINDOW.saturating_add(1))?;
            if log.len() > LOG_WINDOW {
                return Err(bad());
            }
            let mut touched = Touched::default();
            let mut threads = Vec::new();
            for change in &log {
                match &change.object {
                    ChangedObject::Email(e) => {
                        touched.add(e.email, change.kind == ChangeKind::Created);
                        threads.push(e.thread);
                    }
                    ChangedObject::Message { .. } => return Err(bad()),
                    _ => {}
                }
            }
            if spec.on_thread() {
                threads.sort_unstable();
                threads.dedup();
                for t in threads {
                    for (email, _) in s.thread_members(id, t)? {
                        // why not created: a member of the thread that is
                        // not in the window existed at the old state.
                        touched.add(email, false);
                    }
                }
            }
            Ok((state, touched, spec.run(s, id, keys.as_deref())?))
        })
        .await?;
    let cut = match up_to {
        Some(u) if immutable => results.iter().position(|m| m.email_id == u),
        _ => None,
    };
    let removed: Vec<String> = touched
        .order
        .iter()
        .filter(|e| !touched.created.contains(e))
        .map(|&e| ids::email(acct, e))
        .collect();
    let added: Vec<Value> = results
        .iter()
        .enumerate()
        .filter(|(i, m)| touched.all.contains(&m.email_id) && cut.is_none_or(|c| *i <= c))
        .map(|(i, m)| json!({ "id": ids::email(acct, m.email_id), "index": i }))
        .collect();
    if let Some(max) = args.max_changes {
        let n = removed.len().saturating_add(added.len());
        if n > max {
            return Err(Error::TooManyChanges(format!(
                "{n} changes since state {}, more than maxChanges ({max}); \
                 run Email/query afresh",
                args.since_query_state
            )));
        }
    }
    let mut out = json!({
        "accountId": account_id,
        "oldQueryState": args.since_query_state,
        "newQueryState": state.to_string(),
        "removed": removed,
        "added": added,
    });
    if let (true, Some(obj)) = (args.calculate_total, out.as_object_mut()) {
        obj.insert("total".into(), json!(results.len()));
    }
    Ok(out)
}
