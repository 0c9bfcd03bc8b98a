use super::*;
use serde_json::json;

const DEPLOYMENT: TypeRef<'static> = TypeRef::builtin("apps", "Deployment");
const POD: TypeRef<'static> = TypeRef::builtin("", "Pod");

fn smp(original: &Value, patch: Value, ty: TypeRef<'_>) -> Result<Value, PatchError> {
    apply(original, &serde_json::to_vec(&patch).unwrap(), ty)
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["a", "b"]},
        "spec": {
            "replicas": 2,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "tolerations": [{"key": "a"}, {"key": "b"}],
                    "containers": [
                        {
                            "name": "app",
                            "image": "nginx:1.24",
                            "args": ["--a", "--b"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}]
                        },
                        {"name": "sidecar", "image": "envoy"}
                    ]
                }
            }
        }
    })
}

fn containers(v: &Value) -> &Vec<Value> {
    v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
}

#[test]
fn null_deletes_a_field() {
    let out = smp(
        &deployment(),
        json!({"spec": {"replicas": null}}),
        DEPLOYMENT,
    )
    .unwrap();
    assert!(out["spec"].get("replicas").is_none());
    assert_eq!(out["spec"]["strategy"]["type"], "RollingUpdate");
}

#[test]
fn kubectl_image_change_merges_container_by_name() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{"image": "nginx:1.25", "name": "app"}]
    }}}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    let c = containers(&out);
    assert_eq!(c.len(), 2);
    assert_eq!(c[0]["image"], "nginx:1.25");
    assert_eq!(c[0]["env"].as_array().unwrap().len(), 2);
    assert_eq!(c[1]["name"], "sidecar");
    assert!(
        out["spec"]["template"]["spec"]
            .get("$setElementOrder/containers")
            .is_none()
    );
}

#[test]
fn kubectl_env_removal_with_patch_delete() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{
            "$setElementOrder/env": [{"name": "A"}],
            "env": [{"$patch": "delete", "name": "B"}],
            "name": "app"
        }]
    }}}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(
        containers(&out)[0]["env"],
        json!([{"name": "A", "value": "1"}])
    );
}

#[test]
fn kubectl_port_addition_merges_by_container_port_in_order() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
        "containers": [{
            "$setElementOrder/ports": [{"containerPort": 80}, {"containerPort": 8080}],
            "name": "app",
            "ports": [{"containerPort": 8080, "name": "admin"}]
        }]
    }}}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    let ports = &containers(&out)[0]["ports"];
    assert_eq!(
        *ports,
        json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080, "name": "admin"}])
    );
}

#[test]
fn new_item_without_element_order_goes_first_like_upstream() {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "init", "image": "x"}]}}}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    let names: Vec<&str> = containers(&out)
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["init", "app", "sidecar"]);
}

#[test]
fn set_element_order_reorders_and_keeps_server_only_items() {
    let original = json!({"spec": {"containers": [
        {"name": "1", "x": "a"}, {"name": "3"}, {"name": "4"}, {"name": "2"}, {"name": "9"}
    ]}});
    let patch = json!({"spec": {"$setElementOrder/containers": [
        {"name": "4"}, {"name": "2"}, {"name": "3"}, {"name": "1"}
    ]}});
    let out = smp(&original, patch, POD).unwrap();
    let names: Vec<&str> = out["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["4", "2", "3", "1", "9"]);
    assert_eq!(out["spec"]["containers"][3]["x"], "a");
}

#[test]
fn set_element_order_mismatch_is_an_error() {
    let original = json!({"spec": {"containers": [{"name": "1"}, {"name": "3"}, {"name": "2"}]}});
    let patch = json!({"spec": {
        "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
        "containers": [{"name": "3", "v": 3}, {"name": "1", "v": 1}]
    }});
    let err = smp(&original, patch, POD).unwrap_err();
    assert!(
        err.to_string()
            .contains("doesn't match $setElementOrder list"),
        "{err}"
    );
}

#[test]
fn patch_replace_in_map_replaces_whole_map() {
    let patch = json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn patch_replace_in_list_replaces_whole_list() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"}, {"name": "only", "image": "busybox"}
    ]}}}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(
        *containers(&out),
        vec![json!({"name": "only", "image": "busybox"})]
    );
}

#[test]
fn patch_delete_in_map_empties_it_and_in_list_item_removes_it() {
    let patch = json!({"spec": {
        "strategy": {"$patch": "delete"},
        "template": {"spec": {"containers": [{"$patch": "delete", "name": "sidecar"}]}}
    }});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(out["spec"]["strategy"], json!({}));
    assert_eq!(containers(&out).len(), 1);
}

#[test]
fn patch_merge_directive_is_rejected_like_upstream() {
    let in_list = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "merge"}]}}}});
    let err = smp(&deployment(), in_list, DEPLOYMENT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "merging lists cannot yet be specified in the patch"
    );
    let in_map = json!({"spec": {"strategy": {"$patch": "merge"}}});
    let err = smp(&deployment(), in_map, DEPLOYMENT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown patch type: merge in map: map[$patch:merge]"
    );
    assert_eq!(err.status_code(), 500);
}

#[test]
fn retain_keys_clears_unlisted_fields() {
    let patch = json!({"spec": {"strategy": {
        "$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"
    }}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn retain_keys_must_list_patched_fields() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}});
    let err = smp(&deployment(), patch, DEPLOYMENT).unwrap_err();
    assert!(
        matches!(err, PatchError::BadRequest(ref m) if m == "invalid patch format of retainKeys")
    );
}

#[test]
fn delete_from_primitive_list_and_primitive_merge() {
    let patch = json!({"metadata": {
        "$deleteFromPrimitiveList/finalizers": ["a"],
        "finalizers": ["c", "b"]
    }});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "b"]));
    let bad = json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}});
    let err = smp(&deployment(), bad, DEPLOYMENT).unwrap_err();
    assert_eq!(err.to_string(), "invalid patch format of primitive list");
}

#[test]
fn finalizers_merge_as_a_set_keeping_order() {
    let patch = json!({"metadata": {"finalizers": ["c"]}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["c", "a", "b"]));
}

#[test]
fn lists_without_strategy_are_replaced() {
    let patch = json!({"spec": {"template": {"spec": {
        "tolerations": [{"key": "z"}],
        "containers": [{"name": "app", "args": ["--c"]}]
    }}}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "z"}])
    );
    assert_eq!(containers(&out)[0]["args"], json!(["--c"]));
}

#[test]
fn missing_merge_key_is_internal_error_with_upstream_text() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
    let err = smp(&deployment(), patch, DEPLOYMENT).unwrap_err();
    assert_eq!(err.status_code(), 500);
    assert_eq!(
        err.to_string(),
        "map: map[image:x] does not contain declared merge key: name"
    );
}

#[test]
fn lists_of_lists_are_unprocessable() {
    let original = json!({"metadata": {"finalizers": [["a"]]}});
    let patch = json!({"metadata": {"finalizers": [["b"]]}});
    let err = smp(&original, patch, POD).unwrap_err();
    assert!(
        matches!(err, PatchError::Unprocessable(ref m) if m == "lists of lists are not supported")
    );
    let mixed = smp(
        &json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"finalizers": [1]}}),
        POD,
    );
    let err = mixed.unwrap_err();
    assert_eq!(
        err.to_string(),
        "list element types are not identical: [[a] [1]]"
    );
}

#[test]
fn service_ports_merge_by_port_and_status_conditions_by_type() {
    let svc = TypeRef::builtin("", "Service");
    let original = json!({
        "spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]}
    });
    let patch = json!({
        "spec": {"ports": [{"port": 80, "targetPort": 9090}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}, {"type": "Other"}]}
    });
    let out = smp(&original, patch, svc).unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
    let conditions = out["status"]["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 2);
    assert!(conditions.contains(&json!({"type": "Ready", "status": "True"})));
}

#[test]
fn cronjob_pod_spec_merges_containers() {
    let ty = TypeRef::builtin("batch", "CronJob");
    let original = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "a", "image": "1"}, {"name": "b", "image": "2"}]
    }}}}}});
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "b", "image": "3"}]
    }}}}}});
    let out = smp(&original, patch, ty).unwrap();
    let list = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"];
    assert_eq!(
        *list,
        json!([{"name": "a", "image": "1"}, {"name": "b", "image": "3"}])
    );
}

#[test]
fn host_aliases_merge_by_ip_and_owner_references_by_uid() {
    let original = json!({
        "metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
        "spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["a"]}]}
    });
    let patch = json!({
        "metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
        "spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["b"]}]}
    });
    let out = smp(&original, patch, POD).unwrap();
    assert_eq!(
        out["metadata"]["ownerReferences"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        out["spec"]["hostAliases"],
        json!([{"ip": "10.0.0.1", "hostnames": ["b"]}])
    );
}

#[test]
fn new_fields_drop_nulls_and_directives() {
    let patch =
        json!({"spec": {"nodeSelector": {"a": "b", "c": null}, "affinity": {"$patch": "replace"}}});
    let out = smp(&json!({"spec": {}}), patch, POD).unwrap();
    assert_eq!(out["spec"]["nodeSelector"], json!({"a": "b"}));
    assert!(out["spec"].get("affinity").is_none());
}

#[test]
fn pdb_selector_is_replaced_not_merged() {
    let ty = TypeRef::builtin("policy", "PodDisruptionBudget");
    let original = json!({"spec": {"selector": {"matchLabels": {"a": "1", "b": "2"}}}});
    let patch = json!({"spec": {"selector": {"matchLabels": {"c": "3"}}}});
    let out = smp(&original, patch, ty).unwrap();
    assert_eq!(out["spec"]["selector"], json!({"matchLabels": {"c": "3"}}));
}

#[test]
fn malformed_bodies_are_bad_requests() {
    let err = apply(&deployment(), b"[1]", DEPLOYMENT).unwrap_err();
    assert_eq!(
        err.to_string(),
        "json: cannot unmarshal array into Go value of type map[string]interface {}"
    );
    assert!(matches!(
        apply(&deployment(), b"{", DEPLOYMENT),
        Err(PatchError::BadRequest(_))
    ));
    assert_eq!(
        apply(&deployment(), b"null", DEPLOYMENT).unwrap(),
        deployment()
    );
}

#[test]
fn retain_keys_in_volume_item_switches_volume_source() {
    let original = json!({"spec": {"volumes": [
        {"name": "data", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "c"}}
    ]}});
    let patch = json!({"spec": {
        "$setElementOrder/volumes": [{"name": "data"}, {"name": "cfg"}],
        "volumes": [{"$retainKeys": ["hostPath", "name"], "hostPath": {"path": "/d"}, "name": "data"}]
    }});
    let out = smp(&original, patch, POD).unwrap();
    assert_eq!(
        out["spec"]["volumes"],
        json!([{"name": "data", "hostPath": {"path": "/d"}}, {"name": "cfg", "configMap": {"name": "c"}}])
    );
}

#[test]
fn patch_replace_marker_item_is_dropped_with_the_old_list() {
    // Upstream treats any item carrying `$patch: replace` as the list-level marker.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace", "name": "app", "image": "busybox"}
    ]}}}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert!(containers(&out).is_empty());
}

#[test]
fn set_element_order_orders_primitive_lists() {
    let patch =
        json!({"metadata": {"$setElementOrder/finalizers": ["b", "c", "a"], "finalizers": ["c"]}});
    let out = smp(&deployment(), patch, DEPLOYMENT).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c", "a"]));
}
