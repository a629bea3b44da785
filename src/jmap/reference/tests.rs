use super::*;
use serde_json::json;

fn pointer(v: &Value, path: &str) -> Option<Value> {
    find(v, path, &mut STEPS.clone()).ok().map(|f| f.to_value())
}

fn args(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn answered(result: Value) -> Vec<Answered> {
    vec![("Core/echo".to_string(), result, "c0".to_string())]
}

fn reference(path: &str) -> Value {
    json!({"resultOf": "c0", "name": "Core/echo", "path": path})
}

#[test]
fn pointers() {
    let v = json!({"list": [{"ids": ["a", "b"]}, {"ids": ["c"]}], "x/y": {"~": 1}});
    assert_eq!(pointer(&v, "/list/*/ids"), Some(json!(["a", "b", "c"])));
    assert_eq!(pointer(&v, "/list/1/ids/0"), Some(json!("c")));
    assert_eq!(pointer(&v, "/x~1y/~0"), Some(json!(1)));
    assert_eq!(pointer(&v, "/list/*"), Some(v["list"].clone()));
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
    let a = args(json!({"#ids": {"resultOf": "c0", "name": "Email/query", "path": "/ids"}}));
    let out = resolve(a.clone(), &answered, "Email/get", &mut Budget::new(0)).unwrap();
    assert_eq!(out.get("ids"), Some(&json!(["e1_1"])));
    assert!(matches!(
        resolve(a, &[], "Email/get", &mut Budget::new(0)),
        Err(Unresolved::Call(Error::InvalidResultReference(_)))
    ));
}

#[test]
fn a_reference_to_more_values_than_a_method_takes_is_request_too_large() {
    let ids: Vec<String> = (0..=limits::OBJECTS_IN_GET)
        .map(|i| format!("e{i}"))
        .collect();
    let done = answered(json!({"ids": ids, "list": [{"ids": ids}]}));
    for path in ["/ids", "/list/*/ids"] {
        let a = args(json!({"#ids": reference(path)}));
        let got = resolve(a, &done, "Email/get", &mut Budget::new(0));
        let Err(Unresolved::Call(e)) = got else {
            panic!("{path}: {got:?}")
        };
        assert_eq!(e.classify().kind, "requestTooLarge", "{path}");
        assert!(e.to_string().contains("maxObjectsInGet"), "{e}");
    }
    let a = args(json!({"#destroy": reference("/ids")}));
    let Err(Unresolved::Call(e)) = resolve(a, &done, "Email/set", &mut Budget::new(0)) else {
        panic!("a /set takes maxObjectsInSet")
    };
    assert!(e.to_string().contains("maxObjectsInSet"), "{e}");
}

#[test]
fn references_count_against_max_size_request() {
    // 100 references to a 100 KB string: 10 MB, past 10 MiB with the body.
    let done = answered(json!({"v": "x".repeat(100_000)}));
    let mut a = Map::new();
    for i in 0..100 {
        a.insert(format!("#r{i}"), reference("/v"));
    }
    let mut budget = Budget::new(600_000);
    let got = resolve(a, &done, "Core/echo", &mut budget);
    let Err(Unresolved::Request(p)) = got else {
        panic!("{got:?}")
    };
    assert_eq!(p.limit_name(), Some("maxSizeRequest"), "{p:?}");
    // The budget is a request's: once spent, a small reference fails too.
    let one = args(json!({"#r": reference("/v")}));
    assert!(matches!(
        resolve(one, &done, "Core/echo", &mut budget),
        Err(Unresolved::Request(_))
    ));
}

#[test]
fn walking_a_huge_array_stops_at_the_step_budget() {
    let done = answered(json!({"a": vec![json!([]); 300_000]}));
    let mut budget = Budget::new(0);
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        let a = args(json!({"#x": reference("/a/*/*")}));
        outcomes.push(match resolve(a, &done, "Core/echo", &mut budget) {
            Err(Unresolved::Call(_)) => "call",
            Err(Unresolved::Request(_)) => "request",
            Ok(_) => "ok",
        });
    }
    // Each walk visits every one of the 300,000 empty arrays to find
    // nothing; the fourth has no budget left.
    assert_eq!(outcomes, ["ok", "ok", "ok", "request", "request"]);
}

#[test]
fn json_len_is_the_serialised_length_and_stops_at_the_cap() {
    let v = json!({"a": [1, "two", null, {"b": "é\n"}], "c": true});
    let n = serde_json::to_vec(&v).unwrap().len();
    assert_eq!(json_len(&v, n), Some(n));
    assert_eq!(json_len(&v, n - 1), None);
    let many = Found::Many(vec![&v, &v]);
    assert_eq!(many.json_len(usize::MAX), Some(2 * n + 3));
    assert_eq!(many.json_len(2 * n + 2), None);
}
