//! WATCH: a stream of newline-terminated JSON events from the watch cache.
//!
//! Upstream's wire format: `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR",
//! "object":{…}}` per line. Selectors are applied to both the old and the
//! new state, so an object that stops matching arrives as DELETED and one
//! that starts matching as ADDED. A resourceVersion older than the cache's
//! window is an in-stream ERROR event with a 410 Status (kube-rs and
//! client-go look for it there, not at the HTTP status). Bookmarks are sent
//! only when asked for; `sendInitialEvents` is implemented with the
//! `k8s.io/initial-events-end` bookmark.

use std::time::Duration;

use bytes::Bytes;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use super::read::{Filter, collection_prefix};
use super::{Api, Call, Rendering, Reply};
use crate::api::registry::resources::ResourceInfo;
use crate::api::render;
use crate::api::status::{ApiError, ApiResult};
use crate::api::watch_cache::{CachedObject, Change, ChangeType, Subscription};
use crate::store::{Revision, Store};

/// Lines of a watch response; the connection ends when this ends.
pub struct WatchStream {
    /// Serialized event lines.
    pub lines: mpsc::Receiver<Bytes>,
}

const BOOKMARK_EVERY: Duration = Duration::from_secs(30);

struct Encoder {
    info: &'static ResourceInfo,
    rendering: Rendering,
    include_object: String,
    columns_sent: bool,
}

impl Encoder {
    fn line(&mut self, kind: &str, cached: &CachedObject) -> Bytes {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"object\":");
        if self.rendering == Rendering::Object {
            out.extend_from_slice(&cached.json);
            out.extend_from_slice(b"}\n");
            return Bytes::from(out);
        }
        let object = &cached.value();
        let rendered;
        let body = match self.rendering {
            Rendering::Object => object,
            Rendering::Metadata => {
                rendered = render::partial_metadata(object);
                &rendered
            }
            Rendering::Table => {
                let rv = crate::api::object::resource_version(object)
                    .unwrap_or("")
                    .to_string();
                let meta = render::ListMeta {
                    resource_version: rv,
                    continue_token: None,
                    remaining_item_count: None,
                };
                let mut t = render::table(
                    self.info,
                    &[],
                    &meta,
                    &self.include_object,
                    !self.columns_sent,
                );
                self.columns_sent = true;
                t["rows"] = json!([render::table_row(
                    self.info,
                    object,
                    &self.include_object,
                    std::time::SystemTime::now()
                )]);
                rendered = t;
                &rendered
            }
        };
        let _ = serde_json::to_writer(&mut out, body);
        out.extend_from_slice(b"}\n");
        Bytes::from(out)
    }

    fn bookmark(&self, revision: Revision, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.info.kind, "apiVersion": self.info.api_version(), "metadata": meta});
        let mut out =
            serde_json::to_vec(&json!({"type": "BOOKMARK", "object": obj})).unwrap_or_default();
        out.push(b'\n');
        Bytes::from(out)
    }
}

/// A single ERROR event carrying a Status.
pub fn error_line(e: &ApiError) -> Bytes {
    let mut out =
        serde_json::to_vec(&json!({"type": "ERROR", "object": e.to_status()})).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

/// What a change looks like through a selector (None = invisible).
fn visible_as(change: &Change, filter: &Filter) -> Option<&'static str> {
    let now = filter.matches(&change.object);
    match change.kind {
        ChangeType::Added => now.then_some("ADDED"),
        ChangeType::Deleted => now.then_some("DELETED"),
        ChangeType::Modified => {
            let before = change.prev.as_ref().is_some_and(|p| filter.matches(p));
            match (before, now) {
                (true, true) => Some("MODIFIED"),
                (false, true) => Some("ADDED"),
                (true, false) => Some("DELETED"),
                (false, false) => None,
            }
        }
    }
}

impl<S: Store> Api<S> {
    pub(super) async fn watch(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let filter = Filter::from_call(call)?;
        let prefix = collection_prefix(call);
        let q = call.query;
        let bookmarks = q.flag("allowWatchBookmarks")?;
        let initial_events = match q.get("sendInitialEvents") {
            None => None,
            Some(_) => Some(q.flag("sendInitialEvents")?),
        };
        if initial_events.is_some() && q.get("resourceVersionMatch") != Some("NotOlderThan") {
            return Err(ApiError::invalid_params(
                "sendInitialEvents",
                "resourceVersionMatch must be \"NotOlderThan\" when sendInitialEvents is set",
            ));
        }
        if initial_events == Some(true) && !bookmarks {
            return Err(ApiError::invalid_params(
                "allowWatchBookmarks",
                "allowWatchBookmarks must be true when sendInitialEvents is true",
            ));
        }
        let rv =
            match q.get("resourceVersion") {
                None => None,
                Some(s) => Some(s.parse::<Revision>().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version {s:?}"))
                })?),
            };
        let timeout = match q.number("timeoutSeconds")? {
            Some(secs) => Duration::from_secs(secs as u64),
            // Upstream spreads long watches over 30-60 minutes.
            None => Duration::from_secs(1800 + crate::api::object::random_u64() % 1800),
        };
        let mut encoder = Encoder {
            info: call.target.info,
            rendering: call.rendering,
            include_object: q.get("includeObject").unwrap_or("Metadata").to_string(),
            columns_sent: false,
        };
        // Where the stream starts: initial ADDED state (unset/0 or
        // sendInitialEvents=true) or replay after a revision.
        let from = match (initial_events, rv) {
            (Some(true), r) => {
                self.cache
                    .wait_for(r.unwrap_or_else(|| self.store.current_revision()))
                    .await?;
                None
            }
            (Some(false), Some(r)) | (None, Some(r)) if r > 0 => Some(r),
            (Some(false), _) => {
                self.cache.wait_for(self.store.current_revision()).await?;
                Some(self.cache.revision())
            }
            (None, r) => {
                if r.is_none() {
                    self.cache.wait_for(self.store.current_revision()).await?;
                }
                None
            }
        };
        let (tx, lines) = mpsc::channel(64);
        let subscription = match self.cache.subscribe(&prefix, from) {
            Ok(s) => s,
            Err(e) => {
                // 410 travels inside a 200 stream, where clients look for it.
                let _ = tx.try_send(error_line(&e));
                return Ok(Reply::Watch(WatchStream { lines }));
            }
        };
        let send_end_bookmark = initial_events == Some(true);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                timeout,
                pump(
                    subscription,
                    filter,
                    &mut encoder,
                    &tx,
                    bookmarks,
                    send_end_bookmark,
                ),
            )
            .await;
        });
        Ok(Reply::Watch(WatchStream { lines }))
    }
}

async fn pump(
    sub: Subscription,
    filter: Filter,
    enc: &mut Encoder,
    tx: &mpsc::Sender<Bytes>,
    bookmarks: bool,
    initial_end: bool,
) -> Option<()> {
    let Subscription {
        initial,
        mut live,
        revision,
        prefix,
    } = sub;
    let mut seen = revision;
    for change in &initial {
        seen = seen.max(change.revision);
        if let Some(kind) = visible_as(change, &filter) {
            tx.send(enc.line(kind, &change.object)).await.ok()?;
        }
    }
    if initial_end {
        tx.send(enc.bookmark(seen, true)).await.ok()?;
    }
    let mut ticker = tokio::time::interval(BOOKMARK_EVERY);
    ticker.tick().await;
    loop {
        tokio::select! {
            change = live.recv() => match change {
                Ok(change) => {
                    if change.revision <= seen {
                        continue;
                    }
                    seen = change.revision;
                    if !change.key.starts_with(&prefix) {
                        continue;
                    }
                    if let Some(kind) = visible_as(&change, &filter) {
                        tx.send(enc.line(kind, &change.object)).await.ok()?;
                    }
                }
                // Too slow, or the cache relisted: end the stream; the
                // client re-watches from the last version it saw.
                Err(broadcast::error::RecvError::Lagged(_)) | Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = ticker.tick(), if bookmarks => {
                tx.send(enc.bookmark(seen, false)).await.ok()?;
            }
            _ = tx.closed() => return None,
        }
    }
}
