//! Tests of StatefulSet ordering: ordered creation, reverse deletion, rolling updates.

use super::*;

fn ready(updated: bool) -> Facts {
    Facts {
        running_ready: true,
        available: true,
        consistent: true,
        current: !updated,
        updated,
        ..Default::default()
    }
}

fn pending() -> Facts {
    Facts {
        pending: true,
        consistent: true,
        updated: true,
        ..Default::default()
    }
}

fn ordered() -> Policy {
    Policy {
        monotonic: true,
        on_delete: false,
        update_from: 0,
        max_unavailable: 1,
    }
}

fn slots(replicas: &[Option<Facts>], condemned: &[(i32, Facts)]) -> Slots {
    Slots {
        replicas: replicas
            .iter()
            .enumerate()
            .map(|(i, f)| (i as i32, *f))
            .collect(),
        condemned: condemned.iter().map(|(o, f)| (*o, *f, true)).collect(),
    }
}

#[test]
fn ordered_ready_creates_one_pod_at_a_time_in_ordinal_order() {
    let p = ordered();
    assert_eq!(
        plan(&slots(&[None, None, None], &[]), &p),
        [Step::Create(0)]
    );
    // web-0 exists but is not ready yet: nothing else happens.
    assert_eq!(
        plan(&slots(&[Some(pending()), None, None], &[]), &p),
        [Step::CreateClaims(0)]
    );
    // web-0 ready: web-1 next.
    assert_eq!(
        plan(&slots(&[Some(ready(true)), None, None], &[]), &p),
        [Step::Create(1)]
    );
    assert_eq!(
        plan(
            &slots(&[Some(ready(true)), Some(ready(true)), None], &[]),
            &p
        ),
        [Step::Create(2)]
    );
}

#[test]
fn parallel_creates_everything_at_once() {
    let p = Policy {
        monotonic: false,
        ..ordered()
    };
    assert_eq!(
        plan(&slots(&[None, None, None], &[]), &p),
        [Step::Create(0), Step::Create(1), Step::Create(2)]
    );
}

#[test]
fn scale_down_deletes_the_highest_ordinal_first_and_waits_for_it() {
    let p = ordered();
    let condemned = [(2, ready(true)), (1, ready(true))];
    assert_eq!(
        plan(&slots(&[Some(ready(true))], &condemned), &p),
        [Step::DeleteCondemned(2)]
    );
    let terminating = Facts {
        terminating: true,
        ..ready(true)
    };
    let waiting = [(2, terminating), (1, ready(true))];
    assert!(plan(&slots(&[Some(ready(true))], &waiting), &p).is_empty());
    // Scale-down waits while a live replica is unhealthy.
    assert_eq!(
        plan(&slots(&[Some(pending())], &[(1, ready(true))]), &p),
        [Step::CreateClaims(0)]
    );
}

#[test]
fn failed_replicas_are_recreated() {
    let failed = Facts {
        failed: true,
        ..Default::default()
    };
    assert_eq!(
        plan(&slots(&[Some(failed)], &[]), &ordered()),
        [Step::Recreate(0), Step::Create(0)]
    );
}

#[test]
fn rolling_update_goes_from_the_top_down_to_the_partition() {
    let p = ordered();
    let all_old = [Some(ready(false)), Some(ready(false)), Some(ready(false))];
    assert_eq!(plan(&slots(&all_old, &[]), &p), [Step::DeleteForUpdate(2)]);
    let top_done = [Some(ready(false)), Some(ready(false)), Some(ready(true))];
    assert_eq!(plan(&slots(&top_done, &[]), &p), [Step::DeleteForUpdate(1)]);
    let partitioned = Policy {
        update_from: 2,
        ..ordered()
    };
    assert!(plan(&slots(&top_done, &[]), &partitioned).is_empty());
    let wider = Policy {
        max_unavailable: 2,
        ..ordered()
    };
    assert_eq!(
        plan(&slots(&all_old, &[]), &wider),
        [Step::DeleteForUpdate(2), Step::DeleteForUpdate(1)]
    );
    let on_delete = Policy {
        on_delete: true,
        ..ordered()
    };
    assert!(plan(&slots(&all_old, &[]), &on_delete).is_empty());
}
