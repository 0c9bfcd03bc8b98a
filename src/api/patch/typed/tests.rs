use super::*;
use crate::api::patch::TypeRef;
use crate::api::patch::schema;
use serde_json::json;

fn pod() -> Field {
    schema::root(TypeRef::builtin("", "Pod"))
}

fn names(v: &Value) -> Vec<&str> {
    v["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect()
}

fn containers(names: &[&str]) -> Value {
    let items: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
    json!({"spec": {"containers": items}})
}

fn path(parts: &[&str]) -> Vec<PathElement> {
    parts
        .iter()
        .map(|p| PathElement::Field(p.to_string()))
        .collect()
}

#[test]
fn merge_puts_shared_items_in_config_order_and_keeps_live_only_items() {
    let merged = merge(
        &containers(&["a", "b", "c"]),
        &containers(&["c", "a"]),
        pod(),
    );
    assert_eq!(names(&merged), ["b", "c", "a"]);
    let merged = merge(&containers(&["a", "b"]), &containers(&["b", "x"]), pod());
    assert_eq!(names(&merged), ["a", "b", "x"]);
}

#[test]
fn merge_config_wins_on_scalars_and_atomic_lists_and_null_unsets() {
    let live = json!({"spec": {"a": 1, "tolerations": [{"key": "x"}], "keep": true}});
    let config = json!({"spec": {"a": 2, "tolerations": [{"key": "y"}], "keep": null}});
    let merged = merge(&live, &config, pod());
    assert_eq!(
        merged,
        json!({"spec": {"a": 2, "tolerations": [{"key": "y"}]}})
    );
}

#[test]
fn field_set_marks_items_empty_maps_and_nulls() {
    let value = json!({"spec": {"containers": [{"name": "a", "resources": {}}], "x": null},
                       "metadata": {"finalizers": ["f"]}});
    let set = to_field_set(&value, pod()).unwrap();
    let item = PathElement::Key(vec![("name".into(), json!("a"))]);
    let mut container = path(&["spec", "containers"]);
    container.push(item);
    assert!(set.has(&container));
    let mut resources = container.clone();
    resources.push(PathElement::Field("resources".into()));
    assert!(set.has(&resources));
    assert!(set.has(&path(&["spec", "x"])));
    assert!(!set.has(&path(&["spec"])));
    let mut finalizer = path(&["metadata", "finalizers"]);
    finalizer.push(PathElement::Value(json!("f")));
    assert!(set.has(&finalizer));
}

#[test]
fn field_set_rejects_keyless_items() {
    let err = to_field_set(&json!({"spec": {"containers": [{"image": "x"}]}}), pod()).unwrap_err();
    assert_eq!(
        err,
        ".spec.containers: element 0: associative list with keys has an element that omits all \
         key fields [\"name\"] (and doesn't have default values for any key fields)"
    );
}

#[test]
fn compare_reports_added_modified_removed() {
    let old = json!({"spec": {"a": 1, "b": 2, "containers": [{"name": "x"}]}});
    let new = json!({"spec": {"a": 5, "c": 3, "containers": [{"name": "y"}]}});
    let cmp = compare(&old, &new, pod());
    assert!(cmp.modified.has(&path(&["spec", "a"])));
    assert!(cmp.added.has(&path(&["spec", "c"])));
    assert!(cmp.removed.has(&path(&["spec", "b"])));
    let mut y = path(&["spec", "containers"]);
    y.push(PathElement::Key(vec![("name".into(), json!("y"))]));
    assert!(cmp.added.has(&y));
    assert!(
        !cmp.added.has(&path(&["spec"])),
        "struct fields are not themselves added"
    );
}

#[test]
fn prune_removes_only_unowned_previously_applied_fields() {
    let mut value = json!({"spec": {"a": 1, "b": 2, "c": 3}});
    let mut last = FieldSet::default();
    last.insert(&path(&["spec", "a"]));
    last.insert(&path(&["spec", "b"]));
    let mut owned = FieldSet::default();
    owned.insert(&path(&["spec", "b"]));
    prune(&mut value, pod(), &last, Some(&owned));
    assert_eq!(value, json!({"spec": {"b": 2, "c": 3}}));
    let mut value = json!({"spec": {"a": 1, "c": 3}});
    prune(&mut value, pod(), &last, None);
    assert_eq!(
        value,
        json!({}),
        "unowned struct goes with its unowned defaults"
    );
}
