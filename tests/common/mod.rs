//! Helpers shared by the integration tests.
#![allow(dead_code, missing_docs)]

use std::time::Duration;

use kelp::store::sled::{CompactionPolicy, SledConfig, SledStore};

/// A store in a fresh temp dir; compaction only when asked.
pub fn temp_store() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(manual_compaction(dir.path().join("db"))).expect("open store");
    (dir, store)
}

/// Config with policy compaction effectively off.
pub fn manual_compaction(path: std::path::PathBuf) -> SledConfig {
    let mut config = SledConfig::new(path);
    config.compaction = CompactionPolicy {
        max_age: Duration::from_secs(3600),
        max_events: u64::MAX,
        interval: Duration::from_secs(3600),
        age_slack: Duration::from_secs(3600),
    };
    config
}

pub mod busybox_image;
pub mod cluster;
pub mod extension_server;
pub mod multi_node;
pub mod node;
pub mod proc_stats;
pub mod registry;
pub mod sim;
