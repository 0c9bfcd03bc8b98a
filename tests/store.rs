//! Behaviour of the sled store: revisions, CAS, paging at a revision,
//! watch replay + live, compaction, snapshots, durability across reopen.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use kelp::store::sled::SledStore;
use kelp::store::{EventKind, RangeRequest, Store, StoreError, snapshot};

fn b(s: &str) -> Bytes {
    Bytes::from(s.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revisions_are_dense_and_follow_write_order() {
    let (_d, store) = common::temp_store();
    let a = store.create("/r/a", b("1")).await.unwrap();
    let a2 = store.update("/r/a", b("2"), None).await.unwrap();
    let c = store.create("/r/c", b("3")).await.unwrap();
    let del = store.delete("/r/a", None).await.unwrap();
    assert_eq!(
        (
            a.mod_revision,
            a2.mod_revision,
            c.mod_revision,
            del.revision
        ),
        (1, 2, 3, 4)
    );
    assert_eq!((a2.create_revision, a2.version), (1, 2));
    assert_eq!(del.prev.value, b("2"));
    assert_eq!(store.current_revision(), 4);
    let (got, rev) = store.get("/r/a").await.unwrap();
    assert_eq!((got, rev), (None, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_swap_conflicts_are_distinct_errors() {
    let (_d, store) = common::temp_store();
    let v1 = store.create("/k", b("a")).await.unwrap();
    assert!(matches!(
        store.create("/k", b("b")).await,
        Err(StoreError::AlreadyExists { .. })
    ));
    let v2 = store
        .update("/k", b("b"), Some(v1.mod_revision))
        .await
        .unwrap();
    match store.update("/k", b("c"), Some(v1.mod_revision)).await {
        Err(StoreError::Conflict {
            expected, actual, ..
        }) => assert_eq!((expected, actual), (1, v2.mod_revision)),
        other => panic!("expected conflict, got {other:?}"),
    }
    assert!(matches!(
        store.delete("/k", Some(1)).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(matches!(
        store.update("/missing", b("x"), None).await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete("/k", Some(v2.mod_revision)).await.unwrap();
    // Failed preconditions consumed no revision.
    assert_eq!(store.current_revision(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_cas_increments_lose_no_update() {
    let (_d, store) = common::temp_store();
    store.create("/counter", b("0")).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                loop {
                    let (kv, _) = store.get("/counter").await.unwrap();
                    let kv = kv.unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    match store
                        .update(
                            "/counter",
                            Bytes::from((n + 1).to_string()),
                            Some(kv.mod_revision),
                        )
                        .await
                    {
                        Ok(_) => break,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (kv, _) = store.get("/counter").await.unwrap();
    assert_eq!(kv.unwrap().value, b("160"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paging_with_continue_sees_one_revision_despite_writes() {
    let (_d, store) = common::temp_store();
    for i in 0..50 {
        store.create(&format!("/p/{i:03}"), b("old")).await.unwrap();
    }
    store.create("/q/outside", b("x")).await.unwrap();
    let first = store
        .range(RangeRequest {
            prefix: "/p/".into(),
            limit: 20,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(first.kvs.len(), 20);
    assert!(first.more);
    // Writes between pages: modify, delete and insert keys on later pages.
    store.update("/p/030", b("new"), None).await.unwrap();
    store.delete("/p/040", None).await.unwrap();
    store.create("/p/0455", b("new")).await.unwrap();
    store.delete("/p/005", None).await.unwrap();
    let mut all = first.kvs.clone();
    let mut after = first.kvs.last().map(|kv| kv.key.clone());
    loop {
        let page = store
            .range(RangeRequest {
                prefix: "/p/".into(),
                limit: 20,
                continue_after: after.clone(),
                revision: Some(first.revision),
            })
            .await
            .unwrap();
        assert_eq!(page.revision, first.revision);
        all.extend(page.kvs.iter().cloned());
        if !page.more {
            break;
        }
        after = page.kvs.last().map(|kv| kv.key.clone());
    }
    let keys: Vec<String> = all.iter().map(|kv| kv.key.clone()).collect();
    let expected: Vec<String> = (0..50).map(|i| format!("/p/{i:03}")).collect();
    assert_eq!(keys, expected);
    assert!(all.iter().all(|kv| kv.value == b("old")));
    // And the newest revision shows the writes.
    let now = store
        .range(RangeRequest {
            prefix: "/p/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(now.kvs.len(), 49);
    assert!(now.kvs.iter().any(|kv| kv.key == "/p/0455"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_replays_then_follows_live_with_no_gap_under_concurrent_writers() {
    let (_d, store) = common::temp_store();
    for i in 0..100 {
        store.create(&format!("/w/pre{i}"), b("x")).await.unwrap();
    }
    let start = 37;
    let mut watch = store.watch("/w/", start).unwrap();
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..100 {
                    let key = format!("/w/{w}/{i}");
                    store.create(&key, b("y")).await.unwrap();
                    if i % 3 == 0 {
                        store.delete(&key, None).await.unwrap();
                    }
                    // Noise outside the watched prefix.
                    store
                        .create(&format!("/other/{w}/{i}"), b("z"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    let expected = (100 - start + 8 * (100 + 34)) as usize;
    let mut seen = Vec::new();
    while seen.len() < expected {
        let ev = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("watch stalled")
            .unwrap()
            .unwrap();
        assert!(ev.key.starts_with("/w/"));
        seen.push(ev.revision);
    }
    // Nothing more: no duplicates trail the expected events.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), watch.next())
            .await
            .is_err()
    );
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "not strictly increasing"
    );
    assert_eq!(seen[0], start + 1);
    // Exactly the /w/ revisions a fresh replay of the whole log reports.
    let total = store.current_revision();
    let mut replay = store.watch("/", 0).unwrap();
    let mut want = Vec::new();
    for _ in 0..total {
        let ev = replay.next().await.unwrap().unwrap();
        if ev.key.starts_with("/w/") && ev.revision > start {
            want.push(ev.revision);
        }
    }
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_events_carry_previous_state_for_deletes() {
    let (_d, store) = common::temp_store();
    let mut watch = store.watch("/x", 0).unwrap();
    store.create("/x/a", b("1")).await.unwrap();
    store.update("/x/a", b("2"), None).await.unwrap();
    store.delete("/x/a", None).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..3 {
        let ev = watch.next().await.unwrap().unwrap();
        kinds.push((ev.kind, ev.value.map(|v| v.value), ev.prev.map(|v| v.value)));
    }
    assert_eq!(
        kinds,
        vec![
            (EventKind::Put, Some(b("1")), None),
            (EventKind::Put, Some(b("2")), Some(b("1"))),
            (EventKind::Delete, None, Some(b("2"))),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compacted_revisions_are_refused_for_range_and_watch() {
    let (_d, store) = common::temp_store();
    for i in 0..10 {
        store.create(&format!("/c/{i}"), b("v")).await.unwrap();
    }
    store.compact(6).await.unwrap();
    assert_eq!(store.compacted_revision(), 6);
    assert!(matches!(
        store.watch("/c/", 5),
        Err(StoreError::Compacted {
            requested: 5,
            compacted: 6
        })
    ));
    let r = store
        .range(RangeRequest {
            prefix: "/c/".into(),
            revision: Some(3),
            ..Default::default()
        })
        .await;
    assert!(matches!(r, Err(StoreError::Compacted { .. })));
    // At or after the compacted revision still works.
    let at6 = store
        .range(RangeRequest {
            prefix: "/c/".into(),
            revision: Some(6),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(at6.kvs.len(), 6);
    let mut w = store.watch("/c/", 6).unwrap();
    assert_eq!(w.next().await.unwrap().unwrap().revision, 7);
    assert!(matches!(
        store.compact(99).await,
        Err(StoreError::FutureRevision { .. })
    ));
    let future = store
        .range(RangeRequest {
            prefix: "/c/".into(),
            revision: Some(99),
            ..Default::default()
        })
        .await;
    assert!(matches!(future, Err(StoreError::FutureRevision { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn policy_compaction_keeps_at_most_max_events() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::manual_compaction(dir.path().join("db"));
    config.compaction.max_events = 20;
    config.compaction.interval = Duration::ZERO;
    let store = SledStore::open(config).unwrap();
    for i in 0..100 {
        store.create(&format!("/k/{i}"), b("v")).await.unwrap();
    }
    assert!(
        store.compacted_revision() >= 79,
        "compacted {}",
        store.compacted_revision()
    );
    assert!(matches!(
        store.watch("/", 10),
        Err(StoreError::Compacted { .. })
    ));
    let all = store
        .range(RangeRequest {
            prefix: "/k/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(all.kvs.len(), 100, "compaction drops history, never data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_events_go_in_one_batch_once_the_oldest_is_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::manual_compaction(dir.path().join("db"));
    config.compaction.max_age = Duration::from_millis(200);
    config.compaction.age_slack = Duration::from_millis(1500);
    config.compaction.interval = Duration::ZERO;
    let store = SledStore::open(config).unwrap();
    for i in 0..5 {
        store.create(&format!("/old/{i}"), b("v")).await.unwrap();
    }
    // Expired (past max_age) but not overdue: writes do not compact them
    // one by one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    store.create("/young/0", b("v")).await.unwrap();
    // Compaction runs on the writer thread after the write is answered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        store.compacted_revision(),
        0,
        "compacted before the slack ran out"
    );
    // Overdue: the next write's compaction drops every expired event at
    // once, and nothing younger than max_age.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let kept = store.create("/young/1", b("v")).await.unwrap();
    for _ in 0..50 {
        if store.compacted_revision() != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.compacted_revision(),
        kept.mod_revision - 1,
        "all but the newest event had expired"
    );
    assert!(store.watch("/", kept.mod_revision).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn data_survives_reopen_and_revision_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let store = SledStore::open(common::manual_compaction(path.clone())).unwrap();
        store.create("/a", b("1")).await.unwrap();
        store.update("/a", b("2"), None).await.unwrap();
        assert!(matches!(
            SledStore::open(common::manual_compaction(path.clone())),
            Err(StoreError::Locked { .. })
        ));
    }
    let store = SledStore::open(common::manual_compaction(path)).unwrap();
    assert_eq!(store.current_revision(), 2);
    let kv = store.create("/b", b("3")).await.unwrap();
    assert_eq!(kv.mod_revision, 3);
    let mut w = store.watch("/", 0).unwrap();
    assert_eq!(w.next().await.unwrap().unwrap().revision, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_round_trips_and_rejects_damage() {
    let (dir, store) = common::temp_store();
    for i in 0..2500 {
        store
            .create(&format!("/s/{i:05}"), Bytes::from(vec![b'v'; i % 300]))
            .await
            .unwrap();
    }
    store.delete("/s/00007", None).await.unwrap();
    let file = dir.path().join("snap");
    let info = {
        let store = store.clone();
        let file = file.clone();
        tokio::task::spawn_blocking(move || {
            snapshot::save(&store, std::fs::File::create(&file).unwrap())
        })
        .await
        .unwrap()
        .unwrap()
    };
    assert_eq!((info.keys, info.revision), (2499, 2501));
    let target = dir.path().join("restored");
    let bytes = std::fs::read(&file).unwrap();
    let restored_info = snapshot::restore(&bytes[..], &target).unwrap();
    assert_eq!(restored_info, info);
    let restored = SledStore::open(common::manual_compaction(target)).unwrap();
    let a = store
        .range(RangeRequest {
            prefix: "/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let b_ = restored
        .range(RangeRequest {
            prefix: "/".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.kvs, b_.kvs);
    assert_eq!(restored.current_revision(), 2501);
    assert!(matches!(
        restored.watch("/", 100),
        Err(StoreError::Compacted { .. })
    ));
    // A flipped byte or a truncated file restores nothing.
    let mut damaged = bytes.clone();
    damaged[bytes.len() / 2] ^= 0xff;
    assert!(snapshot::restore(&damaged[..], &dir.path().join("d1")).is_err());
    assert!(snapshot::restore(&bytes[..bytes.len() - 10], &dir.path().join("d2")).is_err());
    assert!(!dir.path().join("d1").exists() && !dir.path().join("d2").exists());
}

mod model {
    //! Property test: the store behaves like a simple in-memory model with
    //! full history, for every revision.
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    pub enum Op {
        Create(u8, u8),
        Update(u8, u8, Expect),
        Delete(u8, Expect),
    }

    #[derive(Clone, Copy, Debug)]
    pub enum Expect {
        Any,
        Current,
        Stale,
    }

    fn key(k: u8) -> String {
        if k == 5 {
            "/other/k".to_string()
        } else {
            format!("/m/{k}")
        }
    }

    fn expect_strategy() -> impl Strategy<Value = Expect> {
        prop_oneof![
            Just(Expect::Any),
            Just(Expect::Current),
            Just(Expect::Stale)
        ]
    }

    fn op_strategy() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..6, any::<u8>()).prop_map(|(k, v)| Op::Create(k, v)),
            (0u8..6, any::<u8>(), expect_strategy()).prop_map(|(k, v, e)| Op::Update(k, v, e)),
            (0u8..6, expect_strategy()).prop_map(|(k, e)| Op::Delete(k, e)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn store_matches_model_at_every_revision(ops in proptest::collection::vec(op_strategy(), 1..40), page in 1usize..4) {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            rt.block_on(async move {
                let (_d, store) = common::temp_store();
                // model: key -> (value, mod_revision); history[rev] = state after rev
                let mut state: BTreeMap<String, (u8, u64)> = BTreeMap::new();
                let mut history = vec![state.clone()];
                for op in &ops {
                    let rev = history.len() as u64; // revision this op would get
                    let (k, result_ok) = match *op {
                        Op::Create(k, v) => {
                            let k = key(k);
                            let r = store.create(&k, Bytes::from(vec![v])).await;
                            let ok = !state.contains_key(&k);
                            prop_assert_eq!(r.is_ok(), ok, "create {}: {:?}", k, r);
                            if ok { state.insert(k.clone(), (v, rev)); }
                            (k, ok)
                        }
                        Op::Update(k, v, e) => {
                            let k = key(k);
                            let cur = state.get(&k).map(|s| s.1);
                            let expected = expectation(e, cur);
                            let r = store.update(&k, Bytes::from(vec![v]), expected).await;
                            let ok = cur.is_some() && expected.is_none_or(|x| Some(x) == cur);
                            prop_assert_eq!(r.is_ok(), ok, "update {}: {:?}", k, r);
                            if ok { state.insert(k.clone(), (v, rev)); }
                            (k, ok)
                        }
                        Op::Delete(k, e) => {
                            let k = key(k);
                            let cur = state.get(&k).map(|s| s.1);
                            let expected = expectation(e, cur);
                            let r = store.delete(&k, expected).await;
                            let ok = cur.is_some() && expected.is_none_or(|x| Some(x) == cur);
                            prop_assert_eq!(r.is_ok(), ok, "delete {}: {:?}", k, r);
                            if ok { state.remove(&k); }
                            (k, ok)
                        }
                    };
                    let _ = k;
                    if result_ok { history.push(state.clone()); }
                }
                prop_assert_eq!(store.current_revision(), history.len() as u64 - 1);
                // Every historical revision, read in pages, equals the model.
                for (rev, snapshot) in history.iter().enumerate() {
                    let mut got = BTreeMap::new();
                    let mut after = None;
                    loop {
                        let r = store.range(RangeRequest { prefix: "/m/".into(), continue_after: after.clone(), limit: page, revision: Some(rev as u64) }).await.unwrap();
                        for kv in &r.kvs { got.insert(kv.key.clone(), (kv.value[0], kv.mod_revision)); }
                        if !r.more { break; }
                        after = r.kvs.last().map(|kv| kv.key.clone());
                    }
                    let want: BTreeMap<_, _> = snapshot.iter().filter(|(k, _)| k.starts_with("/m/")).map(|(k, v)| (k.clone(), *v)).collect();
                    prop_assert_eq!(got, want, "at revision {}", rev);
                }
                // The watch from 0 replays exactly one event per revision.
                let mut w = store.watch("/", 0).unwrap();
                for rev in 1..history.len() as u64 {
                    let ev = w.next().await.unwrap().unwrap();
                    prop_assert_eq!(ev.revision, rev);
                }
                Ok(())
            })?;
        }
    }

    fn expectation(e: Expect, cur: Option<u64>) -> Option<u64> {
        match e {
            Expect::Any => None,
            Expect::Current => Some(cur.unwrap_or(0)),
            Expect::Stale => Some(cur.map_or(7, |c| c + 1000)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watcher_that_falls_behind_catches_up_from_the_log() {
    let (_d, store) = common::temp_store();
    let mut watch = store.watch("/lag/", 0).unwrap();
    // Far more batches than the live hub buffers, while nobody reads.
    for i in 0..3000 {
        store.create(&format!("/lag/{i}"), b("v")).await.unwrap();
    }
    for rev in 1..=3000u64 {
        let ev = tokio::time::timeout(Duration::from_secs(10), watch.next())
            .await
            .expect("stalled")
            .unwrap()
            .unwrap();
        assert_eq!(ev.revision, rev);
    }
}
