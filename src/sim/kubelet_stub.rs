//! The kubelet port of the fake nodes: a TLS server on loopback that
//! answers every request (logs, exec, attach, port-forward, node proxy)
//! with a clear `501 Not Implemented` Status.
//!
//! Fake nodes advertise 127.0.0.1 and this server's port, so when a client
//! runs `kubectl exec` or `logs` against a pod on one, the apiserver dials
//! this process and never an address off this machine. The certificate is
//! signed by the cluster CA, as a kubelet's is, so the apiserver's TLS check
//! passes and the user sees the message instead of a handshake error.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;

/// What every request to a fake node's kubelet port gets.
pub const NO_CONTAINERS: &str = "sim node: no containers run here";

/// The Status body of the answer.
fn status_body() -> Bytes {
    let status = serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": NO_CONTAINERS, "code": 501,
    });
    Bytes::from(status.to_string())
}

async fn answer(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(status_body()));
    *response.status_mut() = StatusCode::NOT_IMPLEMENTED;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// Serves `listener` with `tls` until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    cancel: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = cancel.cancelled() => return,
        };
        let Ok((tcp, _)) = accepted else {
            // Out of descriptors is transient; do not spin on it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
            let Ok(Ok(stream)) = handshake.await else {
                return;
            };
            let service = hyper::service::service_fn(answer);
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            // Bounded: a connection never outlives a minute here.
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        });
    }
}
