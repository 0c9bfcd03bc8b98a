//! Stopping a pod: preStop hooks, SIGTERM, the grace period, SIGKILL, then
//! removal of its containers and sandbox and, for a deleted pod, of the Pod
//! object itself.

use super::*;

impl PodWorker {
    /// Stops every container (preStop, SIGTERM, grace, SIGKILL), removes
    /// them and the sandbox; with `delete`, reports the final status and
    /// deletes the Pod object.
    pub(super) async fn terminate(&mut self, grace: Duration, delete: bool) {
        tracing::info!(grace_secs = grace.as_secs(), "stopping pod");
        self.probes.clear();
        let deadline = Instant::now() + grace;
        let mut stops = Vec::new();
        for slot in self
            .inits
            .iter()
            .chain(self.apps.iter())
            .chain(self.ephemerals.iter())
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
        for slot in self
            .inits
            .iter_mut()
            .chain(self.apps.iter_mut())
            .chain(self.ephemerals.iter_mut())
        {
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
        self.remove_logs();
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

    /// The pod is going (or gone) from the API: its logs go with it, as upstream.
    fn remove_logs(&self) {
        let dir = crate::kubelet::logs::pod_log_dir(
            &self.ctx.log_root,
            &self.ns(),
            &self.name(),
            &self.uid(),
        );
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot remove the pod's logs");
        }
    }

    pub(super) async fn remove_everything(&mut self) {
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
        if let Some(network) = &self.ctx.network
            && let Err(e) = network.detach(&uid).await
        {
            tracing::warn!(error = %e, "cannot remove the pod's network");
        }
        self.pod_ip = None;
        let parent = sandbox::cgroup_parent(&self.pod);
        sandbox::remove(&uid, &self.ctx.sandbox, Some(&parent));
    }
}
