//! The pod table: columns and upstream's STATUS / READY / RESTARTS rules.

use serde_json::{Value, json};

use super::support::{ago, row};
use crate::api::table::columns;

fn pod(spec: Value, status: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "creationTimestamp": ago(300)},
        "spec": spec,
        "status": status,
    })
}

fn one_container() -> Value {
    json!({"containers": [{"name": "app", "image": "nginx:1.25"}], "nodeName": "node-1"})
}

/// NAME, READY, STATUS, RESTARTS (the default-priority cells).
fn head(obj: &Value) -> Vec<Value> {
    row("", "pods", obj).into_iter().take(4).collect()
}

#[test]
fn pod_columns_match_upstream() {
    let cols = columns("", "pods");
    let names: Vec<_> = cols.iter().map(|c| (c.name, c.type_, c.priority)).collect();
    assert_eq!(
        names,
        [
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ]
    );
    assert_eq!(cols[0].format, "name");
    assert!(cols.iter().skip(1).all(|c| c.format.is_empty()));
    assert!(
        cols[0]
            .description
            .starts_with("Name must be unique within a namespace.")
    );
    assert!(
        cols[4]
            .description
            .starts_with("CreationTimestamp is a timestamp")
    );
}

#[test]
fn running_pod_prints_all_cells() {
    let status = json!({
        "phase": "Running",
        "podIP": "10.244.0.7",
        "podIPs": [{"ip": "10.244.0.7"}, {"ip": "fd00::7"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{
            "name": "app", "ready": true, "restartCount": 0,
            "state": {"running": {"startedAt": ago(290)}}
        }]
    });
    assert_eq!(
        row("", "pods", &pod(one_container(), status)),
        [
            json!("web-0"),
            json!("1/1"),
            json!("Running"),
            json!("0"),
            json!("5m"),
            json!("10.244.0.7"),
            json!("node-1"),
            json!("<none>"),
            json!("<none>"),
        ]
    );
}

#[test]
fn crash_looping_pod_shows_reason_and_last_restart() {
    let status = json!({
        "phase": "Running",
        "containerStatuses": [{
            "name": "app", "ready": false, "restartCount": 5,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(150)}}
        }]
    });
    assert_eq!(
        head(&pod(one_container(), status)),
        [
            json!("web-0"),
            json!("0/1"),
            json!("CrashLoopBackOff"),
            json!("5 (2m30s ago)")
        ]
    );
}

#[test]
fn pending_pod_without_statuses() {
    let p = pod(
        json!({"containers": [{"name": "a"}, {"name": "b"}]}),
        json!({"phase": "Pending"}),
    );
    let cells = row("", "pods", &p);
    assert_eq!(cells[1..4], [json!("0/2"), json!("Pending"), json!("0")]);
    assert_eq!(
        cells[5..],
        [
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>")
        ]
    );
}

#[test]
fn init_containers_report_progress_and_failures() {
    let spec = json!({
        "initContainers": [{"name": "migrate"}, {"name": "warm"}],
        "containers": [{"name": "app"}]
    });
    let with_init = |statuses: Value| {
        let status = json!({"phase": "Pending", "initContainerStatuses": statuses,
            "containerStatuses": [{"name": "app", "state": {"waiting": {"reason": "PodInitializing"}}}]});
        head(&pod(spec.clone(), status))[2].clone()
    };
    let done =
        json!({"name": "migrate", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}});
    let running = json!({"name": "warm", "state": {"running": {}}});
    assert_eq!(with_init(json!([done, running])), json!("Init:1/2"));
    let first_waiting =
        json!({"name": "migrate", "state": {"waiting": {"reason": "PodInitializing"}}});
    assert_eq!(with_init(json!([first_waiting])), json!("Init:0/2"));
    let backoff = json!({"name": "migrate", "state": {"waiting": {"reason": "CrashLoopBackOff"}}});
    assert_eq!(with_init(json!([backoff])), json!("Init:CrashLoopBackOff"));
    let error =
        json!({"name": "migrate", "state": {"terminated": {"exitCode": 2, "reason": "Error"}}});
    assert_eq!(with_init(json!([error])), json!("Init:Error"));
    let bare = json!({"name": "migrate", "state": {"terminated": {"exitCode": 3}}});
    assert_eq!(with_init(json!([bare])), json!("Init:ExitCode:3"));
    let killed =
        json!({"name": "migrate", "state": {"terminated": {"exitCode": 137, "signal": 9}}});
    assert_eq!(with_init(json!([killed])), json!("Init:Signal:9"));
}

#[test]
fn init_restarts_count_while_initializing() {
    let spec = json!({"initContainers": [{"name": "migrate"}], "containers": [{"name": "app"}]});
    let status = json!({"phase": "Pending", "initContainerStatuses": [{
        "name": "migrate", "restartCount": 3,
        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
        "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(40)}}
    }]});
    assert_eq!(head(&pod(spec, status))[3], json!("3 (40s ago)"));
}

#[test]
fn completed_pod_and_terminated_without_reason() {
    let completed = json!({"phase": "Succeeded", "containerStatuses": [{
        "name": "app", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]});
    assert_eq!(
        head(&pod(one_container(), completed))[1..3],
        [json!("0/1"), json!("Completed")]
    );
    let signalled = json!({"phase": "Failed", "containerStatuses": [{
        "name": "app", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]});
    assert_eq!(head(&pod(one_container(), signalled))[2], json!("Signal:9"));
    let exit = json!({"phase": "Failed", "containerStatuses": [{
        "name": "app", "state": {"terminated": {"exitCode": 2}}}]});
    assert_eq!(head(&pod(one_container(), exit))[2], json!("ExitCode:2"));
}

#[test]
fn completed_container_next_to_running_one_is_not_completed() {
    let spec = json!({"containers": [{"name": "job"}, {"name": "proxy"}]});
    let status = |ready: &str| {
        json!({"phase": "Running",
        "conditions": [{"type": "Ready", "status": ready}],
        "containerStatuses": [
            {"name": "job", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
            {"name": "proxy", "ready": true, "state": {"running": {}}}
        ]})
    };
    assert_eq!(
        head(&pod(spec.clone(), status("False")))[1..3],
        [json!("1/2"), json!("NotReady")]
    );
    assert_eq!(head(&pod(spec, status("True")))[2], json!("Running"));
}

#[test]
fn deleting_pods_show_terminating_or_unknown() {
    let mut p = pod(
        one_container(),
        json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": true, "state": {"running": {}}}]}),
    );
    p["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(head(&p)[1..3], [json!("1/1"), json!("Terminating")]);
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(head(&p)[2], json!("Unknown"));
    let mut done = pod(one_container(), json!({"phase": "Succeeded"}));
    done["metadata"]["deletionTimestamp"] = json!(ago(5));
    assert_eq!(head(&done)[2], json!("Succeeded"));
}

#[test]
fn scheduling_gated_and_evicted_reasons() {
    let gated = json!({"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]});
    assert_eq!(
        head(&pod(one_container(), gated))[2],
        json!("SchedulingGated")
    );
    let evicted = json!({"phase": "Failed", "reason": "Evicted"});
    assert_eq!(head(&pod(one_container(), evicted))[2], json!("Evicted"));
}

#[test]
fn sidecars_count_towards_ready_and_restarts() {
    let spec = json!({
        "initContainers": [{"name": "mesh", "restartPolicy": "Always"}, {"name": "setup"}],
        "containers": [{"name": "app"}]
    });
    let status = json!({
        "phase": "Running",
        "conditions": [{"type": "Initialized", "status": "True"}],
        "initContainerStatuses": [
            {"name": "mesh", "started": true, "ready": true, "restartCount": 2,
             "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(600)}}},
            {"name": "setup", "restartCount": 1, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}
        ],
        "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1,
            "state": {"running": {}}, "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(90)}}}]
    });
    // READY counts the sidecar; RESTARTS counts sidecar and app but not the finished init.
    assert_eq!(
        head(&pod(spec, status)),
        [
            json!("web-0"),
            json!("2/2"),
            json!("Running"),
            json!("3 (90s ago)")
        ]
    );
}

#[test]
fn readiness_gates_and_nominated_node() {
    let mut spec = one_container();
    spec["readinessGates"] = json!([{"conditionType": "lb/ready"}, {"conditionType": "dns/ready"}]);
    let status = json!({
        "phase": "Pending",
        "nominatedNodeName": "node-2",
        "conditions": [{"type": "lb/ready", "status": "True"}, {"type": "dns/ready", "status": "False"}]
    });
    let cells = row("", "pods", &pod(spec, status));
    assert_eq!(
        cells[5..],
        [
            json!("<none>"),
            json!("node-1"),
            json!("node-2"),
            json!("1/2")
        ]
    );
}

#[test]
fn pod_ip_falls_back_to_single_pod_ip() {
    let status = json!({"phase": "Running", "podIP": "10.0.0.9"});
    assert_eq!(
        row("", "pods", &pod(one_container(), status))[5],
        json!("10.0.0.9")
    );
}

#[test]
fn garbage_input_prints_zero_values() {
    let cells = row("", "pods", &json!("not an object"));
    assert_eq!(
        cells,
        [
            json!(""),
            json!("0/0"),
            json!(""),
            json!("0"),
            json!("<unknown>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
            json!("<none>"),
        ]
    );
}
