use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Cluster, kubectl_path, read_exactly};

const TIMEOUT: Duration = Duration::from_secs(60);

/// kubectl must be there (./tests/run.sh installs it): a missing one fails the test.
fn have_kubectl() -> bool {
    let path = kubectl_path();
    assert!(
        path.exists(),
        "kubectl not found at {} (run ./tests/run.sh)",
        path.display()
    );
    true
}

async fn output(mut cmd: tokio::process::Command, stdin: Option<&[u8]>) -> std::process::Output {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(data).await.unwrap();
        drop(pipe);
    }
    tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_relays_stdout_stderr_and_the_exit_code() {
    if !have_kubectl() {
        return;
    }
    let cluster = Cluster::start().await;
    let cmd = cluster.kubectl(&[
        "exec",
        "p",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 7",
    ]);
    let out = output(cmd, None).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("err\n"), "stderr: {stderr}");
    assert_eq!(out.status.code(), Some(7), "stderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_exec_with_stdin_echoes_through_cat() {
    if !have_kubectl() {
        return;
    }
    let cluster = Cluster::start().await;
    let input = b"hello stdin\nsecond line\n";
    let out = output(
        cluster.kubectl(&["exec", "-i", "p", "--", "cat"]),
        Some(input),
    )
    .await;
    assert_eq!(
        out.stdout,
        input,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_attach_with_stdin_reaches_the_main_process() {
    if !have_kubectl() {
        return;
    }
    let cluster = Cluster::start().await;
    let out = output(
        cluster.kubectl(&["attach", "-i", "p", "-c", "c"]),
        Some(b"attached\n"),
    )
    .await;
    assert_eq!(
        out.stdout,
        b"attached\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_streams_the_backend_log() {
    if !have_kubectl() {
        return;
    }
    let cluster = Cluster::start().await;
    let out = output(cluster.kubectl(&["logs", "p", "--tail=5"]), None).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("log of p/c\n"),
        "stdout: {stdout} stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("tailLines=5"), "{stdout}");
}

/// Runs `kubectl port-forward` to the echo server and returns it with the local port.
async fn start_port_forward(cluster: &Cluster, websockets: bool) -> (tokio::process::Child, u16) {
    let target = format!(":{}", cluster.echo_port);
    let mut cmd = cluster.kubectl(&["port-forward", "--address", "127.0.0.1", "pod/p", &target]);
    cmd.env(
        "KUBECTL_PORT_FORWARD_WEBSOCKETS",
        if websockets { "true" } else { "false" },
    );
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // "Forwarding from 127.0.0.1:PORT -> REMOTE"
    let port = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("127.0.0.1:"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected kubectl output: {line}"));
    // Keep draining stdout so kubectl never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

async fn round_trip(port: u16, len: usize, seed: u8) {
    let payload: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    let conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let (mut r, mut w) = conn.into_split();
    let sent = payload.clone();
    let writer = tokio::spawn(async move {
        w.write_all(&sent).await.unwrap();
        w
    });
    let echoed = tokio::time::timeout(TIMEOUT, read_exactly(&mut r, len))
        .await
        .unwrap();
    assert!(echoed == payload, "echoed bytes differ (seed {seed})");
    drop(writer.await.unwrap());
}

async fn port_forward_case(websockets: bool) {
    if !have_kubectl() {
        return;
    }
    let cluster = Cluster::start().await;
    let (mut child, port) = start_port_forward(&cluster, websockets).await;
    round_trip(port, 10 * 1024 * 1024, 1).await;
    // Two concurrent connections over the same forwarding session.
    tokio::join!(
        round_trip(port, 3 * 1024 * 1024, 2),
        round_trip(port, 1024 * 1024, 3)
    );
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_over_websocket_tunnel_moves_10_mib_exactly() {
    port_forward_case(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_over_plain_spdy_moves_10_mib_exactly() {
    port_forward_case(false).await;
}
