use super::*;
use crate::scheduler::filter::Reason;

fn pod(uid: &str, priority: i32) -> Arc<PodInfo> {
    Arc::new(PodInfo {
        uid: uid.into(),
        priority,
        ..Default::default()
    })
}

fn pop_uid(q: &SchedulingQueue, timeout: Duration) -> Option<(String, MoveCycle)> {
    match q.pop(timeout) {
        PopResult::Pod(p) => Some((p.info.uid.clone(), p.cycle)),
        _ => None,
    }
}

const NOW: Duration = Duration::from_millis(1);

fn spread_plugins() -> Plugins {
    let mut p = Plugins::default();
    p.insert(&Reason::SpreadSkew);
    p
}

#[test]
fn backoff_doubles_from_one_to_ten_seconds() {
    let secs: Vec<u64> = (1..=6).map(|a| backoff_for(a).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
}

#[test]
fn higher_priority_first_then_arrival_order() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("a", 0));
    q.add_or_update(pod("b", 10));
    q.add_or_update(pod("c", 0));
    let order: Vec<String> = (0..3)
        .filter_map(|_| pop_uid(&q, NOW).map(|p| p.0))
        .collect();
    assert_eq!(order, ["b", "a", "c"]);
    assert!(matches!(q.pop(NOW), PopResult::Idle));
}

#[test]
fn unschedulable_pods_wait_for_an_event_then_their_backoff() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("a", 0));
    let (uid, cycle) = pop_uid(&q, NOW).unwrap_or_default();
    q.failed(&uid, cycle, Plugins::default(), true);
    assert_eq!(q.unschedulable_len(), 1);
    assert!(
        pop_uid(&q, Duration::from_millis(50)).is_none(),
        "no event yet"
    );
    q.move_all_unschedulable();
    assert_eq!(q.unschedulable_len(), 0);
    assert!(
        pop_uid(&q, Duration::from_millis(100)).is_none(),
        "still backing off"
    );
    assert_eq!(
        pop_uid(&q, Duration::from_secs(2)).map(|p| p.0),
        Some("a".to_string())
    );
}

#[test]
fn an_event_during_the_attempt_sends_the_pod_to_backoff() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("a", 0));
    let (uid, cycle) = pop_uid(&q, NOW).unwrap_or_default();
    q.move_all_unschedulable();
    q.failed(&uid, cycle, Plugins::default(), true);
    assert_eq!(q.unschedulable_len(), 0);
    assert_eq!(q.len(), 1);
}

#[test]
fn pod_events_only_retry_pods_rejected_by_pod_dependent_plugins() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("fit", 0));
    q.add_or_update(pod("spread", 0));
    let (a, ca) = pop_uid(&q, NOW).unwrap_or_default();
    let (b, cb) = pop_uid(&q, NOW).unwrap_or_default();
    q.failed(&a, ca, Plugins::default(), true);
    q.failed(&b, cb, spread_plugins(), true);
    q.move_pod_dependent();
    assert_eq!(
        q.unschedulable_len(),
        1,
        "only the spread-rejected pod moved"
    );
}

#[test]
fn a_pod_event_during_an_attempt_does_not_rescue_resource_failures() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("a", 0));
    let (uid, cycle) = pop_uid(&q, NOW).unwrap_or_default();
    q.move_pod_dependent();
    q.failed(&uid, cycle, Plugins::default(), true);
    assert_eq!(q.unschedulable_len(), 1);
}

#[test]
fn errors_always_back_off() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("a", 0));
    let (uid, cycle) = pop_uid(&q, NOW).unwrap_or_default();
    q.failed(&uid, cycle, Plugins::default(), false);
    assert_eq!(q.unschedulable_len(), 0);
    assert_eq!(
        pop_uid(&q, Duration::from_secs(2)).map(|p| p.0),
        Some("a".to_string())
    );
}

#[test]
fn updates_with_new_labels_retry_unschedulable_pods() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("a", 0));
    let (uid, cycle) = pop_uid(&q, NOW).unwrap_or_default();
    q.failed(&uid, cycle, Plugins::default(), true);
    q.add_or_update(pod("a", 0));
    assert_eq!(q.unschedulable_len(), 1, "identical update changes nothing");
    let mut relabeled = PodInfo {
        uid: "a".into(),
        ..Default::default()
    };
    relabeled.labels.insert("x".into(), "y".into());
    q.add_or_update(Arc::new(relabeled));
    assert_eq!(q.unschedulable_len(), 0);
}

#[test]
fn deleted_and_done_pods_are_forgotten() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("a", 0));
    q.add_or_update(pod("b", 0));
    q.delete("a");
    assert_eq!(pop_uid(&q, NOW).map(|p| p.0), Some("b".to_string()));
    q.done("b");
    assert!(q.is_empty());
    assert!(pop_uid(&q, NOW).is_none());
}

#[test]
fn stale_unschedulable_pods_are_flushed_and_close_wakes_the_consumer() {
    let q = SchedulingQueue::new();
    q.add_or_update(pod("a", 0));
    let (uid, cycle) = pop_uid(&q, NOW).unwrap_or_default();
    q.failed(&uid, cycle, Plugins::default(), true);
    q.flush_unschedulable(Duration::from_secs(60));
    assert_eq!(q.unschedulable_len(), 1);
    q.flush_unschedulable(Duration::ZERO);
    assert_eq!(q.unschedulable_len(), 0);
    q.close();
    assert!(matches!(q.pop(Duration::from_secs(5)), PopResult::Closed));
}
