//! The ordering rules of a StatefulSet sync as a pure planner (upstream
//! `updateStatefulSet`, `processReplica`, `processCondemned` and
//! `updateStatefulSetAfterInvariantEstablished`).
//!
//! The planner sees one summary ([`Facts`]) per ordinal and returns the writes to make, in
//! order. With `OrderedReady` ("monotonic") it stops at the first ordinal that is not
//! Running and Ready — so pod *i* is only created once *i-1* is ready — deletes condemned
//! pods one at a time from the highest ordinal, and only after every live replica is
//! healthy. With `Parallel` it plans everything at once. Rolling updates delete, from the
//! highest ordinal down to the partition, as many outdated pods as `maxUnavailable` allows.
//! The executor ([`super::control`]) stops at the first failed write; the next sync plans
//! again from fresh state.

/// What the planner needs to know about an existing pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Facts {
    /// Phase is Failed.
    pub failed: bool,
    /// Phase is Succeeded.
    pub succeeded: bool,
    /// Phase is Pending.
    pub pending: bool,
    /// Phase Running and the Ready condition true.
    pub running_ready: bool,
    /// Running, ready, and ready for `minReadySeconds`.
    pub available: bool,
    /// Has a deletion timestamp.
    pub terminating: bool,
    /// Identity, storage and claim owners match the set.
    pub consistent: bool,
    /// Labelled with the current revision.
    pub current: bool,
    /// Labelled with the update revision.
    pub updated: bool,
}

impl Facts {
    /// Upstream `isHealthy`.
    pub fn healthy(&self) -> bool {
        self.running_ready && !self.terminating
    }
}

/// One write to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Delete a failed or succeeded replica so it can be recreated.
    Recreate(i32),
    /// Create the replica (and its claims).
    Create(i32),
    /// Create claims a pending replica is missing.
    CreateClaims(i32),
    /// Bring a replica's identity, storage or claim owners in line.
    Fix(i32),
    /// Update claim owners of a condemned pod (retention policy on scale-down).
    FixClaims(i32),
    /// Delete a pod beyond the replica count.
    DeleteCondemned(i32),
    /// Delete an outdated replica so it is recreated at the update revision.
    DeleteForUpdate(i32),
}

/// The set's rollout knobs.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// `podManagementPolicy: OrderedReady`.
    pub monotonic: bool,
    /// `updateStrategy: OnDelete`.
    pub on_delete: bool,
    /// First ordinal that rolling updates touch (start + partition).
    pub update_from: i32,
    /// Replicas that may be unavailable during an update (at least 1).
    pub max_unavailable: i32,
}

/// Ordinals in range with their pods (`None`: not created), ascending; condemned pods
/// (beyond range) with whether their claim owners are right, descending.
#[derive(Debug, Clone, Default)]
pub struct Slots {
    /// `[start, start + replicas)`.
    pub replicas: Vec<(i32, Option<Facts>)>,
    /// Pods to remove, highest ordinal first.
    pub condemned: Vec<(i32, Facts, bool)>,
}

/// Plans the writes of one sync.
pub fn plan(slots: &Slots, policy: &Policy) -> Vec<Step> {
    let mut steps = Vec::new();
    if !plan_replicas(slots, policy, &mut steps) {
        return steps;
    }
    for (ord, _, claims_ok) in &slots.condemned {
        if !claims_ok {
            steps.push(Step::FixClaims(*ord));
        }
    }
    if !plan_condemned(slots, policy, &mut steps) || policy.on_delete {
        return steps;
    }
    plan_update(slots, policy, &mut steps);
    steps
}

/// Creates/recreates/fixes replicas; returns false where monotonic processing must stop.
fn plan_replicas(slots: &Slots, policy: &Policy, steps: &mut Vec<Step>) -> bool {
    for (ord, slot) in &slots.replicas {
        let facts = match slot {
            Some(f) if f.failed || f.succeeded => {
                steps.push(Step::Recreate(*ord));
                None
            }
            other => *other,
        };
        let Some(f) = facts else {
            steps.push(Step::Create(*ord));
            if policy.monotonic {
                return false;
            }
            continue;
        };
        if f.pending {
            steps.push(Step::CreateClaims(*ord));
        }
        if policy.monotonic && (f.terminating || !f.running_ready || !f.available) {
            return false;
        }
        if !f.consistent {
            steps.push(Step::Fix(*ord));
        }
    }
    true
}

/// The lowest ordinal, over replicas and condemned pods, that is not healthy.
fn first_unhealthy(slots: &Slots) -> Option<i32> {
    let replicas = slots
        .replicas
        .iter()
        .filter(|(_, f)| !f.is_some_and(|f| f.healthy()))
        .map(|(o, _)| *o);
    let condemned = slots
        .condemned
        .iter()
        .filter(|(_, f, _)| !f.healthy())
        .map(|(o, _, _)| *o);
    replicas.chain(condemned).min()
}

/// Deletes condemned pods; returns false where monotonic processing must stop.
fn plan_condemned(slots: &Slots, policy: &Policy, steps: &mut Vec<Step>) -> bool {
    let first_bad = first_unhealthy(slots);
    for (ord, f, _) in &slots.condemned {
        if f.terminating {
            if policy.monotonic {
                return false;
            }
            continue;
        }
        let excused = first_bad == Some(*ord);
        if policy.monotonic && (!f.running_ready || !f.available) && !excused {
            return false;
        }
        steps.push(Step::DeleteCondemned(*ord));
        if policy.monotonic {
            return false;
        }
    }
    true
}

/// Deletes outdated replicas from the top, within the unavailability budget.
fn plan_update(slots: &Slots, policy: &Policy, steps: &mut Vec<Step>) {
    let unavailable = slots
        .replicas
        .iter()
        .filter(|(_, f)| !f.is_some_and(|f| f.healthy() && f.available))
        .count();
    let budget = usize::try_from(policy.max_unavailable.max(1)).unwrap_or(1);
    let mut room = budget.saturating_sub(unavailable);
    for (ord, slot) in slots.replicas.iter().rev() {
        if room == 0 || *ord < policy.update_from {
            break;
        }
        if let Some(f) = slot
            && !f.updated
            && !f.terminating
        {
            steps.push(Step::DeleteForUpdate(*ord));
            room -= 1;
        }
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
