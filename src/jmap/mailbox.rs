//! `Mailbox/get|query|changes|set` (RFC 8621 §2).
//!
//! The store names mailboxes by their full `/`-separated path; a JMAP
//! Mailbox's `name` is the last level and `parentId` the level above, so
//! a rename or a move is one store rename of the full path. Counts come
//! from the store's records (`totalThreads` equals `totalEmails`: one
//! message per thread).

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::{
    direction, get_response, parse, parse_filter, query_response, select, Call, GetArgs, QueryArgs,
};
use super::changes::changes as log_changes;
use super::error::Error;
use super::ids;
use super::set::{object, only, prop, SetArgs, SetOutcome};
use crate::store::{AccountId, ChangeKind, ChangedObject, MailStore, Mailbox, MailboxRole};

fn role_name(role: Option<MailboxRole>) -> Value {
    let name = match role {
        Some(MailboxRole::Inbox) => "inbox",
        Some(MailboxRole::Sent) => "sent",
        Some(MailboxRole::Drafts) => "drafts",
        Some(MailboxRole::Trash) => "trash",
        Some(MailboxRole::Junk) => "junk",
        Some(MailboxRole::Archive) => "archive",
        _ => return Value::Null,
    };
    json!(name)
}

fn leaf(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

fn view(m: &Mailbox, unread: usize) -> Map<String, Value> {
    let inbox = m.name == "INBOX";
    let obj = json!({
        "id": ids::mailbox(m.id),
        "name": leaf(&m.name),
        "parentId": m.parent.map(ids::mailbox),
        "role": role_name(m.role),
        "sortOrder": 0,
        "totalEmails": m.exists,
        "unreadEmails": unread,
        "totalThreads": m.exists,
        "unreadThreads": unread,
        "myRights": {
            "mayReadItems": true, "mayAddItems": true, "mayRemoveItems": true,
            "maySetSeen": true, "maySetKeywords": true, "mayCreateChild": true,
            "mayRename": !inbox, "mayDelete": !inbox, "maySubmit": false,
        },
        "isSubscribed": m.subscribed,
    });
    match obj {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn unread(s: &MailStore, id: AccountId, m: &Mailbox) -> Result<usize, Error> {
    let msgs = s.list_messages(id, m.id, None, usize::MAX)?;
    Ok(msgs.iter().filter(|msg| !msg.flags.seen).count())
}

/// `Mailbox/get`.
pub(crate) async fn get(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: GetArgs = parse(args)?;
    let account_id = args.check(call)?;
    let wanted = args.ids.clone();
    let (state, found, not_found) = call
        .blocking(move |s, id| {
            let state = s.account(id)?.modseq.to_string();
            let all = s.list_mailboxes(id)?;
            let mut found = Vec::new();
            let mut missing = Vec::new();
            let pick: Vec<(String, Option<&Mailbox>)> = match &wanted {
                None => all.iter().map(|m| (ids::mailbox(m.id), Some(m))).collect(),
                Some(w) => w
                    .iter()
                    .map(|i| {
                        let m =
                            ids::parse_mailbox(i).and_then(|mid| all.iter().find(|m| m.id == mid));
                        (i.clone(), m)
                    })
                    .collect(),
            };
            for (asked, m) in pick {
                match m {
                    Some(m) => found.push(view(m, unread(s, id, m)?)),
                    None => missing.push(asked),
                }
            }
            Ok((state, found, missing))
        })
        .await?;
    let props = args.properties.as_deref();
    let list = found.into_iter().map(|o| select(o, props)).collect();
    Ok(get_response(account_id, state, list, not_found))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default, with = "double_option")]
    parent_id: Option<Option<String>>,
    name: Option<String>,
    #[serde(default, with = "double_option")]
    role: Option<Option<String>>,
    has_any_role: Option<bool>,
    is_subscribed: Option<bool>,
}

/// Tells an absent property (`None`) from an explicit `null` (`Some(None)`).
mod double_option {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Option<String>>, D::Error> {
        Option::<String>::deserialize(d).map(Some)
    }
}

impl Filter {
    fn matches(&self, m: &Mailbox) -> bool {
        let parent = m.parent.map(ids::mailbox);
        let role = role_name(m.role).as_str().map(str::to_string);
        self.parent_id.as_ref().is_none_or(|p| *p == parent)
            && self
                .name
                .as_ref()
                .is_none_or(|n| leaf(&m.name).to_lowercase().contains(&n.to_lowercase()))
            && self.role.as_ref().is_none_or(|r| *r == role)
            && self.has_any_role.is_none_or(|h| h == role.is_some())
            && self.is_subscribed.is_none_or(|s| s == m.subscribed)
    }
}

/// `Mailbox/query`: the filter conditions of RFC 8621 §2.3 (no operators);
/// sort by `name` or `sortOrder`.
pub(crate) async fn query(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: QueryArgs = parse(args)?;
    let account_id = call.check_account(&args.account_id)?;
    let filter: Filter = parse_filter(args.filter.as_ref(), "Mailbox")?;
    let (state, mut all) = call
        .blocking(|s, id| Ok((s.account(id)?.modseq.to_string(), s.list_mailboxes(id)?)))
        .await?;
    all.retain(|m| filter.matches(m));
    for comparator in args.sort.iter().flatten().rev() {
        let dir = direction(comparator.is_ascending);
        match comparator.property.as_str() {
            "name" => all.sort_by(|a, b| dir(leaf(&a.name).cmp(leaf(&b.name)))),
            "sortOrder" => {}
            other => return Err(Error::UnsupportedSort(format!("cannot sort by {other}"))),
        }
    }
    let ids = all.iter().map(|m| ids::mailbox(m.id)).collect();
    query_response(account_id, state, &args, ids)
}

/// `Mailbox/changes`: a message change counts as an update of its
/// mailbox (its counts changed), a move as one of both mailboxes.
pub(crate) async fn changes(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    log_changes(call, args, |change| match &change.object {
        ChangedObject::Mailbox(m) => Some(vec![(ids::mailbox(*m), change.kind)]),
        ChangedObject::Message { mailbox, .. } => {
            Some(vec![(ids::mailbox(*mailbox), ChangeKind::Updated)])
        }
        ChangedObject::Email(e) => Some(
            e.moved_from
                .into_iter()
                .chain([e.mailbox])
                .map(|m| (ids::mailbox(m), ChangeKind::Updated))
                .collect(),
        ),
        _ => Some(Vec::new()),
    })
    .await
}

/// `Mailbox/set`.
pub(crate) async fn set(call: &mut Call, args: Map<String, Value>) -> Result<Value, Error> {
    let args: SetArgs = parse(args)?;
    let remove_emails = args
        .extra
        .get("onDestroyRemoveEmails")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut out = SetOutcome::begin(call, &args).await?;
    for (cid, obj) in creation_order(args.create.unwrap_or_default()) {
        let r = create(call, obj).await;
        out.created(call, cid, r);
    }
    for (id, patch) in args.update.unwrap_or_default() {
        let r = update(call, &id, patch).await;
        out.updated(id, r.map(|()| None));
    }
    for id in args.destroy.unwrap_or_default() {
        let r = destroy(call, &id, remove_emails).await;
        out.destroyed(id, r);
    }
    out.finish(call).await
}

/// Creations with parents first: a `parentId` of `#cid` must see `cid`
/// created (JSON objects carry no order once parsed).
fn creation_order(create: Map<String, Value>) -> Vec<(String, Value)> {
    let mut pending: Vec<(String, Value)> = create.into_iter().collect();
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let waits_for = |obj: &Value, pending: &[(String, Value)]| {
            let parent = obj.get("parentId").and_then(Value::as_str);
            let cid = parent.and_then(|p| p.strip_prefix('#'));
            cid.is_some_and(|c| pending.iter().any(|(k, _)| k == c))
        };
        let ready = pending
            .iter()
            .position(|(_, obj)| !waits_for(obj, &pending))
            .unwrap_or(0); // a cycle: let the reference fail
        out.push(pending.remove(ready));
    }
    out
}

const SETTABLE: &[&str] = &["name", "parentId", "isSubscribed", "sortOrder", "role"];

/// Checks the read-only-here properties (`role`, `sortOrder`) keep their
/// only value, and the name has no separator.
fn check_props(obj: &Map<String, Value>) -> Result<(), Error> {
    only(obj, SETTABLE)?;
    let fixed = |name: &str, ok: fn(&Value) -> bool| match obj.get(name) {
        Some(v) if !ok(v) => Err(Error::InvalidProperties {
            properties: vec![name.to_string()],
            description: format!("{name} cannot be changed on this server"),
        }),
        _ => Ok(()),
    };
    fixed("role", Value::is_null)?;
    fixed("sortOrder", |v| v.as_u64() == Some(0))?;
    if let Some(name) = prop::<String>(obj, "name")? {
        if name.is_empty() || name.contains('/') {
            return Err(Error::InvalidProperties {
                properties: vec!["name".into()],
                description:
                    "a mailbox name must be non-empty and without `/` (use parentId for hierarchy)"
                        .into(),
            });
        }
    }
    Ok(())
}

/// The parent's id from a `parentId` property (`#creationId` allowed).
fn parent_of(call: &Call, obj: &Map<String, Value>) -> Result<Option<Option<String>>, Error> {
    match obj.get("parentId") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(p)) => Ok(Some(Some(call.resolve_id(p)?))),
        Some(_) => Err(Error::InvalidProperties {
            properties: vec!["parentId".into()],
            description: "parentId must be a mailbox id or null".into(),
        }),
    }
}

/// The full store name of `leaf` under `parent`.
fn full_name(
    s: &MailStore,
    id: AccountId,
    parent: Option<&str>,
    leaf: &str,
) -> Result<String, Error> {
    match parent {
        None => Ok(leaf.to_string()),
        Some(p) => {
            let pid = ids::parse_mailbox(p).ok_or_else(|| Error::InvalidProperties {
                properties: vec!["parentId".into()],
                description: format!("no mailbox {p}"),
            })?;
            Ok(format!("{}/{leaf}", s.get_mailbox(id, pid)?.name))
        }
    }
}

async fn create(call: &Call, obj: Value) -> Result<Value, Error> {
    let obj = object(obj)?;
    check_props(&obj)?;
    let name: String = prop(&obj, "name")?.ok_or_else(|| Error::InvalidProperties {
        properties: vec!["name".into()],
        description: "name is required".into(),
    })?;
    let parent = parent_of(call, &obj)?.flatten();
    let subscribed: Option<bool> = prop(&obj, "isSubscribed")?;
    call.blocking(move |s, id| {
        let full = full_name(s, id, parent.as_deref(), &name)?;
        let m = s.create_mailbox(id, &full)?;
        if subscribed == Some(false) {
            s.set_subscribed(id, m.id, false)?;
        }
        Ok(
            json!({ "id": ids::mailbox(m.id), "role": null, "sortOrder": 0, "totalEmails": 0,
                   "unreadEmails": 0, "totalThreads": 0, "unreadThreads": 0 }),
        )
    })
    .await
}

async fn update(call: &Call, id: &str, patch: Value) -> Result<(), Error> {
    let mid = ids::parse_mailbox(&call.resolve_id(id)?).ok_or(Error::NotFound)?;
    let patch = object(patch)?;
    check_props(&patch)?;
    let name: Option<String> = prop(&patch, "name")?;
    let parent = parent_of(call, &patch)?;
    let subscribed: Option<bool> = prop(&patch, "isSubscribed")?;
    call.blocking(move |s, id| {
        let current = s.get_mailbox(id, mid)?;
        if name.is_some() || parent.is_some() {
            let new_leaf = name.unwrap_or_else(|| leaf(&current.name).to_string());
            let new_parent = match parent {
                Some(p) => p,
                None => current.parent.map(ids::mailbox),
            };
            let full = full_name(s, id, new_parent.as_deref(), &new_leaf)?;
            s.rename_mailbox(id, mid, &full)?;
        }
        if let Some(sub) = subscribed {
            s.set_subscribed(id, mid, sub)?;
        }
        Ok(())
    })
    .await
}

async fn destroy(call: &Call, id: &str, remove_emails: bool) -> Result<(), Error> {
    let mid = ids::parse_mailbox(&call.resolve_id(id)?).ok_or(Error::NotFound)?;
    call.blocking(move |s, id| {
        let m = s.get_mailbox(id, mid)?;
        if m.exists > 0 && !remove_emails {
            return Err(Error::MailboxHasEmail);
        }
        Ok(s.delete_mailbox(id, mid)?)
    })
    .await
}
