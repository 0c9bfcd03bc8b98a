//! `probe_once` against real servers on 127.0.0.1 (and one inside a netns).

use super::*;
use crate::kubelet::netns;
use k8s_openapi::api::core::v1::{GRPCAction, HTTPGetAction, HTTPHeader, TCPSocketAction};
use std::net::SocketAddr;
use std::path::Path;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

struct NoExec;

impl ExecProber for NoExec {
    fn exec(
        &self,
        _c: Vec<String>,
        _t: Duration,
    ) -> BoxFuture<'static, Result<(i32, Vec<u8>), String>> {
        Box::pin(async { Err("no exec in these tests".to_string()) })
    }
}

fn target(ports: &[(&str, u16)]) -> ProbeTarget {
    ProbeTarget {
        netns: None,
        pod_ip: None,
        container_ports: ports.iter().map(|(n, p)| (n.to_string(), *p)).collect(),
        exec: Arc::new(NoExec),
    }
}

/// Answers one request per connection according to its path.
async fn respond<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
    let (status, location) = match path.as_str() {
        "/ok" => ("200 OK", ""),
        "/fail" => ("500 Internal Server Error", ""),
        "/redir" => ("302 Found", "/ok"),
        "/redir-fail" => ("302 Found", "/fail"),
        "/away" => ("302 Found", "http://elsewhere.invalid/fail"),
        "/loop" => ("302 Found", "/loop"),
        "/echo"
            if text.contains("user-agent: kube-probe/1.37") && text.contains("x-custom: yes") =>
        {
            ("200 OK", "")
        }
        "/echo" => ("400 Bad Request", ""),
        "/hang" => {
            std::future::pending::<()>().await;
            ("200 OK", "")
        }
        _ => ("404 Not Found", ""),
    };
    let loc = if location.is_empty() {
        String::new()
    } else {
        format!("Location: {location}\r\n")
    };
    let resp = format!("HTTP/1.1 {status}\r\n{loc}Content-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = s.write_all(resp.as_bytes()).await;
}

async fn serve_http(listener: TcpListener) {
    while let Ok((s, _)) = listener.accept().await {
        tokio::spawn(respond(s));
    }
}

async fn http_server() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(serve_http(l));
    port
}

fn http_probe(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port,
            path: Some(path.into()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn failure(r: ProbeResult) -> String {
    match r {
        ProbeResult::Failure(m) => m,
        ProbeResult::Success => "<success>".into(),
    }
}

#[tokio::test]
async fn http_status_decides_the_result() {
    let port = http_server().await;
    let t = target(&[("web", port)]);
    let p = |path: &str| http_probe(IntOrString::Int(i32::from(port)), path);
    assert_eq!(probe_once(&p("/ok"), &t).await, ProbeResult::Success);
    assert_eq!(
        failure(probe_once(&p("/fail"), &t).await),
        "HTTP probe failed with statuscode: 500"
    );
    assert_eq!(
        failure(probe_once(&p("/nope"), &t).await),
        "HTTP probe failed with statuscode: 404"
    );
    let named = http_probe(IntOrString::String("web".into()), "/ok");
    assert_eq!(probe_once(&named, &t).await, ProbeResult::Success);
    let missing = http_probe(IntOrString::String("admin".into()), "/ok");
    assert_eq!(
        failure(probe_once(&missing, &t).await),
        "port admin not found"
    );
}

#[tokio::test]
async fn http_redirects_follow_same_host_only() {
    let port = http_server().await;
    let t = target(&[]);
    let p = |path: &str| http_probe(IntOrString::Int(i32::from(port)), path);
    assert_eq!(probe_once(&p("/redir"), &t).await, ProbeResult::Success);
    let msg = failure(probe_once(&p("/redir-fail"), &t).await);
    assert_eq!(msg, "HTTP probe failed with statuscode: 500");
    assert_eq!(
        probe_once(&p("/away"), &t).await,
        ProbeResult::Success,
        "other host: not followed"
    );
    let msg = failure(probe_once(&p("/loop"), &t).await);
    assert!(msg.ends_with("stopped after 10 redirects"), "{msg}");
}

#[tokio::test]
async fn http_sends_kubelet_headers_and_probe_headers() {
    let port = http_server().await;
    let mut p = http_probe(IntOrString::Int(i32::from(port)), "/echo");
    if let Some(get) = p.http_get.as_mut() {
        get.http_headers = Some(vec![HTTPHeader {
            name: "X-Custom".into(),
            value: "yes".into(),
        }]);
    }
    assert_eq!(probe_once(&p, &target(&[])).await, ProbeResult::Success);
}

#[tokio::test]
async fn http_timeout_and_refusal_are_worded_like_go() {
    let port = http_server().await;
    let mut p = http_probe(IntOrString::Int(i32::from(port)), "/hang");
    p.timeout_seconds = Some(1);
    let msg = failure(probe_once(&p, &target(&[])).await);
    assert_eq!(
        msg,
        format!(
            "Get \"http://127.0.0.1:{port}/hang\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        )
    );
    let closed = closed_port().await;
    let msg = failure(
        probe_once(
            &http_probe(IntOrString::Int(i32::from(closed)), "/"),
            &target(&[]),
        )
        .await,
    );
    assert_eq!(
        msg,
        format!(
            "Get \"http://127.0.0.1:{closed}/\": dial tcp 127.0.0.1:{closed}: connect: connection refused"
        )
    );
}

async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    l.local_addr().expect("addr").port()
}

#[tokio::test]
async fn tcp_probe_connects_or_reports_go_error() {
    let port = http_server().await;
    let tcp = |port: u16| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(i32::from(port)),
            host: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        probe_once(&tcp(port), &target(&[])).await,
        ProbeResult::Success
    );
    let closed = closed_port().await;
    assert_eq!(
        failure(probe_once(&tcp(closed), &target(&[])).await),
        format!("dial tcp 127.0.0.1:{closed}: connect: connection refused")
    );
}

#[tokio::test]
async fn grpc_and_empty_probes_fail_with_a_reason() {
    let grpc = Probe {
        grpc: Some(GRPCAction {
            port: 1,
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        failure(probe_once(&grpc, &target(&[])).await),
        "grpc probes are not supported"
    );
    assert_eq!(
        failure(probe_once(&Probe::default(), &target(&[])).await),
        "missing probe handler"
    );
}

#[tokio::test]
async fn https_probe_skips_certificate_verification() {
    let cert = rcgen::generate_simple_self_signed(vec!["pod.invalid".to_string()]).expect("cert");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            if let Ok(tls) = acceptor.accept(s).await {
                tokio::spawn(respond(tls));
            }
        }
    });
    let mut p = http_probe(IntOrString::Int(i32::from(port)), "/ok");
    if let Some(get) = p.http_get.as_mut() {
        get.scheme = Some("HTTPS".into());
    }
    assert_eq!(probe_once(&p, &target(&[])).await, ProbeResult::Success);
}

#[tokio::test]
async fn probes_reach_a_pod_inside_its_netns() {
    let name = format!("kelp-test-probe-{}", std::process::id());
    let path = netns::create(Path::new(netns::DEFAULT_NETNS_DIR), &name).expect("netns");
    struct Cleanup<'a>(&'a Path);
    impl Drop for Cleanup<'_> {
        fn drop(&mut self) {
            let _ = netns::remove(self.0);
        }
    }
    let _cleanup = Cleanup(&path);
    let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let l = netns::bind_tcp(&path, any).await.expect("bind in netns");
    let port = l.local_addr().expect("addr").port();
    tokio::spawn(serve_http(l));
    let mut t = target(&[]);
    t.netns = Some(path.clone());
    let p = http_probe(IntOrString::Int(i32::from(port)), "/ok");
    assert_eq!(probe_once(&p, &t).await, ProbeResult::Success);
    let host_side = failure(probe_once(&p, &target(&[])).await);
    assert!(host_side.contains("connection refused"), "{host_side}");
}
