//! Probes of a worker's containers: the startup probe first, then liveness
//! and readiness; a failed liveness or startup probe restarts the container.

use super::*;
use crate::kubelet::probes::{self, ProbeTarget};

impl PodWorker {
    pub(super) fn probe_target(&self, container: &Container) -> ProbeTarget {
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
            exec: Arc::new(super::super::ContainerExec {
                ctx,
                container_id: id,
            }),
        }
    }

    /// Starts the startup probe, or (once started) liveness and readiness.
    pub(super) fn start_probes(&mut self, name: &str, id: &str, skip_startup: bool) {
        let Some(container) = self.spec_container(name) else {
            return;
        };
        let mut target = self.probe_target(&container);
        target.exec = Arc::new(super::super::ContainerExec {
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

    pub(super) fn on_probe(
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
}
