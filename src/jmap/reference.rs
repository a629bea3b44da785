//! Result references (RFC 8620 §3.7): an argument `#name` whose value is
//! `{resultOf, name, path}` is replaced by the value at `path` (a JSON
//! Pointer, RFC 6901, extended with `*` to map over arrays) in the result
//! of an earlier call of the same request.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::Error;

/// An earlier call's response: method name, arguments, call id.
pub(crate) type Answered = (String, Value, String);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultReference {
    result_of: String,
    name: String,
    path: String,
}

/// `args` with every `#`-prefixed argument replaced by what it references.
pub(crate) fn resolve(
    args: Map<String, Value>,
    answered: &[Answered],
) -> Result<Map<String, Value>, Error> {
    let mut out = Map::with_capacity(args.len());
    for (key, value) in args {
        let Some(name) = key.strip_prefix('#') else {
            if out.contains_key(&key) {
                return Err(duplicate(&key));
            }
            out.insert(key, value);
            continue;
        };
        if out.contains_key(name) {
            return Err(duplicate(name));
        }
        let reference: ResultReference = serde_json::from_value(value)
            .map_err(|e| Error::InvalidResultReference(format!("#{name}: {e}")))?;
        out.insert(name.to_string(), lookup(&reference, answered)?);
    }
    Ok(out)
}

fn duplicate(name: &str) -> Error {
    Error::InvalidArguments(format!(
        "argument {name} given both directly and as #{name}"
    ))
}

fn lookup(r: &ResultReference, answered: &[Answered]) -> Result<Value, Error> {
    let bad = |why: String| Error::InvalidResultReference(why);
    let (name, result, _) = answered
        .iter()
        .find(|(_, _, id)| *id == r.result_of)
        .ok_or_else(|| bad(format!("no earlier call with id {:?}", r.result_of)))?;
    if *name != r.name {
        return Err(bad(format!(
            "call {:?} answered {name}, not {}",
            r.result_of, r.name
        )));
    }
    pointer(result, &r.path).ok_or_else(|| bad(format!("path {:?} does not resolve", r.path)))
}

/// Evaluates a JMAP JSON pointer: RFC 6901 plus `*` over arrays, whose
/// array results are flattened one level.
pub(crate) fn pointer(value: &Value, path: &str) -> Option<Value> {
    if path.is_empty() {
        return Some(value.clone());
    }
    let rest = path.strip_prefix('/')?;
    let tokens: Vec<String> = rest.split('/').map(unescape).collect();
    walk(value, &tokens)
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn walk(value: &Value, tokens: &[String]) -> Option<Value> {
    let Some((token, rest)) = tokens.split_first() else {
        return Some(value.clone());
    };
    match value {
        Value::Array(items) if token == "*" => {
            let mut out = Vec::new();
            for item in items {
                match walk(item, rest)? {
                    Value::Array(inner) => out.extend(inner),
                    other => out.push(other),
                }
            }
            Some(Value::Array(out))
        }
        Value::Array(items) => walk(items.get(token.parse::<usize>().ok()?)?, rest),
        Value::Object(map) => walk(map.get(token.as_str())?, rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers() {
        let v = json!({"list": [{"ids": ["a", "b"]}, {"ids": ["c"]}], "x/y": {"~": 1}});
        assert_eq!(pointer(&v, "/list/*/ids"), Some(json!(["a", "b", "c"])));
        assert_eq!(pointer(&v, "/list/1/ids/0"), Some(json!("c")));
        assert_eq!(pointer(&v, "/x~1y/~0"), Some(json!(1)));
        assert_eq!(pointer(&v, "/nope"), None);
        assert_eq!(pointer(&v, "list"), None);
    }

    #[test]
    fn references() {
        let answered = vec![(
            "Email/query".to_string(),
            json!({"ids": ["e1_1"]}),
            "c0".to_string(),
        )];
        let args = json!({"#ids": {"resultOf": "c0", "name": "Email/query", "path": "/ids"}});
        let Value::Object(args) = args else { panic!() };
        let out = resolve(args.clone(), &answered).unwrap();
        assert_eq!(out.get("ids"), Some(&json!(["e1_1"])));
        assert!(resolve(args, &[]).is_err());
    }
}
