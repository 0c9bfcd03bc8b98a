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
use crate::kubelet::probes::{ProbeKind, ProbeWorker};

mod adoption;
mod probing;
mod status_report;
mod termination;

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
    /// Ephemeral containers (`kubectl debug`): started once, never
    /// restarted, added while the pod runs.
    ephemerals: Vec<ContainerSlot>,
    sandbox: Option<Sandbox>,
    volumes: Option<(BTreeMap<String, PreparedVolume>, Instant)>,
    setup_error: Option<(String, Instant)>,
    /// The pod's address on the pod network, once attached.
    pod_ip: Option<std::net::Ipv4Addr>,
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
            .unwrap_or_else(crate::client::timestamps::now_rfc3339);
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
            ephemerals: Vec::new(),
            sandbox: None,
            volumes: None,
            setup_error: None,
            pod_ip: None,
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

    fn spec_container(&self, name: &str) -> Option<Container> {
        let spec = self.pod.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
            .or_else(|| {
                // An ephemeral container has a container's fields (and a
                // target this runtime does not need: the sandbox is shared).
                let e = spec
                    .ephemeral_containers
                    .iter()
                    .flatten()
                    .find(|c| c.name == name)?;
                let mut v = serde_json::to_value(e).ok()?;
                v.as_object_mut()?.remove("targetContainerName");
                serde_json::from_value(v).ok()
            })
    }

    /// Slots for ephemeral containers added to the pod since the last sync.
    fn track_ephemerals(&mut self) {
        let names: Vec<String> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.ephemeral_containers.iter().flatten())
            .map(|c| c.name.clone())
            .collect();
        for name in names {
            if !self.ephemerals.iter().any(|s| s.name == name) {
                self.ephemerals.push(ContainerSlot::new(&name, false));
            }
        }
    }

    fn env_ctx(&self) -> EnvContext<'_> {
        let host_net = sandbox::host_network(&self.pod);
        EnvContext {
            pod: &self.pod,
            host_ip: self.ctx.node_ip.clone(),
            pod_ip: if host_net {
                self.ctx.node_ip.clone()
            } else {
                self.pod_ip.map(|ip| ip.to_string()).unwrap_or_default()
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
        let netns = self.sandbox.as_ref().and_then(|s| s.netns.clone());
        if let (None, Some(netns), Some(network)) = (self.pod_ip, netns, self.ctx.network.clone()) {
            let (uid, namespace, name) = (self.uid(), self.ns(), self.name());
            match network.attach(&uid, &namespace, &name, &netns).await {
                Ok(ip) => self.pod_ip = Some(ip),
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
        // Ephemeral containers run once each, once the pod is initialized.
        self.track_ephemerals();
        for i in 0..self.ephemerals.len() {
            let slot = &self.ephemerals[i];
            if slot.running() || slot.exited().is_some() {
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
            .chain(self.ephemerals.iter_mut())
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
                // Image failures were described by the pull's own event;
                // this one names the reason, as upstream's kubelet does.
                let pull_failed = matches!(e.reason, "ErrImagePull" | "RegistryUnavailable");
                let shown = match e.reason {
                    "ErrImagePull"
                    | "RegistryUnavailable"
                    | "InvalidImageName"
                    | "ErrImageNeverPull" => e.reason.to_string(),
                    _ => e.message.clone(),
                };
                let slot = self.slot_mut(name)?;
                let backoff = slot
                    .backoff
                    .unwrap_or(super::container_state::BACKOFF_INITIAL);
                let reason = match &slot.waiting {
                    Some((r, _))
                        if pull_failed
                            && matches!(
                                r.as_str(),
                                "ErrImagePull" | "RegistryUnavailable" | "ImagePullBackOff"
                            ) =>
                    {
                        "ImagePullBackOff"
                    }
                    _ => e.reason,
                };
                if reason == "ImagePullBackOff" {
                    self.ctx.events.normal(
                        &*pod,
                        "BackOff",
                        format!(
                            "Back-off pulling image {:?}",
                            container.image.as_deref().unwrap_or("")
                        ),
                    );
                }
                self.ctx.events.warning(
                    &*pod,
                    "Failed",
                    format!(
                        "Error: {}",
                        if reason == "ImagePullBackOff" {
                            reason
                        } else {
                            &shown
                        }
                    ),
                );
                let slot = self.slot_mut(name)?;
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
        lifecycle::release_exited(&self.ctx, id, exit_code, reason, at).await;
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
}
