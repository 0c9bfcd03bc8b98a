//! A multi-node cluster on one machine: each test host is a network
//! namespace with its own data dir, containerd, run dir and node name,
//! plugged by a veth into a bridge that lives in a namespace of its own
//! (a "switch"), never into the root namespace. Host 0 runs `kelp server`
//! (the test thread enters its namespace, so kubectl reaches the API on
//! loopback); the others run `kelp agent`. Only addresses in 10.200.0.0/24
//! inside these namespaces are used. Everything (processes, mounts,
//! namespaces, and so every link, route and nftables table in them) is
//! removed when the cluster is dropped, also when a test fails.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::cluster::{Server, add_busybox_image, free_port};

const NETNS_DIR: &str = "/run/netns";

fn ip(netns: &str, args: &str) {
    let status = Command::new("ip")
        .args(["-n", netns])
        .args(args.split(' '))
        .status()
        .expect("ip (package iproute2) runs");
    assert!(status.success(), "ip -n {netns} {args}");
}

/// A unique name prefix for this test's namespaces.
fn prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "kelp-mn{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The switch: a bridge in a namespace of its own, holding 10.200.0.1.
pub struct Lan {
    prefix: String,
    switch: String,
    hosts: parking_lot::Mutex<Vec<PathBuf>>,
}

impl Lan {
    /// A new switch namespace with its bridge.
    pub fn new() -> Lan {
        let prefix = prefix();
        let switch = format!("{prefix}-sw");
        kelp::kubelet::netns::create(Path::new(NETNS_DIR), &switch).expect("switch namespace");
        let lan = Lan {
            prefix,
            switch,
            hosts: Default::default(),
        };
        ip(&lan.switch, "link add br0 type bridge");
        ip(&lan.switch, "addr add 10.200.0.1/24 dev br0");
        ip(&lan.switch, "link set br0 up");
        lan
    }

    /// A new host namespace `i`, plugged in as [`host_ip`]`(i)`; removed
    /// with the switch.
    pub fn host(&self, i: usize) -> PathBuf {
        let name = format!("{}-h{i}", self.prefix);
        let netns =
            kelp::kubelet::netns::create(Path::new(NETNS_DIR), &name).expect("host namespace");
        self.hosts.lock().push(netns.clone());
        self.plug(&netns, i, &host_ip(i));
        netns
    }

    /// Plugs the namespace at `netns` into the switch as `ip` (/24), with
    /// the default route via the switch.
    pub fn plug(&self, netns: &Path, port: usize, host_ip: &str) {
        let host = netns.file_name().unwrap().to_str().unwrap();
        let peer = format!("p{port}");
        ip(
            &self.switch,
            &format!("link add {peer} type veth peer name kelp-ul0 netns {host}"),
        );
        ip(&self.switch, &format!("link set {peer} master br0 up"));
        ip(host, &format!("addr add {host_ip}/24 dev kelp-ul0"));
        ip(host, "link set kelp-ul0 up");
        ip(host, "link set lo up");
        ip(host, "route add default via 10.200.0.1");
    }

    /// Cuts host `port` off the switch (its namespace stays).
    pub fn unplug(&self, port: usize) {
        ip(&self.switch, &format!("link set p{port} down"));
    }

    /// Plugs host `port` back in.
    pub fn replug(&self, port: usize) {
        ip(&self.switch, &format!("link set p{port} up"));
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in self.hosts.lock().drain(..) {
            let _ = kelp::kubelet::netns::remove(&host);
        }
        let _ = kelp::kubelet::netns::remove(&Path::new(NETNS_DIR).join(&self.switch));
    }
}

/// The address of host `i` (0 is the server).
pub fn host_ip(i: usize) -> String {
    format!("10.200.0.{}", 10 + i)
}

/// A `kelp agent` on its own host namespace.
pub struct Agent {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub ip: String,
    pub netns: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Agent {
    /// The agent's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts the agent process with `args` after `kelp agent`.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("agent.log"))
            .unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", self.netns.display()))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_kelp"))
            .arg("agent")
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start kelp agent under nsenter (util-linux)");
        self.child = Some(child);
    }

    /// SIGKILLs the agent (its containers keep running, as on a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `secs` for the agent to exit; its status, if it did.
    pub fn wait_exit(&mut self, secs: u64) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut()?.try_wait().ok().flatten() {
                self.child = None;
                return Some(status);
            }
            std::thread::park_timeout(Duration::from_millis(100));
        }
        None
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
        super::node::cleanup(self.dir.path());
        let _ = kelp::kubelet::netns::remove(&self.netns);
    }
}

/// A server and its agents on one switch.
pub struct MultiNode {
    // Dropped in this order: agents, then the server, then the switch.
    pub agents: Vec<Agent>,
    pub server: Server,
    pub lan: Lan,
}

impl MultiNode {
    /// A server (node `kelp-e2e` at 10.200.0.10) with `agents` agents
    /// (`agent-1`… at 10.200.0.11…), all Ready. `server_args` go to the
    /// server.
    pub fn start(agents: usize, server_args: &[&str]) -> MultiNode {
        let lan = Lan::new();
        let server = Server::start_node_on(
            &host_ip(0),
            |netns| lan.plug(netns, 0, &host_ip(0)),
            server_args,
        );
        let mut cluster = MultiNode {
            agents: Vec::new(),
            server,
            lan,
        };
        for i in 1..=agents {
            let token = cluster.token();
            let mut agent = cluster.new_agent(i, &format!("agent-{i}"), &token, &[]);
            agent.spawn();
            cluster.agents.push(agent);
        }
        for i in 1..=agents {
            cluster.wait_node_ready(&format!("agent-{i}"));
        }
        cluster
    }

    /// The server's host namespace.
    pub fn server_netns(&self) -> PathBuf {
        self.server
            .netns_path()
            .expect("a node server")
            .to_path_buf()
    }

    /// The server's join token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.server.data_dir().join("server/token"))
            .expect("server token")
            .trim()
            .to_string()
    }

    /// An agent on a new host `i` (namespace, switch port, data dir,
    /// busybox image), not started: `kelp agent` with its node flags,
    /// `--token token` and `extra`.
    pub fn new_agent(&self, i: usize, name: &str, token: &str, extra: &[&str]) -> Agent {
        let netns_name = format!("{}-h{i}", self.lan.prefix);
        let netns = kelp::kubelet::netns::create(Path::new(NETNS_DIR), &netns_name)
            .expect("host namespace");
        let ip = host_ip(i);
        self.lan.plug(&netns, i, &ip);
        let dir = tempfile::tempdir_in(super::node::test_root()).expect("temp dir");
        let data = dir.path().join("data");
        add_busybox_image(&data);
        let mut args: Vec<String> = [
            "--server",
            &format!("https://{}:{}", host_ip(0), self.server.port),
            "--token",
            token,
            "--node-name",
            name,
            "--node-ip",
            &ip,
            "--kubelet-port",
            &free_port().to_string(),
            "--kubelet-arg",
            "eviction-hard=nodefs.available<512Mi",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for (flag, path) in [
            ("--data-dir", data.clone()),
            ("--run-dir", dir.path().join("run")),
            ("--pod-log-dir", dir.path().join("pod-logs")),
            ("--config", dir.path().join("config.yaml")),
        ] {
            args.push(flag.to_string());
            args.push(path.display().to_string());
        }
        std::fs::write(dir.path().join("config.yaml"), "# test\n").unwrap();
        args.extend(extra.iter().map(|s| s.to_string()));
        Agent {
            dir,
            name: name.to_string(),
            ip,
            netns,
            args,
            child: None,
        }
    }

    /// Waits until node `name` is Ready, with the agents' logs on failure.
    pub fn wait_node_ready(&self, name: &str) {
        self.wait_node_status(name, "True", 90);
    }

    /// Waits until node `name`'s Ready condition has `status`.
    pub fn wait_node_status(&self, name: &str, status: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let got = self.server.jsonpath(
                &["get", "node", name],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            if got == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {name} not Ready={status} in {secs} s (is {got:?})\n{}",
                self.logs()
            );
            std::thread::park_timeout(Duration::from_millis(250));
        }
    }

    /// The tails of every agent's log.
    pub fn logs(&self) -> String {
        self.agents
            .iter()
            .map(|a| {
                let log = a.log();
                let lines: Vec<&str> = log.lines().collect();
                format!(
                    "--- {} log ---\n{}",
                    a.name,
                    lines[lines.len().saturating_sub(25)..].join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}
