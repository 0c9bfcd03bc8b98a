//! What the kubelet knows about one container of a pod across its restarts,
//! and how that renders as a `ContainerStatus`.
//!
//! A container is a sequence of attempts; attempt N is the N-th restart and
//! runs as its own containerd container (`restartCount` = N). The previous
//! attempt's termination is `lastState`. Restart back-off follows upstream:
//! the first restart is immediate, then 10 s doubling to 5 minutes, reset
//! after a container ran cleanly for 10 minutes.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

/// First back-off after a crash that follows an immediate restart.
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(10);
/// Back-off ceiling.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long resets its back-off.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(600);

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub struct Terminated {
    /// Exit code (128+signal for signals).
    pub exit_code: i32,
    /// Completed, Error, OOMKilled, ContainerCannotRun, …
    pub reason: String,
    /// The termination message, if any.
    pub message: String,
    /// When it started (None if it never ran).
    pub started_at: Option<SystemTime>,
    /// When it ended.
    pub finished_at: SystemTime,
    /// containerd id of the attempt.
    pub container_id: String,
}

/// The attempt that exists now.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// containerd container id.
    pub id: String,
    /// Restart number.
    pub number: u32,
    /// Image reference as resolved (imageID).
    pub image_id: String,
    /// When the task started.
    pub started_at: SystemTime,
    /// None while running.
    pub exited: Option<Terminated>,
}

/// One container's history on this node.
#[derive(Clone, Debug)]
pub struct ContainerSlot {
    /// Container name.
    pub name: String,
    /// Init container?
    pub init: bool,
    /// The latest attempt.
    pub current: Option<Attempt>,
    /// The attempt before it, ended.
    pub last: Option<Terminated>,
    /// Why the container is not running (reason, message), for `waiting`.
    pub waiting: Option<(String, String)>,
    /// Back-off before the next restart (None: restart at once).
    pub backoff: Option<Duration>,
    /// Earliest time of the next start.
    pub next_start: Option<Instant>,
    /// Readiness probe verdict (None: no probe).
    pub ready_probe: Option<bool>,
    /// Startup probe passed (or there is none).
    pub started: bool,
}

impl ContainerSlot {
    /// A container that has not run yet.
    pub fn new(name: &str, init: bool) -> Self {
        Self {
            name: name.to_string(),
            init,
            current: None,
            last: None,
            waiting: Some(("ContainerCreating".into(), String::new())),
            backoff: None,
            next_start: None,
            ready_probe: None,
            started: false,
        }
    }

    /// Running right now.
    pub fn running(&self) -> bool {
        self.current.as_ref().is_some_and(|a| a.exited.is_none())
    }

    /// The current attempt's exit, if it has ended.
    pub fn exited(&self) -> Option<&Terminated> {
        self.current.as_ref().and_then(|a| a.exited.as_ref())
    }

    /// The next attempt number.
    pub fn next_attempt(&self) -> u32 {
        self.current.as_ref().map_or(0, |a| a.number + 1)
    }

    /// Records an exit and schedules the restart back-off.
    pub fn record_exit(&mut self, t: Terminated) {
        let ran = t
            .started_at
            .and_then(|s| t.finished_at.duration_since(s).ok())
            .unwrap_or_default();
        if ran >= BACKOFF_RESET_AFTER {
            self.backoff = None;
        }
        match self.backoff {
            None => {
                self.next_start = None;
                self.backoff = Some(BACKOFF_INITIAL);
            }
            Some(b) => {
                self.next_start = Some(Instant::now() + b);
                self.backoff = Some((b * 2).min(BACKOFF_MAX));
            }
        }
        if let Some(a) = self.current.as_mut() {
            a.exited = Some(t);
        }
        self.ready_probe = self.ready_probe.map(|_| false);
        self.started = false;
    }

    /// Ready as the Ready condition counts it.
    pub fn ready(&self) -> bool {
        self.running() && self.started && self.ready_probe.unwrap_or(true)
    }

    /// The `ContainerStatus` JSON.
    pub fn status(&self, image: &str, pod_ref: &str) -> Value {
        let restart_count = self.current.as_ref().map_or(0, |a| a.number);
        let mut s = json!({
            "name": self.name, "image": image, "imageID": "", "ready": self.ready(),
            "restartCount": restart_count,
        });
        if !self.init {
            s["started"] = json!(self.running() && self.started);
        }
        let last = match &self.current {
            Some(a) => {
                s["imageID"] = json!(a.image_id);
                s["containerID"] = json!(format!("containerd://{}", a.id));
                match &a.exited {
                    None => {
                        s["state"] = json!({"running": {"startedAt": rfc3339(a.started_at)}});
                        self.last.as_ref()
                    }
                    Some(t) if self.next_start.is_some() => {
                        let wait = self
                            .next_start
                            .map(|n| n.saturating_duration_since(Instant::now()))
                            .unwrap_or_default();
                        let msg = format!(
                            "back-off {} restarting failed container={} pod={pod_ref}",
                            go_duration(self.backoff.map(|b| b / 2).unwrap_or(wait)),
                            self.name
                        );
                        s["state"] =
                            json!({"waiting": {"reason": "CrashLoopBackOff", "message": msg}});
                        Some(t)
                    }
                    Some(t) => {
                        s["state"] = json!({"terminated": terminated_json(t)});
                        self.last.as_ref()
                    }
                }
            }
            None => self.last.as_ref(),
        };
        if let Some((reason, message)) = self.waiting.as_ref().filter(|_| !self.running())
            && (self.current.is_none() || reason != "ContainerCreating")
        {
            {
                let mut w = json!({"reason": reason});
                if !message.is_empty() {
                    w["message"] = json!(message);
                }
                s["state"] = json!({"waiting": w});
            }
        }
        if s.get("state").is_none() {
            s["state"] = json!({"waiting": {"reason": "ContainerCreating"}});
        }
        s["lastState"] = match last {
            Some(t) => json!({"terminated": terminated_json(t)}),
            None => json!({}),
        };
        s
    }
}

fn terminated_json(t: &Terminated) -> Value {
    let mut v = json!({
        "exitCode": t.exit_code, "reason": t.reason,
        "finishedAt": rfc3339(t.finished_at), "containerID": format!("containerd://{}", t.container_id),
    });
    if let Some(s) = t.started_at {
        v["startedAt"] = json!(rfc3339(s));
    }
    if !t.message.is_empty() {
        v["message"] = json!(t.message);
    }
    v
}

/// RFC 3339 with second precision, as metav1.Time serialises.
pub fn rfc3339(t: SystemTime) -> String {
    crate::client::timestamps::rfc3339(t)
}

/// Go's `time.Duration.String()` of a back-off ("10s", "5m0s").
fn go_duration(d: Duration) -> String {
    crate::client::timestamps::go_duration(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(code: i32, ran: u64) -> Terminated {
        let finished = SystemTime::now();
        Terminated {
            exit_code: code,
            reason: "Error".into(),
            message: String::new(),
            started_at: Some(finished - Duration::from_secs(ran)),
            finished_at: finished,
            container_id: "c1".into(),
        }
    }

    fn attempt(n: u32) -> Attempt {
        Attempt {
            id: format!("c{n}"),
            number: n,
            image_id: "img".into(),
            started_at: SystemTime::now(),
            exited: None,
        }
    }

    #[test]
    fn first_restart_is_immediate_then_backoff_doubles_to_the_cap() {
        let mut slot = ContainerSlot::new("c", false);
        slot.current = Some(attempt(0));
        slot.record_exit(exit(1, 1));
        assert!(slot.next_start.is_none());
        let mut seen = vec![];
        for n in 1..8 {
            slot.current = Some(attempt(n));
            slot.record_exit(exit(1, 1));
            let wait = slot
                .next_start
                .unwrap()
                .saturating_duration_since(Instant::now());
            seen.push((wait.as_secs_f64() + 0.5) as u64);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300]);
        let status = slot.status("busybox", "p_ns(u)");
        assert_eq!(status["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(status["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(status["restartCount"], 7);
    }

    #[test]
    fn long_runs_reset_the_backoff() {
        let mut slot = ContainerSlot::new("c", false);
        slot.backoff = Some(BACKOFF_MAX);
        slot.current = Some(attempt(3));
        slot.record_exit(exit(1, 3600));
        assert!(slot.next_start.is_none());
    }

    #[test]
    fn running_container_reports_running_and_last_state() {
        let mut slot = ContainerSlot::new("c", false);
        slot.last = Some(exit(137, 5));
        slot.current = Some(attempt(1));
        slot.started = true;
        let s = slot.status("busybox", "p");
        assert!(s["state"]["running"]["startedAt"].is_string());
        assert_eq!(s["lastState"]["terminated"]["exitCode"], 137);
        assert_eq!(s["ready"], true);
        assert_eq!(s["containerID"], "containerd://c1");
    }
}
