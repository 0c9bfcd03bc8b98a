//! The pod's status as the worker reports it: computed from its container
//! slots and posted only when it changed.

use super::*;

impl PodWorker {
    /// Posts the status if it changed since the last post.
    pub(super) async fn report_status(&mut self) {
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
                .or_else(|| {
                    spec.ephemeral_containers
                        .iter()
                        .flatten()
                        .find(|c| c.name == name)
                        .and_then(|c| c.image.clone())
                })
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
        if !self.ephemerals.is_empty() {
            let ephemeral: Vec<Value> = self
                .ephemerals
                .iter()
                .map(|s| s.status(&image(&s.name), &pod_ref))
                .collect();
            status["ephemeralContainerStatuses"] = json!(ephemeral);
        }
        if sandbox::host_network(&self.pod) {
            status["podIP"] = json!(self.ctx.node_ip);
            status["podIPs"] = json!([{"ip": self.ctx.node_ip}]);
        } else if let Some(ip) = self.pod_ip {
            status["podIP"] = json!(ip.to_string());
            status["podIPs"] = json!([{"ip": ip.to_string()}]);
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
