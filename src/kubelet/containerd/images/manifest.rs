//! OCI / Docker schema2 image documents: descriptors, manifests, indexes, configs.
//!
//! Only the fields kelp needs are modelled; unknown fields are ignored. Resolution walks
//! from an image target (manifest or index, possibly nested) to the manifest for
//! `linux/<host arch>`, reading documents from containerd's content store.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::super::client::Runtime;
use super::super::error::{Result, RuntimeError};
use super::content::{read_blob, sha256_digest};

/// Docker schema2 manifest media type.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list media type.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config media type.
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI manifest media type.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI index media type.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Largest manifest, index or config accepted.
pub(crate) const MAX_DOCUMENT: usize = 8 * 1024 * 1024;

/// An OCI content descriptor.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub(crate) media_type: String,
    pub(crate) digest: String,
    pub(crate) size: i64,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub(crate) annotations: HashMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) platform: Option<Platform>,
}

/// A platform in an index entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Platform {
    #[serde(default)]
    pub(crate) architecture: String,
    #[serde(default)]
    pub(crate) os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
}

/// An image manifest (OCI or Docker schema2; they share this shape).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Manifest {
    #[serde(rename = "schemaVersion")]
    pub(crate) schema_version: u32,
    #[serde(
        rename = "mediaType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) media_type: String,
    pub(crate) config: Descriptor,
    #[serde(default)]
    pub(crate) layers: Vec<Descriptor>,
}

/// An image index / manifest list.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Index {
    #[serde(default)]
    pub(crate) manifests: Vec<Descriptor>,
}

/// The parts of an image config file kelp reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub(crate) config: Option<ContainerConfig>,
    #[serde(default)]
    pub(crate) rootfs: RootFs,
}

/// `config` of an image config file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContainerConfig {
    #[serde(default)]
    pub(crate) entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) cmd: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) env: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) working_dir: Option<String>,
    #[serde(default)]
    pub(crate) user: Option<String>,
    #[serde(default)]
    pub(crate) exposed_ports: Option<HashMap<String, serde_json::Value>>,
}

/// `rootfs` of an image config file.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub(crate) diff_ids: Vec<String>,
}

/// A manifest resolved for this host, with its config.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) manifest: Manifest,
    pub(crate) config: ConfigFile,
}

impl Resolved {
    /// Chain IDs of the layers: `chain[0] = diff[0]`, `chain[i] = sha256("chain[i-1] diff[i]")`.
    pub(crate) fn chain_ids(&self) -> Vec<String> {
        chain_ids(&self.config.rootfs.diff_ids)
    }
}

/// Computes snapshot chain IDs from diff IDs.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => sha256_digest(&Sha256::digest(format!("{prev} {d}").as_bytes())),
        };
        out.push(next);
    }
    out
}

/// The OCI architecture name of this host.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// True for index / manifest-list media types.
pub(crate) fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// Picks the `linux/<host arch>` entry of an index (entries without platform match too).
pub(crate) fn pick_platform(index: &Index) -> Option<&Descriptor> {
    let arch = host_arch();
    let matches = |d: &&Descriptor| match &d.platform {
        Some(p) => p.os == "linux" && p.architecture == arch,
        None => false,
    };
    index.manifests.iter().find(matches).or_else(|| {
        index
            .manifests
            .iter()
            .find(|d| d.platform.is_none() && !is_attestation(d))
    })
}

/// BuildKit attestation manifests are stored with an `unknown/unknown` platform.
fn is_attestation(d: &Descriptor) -> bool {
    d.annotations.contains_key("vnd.docker.reference.type")
}

/// Parses a JSON document, naming `what` in the error.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| RuntimeError::Image {
        file: what.to_string(),
        reason: e.to_string(),
    })
}

/// Resolves an image target to this host's manifest and config.
pub(crate) async fn resolve(rt: &Runtime, target: &Descriptor, name: &str) -> Result<Resolved> {
    let mut desc = target.clone();
    for _ in 0..4 {
        let bytes = read_blob(rt, &desc.digest, MAX_DOCUMENT).await?;
        let media = if desc.media_type.is_empty() {
            sniff_media_type(&bytes)
        } else {
            desc.media_type.clone()
        };
        if is_index(&media) {
            let index: Index = parse(&bytes, &desc.digest)?;
            desc = pick_platform(&index)
                .cloned()
                .ok_or_else(|| RuntimeError::Image {
                    file: name.to_string(),
                    reason: format!("no linux/{} manifest in index {}", host_arch(), desc.digest),
                })?;
            continue;
        }
        let manifest: Manifest = parse(&bytes, &desc.digest)?;
        let config_bytes = read_blob(rt, &manifest.config.digest, MAX_DOCUMENT).await?;
        let config: ConfigFile = parse(&config_bytes, &manifest.config.digest)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(RuntimeError::Image {
                file: name.to_string(),
                reason: format!(
                    "config lists {} diff_ids for {} layers",
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len()
                ),
            });
        }
        return Ok(Resolved { manifest, config });
    }
    Err(RuntimeError::Image {
        file: name.to_string(),
        reason: "indexes nested too deeply".into(),
    })
}

/// Guesses the media type of a document that came without one.
pub(crate) fn sniff_media_type(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(p) if !p.media_type.is_empty() => p.media_type,
        Ok(p) if p.manifests.is_some() => OCI_INDEX.to_string(),
        _ => OCI_MANIFEST.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_match_containerd() {
        let a = "sha256:aaaa".to_string();
        let b = "sha256:bbbb".to_string();
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(
            ids[1],
            sha256_digest(&Sha256::digest(b"sha256:aaaa sha256:bbbb"))
        );
    }

    #[test]
    fn picks_the_host_platform_and_skips_attestations() {
        let entry = |arch: &str, digest: &str| Descriptor {
            digest: digest.into(),
            platform: Some(Platform {
                architecture: arch.into(),
                os: "linux".into(),
                variant: None,
            }),
            ..Default::default()
        };
        let index = Index {
            manifests: vec![entry("s390x", "sha256:1"), entry(host_arch(), "sha256:2")],
        };
        assert_eq!(
            pick_platform(&index).map(|d| d.digest.as_str()),
            Some("sha256:2")
        );
        let other = Index {
            manifests: vec![entry("s390x", "sha256:1")],
        };
        assert!(pick_platform(&other).is_none());
    }

    #[test]
    fn sniffs_indexes_without_media_type() {
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"manifests":[]}"#),
            OCI_INDEX
        );
        assert_eq!(
            sniff_media_type(br#"{"schemaVersion":2,"config":{}}"#),
            OCI_MANIFEST
        );
    }
}
