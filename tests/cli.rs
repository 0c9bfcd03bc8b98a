//! The command line: help, one-line errors with exit code 1, precedence of
//! flag > env > config file > default, and snapshot save/restore.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use bytes::Bytes;
use kelp::store::Store;
use kelp::store::sled::SledStore;

fn kelp(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kelp"));
    cmd.args(args)
        .env_remove("KELP_DATA_DIR")
        .env_remove("KELP_CONFIG")
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kelp")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An error is exactly one line, exit code 1, and no panic or debug dump.
fn assert_one_line_error(o: &Output, must_contain: &[&str]) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit code for {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.starts_with("error: "), "{err:?}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err:?}"
    );
    for needle in must_contain {
        assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    }
    err
}

#[test]
fn help_lists_every_command_and_each_has_help() {
    let o = kelp(&["--help"], &[]);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "server",
        "agent",
        "token",
        "check-config",
        "kubectl",
        "snapshot",
        "version",
    ] {
        assert!(out.contains(cmd), "--help lacks {cmd}");
        let o = kelp(&[cmd, "--help"], &[]);
        assert!(o.status.success(), "{cmd} --help failed");
    }
    let server_help =
        String::from_utf8_lossy(&kelp(&["server", "--help"], &[]).stdout).into_owned();
    for flag in [
        "--data-dir",
        "--https-listen-port",
        "--bind-address",
        "--node-name",
        "--node-ip",
        "--node-label",
        "--node-taint",
        "--tls-san",
        "--token",
        "--cluster-cidr",
        "--service-cidr",
        "--cluster-dns",
        "--flannel-backend",
        "--disable",
        "--disable-agent",
        "--write-kubeconfig",
        "--write-kubeconfig-mode",
        "--container-runtime-endpoint",
        "--config",
    ] {
        assert!(server_help.contains(flag), "server --help lacks {flag}");
    }
    let agent_help = String::from_utf8_lossy(&kelp(&["agent", "--help"], &[]).stdout).into_owned();
    assert!(agent_help.contains("--server") && agent_help.contains("--token"));
    let v = kelp(&["version"], &[]);
    assert!(String::from_utf8_lossy(&v.stdout).contains("+kelp"));
}

#[test]
fn bad_values_are_one_line_errors_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = dir.path().join("empty.yaml");
    std::fs::write(&cfg_path, "# nothing\n").unwrap();
    let cfg = cfg_path.to_str().unwrap();
    assert_one_line_error(
        &kelp(
            &["server", "-c", cfg, "--cluster-cidr", "10.42.0.0/33"],
            &[],
        ),
        &["--cluster-cidr", "10.42.0.0/16"],
    );
    assert_one_line_error(
        &kelp(&["server", "-c", cfg, "--https-listen-port", "99999"], &[]),
        &["--https-listen-port"],
    );
    assert_one_line_error(
        &kelp(&["server", "-c", cfg, "--node-taint", "a=b:Never"], &[]),
        &["--node-taint", "NoSchedule"],
    );
    assert_one_line_error(
        &kelp(&["server", "-c", cfg, "--write-kubeconfig-mode", "rw"], &[]),
        &["--write-kubeconfig-mode", "octal"],
    );
    assert_one_line_error(
        &kelp(&["server", "-c", cfg, "--no-such-flag"], &[]),
        &["--no-such-flag"],
    );
    assert_one_line_error(
        &kelp(&["server", "-c", cfg, "--cluster-dns", "10.99.0.10"], &[]),
        &["--cluster-dns", "--service-cidr"],
    );
    assert_one_line_error(
        &kelp(&["server", "-c", cfg], &[("KELP_SERVICE_CIDR", "banana")]),
        &["--service-cidr"],
    );
    assert_one_line_error(&kelp(&["agent", "-c", cfg], &[]), &["--server"]);
    assert_one_line_error(
        &kelp(&["agent", "-c", cfg, "--server", "http://x:6443"], &[]),
        &["--server", "https://"],
    );
    // An explicitly named config file must exist.
    let missing = dir.path().join("missing.yaml");
    assert_one_line_error(
        &kelp(&["server", "-c", missing.to_str().unwrap()], &[]),
        &["missing.yaml"],
    );
}

#[test]
fn config_file_errors_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let c = cfg.to_str().unwrap();
    std::fs::write(&cfg, "no-such-key: 1\n").unwrap();
    assert_one_line_error(
        &kelp(&["server", "-c", c], &[]),
        &["config.yaml", "no-such-key"],
    );
    std::fs::write(&cfg, "cluster-cidr: 10.42.3.0/16\n").unwrap();
    assert_one_line_error(
        &kelp(&["server", "-c", c], &[]),
        &["config.yaml", "--cluster-cidr", "10.42.0.0/16"],
    );
    std::fs::write(&cfg, "node-label: {a: b}\n").unwrap();
    assert_one_line_error(
        &kelp(&["server", "-c", c], &[]),
        &["config.yaml", "node-label"],
    );
    std::fs::write(&cfg, "[not, a, mapping]\n").unwrap();
    assert_one_line_error(
        &kelp(&["server", "-c", c], &[]),
        &["config.yaml", "mapping"],
    );
    std::fs::write(&cfg, "data-dir: [unclosed\n").unwrap();
    assert_one_line_error(&kelp(&["server", "-c", c], &[]), &["config.yaml"]);
}

/// `token show` reads `<data-dir>/server/token`; its error names the path,
/// which shows where data-dir came from.
fn effective_data_dir(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut all = vec!["token", "show"];
    all.extend_from_slice(args);
    let err = assert_one_line_error(&kelp(&all, env), &["server/token"]);
    let start = err.find("cannot read ").expect("path in error") + "cannot read ".len();
    let path = &err[start..err.find("/server/token").unwrap()];
    path.to_string()
}

#[test]
fn precedence_is_flag_then_env_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    let c = cfg.to_str().unwrap();
    std::fs::write(&cfg, "# empty\n").unwrap();
    // The default, from --help (the real /var/lib/kelp may hold a token).
    let help =
        String::from_utf8_lossy(&kelp(&["token", "show", "--help"], &[]).stdout).into_owned();
    assert!(help.contains("[default: /var/lib/kelp]"), "{help}");
    std::fs::write(&cfg, "data-dir: /from/file\ncluster-cidr: 10.42.0.0/16\n").unwrap();
    assert_eq!(effective_data_dir(&["-c", c], &[]), "/from/file");
    assert_eq!(
        effective_data_dir(&["-c", c], &[("KELP_DATA_DIR", "/from/env")]),
        "/from/env"
    );
    assert_eq!(
        effective_data_dir(
            &["-c", c, "--data-dir", "/from/flag"],
            &[("KELP_DATA_DIR", "/from/env")]
        ),
        "/from/flag"
    );
    // KELP_CONFIG points at the file too.
    assert_eq!(effective_data_dir(&[], &[("KELP_CONFIG", c)]), "/from/file");
}

fn seed_store(data_dir: &Path, keys: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SledStore::open(common::manual_compaction(data_dir.join("server/db"))).unwrap();
        for i in 0..keys {
            store
                .create(
                    &format!("/registry/configmaps/default/cm{i}"),
                    Bytes::from(format!("{{\"i\":{i}}}")),
                )
                .await
                .unwrap();
        }
    });
}

#[test]
fn snapshot_save_and_restore_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    let none = dir.path().join("empty.yaml");
    std::fs::write(&none, "").unwrap();
    let none = none.to_str().unwrap();
    seed_store(&src, 300);
    let file = dir.path().join("snap.db");
    let f = file.to_str().unwrap();
    let o = kelp(
        &[
            "snapshot",
            "save",
            f,
            "-c",
            none,
            "--data-dir",
            src.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("saved 300 keys at revision 300"));
    let o = kelp(
        &[
            "snapshot",
            "restore",
            f,
            "-c",
            none,
            "--data-dir",
            dst.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // Refuses a non-empty target without --force, then replaces it with it.
    assert_one_line_error(
        &kelp(
            &[
                "snapshot",
                "restore",
                f,
                "-c",
                none,
                "-d",
                dst.to_str().unwrap(),
            ],
            &[],
        ),
        &["--force"],
    );
    seed_store(&dir.path().join("other"), 5);
    let o = kelp(
        &[
            "snapshot",
            "restore",
            f,
            "-c",
            none,
            "-d",
            dir.path().join("other").to_str().unwrap(),
            "--force",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for d in [&dst, &dir.path().join("other")] {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = SledStore::open(common::manual_compaction(d.join("server/db"))).unwrap();
            let r = store
                .range(kelp::store::RangeRequest {
                    prefix: "/registry/".into(),
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(r.kvs.len(), 300);
            assert_eq!(store.current_revision(), 300);
        });
    }
    // A damaged snapshot is refused and the existing store is untouched.
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();
    assert_one_line_error(
        &kelp(
            &[
                "snapshot",
                "restore",
                f,
                "-c",
                none,
                "-d",
                dst.to_str().unwrap(),
                "--force",
            ],
            &[],
        ),
        &["snapshot"],
    );
    assert!(dst.join("server/db").exists());
    // Saving a store that a running process holds is a clear error.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let _held = rt.block_on(async {
        SledStore::open(common::manual_compaction(src.join("server/db"))).unwrap()
    });
    assert_one_line_error(
        &kelp(
            &[
                "snapshot",
                "save",
                f,
                "-c",
                none,
                "-d",
                src.to_str().unwrap(),
            ],
            &[],
        ),
        &["in use"],
    );
}

/// Runs kelp in a private mount namespace with a fresh /sys mounted, as
/// `ip netns exec` does: no cgroup filesystem is visible there.
fn kelp_without_cgroup_mounts(args: &[&str]) -> Output {
    common::node::require_node_prerequisites();
    // Lazily detaching /sys/fs/cgroup takes every cgroup mount with it.
    let script = r#"umount -l /sys/fs/cgroup && exec "$@""#;
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_kelp"))
        .args(args)
        .env_remove("KELP_DATA_DIR")
        .env_remove("KELP_CONFIG")
        .env("RUST_LOG", "off")
        .output()
        .expect("run unshare (util-linux)")
}

#[test]
fn check_config_reports_each_check_and_missing_cgroup_mounts() {
    let here = kelp(&["check-config"], &[]);
    let out = String::from_utf8_lossy(&here.stdout).into_owned();
    // Every line is a verdict, and the report covers what a node needs.
    for line in out.lines().filter(|l| !l.starts_with("this host")) {
        assert!(
            ["PASS ", "WARN ", "FAIL "]
                .iter()
                .any(|v| line.starts_with(v)),
            "{line:?} in\n{out}"
        );
    }
    for check in [
        "overlay filesystem",
        "veth",
        "nf_tables",
        "br_netfilter",
        "vxlan",
        "cgroup controller memory",
        "swap",
        "ip_forward",
        "containerd",
        "runc",
        "port 6443/tcp",
        "port 10250/tcp",
        "port 8472/udp",
        "disk space",
    ] {
        assert!(
            out.lines().any(|l| l[5..].starts_with(check)),
            "no {check} line in\n{out}"
        );
    }
    let verdict = |out: &str, name: &str| {
        out.lines()
            .find(|l| l.len() > 5 && l[5..].starts_with(name))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {name} line in {out}"))
    };
    // This machine runs containerd 1.6 (host-facts): the version is read.
    assert!(verdict(&out, "containerd").contains("1.6."), "{out}");
    assert!(
        verdict(&out, "cgroups visible").starts_with("PASS"),
        "{out}"
    );
    let fails = out.lines().filter(|l| l.starts_with("FAIL")).count();
    assert_eq!(here.status.success(), fails == 0, "{out}");

    let hidden = kelp_without_cgroup_mounts(&["check-config"]);
    let out = String::from_utf8_lossy(&hidden.stdout).into_owned();
    assert_eq!(hidden.status.code(), Some(1), "{out}\n{}", stderr(&hidden));
    let line = verdict(&out, "cgroups visible");
    assert!(line.starts_with("FAIL"), "{line}");
    assert!(line.contains("no cgroup filesystem is mounted"), "{line}");
    assert!(line.contains("ip netns exec"), "{line}");
    assert!(
        stderr(&hidden).contains("check(s) failed"),
        "{}",
        stderr(&hidden)
    );
}

#[test]
fn node_agent_refuses_to_start_without_cgroup_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap()
            .to_string()
    };
    let data = dir.path().join("data");
    let kubeconfig = dir.path().join("kubeconfig.yaml");
    let run_dir = dir.path().join("run");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "").unwrap();
    let o = kelp_without_cgroup_mounts(&[
        "server",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
        "--bind-address",
        "127.0.0.1",
        "--node-ip",
        "127.0.0.1",
        "--https-listen-port",
        &free_port(),
        "--kubelet-port",
        &free_port(),
        "--write-kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--run-dir",
        run_dir.to_str().unwrap(),
    ]);
    let err = assert_one_line_error(
        &o,
        &[
            "cannot start the node agent",
            "no cgroup filesystem is mounted",
        ],
    );
    assert!(err.contains("nsenter --net="), "{err}");
    // It stopped before starting containerd.
    assert!(!run_dir.join("containerd/containerd.sock").exists());
}

#[test]
fn kelp_kubectl_runs_the_kubectl_on_path_and_a_symlink_never_runs_itself() {
    let kubectl = common::cluster::kubectl_path();
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    let links = dir.path().join("links");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::create_dir_all(&links).unwrap();
    std::os::unix::fs::symlink(&kubectl, real.join("kubectl")).unwrap();
    // What an install makes where no kubectl exists.
    let link = links.join("kubectl");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kelp"), &link).unwrap();
    let path = |dirs: &[&Path]| {
        // Nothing else: this machine may have a kubectl in /usr/bin.
        std::env::join_paths(dirs.iter().copied())
            .unwrap()
            .into_string()
            .unwrap()
    };

    // `kelp kubectl` and the symlink both reach the real kubectl, with
    // flags passed through untouched.
    let with_real = path(&[&links, &real]);
    let o = kelp(
        &["kubectl", "version", "--client", "-o", "json"],
        &[("PATH", &with_real)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("clientVersion"));
    let o = Command::new(&link)
        .args(["version", "--client", "-o", "json"])
        .env("PATH", &with_real)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("clientVersion"));

    // With only the symlink on PATH: a clear error, not a loop.
    let only_link = path(&[&links]);
    let o = Command::new(&link)
        .args(["get", "nodes"])
        .env("PATH", &only_link)
        .output()
        .unwrap();
    assert_one_line_error(
        &o,
        &["no kubectl on PATH", "KUBECONFIG=/etc/kelp/kelp.yaml"],
    );
    let o = kelp(&["kubectl", "get", "pods"], &[("PATH", &only_link)]);
    assert_one_line_error(&o, &["no kubectl on PATH"]);
}
