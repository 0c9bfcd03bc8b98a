//! A real `kelp server` (`--disable-agent`, or with its node on a private
//! containerd) on a temp data dir and a free loopback port, driven with real kubectl; killed (and its dir removed)
//! when dropped, also when a test fails.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running server.
pub struct Server {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kubeconfig: PathBuf,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// With a node (kubelet on containerd): its kubelet port.
    pub kubelet_port: Option<u16>,
    /// With a node: the network namespace the test thread entered for it,
    /// so the node's bridge, veths and routes stay out of the host's
    /// network (and kubectl, curl and sockets of the test reach it).
    netns: Option<kelp::kubelet::netns::EnteredNetns>,
    /// With a node: the node's address (on its uplink).
    pub node_ip: String,
}

/// A node's address on its uplink.
pub const UPLINK_IP: &str = "10.200.0.2";

/// Gives the node namespace the calling thread is in an uplink, as a
/// machine has its network interface: a veth pair (its far end, in the
/// same namespace, answers nobody) holding [`UPLINK_IP`] and the default
/// route. Pods then reach the node (and the API) at a real address, and
/// the service proxy sees routed traffic, while nothing leaves the
/// namespace.
pub fn add_uplink() {
    for args in [
        "link add kelp-ul0 type veth peer name kelp-ul1",
        "addr add 10.200.0.2/24 dev kelp-ul0",
        "link set kelp-ul0 up",
        "link set kelp-ul1 up",
        "route add default via 10.200.0.1",
    ] {
        let status = Command::new("ip")
            .args(args.split(' '))
            .status()
            .expect("ip (package iproute2) runs");
        assert!(status.success(), "ip {args}");
    }
}

/// Puts the busybox image where the node under `data_dir` imports
/// airgap images from.
pub fn add_busybox_image(data_dir: &Path) {
    let images = data_dir.join("agent/images");
    std::fs::create_dir_all(&images).expect("images dir");
    super::busybox_image::write_busybox_image(
        &images.join("busybox.tar"),
        "docker.io/library/busybox:latest",
        super::busybox_image::ImageFormat::DockerArchive,
    )
    .expect("build the busybox image from /bin/busybox");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The kubectl to use: `KELP_TEST_KUBECTL`, else the venv tests/run.sh makes.
pub fn kubectl_path() -> PathBuf {
    if let Ok(p) = std::env::var("KELP_TEST_KUBECTL") {
        return PathBuf::from(p);
    }
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/kubectl");
    assert!(
        p.exists(),
        "kubectl not found at {} (run ./tests/run.sh, which installs it)",
        p.display()
    );
    p
}

impl Server {
    /// The server's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// With a node: the path of the network namespace it runs in.
    pub fn netns_path(&self) -> Option<&Path> {
        self.netns.as_ref().map(|n| n.path())
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Starts a server and waits until /readyz answers.
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts a server with extra flags.
    pub fn start_with(extra: &[&str]) -> Server {
        let mut s = Self::unstarted(tempfile::tempdir().expect("temp dir"), extra, None);
        s.spawn();
        s
    }

    fn unstarted(dir: tempfile::TempDir, extra: &[&str], kubelet_port: Option<u16>) -> Server {
        Server {
            kubeconfig: dir.path().join("kubeconfig.yaml"),
            dir,
            port: free_port(),
            child: None,
            extra_args: extra.iter().map(|s| s.to_string()).collect(),
            kubelet_port,
            netns: None,
            node_ip: UPLINK_IP.to_string(),
        }
    }

    /// Starts a server without a node in a network namespace of its own
    /// with an uplink at [`UPLINK_IP`] (see [`add_uplink`]). The calling
    /// thread stays in that namespace, so servers it then starts on the
    /// uplink address (an aggregated API server, a webhook behind a
    /// Service) are reachable from kelp at an address Endpoints accept.
    pub fn start_in_netns(extra: &[&str]) -> Server {
        let mut s = Self::unstarted(tempfile::tempdir().expect("temp dir"), extra, None);
        let name = format!("kelp-api-{}-{}", std::process::id(), s.port);
        s.netns = Some(
            kelp::kubelet::netns::EnteredNetns::new(
                Path::new(kelp::kubelet::netns::DEFAULT_NETNS_DIR),
                &name,
            )
            .expect("a network namespace (needs root)"),
        );
        add_uplink();
        s.spawn();
        s
    }

    /// Starts a server with its node agent (kubelet on a private
    /// containerd; needs root). Runtime state, logs and the kubelet port are
    /// private to this server, so tests do not meet a kelp installed on the
    /// machine.
    pub fn start_node(extra: &[&str]) -> Server {
        Self::start_node_on(UPLINK_IP, |_| add_uplink(), extra)
    }

    /// [`Server::start_node`] with the node at `node_ip`, whose namespace
    /// (its path given) `uplink` connects.
    pub fn start_node_on(node_ip: &str, uplink: impl FnOnce(&Path), extra: &[&str]) -> Server {
        super::node::require_node_prerequisites();
        let dir = tempfile::tempdir_in(super::node::test_root()).expect("temp dir");
        let mut s = Self::unstarted(dir, extra, Some(free_port()));
        // Every process this thread starts from now on (kelp, kubectl,
        // curl) shares the node's namespace: loopback is the node's.
        let name = format!("kelp-e2e-{}-{}", std::process::id(), s.port);
        s.netns = Some(
            kelp::kubelet::netns::EnteredNetns::new(
                Path::new(kelp::kubelet::netns::DEFAULT_NETNS_DIR),
                &name,
            )
            .expect("a network namespace for the node"),
        );
        s.node_ip = node_ip.to_string();
        uplink(s.netns.as_ref().expect("entered").path());
        add_busybox_image(&s.data_dir());
        s.spawn();
        s.wait_node_ready();
        s
    }

    /// Waits until the node reports Ready.
    pub fn wait_node_ready(&self) {
        self.wait_for(60, "node Ready", || {
            let out = self.kubectl(&[
                "get",
                "node",
                "kelp-e2e",
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            String::from_utf8_lossy(&out.stdout) == "True"
        });
    }

    /// Polls `check` every 200 ms for up to `secs`; panics with `what` and
    /// the server log tail if it never holds.
    pub fn wait_for(&self, secs: u64, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n--- server log ---\n{}",
                tail(&self.log())
            );
            std::thread::park_timeout(Duration::from_millis(200));
        }
    }

    /// A jsonpath of an object (empty on error).
    pub fn jsonpath(&self, args: &[&str], path: &str) -> String {
        let jp = format!("jsonpath={path}");
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-o", jp.as_str()]);
        String::from_utf8_lossy(&self.kubectl(&all).stdout).into_owned()
    }

    /// Kills the server with SIGKILL and starts it again (the node agent's
    /// containers keep running).
    pub fn kill_and_restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn spawn(&mut self) {
        let config = self.dir.path().join("config.yaml");
        std::fs::write(&config, "# test\n").unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_kelp"));
        // A node lives in its own namespace with the uplink's address (see
        // `add_uplink`); its pods reach the API there.
        let (bind, node_ip) = match self.kubelet_port {
            Some(_) => ("0.0.0.0", self.node_ip.as_str()),
            None => ("127.0.0.1", "127.0.0.1"),
        };
        command.args(["server", "--bind-address", bind, "--node-ip", node_ip]);
        match self.kubelet_port {
            None => {
                command.arg("--disable-agent");
            }
            Some(port) => {
                let d = self.dir.path();
                command
                    .args([
                        "--node-name",
                        "kelp-e2e",
                        "--kubelet-port",
                        &port.to_string(),
                        // The tests are about pods, not about this machine's
                        // disk: report DiskPressure only when really short.
                        "--kubelet-arg",
                        "eviction-hard=nodefs.available<512Mi",
                    ])
                    .arg("--run-dir")
                    .arg(d.join("run"))
                    .arg("--pod-log-dir")
                    .arg(d.join("pod-logs"));
            }
        }
        let child = command
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .arg("--https-listen-port")
            .arg(self.port.to_string())
            .arg("--write-kubeconfig")
            .arg(&self.kubeconfig)
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kelp server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.kubeconfig.exists() {
                let out = self.kubectl(&["get", "--raw", "/readyz"]);
                if out.status.success() {
                    return;
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("kelp server exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "kelp server not ready in 30 s: {}",
                self.log()
            );
            std::thread::park_timeout(Duration::from_millis(50));
        }
    }

    /// Stops (SIGKILL) and starts the server again on the same data dir and port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Sends SIGTERM and waits up to `grace` for the server to exit; `None`
    /// if it did not (it is then killed).
    pub fn terminate(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Runs kubectl against this server.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl with `stdin` as input.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(kubectl_path())
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// A kube-rs client with the admin kubeconfig.
    pub async fn kube_client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("client config");
        kube::Client::try_from(config).expect("client")
    }

    /// kubectl that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log())
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl with stdin that must succeed; returns stdout.
    pub fn ok_stdin(&self, args: &[&str], stdin: &str) -> String {
        let out = self.kubectl_stdin(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n--- server log ---\n{}",
            String::from_utf8_lossy(&out.stderr),
            tail(&self.log())
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl that must fail; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should have failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
        if self.kubelet_port.is_some() {
            super::node::cleanup(self.dir.path());
        }
    }
}
