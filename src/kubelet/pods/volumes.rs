//! Pod volumes on the host: `<data>/agent/pods/<uid>/volumes/<name>`.
//!
//! emptyDir is a directory (a tmpfs for `medium: Memory`); hostPath is
//! checked against its `type` like upstream; configMap, secret, downwardAPI
//! and projected volumes are rendered files, written with upstream's atomic
//! writer layout (`..data` → a timestamped directory, one symlink per
//! entry) so that a refresh swaps all files at once and a reader never sees
//! a half-updated set.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMapProjection, DownwardAPIProjection, KeyToPath, Pod, SecretProjection, Volume,
    VolumeProjection,
};
use serde_json::json;

use super::env::{self, EnvContext};
use super::objects::ObjectSource;

/// Why a volume cannot be set up (shown as a FailedMount event and keeps
/// the pod's containers from starting).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A referenced object or key is missing.
    #[error("{0}")]
    Missing(String),
    /// The volume's spec cannot be honoured.
    #[error("{0}")]
    Invalid(String),
    /// Writing files failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let what = what.into();
    move |source| VolumeError::Io { what, source }
}

/// A volume ready to be mounted: host path and whether it must be read-only.
#[derive(Clone, Debug)]
pub struct PreparedVolume {
    /// Directory or file on the host.
    pub host_path: PathBuf,
    /// configMap/secret/downwardAPI/projected are always read-only.
    pub read_only: bool,
}

/// Sets up every volume of `pod` under `pod_dir`; returns them by name.
pub async fn prepare(
    pod_dir: &Path,
    ctx: &EnvContext<'_>,
    objects: &ObjectSource,
) -> Result<BTreeMap<String, PreparedVolume>, VolumeError> {
    let mut out = BTreeMap::new();
    let volumes = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    for volume in &volumes {
        let dir = pod_dir.join("volumes").join(&volume.name);
        let prepared = prepare_one(volume, &dir, ctx, objects).await?;
        out.insert(volume.name.clone(), prepared);
    }
    Ok(out)
}

async fn prepare_one(
    volume: &Volume,
    dir: &Path,
    ctx: &EnvContext<'_>,
    objects: &ObjectSource,
) -> Result<PreparedVolume, VolumeError> {
    let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let rendered = |host_path: PathBuf| PreparedVolume {
        host_path,
        read_only: true,
    };
    if let Some(empty) = &volume.empty_dir {
        make_dir(dir, 0o777)?;
        if empty.medium.as_deref() == Some("Memory") {
            mount_tmpfs(dir, empty.size_limit.as_ref().map(|q| q.0.as_str()))?;
        }
        return Ok(PreparedVolume {
            host_path: dir.to_path_buf(),
            read_only: false,
        });
    }
    if let Some(host) = &volume.host_path {
        return host_path(&host.path, host.type_.as_deref().unwrap_or(""));
    }
    let Some((sources, mode)) = as_projection(volume) else {
        return Err(VolumeError::Invalid(format!(
            "volume {:?}: this volume type is not supported by kelp (supported: emptyDir, hostPath, configMap, secret, downwardAPI, projected)",
            volume.name
        )));
    };
    let mode = mode.unwrap_or(0o644) as u32;
    let mut files: BTreeMap<String, (Vec<u8>, u32)> = BTreeMap::new();
    for source in &sources {
        render_source(&mut files, source, mode, ns, ctx, objects).await?;
    }
    write_atomic(dir, &files)?;
    Ok(rendered(dir.to_path_buf()))
}

/// configMap, secret and downwardAPI volumes are projected volumes with
/// one source, as upstream treats them; returns the sources and defaultMode.
fn as_projection(volume: &Volume) -> Option<(Vec<VolumeProjection>, Option<i32>)> {
    if let Some(cm) = &volume.config_map {
        let source = ConfigMapProjection {
            name: cm.name.clone(),
            items: cm.items.clone(),
            optional: cm.optional,
        };
        return Some((
            vec![VolumeProjection {
                config_map: Some(source),
                ..Default::default()
            }],
            cm.default_mode,
        ));
    }
    if let Some(secret) = &volume.secret {
        let source = SecretProjection {
            name: secret.secret_name.clone().unwrap_or_default(),
            items: secret.items.clone(),
            optional: secret.optional,
        };
        return Some((
            vec![VolumeProjection {
                secret: Some(source),
                ..Default::default()
            }],
            secret.default_mode,
        ));
    }
    if let Some(down) = &volume.downward_api {
        let source = DownwardAPIProjection {
            items: down.items.clone(),
        };
        return Some((
            vec![VolumeProjection {
                downward_api: Some(source),
                ..Default::default()
            }],
            down.default_mode,
        ));
    }
    let projected = volume.projected.as_ref()?;
    Some((
        projected.sources.clone().unwrap_or_default(),
        projected.default_mode,
    ))
}

/// Adds the files of one projected source.
async fn render_source(
    files: &mut BTreeMap<String, (Vec<u8>, u32)>,
    source: &VolumeProjection,
    mode: u32,
    ns: &str,
    ctx: &EnvContext<'_>,
    objects: &ObjectSource,
) -> Result<(), VolumeError> {
    if let Some(cm) = &source.config_map {
        let data = objects.config_map_bytes(ns, &cm.name).await;
        let what = format!("configmap \"{}\"", cm.name);
        add_items(
            files,
            data,
            cm.items.as_deref(),
            mode,
            cm.optional.unwrap_or(false),
            &what,
        )?;
    }
    if let Some(s) = &source.secret {
        let data = objects.secret(ns, &s.name).await;
        let what = format!("secret \"{}\"", s.name);
        add_items(
            files,
            data,
            s.items.as_deref(),
            mode,
            s.optional.unwrap_or(false),
            &what,
        )?;
    }
    for item in source
        .downward_api
        .iter()
        .flat_map(|d| d.items.iter().flatten())
    {
        let value = downward_value(ctx, item)?.into_bytes();
        files.insert(
            item.path.clone(),
            (value, item.mode.map_or(mode, |m| m as u32)),
        );
    }
    if let Some(sat) = &source.service_account_token {
        let token = service_account_token(
            ctx.pod,
            objects,
            sat.audience.as_deref(),
            sat.expiration_seconds,
        )
        .await?;
        files.insert(sat.path.clone(), (token.into_bytes(), mode.min(0o600)));
    }
    Ok(())
}

fn add_items(
    files: &mut BTreeMap<String, (Vec<u8>, u32)>,
    data: Option<BTreeMap<String, Vec<u8>>>,
    items: Option<&[KeyToPath]>,
    mode: u32,
    optional: bool,
    what: &str,
) -> Result<(), VolumeError> {
    let Some(data) = data else {
        return if optional {
            Ok(())
        } else {
            Err(VolumeError::Missing(format!("{what} not found")))
        };
    };
    match items {
        None => files.extend(data.into_iter().map(|(k, v)| (k, (v, mode)))),
        Some(items) => {
            for item in items {
                match data.get(&item.key) {
                    Some(v) => {
                        files.insert(
                            item.path.clone(),
                            (v.clone(), item.mode.map_or(mode, |m| m as u32)),
                        );
                    }
                    None if optional => {}
                    None => {
                        return Err(VolumeError::Missing(format!(
                            "{what}: key {:?} not found",
                            item.key
                        )));
                    }
                }
            }
        }
    }
    Ok(())
}

fn downward_value(
    ctx: &EnvContext<'_>,
    item: &k8s_openapi::api::core::v1::DownwardAPIVolumeFile,
) -> Result<String, VolumeError> {
    if let Some(field) = &item.field_ref {
        return env::field_value(ctx, &field.field_path)
            .map_err(|e| VolumeError::Invalid(e.to_string()));
    }
    if let Some(res) = &item.resource_field_ref {
        let spec = ctx.pod.spec.as_ref();
        let container = spec
            .and_then(|s| {
                s.containers
                    .iter()
                    .find(|c| Some(&c.name) == res.container_name.as_ref())
            })
            .or_else(|| spec.and_then(|s| s.containers.first()))
            .ok_or_else(|| VolumeError::Invalid("pod has no containers".into()))?;
        return env::resource_value(
            container,
            &res.resource,
            res.divisor.as_ref().map(|d| d.0.as_str()),
        )
        .map_err(|e| VolumeError::Invalid(e.to_string()));
    }
    Ok(String::new())
}

async fn service_account_token(
    pod: &Pod,
    objects: &ObjectSource,
    audience: Option<&str>,
    expiration: Option<i64>,
) -> Result<String, VolumeError> {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let sa = pod
        .spec
        .as_ref()
        .and_then(|s| s.service_account_name.clone())
        .unwrap_or_else(|| "default".into());
    let mut spec = json!({
        "expirationSeconds": expiration.unwrap_or(3600),
        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name, "uid": pod.metadata.uid},
    });
    if let Some(aud) = audience {
        spec["audiences"] = json!([aud]);
    }
    let body =
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
    let api: kube::Api<ServiceAccount> = kube::Api::namespaced(objects.client().clone(), ns);
    let answer: serde_json::Value = api
        .create_subresource("token", &sa, &Default::default(), &body)
        .await
        .map_err(|e| {
            VolumeError::Missing(format!(
                "cannot get a token for serviceaccount {ns}/{sa}: {e}"
            ))
        })?;
    answer["status"]["token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| VolumeError::Missing("TokenRequest answered without a token".into()))
}

/// Checks or creates a hostPath per its `type` (upstream's hostPath types).
fn host_path(path: &str, ty: &str) -> Result<PreparedVolume, VolumeError> {
    let p = PathBuf::from(path);
    let meta = std::fs::metadata(&p).ok();
    let bad = |want: &str| {
        VolumeError::Invalid(format!(
            "hostPath type check failed: {path} is not a {want}"
        ))
    };
    match ty {
        "" => {}
        "DirectoryOrCreate" => {
            if meta.is_none() {
                make_dir(&p, 0o755)?;
            } else if !meta.as_ref().is_some_and(|m| m.is_dir()) {
                return Err(bad("directory"));
            }
        }
        "Directory" if !meta.as_ref().is_some_and(|m| m.is_dir()) => return Err(bad("directory")),
        "FileOrCreate" => {
            if meta.is_none() {
                if let Some(parent) = p.parent() {
                    make_dir(parent, 0o755)?;
                }
                std::fs::File::create(&p).map_err(io(format!("cannot create {path}")))?;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))
                    .map_err(io(path))?;
            } else if !meta.as_ref().is_some_and(|m| m.is_file()) {
                return Err(bad("file"));
            }
        }
        "File" if !meta.as_ref().is_some_and(|m| m.is_file()) => return Err(bad("file")),
        "Socket" | "CharDevice" | "BlockDevice" => {
            use std::os::unix::fs::FileTypeExt;
            let ft = meta.as_ref().map(|m| m.file_type());
            let ok = match ty {
                "Socket" => ft.is_some_and(|f| f.is_socket()),
                "CharDevice" => ft.is_some_and(|f| f.is_char_device()),
                _ => ft.is_some_and(|f| f.is_block_device()),
            };
            if !ok {
                return Err(bad(ty));
            }
        }
        "Directory" | "File" => {}
        other => {
            return Err(VolumeError::Invalid(format!(
                "unknown hostPath type {other:?}"
            )));
        }
    }
    Ok(PreparedVolume {
        host_path: p,
        read_only: false,
    })
}

fn make_dir(dir: &Path, mode: u32) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .map_err(io(format!("cannot chmod {}", dir.display())))
}

fn mount_tmpfs(dir: &Path, size: Option<&str>) -> Result<(), VolumeError> {
    if is_mount_point(dir) {
        return Ok(());
    }
    let mut options = String::from("mode=0777");
    if let Some(bytes) = size.and_then(|s| crate::client::quantity::parse_value(s).ok()) {
        options.push_str(&format!(",size={bytes}"));
    }
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| io(format!("cannot mount tmpfs on {}", dir.display()))(e.into()))
}

fn is_mount_point(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.to_string_lossy();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(&*dir))
}

/// Unmounts every mount under `pod_dir` (tmpfs emptyDirs), deepest first,
/// then removes the directory.
pub fn teardown(pod_dir: &Path) {
    let prefix = format!("{}/", pod_dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for point in points {
        if let Err(e) = nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!(%point, error = %e, "cannot unmount pod volume");
        }
    }
    if let Err(e) = std::fs::remove_dir_all(pod_dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(dir = %pod_dir.display(), error = %e, "cannot remove pod dir");
    }
}

/// Upstream's AtomicWriter layout: files go to a fresh `..<stamp>` dir,
/// `..data` is switched to it with one rename, and each top-level entry is
/// a symlink through `..data`.
fn write_atomic(dir: &Path, files: &BTreeMap<String, (Vec<u8>, u32)>) -> Result<(), VolumeError> {
    make_dir(dir, 0o777)?;
    for path in files.keys() {
        if path.starts_with('/')
            || path.split('/').any(|c| c == ".." || c.is_empty())
            || path.starts_with("..")
        {
            return Err(VolumeError::Invalid(format!(
                "invalid volume item path {path:?}"
            )));
        }
    }
    let stamp = format!(
        "..{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let version = dir.join(&stamp);
    make_dir(&version, 0o755)?;
    for (path, (bytes, mode)) in files {
        let target = version.join(path);
        if let Some(parent) = target.parent() {
            make_dir(parent, 0o755)?;
        }
        std::fs::write(&target, bytes).map_err(io(format!("cannot write {}", target.display())))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(*mode & 0o777))
            .map_err(io(format!("cannot chmod {}", target.display())))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link).map_err(io("cannot link ..data_tmp"))?;
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::fs::rename(&tmp_link, dir.join("..data")).map_err(io("cannot switch ..data"))?;
    let tops: std::collections::BTreeSet<&str> =
        files.keys().filter_map(|p| p.split('/').next()).collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{top}"), &link).map_err(io(format!("cannot link {top}")))?;
        }
    }
    // Entries that disappeared from the source go too.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !tops.contains(name.as_str()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_swaps_all_files_and_drops_removed_keys() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("v");
        let mut files = BTreeMap::new();
        files.insert("a".to_string(), (b"1".to_vec(), 0o644));
        files.insert("sub/b".to_string(), (b"2".to_vec(), 0o600));
        write_atomic(&vol, &files).unwrap();
        assert_eq!(std::fs::read(vol.join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(vol.join("sub/b")).unwrap(), b"2");
        let mode = std::fs::metadata(vol.join("sub/b"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        files.remove("a");
        files.insert("sub/b".to_string(), (b"3".to_vec(), 0o644));
        write_atomic(&vol, &files).unwrap();
        assert!(!vol.join("a").exists());
        assert_eq!(std::fs::read(vol.join("sub/b")).unwrap(), b"3");
        let versions = std::fs::read_dir(&vol)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("..1"))
            .count();
        assert_eq!(versions, 1, "the old version dir is removed");
    }

    #[test]
    fn atomic_writer_rejects_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = BTreeMap::new();
        files.insert("../x".to_string(), (b"1".to_vec(), 0o644));
        assert!(write_atomic(dir.path(), &files).is_err());
    }

    #[test]
    fn host_path_types_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("made");
        host_path(d.to_str().unwrap(), "DirectoryOrCreate").unwrap();
        assert!(d.is_dir());
        assert!(host_path(d.to_str().unwrap(), "File").is_err());
        let f = dir.path().join("f");
        host_path(f.to_str().unwrap(), "FileOrCreate").unwrap();
        assert!(f.is_file());
        assert!(host_path(f.to_str().unwrap(), "Directory").is_err());
        assert!(host_path("/nonexistent-kelp", "Directory").is_err());
    }
}
