//! Task exit and OOM events, as a stream that survives containerd restarts.
//!
//! containerd has no event replay and its event stream ends when containerd restarts,
//! while containers keep running. The stream here re-subscribes (with a short backoff)
//! whenever the subscription fails or ends; callers must still reconcile with
//! `Runtime::task` after a gap, since exits during the gap are not replayed. A background
//! task feeds a bounded channel and stops when the stream is dropped.

use std::time::{Duration, SystemTime};

use containerd_client::events::{TaskExit, TaskOom};
use containerd_client::services::v1::SubscribeRequest;
use containerd_client::services::v1::events_client::EventsClient;
use containerd_client::types::Envelope;
use futures::Stream;
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::client::{Runtime, to_system_time};

/// A task event kelp reacts to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeEvent {
    /// A process exited.
    Exit {
        /// The container.
        container_id: String,
        /// The process: equal to `container_id` for the main task, else the exec id.
        exec_id: String,
        /// Its host pid.
        pid: u32,
        /// Its exit status.
        exit_status: u32,
        /// When it exited.
        exited_at: SystemTime,
    },
    /// The container hit its memory limit.
    Oom {
        /// The container.
        container_id: String,
    },
}

impl Runtime {
    /// Task exits and OOMs in this namespace; re-subscribes across containerd restarts.
    pub fn events(&self) -> impl Stream<Item = RuntimeEvent> + Send + 'static {
        let (tx, rx) = mpsc::channel(256);
        let rt = self.clone();
        tokio::spawn(async move { pump(rt, tx).await });
        ReceiverStream::new(rx)
    }
}

async fn pump(rt: Runtime, tx: mpsc::Sender<RuntimeEvent>) {
    let ns = rt.namespace.replace('"', "");
    let filters = vec![
        format!("topic==\"/tasks/exit\",namespace==\"{ns}\""),
        format!("topic==\"/tasks/oom\",namespace==\"{ns}\""),
    ];
    let mut backoff = Duration::from_millis(100);
    while !tx.is_closed() {
        let req = rt.req(SubscribeRequest {
            filters: filters.clone(),
        });
        match EventsClient::new(rt.channel.clone()).subscribe(req).await {
            Ok(resp) => {
                let mut stream = resp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(env)) => {
                            backoff = Duration::from_millis(100);
                            if let Some(ev) = decode(&env)
                                && tx.send(ev).await.is_err()
                            {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(err) => {
                            tracing::warn!(%err, "containerd event stream broke; re-subscribing");
                            break;
                        }
                    }
                }
            }
            Err(err) => tracing::debug!(%err, "containerd event subscription failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tx.closed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Decodes the envelopes kelp subscribes to; anything else is None.
fn decode(env: &Envelope) -> Option<RuntimeEvent> {
    let any = env.event.as_ref()?;
    let kind = any.type_url.rsplit('/').next().unwrap_or_default();
    match kind {
        "containerd.events.TaskExit" => {
            let e = TaskExit::decode(any.value.as_slice()).ok()?;
            Some(RuntimeEvent::Exit {
                exited_at: to_system_time(e.exited_at.as_ref()).unwrap_or_else(SystemTime::now),
                container_id: e.container_id,
                exec_id: e.id,
                pid: e.pid,
                exit_status: e.exit_status,
            })
        }
        "containerd.events.TaskOOM" => {
            let e = TaskOom::decode(any.value.as_slice()).ok()?;
            Some(RuntimeEvent::Oom {
                container_id: e.container_id,
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::Any;

    fn envelope(type_url: &str, value: Vec<u8>) -> Envelope {
        Envelope {
            event: Some(Any {
                type_url: type_url.into(),
                value,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn decodes_exit_and_oom_envelopes() {
        let exit = TaskExit {
            container_id: "c".into(),
            id: "c".into(),
            pid: 7,
            exit_status: 3,
            exited_at: None,
        };
        let got = decode(&envelope(
            "containerd.events.TaskExit",
            exit.encode_to_vec(),
        ));
        assert!(matches!(
            got,
            Some(RuntimeEvent::Exit {
                exit_status: 3,
                pid: 7,
                ..
            })
        ));
        let oom = TaskOom {
            container_id: "c".into(),
        };
        let got = decode(&envelope("containerd.events.TaskOOM", oom.encode_to_vec()));
        assert_eq!(
            got,
            Some(RuntimeEvent::Oom {
                container_id: "c".into()
            })
        );
        assert_eq!(
            decode(&envelope("containerd.events.TaskStart", vec![])),
            None
        );
    }
}
