//! The Node object and its heartbeats: registration, status, and the Lease.
//!
//! Upstream's kubelet splits liveness from status: the Lease in
//! kube-node-lease is renewed every 10 s (cheap, what the node lifecycle
//! controller watches), while the Node's status is only written when a
//! condition or capacity changes, or once a minute. We do the same, so an
//! idle node costs one small write per 10 s.

pub mod eviction;
pub mod host_info;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use self::host_info::HostInfo;
use super::KubeletError;
use crate::client::timestamps::{now_rfc3339, now_rfc3339_micros};

/// How often the Lease is renewed (upstream: 10 s for a 40 s lease).
pub const LEASE_RENEW_INTERVAL: Duration = Duration::from_secs(10);
/// How often conditions are re-evaluated.
const STATUS_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Status is re-posted at least this often even when nothing changed:
/// upstream's `nodeStatusReportFrequency` (5 min). The Lease is the
/// heartbeat; a Node object rewritten every minute only wears the disk
/// (an SD card, on a Raspberry Pi).
const STATUS_REPORT_INTERVAL: Duration = Duration::from_secs(300);

/// What this node says about itself.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// Node name.
    pub name: String,
    /// InternalIP.
    pub ip: IpAddr,
    /// Labels beyond the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// Taints set at registration: (key, value, effect).
    pub taints: Vec<(String, String, String)>,
    /// Allocatable pod count.
    pub max_pods: u32,
    /// Kubelet HTTPS port.
    pub kubelet_port: u16,
    /// Data dir (decides ephemeral storage).
    pub data_dir: PathBuf,
    /// `containerd://<version>`.
    pub runtime_version: String,
    /// Hard eviction thresholds (decide the pressure conditions).
    pub eviction_hard: eviction::EvictionHard,
}

/// Registers the Node, or refreshes an existing one's labels and status.
/// Taints are applied only when the Node is created, like upstream (an
/// admin's later `kubectl taint` must survive kubelet restarts).
#[tracing::instrument(skip_all, fields(node = %settings.name))]
pub async fn register(client: &kube::Client, settings: &NodeSettings) -> Result<(), KubeletError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let info = HostInfo::read(&settings.data_dir);
    let object = node_object(settings);
    let node: Node = serde_json::from_value(object.clone()).map_err(KubeletError::Encode)?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => tracing::info!("node registered"),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let patch = json!({"metadata": {"labels": object["metadata"]["labels"]}});
            nodes
                .patch(
                    &settings.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await?;
            tracing::info!("node already registered; labels refreshed");
        }
        Err(e) => return Err(e.into()),
    }
    let status = json!({"status": node_status(settings, &info, &conditions(settings))});
    nodes
        .patch_status(
            &settings.name,
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await?;
    Ok(())
}

fn node_object(settings: &NodeSettings) -> Value {
    let mut labels: BTreeMap<String, String> = BTreeMap::new();
    labels.insert("kubernetes.io/hostname".into(), settings.name.clone());
    labels.insert("kubernetes.io/os".into(), "linux".into());
    labels.insert("kubernetes.io/arch".into(), host_info::go_arch().into());
    labels.insert("beta.kubernetes.io/os".into(), "linux".into());
    labels.insert(
        "beta.kubernetes.io/arch".into(),
        host_info::go_arch().into(),
    );
    labels.insert("node.kubernetes.io/instance-type".into(), "kelp".into());
    labels.extend(settings.labels.clone());
    let taints: Vec<Value> = settings
        .taints
        .iter()
        .map(|(key, value, effect)| {
            let mut t = json!({"key": key, "effect": effect});
            if !value.is_empty() {
                t["value"] = json!(value);
            }
            t
        })
        .collect();
    let mut spec = json!({});
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": settings.name, "labels": labels,
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
        "spec": spec,
    })
}

/// One condition's (status, reason, message).
type ConditionState = (&'static str, &'static str, &'static str);

/// The four node conditions, in upstream's order: MemoryPressure,
/// DiskPressure, PIDPressure, Ready.
fn conditions(settings: &NodeSettings) -> [ConditionState; 4] {
    let info = HostInfo::read(&settings.data_dir);
    let eviction = &settings.eviction_hard;
    let memory = match host_info::mem_available() {
        Some(free) if eviction.memory.crossed(free, info.memory_bytes) => (
            "True",
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
        ),
        _ => (
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
    };
    let disk = match host_info::fs_available(&settings.data_dir) {
        Some(free) if eviction.nodefs.crossed(free, info.ephemeral_storage_bytes) => (
            "True",
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
        ),
        _ => (
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
        ),
    };
    [
        memory,
        disk,
        (
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        ("True", "KubeletReady", "kubelet is posting ready status"),
    ]
}

const CONDITION_TYPES: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"];

fn node_status(settings: &NodeSettings, info: &HostInfo, conds: &[ConditionState; 4]) -> Value {
    let now = now_rfc3339();
    let conditions: Vec<Value> = CONDITION_TYPES
        .iter()
        .zip(conds)
        .map(|(ty, (status, reason, message))| {
            json!({"type": ty, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": now, "lastTransitionTime": now})
        })
        .collect();
    let capacity = json!({
        "cpu": info.cpus.to_string(),
        "memory": format!("{}Ki", info.memory_bytes / 1024),
        "ephemeral-storage": format!("{}Ki", info.ephemeral_storage_bytes / 1024),
        "pods": settings.max_pods.to_string(),
        "hugepages-2Mi": "0", "hugepages-1Gi": "0",
    });
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": settings.ip.to_string()},
            {"type": "Hostname", "address": settings.name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": settings.kubelet_port}},
        "nodeInfo": {
            "machineID": info.machine_id, "systemUUID": info.machine_id, "bootID": info.boot_id,
            "kernelVersion": info.kernel_version, "osImage": info.os_image,
            "containerRuntimeVersion": settings.runtime_version,
            "kubeletVersion": format!("v1.{}.0+kelp", crate::client::version::KUBERNETES_MINOR),
            "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": info.architecture,
        },
    })
}

/// Re-posts the Node status when a condition changes and at least once a
/// minute, until cancelled. Lost transitions keep their original time:
/// `lastTransitionTime` is only reset when a status flips.
pub async fn run_status(client: kube::Client, settings: NodeSettings, cancel: CancellationToken) {
    let nodes: Api<Node> = Api::all(client);
    let mut last: Option<[ConditionState; 4]> = None;
    let mut last_post = Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(STATUS_CHECK_INTERVAL) => {}
            _ = cancel.cancelled() => return,
        }
        let info = HostInfo::read(&settings.data_dir);
        let now = conditions(&settings);
        let changed = last.as_ref() != Some(&now);
        if !changed && last_post.elapsed() < STATUS_REPORT_INTERVAL {
            continue;
        }
        let mut status = node_status(&settings, &info, &now);
        if !changed {
            keep_transition_times(&nodes, &settings.name, &mut status).await;
        }
        let patch = json!({"status": status});
        match nodes
            .patch_status(
                &settings.name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {
                last = Some(now);
                last_post = Instant::now();
            }
            Err(e) => tracing::warn!(error = %e, "node status update failed"),
        }
    }
}

async fn keep_transition_times(nodes: &Api<Node>, name: &str, status: &mut Value) {
    let Ok(current) = nodes.get_status(name).await else {
        return;
    };
    let old = current
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    if let Some(conds) = status["conditions"].as_array_mut() {
        for c in conds {
            let same = old.iter().find(|o| {
                Some(o.type_.as_str()) == c["type"].as_str()
                    && Some(o.status.as_str()) == c["status"].as_str()
            });
            if let Some(t) = same.and_then(|o| o.last_transition_time.as_ref()) {
                c["lastTransitionTime"] = json!(t.0.to_string());
            }
        }
    }
}

/// Renews the node's Lease every [`LEASE_RENEW_INTERVAL`] until cancelled.
pub async fn run_lease(
    client: kube::Client,
    node: String,
    node_uid: Option<String>,
    cancel: CancellationToken,
) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        let mut lease = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": node, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": now_rfc3339_micros()},
        });
        if let Some(uid) = &node_uid {
            lease["metadata"]["ownerReferences"] =
                json!([{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid}]);
        }
        let pp = PatchParams::apply("kubelet").force();
        if let Err(e) = leases.patch(&node, &pp, &Patch::Apply(&lease)).await {
            tracing::warn!(error = %e, "lease renewal failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(LEASE_RENEW_INTERVAL) => {}
            _ = cancel.cancelled() => return,
        }
    }
}
