//! Rollout arithmetic (upstream `deployment/util`): resolving maxSurge and
//! maxUnavailable, how far the new ReplicaSet may grow, how far old ones may
//! shrink, and proportional scaling of every active ReplicaSet when a
//! deployment is resized mid-rollout.
//!
//! Pure functions over typed objects, rounding exactly like upstream: surge
//! rounds up, unavailability rounds down, and if both resolve to zero one
//! pod may be unavailable so a rollout can always progress. Malformed
//! percentages count as zero (the API server's validation rejects them).

use std::cmp::Ordering;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::history;

/// The desired replicas of a deployment (API default 1).
pub fn deployment_replicas(d: &Deployment) -> i32 {
    d.spec.replicas.unwrap_or(1)
}

/// The desired replicas of a ReplicaSet (API default 1).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.replicas.unwrap_or(1)
}

/// Upstream's `GetScaledValueFromIntOrPercent`.
pub fn scaled_value(value: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let Some(number) = s.strip_suffix('%') else {
                return Err(format!("invalid type: string is not a percentage: {s:?}"));
            };
            let percent: i64 = number
                .parse()
                .map_err(|_| format!("invalid value for IntOrString: {s:?}"))?;
            let scaled = percent * i64::from(total);
            let v = if round_up {
                scaled.div_euclid(100) + i64::from(scaled.rem_euclid(100) != 0)
            } else {
                scaled.div_euclid(100)
            };
            i32::try_from(v).map_err(|_| format!("{s:?} of {total} is out of range"))
        }
    }
}

/// Upstream's `ResolveFenceposts`: (maxSurge, maxUnavailable) for `desired`.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> (i32, i32) {
    let zero = IntOrString::Int(0);
    let surge = scaled_value(max_surge.unwrap_or(&zero), desired, true).unwrap_or(0);
    let unavailable = scaled_value(max_unavailable.unwrap_or(&zero), desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        // Rounding may zero both; surge might be blocked by quota, so allow one down.
        return (0, 1);
    }
    (surge, unavailable)
}

/// Whether the deployment uses the Recreate strategy.
pub fn is_recreate(d: &Deployment) -> bool {
    strategy_type(d) == "Recreate"
}

/// Whether the deployment uses the RollingUpdate strategy (the default).
pub fn is_rolling_update(d: &Deployment) -> bool {
    strategy_type(d) == "RollingUpdate"
}

/// The strategy type, defaulting like the API server.
pub fn strategy_type(d: &Deployment) -> &str {
    d.spec
        .strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .unwrap_or("RollingUpdate")
}

fn fenceposts(d: &Deployment) -> (i32, i32) {
    let rolling = d
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        deployment_replicas(d),
    )
}

/// Upstream's `MaxSurge`: 0 unless rolling.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling_update(d) {
        return 0;
    }
    fenceposts(d).0
}

/// The most pods a deployment may have during a rollout: replicas plus
/// maxSurge (the `max-replicas` annotation).
pub fn max_replicas(d: &Deployment) -> i32 {
    deployment_replicas(d).saturating_add(max_surge(d))
}

/// Upstream's `MaxUnavailable`: 0 unless rolling with replicas, never more
/// than the replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let replicas = deployment_replicas(d);
    if !is_rolling_update(d) || replicas == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas)
}

/// Sum of `spec.replicas` over ReplicaSets.
pub fn replica_count<'a>(rss: impl IntoIterator<Item = &'a Arc<ReplicaSet>>) -> i32 {
    rss.into_iter()
        .fold(0i32, |sum, rs| sum.saturating_add(rs_replicas(rs)))
}

fn status_sum<'a>(
    rss: impl IntoIterator<Item = &'a Arc<ReplicaSet>>,
    f: impl Fn(&ReplicaSet) -> i32,
) -> i32 {
    rss.into_iter()
        .fold(0i32, |sum, rs| sum.saturating_add(f(rs)))
}

/// Sum of `status.replicas` (pods that exist).
pub fn actual_replica_count<'a>(rss: impl IntoIterator<Item = &'a Arc<ReplicaSet>>) -> i32 {
    status_sum(rss, |rs| rs.status.as_ref().map_or(0, |s| s.replicas))
}

/// Sum of `status.readyReplicas`.
pub fn ready_replica_count<'a>(rss: impl IntoIterator<Item = &'a Arc<ReplicaSet>>) -> i32 {
    status_sum(rss, |rs| {
        rs.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    })
}

/// Sum of `status.availableReplicas`.
pub fn available_replica_count<'a>(rss: impl IntoIterator<Item = &'a Arc<ReplicaSet>>) -> i32 {
    status_sum(rss, available)
}

/// A ReplicaSet's `status.availableReplicas`.
pub fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Upstream's `NewRSNewReplicas`: the size the new ReplicaSet may have now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[Arc<ReplicaSet>], new_rs: &ReplicaSet) -> i32 {
    let desired = deployment_replicas(d);
    if !is_rolling_update(d) {
        return desired;
    }
    let current = replica_count(all);
    let max_total = max_replicas(d);
    if current >= max_total {
        return rs_replicas(new_rs);
    }
    let scale_up = (max_total - current).min(desired - rs_replicas(new_rs));
    rs_replicas(new_rs) + scale_up
}

/// Upstream's `IsSaturated`: the new ReplicaSet has, wants and believes in
/// all desired replicas, all available.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let desired = deployment_replicas(d);
    history::desired_replicas_annotation(rs) == Some(desired)
        && rs_replicas(rs) == desired
        && available(rs) == desired
}

/// Orders by creation time, then name (upstream's
/// `ReplicaSetsByCreationTimestamp`).
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let time = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    time(a)
        .cmp(&time(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Larger first; among equals older first (scaling down).
pub fn by_size_older(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(a, b))
}

/// Larger first; among equals newer first (scaling up).
pub fn by_size_newer(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    rs_replicas(b)
        .cmp(&rs_replicas(a))
        .then_with(|| by_creation(b, a))
}

/// Upstream's `FindActiveOrLatest`: the only active ReplicaSet, or the
/// newest one if none is active; `None` when several are active.
pub fn find_active_or_latest(
    new_rs: Option<&Arc<ReplicaSet>>,
    old: &[Arc<ReplicaSet>],
) -> Option<Arc<ReplicaSet>> {
    let mut old_sorted = old.to_vec();
    old_sorted.sort_by(|a, b| by_creation(b, a));
    let active: Vec<&Arc<ReplicaSet>> = old_sorted
        .iter()
        .chain(new_rs)
        .filter(|rs| rs_replicas(rs) > 0)
        .collect();
    match active.len() {
        0 => new_rs.cloned().or_else(|| old_sorted.first().cloned()),
        1 => active.first().map(|rs| (*rs).clone()),
        _ => None,
    }
}

/// Upstream's proportional scaling plan for a resized rolling deployment:
/// the target size of each active ReplicaSet, in the order to apply them,
/// and whether this is scaling "up" or "down".
pub fn proportional_plan(
    d: &Deployment,
    active: &[Arc<ReplicaSet>],
) -> (Vec<(Arc<ReplicaSet>, i32)>, &'static str) {
    let desired = deployment_replicas(d);
    let allowed = if desired > 0 { max_replicas(d) } else { 0 };
    let to_add = allowed - replica_count(active);
    let mut ordered = active.to_vec();
    let direction = match to_add.cmp(&0) {
        Ordering::Greater => {
            ordered.sort_by(|a, b| by_size_newer(a, b));
            "up"
        }
        Ordering::Less => {
            ordered.sort_by(|a, b| by_size_older(a, b));
            "down"
        }
        Ordering::Equal => "",
    };
    let mut added = 0;
    let mut sizes: Vec<i32> = ordered
        .iter()
        .map(|rs| {
            if to_add == 0 {
                return rs_replicas(rs);
            }
            let p = proportion(rs, d, to_add, added);
            added += p;
            rs_replicas(rs).saturating_add(p)
        })
        .collect();
    // Leftovers go to the largest ReplicaSet.
    if let Some(first) = sizes.first_mut()
        && to_add != 0
    {
        *first = first.saturating_add(to_add.saturating_sub(added)).max(0);
    }
    (ordered.into_iter().zip(sizes).collect(), direction)
}

/// Upstream's `GetProportion`.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = replica_set_fraction(rs, d);
    let allowed = to_add.saturating_sub(added);
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

/// Upstream's `getReplicaSetFraction`.
fn replica_set_fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    let desired = deployment_replicas(d);
    if desired == 0 {
        return -rs_replicas(rs);
    }
    let deployment_size = max_replicas(d);
    let annotated = history::max_replicas_annotation(rs)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let new_size = f64::from(rs_replicas(rs)) * f64::from(deployment_size) / f64::from(annotated);
    round_half_away(new_size) - rs_replicas(rs)
}

/// Go's `math.Round` to int32 (halves away from zero), saturating.
fn round_half_away(x: f64) -> i32 {
    let r = x.round();
    if r >= f64::from(i32::MAX) {
        i32::MAX
    } else if r <= f64::from(i32::MIN) {
        i32::MIN
    } else {
        // In range by the checks above.
        r as i32
    }
}

#[cfg(test)]
#[path = "scaling_tests.rs"]
pub(crate) mod tests;
