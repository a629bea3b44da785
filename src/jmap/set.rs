//! `Foo/set` (RFC 8620 §5.3) plumbing shared by every type: arguments,
//! `ifInState`, the operation limit and the response with its SetErrors.
//! Each type's handler does the creates, updates and destroys itself and
//! records each outcome here.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::call::Call;
use super::error::Error;
use super::limits;

/// `/set` arguments.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SetArgs {
    /// The account.
    pub(crate) account_id: String,
    /// Refuse the whole call unless the state is this one.
    #[serde(default)]
    pub(crate) if_in_state: Option<String>,
    /// Creation id → object.
    #[serde(default)]
    pub(crate) create: Option<Map<String, Value>>,
    /// Id → patch object.
    #[serde(default)]
    pub(crate) update: Option<Map<String, Value>>,
    /// Ids to destroy.
    #[serde(default)]
    pub(crate) destroy: Option<Vec<String>>,
    /// Type-specific arguments (`onDestroyRemoveEmails`).
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

/// Outcomes of one `/set`, in the shape of its response.
#[derive(Debug)]
pub(crate) struct SetOutcome {
    account_id: String,
    old_state: String,
    created: Map<String, Value>,
    updated: Map<String, Value>,
    destroyed: Vec<String>,
    not_created: Map<String, Value>,
    not_updated: Map<String, Value>,
    not_destroyed: Map<String, Value>,
}

impl SetOutcome {
    /// Checks account, size and `ifInState`; returns the empty outcome.
    pub(crate) async fn begin(call: &Call, args: &SetArgs) -> Result<Self, Error> {
        let account_id = call.check_account(&args.account_id)?;
        let count = args.create.as_ref().map_or(0, Map::len)
            + args.update.as_ref().map_or(0, Map::len)
            + args.destroy.as_ref().map_or(0, Vec::len);
        if count > limits::OBJECTS_IN_SET {
            return Err(Error::RequestTooLarge(format!(
                "{count} operations, at most {} per /set",
                limits::OBJECTS_IN_SET
            )));
        }
        let old_state = call.state().await?;
        if let Some(wanted) = &args.if_in_state {
            if *wanted != old_state {
                return Err(Error::StateMismatch(old_state));
            }
        }
        Ok(Self {
            account_id,
            old_state,
            created: Map::new(),
            updated: Map::new(),
            destroyed: Vec::new(),
            not_created: Map::new(),
            not_updated: Map::new(),
            not_destroyed: Map::new(),
        })
    }

    /// Records a create; a success also maps the creation id.
    pub(crate) fn created(&mut self, call: &mut Call, cid: String, r: Result<Value, Error>) {
        match r {
            Ok(obj) => {
                if let Some(id) = obj.get("id").and_then(Value::as_str) {
                    call.created_ids.insert(cid.clone(), id.to_string());
                }
                self.created.insert(cid, obj);
            }
            Err(e) => {
                self.not_created.insert(cid, e.classify().to_json());
            }
        }
    }

    /// Records an update (`Some`: properties the server changed too).
    pub(crate) fn updated(&mut self, id: String, r: Result<Option<Value>, Error>) {
        match r {
            Ok(v) => {
                self.updated.insert(id, v.unwrap_or(Value::Null));
            }
            Err(e) => {
                self.not_updated.insert(id, e.classify().to_json());
            }
        }
    }

    /// Records a destroy.
    pub(crate) fn destroyed(&mut self, id: String, r: Result<(), Error>) {
        match r {
            Ok(()) => self.destroyed.push(id),
            Err(e) => {
                self.not_destroyed.insert(id, e.classify().to_json());
            }
        }
    }

    /// The response, with the state after the changes.
    pub(crate) async fn finish(self, call: &Call) -> Result<Value, Error> {
        let new_state = call.state().await?;
        let or_null = |m: Map<String, Value>| {
            if m.is_empty() {
                Value::Null
            } else {
                Value::Object(m)
            }
        };
        Ok(json!({
            "accountId": self.account_id,
            "oldState": self.old_state,
            "newState": new_state,
            "created": or_null(self.created),
            "updated": or_null(self.updated),
            "destroyed": if self.destroyed.is_empty() { Value::Null } else { json!(self.destroyed) },
            "notCreated": or_null(self.not_created),
            "notUpdated": or_null(self.not_updated),
            "notDestroyed": or_null(self.not_destroyed),
        }))
    }
}

/// An object's properties other than `allowed`, as `invalidProperties`.
pub(crate) fn only(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), Error> {
    let bad: Vec<String> = obj
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .cloned()
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidProperties {
            description: format!(
                "these properties cannot be set here: {}; settable: {}",
                bad.join(", "),
                allowed.join(", ")
            ),
            properties: bad,
        })
    }
}

/// The object of a create or update, or `invalidArguments`.
pub(crate) fn object(v: Value) -> Result<Map<String, Value>, Error> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(Error::InvalidArguments(
            "each object must be a JSON object".into(),
        )),
    }
}

/// A property of a set object with the type it must have.
pub(crate) fn prop<T: serde::de::DeserializeOwned>(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Option<T>, Error> {
    match obj.get(name) {
        None => Ok(None),
        Some(v) => {
            serde_json::from_value(v.clone())
                .map(Some)
                .map_err(|e| Error::InvalidProperties {
                    properties: vec![name.to_string()],
                    description: format!("{name}: {e}"),
                })
        }
    }
}
