use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::*;
use crate::controllers::deployment::scaling::tests::{deployment, rs};

fn annotations_of(rs: &ReplicaSet) -> BTreeMap<String, String> {
    rs.metadata.annotations.clone().unwrap_or_default()
}

#[test]
fn revisions_parse_and_garbled_ones_are_skipped() {
    let rss = vec![
        rs("a", 0, 0, 1, &[(REVISION, "3")]),
        rs("b", 0, 0, 2, &[(REVISION, "x")]),
        rs("c", 0, 0, 3, &[]),
    ];
    assert_eq!(revision(&rss[0].metadata), Some(3));
    assert_eq!(revision(&rss[1].metadata), None);
    assert_eq!(revision(&rss[2].metadata), Some(0));
    assert_eq!(max_revision(&rss), 3);
    assert_eq!(max_revision(&[]), 0);
}

#[test]
fn a_new_replica_set_gets_the_next_revision_and_replicas_annotations() {
    let mut d = deployment(10, IntOrString::Int(3), IntOrString::Int(2));
    d.metadata.annotations = Some(
        [
            ("kubernetes.io/change-cause".to_string(), "v2".to_string()),
            (
                "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                "{}".to_string(),
            ),
            (REVISION.to_string(), "7".to_string()),
        ]
        .into(),
    );
    let mut new = (*rs("new", 0, 0, 1, &[])).clone();
    assert!(set_new_rs_annotations(&d, &mut new, "2", false));
    let a = annotations_of(&new);
    assert_eq!(a.get(REVISION).map(String::as_str), Some("2"));
    assert_eq!(
        a.get("kubernetes.io/change-cause").map(String::as_str),
        Some("v2")
    );
    assert!(!a.contains_key("kubectl.kubernetes.io/last-applied-configuration"));
    assert_eq!(a.get(DESIRED_REPLICAS).map(String::as_str), Some("10"));
    assert_eq!(a.get(MAX_REPLICAS).map(String::as_str), Some("13"));
    assert!(!a.contains_key(REVISION_HISTORY));
    // Nothing changes on a second pass.
    assert!(!set_new_rs_annotations(&d, &mut new, "2", true));
}

#[test]
fn reviving_an_old_replica_set_records_its_revision_history() {
    let d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
    let mut old = (*rs("old", 0, 0, 1, &[(REVISION, "1")])).clone();
    assert!(set_new_rs_annotations(&d, &mut old, "3", true));
    assert_eq!(
        annotations_of(&old).get(REVISION).map(String::as_str),
        Some("3")
    );
    assert_eq!(
        annotations_of(&old)
            .get(REVISION_HISTORY)
            .map(String::as_str),
        Some("1")
    );
    assert!(set_new_rs_annotations(&d, &mut old, "5", true));
    assert_eq!(
        annotations_of(&old)
            .get(REVISION_HISTORY)
            .map(String::as_str),
        Some("1,3")
    );
    // A lower revision never replaces a higher one.
    assert!(!set_new_rs_annotations(&d, &mut old, "4", true));
    assert_eq!(
        annotations_of(&old).get(REVISION).map(String::as_str),
        Some("5")
    );
}

#[test]
fn revision_history_is_bounded_in_length() {
    let mut annotations = BTreeMap::new();
    let long: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    annotations.insert(REVISION_HISTORY.to_string(), long.join(","));
    append_revision_history(&mut annotations, "99999");
    let history = annotations
        .get(REVISION_HISTORY)
        .cloned()
        .unwrap_or_default();
    assert!(history.len() <= MAX_REVISION_HISTORY_CHARS);
    assert!(history.ends_with(",99999"));
    assert!(
        !history.starts_with("0,"),
        "oldest entries are dropped first"
    );
}

#[test]
fn garbled_revisions_leave_the_replica_set_alone() {
    let d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
    let mut garbled = (*rs("g", 0, 0, 1, &[(REVISION, "abc")])).clone();
    assert!(!set_new_rs_annotations(&d, &mut garbled, "2", true));
    assert_eq!(
        annotations_of(&garbled).get(REVISION).map(String::as_str),
        Some("abc")
    );
}

#[test]
fn deployment_revision_is_set_once() {
    let mut d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
    assert!(set_deployment_revision(&mut d, "4"));
    assert!(!set_deployment_revision(&mut d, "4"));
}

#[test]
fn replicas_annotations_track_desired_and_max() {
    let mut r = (*rs("a", 1, 1, 1, &[])).clone();
    assert!(replicas_annotations_need_update(&r, 3, 4));
    assert!(set_replicas_annotations(&mut r, 3, 4));
    assert!(!replicas_annotations_need_update(&r, 3, 4));
    assert_eq!(
        (desired_replicas_annotation(&r), max_replicas_annotation(&r)),
        (Some(3), Some(4))
    );
}

#[test]
fn history_cleanup_keeps_the_newest_revisions_and_busy_sets() {
    let mut d = deployment(1, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.revision_history_limit = Some(1);
    let old: Vec<Arc<ReplicaSet>> = vec![
        rs("r3", 0, 0, 3, &[(REVISION, "3")]),
        rs("r1", 0, 0, 1, &[(REVISION, "1")]),
        rs("r2", 1, 1, 2, &[(REVISION, "2")]),
    ];
    let names: Vec<String> = history_to_clean_up(&d, &old)
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    // r1 and r2 exceed the limit; r2 still has a replica and is kept.
    assert_eq!(names, vec!["r1".to_string()]);
    d.spec.revision_history_limit = None;
    assert!(history_to_clean_up(&d, &old).is_empty());
    d.spec.revision_history_limit = Some(i32::MAX);
    assert!(history_to_clean_up(&d, &old).is_empty());
}
