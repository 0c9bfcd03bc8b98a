//! Image names and targets of an OCI image layout (`oci-layout` + `index.json`).
//!
//! Each `index.json` entry is one image (a manifest, or an index to resolve per platform
//! later). Its name comes from `io.containerd.image.name`, else from
//! `org.opencontainers.image.ref.name` when that is a full reference, else from a Docker
//! `manifest.json` next to it (Docker ≥ 25 writes both). Unnamed entries are skipped with
//! a warning, as containerd's importer does without `--base-name`.

use std::collections::HashMap;
use std::path::Path;

use super::super::client::Runtime;
use super::super::error::{Result, RuntimeError};
use super::content::read_blob;
use super::docker_archive::DockerEntry;
use super::import::{Contents, display};
use super::manifest::{Descriptor, Index, MAX_DOCUMENT, Manifest, is_index, parse};
use super::reference::Reference;

const CONTAINERD_NAME: &str = "io.containerd.image.name";
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The `(name, target)` pairs of an OCI layout archive.
pub(crate) async fn images(
    rt: &Runtime,
    contents: &Contents,
    file: &Path,
) -> Result<Vec<(String, Descriptor)>> {
    let index_bytes = contents
        .meta
        .get("index.json")
        .map(Vec::as_slice)
        .unwrap_or_default();
    let index: Index = parse(index_bytes, &format!("{}: index.json", display(file)))?;
    let docker_names = docker_names(contents, file)?;
    let mut out = Vec::new();
    for desc in index.manifests {
        if contents.blob(&blob_path(&desc.digest)).is_none() {
            return Err(RuntimeError::Image {
                file: display(file),
                reason: format!(
                    "index.json refers to {} which the archive lacks",
                    desc.digest
                ),
            });
        }
        let mut names = annotated_name(&desc).into_iter().collect::<Vec<_>>();
        if names.is_empty() && !docker_names.is_empty() && !is_index(&desc.media_type) {
            let manifest: Manifest = parse(
                &read_blob(rt, &desc.digest, MAX_DOCUMENT).await?,
                &desc.digest,
            )?;
            names = docker_names
                .get(&manifest.config.digest)
                .cloned()
                .unwrap_or_default();
        }
        if names.is_empty() {
            tracing::warn!(file = %file.display(), digest = %desc.digest, "skipping unnamed image");
        }
        for name in names {
            out.push((name, desc.clone()));
        }
    }
    Ok(out)
}

/// `blobs/<algo>/<hex>` for a digest.
pub(crate) fn blob_path(digest: &str) -> String {
    format!("blobs/{}", digest.replacen(':', "/", 1))
}

/// The normalised name an index entry carries, if any.
fn annotated_name(desc: &Descriptor) -> Option<String> {
    let full = desc.annotations.get(CONTAINERD_NAME).or_else(|| {
        desc.annotations
            .get(OCI_REF_NAME)
            .filter(|n| n.contains('/') || n.contains(':'))
    })?;
    Reference::parse(full).ok().map(|r| r.name())
}

/// Names from a docker `manifest.json`, keyed by config digest.
fn docker_names(contents: &Contents, file: &Path) -> Result<HashMap<String, Vec<String>>> {
    let Some(bytes) = contents.meta.get("manifest.json") else {
        return Ok(HashMap::new());
    };
    let entries: Vec<DockerEntry> = parse(bytes, &format!("{}: manifest.json", display(file)))?;
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for e in entries {
        if let Some(blob) = contents.blob(&e.config) {
            let names = e.repo_tags.iter().filter_map(|t| Reference::parse(t).ok());
            out.entry(blob.digest.clone())
                .or_default()
                .extend(names.map(|r| r.name()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_annotations() {
        let mut d = Descriptor::default();
        assert_eq!(annotated_name(&d), None);
        d.annotations.insert(OCI_REF_NAME.into(), "latest".into());
        assert_eq!(annotated_name(&d), None, "a bare tag is not a name");
        d.annotations
            .insert(OCI_REF_NAME.into(), "busybox:1.36".into());
        assert_eq!(
            annotated_name(&d).as_deref(),
            Some("docker.io/library/busybox:1.36")
        );
        d.annotations
            .insert(CONTAINERD_NAME.into(), "docker.io/x/y:z".into());
        assert_eq!(annotated_name(&d).as_deref(), Some("docker.io/x/y:z"));
    }

    #[test]
    fn blob_paths_follow_the_layout() {
        assert_eq!(blob_path("sha256:abc"), "blobs/sha256/abc");
    }
}
