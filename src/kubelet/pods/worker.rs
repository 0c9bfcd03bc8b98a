//! One task per pod: drives its containers towards the pod spec and reports
//! what happened as the pod's status.
//!
//! The worker owns everything about its pod (sandbox, volumes, container
//! attempts, probe workers), so no locks guard pod state; the manager only
//! sends it the latest Pod object. It wakes on a new object, on a container
//! exit or probe result, and on its own timers (restart back-off). Stopping
//! kelp drops the worker without touching containers: a restarted kelp
//! adopts them from containerd by their labels.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::container_state::{Attempt, ContainerSlot, Terminated};
use super::env::EnvContext;
use super::lifecycle::{self, LABEL_ATTEMPT, LABEL_CONTAINER, LABEL_POD_UID};
use super::pod_status;
use super::sandbox::{self, Sandbox};
use super::volumes::{self, PreparedVolume};
use super::{ContainerHandle, NodeContext};
use crate::kubelet::probes::{self, ProbeKind, ProbeTarget, ProbeWorker};

/// What the worker hears besides pod updates.
enum Signal {
    /// A container attempt's task exited.
    Exited {
        id: String,
        exit_code: i32,
        at: SystemTime,
    },
    /// A probe's verdict changed.
    Probe {
        container: String,
        attempt_id: String,
        kind: ProbeKind,
        ok: Option<bool>,
        message: String,
    },
}

/// How volumes are refreshed (configMap/secret changes reach running pods).
const VOLUME_REFRESH: Duration = Duration::from_secs(60);
/// Retry delay after a sandbox or volume failure.
const SETUP_RETRY: Duration = Duration::from_secs(5);

/// The worker of one pod.
pub struct PodWorker {
    ctx: Arc<NodeContext>,
    pod: Arc<Pod>,
    inits: Vec<ContainerSlot>,
    apps: Vec<ContainerSlot>,
    sandbox: Option<Sandbox>,
    volumes: Option<(BTreeMap<String, PreparedVolume>, Instant)>,
    setup_error: Option<(String, Instant)>,
    probes: HashMap<(String, ProbeKind), ProbeWorker>,
    running: HashMap<String, watch::Sender<bool>>,
    signals_tx: mpsc::UnboundedSender<Signal>,
    signals_rx: mpsc::UnboundedReceiver<Signal>,
    start_time: String,
    last_status: Option<Value>,
    finished: bool,
}

impl PodWorker {
    /// A worker for `pod`.
    pub fn new(ctx: Arc<NodeContext>, pod: Arc<Pod>) -> Self {
        let spec = pod.spec.clone().unwrap_or_default();
        let inits = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| ContainerSlot::new(&c.name, true))
            .collect();
        let apps = spec
            .containers
            .iter()
            .map(|c| ContainerSlot::new(&c.name, false))
            .collect();
        let start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0.to_string())
            .unwrap_or_else(crate::api::object::now_rfc3339);
        let (signals_tx, signals_rx) = mpsc::unbounded_channel();
        // A pod that already ended never runs again, not even after a
        // kelp restart that lost its containers.
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        Self {
            ctx,
            pod,
            inits,
            apps,
            sandbox: None,
            volumes: None,
            setup_error: None,
            probes: HashMap::new(),
            running: HashMap::new(),
            signals_tx,
            signals_rx,
            start_time,
            last_status: None,
            finished,
        }
    }

    fn uid(&self) -> String {
        self.pod.metadata.uid.clone().unwrap_or_default()
    }

    fn ns(&self) -> String {
        self.pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into())
    }

    fn name(&self) -> String {
        self.pod.metadata.name.clone().unwrap_or_default()
    }

    /// Runs until the pod is gone (`None` received: stop and clean up) or
    /// the sender is dropped (kelp stopping: leave containers running).
    pub async fn run(mut self, mut updates: watch::Receiver<Option<Arc<Pod>>>) {
        self.adopt().await;
        loop {
            let desired = updates.borrow_and_update().clone();
            let Some(pod) = desired else {
                self.terminate(Duration::from_secs(2), false).await;
                return;
            };
            self.pod = pod;
            if self.pod.metadata.deletion_timestamp.is_some() {
                let grace = self
                    .pod
                    .metadata
                    .deletion_grace_period_seconds
                    .unwrap_or(30)
                    .max(0) as u64;
                self.terminate(Duration::from_secs(grace), true).await;
                return;
            }
            let wake = self.sync().await;
            self.report_status().await;
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(
                wake.unwrap_or_else(|| Instant::now() + VOLUME_REFRESH),
            ));
            tokio::select! {
                changed = updates.changed() => if changed.is_err() { return },
                Some(signal) = self.signals_rx.recv() => self.handle(signal).await,
                _ = sleep => {}
            }
        }
    }

    /// Rebuilds container state from containerd after a kelp restart.
    async fn adopt(&mut self) {
        let uid = self.uid();
        let records = match self
            .ctx
            .runtime
            .list_containers(&[(LABEL_POD_UID, uid.as_str())])
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list containers to adopt");
                return;
            }
        };
        if records.is_empty() {
            return;
        }
        let old_status = self.pod.status.clone().unwrap_or_default();
        let was_ready = |name: &str| {
            old_status
                .container_statuses
                .iter()
                .flatten()
                .any(|s| s.name == name && s.ready)
        };
        let mut latest: HashMap<String, (u32, String, Option<SystemTime>)> = HashMap::new();
        let mut stale = Vec::new();
        for r in records {
            let name = r.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
            let attempt: u32 = r
                .labels
                .get(LABEL_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            match latest.get(&name) {
                Some((a, _, _)) if *a >= attempt => stale.push(r.id),
                _ => {
                    if let Some((_, old, _)) = latest.insert(name, (attempt, r.id, r.created_at)) {
                        stale.push(old);
                    }
                }
            }
        }
        for id in stale {
            let _ = lifecycle::remove(&self.ctx, &id).await;
        }
        if let Ok(sb) = sandbox::ensure(&self.pod, &self.ctx.sandbox) {
            self.sandbox = Some(sb);
        }
        for (name, (attempt, id, created)) in latest {
            let task = self.ctx.runtime.task(&id).await.ok().flatten();
            let Some(slot) = self
                .inits
                .iter_mut()
                .chain(self.apps.iter_mut())
                .find(|s| s.name == name)
            else {
                let _ = lifecycle::remove(&self.ctx, &id).await;
                continue;
            };
            let started_at = created.unwrap_or_else(SystemTime::now);
            let mut attempt_state = Attempt {
                id: id.clone(),
                number: attempt,
                image_id: String::new(),
                started_at,
                exited: None,
            };
            if let Some(st) = old_status
                .container_statuses
                .iter()
                .flatten()
                .chain(old_status.init_container_statuses.iter().flatten())
                .find(|s| s.name == name)
            {
                attempt_state.image_id = st.image_id.clone();
            }
            slot.waiting = None;
            match task {
                Some(t) if matches!(t.status, crate::kubelet::containerd::TaskStatus::Running) => {
                    slot.current = Some(attempt_state);
                    slot.started = true;
                    slot.backoff = Some(super::container_state::BACKOFF_INITIAL);
                    let ready = was_ready(&name);
                    let is_init = slot.init;
                    if let Some(c) = self.spec_container(&name) {
                        let log = lifecycle::log_path(&self.ctx, &self.pod, &name, attempt);
                        lifecycle::reopen_stdin(&self.ctx, &c, &id, &log);
                    }
                    self.watch_exit(&id);
                    self.publish_running(&name, &id, attempt, true);
                    if !is_init {
                        self.start_probes(&name, &id, true);
                        if let Some(slot) = self.apps.iter_mut().find(|s| s.name == name) {
                            slot.ready_probe = slot.ready_probe.map(|_| ready);
                        }
                    }
                }
                other => {
                    let code = other.as_ref().map_or(128, |t| t.exit_status as i32);
                    let at = other
                        .and_then(|t| t.exited_at)
                        .unwrap_or_else(SystemTime::now);
                    slot.current = Some(attempt_state);
                    slot.record_exit(Terminated {
                        exit_code: code,
                        reason: if code == 0 {
                            "Completed".into()
                        } else {
                            "Error".into()
                        },
                        message: String::new(),
                        started_at: Some(started_at),
                        finished_at: at,
                        container_id: id.clone(),
                    });
                    self.publish_running(&name, &id, attempt, false);
                }
            }
        }
        tracing::info!("adopted running containers");
    }

    fn spec_container(&self, name: &str) -> Option<Container> {
        let spec = self.pod.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
    }

    fn env_ctx(&self) -> EnvContext<'_> {
        let host_net = sandbox::host_network(&self.pod);
        EnvContext {
            pod: &self.pod,
            host_ip: self.ctx.node_ip.clone(),
            pod_ip: if host_net {
                self.ctx.node_ip.clone()
            } else {
                String::new()
            },
            kubernetes_service_ip: self.ctx.kubernetes_service_ip.clone(),
        }
    }

    /// Sandbox and volumes; None when they are ready.
    async fn ensure_setup(&mut self) -> Option<Instant> {
        if let Some((_, at)) = &self.setup_error
            && at.elapsed() < SETUP_RETRY
        {
            return Some(*at + SETUP_RETRY);
        }
        if self.sandbox.is_none() {
            match sandbox::ensure(&self.pod, &self.ctx.sandbox) {
                Ok(sb) => self.sandbox = Some(sb),
                Err(e) => return self.setup_failed("FailedCreatePodSandBox", e.to_string()),
            }
        }
        let refresh = self
            .volumes
            .as_ref()
            .is_none_or(|(_, at)| at.elapsed() >= VOLUME_REFRESH);
        if refresh {
            let dir = self
                .sandbox
                .as_ref()
                .map(|s| s.dir.clone())
                .unwrap_or_default();
            let result = volumes::prepare(&dir, &self.env_ctx(), &self.ctx.objects).await;
            match result {
                Ok(v) => self.volumes = Some((v, Instant::now())),
                Err(e) if self.volumes.is_none() => {
                    return self.setup_failed("FailedMount", e.to_string());
                }
                Err(e) => tracing::warn!(error = %e, "volume refresh failed"),
            }
        }
        self.setup_error = None;
        None
    }

    fn setup_failed(&mut self, reason: &str, message: String) -> Option<Instant> {
        tracing::warn!(%reason, %message, "pod setup failed");
        self.ctx.events.warning(&*self.pod, reason, message.clone());
        let now = Instant::now();
        self.setup_error = Some((message, now));
        Some(now + SETUP_RETRY)
    }

    /// One pass towards the spec; returns when to wake for timers.
    async fn sync(&mut self) -> Option<Instant> {
        if self.finished {
            return None;
        }
        if let Some(wake) = self.ensure_setup().await {
            return Some(wake);
        }
        let policy = pod_status::restart_policy(&self.pod).to_string();
        let mut wake: Option<Instant> = None;
        let mut earliest = |at: Instant| wake = Some(wake.map_or(at, |w: Instant| w.min(at)));
        // Init containers, one at a time, in order.
        for i in 0..self.inits.len() {
            let slot = &self.inits[i];
            if slot.exited().is_some_and(|t| t.exit_code == 0) {
                continue;
            }
            if slot.running() {
                return wake;
            }
            if let Some(t) = slot.exited()
                && policy == "Never"
                && t.exit_code != 0
            {
                self.finish();
                return None;
            }
            if let Some(at) = slot.next_start.filter(|at| *at > Instant::now()) {
                earliest(at);
                return wake;
            }
            let name = slot.name.clone();
            if let Some(at) = self.start_container(&name, true).await {
                earliest(at);
            }
            return wake;
        }
        for i in 0..self.apps.len() {
            let slot = &self.apps[i];
            if slot.running() {
                continue;
            }
            if let Some(t) = slot.exited()
                && !pod_status::should_restart(&policy, t.exit_code)
            {
                continue;
            }
            if let Some(at) = slot.next_start.filter(|at| *at > Instant::now()) {
                earliest(at);
                continue;
            }
            let name = slot.name.clone();
            if let Some(at) = self.start_container(&name, false).await {
                earliest(at);
            }
        }
        let phase = pod_status::phase(&policy, &self.inits, &self.apps);
        if phase == "Succeeded" || phase == "Failed" {
            self.finish();
        }
        wake
    }

    fn finish(&mut self) {
        self.finished = true;
        self.probes.clear();
    }

    fn slot_mut(&mut self, name: &str) -> Option<&mut ContainerSlot> {
        self.inits
            .iter_mut()
            .chain(self.apps.iter_mut())
            .find(|s| s.name == name)
    }

    /// Starts the next attempt of a container; on failure returns when to retry.
    async fn start_container(&mut self, name: &str, init: bool) -> Option<Instant> {
        let container = self.spec_container(name)?;
        let attempt = self.slot_mut(name).map_or(0, |s| s.next_attempt());
        let previous = self
            .slot_mut(name)
            .and_then(|s| s.current.as_ref().map(|a| a.id.clone()));
        let (sandbox, volumes) = (self.sandbox.clone()?, self.volumes.as_ref()?.0.clone());
        let result = {
            let env_ctx = self.env_ctx();
            lifecycle::start(
                &self.ctx, &self.pod, &sandbox, &volumes, &container, attempt, init, &env_ctx,
            )
            .await
        };
        let pod = self.pod.clone();
        match result {
            Ok(started) => {
                if let Some(prev) = previous {
                    let _ = lifecycle::remove(&self.ctx, &prev).await;
                }
                self.ctx.events.normal(
                    &*pod,
                    "Pulled",
                    format!(
                        "Container image {:?} already present on machine",
                        container.image.clone().unwrap_or_default()
                    ),
                );
                self.ctx
                    .events
                    .normal(&*pod, "Created", format!("Created container: {name}"));
                self.ctx
                    .events
                    .normal(&*pod, "Started", format!("Started container {name}"));
                let has_startup = container.startup_probe.is_some();
                let has_readiness = container.readiness_probe.is_some();
                let slot = self.slot_mut(name)?;
                if let Some(t) = slot.exited().cloned() {
                    slot.last = Some(t);
                }
                slot.current = Some(Attempt {
                    id: started.id.clone(),
                    number: attempt,
                    image_id: started.image_id,
                    started_at: started.started_at,
                    exited: None,
                });
                slot.waiting = None;
                slot.next_start = None;
                slot.started = !has_startup;
                slot.ready_probe = has_readiness.then_some(false);
                self.watch_exit(&started.id);
                self.publish_running(name, &started.id, attempt, true);
                if let Some(post) = container
                    .lifecycle
                    .as_ref()
                    .and_then(|l| l.post_start.clone())
                {
                    let target = self.probe_target(&container);
                    if let Err(message) = lifecycle::run_hook(
                        &self.ctx,
                        &started.id,
                        &post,
                        &target,
                        Duration::from_secs(30),
                    )
                    .await
                    {
                        self.ctx.events.warning(
                            &*pod,
                            "FailedPostStartHook",
                            format!("PostStartHook failed: {message}"),
                        );
                        let ctx = self.ctx.clone();
                        let id = started.id.clone();
                        tokio::spawn(async move {
                            lifecycle::stop(&ctx, &id, Duration::from_secs(2)).await
                        });
                    }
                }
                if !init {
                    self.start_probes(name, &started.id, false);
                }
                None
            }
            Err(e) => {
                tracing::warn!(container = name, reason = e.reason, message = %e.message, "container start failed");
                self.ctx
                    .events
                    .warning(&*pod, "Failed", format!("Error: {}", e.message));
                let slot = self.slot_mut(name)?;
                let backoff = slot
                    .backoff
                    .unwrap_or(super::container_state::BACKOFF_INITIAL);
                let reason = match (e.reason, &slot.waiting) {
                    ("ErrImagePull", Some((r, _)))
                        if r == "ErrImagePull" || r == "ImagePullBackOff" =>
                    {
                        "ImagePullBackOff"
                    }
                    (r, _) => r,
                };
                slot.waiting = Some((reason.to_string(), e.message));
                let at = Instant::now() + backoff;
                slot.next_start = Some(at);
                slot.backoff = Some((backoff * 2).min(super::container_state::BACKOFF_MAX));
                Some(at)
            }
        }
    }

    /// Makes a running attempt visible to exec/logs/port-forward.
    fn publish_running(&mut self, name: &str, id: &str, attempt: u32, running: bool) {
        let (tx, rx) = watch::channel(running);
        if let Some(old) = self.running.insert(name.to_string(), tx) {
            let _ = old.send(false);
        }
        let handle = ContainerHandle {
            id: id.to_string(),
            uid: self.uid(),
            attempt,
            running: rx,
            netns: self.sandbox.as_ref().and_then(|s| s.netns.clone()),
        };
        self.ctx
            .containers
            .lock()
            .insert((self.ns(), self.name(), name.to_string()), handle);
    }

    fn watch_exit(&self, id: &str) {
        let runtime = self.ctx.runtime.clone();
        let tx = self.signals_tx.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                match runtime.wait(&id).await {
                    Ok(info) => {
                        let _ = tx.send(Signal::Exited {
                            id,
                            exit_code: info.exit_status as i32,
                            at: info.exited_at,
                        });
                        return;
                    }
                    Err(crate::kubelet::containerd::RuntimeError::NotFound { .. }) => {
                        let _ = tx.send(Signal::Exited {
                            id,
                            exit_code: 128,
                            at: SystemTime::now(),
                        });
                        return;
                    }
                    // containerd restarting: wait again.
                    Err(e) => {
                        tracing::debug!(container = %id, error = %e, "wait failed; retrying");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
    }

    fn probe_target(&self, container: &Container) -> ProbeTarget {
        let ctx = self.ctx.clone();
        let ports = container
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.name.clone().map(|n| (n, p.container_port as u16)))
            .collect();
        let host_net = sandbox::host_network(&self.pod);
        let id = self
            .inits
            .iter()
            .chain(self.apps.iter())
            .find(|s| s.name == container.name)
            .and_then(|s| s.current.as_ref().map(|a| a.id.clone()))
            .unwrap_or_default();
        ProbeTarget {
            netns: self.sandbox.as_ref().and_then(|s| s.netns.clone()),
            pod_ip: if host_net {
                self.ctx.node_ip.parse().ok()
            } else {
                None
            },
            container_ports: ports,
            exec: Arc::new(super::ContainerExec {
                ctx,
                container_id: id,
            }),
        }
    }

    /// Starts the startup probe, or (once started) liveness and readiness.
    fn start_probes(&mut self, name: &str, id: &str, skip_startup: bool) {
        let Some(container) = self.spec_container(name) else {
            return;
        };
        let mut target = self.probe_target(&container);
        target.exec = Arc::new(super::ContainerExec {
            ctx: self.ctx.clone(),
            container_id: id.to_string(),
        });
        let kinds: Vec<(ProbeKind, Option<k8s_openapi::api::core::v1::Probe>)> =
            match (&container.startup_probe, skip_startup) {
                (Some(p), false) => vec![(ProbeKind::Startup, Some(p.clone()))],
                _ => vec![
                    (ProbeKind::Liveness, container.liveness_probe.clone()),
                    (ProbeKind::Readiness, container.readiness_probe.clone()),
                ],
            };
        for (kind, probe) in kinds {
            let Some(probe) = probe else { continue };
            let worker = probes::spawn_worker(kind, probe, target.clone());
            let mut results = worker.results();
            let tx = self.signals_tx.clone();
            let (container, attempt_id) = (name.to_string(), id.to_string());
            tokio::spawn(async move {
                while results.changed().await.is_ok() {
                    let status = results.borrow_and_update().clone();
                    let signal = Signal::Probe {
                        container: container.clone(),
                        attempt_id: attempt_id.clone(),
                        kind,
                        ok: status.result,
                        message: status.last_message.clone(),
                    };
                    if tx.send(signal).is_err() {
                        return;
                    }
                }
            });
            self.probes.insert((name.to_string(), kind), worker);
        }
    }

    async fn handle(&mut self, signal: Signal) {
        match signal {
            Signal::Exited { id, exit_code, at } => self.on_exit(&id, exit_code, at).await,
            Signal::Probe {
                container,
                attempt_id,
                kind,
                ok,
                message,
            } => {
                let current = self.slot_mut(&container).and_then(|s| {
                    s.current
                        .as_ref()
                        .filter(|a| a.exited.is_none())
                        .map(|a| a.id.clone())
                });
                if current.as_deref() != Some(attempt_id.as_str()) {
                    return;
                }
                self.on_probe(&container, &attempt_id, kind, ok, message);
            }
        }
    }

    async fn on_exit(&mut self, id: &str, exit_code: i32, at: SystemTime) {
        let Some(slot) = self.inits.iter().chain(self.apps.iter()).find(|s| {
            s.current
                .as_ref()
                .is_some_and(|a| a.id == id && a.exited.is_none())
        }) else {
            return;
        };
        let (name, attempt, started_at) = {
            let a = slot
                .current
                .as_ref()
                .map(|a| (a.number, a.started_at))
                .unwrap_or((0, at));
            (slot.name.clone(), a.0, a.1)
        };
        let cgroup = self
            .sandbox
            .as_ref()
            .map(|s| sandbox::container_cgroup(s, id))
            .unwrap_or_default();
        let oom = self.ctx.oom.lock().remove(id) || lifecycle::oom_killed(&cgroup);
        let reason = if oom {
            "OOMKilled"
        } else if exit_code == 0 {
            "Completed"
        } else {
            "Error"
        };
        let message = match (self.spec_container(&name), &self.sandbox) {
            (Some(c), Some(sb)) => lifecycle::termination_message(
                &self.ctx, &self.pod, &sb.dir, &c, attempt, exit_code,
            ),
            _ => String::new(),
        };
        tracing::info!(container = %name, exit_code, reason, "container exited");
        self.probes.retain(|(c, _), _| *c != name);
        if let Some(tx) = self.running.get(&name) {
            let _ = tx.send(false);
        }
        let term = Terminated {
            exit_code,
            reason: reason.into(),
            message,
            started_at: Some(started_at),
            finished_at: at,
            container_id: id.to_string(),
        };
        let policy = pod_status::restart_policy(&self.pod).to_string();
        if let Some(slot) = self.slot_mut(&name) {
            slot.record_exit(term);
            if slot.next_start.is_some() && pod_status::should_restart(&policy, exit_code) {
                let pod = self.pod.clone();
                self.ctx.events.warning(
                    &*pod,
                    "BackOff",
                    format!(
                        "Back-off restarting failed container {name} in pod {}",
                        self.pod_ref()
                    ),
                );
            }
        }
    }

    fn on_probe(
        &mut self,
        name: &str,
        id: &str,
        kind: ProbeKind,
        ok: Option<bool>,
        message: String,
    ) {
        let pod = self.pod.clone();
        let label = match kind {
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
            ProbeKind::Startup => "Startup",
        };
        if ok == Some(false) && !message.is_empty() {
            self.ctx.events.warning(
                &*pod,
                "Unhealthy",
                format!("{label} probe failed: {message}"),
            );
        }
        match (kind, ok) {
            (ProbeKind::Readiness, ok) => {
                if let Some(slot) = self.slot_mut(name) {
                    slot.ready_probe = Some(ok == Some(true));
                }
            }
            (ProbeKind::Startup, Some(true)) => {
                if let Some(slot) = self.slot_mut(name) {
                    slot.started = true;
                }
                self.probes.remove(&(name.to_string(), ProbeKind::Startup));
                self.start_probes(name, id, true);
            }
            (ProbeKind::Liveness | ProbeKind::Startup, Some(false)) => {
                self.ctx.events.normal(
                    &*pod,
                    "Killing",
                    format!(
                        "Container {name} failed {} probe, will be restarted",
                        label.to_lowercase()
                    ),
                );
                self.probes.retain(|(c, _), _| c != name);
                let grace = self.grace_period();
                let (ctx, id) = (self.ctx.clone(), id.to_string());
                tokio::spawn(async move { lifecycle::stop(&ctx, &id, grace).await });
            }
            _ => {}
        }
    }

    fn grace_period(&self) -> Duration {
        let secs = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30);
        Duration::from_secs(secs.max(0) as u64)
    }

    fn pod_ref(&self) -> String {
        format!("{}_{}({})", self.name(), self.ns(), self.uid())
    }

    /// Stops every container (preStop, SIGTERM, grace, SIGKILL), removes
    /// them and the sandbox; with `delete`, reports the final status and
    /// deletes the Pod object.
    async fn terminate(&mut self, grace: Duration, delete: bool) {
        tracing::info!(grace_secs = grace.as_secs(), "stopping pod");
        self.probes.clear();
        let deadline = Instant::now() + grace;
        let mut stops = Vec::new();
        for slot in self
            .inits
            .iter()
            .chain(self.apps.iter())
            .filter(|s| s.running())
        {
            let Some(id) = slot.current.as_ref().map(|a| a.id.clone()) else {
                continue;
            };
            let container = self.spec_container(&slot.name);
            let pre_stop = container
                .as_ref()
                .and_then(|c| c.lifecycle.as_ref())
                .and_then(|l| l.pre_stop.clone());
            let target = container.as_ref().map(|c| self.probe_target(c));
            let ctx = self.ctx.clone();
            let pod = self.pod.clone();
            let name = slot.name.clone();
            stops.push(async move {
                ctx.events
                    .normal(&*pod, "Killing", format!("Stopping container {name}"));
                if let (Some(hook), Some(target)) = (pre_stop, target) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if let Err(m) = lifecycle::run_hook(&ctx, &id, &hook, &target, left).await {
                        ctx.events.warning(
                            &*pod,
                            "FailedPreStopHook",
                            format!("PreStopHook failed: {m}"),
                        );
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                lifecycle::stop(&ctx, &id, left.max(Duration::from_millis(1))).await;
            });
        }
        futures::future::join_all(stops).await;
        // Collect exit codes for the final status.
        while let Ok(signal) = self.signals_rx.try_recv() {
            if let Signal::Exited { id, exit_code, at } = signal {
                self.on_exit(&id, exit_code, at).await;
            }
        }
        for slot in self.inits.iter_mut().chain(self.apps.iter_mut()) {
            if let Some(a) = slot.current.as_mut().filter(|a| a.exited.is_none()) {
                a.exited = Some(Terminated {
                    exit_code: 137,
                    reason: "Error".into(),
                    message: String::new(),
                    started_at: Some(a.started_at),
                    finished_at: SystemTime::now(),
                    container_id: a.id.clone(),
                });
            }
            slot.next_start = None;
        }
        self.remove_everything().await;
        if delete {
            self.finished = true;
            self.report_status().await;
            let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.ns());
            let mut dp = DeleteParams::default().grace_period(0);
            dp.preconditions = Some(Preconditions {
                uid: Some(self.uid()),
                resource_version: None,
            });
            match api.delete(&self.name(), &dp).await {
                Ok(_) => tracing::info!("pod deleted"),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => tracing::warn!(error = %e, "cannot delete pod"),
            }
        }
    }

    async fn remove_everything(&mut self) {
        let uid = self.uid();
        if let Ok(records) = self
            .ctx
            .runtime
            .list_containers(&[(LABEL_POD_UID, uid.as_str())])
            .await
        {
            for r in records {
                if let Err(e) = lifecycle::remove(&self.ctx, &r.id).await {
                    tracing::warn!(container = %r.id, error = %e, "cannot remove container");
                }
            }
        }
        for (_, tx) in self.running.drain() {
            let _ = tx.send(false);
        }
        let key = (self.ns(), self.name());
        self.ctx
            .containers
            .lock()
            .retain(|(ns, pod, _), h| !((ns, pod) == (&key.0, &key.1) && h.uid == uid));
        let parent = sandbox::cgroup_parent(&self.pod);
        sandbox::remove(&uid, &self.ctx.sandbox, Some(&parent));
    }

    /// Posts the status if it changed since the last post.
    async fn report_status(&mut self) {
        let policy = pod_status::restart_policy(&self.pod).to_string();
        let mut phase = pod_status::phase(&policy, &self.inits, &self.apps);
        if self.pod.metadata.deletion_timestamp.is_some() && self.finished && phase == "Running" {
            phase = if policy == "Always" { "Failed" } else { phase };
        }
        let spec = self.pod.spec.clone().unwrap_or_default();
        let image = |name: &str| -> String {
            spec.containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == name)
                .and_then(|c| c.image.clone())
                .unwrap_or_default()
        };
        let pod_ref = self.pod_ref();
        let statuses: Vec<Value> = self
            .apps
            .iter()
            .map(|s| s.status(&image(&s.name), &pod_ref))
            .collect();
        let init_statuses: Vec<Value> = self
            .inits
            .iter()
            .map(|s| s.status(&image(&s.name), &pod_ref))
            .collect();
        let sandbox_ready = self.sandbox.is_some();
        let previous = self.last_status.as_ref().map(|s| s["conditions"].clone());
        let conditions = pod_status::conditions(
            &self.pod,
            previous.as_ref(),
            phase,
            &self.inits,
            &self.apps,
            sandbox_ready,
        );
        let mut status = json!({
            "phase": phase,
            "conditions": conditions,
            "hostIP": self.ctx.node_ip, "hostIPs": [{"ip": self.ctx.node_ip}],
            "startTime": self.start_time,
            "containerStatuses": statuses,
        });
        if !init_statuses.is_empty() {
            status["initContainerStatuses"] = json!(init_statuses);
        }
        if sandbox::host_network(&self.pod) {
            status["podIP"] = json!(self.ctx.node_ip);
            status["podIPs"] = json!([{"ip": self.ctx.node_ip}]);
        }
        if let Some((msg, _)) = &self.setup_error {
            status["message"] = json!(msg);
        }
        if let Some(qos) = self.pod.status.as_ref().and_then(|s| s.qos_class.clone()) {
            status["qosClass"] = json!(qos);
        }
        if self.last_status.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.ctx.client.clone(), &self.ns());
        let patch = json!({"status": status});
        match api
            .patch_status(&self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => self.last_status = Some(status),
            Err(kube::Error::Api(e)) if e.code == 404 => self.last_status = Some(status),
            Err(e) => tracing::warn!(error = %e, "pod status update failed"),
        }
    }
}
