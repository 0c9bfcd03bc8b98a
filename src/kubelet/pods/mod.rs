//! Pods on this node: a manager that follows the pods bound here (and the
//! static pods from the manifests directory), and one worker per pod that
//! runs its containers on containerd.
//!
//! The manager is the only place that knows every pod; workers never share
//! state with each other. What the streaming server needs (which containerd
//! container serves `exec` for namespace/pod/container) is published in
//! [`NodeContext::containers`] by the workers as attempts start and end.

pub mod container_state;
pub mod env;
pub mod lifecycle;
pub mod manager;
pub mod objects;
pub mod oci_spec;
pub mod pod_status;
pub mod sandbox;
pub mod static_pods;
pub mod volumes;
pub mod worker;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::client::events::EventSink;
use crate::kubelet::containerd::Runtime;

/// (namespace, pod, container).
pub type ContainerKey = (String, String, String);

/// The running attempt of a container, for exec, attach, logs and
/// port-forward.
#[derive(Clone, Debug)]
pub struct ContainerHandle {
    /// containerd id.
    pub id: String,
    /// Pod uid.
    pub uid: String,
    /// Restart number (log file name).
    pub attempt: u32,
    /// True while the attempt runs (ends `logs -f`).
    pub running: watch::Receiver<bool>,
    /// The pod's network namespace.
    pub netns: Option<PathBuf>,
}

/// What every pod worker shares.
pub struct NodeContext {
    /// API client (node identity).
    pub client: kube::Client,
    /// containerd.
    pub runtime: Runtime,
    /// Image pulls (policy, credentials, mirrors) and what image GC keeps.
    pub images: Arc<crate::kubelet::registry::ImagePuller>,
    /// ConfigMap/Secret reader.
    pub objects: objects::ObjectSource,
    /// Sandbox settings.
    pub sandbox: sandbox::SandboxSettings,
    /// /var/log/pods.
    pub log_root: PathBuf,
    /// The `kelp-logger` link the shim runs.
    pub logger_exe: PathBuf,
    /// FIFOs for exec.
    pub io_dir: PathBuf,
    /// Event publisher (reporting as kubelet).
    pub events: EventSink,
    /// The node's InternalIP.
    pub node_ip: String,
    /// The built-in pod network (None: pods get loopback only).
    pub network: Option<Arc<crate::network::PodNetwork>>,
    /// ClusterIP of the `kubernetes` service.
    pub kubernetes_service_ip: String,
    /// Containers containerd reported as OOM-killed, until their exit is seen.
    pub oom: Mutex<HashSet<String>>,
    /// Running attempts by (namespace, pod, container).
    pub containers: Mutex<HashMap<ContainerKey, ContainerHandle>>,
    /// stdin of containers with `stdin: true`, by containerd id.
    pub stdins: Mutex<HashMap<String, Arc<ContainerStdin>>>,
}

/// The kubelet's end of a container's stdin FIFO. kelp keeps it open for
/// the container's life, so one attach session ending does not close the
/// container's stdin (unless `stdinOnce`).
pub struct ContainerStdin {
    /// Writer into the FIFO the shim reads.
    pub writer: tokio::sync::Mutex<tokio::net::unix::pipe::Sender>,
    /// `stdinOnce`: close stdin after the first attach.
    pub once: bool,
}

impl ContainerStdin {
    /// Opens (creating if needed) the stdin FIFO of container `id` under `io_dir`.
    pub fn open(
        io_dir: &std::path::Path,
        id: &str,
        once: bool,
    ) -> std::io::Result<(PathBuf, Self)> {
        let dir = io_dir.join(id);
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("stdin");
        crate::kubelet::containerd::make_fifo(&path)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        // Read-write so the open never blocks and the FIFO never sees EOF.
        let writer = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&path)?;
        Ok((
            path,
            Self {
                writer: tokio::sync::Mutex::new(writer),
                once,
            },
        ))
    }
}

/// Runs exec probes and hooks in one container.
pub struct ContainerExec {
    /// Shared context.
    pub ctx: Arc<NodeContext>,
    /// containerd id of the attempt.
    pub container_id: String,
}

impl crate::kubelet::probes::ExecProber for ContainerExec {
    fn exec(
        &self,
        command: Vec<String>,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(i32, Vec<u8>), String>> {
        let ctx = self.ctx.clone();
        let id = self.container_id.clone();
        Box::pin(async move { lifecycle::exec_capture(&ctx, &id, command, timeout).await })
    }
}
