//! Feeding one watch: replay from the log, then follow the live hub.
//!
//! The feeder subscribes to the hub *before* reading the durable revision
//! `d`, replays `(after, d]` from the log, then forwards live batches while
//! skipping revisions it already sent. Because the writer publishes a
//! batch only after raising the durable revision, every event after `d`
//! reaches the subscription, so the stream has no gap and no duplicate.
//! A feeder that lags behind the hub simply starts over from the last
//! revision it delivered.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::Shared;
use crate::store::{Event, Result, Revision, StoreError, WatchStream};

/// Per-watch channel depth.
const STREAM_BUFFER: usize = 256;
/// Log entries read per replay step (bounds lock hold time and memory).
const REPLAY_CHUNK: usize = 1024;

pub(super) fn start(shared: Arc<Shared>, prefix: String, after: Revision) -> Result<WatchStream> {
    let compacted = shared.compacted();
    if after < compacted {
        return Err(StoreError::Compacted {
            requested: after,
            compacted,
        });
    }
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| StoreError::Unavailable("a watch needs a tokio runtime".into()))?;
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    runtime.spawn(async move {
        let closed = tx.clone();
        tokio::select! {
            result = feed(&shared, &prefix, after, &tx) => {
                if let Err(e) = result {
                    let _ = tx.send(Err(e)).await;
                }
            }
            _ = closed.closed() => {}
        }
    });
    Ok(WatchStream::new(rx))
}

/// Sends every event under `prefix` after `after`, until the store or the
/// consumer goes away (Ok) or history is compacted underneath (Err).
async fn feed(
    shared: &Arc<Shared>,
    prefix: &str,
    mut sent: Revision,
    tx: &mpsc::Sender<Result<Event>>,
) -> Result<()> {
    loop {
        let mut live = shared.hub.subscribe();
        let durable = shared.durable();
        while sent < durable {
            let (events, last) = {
                let shared = shared.clone();
                let prefix = prefix.to_string();
                tokio::task::spawn_blocking(move || {
                    shared.read_events(&prefix, sent, durable, REPLAY_CHUNK)
                })
                .await
                .map_err(|e| StoreError::Unavailable(format!("watch replay task failed: {e}")))??
            };
            for event in events {
                if tx.send(Ok(event)).await.is_err() {
                    return Ok(());
                }
            }
            if last == sent {
                return Err(StoreError::Corrupt {
                    tree: "log",
                    key: sent.to_string(),
                    reason: format!("events missing between {sent} and {durable}"),
                });
            }
            sent = last;
        }
        sent = sent.max(durable);
        loop {
            match live.recv().await {
                Ok(batch) => {
                    for event in batch.iter() {
                        if event.revision <= sent {
                            continue;
                        }
                        if event.key.starts_with(prefix)
                            && tx.send(Ok(event.clone())).await.is_err()
                        {
                            return Ok(());
                        }
                        sent = event.revision;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => break,
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            }
        }
    }
}
