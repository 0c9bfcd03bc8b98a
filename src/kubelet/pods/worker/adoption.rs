//! Adoption: after a kelp restart, a worker rebuilds its containers' state
//! from containerd (labels name the pod, container and attempt) instead of
//! starting them again.

use super::*;

impl PodWorker {
    /// Rebuilds container state from containerd after a kelp restart.
    pub(super) async fn adopt(&mut self) {
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
        type Latest = (u32, String, Option<SystemTime>, HashMap<String, String>);
        let mut latest: HashMap<String, Latest> = HashMap::new();
        let mut stale = Vec::new();
        for r in records {
            let name = r.labels.get(LABEL_CONTAINER).cloned().unwrap_or_default();
            let attempt: u32 = r
                .labels
                .get(LABEL_ATTEMPT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            match latest.get(&name) {
                Some((a, ..)) if *a >= attempt => stale.push(r.id),
                _ => {
                    if let Some((_, old, ..)) =
                        latest.insert(name, (attempt, r.id, r.created_at, r.labels))
                    {
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
        for (name, (attempt, id, created, labels)) in latest {
            let task = self.ctx.runtime.task(&id).await.ok().flatten();
            let Some(slot) = self
                .inits
                .iter_mut()
                .chain(self.apps.iter_mut())
                .chain(self.ephemerals.iter_mut())
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
                    slot.backoff = Some(super::super::container_state::BACKOFF_INITIAL);
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
                    // An exit kelp saw before its restart was recorded on
                    // the container, whose task is gone.
                    let recorded = lifecycle::recorded_exit(&labels);
                    let code = match (&recorded, &other) {
                        (Some((c, ..)), _) => *c,
                        (None, Some(t)) => t.exit_status as i32,
                        (None, None) => 128,
                    };
                    let at = match (&recorded, &other) {
                        (Some((_, _, at)), _) => *at,
                        (None, t) => t
                            .as_ref()
                            .and_then(|t| t.exited_at)
                            .unwrap_or_else(SystemTime::now),
                    };
                    let reason = match recorded {
                        Some((_, r, _)) if !r.is_empty() => r,
                        _ if code == 0 => "Completed".into(),
                        _ => "Error".into(),
                    };
                    slot.current = Some(attempt_state);
                    slot.record_exit(Terminated {
                        exit_code: code,
                        reason,
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
}
