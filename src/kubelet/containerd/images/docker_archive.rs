//! Image names and targets of a `docker save` archive (`manifest.json`).
//!
//! docker-archive has no manifests of its own: `manifest.json` lists, per image, the
//! config file, the layer files and the repo tags. A Docker schema2 manifest is
//! synthesised from the already-uploaded files (layer media types follow the layers'
//! magic bytes) and uploaded; it becomes the image target, so the digest kelp reports is
//! stable across imports of the same archive.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::super::client::{Lease, Runtime};
use super::super::error::{Result, RuntimeError};
use super::content::{Upload, sha256_digest};
use super::import::{Blob, Compression, Contents, display};
use super::manifest::{DOCKER_CONFIG, DOCKER_MANIFEST, Descriptor, Manifest, parse};
use super::reference::Reference;

/// Docker layer media types.
const LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// One entry of `manifest.json`.
#[derive(Debug, Deserialize)]
pub(crate) struct DockerEntry {
    #[serde(rename = "Config")]
    pub(crate) config: String,
    #[serde(rename = "RepoTags", default)]
    pub(crate) repo_tags: Vec<String>,
    #[serde(rename = "Layers", default)]
    pub(crate) layers: Vec<String>,
}

/// Builds, uploads and returns the `(name, manifest)` pairs of a docker-archive.
pub(crate) async fn images(
    rt: &Runtime,
    lease: &Lease,
    contents: &Contents,
    file: &Path,
) -> Result<Vec<(String, Descriptor)>> {
    let bytes = contents
        .meta
        .get("manifest.json")
        .map(Vec::as_slice)
        .unwrap_or_default();
    let entries: Vec<DockerEntry> = parse(bytes, &format!("{}: manifest.json", display(file)))?;
    let mut out = Vec::new();
    for entry in entries {
        let manifest = synthesize(&entry, contents, file)?;
        let target = upload_manifest(rt, lease, &manifest).await?;
        if entry.repo_tags.is_empty() {
            tracing::warn!(file = %file.display(), config = %entry.config, "skipping untagged image");
        }
        for tag in &entry.repo_tags {
            let name = Reference::parse(tag).map_err(|e| RuntimeError::Image {
                file: display(file),
                reason: format!("bad RepoTag: {e}"),
            })?;
            out.push((name.name(), target.clone()));
        }
    }
    Ok(out)
}

/// The schema2 manifest describing one `manifest.json` entry.
fn synthesize(entry: &DockerEntry, contents: &Contents, file: &Path) -> Result<Manifest> {
    let find = |path: &str| -> Result<&Blob> {
        contents.blob(path).ok_or_else(|| RuntimeError::Image {
            file: display(file),
            reason: format!("manifest.json refers to {path} which the archive lacks"),
        })
    };
    let config = find(&entry.config)?;
    let mut layers = Vec::with_capacity(entry.layers.len());
    for path in &entry.layers {
        let blob = find(path)?;
        let media_type = match Compression::detect(&blob.magic) {
            Compression::None => LAYER_TAR,
            Compression::Gzip => LAYER_GZIP,
            Compression::Zstd => LAYER_ZSTD,
        };
        layers.push(descriptor(media_type, blob));
    }
    Ok(Manifest {
        schema_version: 2,
        media_type: DOCKER_MANIFEST.into(),
        config: descriptor(DOCKER_CONFIG, config),
        layers,
    })
}

fn descriptor(media_type: &str, blob: &Blob) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: blob.digest.clone(),
        size: blob.size,
        ..Default::default()
    }
}

/// Stores the manifest and returns its descriptor.
async fn upload_manifest(rt: &Runtime, lease: &Lease, manifest: &Manifest) -> Result<Descriptor> {
    let bytes = serde_json::to_vec(manifest).map_err(|e| RuntimeError::Image {
        file: "synthesized manifest".into(),
        reason: e.to_string(),
    })?;
    let digest = sha256_digest(&Sha256::digest(&bytes));
    let size = bytes.len() as i64;
    let mut up = Upload::begin(rt, lease, size, Some(digest.clone())).await?;
    up.push(&bytes).await?;
    up.finish(HashMap::new()).await?;
    Ok(Descriptor {
        media_type: DOCKER_MANIFEST.into(),
        digest,
        size,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(digest: &str, magic: &[u8]) -> Blob {
        Blob {
            digest: digest.into(),
            size: 10,
            magic: magic.to_vec(),
        }
    }

    #[test]
    fn synthesizes_a_schema2_manifest_with_sniffed_layer_types() {
        let mut c = Contents::default();
        c.blobs.insert("cfg.json".into(), blob("sha256:c", b"{"));
        c.blobs
            .insert("a/layer.tar".into(), blob("sha256:a", b"bin/"));
        c.blobs
            .insert("b/layer.tar".into(), blob("sha256:b", &[0x1f, 0x8b]));
        let entry = DockerEntry {
            config: "cfg.json".into(),
            repo_tags: vec!["busybox:latest".into()],
            layers: vec!["a/layer.tar".into(), "./b/layer.tar".into()],
        };
        let m = synthesize(&entry, &c, Path::new("x.tar")).ok();
        let m = m.as_ref();
        assert_eq!(m.map(|m| m.config.digest.as_str()), Some("sha256:c"));
        assert_eq!(m.map(|m| m.layers[0].media_type.as_str()), Some(LAYER_TAR));
        assert_eq!(m.map(|m| m.layers[1].media_type.as_str()), Some(LAYER_GZIP));
    }

    #[test]
    fn missing_layer_files_name_the_archive() {
        let entry = DockerEntry {
            config: "cfg.json".into(),
            repo_tags: vec![],
            layers: vec![],
        };
        let err = synthesize(&entry, &Contents::default(), Path::new("/x/img.tar"));
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            msg.contains("/x/img.tar") && msg.contains("cfg.json"),
            "{msg}"
        );
    }
}
