//! Exec and attach over the WebSocket channel protocol: wiring the client's channels to
//! the backend's process streams and reporting how the process ended.
//!
//! Channels: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. Only the streams the query
//! asked for exist; with a TTY stderr is folded away. The backend gets in-memory pipes:
//! pump tasks copy pipe output to the socket, and inbound channel data into stdin.
//! When the backend resolves, output is drained, the result goes out on the error
//! channel (a metav1.Status for v4+, plain text for older protocols) and the socket is
//! closed normally, which is what clients wait for before reading the error channel.

use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::backend::{BackendError, ExecOutcome, ExecStreams, TerminalSize};
use super::request::ExecOptions;
use super::websocket_channels::{ChannelConn, ChannelSender, Inbound, Negotiated};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// In-memory pipe capacity between the socket and the process.
const PIPE_CAPACITY: usize = 64 * 1024;
/// How long we wait for output still buffered after the process exited.
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Starts the backend call once the streams exist.
pub type Launch =
    Box<dyn FnOnce(ExecStreams) -> BoxFuture<'static, Result<ExecOutcome, BackendError>> + Send>;

/// Runs one exec/attach session on an upgraded WebSocket until the process ends, the
/// client goes away or `shutdown` fires.
pub async fn run(
    conn: ChannelConn,
    negotiated: Negotiated,
    opts: ExecOptions,
    description: String,
    launch: Launch,
    shutdown: CancellationToken,
) {
    let mut conn = conn;
    let sender = conn.sender();
    let (stdin_reader, mut stdin_writer) = split_pipe(opts.stdin);
    let (stdout_pipe, stdout_pump) = output_pipe(opts.stdout, STDOUT, &sender);
    let (stderr_pipe, stderr_pump) = output_pipe(opts.stderr && !opts.tty, STDERR, &sender);
    let (resize_tx, resize_rx) = mpsc::channel(8);
    let streams = ExecStreams {
        stdin: stdin_reader.map(|r| Box::new(r) as _),
        stdout: stdout_pipe.map(|w| Box::new(w) as _),
        stderr: stderr_pipe.map(|w| Box::new(w) as _),
        tty: opts.tty,
        resize: opts.tty.then_some(resize_rx),
    };
    // Tell the client the connection is ready: an empty message on the lowest writable
    // channel, as upstream does.
    let first = if opts.stdout {
        STDOUT
    } else if stderr_pump.is_some() {
        STDERR
    } else {
        ERROR
    };
    conn.send(first, Bytes::new()).await;

    let mut inbound = std::mem::replace(&mut conn.inbound, mpsc::channel(1).1);
    let input = tokio::spawn(async move {
        while let Some(event) = inbound.recv().await {
            match event {
                Inbound::Data(STDIN, data) => {
                    if let Some(w) = stdin_writer.as_mut()
                        && w.write_all(&data).await.is_err()
                    {
                        stdin_writer = None;
                    }
                }
                Inbound::Data(RESIZE, data) => {
                    if let Some(size) = parse_resize(&data) {
                        let _ = resize_tx.try_send(size);
                    }
                }
                Inbound::CloseChannel(STDIN) => stdin_writer = None,
                _ => {}
            }
        }
    });

    let outcome = tokio::select! {
        outcome = launch(streams) => Some(outcome),
        _ = shutdown.cancelled() => None,
    };
    input.abort();
    for pump in [stdout_pump, stderr_pump].into_iter().flatten() {
        let _ = tokio::time::timeout(DRAIN_GRACE, pump).await;
    }
    if let Some(outcome) = outcome
        && let Some(message) = result_message(&negotiated, &outcome, &description)
    {
        conn.send(ERROR, message).await;
    }
    conn.close().await;
}

/// An in-memory pipe as two duplex ends: dropping either end is end-of-stream for the
/// other, so a backend signals EOF just by dropping what it was given.
fn split_pipe(wanted: bool) -> (Option<DuplexStream>, Option<DuplexStream>) {
    if !wanted {
        return (None, None);
    }
    let (r, w) = tokio::io::duplex(PIPE_CAPACITY);
    (Some(r), Some(w))
}

/// A pipe whose read end is pumped onto `channel`.
fn output_pipe(
    wanted: bool,
    channel: u8,
    sender: &ChannelSender,
) -> (Option<DuplexStream>, Option<JoinHandle<()>>) {
    let (Some(mut reader), Some(writer)) = split_pipe(wanted) else {
        return (None, None);
    };
    let sender = sender.clone();
    let pump = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !sender
                        .send(channel, Bytes::copy_from_slice(&buf[..n]))
                        .await
                    {
                        break;
                    }
                }
            }
        }
    });
    (Some(writer), Some(pump))
}

/// Parses a resize message (`{"Width":80,"Height":24}`); `None` if malformed.
pub fn parse_resize(data: &[u8]) -> Option<TerminalSize> {
    let value: Value = serde_json::from_slice(data).ok()?;
    let width = u16::try_from(value.get("Width")?.as_u64()?).ok()?;
    let height = u16::try_from(value.get("Height")?.as_u64()?).ok()?;
    Some(TerminalSize { width, height })
}

/// What to write on the error channel for `outcome`; `None` when nothing is written
/// (success on pre-v4 protocols).
pub fn result_message(
    negotiated: &Negotiated,
    outcome: &Result<ExecOutcome, BackendError>,
    description: &str,
) -> Option<Bytes> {
    let status = exit_status(outcome, description);
    if negotiated.status_as_json() {
        return serde_json::to_vec(&status).ok().map(Bytes::from);
    }
    (status["status"] != "Success")
        .then(|| Bytes::from(status["message"].as_str().unwrap_or_default().to_string()))
}

/// The metav1.Status upstream kubelet reports for an exec result.
pub fn exit_status(outcome: &Result<ExecOutcome, BackendError>, description: &str) -> Value {
    match outcome {
        Ok(ExecOutcome::Exited(0)) => json!({"metadata": {}, "status": "Success"}),
        Ok(ExecOutcome::Exited(code)) => {
            // Clients parse the code as an unsigned byte, like a shell's `$?`.
            let code = code & 0xff;
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!(
                    "command terminated with non-zero exit code: error executing command \
                     {description}, exit code {code}"
                ),
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
            })
        }
        Err(e) => {
            let mut status = e.to_status();
            if let BackendError::Internal(message) = e {
                status["message"] = format!(
                    "Internal error occurred: error executing command in container: {message}"
                )
                .into();
            }
            status
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::server::websocket_channels::{V1_BINARY, V5_BINARY, negotiate};

    fn proto(p: &str) -> Negotiated {
        negotiate(&[p.to_string()], &[V5_BINARY, V1_BINARY]).unwrap()
    }

    #[test]
    fn non_zero_exit_reports_the_code_as_a_cause() {
        let status = exit_status(&Ok(ExecOutcome::Exited(7)), "[sh]");
        assert_eq!(status["reason"], "NonZeroExitCode");
        assert_eq!(status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(status["details"]["causes"][0]["message"], "7");
        assert_eq!(
            exit_status(&Ok(ExecOutcome::Exited(0)), "")["status"],
            "Success"
        );
        assert_eq!(
            exit_status(&Ok(ExecOutcome::Exited(-1)), "")["details"]["causes"][0]["message"],
            "255"
        );
    }

    #[test]
    fn old_protocols_get_text_and_nothing_on_success() {
        let ok = Ok(ExecOutcome::Exited(0));
        assert_eq!(result_message(&proto(V1_BINARY), &ok, ""), None);
        let failed = Err(BackendError::NotFound("container \"c\" not found".into()));
        assert_eq!(
            result_message(&proto(V1_BINARY), &failed, "").unwrap(),
            Bytes::from_static(b"container \"c\" not found")
        );
        let json = result_message(&proto(V5_BINARY), &ok, "").unwrap();
        assert_eq!(
            json,
            Bytes::from_static(br#"{"metadata":{},"status":"Success"}"#)
        );
    }

    #[test]
    fn resize_messages_parse_or_are_ignored() {
        assert_eq!(
            parse_resize(br#"{"Width":80,"Height":24}"#),
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(parse_resize(b"{}"), None);
        assert_eq!(parse_resize(br#"{"Width":70000,"Height":1}"#), None);
    }
}
