//! The sled store under real I/O faults: a full filesystem while running
//! and at open (small tmpfs mounts; needs root, and fails without it).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use kelp::store::sled::{SledConfig, SledStore};
use kelp::store::{EventKind, Store, StoreError};

/// 32 KiB that no compressor shrinks (the store compresses its pages),
/// different for each `seed`.
fn incompressible(seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(32 << 10);
    while out.len() < 32 << 10 {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(out)
}

/// Writes 32 KiB values until one fails; returns the acknowledged
/// keys and the first error.
async fn write_until_failure(store: &SledStore, prefix: &str) -> (Vec<String>, StoreError) {
    let mut acked = Vec::new();
    for i in 0.. {
        let key = format!("{prefix}{i}");
        let value = incompressible(i);
        match tokio::time::timeout(Duration::from_secs(20), store.create(&key, value))
            .await
            .expect("a write on a full disk must fail, not hang")
        {
            Ok(_) => acked.push(key),
            Err(e) => return (acked, e),
        }
        assert!(i < 10_000, "the tmpfs never filled up");
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn after_a_full_disk_writes_fail_clearly_then_come_back_without_a_restart() {
    let work = tempfile::tempdir_in(common::node::test_root()).expect("temp dir");
    let mnt = work.path().join("mnt");
    let _tmpfs = common::node::Tmpfs::mount(&mnt, "24m");
    // Space to free later.
    let reserve = mnt.join("reserve");
    std::fs::write(&reserve, vec![1u8; 8 << 20]).expect("reserve");
    let store = SledStore::open(SledConfig::new(mnt.join("db"))).expect("open");
    let (acked, err) = write_until_failure(&store, "/r/k").await;
    assert!(acked.len() > 10, "only {} writes fit", acked.len());
    let message = err.to_string();
    assert!(
        message.contains("not enough free space") || message.contains("No space left"),
        "{message}"
    );
    assert!(
        store.failure().is_some(),
        "the store must report the failure"
    );
    // Reads go on while the disk is full.
    let (kv, _) = store.get(&acked[0]).await.expect("read while full");
    assert!(kv.is_some());
    let last_acked = store.current_revision();

    // Free the space: writes come back by themselves (the store reopens).
    std::fs::remove_file(&reserve).expect("free space");
    let value = Bytes::from_static(b"after");
    let deadline = Instant::now() + Duration::from_secs(20);
    let after = loop {
        match store.create("/r/after", value.clone()).await {
            Ok(kv) => break kv,
            Err(StoreError::AlreadyExists { .. }) => {
                break store.get("/r/after").await.unwrap().0.unwrap();
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "writes never came back: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(after.mod_revision > last_acked);
    assert!(store.failure().is_none(), "healthy again");
    for key in &acked {
        assert!(store.get(key).await.unwrap().0.is_some(), "{key} lost");
    }
    // The log is dense and ordered, and holds every acknowledged write.
    let mut watch = store.watch("/r/", 0).expect("watch");
    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(2), watch.next()).await {
        let event = event.expect("event");
        assert_eq!(event.kind, EventKind::Put);
        seen.push((event.revision, event.key));
        if seen.last().map(|(r, _)| *r) == Some(after.mod_revision) {
            break;
        }
    }
    let revisions: Vec<u64> = seen.iter().map(|(r, _)| *r).collect();
    assert!(
        revisions.windows(2).all(|w| w[1] == w[0] + 1),
        "{revisions:?}"
    );
    for key in &acked {
        assert!(seen.iter().any(|(_, k)| k == key), "{key} not in the log");
    }
    drop(watch);
    close(store).await;
    let reopened = SledStore::open(SledConfig::new(mnt.join("db"))).expect("reopen");
    for key in acked.iter().chain(["/r/after".to_string()].iter()) {
        assert!(
            reopened.get(key).await.unwrap().0.is_some(),
            "{key} lost on reopen"
        );
    }
}

/// Drops the store, failing the test if that hangs (as a failed sled
/// handle's flush-on-drop could).
async fn close(store: SledStore) {
    tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || drop(store)),
    )
    .await
    .expect("closing the store hung")
    .expect("close");
}

/// Files and sizes under `dir`.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = walk(dir)
        .into_iter()
        .map(|p| {
            let len = std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            (p.strip_prefix(dir).unwrap().display().to_string(), len)
        })
        .collect();
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opening_on_a_full_disk_writes_nothing_and_loses_nothing() {
    let work = tempfile::tempdir_in(common::node::test_root()).expect("temp dir");
    let mnt = work.path().join("mnt");
    let _tmpfs = common::node::Tmpfs::mount(&mnt, "24m");
    let db = mnt.join("db");
    let mut keys = Vec::new();
    let store = SledStore::open(SledConfig::new(&db)).expect("open");
    for i in 0..50 {
        let key = format!("/r/k{i}");
        store
            .create(&key, Bytes::from(vec![1u8; 4096]))
            .await
            .expect("write");
        keys.push(key);
    }
    close(store).await;
    // Let sled's threads let go of the files.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = listing(&db);
    let filler = common::node::fill_disk(&mnt, "filler");
    for _ in 0..3 {
        let err = SledStore::open(SledConfig::new(&db))
            .err()
            .expect("opening on a full disk must fail");
        let message = err.to_string();
        assert!(message.contains("free some space"), "{message}");
    }
    assert_eq!(listing(&db), before, "a failed open changed the store");
    std::fs::remove_file(&filler).expect("free space");
    let store = SledStore::open(SledConfig::new(&db)).expect("open after freeing space");
    for key in &keys {
        assert!(store.get(key).await.unwrap().0.is_some(), "{key} lost");
    }
    store
        .create("/r/new", Bytes::from_static(b"x"))
        .await
        .expect("write after reopening");
}
