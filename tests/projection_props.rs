//! Property tests for the streaming projector: it reads JSON exactly as strictly as
//! `serde_json` does, passes open content through unchanged, and what it writes holds
//! only declared members and is already projected.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tollgate::body::masking::TokenVault;
use tollgate::body::projection::{Audience, Projection};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        // Names the schema below declares, so projection has something to keep.
        prop_oneof![Just("id"), Just("items"), Just("a"), Just("open")].prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("id".to_string()),
                        Just("items".to_string()),
                        Just("a".to_string()),
                        Just("open".to_string()),
                        any::<String>(),
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A change to a document's text: delete, insert or replace one byte.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, u8),
    Replace(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    let byte = prop_oneof![
        prop::sample::select(b"{}[]\",:\\/ 0123456789.eE+-tfnulrsaxb\t\n\x01\xff\xc3".to_vec()),
        any::<u8>(),
    ];
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Edit::Replace(i, b)),
    ]
}

fn apply_edit(text: &mut Vec<u8>, edit: &Edit) {
    let len = text.len();
    match *edit {
        Edit::Delete(i) if len > 0 => {
            text.remove(i % len);
        }
        Edit::Insert(i, b) => text.insert(i % (len + 1), b),
        Edit::Replace(i, b) if len > 0 => text[i % len] = b,
        _ => {}
    }
}

fn vault() -> &'static TokenVault {
    static VAULT: std::sync::LazyLock<TokenVault> = std::sync::LazyLock::new(TokenVault::default);
    &VAULT
}

fn audience(pci_attested: bool) -> Audience<'static> {
    Audience {
        pci_attested,
        partner: "prop",
        scopes: &[],
        key: None,
        vault: vault(),
    }
}

fn project(plan: &Projection, input: &[u8], pci_attested: bool) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    plan.project(input, &audience(pci_attested), &mut out).ok().map(|_| out)
}

fn declared_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "items": {"type": "array", "items": {"type": "object", "properties": {"a": {}, "id": {}}}},
            "open": {}
        }
    })
}

/// Every object in `value` at a declared place holds only declared names.
fn only_declared(value: &Value) -> bool {
    let Value::Object(root) = value else {
        return true;
    };
    root.keys().all(|k| ["id", "items", "open"].contains(&k.as_str()))
        && match root.get("items") {
            Some(Value::Array(items)) => items.iter().all(|item| match item {
                Value::Object(o) => o.keys().all(|k| k == "a" || k == "id"),
                _ => true,
            }),
            _ => true,
        }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn accepts_exactly_what_serde_json_accepts(value in json_value(), edits in prop::collection::vec(edit(), 0..3), pretty in any::<bool>()) {
        let mut text = if pretty {
            serde_json::to_vec_pretty(&value).expect("serialise")
        } else {
            serde_json::to_vec(&value).expect("serialise")
        };
        for edit in &edits {
            apply_edit(&mut text, edit);
        }
        let serde = serde_json::from_slice::<Value>(&text);
        // serde_json refuses numbers beyond f64 range; the projector passes their text on.
        if serde.as_ref().is_err_and(|e| e.to_string().starts_with("number out of range")) {
            return Ok(());
        }
        let open = Projection::from_schema(&json!({}), &json!({}));
        let ours = project(&open, &text, true);
        prop_assert_eq!(ours.is_some(), serde.is_ok(), "{:?}", String::from_utf8_lossy(&text));
        if let (Some(out), Ok(expected)) = (ours, serde) {
            let back: Value = serde_json::from_slice(&out).expect("the projector writes JSON");
            prop_assert_eq!(back, expected);
        }
    }

    #[test]
    fn what_it_writes_is_declared_and_already_projected(value in json_value(), pci_attested in any::<bool>()) {
        let schema = declared_schema();
        let plan = Projection::from_schema(&schema, &schema);
        let input = serde_json::to_vec(&value).expect("serialise");
        let out = project(&plan, &input, pci_attested).expect("well-formed input");
        let projected: Value = serde_json::from_slice(&out).expect("the projector writes JSON");
        prop_assert!(only_declared(&projected), "{}", projected);
        let mut again = Vec::new();
        let effect = plan.project(&out, &audience(pci_attested), &mut again).expect("its own output is JSON");
        prop_assert_eq!(effect.undeclared, 0);
        prop_assert_eq!(effect.pans_caught, 0);
        prop_assert_eq!(serde_json::from_slice::<Value>(&again).expect("JSON"), projected);
    }
}
