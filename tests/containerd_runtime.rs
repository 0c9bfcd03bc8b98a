//! End-to-end tests of the containerd runtime layer against a real containerd + runc.
//!
//! Each test starts its own containerd (root, state and socket in a tempdir; namespace
//! `k8s.io`), imports a busybox image built from the host's static busybox, and cleans
//! up containers, containerd and leftover mounts even when it fails. They need root and
//! fail (never skip) when containerd or runc is missing.

#![allow(missing_docs)]

mod common;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::busybox_image::{ImageFormat, write_busybox_image};
use futures::{FutureExt, Stream, StreamExt};
use kelp::kubelet::containerd::{
    ContainerdConfig, CreateContainer, ExecRequest, Runtime, RuntimeError, RuntimeEvent, Stdio,
    SupervisedContainerd, TaskStatus,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "k8s.io";
const IMAGE: &str = "docker.io/library/busybox:latest";

/// A private containerd in a tempdir, torn down on drop.
struct Harness {
    dir: tempfile::TempDir,
    cfg: ContainerdConfig,
    containerd: Option<SupervisedContainerd>,
    rt: Runtime,
}

impl Harness {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = ContainerdConfig {
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            socket: dir.path().join("state/containerd.sock"),
        };
        let containerd = SupervisedContainerd::start(cfg.clone())
            .await
            .expect("containerd starts");
        let rt = Runtime::connect(containerd.socket(), NS)
            .await
            .expect("connect");
        Harness {
            dir,
            cfg,
            containerd: Some(containerd),
            rt,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Imports the busybox docker-archive as `IMAGE`.
    async fn import_busybox(&self) {
        let archive = self.path("busybox.tar");
        write_busybox_image(&archive, IMAGE, ImageFormat::DockerArchive).expect("write image");
        let names = self.rt.import_archive(&archive).await.expect("import");
        assert_eq!(names, vec![IMAGE.to_string()]);
    }

    /// Creates (not starts) a container running `args`, stdout to `<id>.log`
    /// and stderr to `<id>.err.log`.
    async fn create(&self, id: &str, args: &[&str], memory: Option<u64>) -> PathBuf {
        // Two files: the shim opens each path for itself without
        // O_APPEND, so one shared file lets the streams overwrite each other.
        let log = self.path(&format!("{id}.log"));
        let err = self.path(&format!("{id}.err.log"));
        std::fs::write(&log, b"").expect("log file");
        std::fs::write(&err, b"").expect("log file");
        let stdio = Stdio {
            stdin: None,
            stdout: log.display().to_string(),
            stderr: err.display().to_string(),
            terminal: false,
        };
        let labels = HashMap::from([("kelp.io/test".to_string(), "yes".to_string())]);
        let req = CreateContainer {
            id: id.into(),
            image: "busybox".into(),
            spec: spec(id, args, memory),
            labels,
            stdio,
        };
        self.rt
            .create_container(req)
            .await
            .expect("create container");
        log
    }

    /// Removes every container, stops containerd, unmounts leftovers.
    async fn cleanup(mut self) {
        if let Ok(list) = self.rt.list_containers(&[]).await {
            for c in list {
                if let Err(e) = self.rt.remove_container(&c.id).await {
                    eprintln!("cleanup: removing {}: {e}", c.id);
                }
            }
        }
        if let Some(c) = self.containerd.take() {
            c.shutdown().await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        drop(self.containerd.take()); // SIGKILLs containerd if still running
        kelp::agent::reset::unmount_under(self.dir.path());
    }
}

/// Runs `body` with a fresh harness, always cleaning up (also when `body` panics).
async fn with_harness(body: impl AsyncFnOnce(&Harness)) {
    let h = Harness::start().await;
    let result = AssertUnwindSafe(body(&h)).catch_unwind().await;
    h.cleanup().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The minimal runc spec from the containerd notes.
fn spec(id: &str, args: &[&str], memory: Option<u64>) -> serde_json::Value {
    let caps: Vec<String> = [
        "CHOWN",
        "DAC_OVERRIDE",
        "FSETID",
        "FOWNER",
        "MKNOD",
        "NET_RAW",
        "SETGID",
        "SETUID",
        "SETFCAP",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "KILL",
        "AUDIT_WRITE",
    ]
    .iter()
    .map(|c| format!("CAP_{c}"))
    .collect();
    let mut resources = serde_json::json!({"devices": [{"allow": false, "access": "rwm"}], "pids": {"limit": 1024}});
    if let Some(limit) = memory {
        resources["memory"] = serde_json::json!({"limit": limit, "swap": limit});
    }
    serde_json::json!({
        "ociVersion": "1.0.2-dev",
        "hostname": format!("host-{id}"),
        "process": {
            "terminal": false, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/bin"], "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true,
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
        },
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "cgroupsPath": format!("/kelp-test/{id}"),
            "resources": resources,
            "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// Next event matching `pred`, within `secs`.
async fn next_event(
    events: &mut (impl Stream<Item = RuntimeEvent> + Unpin),
    secs: u64,
    pred: impl Fn(&RuntimeEvent) -> bool,
) -> RuntimeEvent {
    let fut = async {
        while let Some(ev) = events.next().await {
            if pred(&ev) {
                return ev;
            }
        }
        panic!("event stream ended");
    };
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("event in time")
}

fn exit_of(id: &'static str) -> impl Fn(&RuntimeEvent) -> bool {
    move |e| matches!(e, RuntimeEvent::Exit { container_id, exec_id, .. } if container_id == id && exec_id == id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imports_docker_and_oci_archives_plain_gzip_and_zstd() {
    with_harness(async |h| {
        let mut digests = HashMap::new();
        for (format, fname) in [
            (ImageFormat::DockerArchive, "docker"),
            (ImageFormat::OciLayout, "oci"),
        ] {
            for enc in ["tar", "tar.gz", "tar.zst"] {
                let name = format!(
                    "docker.io/library/busybox:{fname}-{}",
                    enc.replace('.', "-")
                );
                let plain = h.path(&format!("{fname}.plain.tar"));
                write_busybox_image(&plain, &name, format).expect("write image");
                // Names deliberately lie about compression: detection is by magic bytes.
                let archive = h.path(&format!("{fname}-{enc}.img"));
                let bytes = std::fs::read(&plain).expect("read");
                let bytes = match enc {
                    "tar.gz" => {
                        let mut e =
                            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                        std::io::Write::write_all(&mut e, &bytes).expect("gzip");
                        e.finish().expect("gzip")
                    }
                    "tar.zst" => ruzstd::encoding::compress_to_vec(
                        bytes.as_slice(),
                        ruzstd::encoding::CompressionLevel::Fastest,
                    ),
                    _ => bytes,
                };
                std::fs::write(&archive, bytes).expect("write");
                let t = Instant::now();
                let names = h.rt.import_archive(&archive).await.expect("import");
                eprintln!("import {fname} {enc}: {:?}", t.elapsed());
                assert_eq!(names, vec![name.clone()]);
                let info =
                    h.rt.image(&name)
                        .await
                        .expect("lookup")
                        .expect("image present");
                assert_eq!(info.config.cmd, vec!["sh".to_string()]);
                assert_eq!(info.config.exposed_ports, vec!["80/tcp".to_string()]);
                assert!(
                    h.rt.snapshot_exists(&info.top_chain_id)
                        .await
                        .expect("stat"),
                    "unpacked"
                );
                digests.insert(fname, info);
            }
        }
        // Same layer in both formats: same chain id, so the second format unpacked nothing.
        assert_eq!(digests["docker"].top_chain_id, digests["oci"].top_chain_id);
        // Re-import is idempotent and fast.
        let again = h.path("docker-tar.img");
        let t = Instant::now();
        assert_eq!(
            h.rt.import_archive(&again).await.expect("re-import").len(),
            1
        );
        eprintln!("re-import: {:?}", t.elapsed());
        assert!(t.elapsed() < Duration::from_secs(5));
        // Lookups by short name, digest and image id.
        let latest = h.path("latest.tar");
        write_busybox_image(&latest, "busybox", ImageFormat::DockerArchive).expect("write");
        assert_eq!(
            h.rt.import_archive(&latest).await.expect("import"),
            vec![IMAGE.to_string()]
        );
        let info =
            h.rt.image("busybox")
                .await
                .expect("lookup")
                .expect("present");
        assert_eq!(info.name, IMAGE);
        let by_digest = format!("busybox@{}", info.digest);
        assert_eq!(
            h.rt.image(&by_digest)
                .await
                .expect("lookup")
                .map(|i| i.digest),
            Some(info.digest.clone())
        );
        let by_id = h.rt.image(&info.config_digest).await.expect("lookup");
        assert_eq!(
            by_id.map(|i| i.config_digest),
            Some(info.config_digest.clone())
        );
        assert!(h.rt.image("nope:1").await.expect("lookup").is_none());
        assert!(h.rt.list_images().await.expect("list").len() >= 7);
        // A broken archive names the file.
        let junk = h.path("junk.tar");
        std::fs::write(&junk, b"this is not a tar archive at all").expect("write");
        let err = h.rt.import_archive(&junk).await.expect_err("junk rejected");
        assert!(
            matches!(err, RuntimeError::Image { .. }) && err.to_string().contains("junk.tar"),
            "{err}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_container_and_reports_its_exit_via_wait_and_events() {
    with_harness(async |h| {
        h.import_busybox().await;
        let mut events = Box::pin(h.rt.events());
        tokio::time::sleep(Duration::from_millis(300)).await; // let the subscription land
        let t = Instant::now();
        let log = h
            .create(
                "hello",
                &["sh", "-c", "echo hello; echo oops >&2; exit 3"],
                None,
            )
            .await;
        let created = t.elapsed();
        let pid = h.rt.start_task("hello").await.expect("start");
        eprintln!("create: {created:?}, create+start: {:?}", t.elapsed());
        assert!(pid > 0);
        let exit = h.rt.wait("hello").await.expect("wait");
        assert_eq!(exit.exit_status, 3);
        match next_event(&mut events, 10, exit_of("hello")).await {
            RuntimeEvent::Exit {
                exit_status,
                pid: p,
                ..
            } => assert_eq!((exit_status, p), (3, pid)),
            other => panic!("unexpected {other:?}"),
        }
        let task = h.rt.task("hello").await.expect("task").expect("has task");
        assert_eq!((task.status, task.exit_status), (TaskStatus::Stopped, 3));
        // The shim may still be copying the last bytes when the exit is reported.
        let mut out = String::new();
        for _ in 0..50 {
            out = std::fs::read_to_string(&log).expect("log")
                + &std::fs::read_to_string(log.with_extension("err.log")).expect("log");
            if out.contains("hello") && out.contains("oops") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(out.contains("hello") && out.contains("oops"), "{out:?}");
        let listed =
            h.rt.list_containers(&[("kelp.io/test", "yes")])
                .await
                .expect("list");
        assert_eq!(
            listed.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            vec!["hello"]
        );
        assert_eq!(listed[0].image, IMAGE);
        assert!(
            h.rt.list_containers(&[("kelp.io/test", "no")])
                .await
                .expect("list")
                .is_empty()
        );
        // Re-creating under the same id replaces the leftovers.
        h.create("hello", &["true"], None).await;
        h.rt.remove_container("hello").await.expect("remove");
        assert!(h.rt.task("hello").await.expect("task").is_none());
        assert!(
            !h.rt.snapshot_exists("hello").await.expect("stat"),
            "snapshot removed"
        );
        assert!(h.rt.list_containers(&[]).await.expect("list").is_empty());
        h.rt.remove_container("hello")
            .await
            .expect("removing twice is fine");
        let missing = CreateContainer {
            id: "x".into(),
            image: "nope:1".into(),
            spec: spec("x", &["true"], None),
            labels: HashMap::new(),
            stdio: Stdio {
                stdout: log.display().to_string(),
                ..Default::default()
            },
        };
        assert!(
            h.rt.create_container(missing)
                .await
                .expect_err("no image")
                .is_not_found()
        );
    })
    .await;
}

async fn read_all(r: &mut Option<tokio::net::unix::pipe::Receiver>) -> String {
    let mut s = String::new();
    if let Some(r) = r.as_mut() {
        tokio::time::timeout(Duration::from_secs(10), r.read_to_string(&mut s))
            .await
            .expect("output in time")
            .expect("read");
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_commands_and_reports_exit_codes() {
    with_harness(async |h| {
        h.import_busybox().await;
        h.create("box", &["sleep", "1000"], None).await;
        h.rt.start_task("box").await.expect("start");
        let exec = |id: &str, args: &[&str], stdin: bool| ExecRequest {
            container_id: "box".into(),
            exec_id: id.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            tty: false,
            stdin,
            io_dir: h.path("io"),
        };
        let mut p =
            h.rt.exec(exec("e1", &["cat", "/etc/passwd"], false))
                .await
                .expect("exec");
        assert!(read_all(&mut p.stdout).await.starts_with("root:x:0:0"));
        assert_eq!(p.wait().await.expect("wait"), 0);

        let mut p =
            h.rt.exec(exec(
                "e2",
                &["sh", "-c", "hostname; echo err >&2; exit 7"],
                false,
            ))
            .await
            .expect("exec");
        assert_eq!(read_all(&mut p.stdout).await, "host-box\n");
        assert_eq!(read_all(&mut p.stderr).await, "err\n");
        assert_eq!(p.wait().await.expect("wait"), 7);

        let mut p = h.rt.exec(exec("e3", &["cat"], true)).await.expect("exec");
        if let Some(stdin) = p.stdin.as_mut() {
            stdin.write_all(b"ping\n").await.expect("write stdin");
        }
        p.close_stdin().await.expect("close stdin");
        assert_eq!(read_all(&mut p.stdout).await, "ping\n");
        assert_eq!(p.wait().await.expect("wait"), 0);

        let err = h.rt.exec(exec("e4", &["/no/such/binary"], false)).await;
        assert!(err.is_err(), "exec of a missing binary fails");
        assert!(!h.path("io/e4").exists(), "failed exec cleans its fifo dir");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_breach_yields_oom_event_and_exit_137() {
    with_harness(async |h| {
        h.import_busybox().await;
        // Subscribe now: the stream only subscribes when first polled, and
        // an OOM that happens before that is never seen (a flake under load).
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = h.rt.events();
        let pump = tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(e) = stream.next().await {
                if tx.send(e).is_err() {
                    return;
                }
            }
        });
        let mut events = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
        tokio::time::sleep(Duration::from_millis(300)).await;
        // dd allocates and fills a 128 MiB buffer: well past the 32 MiB limit.
        h.create(
            "hog",
            &["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
            Some(32 << 20),
        )
        .await;
        h.rt.start_task("hog").await.expect("start");
        let oom = next_event(&mut events, 20, |e| matches!(e, RuntimeEvent::Oom { .. })).await;
        assert_eq!(
            oom,
            RuntimeEvent::Oom {
                container_id: "hog".into()
            }
        );
        assert_eq!(h.rt.wait("hog").await.expect("wait").exit_status, 137);
        pump.abort();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ignored_by_pid1_then_sigkill_stops_it() {
    with_harness(async |h| {
        h.import_busybox().await;
        h.create(
            "stubborn",
            &["sh", "-c", "trap '' TERM; while true; do sleep 1; done"],
            None,
        )
        .await;
        h.rt.start_task("stubborn").await.expect("start");
        h.rt.kill("stubborn", 15, false).await.expect("sigterm");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let task = h.rt.task("stubborn").await.expect("task").expect("task");
        assert_eq!(task.status, TaskStatus::Running, "SIGTERM ignored");
        h.rt.kill("stubborn", 9, true).await.expect("sigkill");
        assert_eq!(h.rt.wait("stubborn").await.expect("wait").exit_status, 137);
        h.rt.kill("stubborn", 9, false)
            .await
            .expect("killing a finished task is fine");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_keep_running_across_a_containerd_restart() {
    let mut h = Harness::start().await;
    let result = AssertUnwindSafe(async {
        h.import_busybox().await;
        let mut events = Box::pin(h.rt.events());
        h.create("survivor", &["sleep", "1000"], None).await;
        let pid = h.rt.start_task("survivor").await.expect("start");
        let first = h.containerd.take().expect("running");
        first.shutdown().await;
        assert!(h.rt.version().await.is_err(), "containerd is down");
        assert!(
            Path::new(&format!("/proc/{pid}")).exists(),
            "container survived containerd"
        );
        h.containerd = Some(
            SupervisedContainerd::start(h.cfg.clone())
                .await
                .expect("restart"),
        );
        let rt2 = Runtime::connect(&h.cfg.socket, NS)
            .await
            .expect("reconnect");
        let listed = rt2
            .list_containers(&[("kelp.io/test", "yes")])
            .await
            .expect("list");
        assert_eq!(listed.len(), 1);
        let task = rt2.task("survivor").await.expect("task").expect("task");
        assert_eq!((task.status, task.pid), (TaskStatus::Running, pid));
        // The old handle reconnects, and its event stream re-subscribed by itself.
        tokio::time::sleep(Duration::from_secs(3)).await;
        h.rt.kill("survivor", 9, false)
            .await
            .expect("kill via old handle");
        next_event(&mut events, 15, exit_of("survivor")).await;
    })
    .catch_unwind()
    .await;
    h.cleanup().await;
    if let Err(p) = result {
        std::panic::resume_unwind(p);
    }
}
