use super::*;

fn at(ty: TypeRef<'_>, path: &[&str]) -> Field {
    let mut field = root(ty);
    for name in path {
        field = field.node.field(name);
    }
    field
}

const DEPLOY: TypeRef<'static> = TypeRef::builtin("apps", "Deployment");
const POD: TypeRef<'static> = TypeRef::builtin("", "Pod");

#[test]
fn containers_merge_by_name_under_pod_and_template() {
    let pod = at(POD, &["spec", "containers"]);
    let deploy = at(DEPLOY, &["spec", "template", "spec", "containers"]);
    assert_eq!(pod.smp, Smp::Merge(Some("name")));
    assert_eq!(deploy, pod);
}

#[test]
fn cronjob_pod_spec_is_four_levels_down() {
    let cron = TypeRef::builtin("batch", "CronJob");
    let path = ["spec", "jobTemplate", "spec", "template", "spec", "volumes"];
    assert_eq!(at(cron, &path).smp, Smp::Merge(Some("name")));
}

#[test]
fn container_ports_key_on_port_and_defaulted_protocol_for_apply() {
    let ports = at(POD, &["spec", "containers"]).node.field("ports");
    assert_eq!(ports.smp, Smp::Merge(Some("containerPort")));
    assert_eq!(ports.list, ListType::Map(CONTAINER_PORT));
    assert_eq!(CONTAINER_PORT[1].default, Some("TCP"));
}

#[test]
fn service_ports_differ_from_container_ports() {
    let svc = TypeRef::builtin("", "Service");
    assert_eq!(at(svc, &["spec", "ports"]).smp, Smp::Merge(Some("port")));
}

#[test]
fn unknown_fields_are_atomic_and_conditions_merge_by_type() {
    assert_eq!(at(DEPLOY, &["spec", "foo"]).list, ListType::Atomic);
    let conditions = at(DEPLOY, &["status", "conditions"]);
    assert_eq!(conditions.smp, Smp::Merge(Some("type")));
}

#[test]
fn custom_resources_have_no_strategic_schema() {
    let cr = TypeRef::builtin("example.com", "Widget");
    assert!(!has_strategic_schema(cr));
    assert!(has_strategic_schema(DEPLOY));
    assert_eq!(at(cr, &["status", "conditions"]).list, ListType::Atomic);
}

#[test]
fn finalizers_are_a_merged_set_and_labels_a_free_map() {
    assert_eq!(at(POD, &["metadata", "finalizers"]).list, ListType::Set);
    assert!(at(POD, &["metadata", "labels"]).node.is_free_map());
}
