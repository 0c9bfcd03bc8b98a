//! A small HTTPS server in the test process, standing in for the servers
//! users plug into the API: an admission webhook, an aggregated API server.
//! Each request is handed to a closure; every request seen is recorded.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers, lower-cased names.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Seen {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to one request: status, content type, body.
pub type Answer = (u16, &'static str, Vec<u8>);

/// A running server; it stops when dropped.
pub struct ExtensionServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Every request so far.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ExtensionServer {
    /// Serves `tls` on `bind` (port 0 picks one), answering with `handler`.
    pub fn start(
        bind: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        handler: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
    ) -> ExtensionServer {
        let listener = std::net::TcpListener::bind(bind).expect("bind the extension server");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("local addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let handler = Arc::new(handler);
        let recorded = seen.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(serve(listener, tls, handler, recorded, stopped));
        });
        ExtensionServer {
            addr,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The requests seen so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }
}

impl Drop for ExtensionServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    handler: Arc<dyn Fn(&Seen) -> Answer + Send + Sync>,
    seen: Arc<Mutex<Vec<Seen>>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, _) = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let handler = handler.clone();
                let seen = seen.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes().to_vec())
                        .unwrap_or_default();
                    let request = Seen {
                        method: parts.method.to_string(),
                        path: parts
                            .uri
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        headers: parts
                            .headers
                            .iter()
                            .map(|(n, v)| {
                                (n.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                            })
                            .collect(),
                        body,
                    };
                    let (code, content_type, body) = handler(&request);
                    seen.lock().push(request);
                    let response = hyper::Response::builder()
                        .status(code)
                        .header("content-type", content_type)
                        .body(Full::new(Bytes::from(body)))
                        .expect("response");
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A CA of the test's own and a serving certificate it signed for `dns`
/// and `ips`: (server config, CA PEM). Client certificates are optional.
pub fn own_ca_tls(
    dir: &std::path::Path,
    dns: &[&str],
    ips: &[std::net::IpAddr],
) -> (Arc<rustls::ServerConfig>, String) {
    let pki = kelp::pki::ClusterPki::load_or_create(&kelp::pki::PkiConfig {
        tls_dir: dir.to_path_buf(),
        dns_names: vec!["test-ca".into()],
        ips: vec![],
    })
    .expect("a test CA");
    let dns: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
    let (cert, key) = pki.issue_serving_cert(&dns, ips).expect("serving cert");
    (
        pki.server_tls_config_with(&cert, &key)
            .expect("server config"),
        pki.ca_pem().to_string(),
    )
}
