//! `kill -9` at random moments loses no acknowledged write and leaves the
//! event log consistent with the data.
//!
//! The parent test re-runs this test binary as a child (the ignored
//! `crash_child` test) that writes from many tasks and prints one ACK line
//! per acknowledged write, kills it with SIGKILL after a random delay,
//! reopens the store and checks it. The store directory accumulates across
//! rounds, so recovery from every earlier crash is checked again each time.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;
use kelp::store::sled::SledStore;
use kelp::store::{EventKind, RangeRequest, Store, StoreError};

const ROUNDS: usize = 24;
const DIR_ENV: &str = "KELP_CRASH_CHILD_DIR";
const ROUND_ENV: &str = "KELP_CRASH_CHILD_ROUND";

#[test]
#[ignore = "child process of kill_9_at_random_moments_loses_no_acknowledged_write"]
fn crash_child() {
    let dir = std::env::var(DIR_ENV).expect("run by the crash test");
    let round: usize = std::env::var(ROUND_ENV).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = SledStore::open(common::manual_compaction(dir.into())).unwrap();
        println!("READY");
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    for i in 0.. {
                        let key = format!("/crash/{round}/{t}/{i}");
                        let kv = store
                            .create(&key, Bytes::from(format!("{round}-{t}-{i}")))
                            .await
                            .unwrap();
                        println!("ACK put {key} {}", kv.mod_revision);
                        if i % 4 == 3 {
                            let d = store.delete(&key, Some(kv.mod_revision)).await.unwrap();
                            println!("ACK del {key} {}", d.revision);
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
fn kill_9_at_random_moments_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let mut rng = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut acked_puts: BTreeMap<String, u64> = BTreeMap::new();
    let mut acked_dels: BTreeSet<String> = BTreeSet::new();
    let mut total_acks = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_ENV, &db)
            .env(ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Wait until it writes, then let it run a random while.
        let first = lines_rx.recv_timeout(Duration::from_secs(30));
        assert!(first.is_ok(), "child did not start (round {round})");
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(20 + rng % 400);
        let _ = lines_rx
            .recv_timeout(Duration::from_secs(3600))
            .ok()
            .map(|_| ());
        let deadline = std::time::Instant::now() + delay;
        let mut lines = Vec::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match lines_rx.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(lines_rx.try_iter());
        for line in &lines {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["ACK", "put", key, rev] => {
                    acked_puts.insert(key.to_string(), rev.parse().unwrap());
                    total_acks += 1;
                }
                ["ACK", "del", key, _] => {
                    acked_dels.insert(key.to_string());
                    total_acks += 1;
                }
                _ => {}
            }
        }
        verify(&db, &acked_puts, &acked_dels);
    }
    assert!(
        total_acks > ROUNDS * 10,
        "children acknowledged too little to prove anything: {total_acks}"
    );
}

/// The child deletes every fourth key right after creating it.
fn may_have_been_deleted(key: &str) -> bool {
    key.rsplit('/')
        .next()
        .and_then(|i| i.parse::<u64>().ok())
        .is_some_and(|i| i % 4 == 3)
}

fn verify(db: &std::path::Path, puts: &BTreeMap<String, u64>, dels: &BTreeSet<String>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SledStore::open(common::manual_compaction(db.to_path_buf()))
            .expect("store reopens after kill -9");
        let now = store
            .range(RangeRequest {
                prefix: "/".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        let state: BTreeMap<String, (Bytes, u64)> = now
            .kvs
            .iter()
            .map(|kv| (kv.key.clone(), (kv.value.clone(), kv.mod_revision)))
            .collect();
        for (key, rev) in puts {
            if dels.contains(key) {
                assert!(
                    !state.contains_key(key),
                    "acknowledged delete of {key} was lost"
                );
            } else if may_have_been_deleted(key) {
                // Its delete may have committed with the ACK unprinted.
                if let Some((_, mod_rev)) = state.get(key) {
                    assert_eq!(mod_rev, rev, "{key} has the wrong revision");
                }
            } else {
                let (_, mod_rev) = state.get(key).unwrap_or_else(|| {
                    panic!(
                        "acknowledged create of {key} (rev {rev}) was lost; store at revision {}",
                        store.current_revision()
                    )
                });
                assert_eq!(mod_rev, rev, "{key} has the wrong revision");
            }
        }
        // The log is dense from 1 to the current revision and replaying it
        // yields exactly the stored state: no half-written event.
        let current = store.current_revision();
        let mut replayed: BTreeMap<String, (Bytes, u64)> = BTreeMap::new();
        let mut watch = store.watch("/", 0).unwrap();
        for rev in 1..=current {
            let ev = watch.next().await.unwrap().unwrap();
            assert_eq!(ev.revision, rev, "event log has a gap");
            match ev.kind {
                EventKind::Put => {
                    let v = ev.value.unwrap();
                    replayed.insert(ev.key, (v.value, v.mod_revision));
                }
                EventKind::Delete => {
                    assert!(
                        replayed.remove(&ev.key).is_some(),
                        "delete of a key that did not exist"
                    );
                }
            }
        }
        assert_eq!(replayed, state, "event log disagrees with the data");
        assert!(!matches!(
            store.watch("/", 0),
            Err(StoreError::Compacted { .. })
        ));
    });
}
