//! The node side of `kubectl logs`, `exec`, `attach` and `port-forward`:
//! what the kubelet's streaming server ([`super::server`]) calls.
//!
//! Containers are found through the handles pod workers publish, so a
//! request never waits on a worker. Exec runs through containerd with
//! FIFO stdio; attach follows the container's log from now (kelp gives
//! containers no stdin, see the closing notes); port-forward dials
//! 127.0.0.1:port from inside the pod's network namespace.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::containerd::ExecRequest;
use super::logs::{self, LogOptions};
use super::pods::{ContainerHandle, NodeContext};
use super::server::{
    BackendError, BoxedIo, ContainerTarget, ExecOutcome, ExecStreams, NodeBackend, PodTarget,
};

/// The kubelet's [`NodeBackend`].
pub struct KubeletBackend {
    ctx: Arc<NodeContext>,
}

impl KubeletBackend {
    /// A backend over the pods of `ctx`.
    pub fn new(ctx: Arc<NodeContext>) -> Self {
        Self { ctx }
    }

    fn handle(&self, target: &ContainerTarget) -> Result<ContainerHandle, BackendError> {
        let key = (
            target.pod.namespace.clone(),
            target.pod.name.clone(),
            target.container.clone(),
        );
        self.ctx
            .containers
            .lock()
            .get(&key)
            .cloned()
            .ok_or_else(|| {
                BackendError::NotFound(format!(
                    "container {:?} in pod {:?} is not running on this node",
                    target.container, target.pod.name
                ))
            })
    }
}

impl NodeBackend for KubeletBackend {
    fn container_logs(
        &self,
        target: ContainerTarget,
        query: String,
    ) -> BoxFuture<'static, Result<BoxStream<'static, std::io::Result<bytes::Bytes>>, BackendError>>
    {
        let found = self.handle(&target);
        let root = self.ctx.log_root.clone();
        Box::pin(async move {
            let handle = found?;
            let opts = LogOptions::from_query(&query)
                .map_err(|e| BackendError::BadRequest(e.to_string()))?;
            let attempt = if opts.previous {
                handle.attempt.checked_sub(1).ok_or_else(|| {
                    BackendError::BadRequest(format!(
                        "previous terminated container {:?} in pod {:?} not found",
                        target.container, target.pod.name
                    ))
                })?
            } else {
                handle.attempt
            };
            let path = log_file(&root, &target, &handle, attempt);
            let mut files = logs::rotated_files(&path);
            files.push(path);
            let running = if opts.previous {
                tokio::sync::watch::channel(false).1
            } else {
                handle.running.clone()
            };
            let stream: BoxStream<'static, std::io::Result<bytes::Bytes>> =
                Box::pin(logs::read_log(files, opts, running));
            Ok(stream)
        })
    }

    fn exec(
        &self,
        target: ContainerTarget,
        command: Vec<String>,
        streams: ExecStreams,
    ) -> BoxFuture<'static, Result<ExecOutcome, BackendError>> {
        let found = self.handle(&target);
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let handle = found?;
            if command.is_empty() {
                return Err(BackendError::BadRequest(
                    "you must specify at least one command for the container".into(),
                ));
            }
            let request = ExecRequest {
                container_id: handle.id.clone(),
                exec_id: format!("exec-{}", crate::client::names::random_suffix(12)),
                args: command,
                env: Vec::new(),
                cwd: "/".into(),
                uid: 0,
                gid: 0,
                tty: streams.tty,
                stdin: streams.stdin.is_some(),
                io_dir: ctx.io_dir.clone(),
            };
            let process = ctx
                .runtime
                .exec(request)
                .await
                .map_err(|e| BackendError::Internal(e.to_string()))?;
            pump(process, streams).await
        })
    }

    fn attach(
        &self,
        target: ContainerTarget,
        streams: ExecStreams,
    ) -> BoxFuture<'static, Result<ExecOutcome, BackendError>> {
        let found = self.handle(&target);
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let handle = found?;
            let path = log_file(&ctx.log_root, &target, &handle, handle.attempt);
            // Output: the container's log from now on, partial lines as they
            // come (a shell prompt has no newline).
            let opts = LogOptions {
                follow: true,
                since: Some(std::time::SystemTime::now()),
                attach_tty: Some(streams.tty),
                ..Default::default()
            };
            let stdin_task = attach_stdin(&ctx, &handle.id, streams.stdin, streams.resize);
            let mut log = Box::pin(logs::read_log(vec![path], opts, handle.running.clone()));
            if let Some(mut out) = streams.stdout {
                use futures::StreamExt;
                while let Some(Ok(chunk)) = log.next().await {
                    if out.write_all(&chunk).await.is_err() {
                        break;
                    }
                    let _ = out.flush().await;
                }
            } else {
                let mut running = handle.running.clone();
                let _ = running.wait_for(|r| !*r).await;
            }
            if let Some(t) = stdin_task {
                t.abort();
            }
            let code = ctx
                .runtime
                .task(&handle.id)
                .await
                .ok()
                .flatten()
                .map_or(0, |t| t.exit_status as i32);
            Ok(ExecOutcome::Exited(code))
        })
    }

    fn port_forward(
        &self,
        pod: PodTarget,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxedIo, BackendError>> {
        let netns = {
            let containers = self.ctx.containers.lock();
            containers
                .iter()
                .find(|((ns, name, _), _)| *ns == pod.namespace && *name == pod.name)
                .map(|(_, h)| h.netns.clone())
        };
        Box::pin(async move {
            let Some(netns) = netns else {
                return Err(BackendError::NotFound(format!(
                    "pod {:?} is not running on this node",
                    pod.name
                )));
            };
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let stream = match netns {
                Some(path) => super::netns::connect_tcp(&path, addr, Duration::from_secs(5)).await,
                None => tokio::net::TcpStream::connect(addr).await,
            }
            .map_err(|e| {
                BackendError::Unavailable(format!(
                    "error forwarding port {port} to pod {}: {e}",
                    pod.name
                ))
            })?;
            let io: BoxedIo = Box::new(stream);
            Ok(io)
        })
    }
}

/// Forwards an attach session's stdin (and terminal resizes) to the
/// container's main process; with `stdinOnce`, the end of this session's
/// input closes the container's stdin.
fn attach_stdin(
    ctx: &Arc<NodeContext>,
    id: &str,
    stdin: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>,
    resize: Option<tokio::sync::mpsc::Receiver<super::server::TerminalSize>>,
) -> Option<tokio::task::JoinHandle<()>> {
    if let Some(mut sizes) = resize {
        let (runtime, id) = (ctx.runtime.clone(), id.to_string());
        tokio::spawn(async move {
            while let Some(size) = sizes.recv().await {
                let _ = runtime
                    .resize_task_pty(&id, size.width.into(), size.height.into())
                    .await;
            }
        });
    }
    let mut from = stdin?;
    let target = ctx.stdins.lock().get(id).cloned()?;
    let (runtime, id) = (ctx.runtime.clone(), id.to_string());
    Some(tokio::spawn(async move {
        let mut buf = vec![0_u8; 8192];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if target
                .writer
                .lock()
                .await
                .write_all(&buf[..n])
                .await
                .is_err()
            {
                return;
            }
        }
        if target.once {
            // CloseIO makes the shim drop the container's stdin at once, even
            // with bytes still in the FIFO; the shim holds its own writer, so
            // there is no EOF to wait for. Give its copy loop a moment to
            // drain what this session wrote.
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let _ = runtime.close_task_stdin(&id).await;
        }
    }))
}

/// The CRI log file of one attempt of the target container.
fn log_file(
    root: &std::path::Path,
    target: &ContainerTarget,
    handle: &ContainerHandle,
    attempt: u32,
) -> std::path::PathBuf {
    logs::container_log_path(
        root,
        &target.pod.namespace,
        &target.pod.name,
        &handle.uid,
        &target.container,
        attempt,
    )
}

/// Copies between the client's streams and an exec process until it exits.
async fn pump(
    mut process: super::containerd::ExecProcess,
    streams: ExecStreams,
) -> Result<ExecOutcome, BackendError> {
    let ExecStreams {
        stdin,
        stdout,
        stderr,
        resize,
        ..
    } = streams;
    let to_process = process.stdin.take();
    let has_stdin = stdin.is_some() && to_process.is_some();
    // Ends when the client's stdin ends; the shim holds its own writer, so
    // EOF reaches the process only through close_stdin (Tasks.CloseIO).
    let copy_in = async move {
        if let (Some(mut from), Some(mut to)) = (stdin, to_process) {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        }
    };
    let (proc_out, proc_err) = (process.stdout.take(), process.stderr.take());
    let output = async move {
        tokio::join!(copy_out(proc_out, stdout), copy_out(proc_err, stderr));
    };
    tokio::pin!(copy_in, output);
    let mut resize = resize;
    let mut stdin_open = has_stdin;
    loop {
        tokio::select! {
            _ = &mut output => break,
            _ = &mut copy_in, if stdin_open => {
                stdin_open = false;
                let _ = process.close_stdin().await;
            }
            Some(size) = async { match resize.as_mut() { Some(r) => r.recv().await, None => std::future::pending().await } } => {
                let _ = process.resize(size.width as u32, size.height as u32).await;
            }
        }
    }
    let code = process
        .wait()
        .await
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    Ok(ExecOutcome::Exited(code as i32))
}

async fn copy_out<R, W>(from: Option<R>, to: Option<W>)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let Some(mut from) = from else { return };
    let mut buf = vec![0_u8; 32 * 1024];
    let mut to = to;
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(w) = to.as_mut() {
            if w.write_all(&buf[..n]).await.is_err() {
                to = None;
                continue;
            }
            let _ = w.flush().await;
        }
    }
    if let Some(mut w) = to {
        let _ = w.shutdown().await;
    }
}
