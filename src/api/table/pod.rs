//! The pod table: READY, STATUS (upstream's aggregate reason), RESTARTS and wide columns.
//!
//! STATUS is the part users read most, so it follows upstream's `printPod` step by step:
//! phase or `status.reason`, then `SchedulingGated`, then the first init container that is
//! not done (`Init:N/M`, `Init:<reason>`, `Init:ExitCode:N`), then the main containers
//! (walked last to first so the first container's state wins), then `Terminating` /
//! `Unknown` for pods being deleted. Sidecars (init containers with `restartPolicy: Always`)
//! count towards READY and RESTARTS like upstream. Missing fields read as zero values.

use serde_json::Value;

use super::fields::{arr_at, bool_at, condition_true, deleting, i64_at, name, opt_str, str_at};
use super::time::{Instant, human_duration};
use super::{AGE, NAME, Printer, age, col, docs, wide};

/// `kubectl get pods`.
pub(super) const PODS: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Ready",
            "string",
            "The aggregate readiness state of this pod for accepting traffic.",
        ),
        col(
            "Status",
            "string",
            "The aggregate status of the containers in this pod.",
        ),
        col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
        ),
        AGE,
        wide("IP", docs::POD_STATUS_POD_IP),
        wide("Node", docs::POD_SPEC_NODE_NAME),
        wide("Nominated Node", docs::POD_STATUS_NOMINATED_NODE_NAME),
        wide("Readiness Gates", docs::POD_SPEC_READINESS_GATES),
    ],
    cells: pod_cells,
};

/// Restart count and time of the latest restart over a set of containers.
#[derive(Clone, Copy, Default)]
struct Restarts {
    count: i64,
    /// Latest `lastState.terminated.finishedAt` among counted containers.
    last: Option<Instant>,
}

impl Restarts {
    fn add(&mut self, status: &Value) {
        self.count += i64_at(status, &["restartCount"]);
        let finished = opt_str(status, &["lastState", "terminated", "finishedAt"])
            .and_then(Instant::parse_rfc3339);
        if let Some(t) = finished {
            self.last = Some(self.last.map_or(t, |prev| prev.max(t)));
        }
    }
}

/// What the walk over init container statuses found.
struct InitWalk {
    /// Restarts of all init containers (shown while initializing).
    all: Restarts,
    /// Restarts of sidecars only (carried into the main-container count).
    sidecars: Restarts,
    /// Started and ready sidecars.
    ready: i64,
    initializing: bool,
}

fn pod_cells(pod: &Value, now: Instant) -> Vec<Value> {
    let phase = str_at(pod, &["status", "phase"]);
    let status_reason = str_at(pod, &["status", "reason"]);
    let mut reason = if status_reason.is_empty() {
        phase
    } else {
        status_reason
    }
    .to_string();
    let conditions = arr_at(pod, &["status", "conditions"]);
    let gated = conditions.iter().any(|c| {
        str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated"
    });
    if gated {
        reason = "SchedulingGated".to_string();
    }

    let init_specs = arr_at(pod, &["spec", "initContainers"]);
    let sidecars = init_specs.iter().filter(|c| is_sidecar(Some(*c))).count();
    let total = arr_at(pod, &["spec", "containers"]).len() + sidecars;

    let init = walk_init_containers(pod, &mut reason);
    let (mut restarts, mut ready) = (init.all, init.ready);
    if !init.initializing || condition_true(conditions, "Initialized") {
        restarts = init.sidecars;
        walk_containers(pod, &mut reason, &mut restarts, &mut ready);
    }

    if deleting(pod) && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(pod) && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_string();
    }

    let restarts_cell = match restarts.last {
        Some(t) if restarts.count != 0 && !t.is_zero() => {
            format!("{} ({} ago)", restarts.count, human_duration(now.since(t)))
        }
        _ => restarts.count.to_string(),
    };
    let mut cells = vec![
        name(pod).into(),
        format!("{ready}/{total}").into(),
        reason.into(),
        restarts_cell.into(),
        age(pod, now),
    ];
    cells.extend(wide_cells(pod, conditions));
    cells
}

/// Walks init container statuses like upstream: finished ones are skipped, started sidecars
/// count as ready, and the first other one decides the `Init:` reason and stops the walk.
fn walk_init_containers(pod: &Value, reason: &mut String) -> InitWalk {
    let specs = arr_at(pod, &["spec", "initContainers"]);
    let spec_of = |n: &str| specs.iter().find(|c| str_at(c, &["name"]) == n);
    let mut walk = InitWalk {
        all: Restarts::default(),
        sidecars: Restarts::default(),
        ready: 0,
        initializing: false,
    };
    for (i, status) in arr_at(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        walk.all.add(status);
        let sidecar = is_sidecar(spec_of(str_at(status, &["name"])));
        if sidecar {
            walk.sidecars.add(status);
        }
        let terminated = non_null(status, "/state/terminated");
        if terminated.is_some_and(|t| i64_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && bool_at(status, &["started"]) {
            walk.ready += i64::from(bool_at(status, &["ready"]));
            continue;
        }
        let waiting = str_at(status, &["state", "waiting", "reason"]);
        *reason = if let Some(t) = terminated {
            match str_at(t, &["reason"]) {
                "" => exit_reason("Init:", t),
                r => format!("Init:{r}"),
            }
        } else if !waiting.is_empty() && waiting != "PodInitializing" {
            format!("Init:{waiting}")
        } else {
            format!("Init:{i}/{}", specs.len())
        };
        walk.initializing = true;
        break;
    }
    walk
}

/// Walks main container statuses last to first, so the first container's state wins.
fn walk_containers(pod: &Value, reason: &mut String, restarts: &mut Restarts, ready: &mut i64) {
    let mut has_running = false;
    for status in arr_at(pod, &["status", "containerStatuses"]).iter().rev() {
        restarts.add(status);
        let waiting = str_at(status, &["state", "waiting", "reason"]);
        if !waiting.is_empty() {
            *reason = waiting.to_string();
        } else if let Some(t) = non_null(status, "/state/terminated") {
            *reason = match str_at(t, &["reason"]) {
                "" => exit_reason("", t),
                r => r.to_string(),
            };
        } else if bool_at(status, &["ready"]) && non_null(status, "/state/running").is_some() {
            has_running = true;
            *ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        let pod_ready = condition_true(arr_at(pod, &["status", "conditions"]), "Ready");
        *reason = if pod_ready { "Running" } else { "NotReady" }.to_string();
    }
}

fn non_null<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|x| !x.is_null())
}

/// `Signal:N` or `ExitCode:N` for a termination without a reason.
fn exit_reason(prefix: &str, terminated: &Value) -> String {
    match i64_at(terminated, &["signal"]) {
        0 => format!("{prefix}ExitCode:{}", i64_at(terminated, &["exitCode"])),
        s => format!("{prefix}Signal:{s}"),
    }
}

/// `podutil.IsRestartableInitContainer`.
fn is_sidecar(spec: Option<&Value>) -> bool {
    spec.is_some_and(|c| str_at(c, &["restartPolicy"]) == "Always")
}

/// IP, NODE, NOMINATED NODE, READINESS GATES.
fn wide_cells(pod: &Value, conditions: &[Value]) -> Vec<Value> {
    // The internal pod keeps podIPs; a v1 object with only podIP converts to one entry.
    let ip = arr_at(pod, &["status", "podIPs"])
        .first()
        .map_or_else(|| str_at(pod, &["status", "podIP"]), |p| str_at(p, &["ip"]));
    let gates = arr_at(pod, &["spec", "readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| {
                let kind = str_at(g, &["conditionType"]);
                condition_true(conditions, kind)
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        or_none(ip),
        or_none(str_at(pod, &["spec", "nodeName"])),
        or_none(str_at(pod, &["status", "nominatedNodeName"])),
        gates_cell.into(),
    ]
}

fn or_none(s: &str) -> Value {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    }
}
