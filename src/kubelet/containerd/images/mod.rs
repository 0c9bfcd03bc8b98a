//! Images: importing archives, looking images up by pod-spec reference, listing them.
//!
//! containerd 1.6 has no transfer service, so import is done here: blobs are streamed
//! into the content store (`import`), the layout decides names and targets
//! (`oci_layout`, `docker_archive`), documents get `containerd.io/gc.ref.*` labels so
//! garbage collection keeps them, image records are created or re-pointed, and layers
//! are unpacked into overlayfs (`unpack`). Everything happens under one lease that is
//! dropped at the end, when the image records reference all of it. Importing the same
//! archive twice uploads nothing new and unpacks nothing.

mod content;
mod docker_archive;
mod import;
mod manifest;
mod oci_layout;
mod pull;
pub mod reference;
mod single_flight;
mod unpack;

use std::collections::HashMap;
use std::path::Path;

use containerd_client::services::v1::images_client::ImagesClient;
use containerd_client::services::v1::{
    CreateImageRequest, DeleteImageRequest, GetImageRequest, Image, ListImagesRequest,
    UpdateImageRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::Descriptor as ProtoDescriptor;
use prost_types::FieldMask;

use super::client::{Lease, MAX_MESSAGE, Runtime};
use super::error::{Result, RuntimeError};
use manifest::{Descriptor, Index, MAX_DOCUMENT, is_index, parse, pick_platform};
pub use pull::{ATTEMPTS, PullError, PullProgress, PullReport, PullSource};
use reference::Reference;
pub use single_flight::{KeyGuard, KeyedLocks};
pub(crate) use unpack::{SNAPSHOTTER, remove_snapshot, snapshot_exists};

/// An image as kelp sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Normalised name, e.g. `docker.io/library/busybox:latest`.
    pub name: String,
    /// Digest of the image target (the manifest, or the index for multi-platform images):
    /// kelp reports `<name-without-tag>@<digest>` as the repo digest.
    pub digest: String,
    /// Digest of the config blob (`sha256:…`), the image ID.
    pub config_digest: String,
    /// Chain ID of the top layer: the snapshot parent of container root filesystems.
    pub top_chain_id: String,
    /// The runtime defaults from the image config.
    pub config: ImageConfig,
    /// Size of this platform's config and layers as stored (compressed), in bytes.
    pub size: u64,
}

/// Runtime defaults an image config carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    /// `Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `Cmd`.
    pub cmd: Vec<String>,
    /// `Env` (`KEY=value`).
    pub env: Vec<String>,
    /// `WorkingDir` (empty when unset).
    pub working_dir: String,
    /// `User` (empty when unset).
    pub user: String,
    /// `ExposedPorts` keys, e.g. `80/tcp`, sorted.
    pub exposed_ports: Vec<String>,
}

impl Runtime {
    /// Imports one image archive (OCI layout or docker-archive; plain, gzip or zstd tar)
    /// and returns the normalised names of the images it holds.
    pub async fn import_archive(&self, path: &Path) -> Result<Vec<String>> {
        let lease = self.lease("import").await?;
        let result = self.import_with_lease(path, &lease).await;
        self.drop_lease(lease).await;
        result
    }

    async fn import_with_lease(&self, path: &Path, lease: &Lease) -> Result<Vec<String>> {
        let contents = import::collect(self, lease, path).await?;
        let images = if contents.meta.contains_key("index.json") {
            oci_layout::images(self, &contents, path).await?
        } else if contents.meta.contains_key("manifest.json") {
            docker_archive::images(self, lease, &contents, path).await?
        } else {
            return Err(RuntimeError::Image {
                file: path.display().to_string(),
                reason: "neither index.json (OCI layout) nor manifest.json (docker save) found"
                    .into(),
            });
        };
        if images.is_empty() {
            return Err(RuntimeError::Image {
                file: path.display().to_string(),
                reason: "the archive names no image".into(),
            });
        }
        let mut names = Vec::new();
        for (name, target) in images {
            self.register(lease, &name, &target).await?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Labels, unpacks and records one image.
    async fn register(&self, lease: &Lease, name: &str, target: &Descriptor) -> Result<()> {
        self.label_tree(target).await?;
        let resolved = manifest::resolve(self, target, name).await?;
        unpack::unpack(self, lease, &resolved, name).await?;
        let image = Image {
            name: name.to_string(),
            target: Some(ProtoDescriptor {
                media_type: target.media_type.clone(),
                digest: target.digest.clone(),
                size: target.size,
                annotations: HashMap::new(),
            }),
            ..Default::default()
        };
        let mut images = ImagesClient::new(self.channel.clone());
        let create = CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        };
        match images.create(self.leased(create, lease)).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::AlreadyExists => {
                let mask = FieldMask {
                    paths: vec!["target".into()],
                };
                let update = UpdateImageRequest {
                    image: Some(image),
                    update_mask: Some(mask),
                    source_date_epoch: None,
                };
                images
                    .update(self.leased(update, lease))
                    .await
                    .map_err(RuntimeError::rpc("Images.Update"))?;
                Ok(())
            }
            Err(s) => Err(RuntimeError::rpc("Images.Create")(s)),
        }
    }

    /// Adds `gc.ref.content.*` labels from the target down to this host's manifest.
    async fn label_tree(&self, target: &Descriptor) -> Result<()> {
        let mut desc = target.clone();
        for _ in 0..4 {
            let bytes = content::read_blob(self, &desc.digest, MAX_DOCUMENT).await?;
            let media = if desc.media_type.is_empty() {
                manifest::sniff_media_type(&bytes)
            } else {
                desc.media_type.clone()
            };
            let mut labels = HashMap::new();
            if is_index(&media) {
                let index: Index = parse(&bytes, &desc.digest)?;
                for (i, child) in index.manifests.iter().enumerate() {
                    if content::info(self, &child.digest).await?.is_some() {
                        labels.insert(
                            format!("containerd.io/gc.ref.content.m.{i}"),
                            child.digest.clone(),
                        );
                    }
                }
                content::set_labels(self, &desc.digest, labels).await?;
                match pick_platform(&index) {
                    Some(next) => desc = next.clone(),
                    None => return Ok(()), // resolve() reports the missing platform
                }
                continue;
            }
            let m: manifest::Manifest = parse(&bytes, &desc.digest)?;
            labels.insert(
                "containerd.io/gc.ref.content.config".into(),
                m.config.digest.clone(),
            );
            for (i, layer) in m.layers.iter().enumerate() {
                labels.insert(
                    format!("containerd.io/gc.ref.content.l.{i}"),
                    layer.digest.clone(),
                );
            }
            return content::set_labels(self, &desc.digest, labels).await;
        }
        Ok(())
    }

    /// Whether an overlayfs snapshot (a container rootfs or an image layer) exists.
    pub async fn snapshot_exists(&self, key: &str) -> Result<bool> {
        snapshot_exists(self, key).await
    }

    /// Looks an image up by a reference as written in a pod spec (`busybox`,
    /// `busybox:1.36`, `repo@sha256:…`), or by image ID (`sha256:<config digest>`).
    pub async fn image(&self, reference: &str) -> Result<Option<ImageInfo>> {
        if reference.starts_with("sha256:") && reference::parse_digest(reference).is_some() {
            let all = self.list_images().await?;
            return Ok(all
                .into_iter()
                .find(|i| i.config_digest == reference || i.digest == reference));
        }
        let r = Reference::parse(reference)?;
        if let Some(digest) = &r.digest {
            let all = self.list_images().await?;
            let found = all.into_iter().find(|i| {
                i.name == r.name()
                    || (&i.digest == digest && repository_of(&i.name) == r.repository)
            });
            return Ok(found);
        }
        let req = self.req(GetImageRequest { name: r.name() });
        match ImagesClient::new(self.channel.clone()).get(req).await {
            Ok(resp) => match resp.into_inner().image {
                Some(img) => self.info(img).await.map(Some),
                None => Ok(None),
            },
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(RuntimeError::rpc("Images.Get")(s)),
        }
    }

    /// Removes an image record and lets containerd collect what only it
    /// referenced (content and unpacked snapshots) before returning.
    /// Returns false when there was no such image.
    pub async fn remove_image(&self, name: &str) -> Result<bool> {
        let req = self.req(DeleteImageRequest {
            name: name.to_string(),
            sync: true,
            target: None,
        });
        match ImagesClient::new(self.channel.clone()).delete(req).await {
            Ok(_) => Ok(true),
            Err(s) if s.code() == Code::NotFound => Ok(false),
            Err(s) => Err(RuntimeError::rpc("Images.Delete")(s)),
        }
    }

    /// All images in the namespace; records whose content is broken are skipped (logged).
    pub async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let req = self.req(ListImagesRequest { filters: vec![] });
        let images = ImagesClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .list(req)
            .await
            .map_err(RuntimeError::rpc("Images.List"))?
            .into_inner()
            .images;
        let mut out = Vec::with_capacity(images.len());
        for img in images {
            let name = img.name.clone();
            match self.info(img).await {
                Ok(info) => out.push(info),
                Err(err) => tracing::warn!(image = %name, %err, "skipping unreadable image"),
            }
        }
        Ok(out)
    }

    /// Builds an [`ImageInfo`] from an image record.
    async fn info(&self, img: Image) -> Result<ImageInfo> {
        let target = img.target.ok_or_else(|| RuntimeError::Image {
            file: img.name.clone(),
            reason: "image record has no target".into(),
        })?;
        let target = Descriptor {
            media_type: target.media_type,
            digest: target.digest,
            size: target.size,
            ..Default::default()
        };
        let resolved = manifest::resolve(self, &target, &img.name).await?;
        let top_chain_id = resolved.chain_ids().last().cloned().unwrap_or_default();
        let c = resolved.config.config.unwrap_or_default();
        let mut exposed_ports: Vec<String> =
            c.exposed_ports.unwrap_or_default().into_keys().collect();
        exposed_ports.sort();
        let size = std::iter::once(&resolved.manifest.config)
            .chain(&resolved.manifest.layers)
            .map(|d| d.size.max(0) as u64)
            .sum();
        Ok(ImageInfo {
            size,
            name: img.name,
            digest: target.digest,
            config_digest: resolved.manifest.config.digest,
            top_chain_id,
            config: ImageConfig {
                entrypoint: c.entrypoint.unwrap_or_default(),
                cmd: c.cmd.unwrap_or_default(),
                env: c.env.unwrap_or_default(),
                working_dir: c.working_dir.unwrap_or_default(),
                user: c.user.unwrap_or_default(),
                exposed_ports,
            },
        })
    }
}

/// The OCI architecture name of this host (`amd64`, `arm64`, …).
pub(crate) fn host_arch_name() -> &'static str {
    manifest::host_arch()
}

/// `docker.io/library/busybox:latest` → `docker.io/library/busybox`.
pub fn repository_of(name: &str) -> &str {
    let name = name.split_once('@').map(|(n, _)| n).unwrap_or(name);
    match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => &name[..i],
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_drops_tag_and_digest_but_not_port() {
        assert_eq!(
            repository_of("docker.io/library/busybox:latest"),
            "docker.io/library/busybox"
        );
        assert_eq!(repository_of("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository_of("r.io/a@sha256:00"), "r.io/a");
    }
}
