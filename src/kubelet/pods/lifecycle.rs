//! Starting and stopping one container attempt on containerd, with its
//! hooks.
//!
//! Start: resolve the image (honouring imagePullPolicy), the environment
//! and the OCI spec, create the container with stdout/stderr going to a
//! CRI log file through kelp's logger, start its task, run postStart.
//! Stop: preStop, SIGTERM, the grace period, SIGKILL. Errors carry
//! upstream's waiting reasons (ErrImageNeverPull, CreateContainerConfigError,
//! …) so `kubectl get pods` reads the same as on upstream.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use sha2::{Digest, Sha256};

use super::NodeContext;
use super::env::{self, EnvContext};
use super::oci_spec::{self, SpecInput};
use super::sandbox::{self, Sandbox};
use super::volumes::PreparedVolume;
use crate::kubelet::containerd::{CreateContainer, ExecRequest, Stdio};
use crate::kubelet::logs;

/// Label: pod uid.
pub const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
/// Label: pod name.
pub const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
/// Label: pod namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
/// Label: container name.
pub const LABEL_CONTAINER: &str = "io.kubernetes.container.name";
/// Label: restart number.
pub const LABEL_ATTEMPT: &str = "io.kelp.container.attempt";
/// Label: "init" or "app".
pub const LABEL_KIND: &str = "io.kelp.container.kind";
/// Label marking containers kelp manages.
pub const LABEL_MANAGED: &str = "io.kelp.managed";
/// How an exited attempt ended (exit code, reason, finish time in Unix
/// milliseconds), kept on the record once its task is deleted.
pub const LABEL_EXIT_CODE: &str = "io.kelp.exit.code";
/// See [`LABEL_EXIT_CODE`].
pub const LABEL_EXIT_REASON: &str = "io.kelp.exit.reason";
/// See [`LABEL_EXIT_CODE`].
pub const LABEL_FINISHED_AT: &str = "io.kelp.exit.finished-at-ms";

/// Rotated CRI log files are at most this big.
const LOG_MAX_SIZE: u64 = 10 << 20;
/// Files kept per container attempt (current + rotated).
const LOG_MAX_FILES: u32 = 5;

/// A start that failed, with upstream's waiting reason.
#[derive(Debug, Clone)]
pub struct StartError {
    /// ErrImagePull, ErrImageNeverPull, CreateContainerConfigError, CreateContainerError, RunContainerError.
    pub reason: &'static str,
    /// Human-readable detail.
    pub message: String,
}

/// A started attempt.
pub struct Started {
    /// containerd id.
    pub id: String,
    /// imageID for the status.
    pub image_id: String,
    /// When its task started.
    pub started_at: SystemTime,
}

/// The containerd id of an attempt: short, unique per pod/container/attempt,
/// and within containerd's 76-character limit.
pub fn container_id(uid: &str, name: &str, attempt: u32) -> String {
    let digest = Sha256::digest(format!("{uid}/{name}/{attempt}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let short: String = name.chars().take(40).collect();
    format!("{short}-{attempt}-{hex}")
}

/// `/var/log/pods/<ns>_<pod>_<uid>/<container>/<attempt>.log`.
pub fn log_path(ctx: &NodeContext, pod: &Pod, container: &str, attempt: u32) -> PathBuf {
    let m = &pod.metadata;
    logs::container_log_path(
        &ctx.log_root,
        m.namespace.as_deref().unwrap_or("default"),
        m.name.as_deref().unwrap_or(""),
        m.uid.as_deref().unwrap_or(""),
        container,
        attempt,
    )
}

/// Makes the image for `container` available as its imagePullPolicy asks,
/// pulling with the pod's pull Secrets, and reports it in events as the
/// kubelet does (`Pulling`, `Pulled`, `Failed`).
async fn resolve_image(
    ctx: &NodeContext,
    pod: &Pod,
    container: &Container,
) -> Result<crate::kubelet::containerd::ImageInfo, StartError> {
    use crate::kubelet::registry::{Availability, Ensured, PullPolicy};
    let image = container.image.clone().unwrap_or_default();
    let policy = PullPolicy::for_container(container.image_pull_policy.as_deref(), &image);
    let failed = |f: crate::kubelet::registry::PullFailure| {
        let (reason, message) = match f.reason {
            "InvalidImageName" => ("InspectFailed", f.message.clone()),
            "ErrImageNeverPull" => ("ErrImageNeverPull", f.message.clone()),
            _ => (
                "Failed",
                format!("Failed to pull image {image:?}: {}", f.message),
            ),
        };
        ctx.events.warning(pod, reason, message);
        StartError {
            reason: f.reason,
            message: f.message,
        }
    };
    let present = |info| {
        ctx.events.normal(
            pod,
            "Pulled",
            format!("Container image {image:?} already present on machine"),
        );
        Ok(info)
    };
    let reference = match ctx.images.check(&image, policy).await.map_err(failed)? {
        Availability::Present(info) => return present(info),
        Availability::Missing(reference) => reference,
    };
    ctx.events
        .normal(pod, "Pulling", format!("Pulling image {image:?}"));
    // Pull secrets are read only when a registry will be asked.
    let credentials = pull_credentials(ctx, pod).await;
    match ctx
        .images
        .pull_missing(&reference, policy, &credentials)
        .await
        .map_err(failed)?
    {
        Ensured::Present(info) => present(info),
        Ensured::Pulled {
            info,
            report,
            elapsed,
            waited,
        } => {
            ctx.events.normal(
                pod,
                "Pulled",
                format!(
                    "Successfully pulled image {image:?} in {} ({} including waiting). Image size: {} bytes.",
                    go_duration(elapsed),
                    go_duration(waited),
                    report.size
                ),
            );
            Ok(info)
        }
    }
}

/// The credentials of the pod's `imagePullSecrets` (the ServiceAccount's
/// were copied into the pod at admission). A missing or malformed Secret is
/// skipped with a warning event, as upstream's kubelet does.
async fn pull_credentials(
    ctx: &NodeContext,
    pod: &Pod,
) -> Vec<crate::kubelet::registry::credentials::RegistryCredential> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = Vec::new();
    let refs = pod
        .spec
        .as_ref()
        .and_then(|s| s.image_pull_secrets.clone())
        .unwrap_or_default();
    for r in refs {
        let name = r.name;
        if name.is_empty() {
            continue;
        }
        let Some(data) = ctx.objects.secret(ns, &name).await else {
            ctx.events.warning(
                pod,
                "FailedToRetrieveImagePullSecret",
                format!("Unable to retrieve some image pull secrets ({name}); attempting to pull the image may not succeed."),
            );
            continue;
        };
        match crate::kubelet::registry::credentials::from_secret_data(&data) {
            Ok(creds) => out.extend(creds),
            Err(e) => ctx.events.warning(
                pod,
                "FailedToRetrieveImagePullSecret",
                format!("image pull secret {name} cannot be used: {e}"),
            ),
        }
    }
    out
}

/// A pull duration as the kubelet prints it: Go's format, to the millisecond.
fn go_duration(d: Duration) -> String {
    crate::client::timestamps::go_duration(
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 1_000_000) * 1_000_000,
    )
}

/// Creates and starts attempt `attempt` of `container`.
#[allow(clippy::too_many_arguments)]
pub async fn start(
    ctx: &NodeContext,
    pod: &Pod,
    sandbox: &Sandbox,
    volumes: &BTreeMap<String, PreparedVolume>,
    container: &Container,
    attempt: u32,
    init: bool,
    env_ctx: &EnvContext<'_>,
) -> Result<Started, StartError> {
    let image = resolve_image(ctx, pod, container).await?;
    let config_error = |message: String| StartError {
        reason: "CreateContainerConfigError",
        message,
    };
    let env = env::resolve(env_ctx, container, &ctx.objects)
        .await
        .map_err(|e| config_error(e.to_string()))?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let id = container_id(&uid, &container.name, attempt);
    let log = log_path(ctx, pod, &container.name, attempt);
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| config_error(format!("cannot create {}: {e}", dir.display())))?;
    }
    let termination_log = sandbox
        .dir
        .join("containers")
        .join(&container.name)
        .join(format!("{attempt}.termination-log"));
    if let Some(dir) = termination_log.parent() {
        std::fs::create_dir_all(dir).map_err(|e| config_error(e.to_string()))?;
    }
    std::fs::write(&termination_log, b"").map_err(|e| config_error(e.to_string()))?;
    let spec = oci_spec::build(&SpecInput {
        pod,
        container,
        image: &image.config,
        env: &env,
        volumes,
        etc_dir: &sandbox.dir.join("etc"),
        termination_log: Some(&termination_log),
        netns: sandbox.netns.as_deref(),
        cgroup_path: sandbox::container_cgroup(sandbox, &id),
        hostname: &sandbox.hostname,
    })
    .map_err(|e| config_error(e.to_string()))?;
    let m = &pod.metadata;
    let labels: HashMap<String, String> = [
        (LABEL_POD_UID, uid.clone()),
        (LABEL_POD_NAME, m.name.clone().unwrap_or_default()),
        (LABEL_POD_NAMESPACE, m.namespace.clone().unwrap_or_default()),
        (LABEL_CONTAINER, container.name.clone()),
        (LABEL_ATTEMPT, attempt.to_string()),
        (LABEL_KIND, if init { "init" } else { "app" }.to_string()),
        (LABEL_MANAGED, "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let interactive = container.stdin.unwrap_or(false);
    let stdin = match interactive {
        true => Some(
            super::ContainerStdin::open(&ctx.io_dir, &id, container.stdin_once.unwrap_or(false))
                .map_err(|e| config_error(format!("cannot create the stdin pipe: {e}")))?,
        ),
        false => None,
    };
    let tty = container.tty.unwrap_or(false);
    // containerd's binary:// logger gives a container no stdin, so
    // containers with stdin get FIFOs that kelp itself drains into the log.
    let (stdout, stderr) = match interactive {
        true => output_fifos(ctx, &id, &log, tty)
            .map_err(|e| config_error(format!("cannot create output pipes: {e}")))?,
        false => {
            let uri = logs::logger_uri(&ctx.logger_exe, &log, LOG_MAX_SIZE, LOG_MAX_FILES, tty);
            (uri.clone(), if tty { String::new() } else { uri })
        }
    };
    let request = CreateContainer {
        id: id.clone(),
        image: image.name.clone(),
        spec,
        labels,
        stdio: Stdio {
            stdin: stdin.as_ref().map(|(path, _)| path.clone()),
            stdout,
            stderr,
            terminal: tty,
        },
    };
    ctx.runtime.create_container(request).await.map_err(|e| {
        if interactive {
            release_fifos(&ctx.io_dir.join(&id));
        }
        StartError {
            reason: "CreateContainerError",
            message: e.to_string(),
        }
    })?;
    ctx.runtime.start_task(&id).await.map_err(|e| StartError {
        reason: "RunContainerError",
        message: e.to_string(),
    })?;
    if let Some((_, stdin)) = stdin {
        ctx.stdins
            .lock()
            .insert(id.clone(), std::sync::Arc::new(stdin));
    }
    Ok(Started {
        id,
        image_id: image_id(&image),
        started_at: SystemTime::now(),
    })
}

/// Removes a container attempt (task, record, snapshot) and kelp's own
/// state for it (stdin FIFO).
pub async fn remove(
    ctx: &NodeContext,
    id: &str,
) -> Result<(), crate::kubelet::containerd::RuntimeError> {
    ctx.stdins.lock().remove(id);
    let _ = std::fs::remove_dir_all(ctx.io_dir.join(id));
    ctx.runtime.remove_container(id).await
}

/// Creates stdout (and stderr, without a TTY) FIFOs for container `id`
/// and a thread that copies them into the CRI log at `log`; returns their
/// paths for containerd. The thread opens each FIFO with a blocking open,
/// which completes when the shim opens its end (the shim blocks until a
/// reader exists), and ends at EOF, when the container's output closes.
pub fn output_fifos(
    ctx: &NodeContext,
    id: &str,
    log: &std::path::Path,
    tty: bool,
) -> std::io::Result<(String, String)> {
    let dir = ctx.io_dir.join(id);
    std::fs::create_dir_all(&dir)?;
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let fifo = |p: &std::path::Path| {
        crate::kubelet::containerd::make_fifo(p).map_err(|e| std::io::Error::other(e.to_string()))
    };
    fifo(&out)?;
    if !tty {
        fifo(&err)?;
    }
    spawn_fifo_logger(out.clone(), (!tty).then(|| err.clone()), log.to_path_buf());
    Ok((
        out.display().to_string(),
        if tty {
            String::new()
        } else {
            err.display().to_string()
        },
    ))
}

/// Unblocks the log copier of a container that was never created: opening
/// the FIFOs read-write completes its pending opens, and closing them again
/// gives it EOF.
fn release_fifos(dir: &std::path::Path) {
    for name in ["stdout", "stderr"] {
        let _ = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join(name));
    }
}

fn spawn_fifo_logger(out: PathBuf, err: Option<PathBuf>, log: PathBuf) {
    std::thread::spawn(move || {
        // Two opens on two threads: the shim may open its ends in any order.
        let open = |p: PathBuf| std::thread::spawn(move || std::fs::File::open(p));
        let (out, err) = (open(out), err.map(open));
        let out = out.join().ok().and_then(Result::ok);
        let err = err.and_then(|e| e.join().ok()).and_then(Result::ok);
        let config = logs::logger::LoggerConfig {
            path: log,
            max_size: LOG_MAX_SIZE,
            max_files: LOG_MAX_FILES,
            interactive: true,
        };
        if let Err(e) = logs::logger::serve(config, out, err, || {}) {
            tracing::warn!(error = %e, "container log copier failed");
        }
    });
}

/// Reopens the stdin and output FIFOs of a running container with stdin
/// adopted after a kelp restart (the shim kept their other ends).
pub fn reopen_stdin(ctx: &NodeContext, container: &Container, id: &str, log: &std::path::Path) {
    if !container.stdin.unwrap_or(false) {
        return;
    }
    let dir = ctx.io_dir.join(id);
    let tty = container.tty.unwrap_or(false);
    spawn_fifo_logger(
        dir.join("stdout"),
        (!tty).then(|| dir.join("stderr")),
        log.to_path_buf(),
    );
    match super::ContainerStdin::open(&ctx.io_dir, id, container.stdin_once.unwrap_or(false)) {
        Ok((_, stdin)) => {
            ctx.stdins
                .lock()
                .insert(id.to_string(), std::sync::Arc::new(stdin));
        }
        Err(e) => tracing::warn!(container = id, error = %e, "cannot reopen container stdin"),
    }
}

/// The `imageID` a container status reports: `<repo>@<manifest digest>`.
pub fn image_id(image: &crate::kubelet::containerd::ImageInfo) -> String {
    let repo = image
        .name
        .rsplit_once(':')
        .filter(|(r, t)| !t.contains('/') && !r.is_empty())
        .map_or(image.name.as_str(), |(r, _)| r);
    format!("{repo}@{}", image.digest)
}

/// Runs a command in a container, capturing output, bounded by `timeout`.
pub async fn exec_capture(
    ctx: &NodeContext,
    container_id: &str,
    command: Vec<String>,
    timeout: Duration,
) -> Result<(i32, Vec<u8>), String> {
    use tokio::io::AsyncReadExt;
    let exec_id = format!("probe-{}", crate::client::names::random_suffix(10));
    let req = ExecRequest {
        container_id: container_id.to_string(),
        exec_id,
        args: command,
        env: Vec::new(),
        cwd: "/".into(),
        uid: 0,
        gid: 0,
        tty: false,
        stdin: false,
        io_dir: ctx.io_dir.clone(),
    };
    let run = async {
        let mut process = ctx.runtime.exec(req).await.map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (mut so, mut se) = (process.stdout.take(), process.stderr.take());
        let read_out = async {
            if let Some(s) = so.as_mut() {
                let _ = s.read_to_end(&mut out).await;
            }
        };
        let read_err = async {
            if let Some(s) = se.as_mut() {
                let _ = s.read_to_end(&mut err).await;
            }
        };
        tokio::join!(read_out, read_err);
        let code = process.wait().await.map_err(|e| e.to_string())?;
        out.extend_from_slice(&err);
        Ok::<_, String>((code as i32, out))
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("command timed out after {}s", timeout.as_secs())),
    }
}

/// Runs a lifecycle hook (exec, httpGet, tcpSocket or sleep).
pub async fn run_hook(
    ctx: &NodeContext,
    container_id: &str,
    handler: &LifecycleHandler,
    target: &crate::kubelet::probes::ProbeTarget,
    timeout: Duration,
) -> Result<(), String> {
    if let Some(sleep) = &handler.sleep {
        tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64).min(timeout)).await;
        return Ok(());
    }
    if let Some(exec) = &handler.exec {
        let cmd = exec.command.clone().unwrap_or_default();
        let (code, out) = exec_capture(ctx, container_id, cmd, timeout).await?;
        return if code == 0 {
            Ok(())
        } else {
            Err(format!(
                "command exited with {code}: {}",
                String::from_utf8_lossy(&out)
            ))
        };
    }
    let probe = k8s_openapi::api::core::v1::Probe {
        http_get: handler.http_get.clone(),
        tcp_socket: handler.tcp_socket.clone(),
        timeout_seconds: Some(timeout.as_secs().max(1) as i32),
        ..Default::default()
    };
    match crate::kubelet::probes::probe_once(&probe, target).await {
        crate::kubelet::probes::ProbeResult::Success => Ok(()),
        crate::kubelet::probes::ProbeResult::Failure(m) => Err(m),
    }
}

/// Stops a running attempt: SIGTERM, up to `grace`, then SIGKILL; waits
/// for the exit. preStop must already have run.
pub async fn stop(ctx: &NodeContext, id: &str, grace: Duration) {
    if let Err(e) = ctx.runtime.kill(id, 15, false).await {
        tracing::debug!(container = id, error = %e, "SIGTERM failed");
    }
    if tokio::time::timeout(grace, ctx.runtime.wait(id))
        .await
        .is_err()
    {
        tracing::debug!(container = id, "grace period over; SIGKILL");
        if let Err(e) = ctx.runtime.kill(id, 9, true).await {
            tracing::warn!(container = id, error = %e, "SIGKILL failed");
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), ctx.runtime.wait(id)).await;
    }
}

/// Whether the kernel OOM-killed the container (cgroup v1 `oom_kill`
/// counter or v2 `memory.events`), read before the task is deleted.
pub fn oom_killed(cgroup_path: &str) -> bool {
    let rel = cgroup_path.trim_start_matches('/');
    let v1 = std::fs::read_to_string(format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"));
    let v2 = std::fs::read_to_string(format!("/sys/fs/cgroup/{rel}/memory.events"));
    [v1, v2].into_iter().flatten().any(|text| {
        text.lines().any(|l| {
            let mut w = l.split_whitespace();
            w.next() == Some("oom_kill")
                && w.next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0) > 0
        })
    })
}

/// The termination message of an attempt: its termination-log file, or
/// with `FallbackToLogsOnError` and a failure, the last log lines.
pub fn termination_message(
    ctx: &NodeContext,
    pod: &Pod,
    sandbox_dir: &std::path::Path,
    container: &Container,
    attempt: u32,
    exit_code: i32,
) -> String {
    let file = sandbox_dir
        .join("containers")
        .join(&container.name)
        .join(format!("{attempt}.termination-log"));
    let mut msg = std::fs::read(&file)
        .map(|b| String::from_utf8_lossy(&b[..b.len().min(4096)]).into_owned())
        .unwrap_or_default();
    if msg.is_empty()
        && exit_code != 0
        && container.termination_message_policy.as_deref() == Some("FallbackToLogsOnError")
    {
        let log = std::fs::read_to_string(log_path(ctx, pod, &container.name, attempt))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().rev().take(80).collect();
        msg = lines
            .into_iter()
            .rev()
            .map(|l| l.splitn(4, ' ').nth(3).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        if msg.len() > 2048 {
            let mut start = msg.len() - 2048;
            while !msg.is_char_boundary(start) {
                start += 1;
            }
            msg = msg[start..].to_string();
        }
    }
    msg
}

/// Records how attempt `id` ended on its container record, then deletes
/// its task: the shim exits and the root filesystem is unmounted at once,
/// as upstream's CRI does, while logs and the record stay for `kubectl
/// logs --previous` and for a kelp restart.
pub async fn release_exited(
    ctx: &NodeContext,
    id: &str,
    exit_code: i32,
    reason: &str,
    at: SystemTime,
) {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let labels = HashMap::from([
        (LABEL_EXIT_CODE.to_string(), exit_code.to_string()),
        (LABEL_EXIT_REASON.to_string(), reason.to_string()),
        (LABEL_FINISHED_AT.to_string(), ms.to_string()),
    ]);
    if let Err(e) = ctx.runtime.set_container_labels(id, labels).await {
        tracing::warn!(container = id, error = %e, "cannot record the exit; keeping the task");
        return;
    }
    if let Err(e) = ctx.runtime.release_task(id).await {
        tracing::warn!(container = id, error = %e, "cannot delete the exited task");
    }
}

/// How an attempt ended, as [`release_exited`] recorded it: (exit code,
/// reason, finish time).
pub fn recorded_exit(labels: &HashMap<String, String>) -> Option<(i32, String, SystemTime)> {
    let code = labels.get(LABEL_EXIT_CODE)?.parse().ok()?;
    let reason = labels.get(LABEL_EXIT_REASON).cloned().unwrap_or_default();
    let ms: u64 = labels.get(LABEL_FINISHED_AT)?.parse().ok()?;
    Some((
        code,
        reason,
        SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_unique_and_short() {
        let long = "x".repeat(63);
        let a = container_id("11111111-2222-3333-4444-555555555555", &long, 0);
        let b = container_id("11111111-2222-3333-4444-555555555555", &long, 1);
        assert_ne!(a, b);
        assert!(a.len() <= 76, "{a}");
        assert!(a.starts_with("xxxx"));
    }
}
