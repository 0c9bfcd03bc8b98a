//! A real registry for tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on loopback of the calling thread's network
//! namespace, optionally with htpasswd auth, and `skopeo` to push images
//! into it. The registry's access log is kept, so tests can count blob
//! fetches. The process is killed when the value drops.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;

/// How a registry checks clients.
pub enum Auth<'a> {
    /// Anyone may pull and push.
    None,
    /// htpasswd (HTTP basic) with `user:password`.
    Htpasswd(&'a str),
    /// Bearer tokens from a token server (run by the test) that issues them
    /// to `user:password` (distribution's `auth: token`).
    Token(&'a str),
}

/// A running registry.
pub struct Registry {
    child: Child,
    token_server: Option<TokenServer>,
    dir: PathBuf,
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// `user:password` when htpasswd auth is on.
    pub creds: Option<String>,
}

fn require(bin: &str, package: &str) {
    super::node::require_binary(bin, package);
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
        match creds {
            Some(c) => Self::start_with(dir, Auth::Htpasswd(c), false),
            None => Self::start_with(dir, Auth::None, false),
        }
    }

    /// Starts a registry storing under `dir` with `auth`; with `tls` it
    /// serves HTTPS with a certificate for 127.0.0.1 from a test CA whose
    /// certificate is `dir/ca.pem`.
    pub fn start_with(dir: &Path, auth_mode: Auth, tls: bool) -> Registry {
        require("docker-registry", "docker-registry");
        require("skopeo", "skopeo");
        std::fs::create_dir_all(dir).expect("registry dir");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut auth = String::new();
        let mut token_server = None;
        let creds = match auth_mode {
            Auth::None => None,
            Auth::Htpasswd(c) | Auth::Token(c) => Some(c),
        };
        if let Auth::Token(creds) = auth_mode {
            let server = TokenServer::start(dir, creds);
            auth = format!(
                "auth:\n  token:\n    realm: http://{}/token\n    service: kelp-test-registry\n    issuer: kelp-test-issuer\n    rootcertbundle: {}\n",
                server.addr,
                dir.join("token.crt").display()
            );
            token_server = Some(server);
        } else if let Some(creds) = creds {
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
        let tls_config = if tls {
            write_test_ca(dir);
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.join("server.pem").display(),
                dir.join("server-key.pem").display()
            )
        } else {
            String::new()
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n{tls_config}{auth}",
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
            token_server,
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
        self.skopeo_push(layout, tag, repo, &["--all"]);
    }

    /// Pushes only this host's image of the layout, converted to a Docker
    /// v2 schema 2 manifest.
    pub fn push_docker_v2s2(&self, layout: &Path, tag: &str, repo: &str) {
        self.skopeo_push(layout, tag, repo, &["--format", "v2s2"]);
    }

    /// The manifest `repo:tag` as the registry serves it.
    pub fn raw_manifest(&self, repo_tag: &str) -> String {
        let mut cmd = Command::new("skopeo");
        cmd.args(["inspect", "--raw", "--tls-verify=false"]);
        if let Some(c) = &self.creds {
            cmd.args(["--creds", c]);
        }
        let out = cmd
            .arg(format!("docker://{}/{repo_tag}", self.host))
            .output()
            .expect("skopeo runs");
        assert!(
            out.status.success(),
            "skopeo inspect: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn skopeo_push(&self, layout: &Path, tag: &str, repo: &str, flags: &[&str]) {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "--dest-tls-verify=false"]).args(flags);
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
        self.token_server.take();
    }
}

/// A CA (`ca.pem`) and a serving certificate for 127.0.0.1 signed by it
/// (`server.pem`, `server-key.pem`) in `dir`.
fn write_test_ca(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(vec![]).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kelp test registry CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().expect("server key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&key, &issuer)
        .expect("server certificate");
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).expect("write ca.pem");
    std::fs::write(dir.join("server.pem"), cert.pem()).expect("write server.pem");
    std::fs::write(dir.join("server-key.pem"), key.serialize_pem()).expect("write key");
}

/// Reads one HTTP request head (up to the blank line).
fn read_head(conn: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.push(byte[0]);
    }
    String::from_utf8(head).ok()
}

/// A registry token server: checks basic credentials and issues ES256 JWTs
/// (certificate in the `x5c` header, trusted by the registry's
/// `rootcertbundle`) granting whatever the `scope` asks.
struct TokenServer {
    addr: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path, creds: &str) -> TokenServer {
        let key = rcgen::KeyPair::generate().expect("P-256 key");
        let cert = rcgen::CertificateParams::new(vec!["kelp-test-token-issuer".to_string()])
            .expect("params")
            .self_signed(&key)
            .expect("certificate");
        std::fs::write(dir.join("token.crt"), cert.pem()).expect("write token cert");
        let signer = ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .expect("signing key");
        let x5c = base64::engine::general_purpose::STANDARD.encode(cert.der());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr").to_string();
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(creds)
        );
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::park_timeout(Duration::from_millis(20));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let Some(head) = read_head(&mut conn) else {
                    continue;
                };
                let authorized = head.lines().any(|l| {
                    l.to_ascii_lowercase().starts_with("authorization:")
                        && l[14..].trim() == expected
                });
                let response = if authorized {
                    let token = issue(&signer, &x5c, &head);
                    let body = format!(
                        r#"{{"token":"{token}","access_token":"{token}","expires_in":300}}"#
                    );
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    let body = r#"{"details":"incorrect username or password"}"#;
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = conn.write_all(response.as_bytes());
            }
        });
        TokenServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A JWT granting every `scope=` in the request line.
fn issue(signer: &ring::signature::EcdsaKeyPair, x5c: &str, head: &str) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let access: Vec<serde_json::Value> = form_urlencoded::parse(query.as_bytes())
        .filter(|(k, _)| k == "scope")
        .filter_map(|(_, v)| {
            let mut parts = v.split(':');
            let kind = parts.next()?.to_string();
            let name = parts.next()?.to_string();
            let actions: Vec<String> = parts.next()?.split(',').map(str::to_string).collect();
            Some(serde_json::json!({"type": kind, "name": name, "actions": actions}))
        })
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "ES256", "x5c": [x5c]});
    let claims = serde_json::json!({
        "iss": "kelp-test-issuer", "sub": "alice", "aud": "kelp-test-registry",
        "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("{now}-{}", access.len()),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = signer
        .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
        .expect("sign");
    format!("{signing_input}.{}", b64(sig.as_ref()))
}

/// A TCP proxy on loopback in front of `upstream` that breaks the first
/// response longer than `cut_after` bytes off after that many bytes: a
/// registry dropping a connection mid-layer.
pub struct FlakyProxy {
    /// `127.0.0.1:PORT`.
    pub host: String,
    /// How many connections were cut.
    pub cuts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FlakyProxy {
    /// Starts the proxy.
    pub fn start(upstream: &str, cut_after: usize) -> FlakyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let host = listener.local_addr().expect("addr").to_string();
        let cuts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (cuts2, stop2, upstream) = (cuts.clone(), stop.clone(), upstream.to_string());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::park_timeout(Duration::from_millis(20));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut c_in, mut s_out) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut s_out);
                    let _ = s_out.shutdown(std::net::Shutdown::Write);
                });
                let cuts = cuts2.clone();
                std::thread::spawn(move || {
                    let (mut server, mut client) = (server, client);
                    let mut sent = 0usize;
                    let mut buf = [0u8; 16 * 1024];
                    loop {
                        let n = match server.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if sent + n > cut_after && cuts.load(Ordering::SeqCst) == 0 {
                            let _ = client.write_all(&buf[..cut_after - sent]);
                            cuts.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if client.write_all(&buf[..n]).is_err() {
                            break;
                        }
                        sent += n;
                    }
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    let _ = server.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        FlakyProxy { host, cuts, stop }
    }
}

impl Drop for FlakyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
