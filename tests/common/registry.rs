//! A real registry for tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on loopback of the calling thread's network
//! namespace, optionally with htpasswd auth, and `skopeo` to push images
//! into it. The registry's access log is kept, so tests can count blob
//! fetches. The process is killed when the value drops.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running registry.
pub struct Registry {
    child: Child,
    dir: PathBuf,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// `user:password` when htpasswd auth is on.
    pub creds: Option<String>,
}

fn require(bin: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{bin} is not installed: apt-get install {package} (./tests/run.sh does this)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Registry {
    /// Starts a registry storing under `dir`; with `creds` (`user:password`)
    /// it requires htpasswd (basic) auth.
    pub fn start(dir: &Path, creds: Option<&str>) -> Registry {
        require("docker-registry", "docker-registry");
        require("skopeo", "skopeo");
        std::fs::create_dir_all(dir).expect("registry dir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        if let Some(creds) = creds {
            require("htpasswd", "apache2-utils");
            let (user, password) = creds.split_once(':').expect("user:password");
            let file = dir.join("htpasswd");
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("htpasswd runs");
            assert!(out.status.success(), "htpasswd");
            std::fs::write(&file, out.stdout).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: kelp-test\n    path: {}\n",
                file.display()
            );
        }
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{auth}",
            dir.join("storage").display()
        );
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config).expect("write registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        let registry = Registry {
            child,
            dir: dir.to_path_buf(),
            host: host.clone(),
            creds: creds.map(str::to_string),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {host}:\n{}",
                registry.log()
            );
            std::thread::park_timeout(Duration::from_millis(100));
        }
        registry
    }

    /// The registry's log (access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// How many successful `GET`s of `/v2/<repo>/blobs/<digest>` the registry served.
    pub fn blob_gets(&self, repo: &str, digest: &str) -> usize {
        let needle = format!("\"GET /v2/{repo}/blobs/{digest} ");
        self.log()
            .lines()
            .filter(|l| l.contains(&needle) && (l.contains("\" 200 ") || l.contains("\" 206 ")))
            .count()
    }

    /// Pushes the OCI layout at `layout` (tag `tag`) as `<repo>:<tag>`, all platforms.
    pub fn push(&self, layout: &Path, tag: &str, repo: &str) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--all", "--dest-tls-verify=false"]);
        if let Some(c) = &self.creds {
            cmd.args(["--dest-creds", c]);
        }
        let out = cmd
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{repo}:{tag}", self.host))
            .output()
            .expect("skopeo runs");
        assert!(
            out.status.success(),
            "skopeo copy to {}/{repo}:{tag} failed: {}\n{}",
            self.host,
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
