//! Containers and their tasks: create, start, signal, inspect, wait, remove, list.
//!
//! A kelp container is three containerd objects: a container record (spec, labels,
//! runtime `io.containerd.runc.v2`), an overlayfs snapshot keyed by the container id
//! (its writable rootfs) and a task (the running process, owned by a shim that outlives
//! containerd and kelp). They are created in that order and removed in the reverse order
//! — never the record before the task, or containerd loses track of a running shim.
//! Creation is all-or-nothing: any failure removes what was created, and leftovers of a
//! crash under the same id are removed first.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use containerd_client::services::v1::container::Runtime as ContainerRuntime;
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::PrepareSnapshotRequest;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest,
    DeleteTaskRequest, GetRequest, KillRequest, ListContainersRequest, StartRequest,
    UpdateContainerRequest, WaitRequest,
};
use containerd_client::tonic::{Code, Status};
use containerd_client::types::v1::Status as ProcStatus;
use prost_types::Any;

use super::client::{Lease, MAX_MESSAGE, Runtime, gone, to_system_time};
use super::error::{Result, RuntimeError};
use super::images::{SNAPSHOTTER, remove_snapshot};

/// The shim every container runs under.
const RUNTIME: &str = "io.containerd.runc.v2";
/// `Any` type of an OCI runtime spec.
const SPEC_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// Bound on `Tasks.Create`: it hangs forever when a stdio FIFO has no reader.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// What [`Runtime::create_container`] needs.
#[derive(Clone, Debug)]
pub struct CreateContainer {
    /// Container id (also the snapshot key); must be unique in the namespace.
    pub id: String,
    /// Image name as in [`super::ImageInfo::name`] (any pod-spec reference works).
    pub image: String,
    /// Full OCI runtime spec; `root.path` is forced to the bundle's `rootfs`.
    pub spec: serde_json::Value,
    /// Labels of the container record (kelp's pod uid, container name, …).
    pub labels: HashMap<String, String>,
    /// Where the task's stdio goes.
    pub stdio: Stdio,
}

/// Task stdio, passed verbatim to containerd's shim.
#[derive(Clone, Debug, Default)]
pub struct Stdio {
    /// FIFO the shim reads stdin from (make it with [`super::make_fifo`]).
    pub stdin: Option<PathBuf>,
    /// stdout URI: `binary:///logger?k=v`, `file:///abs`, or the path of an existing FIFO
    /// or regular file (appended to). A FIFO needs a reader before the task is created.
    pub stdout: String,
    /// stderr URI, same forms as stdout; must be empty with a terminal.
    pub stderr: String,
    /// Allocate a TTY; must equal the spec's `process.terminal`.
    pub terminal: bool,
}

/// State of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited; the exit status is kept until the task is deleted.
    Stopped,
    /// Paused (or pausing).
    Paused,
    /// containerd could not tell.
    Unknown,
}

/// A task as [`Runtime::task`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskInfo {
    /// Host pid of the init process (0 once deleted).
    pub pid: u32,
    /// Current state.
    pub status: TaskStatus,
    /// Exit status (meaningful when stopped).
    pub exit_status: u32,
    /// When it exited.
    pub exited_at: Option<SystemTime>,
}

/// How a task ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// Exit status (128 + signal for signalled processes).
    pub exit_status: u32,
    /// When it exited.
    pub exited_at: SystemTime,
}

/// A container record as [`Runtime::list_containers`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRecord {
    /// Container id.
    pub id: String,
    /// Image name it was created from.
    pub image: String,
    /// Its labels.
    pub labels: HashMap<String, String>,
    /// Creation time.
    pub created_at: Option<SystemTime>,
}

impl Runtime {
    pub(crate) fn tasks(&self) -> TasksClient<containerd_client::tonic::transport::Channel> {
        TasksClient::new(self.channel.clone())
    }

    /// Creates the container record, its rootfs snapshot and its task (not started).
    pub async fn create_container(&self, req: CreateContainer) -> Result<()> {
        let spec = checked_spec(&req)?;
        let image = self
            .image(&req.image)
            .await?
            .ok_or_else(|| RuntimeError::NotFound {
                kind: "image",
                name: req.image.clone(),
            })?;
        self.remove_container(&req.id).await?; // crash leftovers under the same id
        let lease = self.lease("container").await?;
        let result = self
            .create_inner(&req, &image.name, &image.top_chain_id, spec, &lease)
            .await;
        self.drop_lease(lease).await;
        if let Err(err) = result {
            if let Err(cleanup) = self.remove_container(&req.id).await {
                tracing::warn!(id = %req.id, %cleanup, "cleanup after failed create");
            }
            return Err(err);
        }
        Ok(())
    }

    /// runc options for our containers: runc keeps its state beside the
    /// socket (`<state>/runc`) instead of the shared `/run/containerd/runc`,
    /// so two containerds on one host (tests, a system containerd) never see
    /// each other's container ids.
    fn runc_options(&self) -> Any {
        use prost::Message;
        let root = self
            .socket
            .parent()
            .map(|d| d.join("runc").display().to_string())
            .unwrap_or_default();
        Any {
            type_url: "containerd.runc.v1.Options".into(),
            value: RuncOptions { root }.encode_to_vec(),
        }
    }

    async fn create_inner(
        &self,
        req: &CreateContainer,
        image: &str,
        parent: &str,
        spec: Vec<u8>,
        lease: &Lease,
    ) -> Result<()> {
        let container = Container {
            id: req.id.clone(),
            labels: req.labels.clone(),
            image: image.to_string(),
            runtime: Some(ContainerRuntime {
                name: RUNTIME.into(),
                options: Some(self.runc_options()),
            }),
            spec: Some(Any {
                type_url: SPEC_TYPE.into(),
                value: spec,
            }),
            snapshotter: SNAPSHOTTER.into(),
            snapshot_key: req.id.clone(),
            ..Default::default()
        };
        let create = CreateContainerRequest {
            container: Some(container),
        };
        ContainersClient::new(self.channel.clone())
            .create(self.leased(create, lease))
            .await
            .map_err(RuntimeError::rpc("Containers.Create"))?;
        let prepare = PrepareSnapshotRequest {
            snapshotter: SNAPSHOTTER.into(),
            key: req.id.clone(),
            parent: parent.to_string(),
            labels: HashMap::new(),
        };
        let mounts = SnapshotsClient::new(self.channel.clone())
            .prepare(self.leased(prepare, lease))
            .await
            .map_err(RuntimeError::rpc("Snapshots.Prepare"))?
            .into_inner()
            .mounts;
        let task = CreateTaskRequest {
            container_id: req.id.clone(),
            rootfs: mounts,
            stdin: req
                .stdio
                .stdin
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            stdout: req.stdio.stdout.clone(),
            stderr: req.stdio.stderr.clone(),
            terminal: req.stdio.terminal,
            ..Default::default()
        };
        let mut tasks = self.tasks();
        match tokio::time::timeout(CREATE_TIMEOUT, tasks.create(self.req(task))).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(s)) => Err(RuntimeError::rpc("Tasks.Create")(s)),
            Err(_) => Err(RuntimeError::rpc("Tasks.Create")(
                Status::deadline_exceeded(
                    "no answer in 30s (does every stdio FIFO have a reader?)",
                ),
            )),
        }
    }

    /// Starts a created task and returns its host pid.
    pub async fn start_task(&self, id: &str) -> Result<u32> {
        let req = self.req(StartRequest {
            container_id: id.into(),
            exec_id: String::new(),
        });
        match self.tasks().start(req).await {
            Ok(r) => Ok(r.into_inner().pid),
            Err(s) if gone(&s) => Err(RuntimeError::NotFound {
                kind: "task",
                name: id.into(),
            }),
            Err(s) => Err(RuntimeError::rpc("Tasks.Start")(s)),
        }
    }

    /// Closes the main process's stdin (`stdinOnce` after the first attach).
    pub async fn close_task_stdin(&self, id: &str) -> Result<()> {
        let req = containerd_client::services::v1::CloseIoRequest {
            container_id: id.into(),
            exec_id: String::new(),
            stdin: true,
        };
        self.tasks()
            .close_io(self.req(req))
            .await
            .map_err(RuntimeError::rpc("Tasks.CloseIO"))?;
        Ok(())
    }

    /// Resizes the main process's TTY.
    pub async fn resize_task_pty(&self, id: &str, width: u32, height: u32) -> Result<()> {
        let req = containerd_client::services::v1::ResizePtyRequest {
            container_id: id.into(),
            exec_id: String::new(),
            width,
            height,
        };
        self.tasks()
            .resize_pty(self.req(req))
            .await
            .map_err(RuntimeError::rpc("Tasks.ResizePty"))?;
        Ok(())
    }

    /// Signals the task (all its processes with `all`); a finished or missing task is Ok.
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let signal = u32::try_from(signal).map_err(|_| RuntimeError::InvalidRequest {
            id: id.into(),
            reason: format!("invalid signal {signal}"),
        })?;
        let req = self.req(KillRequest {
            container_id: id.into(),
            exec_id: String::new(),
            signal,
            all,
        });
        match self.tasks().kill(req).await {
            Ok(_) => Ok(()),
            Err(s) if finished(&s) => Ok(()),
            Err(s) => Err(RuntimeError::rpc("Tasks.Kill")(s)),
        }
    }

    /// The container's task, or None when it has none.
    pub async fn task(&self, id: &str) -> Result<Option<TaskInfo>> {
        let req = self.req(GetRequest {
            container_id: id.into(),
            exec_id: String::new(),
        });
        let process = match self.tasks().get(req).await {
            Ok(r) => r.into_inner().process,
            Err(s) if gone(&s) => return Ok(None),
            Err(s) => return Err(RuntimeError::rpc("Tasks.Get")(s)),
        };
        Ok(process.map(|p| TaskInfo {
            pid: p.pid,
            status: status_of(p.status),
            exit_status: p.exit_status,
            exited_at: to_system_time(p.exited_at.as_ref()),
        }))
    }

    /// Waits until the task exits (returns at once for a stopped task).
    ///
    /// # Cancel safety
    /// Dropping the future cancels only the wait, not the task.
    pub async fn wait(&self, id: &str) -> Result<ExitInfo> {
        self.wait_process(id, "").await
    }

    pub(crate) async fn wait_process(&self, id: &str, exec_id: &str) -> Result<ExitInfo> {
        let req = self.req(WaitRequest {
            container_id: id.into(),
            exec_id: exec_id.into(),
        });
        match self.tasks().wait(req).await {
            Ok(r) => {
                let r = r.into_inner();
                let exited_at =
                    to_system_time(r.exited_at.as_ref()).unwrap_or_else(SystemTime::now);
                Ok(ExitInfo {
                    exit_status: r.exit_status,
                    exited_at,
                })
            }
            Err(s) if gone(&s) => Err(RuntimeError::NotFound {
                kind: "task",
                name: id.into(),
            }),
            Err(s) => Err(RuntimeError::rpc("Tasks.Wait")(s)),
        }
    }

    /// Adds (or replaces) labels on a container record.
    pub async fn set_container_labels(
        &self,
        id: &str,
        labels: HashMap<String, String>,
    ) -> Result<()> {
        let paths = labels.keys().map(|k| format!("labels.{k}")).collect();
        let req = self.req(UpdateContainerRequest {
            container: Some(Container {
                id: id.into(),
                labels,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask { paths }),
        });
        ContainersClient::new(self.channel.clone())
            .update(req)
            .await
            .map_err(RuntimeError::rpc("Containers.Update"))?;
        Ok(())
    }

    /// Deletes the task of an exited container: its shim exits and its
    /// root filesystem is unmounted, while the container record (and its
    /// snapshot) stay. A task already gone is fine.
    pub async fn release_task(&self, id: &str) -> Result<()> {
        let req = self.req(DeleteTaskRequest {
            container_id: id.into(),
        });
        match self.tasks().delete(req).await {
            Ok(_) => Ok(()),
            Err(s) if gone(&s) => Ok(()),
            Err(s) => Err(RuntimeError::rpc("Tasks.Delete")(s)),
        }
    }

    /// Deletes the task (SIGKILLing it first if needed), the record and the snapshot.
    pub async fn remove_container(&self, id: &str) -> Result<()> {
        if let Some(task) = self.task(id).await? {
            if task.status != TaskStatus::Stopped {
                self.kill(id, 9, true).await?;
                match tokio::time::timeout(Duration::from_secs(10), self.wait(id)).await {
                    Ok(Ok(_)) | Ok(Err(RuntimeError::NotFound { .. })) => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_) => tracing::warn!(id, "task did not exit 10s after SIGKILL"),
                }
            }
            let req = self.req(DeleteTaskRequest {
                container_id: id.into(),
            });
            match self.tasks().delete(req).await {
                Ok(_) => {}
                Err(s) if gone(&s) => {}
                Err(s) => return Err(RuntimeError::rpc("Tasks.Delete")(s)),
            }
        }
        let req = self.req(DeleteContainerRequest { id: id.into() });
        match ContainersClient::new(self.channel.clone())
            .delete(req)
            .await
        {
            Ok(_) => {}
            Err(s) if gone(&s) => {}
            Err(s) => return Err(RuntimeError::rpc("Containers.Delete")(s)),
        }
        remove_snapshot(self, id).await;
        Ok(())
    }

    /// Containers whose labels match all `labels` pairs.
    pub async fn list_containers(&self, labels: &[(&str, &str)]) -> Result<Vec<ContainerRecord>> {
        let filters = if labels.is_empty() {
            vec![]
        } else {
            vec![label_filter(labels)]
        };
        let list = ContainersClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .list(self.req(ListContainersRequest { filters }))
            .await
            .map_err(RuntimeError::rpc("Containers.List"))?
            .into_inner()
            .containers;
        Ok(list
            .into_iter()
            .map(|c| ContainerRecord {
                created_at: to_system_time(c.created_at.as_ref()),
                id: c.id,
                image: c.image,
                labels: c.labels,
            })
            .collect())
    }
}

/// Validates the stdio/terminal pairing and pins `root.path`; returns the spec JSON.
fn checked_spec(req: &CreateContainer) -> Result<Vec<u8>> {
    let invalid = |reason: &str| RuntimeError::InvalidRequest {
        id: req.id.clone(),
        reason: reason.into(),
    };
    if req.id.is_empty() {
        return Err(invalid("empty container id"));
    }
    let mut spec = req.spec.clone();
    let Some(obj) = spec.as_object_mut() else {
        return Err(invalid("spec is not a JSON object"));
    };
    let terminal = obj
        .get("process")
        .and_then(|p| p.get("terminal"))
        .and_then(|t| t.as_bool());
    if terminal.unwrap_or(false) != req.stdio.terminal {
        return Err(invalid("stdio.terminal differs from process.terminal"));
    }
    if req.stdio.terminal && !req.stdio.stderr.is_empty() {
        return Err(invalid("stderr must be empty with a terminal"));
    }
    let root = obj.entry("root").or_insert_with(|| serde_json::json!({}));
    match root.as_object_mut() {
        Some(r) => r.insert("path".into(), "rootfs".into()),
        None => return Err(invalid("spec root is not an object")),
    };
    serde_json::to_vec(&spec).map_err(|e| invalid(&e.to_string()))
}

/// `labels."k"=="v",labels."k2"=="v2"` — keys quoted since they contain `/`.
pub(crate) fn label_filter(labels: &[(&str, &str)]) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    labels
        .iter()
        .map(|(k, v)| format!("labels.{}=={}", quote(k), quote(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// True for "no such task" and "process already finished".
pub(crate) fn finished(s: &Status) -> bool {
    gone(s) || (s.code() == Code::FailedPrecondition && s.message().contains("finished"))
}

fn status_of(raw: i32) -> TaskStatus {
    match ProcStatus::try_from(raw) {
        Ok(ProcStatus::Created) => TaskStatus::Created,
        Ok(ProcStatus::Running) => TaskStatus::Running,
        Ok(ProcStatus::Stopped) => TaskStatus::Stopped,
        Ok(ProcStatus::Paused | ProcStatus::Pausing) => TaskStatus::Paused,
        _ => TaskStatus::Unknown,
    }
}

/// The part of containerd's `runc.v1.Options` kelp sets (field numbers from
/// containerd's runtime/v2/runc/options/oci.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct RuncOptions {
    /// State root of runc.
    #[prost(string, tag = "7")]
    root: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(spec: serde_json::Value, terminal: bool, stderr: &str) -> CreateContainer {
        CreateContainer {
            id: "c1".into(),
            image: "busybox".into(),
            spec,
            labels: HashMap::new(),
            stdio: Stdio {
                stdin: None,
                stdout: "/x".into(),
                stderr: stderr.into(),
                terminal,
            },
        }
    }

    #[test]
    fn label_filters_quote_keys_and_values() {
        let f = label_filter(&[("kelp.io/pod-uid", "a-b"), ("n", "x\"y")]);
        assert_eq!(f, r#"labels."kelp.io/pod-uid"=="a-b",labels."n"=="x\"y""#);
    }

    #[test]
    fn spec_root_is_pinned_and_terminal_checked() {
        let spec = serde_json::json!({"process": {"terminal": false}, "root": {"path": "/abs", "readonly": true}});
        let bytes = checked_spec(&req(spec.clone(), false, "/e")).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        assert_eq!(v["root"]["path"], "rootfs");
        assert_eq!(v["root"]["readonly"], true);
        assert!(checked_spec(&req(spec, true, "")).is_err());
        let tty = serde_json::json!({"process": {"terminal": true}});
        assert!(checked_spec(&req(tty.clone(), true, "/e")).is_err());
        assert!(checked_spec(&req(tty, true, "")).is_ok());
        assert!(checked_spec(&req(serde_json::json!([]), false, "")).is_err());
    }

    #[test]
    fn finished_processes_count_as_gone() {
        assert!(finished(&Status::not_found("process already finished")));
        assert!(finished(&Status::failed_precondition(
            "process already finished"
        )));
        assert!(!finished(&Status::internal("boom")));
    }
}
