use super::*;

#[test]
fn clean_report_gives_all_clear_conditions() {
    let conditions = desired_conditions(&[], &ContentReport::default());
    assert_eq!(conditions.len(), 5);
    assert!(conditions.iter().all(|c| c.status == "False"));
    assert_eq!(conditions[3].reason.as_deref(), Some("ContentRemoved"));
}

#[test]
fn remaining_content_and_finalizers_are_described_like_upstream() {
    let report = ContentReport {
        remaining: BTreeMap::from([("configmaps.".to_string(), 2)]),
        finalizers: BTreeMap::from([("example.com/x".to_string(), 1)]),
        ..Default::default()
    };
    let conditions = desired_conditions(&[], &report);
    assert_eq!(
        conditions[3].message.as_deref(),
        Some("Some resources are remaining: configmaps. has 2 resource instances")
    );
    assert_eq!(
        conditions[4].message.as_deref(),
        Some(
            "Some content in the namespace has finalizers remaining: example.com/x in 1 resource instances"
        )
    );
    assert_eq!(conditions[4].status, "True");
}

#[test]
fn merge_reports_no_change_and_keeps_transition_times() {
    let first = merge_conditions(&[], desired_conditions(&[], &ContentReport::default())).unwrap();
    assert!(first.iter().all(|c| c.last_transition_time.is_some()));
    assert!(merge_conditions(&first, desired_conditions(&[], &ContentReport::default())).is_none());
    let failing = desired_conditions(&["apps/v1: boom".to_string()], &ContentReport::default());
    let merged = merge_conditions(&first, failing).unwrap();
    assert_eq!(merged[0].status, "True");
    assert_eq!(
        merged[1].last_transition_time,
        first[1].last_transition_time
    );
}

#[test]
fn finalizer_token_is_detected() {
    let mut ns = Namespace::default();
    assert!(!has_finalizer(&ns));
    ns.spec = Some(k8s_openapi::api::core::v1::NamespaceSpec {
        finalizers: Some(vec![FINALIZER.into()]),
    });
    assert!(has_finalizer(&ns));
}
