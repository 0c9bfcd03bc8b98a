//! `install.sh`, the uninstall scripts and the airgap bundle, run as a user
//! runs them, in isolated roots: each test host is a network namespace on
//! the test switch plus a private mount and UTS namespace in which /etc,
//! /usr/local and /var are overlays whose writes land in a tmpfs, and /run
//! and the data dir are fresh tmpfs mounts. The installer writes to the
//! real default paths, nothing reaches the machine's own files, and what
//! it leaves behind is exactly what is in the overlays' upper layers.
//! There is no init system in there, so the installer starts kelp in the
//! background. These tests need root, containerd and runc, and fail (never
//! skip) without them.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::multi_node::{Lan, host_ip};

const INSTALL_SH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/install.sh");
/// The trees the isolated root overlays (their writes are in `/mnt/<name>/upper`).
const OVERLAID: &[(&str, &str)] = &[
    ("etc", "/etc"),
    ("usr-local", "/usr/local"),
    ("var", "/var"),
];

/// Sets up the isolated root, then waits; run by `unshare` in the host's
/// network namespace. $1 is the host name.
const HOLDER: &str = r#"
set -e
hostname "$1"
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=0755 tmpfs /mnt
for pair in etc:/etc usr-local:/usr/local var:/var; do
  name=${pair%%:*}; dir=${pair#*:}
  mkdir -p /mnt/$name/upper /mnt/$name/work
  mount -t overlay overlay -o lowerdir=$dir,upperdir=/mnt/$name/upper,workdir=/mnt/$name/work $dir
done
# containerd's overlay snapshots cannot sit on an overlay: the data dir is a tmpfs.
mkdir -p /var/lib/kelp
mount -t tmpfs -o mode=0700 tmpfs /var/lib/kelp
echo ready
exec sleep 2147483647
"#;

/// One isolated root (see the module docs), kept alive by a holder process.
struct IsolatedRoot {
    holder: Child,
    pid: u32,
    /// The holder's mount namespace (`mnt:[…]`), to find processes left in it.
    mount_ns: PathBuf,
    /// Mount points right after set-up.
    baseline_mounts: Vec<String>,
    /// What set-up itself wrote (mount(8)'s /run/mount/utab).
    baseline_files: Vec<String>,
}

impl IsolatedRoot {
    /// An isolated root named `hostname`, in network namespace `netns`
    /// (else the machine's, for loopback-only tests).
    fn new(hostname: &str, netns: Option<&Path>) -> IsolatedRoot {
        let mut command = Command::new("nsenter");
        if let Some(netns) = netns {
            command.arg(format!("--net={}", netns.display()));
        }
        let mut holder = command
            .args([
                "--",
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", HOLDER, "sh", hostname])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run nsenter and unshare (util-linux)");
        let pid = holder.id();
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "isolated root set-up failed");
        let mount_ns = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
        let mut root = IsolatedRoot {
            holder,
            pid,
            mount_ns,
            baseline_mounts: Vec::new(),
            baseline_files: Vec::new(),
        };
        root.baseline_mounts = root.mounts();
        root.baseline_files = root.leftovers();
        root
    }

    /// Runs `script` with sh inside the root (its mount, UTS and network
    /// namespaces), as root, with a plain PATH and `env`.
    fn sh(&self, script: &str, env: &[(&str, &str)]) -> Output {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.pid.to_string(), "--mount", "--uts", "--net"])
            .args(["--", "sh", "-c", &format!("cd / && {script}")])
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("HOME", "/root");
        for (k, v) in env {
            command.env(k, v);
        }
        command.stdin(Stdio::null()).output().expect("run nsenter")
    }

    /// Like [`Self::sh`], asserting success; stdout and stderr together.
    fn sh_ok(&self, script: &str, env: &[(&str, &str)]) -> String {
        let out = self.sh(script, env);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "`{script}` failed:\n{text}");
        text
    }

    /// A path inside the root, as seen from the test.
    fn path(&self, inside: &str) -> PathBuf {
        PathBuf::from(format!("/proc/{}/root{inside}", self.pid))
    }

    /// kubectl against this root's server (its admin kubeconfig).
    fn kubectl(&self, args: &str) -> Output {
        let kubectl = common::cluster::kubectl_path();
        self.sh(
            &format!("{} {args}", kubectl.display()),
            &[("KUBECONFIG", "/etc/kelp/kelp.yaml")],
        )
    }

    /// Waits up to `secs` for `kubectl args` to print `want` (trimmed).
    fn wait_kubectl(&self, args: &str, want: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.kubectl(args);
            let got = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl {args}: want {want:?}, got {got:?} {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                self.log_tail()
            );
            std::thread::park_timeout(Duration::from_millis(300));
        }
    }

    fn log_tail(&self) -> String {
        let mut out = String::new();
        for log in ["/var/log/kelp.log", "/var/log/kelp-agent.log"] {
            let text = std::fs::read_to_string(self.path(log)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            out += &format!(
                "--- {log} ---\n{}\n",
                lines[lines.len().saturating_sub(30)..].join("\n")
            );
        }
        out
    }

    /// Mount points in the root.
    fn mounts(&self) -> Vec<String> {
        let info = std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid)).unwrap();
        let mut points: Vec<String> = info
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .collect();
        points.sort();
        points
    }

    /// Processes in the root's mount namespace, other than the holder.
    fn processes(&self) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid != self.pid
                && std::fs::read_link(format!("/proc/{pid}/ns/mnt"))
                    .ok()
                    .as_ref()
                    == Some(&self.mount_ns)
            {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                out.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
            }
        }
        out
    }

    /// What the installer left in the overlaid trees and the fresh
    /// mounts: every file, link or directory that the machine itself does
    /// not have (directories copied up only because something was created
    /// in them, and the data dir's mount point, do not count).
    fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        for (name, dir) in OVERLAID {
            let upper = self.path(&format!("/mnt/{name}/upper"));
            walk(&upper, &mut |p, meta| {
                let rel = p.strip_prefix(&upper).unwrap();
                let real = Path::new(dir).join(rel);
                let copied_up_dir = meta.is_dir() && real.is_dir();
                let mount_point = real == Path::new("/var/lib/kelp");
                if !copied_up_dir && !mount_point {
                    left.push(real.display().to_string());
                }
            });
        }
        for fresh in ["/run", "/var/lib/kelp"] {
            let root = self.path(fresh);
            walk(&root, &mut |p, _| {
                left.push(
                    Path::new(fresh)
                        .join(p.strip_prefix(&root).unwrap())
                        .display()
                        .to_string(),
                )
            });
        }
        left.retain(|f| !self.baseline_files.contains(f));
        left.sort();
        left
    }

    /// Content hash, mode and mtime of every installed file (etc and
    /// usr-local), to show that a second install touched nothing.
    fn installed_files(&self) -> BTreeMap<String, (u64, u32, i64)> {
        let mut files = BTreeMap::new();
        for name in ["etc", "usr-local"] {
            let upper = self.path(&format!("/mnt/{name}/upper"));
            walk(&upper, &mut |p, meta| {
                if meta.is_file() {
                    let bytes = std::fs::read(p).unwrap();
                    let hash = bytes.iter().fold(0xcbf29ce484222325u64, |h, b| {
                        (h ^ *b as u64).wrapping_mul(0x100000001b3)
                    });
                    files.insert(
                        p.strip_prefix(&upper).unwrap().display().to_string(),
                        (
                            hash,
                            meta.mode(),
                            meta.mtime_nsec() + meta.mtime() * 1_000_000_000,
                        ),
                    );
                }
            });
        }
        files
    }
}

impl Drop for IsolatedRoot {
    fn drop(&mut self) {
        // Whatever a failed test left running: kelp's own reset first (it
        // also finds the containers, whose namespaces differ), then any
        // process still in the root.
        if !self.processes().is_empty() {
            let _ = self.sh("/usr/local/bin/kelp reset --remove-data", &[]);
            for (pid, _) in self.processes() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Calls `f` on every entry under `dir`, parents before children.
fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        f(&path, &meta);
        if meta.is_dir() {
            walk(&path, f);
        }
    }
}

/// The links in a network namespace.
fn links(netns: &Path) -> Vec<String> {
    let out = Command::new("ip")
        .args([
            "-n",
            netns.file_name().unwrap().to_str().unwrap(),
            "-o",
            "link",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .collect()
}

/// The nftables tables in a network namespace.
fn nft_tables(netns: &Path) -> String {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["--", "nft", "list", "tables"])
        .output()
        .expect("nft (package nftables)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Cgroup directories of a pod, in any hierarchy.
fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk_cgroups(
        Path::new("/sys/fs/cgroup"),
        &format!("pod{uid}"),
        0,
        &mut found,
    );
    found
}

fn walk_cgroups(dir: &Path, name: &str, depth: usize, found: &mut Vec<PathBuf>) {
    if depth > 4 {
        return;
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            if entry.file_name().to_str() == Some(name) {
                found.push(entry.path());
            }
            walk_cgroups(&entry.path(), name, depth + 1, found);
        }
    }
}

/// Builds the airgap bundle from the test's kelp binary with a busybox
/// image, and unpacks it; returns the unpacked directory.
fn airgap_bundle(work: &Path) -> PathBuf {
    let image = work.join("busybox.tar");
    common::busybox_image::write_busybox_image(
        &image,
        "docker.io/library/busybox:latest",
        common::busybox_image::ImageFormat::DockerArchive,
    )
    .unwrap();
    let dist = work.join("dist");
    let out = Command::new("sh")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/build-release.sh"
        ))
        .args(["--binary", env!("CARGO_BIN_EXE_kelp"), "--image"])
        .arg(&image)
        .arg("--out")
        .arg(&dist)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-release.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    // The unit files in packaging/ are what install.sh renders.
    for unit in [
        "kelp.service",
        "kelp-agent.service",
        "kelp.openrc",
        "kelp-agent.openrc",
    ] {
        let rendered = std::fs::read_to_string(dist.join(unit)).unwrap();
        let committed = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("packaging")
                .join(unit),
        )
        .unwrap();
        assert_eq!(
            rendered, committed,
            "packaging/{unit} differs from what install.sh renders: run packaging/build-release.sh and copy it"
        );
    }
    let service = std::fs::read_to_string(dist.join("kelp.service")).unwrap();
    for line in [
        "Type=notify",
        "Delegate=yes",
        "KillMode=process",
        "Restart=always",
        "LimitNOFILE=1048576",
    ] {
        assert!(
            service.contains(line),
            "kelp.service lacks {line}:\n{service}"
        );
    }
    let status = Command::new("tar")
        .arg("--zstd")
        .arg("-xf")
        .arg(dist.join(format!("kelp-airgap-{arch}.tar.zst")))
        .arg("-C")
        .arg(work)
        .status()
        .unwrap();
    assert!(status.success(), "unpack the bundle (tar, zstd)");
    work.join(format!("kelp-airgap-{arch}"))
}

/// The airgap steps of the bundle's README, then install.sh with `env`.
fn install_from_bundle(root: &IsolatedRoot, bundle: &Path, env: &[(&str, &str)]) -> String {
    let b = bundle.display();
    let mut all = vec![("INSTALL_KELP_SKIP_DOWNLOAD", "true")];
    all.extend_from_slice(env);
    root.sh_ok(
        &format!(
            "install -m 0755 {b}/kelp /usr/local/bin/kelp && \
             mkdir -p /var/lib/kelp/agent/images && cp {b}/images/* /var/lib/kelp/agent/images/ && \
             {b}/install.sh"
        ),
        &all,
    )
}

#[test]
fn airgap_install_of_a_server_and_an_agent_then_uninstall_leaves_nothing() {
    common::node::require_node_prerequisites();
    common::node::require_binary("zstd", "zstd");
    let work = tempfile::tempdir_in(common::node::test_root()).unwrap();
    let bundle = airgap_bundle(work.path());

    let lan = Lan::new();
    let server_netns = lan.host(0);
    let agent_netns = lan.host(1);
    // The only interfaces: loopback and the test underlay.
    for netns in [&server_netns, &agent_netns] {
        assert_eq!(links(netns), ["lo", "kelp-ul0"]);
    }
    let server = IsolatedRoot::new("inst-server", Some(&server_netns));
    let agent = IsolatedRoot::new("inst-agent", Some(&agent_netns));

    // A server, from the bundle, with no init system.
    let out = install_from_bundle(&server, &bundle, &[]);
    assert!(out.contains("sha256 verified"), "{out}");
    assert!(out.contains("no init system"), "{out}");
    assert!(out.contains("PASS"), "check-config ran: {out}");
    server.wait_kubectl(
        "get node inst-server -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].status}'",
        "True",
        60,
    );
    let env_file = std::fs::metadata(server.path("/etc/kelp/kelp.env")).unwrap();
    assert_eq!(env_file.mode() & 0o777, 0o600);

    // An agent on another host joins with KELP_URL and KELP_TOKEN; its
    // binary is the bundle's, next to install.sh.
    let token = std::fs::read_to_string(server.path("/var/lib/kelp/server/token")).unwrap();
    let url = format!("https://{}:6443", host_ip(0));
    let b = bundle.display();
    let out = agent.sh_ok(
        &format!("mkdir -p /var/lib/kelp/agent/images && cp {b}/images/* /var/lib/kelp/agent/images/ && {b}/install.sh"),
        &[("KELP_URL", &url), ("KELP_TOKEN", token.trim())],
    );
    assert!(out.contains("kelp-agent-uninstall.sh"), "{out}");
    let env_text = std::fs::read_to_string(agent.path("/etc/kelp/kelp-agent.env")).unwrap();
    assert!(
        env_text.contains("KELP_URL=") && env_text.contains("KELP_TOKEN="),
        "{env_text}"
    );
    server.wait_kubectl(
        "get node inst-agent -o 'jsonpath={.status.conditions[?(@.type==\"Ready\")].status}'",
        "True",
        60,
    );

    // A pod on each node, from the bundle's image (nothing can be pulled).
    let mut uids = Vec::new();
    for (pod, node) in [("on-server", "inst-server"), ("on-agent", "inst-agent")] {
        let manifest = format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{pod}"}},"spec":{{"nodeName":"{node}","terminationGracePeriodSeconds":1,"containers":[{{"name":"c","image":"busybox:latest","imagePullPolicy":"IfNotPresent","command":["sleep","3600"]}}]}}}}"#
        );
        let out = server.sh(
            &format!(
                "echo '{manifest}' | {} apply -f -",
                common::cluster::kubectl_path().display()
            ),
            &[("KUBECONFIG", "/etc/kelp/kelp.yaml")],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        server.wait_kubectl(
            &format!("get pod {pod} -o jsonpath={{.status.phase}}"),
            "Running",
            60,
        );
        let uid = server.kubectl(&format!("get pod {pod} -o jsonpath={{.metadata.uid}}"));
        uids.push(String::from_utf8_lossy(&uid.stdout).trim().to_string());
    }
    let exec = server.kubectl("exec on-agent -- hostname");
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout).trim(),
        "on-agent",
        "{}",
        String::from_utf8_lossy(&exec.stderr)
    );
    for uid in &uids {
        assert!(!pod_cgroups(uid).is_empty(), "pod {uid} has a cgroup");
    }

    // Installing again changes nothing: no file rewritten, no restart.
    let files = server.installed_files();
    assert!(files.contains_key("kelp/kelp.env"), "{files:?}");
    assert!(files.contains_key("bin/kelp-uninstall.sh"), "{files:?}");
    let pid = std::fs::read_to_string(server.path("/run/kelp.pid")).unwrap();
    let out = server.sh_ok(
        &format!("{}/install.sh", bundle.display()),
        &[("INSTALL_KELP_SKIP_DOWNLOAD", "true")],
    );
    assert!(out.contains("no change"), "{out}");
    assert_eq!(server.installed_files(), files);
    assert_eq!(
        std::fs::read_to_string(server.path("/run/kelp.pid")).unwrap(),
        pid
    );
    // A forced restart replaces the process and rewrites nothing; the pods
    // keep running.
    let out = server.sh_ok(
        &format!("{}/install.sh", bundle.display()),
        &[
            ("INSTALL_KELP_SKIP_DOWNLOAD", "true"),
            ("INSTALL_KELP_FORCE_RESTART", "true"),
        ],
    );
    assert!(out.contains("to restart it"), "{out}");
    assert_ne!(
        std::fs::read_to_string(server.path("/run/kelp.pid")).unwrap(),
        pid
    );
    assert_eq!(
        server.installed_files(),
        files,
        "a restart rewrites nothing"
    );
    server.wait_kubectl(
        "get pod on-server -o jsonpath={.status.phase}",
        "Running",
        30,
    );

    // Uninstall: the agent, then the server.
    for (root, script, netns) in [
        (&agent, "kelp-agent-uninstall.sh", &agent_netns),
        (&server, "kelp-uninstall.sh", &server_netns),
    ] {
        let out = root.sh_ok(&format!("/usr/local/bin/{script}"), &[]);
        assert!(out.contains("kelp is uninstalled"), "{out}");
        assert_eq!(root.processes(), [], "processes left after {script}");
        assert_eq!(
            root.mounts(),
            root.baseline_mounts,
            "mounts left after {script}"
        );
        assert_eq!(
            links(netns),
            ["lo", "kelp-ul0"],
            "links left after {script}"
        );
        assert_eq!(nft_tables(netns), "", "nftables left after {script}");
        assert_eq!(
            root.leftovers(),
            Vec::<String>::new(),
            "files left after {script}"
        );
    }
    for uid in &uids {
        assert_eq!(
            pod_cgroups(uid),
            Vec::<PathBuf>::new(),
            "cgroups of pod {uid} left"
        );
    }
}

/// A loopback HTTP server for `files` (path → body), like a release page.
fn serve(files: BTreeMap<String, Vec<u8>>) -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        // Bounded: one attempt fetches the sums and the binary.
        for stream in listener.incoming().take(2) {
            let Ok(mut stream) = stream else { continue };
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            let _ = match files.get(&path) {
                Some(body) => stream
                    .write_all(
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .as_bytes(),
                    )
                    .and_then(|_| stream.write_all(body)),
                None => stream.write_all(
                    b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ),
            };
        }
    });
    (port, handle)
}

#[test]
fn a_download_whose_sha256_does_not_match_is_not_installed() {
    common::node::require_node_prerequisites();
    let binary = std::fs::read(env!("CARGO_BIN_EXE_kelp")).unwrap();
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    let good = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&binary))
    };
    let bad = "0".repeat(64);
    let release = |sum: &str| {
        BTreeMap::from([
            (format!("/download/v9.9.9/kelp-{arch}"), binary.clone()),
            (
                format!("/download/v9.9.9/sha256sum-{arch}.txt"),
                format!("{sum}  kelp-{arch}\n").into_bytes(),
            ),
        ])
    };
    // The machine's loopback: the root has no network namespace of its own.
    let root = IsolatedRoot::new("inst-download", None);

    let (port, server) = serve(release(&bad));
    let env = [
        ("INSTALL_KELP_VERSION", "v9.9.9"),
        (
            "INSTALL_KELP_RELEASE_URL",
            &format!("http://127.0.0.1:{port}"),
        ),
        ("INSTALL_KELP_SKIP_START", "true"),
    ];
    let out = root.sh(INSTALL_SH, &env);
    server.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("sha256 mismatch for kelp-"), "{stderr}");
    assert!(
        stderr.contains(&format!("expected {bad}, got {good}")),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was installed"), "{stderr}");
    assert_eq!(root.leftovers(), Vec::<String>::new());

    // The same release with the right sum installs.
    let (port, server) = serve(release(&good));
    let url = format!("http://127.0.0.1:{port}");
    let out = root.sh_ok(
        INSTALL_SH,
        &[
            ("INSTALL_KELP_VERSION", "v9.9.9"),
            ("INSTALL_KELP_RELEASE_URL", &url),
            ("INSTALL_KELP_SKIP_START", "true"),
        ],
    );
    server.join().unwrap();
    assert!(out.contains(&format!("sha256 verified ({good})")), "{out}");
    assert_eq!(
        std::fs::read(root.path("/usr/local/bin/kelp")).unwrap(),
        binary
    );
    assert!(root.path("/usr/local/bin/kelp-uninstall.sh").exists());
}

#[test]
fn bad_installer_input_is_refused_with_the_variable_named() {
    common::node::require_node_prerequisites();
    let root_needed = IsolatedRoot::new("inst-refusals", None);
    for (env, message) in [
        (
            vec![("KELP_URL", "http://10.0.0.1:6443"), ("KELP_TOKEN", "t")],
            "KELP_URL must be the server's https URL",
        ),
        (
            vec![("KELP_URL", "https://10.0.0.1:6443")],
            "KELP_TOKEN is not",
        ),
        (
            vec![("INSTALL_KELP_SKIP_DOWNLOAD", "true")],
            "INSTALL_KELP_SKIP_DOWNLOAD is set but /usr/local/bin/kelp is missing",
        ),
    ] {
        let out = root_needed.sh(INSTALL_SH, &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(stderr.contains(message), "{env:?}: {stderr}");
    }
    let out = root_needed.sh(&format!("{INSTALL_SH} agent"), &[]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("an agent needs KELP_URL"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(root_needed.leftovers(), Vec::<String>::new());
}
