//! Unpacking image layers into the overlayfs snapshotter.
//!
//! Each layer becomes a committed snapshot named by its chain ID, built by
//! Prepare → Diff.Apply → Commit under the import lease. Existing chain IDs are skipped,
//! so re-imports and images sharing base layers cost nothing. An image whose top chain
//! ID exists is not touched at all. After a successful unpack the config blob is
//! labelled `containerd.io/gc.ref.snapshot.overlayfs=<top>` so the snapshots outlive the
//! lease. A failed layer removes its active snapshot; committed ones stay for a retry.

use std::collections::HashMap;

use containerd_client::services::v1::ApplyRequest;
use containerd_client::services::v1::diff_client::DiffClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::{Descriptor as ProtoDescriptor, Mount};

use super::super::client::{Lease, Runtime, unique_suffix};
use super::super::error::{Result, RuntimeError};
use super::content::set_labels;
use super::manifest::{Descriptor, Resolved};

/// The snapshotter kelp uses.
pub(crate) const SNAPSHOTTER: &str = "overlayfs";

/// Ensures every layer of `image` is unpacked; returns the top chain ID.
pub(crate) async fn unpack(
    rt: &Runtime,
    lease: &Lease,
    image: &Resolved,
    name: &str,
) -> Result<String> {
    let chain = image.chain_ids();
    let Some(top) = chain.last().cloned() else {
        return Err(RuntimeError::Image {
            file: name.into(),
            reason: "image has no layers".into(),
        });
    };
    if !snapshot_exists(rt, &top).await? {
        for (i, layer) in image.manifest.layers.iter().enumerate() {
            unpack_layer(
                rt,
                lease,
                layer,
                &chain,
                i,
                &image.config.rootfs.diff_ids[i],
            )
            .await?;
        }
    }
    let gc = HashMap::from([(
        format!("containerd.io/gc.ref.snapshot.{SNAPSHOTTER}"),
        top.clone(),
    )]);
    set_labels(rt, &image.manifest.config.digest, gc).await?;
    Ok(top)
}

/// Unpacks layer `i` (chain ID `chain[i]`, on `chain[i - 1]`) unless its
/// snapshot exists. The parent must be unpacked already.
pub(crate) async fn unpack_layer(
    rt: &Runtime,
    lease: &Lease,
    layer: &Descriptor,
    chain: &[String],
    i: usize,
    diff_id: &str,
) -> Result<()> {
    if snapshot_exists(rt, &chain[i]).await? {
        return Ok(());
    }
    let parent = if i == 0 { "" } else { chain[i - 1].as_str() };
    apply_layer(rt, lease, layer, &chain[i], parent, diff_id).await?;
    let label = HashMap::from([("containerd.io/uncompressed".into(), diff_id.to_string())]);
    set_labels(rt, &layer.digest, label).await
}

/// True when a snapshot (committed or active) named `key` exists.
pub(crate) async fn snapshot_exists(rt: &Runtime, key: &str) -> Result<bool> {
    let req = rt.req(StatSnapshotRequest {
        snapshotter: SNAPSHOTTER.into(),
        key: key.into(),
    });
    match SnapshotsClient::new(rt.channel.clone()).stat(req).await {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::NotFound => Ok(false),
        Err(s) => Err(RuntimeError::rpc("Snapshots.Stat")(s)),
    }
}

/// Prepare → Apply → Commit for one layer; removes the active snapshot on failure.
async fn apply_layer(
    rt: &Runtime,
    lease: &Lease,
    layer: &Descriptor,
    chain_id: &str,
    parent: &str,
    diff_id: &str,
) -> Result<()> {
    let key = format!("extract-{} {chain_id}", unique_suffix());
    let labels = HashMap::from([(
        "containerd.io/snapshot.ref".to_string(),
        chain_id.to_string(),
    )]);
    let mut snaps = SnapshotsClient::new(rt.channel.clone());
    let prepare = PrepareSnapshotRequest {
        snapshotter: SNAPSHOTTER.into(),
        key: key.clone(),
        parent: parent.into(),
        labels: labels.clone(),
    };
    let mounts = snaps
        .prepare(rt.leased(prepare, lease))
        .await
        .map_err(RuntimeError::rpc("Snapshots.Prepare"))?
        .into_inner()
        .mounts;
    let result = apply_and_commit(rt, lease, layer, mounts, &key, chain_id, diff_id, labels).await;
    if result.is_err() {
        remove_snapshot(rt, &key).await;
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn apply_and_commit(
    rt: &Runtime,
    lease: &Lease,
    layer: &Descriptor,
    mounts: Vec<Mount>,
    key: &str,
    chain_id: &str,
    diff_id: &str,
    labels: HashMap<String, String>,
) -> Result<()> {
    let diff = ProtoDescriptor {
        media_type: layer.media_type.clone(),
        digest: layer.digest.clone(),
        size: layer.size,
        annotations: HashMap::new(),
    };
    let req = ApplyRequest {
        diff: Some(diff),
        mounts,
        payloads: HashMap::new(),
        sync_fs: false,
    };
    let applied = DiffClient::new(rt.channel.clone())
        .apply(rt.leased(req, lease))
        .await
        .map_err(RuntimeError::rpc("Diff.Apply"))?
        .into_inner()
        .applied
        .map(|d| d.digest)
        .unwrap_or_default();
    if applied != diff_id {
        return Err(RuntimeError::Image {
            file: layer.digest.clone(),
            reason: format!("layer unpacked to {applied}, config says {diff_id}"),
        });
    }
    let commit = CommitSnapshotRequest {
        snapshotter: SNAPSHOTTER.into(),
        name: chain_id.into(),
        key: key.into(),
        labels,
    };
    match SnapshotsClient::new(rt.channel.clone())
        .commit(rt.leased(commit, lease))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == Code::AlreadyExists => {
            remove_snapshot(rt, key).await; // a concurrent unpack won
            Ok(())
        }
        Err(s) => Err(RuntimeError::rpc("Snapshots.Commit")(s)),
    }
}

/// Removes a snapshot, logging (not failing) when that is impossible.
pub(crate) async fn remove_snapshot(rt: &Runtime, key: &str) -> bool {
    let req = rt.req(RemoveSnapshotRequest {
        snapshotter: SNAPSHOTTER.into(),
        key: key.into(),
    });
    match SnapshotsClient::new(rt.channel.clone()).remove(req).await {
        Ok(_) => true,
        Err(s) if s.code() == Code::NotFound => true,
        Err(s) => {
            tracing::warn!(key, %s, "could not remove snapshot");
            false
        }
    }
}
