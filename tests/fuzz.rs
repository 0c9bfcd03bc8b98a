//! Property-based fuzzing of everything that parses client input: body
//! decoders (JSON, YAML, protobuf), the three patch kinds, server-side
//! apply, label and field selectors, and quantities. Nothing may panic;
//! each input gets an answer (Ok or a typed error).
//!
//! CI runs a short pass. Run longer by hand:
//! `KELP_FUZZ_CASES=200000 cargo test --release --test fuzz`.

use bytes::Bytes;
use kelp::api::patch::{PatchType, TypeRef, apply_patch, server_side_apply};
use kelp::api::selectors::{FieldSelector, LabelSelector};
use kelp::api::strategy::decode_body;
use proptest::prelude::*;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("KELP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        // Shrinking a non-panicking input is pointless; a panic shrinks.
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    }
}

/// Keys that Kubernetes objects use, so generated documents reach deep
/// into typed code paths instead of bouncing off at the top.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("metadata".to_string()),
        Just("spec".to_string()),
        Just("containers".to_string()),
        Just("name".to_string()),
        Just("image".to_string()),
        Just("labels".to_string()),
        Just("annotations".to_string()),
        Just("env".to_string()),
        Just("ports".to_string()),
        Just("containerPort".to_string()),
        Just("$patch".to_string()),
        Just("$retainKeys".to_string()),
        Just("$setElementOrder/containers".to_string()),
        Just("$deleteFromPrimitiveList/finalizers".to_string()),
        Just("finalizers".to_string()),
        Just("volumes".to_string()),
        Just("apiVersion".to_string()),
        Just("kind".to_string()),
        "[a-zA-Z$/._-]{0,12}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop_oneof![
            Just("replace".to_string()),
            Just("delete".to_string()),
            Just("merge".to_string()),
            Just("c".to_string()),
            "[ -~]{0,16}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "labels": {"a": "b"},
                     "finalizers": ["x", "y"]},
        "spec": {"containers": [
            {"name": "c", "image": "busybox", "env": [{"name": "A", "value": "1"}],
             "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "d", "image": "nginx"}
        ], "volumes": [{"name": "v", "emptyDir": {}}]}
    })
}

const POD: TypeRef<'static> = TypeRef::builtin("", "Pod");

fn json_patch_op() -> impl Strategy<Value = Value> {
    let path = prop_oneof![
        Just("/metadata/labels/a".to_string()),
        Just("/metadata/annotations".to_string()),
        Just("/spec/containers/0".to_string()),
        Just("/spec/containers/-".to_string()),
        Just("/spec/containers/1/env".to_string()),
        Just("/metadata".to_string()),
        Just("".to_string()),
        "(/[a-z0-9~-]{0,6}){0,5}",
    ];
    (
        prop_oneof![
            Just("add"),
            Just("remove"),
            Just("replace"),
            Just("move"),
            Just("copy"),
            Just("test"),
            Just("bogus"),
        ],
        path.clone(),
        path,
        json_value(),
    )
        .prop_map(
            |(op, path, from, value)| json!({"op": op, "path": path, "from": from, "value": value}),
        )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn body_decoders_answer_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let body = Bytes::from(bytes);
        for ct in [None, Some("application/json"), Some("application/yaml"),
                   Some("application/vnd.kubernetes.protobuf")] {
            let _ = decode_body(&body, ct);
        }
    }

    #[test]
    fn body_decoders_answer_any_document(doc in json_value()) {
        let json = Bytes::from(serde_json::to_vec(&doc).unwrap());
        let decoded = decode_body(&json, Some("application/json"));
        if doc.is_object() {
            // Any JSON object decodes; what it means is validation's job.
            prop_assert!(decoded.is_ok(), "{:?}", decoded.err());
        }
        let yaml = Bytes::from(serde_yaml::to_string(&doc).unwrap());
        let _ = decode_body(&yaml, Some("application/yaml"));
        // A protobuf envelope around JSON-ish bytes.
        let mut pb = b"k8s\0".to_vec();
        pb.extend_from_slice(&json);
        let _ = decode_body(&Bytes::from(pb), Some("application/vnd.kubernetes.protobuf"));
    }

    #[test]
    fn json_patches_answer(ops in prop::collection::vec(json_patch_op(), 0..8)) {
        let body = serde_json::to_vec(&Value::Array(ops)).unwrap();
        let _ = apply_patch(&pod(), PatchType::Json, &body, POD);
    }

    #[test]
    fn merge_and_strategic_patches_answer(patch in json_value()) {
        let body = serde_json::to_vec(&patch).unwrap();
        let _ = apply_patch(&pod(), PatchType::Merge, &body, POD);
        let _ = apply_patch(&pod(), PatchType::StrategicMerge, &body, POD);
    }

    #[test]
    fn server_side_apply_answers(spec in json_value(), force in any::<bool>()) {
        let applied = json!({"apiVersion": "v1", "kind": "Pod",
                             "metadata": {"name": "p", "namespace": "default"}, "spec": spec});
        let body = serde_json::to_vec(&applied).unwrap();
        let live = pod();
        for existing in [None, Some(&live)] {
            let _ = server_side_apply(existing, &body, "fuzz", force, POD, "2026-01-01T00:00:00Z");
        }
    }

    #[test]
    fn label_selectors_answer(s in "[a-z0-9=!,() .:/_-]{0,40}|(in|notin|!|=|==|!=)*") {
        let _ = LabelSelector::parse(&s);
    }

    #[test]
    fn label_selectors_from_json_answer(v in json_value()) {
        let _ = LabelSelector::from_json(&v);
    }

    #[test]
    fn field_selectors_answer(s in "[a-z.=!,\\\\]{0,40}") {
        let _ = FieldSelector::parse(&s);
    }

    #[test]
    fn quantities_answer(s in "[-+0-9.eEkKmMGTPiun]{0,24}") {
        if let Ok(q) = kelp::client::quantity::parse(&s) {
            // What parses renders canonically, and that parses again to
            // the same value.
            let canonical = q.canonical();
            let again = kelp::client::quantity::parse(&canonical);
            prop_assert!(again.is_ok(), "{s:?} -> {canonical:?} does not parse again");
            prop_assert_eq!(
                again.unwrap().cmp_value(&q),
                std::cmp::Ordering::Equal,
                "{:?} -> {:?} changed value", s, canonical
            );
        }
    }
}
