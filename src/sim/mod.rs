//! Fake nodes for tests and benchmarks, like kwok: `kelp sim nodes`.
//!
//! Registers N Node objects with the capacity asked for, keeps their Leases
//! renewed, and plays kubelet for pods bound to them: a bound pod becomes
//! Running and Ready (no container runs), and a pod being deleted is
//! removed at once. It is an ordinary API client, so it works against any
//! conformant apiserver. It never starts anything on the host.
//!
//! Fake nodes never make the apiserver send traffic off this machine: they
//! advertise 127.0.0.1 and the port of [`kubelet_stub`], which this process
//! serves and which answers exec/logs/port-forward with a clear 501. Pod IPs
//! come from each node's `spec.podCIDR`, one per pod.

pub mod kubelet_stub;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::runtime::watcher::Event;
use parking_lot::Mutex;
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// What fake nodes to run.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// How many nodes.
    pub count: usize,
    /// Node name prefix (`<prefix><index>`).
    pub prefix: String,
    /// Allocatable CPU (a Kubernetes quantity).
    pub cpu: String,
    /// Allocatable memory (a Kubernetes quantity).
    pub memory: String,
    /// Allocatable pod count.
    pub pods: u32,
    /// Extra node labels.
    pub labels: Vec<(String, String)>,
    /// How often Leases are renewed.
    pub lease_interval: Duration,
    /// TLS of the nodes' kubelet port (a certificate from the cluster CA).
    pub kubelet_tls: Arc<rustls::ServerConfig>,
}

/// The address every fake node advertises: loopback, so nothing the
/// apiserver dials for a fake node leaves this machine.
pub const NODE_IP: &str = "127.0.0.1";

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An API call failed.
    #[error("api call failed: {0}")]
    Api(#[from] kube::Error),
    /// The kubelet port could not be opened.
    #[error("cannot listen on {NODE_IP} for the sim kubelet port: {0}")]
    Listen(#[source] std::io::Error),
}

fn now() -> String {
    crate::client::timestamps::now_rfc3339()
}

fn node_object(config: &SimConfig, name: &str, kubelet_port: u16) -> serde_json::Value {
    let mut labels = serde_json::Map::new();
    labels.insert("kubernetes.io/hostname".into(), json!(name));
    labels.insert("kubernetes.io/os".into(), json!("linux"));
    labels.insert("kubernetes.io/arch".into(), json!("amd64"));
    labels.insert("type".into(), json!("kelp-sim"));
    for (k, v) in &config.labels {
        labels.insert(k.clone(), json!(v));
    }
    let resources = json!({"cpu": config.cpu, "memory": config.memory, "pods": config.pods.to_string(), "ephemeral-storage": "100Gi"});
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": {"kelp.io/simulated": "true"}},
        "spec": {},
        "status": {
            "capacity": resources, "allocatable": resources,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kelp sim node is ready", "lastHeartbeatTime": now(), "lastTransitionTime": now()},
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "lastHeartbeatTime": now(), "lastTransitionTime": now()},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "lastHeartbeatTime": now(), "lastTransitionTime": now()},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "lastHeartbeatTime": now(), "lastTransitionTime": now()},
            ],
            "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "kubeletVersion": format!("v1.{}.0-kelp-sim", crate::client::version::KUBERNETES_MINOR), "kubeProxyVersion": "",
                "containerRuntimeVersion": "sim://0", "osImage": "kelp sim", "kernelVersion": "", "operatingSystem": "linux",
                "architecture": "amd64", "machineID": "", "systemUUID": "", "bootID": "",
            },
        },
    })
}

/// Registers the nodes, then renews leases and plays kubelet until
/// cancelled.
pub async fn run(
    client: kube::Client,
    config: SimConfig,
    cancel: CancellationToken,
) -> Result<(), SimError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = (0..config.count)
        .map(|i| format!("{}{i}", config.prefix))
        .collect();
    let listener = tokio::net::TcpListener::bind((NODE_IP, 0))
        .await
        .map_err(SimError::Listen)?;
    let kubelet_port = listener.local_addr().map_err(SimError::Listen)?.port();
    let stub = tokio::spawn(kubelet_stub::serve(
        listener,
        config.kubelet_tls.clone(),
        cancel.clone(),
    ));
    register(&nodes, &config, &names, kubelet_port).await?;
    tracing::info!(count = names.len(), "sim nodes registered");
    let ours: Arc<HashSet<String>> = Arc::new(names.iter().cloned().collect());
    let leases = tokio::spawn(renew_leases(
        client.clone(),
        names.clone(),
        config.lease_interval,
        cancel.clone(),
    ));
    let pods = play_kubelet(client, ours, cancel.clone());
    tokio::select! {
        r = pods => r?,
        _ = cancel.cancelled() => {}
    }
    leases.abort();
    stub.abort();
    Ok(())
}

async fn register(
    nodes: &Api<Node>,
    config: &SimConfig,
    names: &[String],
    kubelet_port: u16,
) -> Result<(), SimError> {
    // Bounded concurrency: registering 5 000 nodes one by one is slow, all at once floods.
    let results: Vec<Result<(), SimError>> = futures::stream::iter(names.iter())
        .map(|name| async move {
            let node: Node = serde_json::from_value(node_object(config, name, kubelet_port))
                .expect("node object is well-formed");
            match nodes.create(&PostParams::default(), &node).await {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
                Err(e) => Err(SimError::Api(e)),
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}

async fn renew_leases(
    client: kube::Client,
    names: Vec<String>,
    every: Duration,
    cancel: CancellationToken,
) {
    let leases: Api<Lease> = Api::namespaced(client, "kube-node-lease");
    loop {
        let stamp = crate::client::timestamps::now_rfc3339_micros();
        let _ = futures::stream::iter(names.iter().cloned())
            .map(|name| {
                let leases = leases.clone();
                let stamp = stamp.clone();
                async move {
                    let name = name.as_str();
                    let lease = json!({
                        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                        "metadata": {"name": name, "namespace": "kube-node-lease"},
                        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": stamp},
                    });
                    let pp = PatchParams::apply("kelp-sim").force();
                    if let Err(e) = leases.patch(name, &pp, &Patch::Apply(&lease)).await {
                        tracing::warn!(node = %name, error = %e, "lease renewal failed");
                    }
                }
            })
            .buffer_unordered(32)
            .collect::<Vec<_>>()
            .await;
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

async fn play_kubelet(
    client: kube::Client,
    ours: Arc<HashSet<String>>,
    cancel: CancellationToken,
) -> Result<(), SimError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client);
    let mut pod_ips = PodIps::default();
    let done: Arc<Mutex<HashSet<String>>> = Arc::default();
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let stream = watcher(pods.clone(), watcher::Config::default());
    futures::pin_mut!(stream);
    loop {
        let event = tokio::select! {
            e = stream.next() => e,
            _ = cancel.cancelled() => return Ok(()),
        };
        let Some(event) = event else { return Ok(()) };
        let pod = match event {
            Ok(Event::Apply(p)) | Ok(Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "pod watch failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if !ours.contains(&node) {
            continue;
        }
        let (ns, name) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
        );
        let api: Api<Pod> = Api::namespaced(pods.clone().into_client(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        if phase.as_deref() == Some("Running") || !done.lock().insert(uid.clone()) {
            continue;
        }
        let containers: Vec<serde_json::Value> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| json!({
                "name": c.name, "image": c.image, "imageID": "", "ready": true, "started": true, "restartCount": 0,
                "state": {"running": {"startedAt": now()}},
            })).collect())
            .unwrap_or_default();
        // `kelp.io/sim-exit-code` makes a pod finish at once (for Jobs).
        let exit = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kelp.io/sim-exit-code"))
            .and_then(|c| c.parse::<i32>().ok());
        if let Some(code) = exit {
            let phase = if code == 0 { "Succeeded" } else { "Failed" };
            let terminated: Vec<serde_json::Value> = pod
                .spec
                .as_ref()
                .map(|s| s.containers.iter().map(|c| json!({
                    "name": c.name, "image": c.image, "imageID": "", "ready": false, "started": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }, "startedAt": now(), "finishedAt": now()}},
                })).collect())
                .unwrap_or_default();
            let status = json!({"status": {"phase": phase, "startTime": now(), "containerStatuses": terminated,
                "conditions": [{"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": now()}]}});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
            continue;
        }
        let pod_ip = pod_ips.next(&nodes, &node).await;
        let pod_ips_field: Vec<serde_json::Value> =
            pod_ip.iter().map(|ip| json!({"ip": ip})).collect();
        let status = json!({"status": {
            "phase": "Running", "startTime": now(), "hostIP": NODE_IP,
            "hostIPs": [{"ip": NODE_IP}],
            "podIP": pod_ip, "podIPs": pod_ips_field,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now()},
                {"type": "Initialized", "status": "True", "lastTransitionTime": now()},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now()},
                {"type": "Ready", "status": "True", "lastTransitionTime": now()},
            ],
            "containerStatuses": containers,
        }});
        // Bounded fan-out: many pods bind at once during scale tests.
        let permit = limit.clone().acquire_owned().await;
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
            {
                tracing::debug!(pod = %name, error = %e, "status update failed");
            }
        });
    }
}

/// One IP per pod from each node's `spec.podCIDR` (.2 upwards, .1 being
/// the node's bridge on real nodes). A sim node hands out each address
/// once; when its CIDR is full, or node IPAM has not given it one, pods get
/// no IP.
#[derive(Default)]
struct PodIps {
    next: std::collections::HashMap<String, (ipnet::Ipv4Net, u32)>,
}

impl PodIps {
    async fn next(&mut self, nodes: &Api<Node>, node: &str) -> Option<String> {
        if !self.next.contains_key(node) {
            let cidr = nodes
                .get_opt(node)
                .await
                .ok()
                .flatten()
                .and_then(|n| n.spec?.pod_cidr)
                .and_then(|c| c.parse::<ipnet::Ipv4Net>().ok())?;
            self.next.insert(node.to_string(), (cidr, 2));
        }
        let (cidr, offset) = self.next.get_mut(node)?;
        let ip = u32::from(cidr.network()).checked_add(*offset)?;
        let ip = std::net::Ipv4Addr::from(ip);
        if !cidr.contains(&ip) || ip == cidr.broadcast() {
            return None;
        }
        *offset += 1;
        Some(ip.to_string())
    }
}
