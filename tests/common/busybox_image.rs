//! Builds a tiny busybox image archive from the host's static busybox, for tests.
//!
//! The image has one layer: `bin/busybox` (Debian's busybox-static `/bin/busybox`) plus
//! applet symlinks, `/etc/passwd`, `/etc/group` and an empty `/tmp`. It is written either
//! as a `docker save` archive (uncompressed layer, `manifest.json`) or as an OCI image
//! layout whose `index.json` points at a multi-platform index (gzip layer; the host
//! platform plus a `linux/s390x` entry whose blobs are absent, as in a single-platform
//! export of a multi-arch image). Tarballs are deterministic (mtime 0, root-owned), so
//! the same name yields the same digests. A destination ending in `.gz`/`.tgz` is
//! gzip-compressed as a whole.

use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Which archive layout [`write_busybox_image`] produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// `docker save` layout (`manifest.json`, `<config>.json`, `<id>/layer.tar`).
    DockerArchive,
    /// OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`).
    OciLayout,
}

/// Applets linked to `/bin/busybox` in the image.
pub const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "httpd", "tar", "ls", "id", "hostname", "env", "true", "false",
    "wget", "nc", "head", "tr", "dd", "kill", "ps", "mkdir", "rm", "touch", "test", "yes",
];

/// Writes a busybox image archive named `name` to `dest`.
pub fn write_busybox_image(dest: &Path, name: &str, format: ImageFormat) -> io::Result<()> {
    let busybox = std::fs::read("/bin/busybox")?;
    let layer = layer_tar(&busybox)?;
    let archive = match format {
        ImageFormat::DockerArchive => docker_archive(name, &layer)?,
        ImageFormat::OciLayout => oci_layout(name, &layer)?,
    };
    let ext = dest
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default();
    let bytes = if ext == "gz" || ext == "tgz" {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&archive)?;
        enc.finish()?
    } else {
        archive
    };
    std::fs::write(dest, bytes)
}

fn digest(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn hex(d: &str) -> &str {
    d.trim_start_matches("sha256:")
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) -> io::Result<()> {
    let mut h = header(tar::EntryType::Regular, data.len() as u64, mode);
    b.append_data(&mut h, path, data)
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32) -> io::Result<()> {
    let mut h = header(tar::EntryType::Directory, 0, mode);
    b.append_data(&mut h, path, io::empty())
}

/// The root filesystem layer as an uncompressed tar.
fn layer_tar(busybox: &[u8]) -> io::Result<Vec<u8>> {
    layer_tar_with(busybox, &[])
}

/// The root filesystem layer plus `extra` files (path, content).
pub fn layer_tar_with(busybox: &[u8], extra: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin/", 0o755),
        ("etc/", 0o755),
        ("tmp/", 0o1777),
        ("proc/", 0o755),
        ("sys/", 0o755),
        ("dev/", 0o755),
    ] {
        add_dir(&mut b, dir, mode)?;
    }
    add_file(&mut b, "bin/busybox", busybox, 0o755)?;
    for applet in APPLETS {
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")?;
    }
    add_file(
        &mut b,
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        0o644,
    )?;
    add_file(&mut b, "etc/group", b"root:x:0:\nnogroup:x:65534:\n", 0o644)?;
    for (path, data) in extra {
        add_file(&mut b, path, data, 0o644)?;
    }
    b.into_inner()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn config_json(diff_id: &str) -> Vec<u8> {
    config_json_for(host_arch(), &[diff_id.to_string()])
}

fn config_json_for(arch: &str, diff_ids: &[String]) -> Vec<u8> {
    serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
            "ExposedPorts": {"80/tcp": {}}
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": "kelp tests: busybox-static"}]
    })
    .to_string()
    .into_bytes()
}

fn docker_archive(name: &str, layer: &[u8]) -> io::Result<Vec<u8>> {
    let diff_id = digest(layer);
    let config = config_json(&diff_id);
    let config_file = format!("{}.json", hex(&digest(&config)));
    let layer_file = format!("{}/layer.tar", hex(&diff_id));
    let manifest = serde_json::json!([{
        "Config": config_file, "RepoTags": [name], "Layers": [layer_file]
    }]);
    let mut b = tar::Builder::new(Vec::new());
    add_dir(&mut b, &format!("{}/", hex(&diff_id)), 0o755)?;
    add_file(&mut b, &layer_file, layer, 0o644)?;
    add_file(&mut b, &config_file, &config, 0o644)?;
    add_file(
        &mut b,
        "manifest.json",
        manifest.to_string().as_bytes(),
        0o644,
    )?;
    b.into_inner()
}

fn oci_layout(name: &str, layer: &[u8]) -> io::Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(layer)?;
    let layer_gz = gz.finish()?;
    let config = config_json(&digest(layer));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(&layer_gz), "size": layer_gz.len()}]
    })
    .to_string()
    .into_bytes();
    let manifest_desc = |arch: &str, d: &str, size: usize| {
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": size,
            "platform": {"architecture": arch, "os": "linux"}
        })
    };
    let absent = digest(b"manifest for another platform, not in this archive");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [manifest_desc("s390x", &absent, 100), manifest_desc(host_arch(), &digest(&manifest), manifest.len())]
    })
    .to_string()
    .into_bytes();
    let tag = name
        .rsplit_once(':')
        .map(|(_, t)| t)
        .filter(|t| !t.contains('/'))
        .unwrap_or("latest");
    let top = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest(&index), "size": index.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag}
        }]
    });
    let mut b = tar::Builder::new(Vec::new());
    add_file(
        &mut b,
        "oci-layout",
        br#"{"imageLayoutVersion":"1.0.0"}"#,
        0o644,
    )?;
    for blob in [&layer_gz, &config, &manifest, &index] {
        add_file(
            &mut b,
            &format!("blobs/sha256/{}", hex(&digest(blob))),
            blob,
            0o644,
        )?;
    }
    add_file(&mut b, "index.json", top.to_string().as_bytes(), 0o644)?;
    b.into_inner()
}

/// What [`write_oci_dir`] wrote.
pub struct OciDirImage {
    /// Digest of the multi-platform index (what `repo@digest` names).
    pub index_digest: String,
    /// Digests of the layer blobs, in order.
    pub layer_digests: Vec<String>,
    /// Digest of the host platform's config.
    pub config_digest: String,
    /// Total size of the layer blobs.
    pub layers_size: u64,
}

/// Writes an OCI image layout *directory* (what `skopeo copy oci:DIR:TAG`
/// reads) holding one multi-platform index tagged `tag`, with a complete
/// image (config + manifest) for each of `archs` over the same `layers`
/// (uncompressed tars; gzip-compressed when `gzip`).
pub fn write_oci_dir(
    dir: &Path,
    tag: &str,
    layers: &[Vec<u8>],
    archs: &[&str],
    gzip: bool,
) -> io::Result<OciDirImage> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |data: &[u8]| -> io::Result<String> {
        let d = digest(data);
        std::fs::write(blobs.join(hex(&d)), data)?;
        Ok(d)
    };
    let mut layer_descs = Vec::new();
    let mut layer_digests = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layers_size = 0u64;
    for layer in layers {
        diff_ids.push(digest(layer));
        let (blob, media) = if gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(layer)?;
            (gz.finish()?, "application/vnd.oci.image.layer.v1.tar+gzip")
        } else {
            (layer.clone(), "application/vnd.oci.image.layer.v1.tar")
        };
        let d = put(&blob)?;
        layers_size += blob.len() as u64;
        layer_descs.push(serde_json::json!({"mediaType": media, "digest": d, "size": blob.len()}));
        layer_digests.push(d);
    }
    let mut manifests = Vec::new();
    let mut config_digest = String::new();
    for arch in archs {
        let config = config_json_for(arch, &diff_ids);
        let cd = put(&config)?;
        if *arch == host_arch() {
            config_digest = cd.clone();
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": layer_descs,
        })
        .to_string()
        .into_bytes();
        let md = put(&manifest)?;
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
            "platform": {"architecture": arch, "os": "linux"}
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    })
    .to_string()
    .into_bytes();
    let index_digest = put(&index)?;
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag}
        }]
    });
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    std::fs::write(dir.join("index.json"), top.to_string())?;
    Ok(OciDirImage {
        index_digest,
        layer_digests,
        config_digest,
        layers_size,
    })
}

/// A busybox layer marked with `marker` (so each marker gives new digests).
pub fn marked_busybox_layer(marker: &str) -> io::Result<Vec<u8>> {
    let busybox = std::fs::read("/bin/busybox")?;
    layer_tar_with(&busybox, &[("etc/kelp-marker", marker.as_bytes())])
}

/// This host's OCI architecture name.
pub fn oci_host_arch() -> &'static str {
    host_arch()
}
