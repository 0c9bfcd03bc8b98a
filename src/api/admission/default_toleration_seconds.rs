//! DefaultTolerationSeconds: a new pod tolerates a `not-ready` or
//! `unreachable` node for a while (300 s unless
//! `--default-not-ready-toleration-seconds` says otherwise) before the
//! node lifecycle controller evicts it, unless it states its own
//! toleration of those taints (upstream
//! `plugin/pkg/admission/defaulttolerationseconds`).

use serde_json::{Value, json};

const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

/// Adds the missing `NoExecute` tolerations of not-ready and unreachable
/// nodes to a pod being created.
pub(super) fn admit(pod: &mut Value, seconds: i64) {
    let spec = &mut pod["spec"];
    if !spec.is_object() {
        return;
    }
    let tolerates = |spec: &Value, key: &str| {
        spec["tolerations"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                let effect = t["effect"].as_str().unwrap_or("");
                let key_matches = t["key"] == key
                    || (t["key"].as_str().unwrap_or("").is_empty() && t["operator"] == "Exists");
                key_matches && (effect.is_empty() || effect == "NoExecute")
            })
        })
    };
    for key in [NOT_READY, UNREACHABLE] {
        if tolerates(spec, key) {
            continue;
        }
        let toleration = json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds});
        match spec["tolerations"].as_array_mut() {
            Some(list) => list.push(toleration),
            None => spec["tolerations"] = json!([toleration]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tolerations_are_added_unless_stated() {
        let mut pod = json!({"spec": {"tolerations": [
            {"key": NOT_READY, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 10}]}});
        admit(&mut pod, 300);
        let ts = pod["spec"]["tolerations"].as_array().unwrap();
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[0]["tolerationSeconds"], 10);
        assert_eq!(ts[1]["key"], UNREACHABLE);
        assert_eq!(ts[1]["tolerationSeconds"], 300);
    }
}
