use super::*;

fn identity(uid: &str) -> Identity {
    Identity {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        namespace: Some("ns".into()),
        name: format!("cm-{uid}"),
        uid: uid.into(),
    }
}

fn owner_ref(uid: &str, block: bool) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: format!("cm-{uid}"),
        uid: uid.into(),
        block_owner_deletion: Some(block),
        controller: None,
    }
}

fn observed(uid: &str, owners: Vec<OwnerReference>) -> Observed {
    Observed {
        identity: identity(uid),
        owners,
        being_deleted: false,
        finalizers: vec![],
    }
}

#[test]
fn unknown_owner_becomes_a_virtual_node_to_verify() {
    let mut graph = Graph::default();
    let work = graph.upsert(observed("child", vec![owner_ref("parent", false)]));
    assert_eq!(work, vec![Work::Delete("parent".into())]);
    let parent = graph.node("parent").unwrap();
    assert!(parent.virtual_node);
    assert!(parent.dependents.contains("child"));
    assert_eq!(parent.identity.namespace.as_deref(), Some("ns"));
    // Observing the owner makes it real without new work.
    assert!(graph.upsert(observed("parent", vec![])).is_empty());
    assert!(!graph.node("parent").unwrap().virtual_node);
    assert!(graph.node("parent").unwrap().dependents.contains("child"));
}

#[test]
fn deleting_an_owner_asks_dependents_to_recheck() {
    let mut graph = Graph::default();
    graph.upsert(observed("parent", vec![]));
    graph.upsert(observed("child", vec![owner_ref("parent", false)]));
    assert_eq!(graph.delete("parent"), vec![Work::Delete("child".into())]);
    assert!(graph.node("parent").is_none());
}

#[test]
fn orphan_and_foreground_finalizers_trigger_their_work() {
    let mut graph = Graph::default();
    graph.upsert(observed("parent", vec![]));
    graph.upsert(observed("child", vec![owner_ref("parent", true)]));
    let mut orphaning = observed("parent", vec![]);
    orphaning.being_deleted = true;
    orphaning.finalizers = vec![FINALIZER_ORPHAN.into()];
    assert_eq!(graph.upsert(orphaning), vec![Work::Orphan("parent".into())]);

    let mut foreground = observed("parent", vec![]);
    foreground.being_deleted = true;
    foreground.finalizers = vec![FINALIZER_FOREGROUND.into()];
    let work = graph.upsert(foreground);
    assert_eq!(
        work,
        vec![Work::Delete("child".into()), Work::Delete("parent".into())]
    );
    assert!(graph.node("parent").unwrap().deleting_dependents);
    assert_eq!(graph.blocking_dependents("parent").len(), 1);
    // The blocking dependent going away wakes the waiting owner.
    assert_eq!(graph.delete("child"), vec![Work::Delete("parent".into())]);
    assert!(graph.blocking_dependents("parent").is_empty());
}

#[test]
fn dropping_or_unblocking_a_reference_wakes_a_waiting_owner() {
    let mut graph = Graph::default();
    let mut parent = observed("parent", vec![]);
    parent.being_deleted = true;
    parent.finalizers = vec![FINALIZER_FOREGROUND.into()];
    graph.upsert(parent);
    graph.upsert(observed("child", vec![owner_ref("parent", true)]));
    let work = graph.upsert(observed("child", vec![owner_ref("parent", false)]));
    assert_eq!(work, vec![Work::Delete("parent".into())]);
    assert!(graph.blocking_dependents("parent").is_empty());
    let work = graph.upsert(observed("child", vec![]));
    assert!(work.is_empty());
    assert!(graph.node("parent").unwrap().dependents.is_empty());
}

#[test]
fn confirmed_absent_virtual_owner_is_removed_and_dependents_recheck() {
    let mut graph = Graph::default();
    graph.upsert(observed("child", vec![owner_ref("gone", false)]));
    assert_eq!(
        graph.confirm_absent("gone"),
        vec![Work::Delete("child".into())]
    );
    assert!(graph.node("gone").is_none());
    assert_eq!(graph.len(), 1);
    // An observed node is kept; only its dependents re-check.
    graph.upsert(observed("real", vec![]));
    graph.upsert(observed("kid", vec![owner_ref("real", false)]));
    assert_eq!(
        graph.confirm_absent("real"),
        vec![Work::Delete("kid".into())]
    );
    assert!(graph.node("real").is_some());
}
