use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetStatus};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;

fn pct(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

pub(crate) fn deployment(
    replicas: i32,
    surge: IntOrString,
    unavailable: IntOrString,
) -> Deployment {
    let mut d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "d", "namespace": "ns", "uid": "d-uid", "generation": 1},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "d"}},
            "strategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": {"app": "d"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        }
    }))
    .unwrap_or_default();
    if let Some(s) = d.spec.strategy.as_mut() {
        s.rolling_update = Some(k8s_openapi::api::apps::v1::RollingUpdateDeployment {
            max_surge: Some(surge),
            max_unavailable: Some(unavailable),
        });
    }
    d
}

pub(crate) fn rs(
    name: &str,
    replicas: i32,
    available: i32,
    created: i64,
    annotations: &[(&str, &str)],
) -> Arc<ReplicaSet> {
    let mut rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {
            "name": name, "namespace": "ns", "uid": format!("{name}-uid"),
            "creationTimestamp": format!("2026-01-01T00:00:{created:02}Z"),
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "d"}}}
    }))
    .unwrap_or_default();
    rs.status = Some(ReplicaSetStatus {
        replicas,
        available_replicas: Some(available),
        ready_replicas: Some(available),
        ..Default::default()
    });
    let annotations: BTreeMap<String, String> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    rs.metadata.annotations = Some(annotations);
    Arc::new(rs)
}

#[test]
fn percentages_round_surge_up_and_unavailability_down() {
    assert_eq!(
        resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 10),
        (3, 2)
    );
    assert_eq!(
        resolve_fenceposts(Some(&pct("25%")), Some(&pct("25%")), 4),
        (1, 1)
    );
    assert_eq!(
        resolve_fenceposts(Some(&pct("10%")), Some(&pct("10%")), 15),
        (2, 1)
    );
    assert_eq!(
        resolve_fenceposts(Some(&IntOrString::Int(5)), Some(&IntOrString::Int(0)), 3),
        (5, 0)
    );
}

#[test]
fn both_fenceposts_zero_allows_one_unavailable() {
    // 1% of 2 rounds down to 0 unavailable; 0% surge stays 0.
    assert_eq!(
        resolve_fenceposts(Some(&pct("0%")), Some(&pct("1%")), 2),
        (0, 1)
    );
    assert_eq!(resolve_fenceposts(None, None, 5), (0, 1));
}

#[test]
fn malformed_values_count_as_zero() {
    assert!(scaled_value(&IntOrString::String("ten".into()), 10, true).is_err());
    assert!(scaled_value(&IntOrString::String("x%".into()), 10, true).is_err());
    assert_eq!(
        resolve_fenceposts(Some(&pct("abc")), Some(&IntOrString::Int(2)), 10),
        (0, 2)
    );
}

#[test]
fn max_unavailable_is_capped_and_zero_without_replicas() {
    let d = deployment(3, IntOrString::Int(1), IntOrString::Int(10));
    assert_eq!(max_unavailable(&d), 3);
    assert_eq!(
        max_unavailable(&deployment(0, IntOrString::Int(1), IntOrString::Int(1))),
        0
    );
    let mut recreate = deployment(3, IntOrString::Int(1), IntOrString::Int(1));
    if let Some(s) = recreate.spec.strategy.as_mut() {
        s.type_ = Some("Recreate".into());
    }
    assert_eq!((max_surge(&recreate), max_unavailable(&recreate)), (0, 0));
    assert!(is_recreate(&recreate));
}

#[test]
fn new_replica_set_grows_within_surge() {
    let d = deployment(10, IntOrString::Int(3), IntOrString::Int(2));
    let old = rs("old", 10, 10, 1, &[]);
    let new = rs("new", 0, 0, 2, &[]);
    assert_eq!(
        new_rs_new_replicas(&d, &[old.clone(), new.clone()], &new),
        3
    );
    let old8 = rs("old", 8, 8, 1, &[]);
    let new3 = rs("new", 3, 0, 2, &[]);
    assert_eq!(new_rs_new_replicas(&d, &[old8, new3.clone()], &new3), 5);
    // At the surge limit nothing more is added.
    let new5 = rs("new", 5, 0, 2, &[]);
    assert_eq!(
        new_rs_new_replicas(&d, &[rs("old", 8, 8, 1, &[]), new5.clone()], &new5),
        5
    );
    // Never beyond the desired replicas.
    let new9 = rs("new", 9, 9, 2, &[]);
    assert_eq!(
        new_rs_new_replicas(&d, std::slice::from_ref(&new9), &new9),
        10
    );
}

#[test]
fn saturation_needs_size_annotation_and_availability() {
    let d = deployment(3, IntOrString::Int(1), IntOrString::Int(1));
    assert!(is_saturated(
        &d,
        Some(&rs("a", 3, 3, 1, &[(history::DESIRED_REPLICAS, "3")]))
    ));
    assert!(!is_saturated(
        &d,
        Some(&rs("a", 3, 2, 1, &[(history::DESIRED_REPLICAS, "3")]))
    ));
    assert!(!is_saturated(
        &d,
        Some(&rs("a", 3, 3, 1, &[(history::DESIRED_REPLICAS, "4")]))
    ));
    assert!(!is_saturated(&d, None));
}

#[test]
fn active_or_latest_picks_the_only_active_or_the_newest() {
    let a = rs("a", 0, 0, 1, &[]);
    let b = rs("b", 0, 0, 2, &[]);
    let c = rs("c", 2, 2, 3, &[]);
    let name = |rs: Option<Arc<ReplicaSet>>| rs.and_then(|r| r.metadata.name.clone());
    assert_eq!(
        name(find_active_or_latest(None, &[a.clone(), b.clone()])),
        Some("b".into())
    );
    assert_eq!(
        name(find_active_or_latest(Some(&a), &[b.clone(), c.clone()])),
        Some("c".into())
    );
    assert_eq!(
        name(find_active_or_latest(Some(&c), &[rs("d", 1, 1, 4, &[])])),
        None
    );
    assert_eq!(
        name(find_active_or_latest(Some(&a), &[b])),
        Some("a".into())
    );
}

#[test]
fn scaling_up_mid_rollout_is_proportional() {
    // 10 replicas, surge 3: old 8 + new 5 = 13, scaled to 20 (+3 surge = 23).
    let d = deployment(20, IntOrString::Int(3), IntOrString::Int(2));
    let annotated = [(history::MAX_REPLICAS, "13")];
    let old = rs("old", 8, 8, 1, &annotated);
    let new = rs("new", 5, 0, 2, &annotated);
    let (plan, direction) = proportional_plan(&d, &[old, new]);
    let sizes: Vec<(String, i32)> = plan
        .iter()
        .map(|(r, s)| (r.metadata.name.clone().unwrap_or_default(), *s))
        .collect();
    assert_eq!(direction, "up");
    assert_eq!(sizes, vec![("old".to_string(), 14), ("new".to_string(), 9)]);
}

#[test]
fn scaling_down_mid_rollout_takes_from_older_first_with_leftovers_on_largest() {
    let d = deployment(5, IntOrString::Int(1), IntOrString::Int(1));
    let annotated = [(history::MAX_REPLICAS, "11")];
    let old = rs("old", 6, 6, 1, &annotated);
    let new = rs("new", 5, 0, 2, &annotated);
    let (plan, direction) = proportional_plan(&d, &[new, old]);
    assert_eq!(direction, "down");
    let total: i32 = plan.iter().map(|(_, s)| *s).sum();
    assert_eq!(total, 6, "5 replicas + 1 surge");
    assert_eq!(
        plan.first()
            .and_then(|(r, _)| r.metadata.name.clone())
            .as_deref(),
        Some("old")
    );
    assert!(plan.iter().all(|(_, s)| *s >= 0));
}

#[test]
fn scaling_to_zero_empties_everything() {
    let d = deployment(0, IntOrString::Int(1), IntOrString::Int(1));
    let (plan, _) = proportional_plan(&d, &[rs("a", 3, 3, 1, &[]), rs("b", 2, 0, 2, &[])]);
    assert!(plan.iter().all(|(_, s)| *s == 0));
}

#[test]
fn size_orders_break_ties_by_age_in_the_scaling_direction() {
    let older = rs("older", 3, 3, 1, &[]);
    let newer = rs("newer", 3, 3, 2, &[]);
    assert_eq!(by_size_older(&older, &newer), std::cmp::Ordering::Less);
    assert_eq!(by_size_newer(&older, &newer), std::cmp::Ordering::Greater);
    let big = rs("big", 5, 5, 3, &[]);
    assert_eq!(by_size_newer(&big, &older), std::cmp::Ordering::Less);
}
