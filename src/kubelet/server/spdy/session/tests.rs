use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio_util::sync::CancellationToken;

use super::super::frame::{FLAG_FIN, Frame};
use super::super::headers::{HeaderBlock, HeaderCodec};
use super::*;

/// The client end of a session under test, speaking raw frames.
struct Client {
    reader: ReadHalf<DuplexStream>,
    writer: WriteHalf<DuplexStream>,
    rx_codec: HeaderCodec,
    tx_codec: HeaderCodec,
}

impl Client {
    async fn send(&mut self, frame: Frame) {
        let mut buf = Vec::new();
        frame.encode(&mut self.tx_codec, &mut buf).unwrap();
        self.writer.write_all(&buf).await.unwrap();
    }

    async fn recv(&mut self) -> Frame {
        let read = Frame::read(&mut self.reader, &mut self.rx_codec);
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    }

    async fn open(&mut self, id: u32, pairs: &[(&str, &str)]) {
        let headers = HeaderBlock(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        );
        let frame = Frame::SynStream {
            stream_id: id,
            associated_id: 0,
            priority: 0,
            flags: 0,
            headers,
        };
        self.send(frame).await;
    }
}

fn setup() -> (Client, mpsc::Receiver<IncomingStream>) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    let incoming = start(theirs, CancellationToken::new());
    let (reader, writer) = tokio::io::split(ours);
    let client = Client {
        reader,
        writer,
        rx_codec: HeaderCodec::new().unwrap(),
        tx_codec: HeaderCodec::new().unwrap(),
    };
    (client, incoming)
}

#[tokio::test]
async fn client_streams_are_delivered_replied_and_carry_data_both_ways() {
    let (mut client, mut incoming) = setup();
    client
        .open(1, &[("streamType", "data"), ("port", "80")])
        .await;
    let mut stream = incoming.recv().await.unwrap();
    assert_eq!(stream.id, 1);
    assert_eq!(stream.headers.get("streamtype"), Some("data"));
    stream.writer.reply().await.unwrap();
    assert_eq!(
        client.recv().await,
        Frame::SynReply {
            stream_id: 1,
            flags: 0,
            headers: HeaderBlock::default()
        }
    );

    let data = Bytes::from_static(b"ping");
    client
        .send(Frame::Data {
            stream_id: 1,
            flags: FLAG_FIN,
            data: data.clone(),
        })
        .await;
    assert_eq!(stream.reader.read().await, Some(data));
    assert_eq!(
        stream.reader.read().await,
        None,
        "FIN ends the inbound direction"
    );

    stream
        .writer
        .write(Bytes::from_static(b"pong"))
        .await
        .unwrap();
    stream.writer.finish().await.unwrap();
    let pong = Frame::Data {
        stream_id: 1,
        flags: 0,
        data: Bytes::from_static(b"pong"),
    };
    assert_eq!(client.recv().await, pong);
    assert_eq!(
        client.recv().await,
        Frame::Data {
            stream_id: 1,
            flags: FLAG_FIN,
            data: Bytes::new()
        }
    );
}

#[tokio::test]
async fn client_pings_are_echoed() {
    let (mut client, _incoming) = setup();
    client.send(Frame::Ping { id: 3 }).await;
    assert_eq!(client.recv().await, Frame::Ping { id: 3 });
}

#[tokio::test]
async fn consumed_data_is_granted_back_with_window_updates() {
    let (mut client, mut incoming) = setup();
    client.open(1, &[]).await;
    let mut stream = incoming.recv().await.unwrap();
    let chunk = Bytes::from(vec![7u8; 40 * 1024]);
    client
        .send(Frame::Data {
            stream_id: 1,
            flags: 0,
            data: chunk.clone(),
        })
        .await;
    assert_eq!(
        stream.reader.read().await.map(|b| b.len()),
        Some(chunk.len())
    );
    assert_eq!(
        client.recv().await,
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 40 * 1024
        }
    );
    assert_eq!(
        client.recv().await,
        Frame::WindowUpdate {
            stream_id: 0,
            delta: 40 * 1024
        }
    );
}

#[tokio::test]
async fn peers_without_window_updates_are_not_throttled() {
    let (mut client, mut incoming) = setup();
    client.open(1, &[]).await;
    let stream = incoming.recv().await.unwrap();
    let big = Bytes::from(vec![1u8; 256 * 1024]);
    let writer = stream.writer.clone();
    let sent = tokio::spawn(async move { writer.write(big).await });
    let mut received = 0;
    while received < 256 * 1024 {
        match client.recv().await {
            Frame::Data { data, .. } => received += data.len(),
            other => panic!("unexpected {other:?}"),
        }
    }
    sent.await.unwrap().unwrap();
}

#[tokio::test]
async fn once_the_peer_uses_flow_control_sends_wait_for_window() {
    let (mut client, mut incoming) = setup();
    // Shrink the initial window to 10 bytes: this also switches enforcement on.
    client
        .send(Frame::Settings {
            flags: 0,
            entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 10)],
        })
        .await;
    client.open(1, &[]).await;
    let stream = incoming.recv().await.unwrap();
    let writer = stream.writer.clone();
    let sent =
        tokio::spawn(async move { writer.write(Bytes::from_static(b"0123456789abcdef")).await });
    assert_eq!(
        client.recv().await,
        Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from_static(b"0123456789")
        }
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!sent.is_finished(), "the writer must wait for window");
    client
        .send(Frame::WindowUpdate {
            stream_id: 1,
            delta: 100,
        })
        .await;
    assert_eq!(
        client.recv().await,
        Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::from_static(b"abcdef")
        }
    );
    sent.await.unwrap().unwrap();
}

#[tokio::test]
async fn reset_and_disconnect_end_streams() {
    let (mut client, mut incoming) = setup();
    client.open(1, &[]).await;
    client.open(3, &[]).await;
    let mut one = incoming.recv().await.unwrap();
    let mut three = incoming.recv().await.unwrap();
    client
        .send(Frame::RstStream {
            stream_id: 1,
            status: 5,
        })
        .await;
    assert_eq!(one.reader.read().await, None);
    assert!(matches!(
        one.writer.write(Bytes::from_static(b"x")).await,
        Err(SessionError::Reset(1))
    ));
    drop(client);
    assert_eq!(three.reader.read().await, None);
}

#[tokio::test]
async fn even_stream_ids_from_the_client_are_refused() {
    let (mut client, _incoming) = setup();
    client.open(2, &[]).await;
    assert_eq!(
        client.recv().await,
        Frame::RstStream {
            stream_id: 2,
            status: RST_PROTOCOL_ERROR
        }
    );
}
