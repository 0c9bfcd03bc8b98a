//! Running extra processes in a running container (`kubectl exec`, exec probes).
//!
//! Stdio goes through FIFOs in `<io_dir>/<exec_id>/`. The shim opens the output FIFOs
//! for writing while it starts the process and blocks until a reader exists, so kelp
//! starts a blocking open of each read end *before* `Tasks.Exec` (a pending open counts
//! as a reader) and collects the opened files after `Tasks.Start`; a read end opened
//! that way sees EOF only when the shim is done, never before it connected. stdin is
//! opened read-write so the open never blocks; closing it does not reach the process
//! (the shim holds its own writer), so EOF is sent with `Tasks.CloseIO`.

use std::fs::File;
use std::path::{Path, PathBuf};

use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, ResizePtyRequest, StartRequest,
};
use prost_types::Any;
use tokio::net::unix::pipe;
use tokio::task::JoinHandle;

use super::client::Runtime;
use super::error::{Result, RuntimeError};
use super::fifo::make_fifo;

/// `Any` type of an OCI process spec.
const PROCESS_TYPE: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// What to run with [`Runtime::exec`].
#[derive(Clone, Debug)]
pub struct ExecRequest {
    /// The running container.
    pub container_id: String,
    /// Unique id of this exec within the container.
    pub exec_id: String,
    /// argv.
    pub args: Vec<String>,
    /// Environment (`KEY=value`).
    pub env: Vec<String>,
    /// Working directory (`/` when empty).
    pub cwd: String,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Allocate a TTY (stdout and stderr are then one stream).
    pub tty: bool,
    /// Attach stdin.
    pub stdin: bool,
    /// Directory for the per-exec FIFO directory.
    pub io_dir: PathBuf,
}

/// A started exec: its stdio and its exit.
#[derive(Debug)]
pub struct ExecProcess {
    rt: Runtime,
    container_id: String,
    exec_id: String,
    dir: PathBuf,
    /// Writes to the process's stdin (when requested); see [`ExecProcess::close_stdin`].
    pub stdin: Option<pipe::Sender>,
    /// The process's stdout (the TTY with `tty`).
    pub stdout: Option<pipe::Receiver>,
    /// The process's stderr (None with `tty`).
    pub stderr: Option<pipe::Receiver>,
}

impl ExecProcess {
    /// Closes stdin so the process sees EOF (`Tasks.CloseIO`).
    pub async fn close_stdin(&mut self) -> Result<()> {
        self.stdin = None;
        let req = CloseIoRequest {
            container_id: self.container_id.clone(),
            exec_id: self.exec_id.clone(),
            stdin: true,
        };
        self.rt
            .tasks()
            .close_io(self.rt.req(req))
            .await
            .map_err(RuntimeError::rpc("Tasks.CloseIO"))?;
        Ok(())
    }

    /// Resizes the TTY.
    pub async fn resize(&self, width: u32, height: u32) -> Result<()> {
        let req = ResizePtyRequest {
            container_id: self.container_id.clone(),
            exec_id: self.exec_id.clone(),
            width,
            height,
        };
        self.rt
            .tasks()
            .resize_pty(self.rt.req(req))
            .await
            .map_err(RuntimeError::rpc("Tasks.ResizePty"))?;
        Ok(())
    }

    /// Waits for the process to exit, frees the exec id and returns the exit code.
    ///
    /// # Cancel safety
    /// Cancelling leaves the exec process registered until the task is deleted.
    pub async fn wait(self) -> Result<u32> {
        let exit = self
            .rt
            .wait_process(&self.container_id, &self.exec_id)
            .await?;
        let req = DeleteProcessRequest {
            container_id: self.container_id.clone(),
            exec_id: self.exec_id.clone(),
        };
        if let Err(s) = self.rt.tasks().delete_process(self.rt.req(req)).await {
            tracing::warn!(exec = %self.exec_id, %s, "could not delete exec process");
        }
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
        Ok(exit.exit_status)
    }
}

/// A blocking open of a FIFO read end, started before the shim opens the write end.
struct PendingReader {
    path: PathBuf,
    open: JoinHandle<std::io::Result<File>>,
}

impl PendingReader {
    fn start(path: PathBuf) -> Self {
        let p = path.clone();
        PendingReader {
            path,
            open: tokio::task::spawn_blocking(move || File::open(p)),
        }
    }

    async fn finish(self) -> Result<pipe::Receiver> {
        let file = tokio::time::timeout(std::time::Duration::from_secs(10), self.open)
            .await
            .map_err(|_| {
                io_err(
                    "shim did not open",
                    &self.path,
                    std::io::ErrorKind::TimedOut.into(),
                )
            })?
            .map_err(|e| io_err("opening", &self.path, std::io::Error::other(e)))?
            .map_err(|e| io_err("opening", &self.path, e))?;
        pipe::Receiver::from_file(file).map_err(|e| io_err("opening", &self.path, e))
    }

    /// Unblocks the pending open by briefly becoming the writer.
    fn cancel(&self) {
        let _ = pipe::OpenOptions::new().open_sender(&self.path);
    }
}

fn io_err(op: &'static str, path: &Path, e: std::io::Error) -> RuntimeError {
    RuntimeError::Io {
        op,
        path: path.to_path_buf(),
        source: e,
    }
}

impl Runtime {
    /// Runs a process in a running container; see [`ExecProcess`].
    pub async fn exec(&self, req: ExecRequest) -> Result<ExecProcess> {
        let dir = req.io_dir.join(&req.exec_id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(RuntimeError::io("creating", &dir))?;
        let (stdin, stdout, stderr) = (dir.join("stdin"), dir.join("stdout"), dir.join("stderr"));
        let mut pending = Vec::new();
        let mut wanted = vec![stdout.clone()];
        if !req.tty {
            wanted.push(stderr.clone());
        }
        if req.stdin {
            wanted.push(stdin.clone());
        }
        for p in &wanted {
            make_fifo(p)?;
        }
        pending.push(PendingReader::start(stdout.clone()));
        if !req.tty {
            pending.push(PendingReader::start(stderr.clone()));
        }
        match self.exec_start(&req, &stdin, &stdout, &stderr).await {
            Ok(()) => {}
            Err(e) => {
                pending.iter().for_each(PendingReader::cancel);
                let _ = tokio::fs::remove_dir_all(&dir).await;
                return Err(e);
            }
        }
        let mut readers = Vec::new();
        for p in pending {
            readers.push(p.finish().await?);
        }
        let mut readers = readers.into_iter();
        let stdin = if req.stdin {
            let s = pipe::OpenOptions::new()
                .read_write(true)
                .open_sender(&stdin);
            Some(s.map_err(|e| io_err("opening", &stdin, e))?)
        } else {
            None
        };
        Ok(ExecProcess {
            rt: self.clone(),
            container_id: req.container_id,
            exec_id: req.exec_id,
            dir,
            stdin,
            stdout: readers.next(),
            stderr: readers.next(),
        })
    }

    /// The exec'd process inherits the container's own process spec (user,
    /// env, cwd, capabilities), as `kubectl exec` does upstream; `req.env`
    /// entries override or extend its env. Without a readable spec, the
    /// request's user/cwd are used.
    async fn exec_process_spec(&self, req: &ExecRequest) -> serde_json::Value {
        use containerd_client::services::v1::GetContainerRequest;
        use containerd_client::services::v1::containers_client::ContainersClient;
        let get = GetContainerRequest {
            id: req.container_id.clone(),
        };
        let spec: Option<serde_json::Value> = ContainersClient::new(self.channel.clone())
            .get(self.req(get))
            .await
            .ok()
            .and_then(|r| r.into_inner().container)
            .and_then(|c| c.spec)
            .and_then(|any| serde_json::from_slice(&any.value).ok());
        let mut process = spec
            .map(|s| s["process"].clone())
            .filter(|p| p.is_object())
            .unwrap_or_else(|| {
                serde_json::json!({
                    "user": {"uid": req.uid, "gid": req.gid},
                    "cwd": if req.cwd.is_empty() { "/" } else { req.cwd.as_str() },
                    "env": [],
                })
            });
        let mut env: Vec<String> = process["env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for extra in &req.env {
            let key = extra.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(extra.clone());
        }
        process["env"] = serde_json::json!(env);
        process["args"] = serde_json::json!(req.args);
        process["terminal"] = serde_json::json!(req.tty);
        if let Some(obj) = process.as_object_mut() {
            obj.remove("consoleSize");
        }
        process
    }

    async fn exec_start(
        &self,
        req: &ExecRequest,
        stdin: &Path,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<()> {
        let process = self.exec_process_spec(req).await;
        let exec = ExecProcessRequest {
            container_id: req.container_id.clone(),
            stdin: if req.stdin {
                stdin.display().to_string()
            } else {
                String::new()
            },
            stdout: stdout.display().to_string(),
            stderr: if req.tty {
                String::new()
            } else {
                stderr.display().to_string()
            },
            terminal: req.tty,
            spec: Some(Any {
                type_url: PROCESS_TYPE.into(),
                value: process.to_string().into_bytes(),
            }),
            exec_id: req.exec_id.clone(),
        };
        self.tasks()
            .exec(self.req(exec))
            .await
            .map_err(RuntimeError::rpc("Tasks.Exec"))?;
        let start = StartRequest {
            container_id: req.container_id.clone(),
            exec_id: req.exec_id.clone(),
        };
        if let Err(s) = self.tasks().start(self.req(start)).await {
            let del = DeleteProcessRequest {
                container_id: req.container_id.clone(),
                exec_id: req.exec_id.clone(),
            };
            let _ = self.tasks().delete_process(self.req(del)).await;
            return Err(RuntimeError::rpc("Tasks.Start")(s));
        }
        Ok(())
    }
}
