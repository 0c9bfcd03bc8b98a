use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use super::Cluster;

async fn connect(
    cluster: &Cluster,
    path: &str,
    protocol: &str,
) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let url = format!("ws://{}{path}", cluster.kubelet);
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", protocol.parse().unwrap());
    let tcp = TcpStream::connect(cluster.kubelet).await.unwrap();
    let (ws, response) = tokio_tungstenite::client_async(request, tcp).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
    ws
}

async fn next_binary(ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>) -> Bytes {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap();
        match next.unwrap().unwrap() {
            Message::Binary(data) => return data,
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_port_forward_announces_ports_and_relays_data() {
    let cluster = Cluster::start().await;
    let port = cluster.echo_port;
    let mut ws = connect(
        &cluster,
        &format!("/portForward/default/p?ports={port}"),
        "v4.channel.k8s.io",
    )
    .await;
    let le = port.to_le_bytes();
    assert_eq!(
        next_binary(&mut ws).await,
        Bytes::from(vec![0, le[0], le[1]])
    );
    assert_eq!(
        next_binary(&mut ws).await,
        Bytes::from(vec![1, le[0], le[1]])
    );
    ws.send(Message::Binary(Bytes::from_static(b"\x00hello")))
        .await
        .unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < 5 {
        let data = next_binary(&mut ws).await;
        assert_eq!(data[0], 0, "data arrives on the data channel");
        echoed.extend_from_slice(&data[1..]);
    }
    assert_eq!(echoed, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_port_forward_reports_dial_failures_on_the_error_channel() {
    let cluster = Cluster::start().await;
    // Port 1 on loopback is closed on any sane test machine.
    let mut ws = connect(
        &cluster,
        "/portForward/default/p?port=1",
        "v4.channel.k8s.io",
    )
    .await;
    assert_eq!(next_binary(&mut ws).await[0], 0);
    assert_eq!(next_binary(&mut ws).await[0], 1);
    let error = next_binary(&mut ws).await;
    assert_eq!(error[0], 1);
    let text = String::from_utf8_lossy(&error[1..]);
    assert!(
        text.starts_with("error forwarding port 1 to pod p, uid :"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v4_exec_reports_a_json_status_and_closes_normally() {
    let cluster = Cluster::start().await;
    let path = "/exec/default/p/c?command=sh&command=-c&command=printf%20hi%3B%20exit%203&output=1";
    let mut ws = connect(&cluster, path, "v4.channel.k8s.io").await;
    assert_eq!(
        next_binary(&mut ws).await,
        Bytes::from_static(&[1]),
        "ready signal on stdout"
    );
    let mut stdout = Vec::new();
    let status = loop {
        let data = next_binary(&mut ws).await;
        match data[0] {
            1 => stdout.extend_from_slice(&data[1..]),
            3 => break serde_json::from_slice::<serde_json::Value>(&data[1..]).unwrap(),
            other => panic!("unexpected channel {other}"),
        }
    };
    assert_eq!(stdout, b"hi");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    let close = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap();
    assert!(matches!(close, Some(Ok(Message::Close(_)))), "{close:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_upgrade_errors_are_status_json_with_http_codes() {
    let cluster = Cluster::start().await;
    let mut tcp = TcpStream::connect(cluster.kubelet).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tcp.write_all(
        b"GET /exec/default/p/c?command=ls HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(
        raw.contains(r#""reason":"BadRequest""#) && raw.contains("at least 1 of stdin"),
        "{raw}"
    );
}
