//! The pod's phase and conditions from its containers, following upstream's
//! `getPhase` and status manager: Pending until every init container has
//! succeeded and the app containers have started, Running while any runs
//! (or will be restarted), Succeeded/Failed once all have ended for good.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::container_state::ContainerSlot;

/// The pod's restart policy.
pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether an exited container of this pod gets restarted.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// Whether every init container has completed successfully.
pub fn initialized(inits: &[ContainerSlot]) -> bool {
    inits
        .iter()
        .all(|c| c.exited().is_some_and(|t| t.exit_code == 0))
}

/// The pod phase.
pub fn phase(policy: &str, inits: &[ContainerSlot], apps: &[ContainerSlot]) -> &'static str {
    if let Some(failed) = inits
        .iter()
        .find_map(|c| c.exited().filter(|t| t.exit_code != 0))
    {
        // A failed init container only fails the pod if it will not retry.
        if policy == "Never" && failed.exit_code != 0 {
            return "Failed";
        }
        return "Pending";
    }
    if !initialized(inits) {
        return "Pending";
    }
    let running = apps.iter().filter(|c| c.running()).count();
    let exited: Vec<i32> = apps
        .iter()
        .filter_map(|c| c.exited().map(|t| t.exit_code))
        .collect();
    let waiting = apps.len() - running - exited.len();
    if waiting > 0 && running == 0 && exited.is_empty() {
        return "Pending";
    }
    if running > 0 || waiting > 0 {
        return "Running";
    }
    // Everything has exited.
    let all_ok = exited.iter().all(|c| *c == 0);
    match policy {
        "Always" => "Running",
        "OnFailure" if all_ok => "Succeeded",
        "OnFailure" => "Running",
        _ if all_ok => "Succeeded",
        _ => "Failed",
    }
}

/// The status conditions, keeping `lastTransitionTime` of conditions whose
/// status did not change.
/// `previous` (the last posted conditions) stands in when the pod object
/// carries none, as for static pods whose status lives on the mirror pod.
pub fn conditions(
    pod: &Pod,
    previous: Option<&Value>,
    phase: &str,
    inits: &[ContainerSlot],
    apps: &[ContainerSlot],
    sandbox_ready: bool,
) -> Vec<Value> {
    let mut old = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if old.is_empty() {
        old = previous
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default();
    }
    let done = phase == "Succeeded" || phase == "Failed";
    let containers_ready = !done && !apps.is_empty() && apps.iter().all(ContainerSlot::ready);
    let not_ready: Vec<&str> = apps
        .iter()
        .filter(|c| !c.ready())
        .map(|c| c.name.as_str())
        .collect();
    let not_ready_msg = format!("containers with unready status: [{}]", not_ready.join(" "));
    let init_ok = initialized(inits);
    let pending_inits: Vec<&str> = inits
        .iter()
        .filter(|c| c.exited().is_none_or(|t| t.exit_code != 0))
        .map(|c| c.name.as_str())
        .collect();
    let mut out = Vec::new();
    let mut push = |ty: &str, ok: bool, reason: &str, message: String| {
        let status = if ok { "True" } else { "False" };
        let since = old
            .iter()
            .find(|c| c.type_ == ty && c.status == status)
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(crate::client::timestamps::now_rfc3339);
        let mut c = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if !ok && !reason.is_empty() {
            c["reason"] = json!(reason);
            if !message.is_empty() {
                c["message"] = json!(message);
            }
        }
        out.push(c);
    };
    push(
        "PodReadyToStartContainers",
        sandbox_ready && !done,
        "",
        String::new(),
    );
    push(
        "Initialized",
        init_ok,
        "ContainersNotInitialized",
        format!(
            "containers with incomplete status: [{}]",
            pending_inits.join(" ")
        ),
    );
    let reason = if done {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    push(
        "Ready",
        containers_ready,
        reason,
        if done {
            String::new()
        } else {
            not_ready_msg.clone()
        },
    );
    push(
        "ContainersReady",
        containers_ready,
        reason,
        if done { String::new() } else { not_ready_msg },
    );
    push("PodScheduled", true, "", String::new());
    out
}

#[cfg(test)]
mod tests {
    use super::super::container_state::{Attempt, Terminated};
    use super::*;
    use std::time::SystemTime;

    fn slot(state: Option<Option<i32>>) -> ContainerSlot {
        let mut s = ContainerSlot::new("c", false);
        if let Some(exit) = state {
            s.current = Some(Attempt {
                id: "x".into(),
                number: 0,
                image_id: String::new(),
                started_at: SystemTime::now(),
                exited: exit.map(|code| Terminated {
                    exit_code: code,
                    reason: String::new(),
                    message: String::new(),
                    started_at: None,
                    finished_at: SystemTime::now(),
                    container_id: "x".into(),
                }),
            });
        }
        s
    }

    #[test]
    fn phases_follow_upstream() {
        let never_ran = slot(None);
        let running = slot(Some(None));
        let ok = slot(Some(Some(0)));
        let failed = slot(Some(Some(1)));
        assert_eq!(
            phase("Always", &[], std::slice::from_ref(&never_ran)),
            "Pending"
        );
        assert_eq!(
            phase("Always", &[], &[running.clone(), never_ran.clone()]),
            "Running"
        );
        assert_eq!(phase("Never", &[], &[ok.clone(), failed.clone()]), "Failed");
        assert_eq!(phase("Never", &[], std::slice::from_ref(&ok)), "Succeeded");
        assert_eq!(
            phase("OnFailure", &[], std::slice::from_ref(&failed)),
            "Running"
        );
        assert_eq!(
            phase("OnFailure", &[], std::slice::from_ref(&ok)),
            "Succeeded"
        );
        assert_eq!(phase("Always", &[], std::slice::from_ref(&ok)), "Running");
        assert_eq!(
            phase(
                "Always",
                std::slice::from_ref(&running),
                std::slice::from_ref(&never_ran)
            ),
            "Pending"
        );
        assert_eq!(
            phase(
                "Never",
                std::slice::from_ref(&failed),
                std::slice::from_ref(&never_ran)
            ),
            "Failed"
        );
    }

    #[test]
    fn restart_policy_decides_restarts() {
        assert!(should_restart("Always", 0));
        assert!(!should_restart("OnFailure", 0));
        assert!(should_restart("OnFailure", 2));
        assert!(!should_restart("Never", 2));
    }
}
