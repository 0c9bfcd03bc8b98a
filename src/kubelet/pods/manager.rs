//! Follows the pods this node must run and keeps one worker per pod.
//!
//! Two sources feed it: the API (pods whose `spec.nodeName` is this node,
//! watched with a field selector so the apiserver filters) and the static
//! manifests directory (re-read every few seconds; cheap, and needs no
//! inotify). Once both have been read in full, containers and network
//! namespaces that belong to no known pod are removed: they are left over
//! from pods deleted while kelp was down.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::NodeContext;
use super::lifecycle::{LABEL_MANAGED, LABEL_POD_UID};
use super::static_pods;
use super::worker::PodWorker;
use crate::kubelet::containerd::RuntimeEvent;

/// How often the manifests directory is re-read.
const STATIC_SCAN: Duration = Duration::from_secs(5);

struct Entry {
    tx: watch::Sender<Option<Arc<Pod>>>,
    task: JoinHandle<()>,
    is_static: bool,
}

/// The pod manager of one node.
pub struct PodManager {
    ctx: Arc<NodeContext>,
    node: String,
    manifests: PathBuf,
    workers: HashMap<String, Entry>,
    statics: BTreeMap<String, Arc<Pod>>,
    node_uid: Option<String>,
}

impl PodManager {
    /// A manager for `node`, with static manifests in `manifests`.
    pub fn new(ctx: Arc<NodeContext>, node: String, manifests: PathBuf) -> Self {
        Self {
            ctx,
            node,
            manifests,
            workers: HashMap::new(),
            statics: BTreeMap::new(),
            node_uid: None,
        }
    }

    /// Runs until cancelled. Containers keep running when it stops.
    pub async fn run(mut self, cancel: CancellationToken) {
        tokio::spawn(watch_ooms(self.ctx.clone(), cancel.child_token()));
        let nodes: Api<Node> = Api::all(self.ctx.client.clone());
        self.node_uid = nodes
            .get_opt(&self.node)
            .await
            .ok()
            .flatten()
            .and_then(|n| n.metadata.uid);
        let pods: Api<Pod> = Api::all(self.ctx.client.clone());
        let config = watcher::Config::default().fields(&format!("spec.nodeName={}", self.node));
        let stream = watcher::watcher(pods, config);
        futures::pin_mut!(stream);
        let mut scan = tokio::time::interval(STATIC_SCAN);
        let mut seen_init: Option<HashSet<String>> = None;
        let mut swept = false;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = scan.tick() => self.scan_static().await,
                event = stream.next() => match event {
                    Some(Ok(Event::Init)) => seen_init = Some(HashSet::new()),
                    Some(Ok(Event::InitApply(pod))) => {
                        if let (Some(seen), Some(uid)) = (seen_init.as_mut(), pod.metadata.uid.clone()) {
                            seen.insert(uid);
                        }
                        self.apply(pod);
                    }
                    Some(Ok(Event::InitDone)) => {
                        let seen = seen_init.take().unwrap_or_default();
                        self.forget_missing(&seen);
                        if !swept {
                            self.scan_static().await;
                            self.sweep_orphans().await;
                            swept = true;
                        }
                    }
                    Some(Ok(Event::Apply(pod))) => self.apply(pod),
                    Some(Ok(Event::Delete(pod))) => self.deleted(&pod),
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "pod watch failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    None => break,
                }
            }
            self.workers.retain(|_, e| !e.task.is_finished());
        }
        // Dropping the senders ends the workers without stopping containers.
        for (_, entry) in self.workers.drain() {
            drop(entry.tx);
            let _ = tokio::time::timeout(Duration::from_secs(2), entry.task).await;
        }
    }

    fn apply(&mut self, pod: Pod) {
        if static_pods::is_mirror(&pod) {
            return;
        }
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        self.upsert(uid, Arc::new(pod), false);
    }

    fn upsert(&mut self, uid: String, pod: Arc<Pod>, is_static: bool) {
        if let Some(entry) = self.workers.get(&uid)
            && !entry.task.is_finished()
        {
            let _ = entry.tx.send(Some(pod));
            return;
        }
        if pod.metadata.deletion_timestamp.is_some()
            && pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Succeeded" || p == "Failed")
            && self.workers.contains_key(&uid)
        {
            return;
        }
        let (tx, rx) = watch::channel(Some(pod.clone()));
        let span = tracing::info_span!("pod", pod = %format!("{}/{}", pod.metadata.namespace.as_deref().unwrap_or(""), pod.metadata.name.as_deref().unwrap_or("")));
        let worker = PodWorker::new(self.ctx.clone(), pod);
        let task = tokio::spawn(worker.run(rx).instrument(span));
        self.workers.insert(
            uid,
            Entry {
                tx,
                task,
                is_static,
            },
        );
    }

    fn deleted(&mut self, pod: &Pod) {
        if static_pods::is_mirror(pod) {
            return;
        }
        if let Some(entry) = pod.metadata.uid.as_ref().and_then(|u| self.workers.get(u)) {
            let _ = entry.tx.send(None);
        }
    }

    /// After a re-list: pods that vanished while the watch was down.
    fn forget_missing(&mut self, seen: &HashSet<String>) {
        for (uid, entry) in &self.workers {
            if !entry.is_static && !seen.contains(uid) {
                let _ = entry.tx.send(None);
            }
        }
    }

    async fn scan_static(&mut self) {
        let now = static_pods::read_manifests(&self.manifests, &self.node);
        let removed: Vec<Arc<Pod>> = self
            .statics
            .iter()
            .filter(|(uid, _)| !now.contains_key(*uid))
            .map(|(_, p)| p.clone())
            .collect();
        for pod in removed {
            if let Some(entry) = pod.metadata.uid.as_ref().and_then(|u| self.workers.get(u)) {
                let _ = entry.tx.send(None);
            }
            // A changed manifest keeps its name: only drop the mirror if no
            // new version of the same pod replaces it.
            if !now.values().any(|p| {
                p.metadata.name == pod.metadata.name
                    && p.metadata.namespace == pod.metadata.namespace
            }) {
                static_pods::delete_mirror(&self.ctx.client, &pod).await;
            }
        }
        for (uid, pod) in &now {
            if !self.statics.contains_key(uid)
                || self.workers.get(uid).is_none_or(|e| e.task.is_finished())
            {
                self.upsert(uid.clone(), pod.clone(), true);
            }
            static_pods::ensure_mirror(&self.ctx.client, pod, self.node_uid.as_deref()).await;
        }
        self.statics = now;
    }

    /// Removes containers and sandboxes of pods this node no longer has.
    async fn sweep_orphans(&mut self) {
        let known: HashSet<&String> = self.workers.keys().collect();
        match self
            .ctx
            .runtime
            .list_containers(&[(LABEL_MANAGED, "true")])
            .await
        {
            Ok(records) => {
                for r in records {
                    let uid = r.labels.get(LABEL_POD_UID).cloned().unwrap_or_default();
                    if !known.contains(&uid) {
                        tracing::info!(container = %r.id, pod_uid = %uid, "removing orphaned container");
                        let _ = super::lifecycle::remove(&self.ctx, &r.id).await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot list containers for orphan sweep"),
        }
        let settings = &self.ctx.sandbox;
        if let Ok(entries) = std::fs::read_dir(&settings.pods_dir) {
            for entry in entries.flatten() {
                let uid = entry.file_name().to_string_lossy().into_owned();
                if !known.contains(&uid) {
                    // Gone while kelp was down: its link and address too.
                    if let Some(network) = &self.ctx.network
                        && let Err(e) = network.detach(&uid).await
                    {
                        tracing::warn!(pod_uid = %uid, error = %e, "cannot remove an orphaned pod's network");
                    }
                    super::sandbox::remove(&uid, settings, None);
                }
            }
        }
        // Logs of pods deleted while kelp was down.
        if let Ok(entries) = std::fs::read_dir(&self.ctx.log_root) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if let Some(uid) = crate::kubelet::logs::pod_uid_of_log_dir(&name)
                    && !known.contains(&uid.to_string())
                {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        // Network namespaces go with their pod dirs (sandbox::remove): the
        // netns directory is shared with other kelps and `ip netns` users.
    }
}

async fn watch_ooms(ctx: Arc<NodeContext>, cancel: CancellationToken) {
    let events = ctx.runtime.events();
    futures::pin_mut!(events);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            e = events.next() => match e {
                Some(RuntimeEvent::Oom { container_id }) => {
                    tracing::info!(container = %container_id, "container OOM-killed");
                    ctx.oom.lock().insert(container_id);
                }
                Some(_) => {}
                None => return,
            }
        }
    }
}
