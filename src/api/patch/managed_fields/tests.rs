use super::*;

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-01-02T00:00:00Z";

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "u1", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "template": {"spec": {"containers": [{"name": "app", "image": image}]}}
        }
    })
}

fn entries(obj: &Value) -> &Vec<Value> {
    obj["metadata"]["managedFields"].as_array().unwrap()
}

fn created(manager: &str) -> Value {
    let mut obj = deployment(1, "nginx");
    update_managed_fields(None, &mut obj, manager, "Update", "apps/v1", T1);
    obj
}

#[test]
fn create_records_every_set_field_except_identity_metadata() {
    let obj = created("kubectl-client-side-apply");
    let list = entries(&obj);
    assert_eq!(list.len(), 1);
    let entry = &list[0];
    assert_eq!(entry["manager"], "kubectl-client-side-apply");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["time"], T1);
    assert_eq!(entry["fieldsType"], "FieldsV1");
    let want = json!({
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {
            "f:replicas": {},
            "f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}
        }
    });
    assert_eq!(entry["fieldsV1"], want);
}

#[test]
fn update_moves_changed_fields_to_the_writer() {
    let old = created("kubectl-client-side-apply");
    let mut new = old.clone();
    new["spec"]["replicas"] = json!(5);
    update_managed_fields(Some(&old), &mut new, "hpa", "Update", "autoscaling/v2", T2);
    let list = entries(&new);
    assert_eq!(list.len(), 2);
    let first = list
        .iter()
        .find(|e| e["manager"] == "kubectl-client-side-apply")
        .unwrap();
    assert!(first["fieldsV1"]["f:spec"].get("f:replicas").is_none());
    assert_eq!(first["time"], T1);
    let hpa = list.iter().find(|e| e["manager"] == "hpa").unwrap();
    assert_eq!(hpa["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
}

#[test]
fn no_op_update_changes_nothing() {
    let old = created("a");
    let mut new = old.clone();
    update_managed_fields(Some(&old), &mut new, "b", "Update", "apps/v1", T2);
    assert_eq!(new, old);
}

#[test]
fn managers_left_without_fields_are_dropped() {
    let old = created("a");
    let mut new = deployment(2, "httpd");
    new["metadata"]["labels"] = json!({"app": "other"});
    update_managed_fields(Some(&old), &mut new, "b", "Update", "apps/v1", T2);
    let list = entries(&new);
    let managers: Vec<&str> = list
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["a", "b"], "a still owns the container's name");
    let mut gone = new.clone();
    gone["spec"]["template"]["spec"]["containers"] = json!([{"name": "x", "image": "y"}]);
    gone["metadata"].as_object_mut().unwrap().remove("labels");
    update_managed_fields(Some(&new), &mut gone, "b", "Update", "apps/v1", T2);
    let managers: Vec<&str> = entries(&gone)
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(managers, ["b"]);
}

#[test]
fn removed_fields_leave_their_owner() {
    let old = created("a");
    let mut new = old.clone();
    new["metadata"]["labels"] = json!({});
    update_managed_fields(Some(&old), &mut new, "b", "Update", "apps/v1", T2);
    let a = entries(&new).iter().find(|e| e["manager"] == "a").unwrap();
    assert_eq!(
        a["fieldsV1"]["f:metadata"]["f:labels"],
        json!({}),
        "map kept, key gone"
    );
}

#[test]
fn request_managed_fields_are_used_unless_broken_and_single_empty_entry_resets() {
    let old = created("a");
    let mut broken = old.clone();
    broken["metadata"]["managedFields"] = json!([{"manager": "x", "operation": "Bogus"}]);
    broken["spec"]["replicas"] = json!(3);
    update_managed_fields(Some(&old), &mut broken, "b", "Update", "apps/v1", T2);
    assert_eq!(
        entries(&broken).len(),
        2,
        "fell back to the live managedFields"
    );

    // Upstream: an empty list keeps the live entries (clients unaware of
    // the field never strip it); a single empty entry resets them.
    let mut kept = old.clone();
    kept["metadata"]["managedFields"] = json!([]);
    kept["spec"]["replicas"] = json!(3);
    update_managed_fields(Some(&old), &mut kept, "b", "Update", "apps/v1", T2);
    assert_eq!(entries(&kept).len(), 2, "empty list keeps the live entries");

    let mut reset = old.clone();
    reset["metadata"]["managedFields"] = json!([{}]);
    reset["spec"]["replicas"] = json!(3);
    update_managed_fields(Some(&old), &mut reset, "b", "Update", "apps/v1", T2);
    let list = entries(&reset);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["manager"], "b");
}

#[test]
fn subresource_writes_are_recorded_as_such() {
    let old = created("a");
    let mut new = old.clone();
    new["status"] = json!({"replicas": 1});
    update_managed_fields_for_subresource(
        Some(&old),
        &mut new,
        &Writer {
            manager: "kcm",
            operation: "Update",
            api_version: "apps/v1",
            subresource: "status",
            schema: None,
        },
        T2,
    );
    let kcm = entries(&new)
        .iter()
        .find(|e| e["manager"] == "kcm")
        .unwrap();
    assert_eq!(kcm["subresource"], "status");
    assert_eq!(kcm["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    let id = ManagerId::new("kcm", "Update", "apps/v1", "status");
    assert_eq!(
        id.describe(),
        r#""kcm" with subresource "status" using apps/v1"#
    );
}

#[test]
fn update_managers_are_capped_at_ten() {
    let mut obj = created("m0");
    for i in 1..12 {
        let old = obj.clone();
        obj["metadata"]["labels"][format!("l{i}")] = json!("x");
        let time = format!("2024-01-01T00:00:{i:02}Z");
        update_managed_fields(
            Some(&old),
            &mut obj,
            &format!("m{i}"),
            "Update",
            "apps/v1",
            &time,
        );
    }
    let list = entries(&obj);
    assert_eq!(list.len(), 10);
    let ancient = list
        .iter()
        .find(|e| e["manager"] == ANCIENT_CHANGES)
        .unwrap();
    let labels = &ancient["fieldsV1"]["f:metadata"]["f:labels"];
    assert!(labels.get("f:l1").is_some() && labels.get("f:app").is_some());
}

#[test]
fn decode_rejects_bad_entries_and_round_trips_good_ones() {
    let obj = created("a");
    let managers = decode(&obj).unwrap();
    let mut again = without_managed_fields(&obj);
    encode_onto(&mut again, &managers);
    assert_eq!(again, obj);
    let bad = json!({"metadata": {"managedFields": [
        {"manager": "a", "operation": "Update", "apiVersion": "v1", "fieldsType": "FieldsV2"}
    ]}});
    assert_eq!(
        decode(&bad).unwrap_err(),
        "invalid fieldsType \"FieldsV2\" in managed fields entry 0"
    );
}

#[test]
fn entries_sort_apply_first_then_by_time() {
    let mut managers = Managers::new();
    let entry = |time: &str| Entry {
        set: {
            let mut s = FieldSet::default();
            s.insert(&[PathElement::Field("a".into())]);
            s
        },
        api_version: "v1".into(),
        time: Some(time.into()),
    };
    managers.insert(ManagerId::new("z", "Update", "v1", ""), entry(T1));
    managers.insert(ManagerId::new("y", "Update", "v1", ""), entry(T2));
    managers.insert(ManagerId::new("x", "Apply", "v1", ""), entry(T2));
    let mut obj = json!({});
    encode_onto(&mut obj, &managers);
    let order: Vec<&str> = entries(&obj)
        .iter()
        .map(|e| e["manager"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["x", "z", "y"]);
}
