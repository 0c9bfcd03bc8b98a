//! The watch cache against a real store: replay after a revision, the
//! in-stream 410 for revisions older than its window, and no gap or
//! duplicate between the replayed and the live part.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kelp::api::watch_cache::{ChangeType, WatchCache};
use kelp::store::Store;
use tokio_util::sync::CancellationToken;

fn cm(name: &str) -> Bytes {
    Bytes::from(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "d"}}).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_recent_revisions_and_expires_old_ones() {
    let (_dir, store) = common::temp_store();
    let cache = Arc::new(WatchCache::with_window(5));
    let cancel = CancellationToken::new();
    tokio::spawn(cache.clone().run(store.clone(), cancel.clone()));
    cache.wait_ready().await;
    for i in 0..20 {
        store
            .create(
                &format!("/registry/core/configmaps/d/c{i}"),
                cm(&format!("c{i}")),
            )
            .await
            .unwrap();
    }
    cache.wait_for(20).await.unwrap();
    // Revision 3 fell out of the 5-event window: 410 Expired.
    let err = cache
        .subscribe("/registry/core/configmaps/", Some(3))
        .err()
        .expect("expired");
    assert_eq!((err.code, err.reason), (410, "Expired"));
    // Revision 16 is inside it: exactly 17..=20 replayed, then live.
    let mut sub = cache
        .subscribe("/registry/core/configmaps/", Some(16))
        .unwrap();
    let replayed: Vec<u64> = sub.initial.iter().map(|c| c.revision).collect();
    assert_eq!(replayed, vec![17, 18, 19, 20]);
    store
        .delete("/registry/core/configmaps/d/c0", None)
        .await
        .unwrap();
    let live = tokio::time::timeout(Duration::from_secs(5), sub.live.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((live.revision, live.kind), (21, ChangeType::Deleted));
    // No resourceVersion: the current objects, as ADDED.
    let all = cache
        .subscribe("/registry/core/configmaps/d/", None)
        .unwrap();
    assert_eq!(all.initial.len(), 19);
    assert!(all.initial.iter().all(|c| c.kind == ChangeType::Added));
    cancel.cancel();
}
