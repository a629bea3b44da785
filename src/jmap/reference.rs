//! Result references (RFC 8620 §3.7): an argument `#name` whose value is
//! `{resultOf, name, path}` is replaced by the value at `path` (a JSON
//! Pointer, RFC 6901, extended with `*` to map over arrays) in the result
//! of an earlier call of the same request.
//!
//! # Bounds
//!
//! A reference copies part of an earlier result into a later call, and a
//! call may hold many references, so without bounds a small request grows
//! exponentially along its chain of calls (a 610 KB request of `Core/echo`
//! calls once answered 64 MB and took 2 GB of memory). Three bounds close
//! that:
//!
//! - one reference expands to at most `maxObjectsInGet` values
//!   (`maxObjectsInSet` for a `/set`), the most any method accepts in one
//!   list; past it the call fails with `requestTooLarge` (RFC 8620 §5.1,
//!   §5.3), as the `/get` itself would;
//! - the bytes all references of a request add count against
//!   `maxSizeRequest` together with the request body: the request, once
//!   expanded, is what the server processes; past it the request fails
//!   with the request-level `limit` error (§3.6.1) naming `maxSizeRequest`;
//! - the pointer walks of one request visit at most [`STEPS`] values
//!   (a `*` over a huge array costs its length even when nothing matches),
//!   also reported as `maxSizeRequest`.
//!
//! A reference is measured on the earlier result in place, before it is
//! copied, so a refused reference costs no allocation.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{Error, Problem};
use super::limits;

/// An earlier call's response: method name, arguments, call id.
pub(crate) type Answered = (String, Value, String);

/// Values the pointer walks of one request may visit. why 1,000,000:
/// a real client's references (`/ids`, `/list/*/threadId` over at most
/// 500 objects, in at most `maxCallsInRequest` calls) visit a few tens of
/// thousands; a million takes a few milliseconds.
pub(crate) const STEPS: usize = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultReference {
    result_of: String,
    name: String,
    path: String,
}

/// What the result references of one request may still cost.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Bytes (as compact JSON) references may still add to the request.
    bytes_left: usize,
    /// Values pointer walks may still visit.
    steps_left: usize,
}

impl Budget {
    /// The budget of a request whose body is `request_bytes` long.
    pub(crate) fn new(request_bytes: usize) -> Self {
        Self {
            bytes_left: limits::SIZE_REQUEST.saturating_sub(request_bytes),
            steps_left: STEPS,
        }
    }
}

/// Why a call's arguments could not be resolved.
#[derive(Debug)]
pub(crate) enum Unresolved {
    /// The call fails with this method error; the request goes on.
    Call(Error),
    /// The request as a whole is over a limit (RFC 8620 §3.6.1): stop.
    Request(Problem),
}

impl From<Error> for Unresolved {
    fn from(e: Error) -> Self {
        Unresolved::Call(e)
    }
}

/// `args` of a call to `method` with every `#`-prefixed argument replaced
/// by what it references, charged to `budget`.
pub(crate) fn resolve(
    args: Map<String, Value>,
    answered: &[Answered],
    method: &str,
    budget: &mut Budget,
) -> Result<Map<String, Value>, Unresolved> {
    let mut out = Map::with_capacity(args.len());
    for (key, value) in args {
        let Some(name) = key.strip_prefix('#') else {
            if out.contains_key(&key) {
                return Err(duplicate(&key).into());
            }
            out.insert(key, value);
            continue;
        };
        if out.contains_key(name) {
            return Err(duplicate(name).into());
        }
        let reference: ResultReference = serde_json::from_value(value)
            .map_err(|e| Error::InvalidResultReference(format!("#{name}: {e}")))?;
        let found = lookup(&reference, answered, budget)?;
        check_count(&found, name, method)?;
        charge_bytes(&found, name, budget)?;
        out.insert(name.to_string(), found.to_value());
    }
    Ok(out)
}

fn duplicate(name: &str) -> Error {
    Error::InvalidArguments(format!(
        "argument {name} given both directly and as #{name}"
    ))
}

fn lookup<'a>(
    r: &ResultReference,
    answered: &'a [Answered],
    budget: &mut Budget,
) -> Result<Found<'a>, Unresolved> {
    let bad = |why: String| Error::InvalidResultReference(why);
    let (name, result, _) = answered
        .iter()
        .find(|(_, _, id)| *id == r.result_of)
        .ok_or_else(|| bad(format!("no earlier call with id {:?}", r.result_of)))?;
    if *name != r.name {
        return Err(bad(format!(
            "call {:?} answered {name}, not {}",
            r.result_of, r.name
        ))
        .into());
    }
    match find(result, &r.path, &mut budget.steps_left) {
        Ok(found) => Ok(found),
        Err(Miss::NotFound) => Err(bad(format!("path {:?} does not resolve", r.path)).into()),
        Err(Miss::Exhausted) => Err(Unresolved::Request(Problem::limit(
            "maxSizeRequest",
            format!(
                "the result reference paths of this request visit more than {STEPS} values; \
                 point at the ids you need instead of mapping `*` over large results"
            ),
        ))),
    }
}

/// Refuses a reference to more values than the method takes in one list.
fn check_count(found: &Found<'_>, name: &str, method: &str) -> Result<(), Error> {
    let (limit, field) = if method.ends_with("/set") {
        (limits::OBJECTS_IN_SET, "maxObjectsInSet")
    } else {
        (limits::OBJECTS_IN_GET, "maxObjectsInGet")
    };
    let count = found.count();
    if count > limit {
        return Err(Error::RequestTooLarge(format!(
            "#{name} expands to {count} values, more than {field} ({limit}); \
             ask for fewer (e.g. `limit` on the query) and fetch the rest in further requests"
        )));
    }
    Ok(())
}

/// Counts the reference's bytes against what is left of `maxSizeRequest`.
fn charge_bytes(found: &Found<'_>, name: &str, budget: &mut Budget) -> Result<(), Unresolved> {
    match found.json_len(budget.bytes_left) {
        Some(n) => {
            budget.bytes_left -= n;
            Ok(())
        }
        None => Err(Unresolved::Request(Problem::limit(
            "maxSizeRequest",
            format!(
                "with its result references expanded (at #{name}) the request is larger than \
                 maxSizeRequest ({} bytes); reference the ids you need, not whole results",
                limits::SIZE_REQUEST
            ),
        ))),
    }
}

/// What a path points at, borrowed from the earlier result.
#[derive(Debug)]
enum Found<'a> {
    /// A path without `*`: one value.
    One(&'a Value),
    /// A path with `*`: the flattened values it maps to.
    Many(Vec<&'a Value>),
}

impl Found<'_> {
    /// Values in the list (members of an object), or 1 for a scalar.
    fn count(&self) -> usize {
        match self {
            Found::One(Value::Array(a)) => a.len(),
            Found::One(Value::Object(o)) => o.len(),
            Found::One(_) => 1,
            Found::Many(v) => v.len(),
        }
    }

    /// Length as compact JSON, or `None` once past `cap`.
    fn json_len(&self, cap: usize) -> Option<usize> {
        match self {
            Found::One(v) => json_len(v, cap),
            Found::Many(items) => {
                // `[`, `]` and the commas between items.
                let mut total = 2 + items.len().saturating_sub(1);
                for item in items {
                    total = total.checked_add(json_len(item, cap.checked_sub(total)?)?)?;
                }
                (total <= cap).then_some(total)
            }
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Found::One(v) => (*v).clone(),
            Found::Many(items) => Value::Array(items.iter().map(|v| (*v).clone()).collect()),
        }
    }
}

/// Length of `value` as compact JSON, or `None` once past `cap` (the
/// count stops there, so measuring a huge value costs at most `cap`).
pub(crate) fn json_len(value: &Value, cap: usize) -> Option<usize> {
    struct Counter {
        n: usize,
        cap: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.n = self.n.saturating_add(buf.len());
            if self.n > self.cap {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { n: 0, cap };
    serde_json::to_writer(&mut counter, value).ok()?;
    Some(counter.n)
}

/// Why a path found nothing.
#[derive(Debug, PartialEq)]
enum Miss {
    /// The path does not resolve.
    NotFound,
    /// The request's walking budget is spent.
    Exhausted,
}

/// Evaluates a JMAP JSON pointer: RFC 6901 plus `*` over arrays, whose
/// array results are flattened one level; each value visited costs a step.
fn find<'a>(value: &'a Value, path: &str, steps: &mut usize) -> Result<Found<'a>, Miss> {
    if path.is_empty() {
        return Ok(Found::One(value));
    }
    let rest = path.strip_prefix('/').ok_or(Miss::NotFound)?;
    let tokens: Vec<String> = rest.split('/').map(unescape).collect();
    walk(value, &tokens, steps)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn step(steps: &mut usize, n: usize) -> Result<(), Miss> {
    *steps = steps.checked_sub(n).ok_or(Miss::Exhausted)?;
    Ok(())
}

fn walk<'a>(value: &'a Value, tokens: &[String], steps: &mut usize) -> Result<Found<'a>, Miss> {
    step(steps, 1)?;
    let Some((token, rest)) = tokens.split_first() else {
        return Ok(Found::One(value));
    };
    match value {
        Value::Array(items) if token == "*" => {
            let mut out = Vec::new();
            for item in items {
                match walk(item, rest, steps)? {
                    Found::One(Value::Array(inner)) => {
                        step(steps, inner.len())?;
                        out.extend(inner);
                    }
                    Found::One(other) => out.push(other),
                    Found::Many(inner) => {
                        step(steps, inner.len())?;
                        out.extend(inner);
                    }
                }
            }
            Ok(Found::Many(out))
        }
        Value::Array(items) => {
            let i = token.parse::<usize>().map_err(|_| Miss::NotFound)?;
            walk(items.get(i).ok_or(Miss::NotFound)?, rest, steps)
        }
        Value::Object(map) => walk(map.get(token.as_str()).ok_or(Miss::NotFound)?, rest, steps),
        _ => Err(Miss::NotFound),
    }
}

#[cfg(test)]
mod tests;
