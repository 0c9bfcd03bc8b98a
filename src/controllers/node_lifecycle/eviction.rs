//! NoExecute taint eviction rules (upstream `pkg/controller/tainteviction` and the
//! `DefaultTolerationSeconds` admission plugin): whether, and how soon, a pod must leave a node.
//!
//! kelp has no admission chain yet, so the default 300 s tolerations for `not-ready` and
//! `unreachable` that upstream's admission would have written into every pod are applied here
//! at decision time to pods that do not tolerate those taints themselves.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Taint, Toleration};

use super::health::{TAINT_NOT_READY, TAINT_UNREACHABLE};

/// What to do with a pod on a node with NoExecute taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Every taint is tolerated forever (or there is none).
    Never,
    /// Some taint is not tolerated: evict now.
    Now,
    /// Evict once the pod has been on the tainted node this long.
    After(Duration),
}

/// True when `toleration` tolerates `taint` (upstream `ToleratesTaint`).
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if toleration
        .effect
        .as_deref()
        .is_some_and(|e| !e.is_empty() && e != taint.effect)
    {
        return false;
    }
    if toleration
        .key
        .as_deref()
        .is_some_and(|k| !k.is_empty() && k != taint.key)
    {
        return false;
    }
    match toleration.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => {
            toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
        _ => false,
    }
}

/// The pod's tolerations plus the defaults admission would have added (see module docs).
pub fn effective_tolerations(
    tolerations: &[Toleration],
    not_ready_secs: i64,
    unreachable_secs: i64,
) -> Vec<Toleration> {
    let covers = |key: &str| {
        tolerations.iter().any(|t| {
            t.key.as_deref().is_none_or(|k| k.is_empty() || k == key)
                && t.effect
                    .as_deref()
                    .is_none_or(|e| e.is_empty() || e == "NoExecute")
        })
    };
    let mut all = tolerations.to_vec();
    for (key, secs) in [
        (TAINT_NOT_READY, not_ready_secs),
        (TAINT_UNREACHABLE, unreachable_secs),
    ] {
        if !covers(key) {
            all.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some("NoExecute".into()),
                toleration_seconds: Some(secs),
                value: None,
            });
        }
    }
    all
}

/// Decides for the NoExecute `taints` of a node and a pod's (effective) `tolerations`: any
/// untolerated taint evicts now; otherwise the shortest `tolerationSeconds` among the
/// tolerations used applies (upstream `getMinTolerationTime`), none meaning forever.
pub fn decide(taints: &[Taint], tolerations: &[Toleration]) -> Eviction {
    let mut min: Option<i64> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let used: Vec<&Toleration> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if used.is_empty() {
            return Eviction::Now;
        }
        for secs in used.iter().filter_map(|t| t.toleration_seconds) {
            min = Some(min.map_or(secs, |m| m.min(secs)));
        }
    }
    match min {
        None => Eviction::Never,
        Some(secs) if secs <= 0 => Eviction::Now,
        Some(secs) => Eviction::After(Duration::from_secs(secs.unsigned_abs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: "NoExecute".into(),
            ..Default::default()
        }
    }

    fn toleration(key: &str, op: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some(op.into()),
            effect: Some("NoExecute".into()),
            toleration_seconds: secs,
            value: None,
        }
    }

    #[test]
    fn untolerated_taint_evicts_now() {
        assert_eq!(decide(&[taint("custom")], &[]), Eviction::Now);
        let defaults = effective_tolerations(&[], 300, 300);
        assert_eq!(decide(&[taint("custom")], &defaults), Eviction::Now);
    }

    #[test]
    fn default_tolerations_give_three_hundred_seconds() {
        let defaults = effective_tolerations(&[], 300, 300);
        assert_eq!(defaults.len(), 2);
        assert_eq!(
            decide(&[taint(TAINT_UNREACHABLE)], &defaults),
            Eviction::After(Duration::from_secs(300))
        );
        let short = effective_tolerations(&[], 300, 5);
        assert_eq!(
            decide(&[taint(TAINT_UNREACHABLE)], &short),
            Eviction::After(Duration::from_secs(5))
        );
    }

    #[test]
    fn own_tolerations_replace_defaults_and_may_be_forever() {
        let own = vec![toleration(TAINT_UNREACHABLE, "Exists", None)];
        let all = effective_tolerations(&own, 300, 300);
        assert_eq!(all.len(), 2);
        assert_eq!(decide(&[taint(TAINT_UNREACHABLE)], &all), Eviction::Never);
        let wildcard = vec![Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        }];
        assert_eq!(effective_tolerations(&wildcard, 300, 300).len(), 1);
    }

    #[test]
    fn shortest_toleration_wins_and_zero_means_now() {
        let tolerations = vec![
            toleration("a", "Exists", Some(60)),
            toleration("b", "Exists", Some(10)),
        ];
        assert_eq!(
            decide(&[taint("a"), taint("b")], &tolerations),
            Eviction::After(Duration::from_secs(10))
        );
        let zero = vec![toleration("a", "Exists", Some(0))];
        assert_eq!(decide(&[taint("a")], &zero), Eviction::Now);
    }

    #[test]
    fn equal_operator_compares_values_and_effects_must_match() {
        let mut t = taint("k");
        t.value = Some("v".into());
        let mut tol = toleration("k", "Equal", None);
        tol.value = Some("v".into());
        assert!(tolerates(&tol, &t));
        tol.value = Some("w".into());
        assert!(!tolerates(&tol, &t));
        let mut no_schedule = toleration("k", "Exists", None);
        no_schedule.effect = Some("NoSchedule".into());
        assert!(!tolerates(&no_schedule, &t));
    }
}
