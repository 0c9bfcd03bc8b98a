//! End-to-end tests: the real kubectl talks to a fake apiserver that splices pod
//! subresource requests byte-for-byte into this kubelet server, whose backend runs
//! local processes and dials a loopback echo server. Everything binds to 127.0.0.1;
//! spawned processes are killed on drop.

mod channels;
mod kubectl;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::*;

/// kubectl from `KELP_TEST_KUBECTL`, else the venv tests/run.sh makes.
fn kubectl_path() -> std::path::PathBuf {
    std::env::var_os("KELP_TEST_KUBECTL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/kubectl")
        })
}

/// A backend running real local processes and connecting to loopback ports.
struct LocalBackend;

async fn run_process(
    mut command: Vec<String>,
    streams: ExecStreams,
) -> Result<ExecOutcome, BackendError> {
    if command.is_empty() {
        command.push("cat".into());
    }
    let piped = |wanted: bool| {
        if wanted {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        }
    };
    let mut child = Command::new(&command[0])
        .args(&command[1..])
        .stdin(piped(streams.stdin.is_some()))
        .stdout(piped(streams.stdout.is_some()))
        .stderr(piped(streams.stderr.is_some()))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    let mut copies = Vec::new();
    if let (Some(mut from), Some(mut to)) = (streams.stdin, child.stdin.take()) {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        });
    }
    if let (Some(mut from), Some(mut to)) = (child.stdout.take(), streams.stdout) {
        copies.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        }));
    }
    if let (Some(mut from), Some(mut to)) = (child.stderr.take(), streams.stderr) {
        copies.push(tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from, &mut to).await;
        }));
    }
    let status = child
        .wait()
        .await
        .map_err(|e| BackendError::Internal(e.to_string()))?;
    for copy in copies {
        let _ = copy.await;
    }
    Ok(ExecOutcome::Exited(status.code().unwrap_or(128)))
}

impl NodeBackend for LocalBackend {
    fn container_logs(
        &self,
        target: ContainerTarget,
        query: String,
    ) -> BoxFuture<'static, Result<BoxStream<'static, std::io::Result<Bytes>>, BackendError>> {
        Box::pin(async move {
            let lines = vec![
                Ok(Bytes::from(format!(
                    "log of {}/{}\n",
                    target.pod.name, target.container
                ))),
                Ok(Bytes::from(format!("query {query}\n"))),
            ];
            Ok(Box::pin(futures::stream::iter(lines)) as BoxStream<'static, _>)
        })
    }

    fn exec(
        &self,
        _target: ContainerTarget,
        command: Vec<String>,
        streams: ExecStreams,
    ) -> BoxFuture<'static, Result<ExecOutcome, BackendError>> {
        Box::pin(run_process(command, streams))
    }

    fn attach(
        &self,
        _target: ContainerTarget,
        streams: ExecStreams,
    ) -> BoxFuture<'static, Result<ExecOutcome, BackendError>> {
        Box::pin(run_process(vec!["cat".into()], streams))
    }

    fn port_forward(
        &self,
        _pod: PodTarget,
        port: u16,
    ) -> BoxFuture<'static, Result<BoxedIo, BackendError>> {
        Box::pin(async move {
            let tcp = TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| BackendError::Unavailable(e.to_string()))?;
            Ok(Box::new(tcp) as BoxedIo)
        })
    }
}

/// A running kubelet + fake apiserver + echo server, torn down on drop.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub home: PathBuf,
    pub echo_port: u16,
    pub kubelet: std::net::SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

impl Cluster {
    pub async fn start() -> Self {
        let shutdown = CancellationToken::new();
        let kubelet_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let kubelet = kubelet_listener.local_addr().unwrap();
        tokio::spawn(serve(
            kubelet_listener,
            None,
            Arc::new(LocalBackend),
            None,
            shutdown.clone(),
        ));

        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        tokio::spawn(echo_server(echo, shutdown.clone()));

        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_port = api.local_addr().unwrap().port();
        tokio::spawn(fake_apiserver(api, kubelet, shutdown.clone()));

        let home =
            std::env::temp_dir().join(format!("kelp-streaming-{}-{api_port}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        let kubeconfig = home.join("kubeconfig");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{api_port}\n\
             users:\n- name: u\n  user: {{}}\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: default\n\
             current-context: x\n"
        );
        std::fs::write(&kubeconfig, config).unwrap();
        Self {
            kubeconfig,
            home,
            echo_port,
            kubelet,
            shutdown,
        }
    }

    /// A kubectl command wired to this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(kubectl_path());
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        cmd
    }
}

async fn echo_server(listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let (conn, _) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(c) => c, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        tokio::spawn(async move {
            let (mut r, mut w) = conn.into_split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
            let _ = w.shutdown().await;
        });
    }
}

async fn fake_apiserver(
    listener: TcpListener,
    kubelet: std::net::SocketAddr,
    shutdown: CancellationToken,
) {
    loop {
        let (conn, _) = tokio::select! {
            accepted = listener.accept() => match accepted { Ok(c) => c, Err(_) => return },
            _ = shutdown.cancelled() => return,
        };
        tokio::spawn(api_connection(conn, kubelet));
    }
}

const POD: &str = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"default","uid":"u1","resourceVersion":"1","creationTimestamp":"2024-01-01T00:00:00Z"},"spec":{"containers":[{"name":"c","image":"busybox"}]},"status":{"phase":"Running","containerStatuses":[{"name":"c","ready":true,"restartCount":0,"image":"busybox","imageID":"","state":{"running":{}}}]}}"#;

const DISCOVERY_CORE: &str = r#"{"kind":"APIGroupDiscoveryList","apiVersion":"apidiscovery.k8s.io/v2","metadata":{},"items":[{"metadata":{"creationTimestamp":null},"versions":[{"version":"v1","resources":[{"resource":"pods","responseKind":{"group":"","version":"v1","kind":"Pod"},"scope":"Namespaced","singularResource":"pod","shortNames":["po"],"verbs":["get","list"],"subresources":[{"subresource":"exec","responseKind":{"group":"","version":"v1","kind":"PodExecOptions"},"verbs":["create","get"]},{"subresource":"log","responseKind":{"group":"","version":"v1","kind":"Pod"},"verbs":["get"]},{"subresource":"portforward","responseKind":{"group":"","version":"v1","kind":"PodPortForwardOptions"},"verbs":["create","get"]},{"subresource":"attach","responseKind":{"group":"","version":"v1","kind":"PodAttachOptions"},"verbs":["create","get"]}]}],"freshness":"Current"}]}]}"#;
const DISCOVERY_EMPTY: &str = r#"{"kind":"APIGroupDiscoveryList","apiVersion":"apidiscovery.k8s.io/v2","metadata":{},"items":[]}"#;
const DISCOVERY_TYPE: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Serves one client connection: answers the few API reads kubectl makes and splices
/// pod subresources to the kubelet, as kelp's apiserver does.
async fn api_connection(conn: TcpStream, kubelet: std::net::SocketAddr) {
    let mut reader = BufReader::new(conn);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) if line == "\r\n" => break,
                Ok(_) => head.push(line),
            }
        }
        let Some(request_line) = head.first().cloned() else {
            return;
        };
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        if let ["api", "v1", "namespaces", ns, "pods", name, sub] = segments.as_slice() {
            let container = request::parse_query(query)
                .into_iter()
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v)
                .unwrap_or_else(|| "c".into());
            let new_path = match *sub {
                "exec" => format!("/exec/{ns}/{name}/{container}"),
                "attach" => format!("/attach/{ns}/{name}/{container}"),
                "log" => format!("/containerLogs/{ns}/{name}/{container}"),
                _ => format!("/portForward/{ns}/{name}"),
            };
            let mut upstream = TcpStream::connect(kubelet).await.unwrap();
            let mut forwarded = format!("{method} {new_path}?{query} HTTP/1.1\r\n");
            head.iter().skip(1).for_each(|h| forwarded.push_str(h));
            forwarded.push_str("\r\n");
            upstream.write_all(forwarded.as_bytes()).await.unwrap();
            upstream.write_all(reader.buffer()).await.unwrap();
            let mut client = reader.into_inner();
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            return;
        }
        let (status, content_type, body) = match segments.as_slice() {
            ["api"] => ("200 OK", DISCOVERY_TYPE, DISCOVERY_CORE),
            ["apis"] => ("200 OK", DISCOVERY_TYPE, DISCOVERY_EMPTY),
            ["api", "v1", "namespaces", "default", "pods", "p"] => {
                ("200 OK", "application/json", POD)
            }
            _ => (
                "404 Not Found",
                "application/json",
                r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
            ),
        };
        let response = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if reader
            .get_mut()
            .write_all(response.as_bytes())
            .await
            .is_err()
        {
            return;
        }
        let _ = reader.get_mut().flush().await;
        // Bodies of GETs are empty; nothing else to skip.
        let _ = reader.buffer().len();
    }
}

/// Reads from `conn` until `len` bytes arrived or the peer closed.
pub async fn read_exactly(conn: &mut (impl AsyncReadExt + Unpin), len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    conn.read_exact(&mut out).await.unwrap();
    out
}
