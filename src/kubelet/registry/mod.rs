//! Getting images onto the node: pull policy, credentials, mirrors, and the
//! pull itself (done by the containerd layer, [`Runtime::pull`]).
//!
//! [`ImagePuller`] is what the pod workers, the airgap pre-pull and
//! `kelp images pull` call. It turns an image reference as written in a pod
//! spec into [`PullSource`]s: the mirror endpoints of `registries.yaml`
//! (rewrites applied), then the registry itself, each with the credentials
//! that apply there (the pod's pull Secrets for the registry's own
//! endpoint or a mirror host they name, then the file's `configs:` auth).
//! Pulls of one image are single-flight: ten pods starting on one image
//! make one pull, and the other nine find the image when it is done.
//!
//! Failures carry upstream's kubelet reasons: `ErrImagePull`,
//! `InvalidImageName`, `ErrImageNeverPull` and `RegistryUnavailable`.

pub mod config;
pub mod credentials;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use parking_lot::Mutex;

use super::containerd::Runtime;
use super::containerd::images::reference::Reference;
use super::containerd::images::{KeyedLocks, PullError, PullProgress, PullReport, PullSource};
use super::containerd::{ImageInfo, RuntimeError};
use config::{Endpoint, HostConfig, RegistriesFile};
use credentials::RegistryCredential;

/// Clients kept for reuse (each holds its registry tokens).
const MAX_CLIENTS: usize = 64;

/// `imagePullPolicy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    /// Resolve the reference at the registry on every container start.
    Always,
    /// Pull only when the image is not on the node.
    IfNotPresent,
    /// Never pull.
    Never,
}

impl PullPolicy {
    /// The container's policy, or upstream's default for `image` when unset
    /// (`Always` for `:latest` or no tag, else `IfNotPresent`).
    pub fn for_container(policy: Option<&str>, image: &str) -> Self {
        match policy {
            Some("Always") => Self::Always,
            Some("Never") => Self::Never,
            Some("IfNotPresent") => Self::IfNotPresent,
            _ => {
                let name = image.split_once('@').map_or(image, |(n, _)| n);
                let tagged = name.rsplit_once(':').is_some_and(|(_, t)| !t.contains('/'));
                let latest = name.ends_with(":latest");
                if image.contains('@') || (tagged && !latest) {
                    Self::IfNotPresent
                } else {
                    Self::Always
                }
            }
        }
    }
}

/// Why an image could not be made available, with the kubelet's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullFailure {
    /// `ErrImagePull`, `InvalidImageName`, `ErrImageNeverPull` or `RegistryUnavailable`.
    pub reason: &'static str,
    /// What happened, for events and the container's waiting message.
    pub message: String,
}

/// What [`ImagePuller::ensure`] did.
#[derive(Clone, Debug)]
pub enum Ensured {
    /// The image was on the node and the policy did not ask for a pull.
    Present(ImageInfo),
    /// The image was pulled (possibly finding every layer already here).
    Pulled {
        /// The image now on the node.
        info: ImageInfo,
        /// What the pull did.
        report: PullReport,
        /// Time spent pulling.
        elapsed: Duration,
        /// Time spent including waiting for another pull of the same image.
        waited: Duration,
    },
}

impl Ensured {
    /// The image.
    pub fn info(&self) -> &ImageInfo {
        match self {
            Ensured::Present(info) | Ensured::Pulled { info, .. } => info,
        }
    }
}

/// What [`ImagePuller::check`] found.
#[derive(Clone, Debug)]
pub enum Availability {
    /// Usable as it is.
    Present(ImageInfo),
    /// To be pulled ([`ImagePuller::pull_missing`]).
    Missing(Reference),
}

/// Pulls images for one node.
pub struct ImagePuller {
    runtime: Runtime,
    registries: RegistriesFile,
    clients: Mutex<HashMap<String, oci_client::Client>>,
    images: KeyedLocks,
    pinned: Mutex<HashSet<String>>,
    last_used: Mutex<HashMap<String, SystemTime>>,
}

impl ImagePuller {
    /// A puller over `runtime`, with mirrors and registry settings from
    /// `registries` (read again whenever it changes).
    pub fn new(runtime: Runtime, registries: PathBuf) -> Self {
        // reqwest is built without a default crypto provider; kelp uses ring everywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            runtime,
            registries: RegistriesFile::new(registries),
            clients: Mutex::default(),
            images: KeyedLocks::default(),
            pinned: Mutex::default(),
            last_used: Mutex::default(),
        }
    }

    /// The containerd handle.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Makes `image` available as `policy` asks, pulling with `credentials` if needed.
    pub async fn ensure(
        &self,
        image: &str,
        policy: PullPolicy,
        credentials: &[RegistryCredential],
    ) -> Result<Ensured, PullFailure> {
        match self.check(image, policy).await? {
            Availability::Present(info) => Ok(Ensured::Present(info)),
            Availability::Missing(reference) => {
                self.pull_missing(&reference, policy, credentials).await
            }
        }
    }

    /// Whether `image` can be used as it is under `policy`, without
    /// touching a registry: the kubelet reads pull secrets only when not.
    pub async fn check(
        &self,
        image: &str,
        policy: PullPolicy,
    ) -> Result<Availability, PullFailure> {
        let reference = parse_reference(image)?;
        if policy != PullPolicy::Always
            && let Some(info) = self.lookup(image).await?
        {
            self.mark_used(&info.name);
            return Ok(Availability::Present(info));
        }
        if policy == PullPolicy::Never {
            return Err(PullFailure {
                reason: "ErrImageNeverPull",
                message: format!(
                    "Container image {image:?} is not present with pull policy of Never"
                ),
            });
        }
        Ok(Availability::Missing(reference))
    }

    /// Pulls an image [`ImagePuller::check`] found missing (or that
    /// `Always` asks for), once for all pods waiting on it.
    pub async fn pull_missing(
        &self,
        reference: &Reference,
        policy: PullPolicy,
        credentials: &[RegistryCredential],
    ) -> Result<Ensured, PullFailure> {
        let started = Instant::now();
        let name = reference.name();
        let _one_pull = self.images.lock(&name).await;
        let waited_until = Instant::now();
        // Another pod's pull of this image may have finished while we waited.
        if policy != PullPolicy::Always
            && let Some(info) = self.lookup(&name).await?
        {
            self.mark_used(&info.name);
            return Ok(Ensured::Present(info));
        }
        let (info, report) = self
            .pull_reference(reference, credentials, &PullProgress::default())
            .await?;
        Ok(Ensured::Pulled {
            info,
            report,
            elapsed: waited_until.elapsed(),
            waited: started.elapsed(),
        })
    }

    /// Pulls `image` now (whatever is on the node), reporting bytes to `progress`.
    pub async fn pull(
        &self,
        image: &str,
        credentials: &[RegistryCredential],
        progress: &PullProgress,
    ) -> Result<(ImageInfo, PullReport), PullFailure> {
        let reference = parse_reference(image)?;
        let _one_pull = self.images.lock(&reference.name()).await;
        self.pull_reference(&reference, credentials, progress).await
    }

    async fn pull_reference(
        &self,
        reference: &Reference,
        credentials: &[RegistryCredential],
        progress: &PullProgress,
    ) -> Result<(ImageInfo, PullReport), PullFailure> {
        let name = reference.name();
        let sources = self.sources(reference, credentials)?;
        let report = self
            .runtime
            .pull(&name, &sources, progress)
            .await
            .map_err(|e| pull_failure(&name, e))?;
        let info = self.lookup(&name).await?.ok_or_else(|| PullFailure {
            reason: "ErrImagePull",
            message: format!("image {name} was pulled but is not recorded in containerd"),
        })?;
        self.mark_used(&info.name);
        Ok((info, report))
    }

    /// The places to pull `reference` from, in order, with their credentials.
    pub fn sources(
        &self,
        reference: &Reference,
        credentials: &[RegistryCredential],
    ) -> Result<Vec<PullSource>, PullFailure> {
        let registries = self.registries.current();
        let mut out = Vec::new();
        for endpoint in registries.endpoints(&reference.repository) {
            let host_config = registries.host(&endpoint.host);
            // Pull Secrets name the registry; on a mirror they apply when they name the mirror.
            let location = if endpoint.is_default {
                reference.repository.clone()
            } else {
                format!("{}/{}", endpoint.host, endpoint.repository)
            };
            let mut auths: Vec<RegistryAuth> = credentials::matching(credentials, &location)
                .into_iter()
                .map(|c| RegistryAuth::Basic(c.username.clone(), c.password.clone()))
                .collect();
            if let Some(c) = host_config
                .and_then(|h| h.auth.as_ref())
                .and_then(|a| credentials::from_registries_auth(&endpoint.host, a))
            {
                auths.push(RegistryAuth::Basic(c.username, c.password));
            }
            if auths.is_empty() {
                auths.push(RegistryAuth::Anonymous);
            }
            let image = match (&reference.digest, &reference.tag) {
                (Some(d), _) => oci_client::Reference::with_digest(
                    endpoint.host.clone(),
                    endpoint.repository.clone(),
                    d.clone(),
                ),
                (None, t) => oci_client::Reference::with_tag(
                    endpoint.host.clone(),
                    endpoint.repository.clone(),
                    t.clone().unwrap_or_else(|| "latest".into()),
                ),
            };
            for auth in auths {
                let client = self.client(&endpoint, host_config, &auth)?;
                out.push(PullSource {
                    client,
                    image: image.clone(),
                    auth,
                    endpoint: endpoint.url(),
                });
            }
        }
        Ok(out)
    }

    /// A client for one endpoint and one set of credentials (an `oci-client`
    /// client remembers the first credentials it is given per registry).
    fn client(
        &self,
        endpoint: &Endpoint,
        host: Option<&HostConfig>,
        auth: &RegistryAuth,
    ) -> Result<oci_client::Client, PullFailure> {
        let tls = host.and_then(|h| h.tls.clone()).unwrap_or_default();
        let auth_key = match auth {
            RegistryAuth::Anonymous => String::new(),
            RegistryAuth::Basic(u, p) => format!("basic:{u}:{:x}", fingerprint(p)),
            RegistryAuth::Bearer(t) => format!("bearer:{:x}", fingerprint(t)),
        };
        let key = format!(
            "{}|{auth_key}|{:?}|{}",
            endpoint.url(),
            tls.ca_file,
            tls.insecure_skip_verify
        );
        if let Some(c) = self.clients.lock().get(&key) {
            return Ok(c.clone());
        }
        let mut extra_root_certificates = Vec::new();
        if let Some(ca) = &tls.ca_file {
            let data = std::fs::read(ca).map_err(|e| PullFailure {
                reason: "ErrImagePull",
                message: format!(
                    "registries file {}: cannot read tls.ca_file {} for {}: {e}",
                    self.registries.path().display(),
                    ca.display(),
                    endpoint.host
                ),
            })?;
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        let config = ClientConfig {
            protocol: if endpoint.scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: tls.insecure_skip_verify,
            extra_root_certificates,
            read_timeout: Some(Duration::from_secs(60)),
            connect_timeout: Some(Duration::from_secs(10)),
            user_agent: concat!("kelp/", env!("CARGO_PKG_VERSION")),
            max_concurrent_download: 3,
            ..Default::default()
        };
        let client = oci_client::Client::try_from(config).map_err(|e| PullFailure {
            reason: "ErrImagePull",
            message: format!("cannot set up a client for {}: {e}", endpoint.url()),
        })?;
        let mut clients = self.clients.lock();
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }

    async fn lookup(&self, image: &str) -> Result<Option<ImageInfo>, PullFailure> {
        self.runtime.image(image).await.map_err(|e| PullFailure {
            reason: "ErrImagePull",
            message: format!("cannot look up image {image:?}: {e}"),
        })
    }

    /// Marks an image as in use now (image GC removes least recently used first).
    pub fn mark_used(&self, name: &str) {
        self.last_used
            .lock()
            .insert(name.to_string(), SystemTime::now());
    }

    /// When each image was last used by a container or pulled.
    pub fn last_used(&self) -> HashMap<String, SystemTime> {
        self.last_used.lock().clone()
    }

    /// Keeps `name` from image GC (airgap images).
    pub fn pin(&self, name: &str) {
        self.pinned.lock().insert(name.to_string());
    }

    /// Images image GC must keep.
    pub fn pinned(&self) -> HashSet<String> {
        self.pinned.lock().clone()
    }
}

/// Parses a pod-spec image reference, with upstream's InvalidImageName message.
pub fn parse_reference(image: &str) -> Result<Reference, PullFailure> {
    Reference::parse(image).map_err(|_| PullFailure {
        reason: "InvalidImageName",
        message: format!(
            "Failed to apply default image tag {image:?}: couldn't parse image name {image:?}: invalid reference format"
        ),
    })
}

fn pull_failure(name: &str, err: PullError) -> PullFailure {
    let reason = if err.unavailable() {
        "RegistryUnavailable"
    } else {
        "ErrImagePull"
    };
    let detail = match &err {
        PullError::Runtime(RuntimeError::Io { .. }) => format!("{err} (is the disk full?)"),
        _ => err.to_string(),
    };
    PullFailure {
        reason,
        message: format!("failed to pull and unpack image {name:?}: {detail}"),
    }
}

/// A short non-reversible tag for a secret in a cache key.
fn fingerprint(secret: &str) -> u64 {
    use sha2::Digest;
    let d = sha2::Sha256::digest(secret.as_bytes());
    u64::from_be_bytes(d[..8].try_into().unwrap_or([0; 8]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_policy_is_always_for_latest_or_untagged() {
        use PullPolicy::*;
        assert_eq!(PullPolicy::for_container(None, "busybox"), Always);
        assert_eq!(PullPolicy::for_container(None, "busybox:latest"), Always);
        assert_eq!(
            PullPolicy::for_container(None, "busybox:1.36"),
            IfNotPresent
        );
        assert_eq!(PullPolicy::for_container(None, "localhost:5000/b"), Always);
        assert_eq!(
            PullPolicy::for_container(
                None,
                "b@sha256:0123456789012345678901234567890123456789012345678901234567890123"
            ),
            IfNotPresent
        );
        assert_eq!(PullPolicy::for_container(Some("Never"), "busybox"), Never);
    }

    #[test]
    fn invalid_names_get_upstreams_reason() {
        let f = parse_reference("Busybox:UPPER case").unwrap_err();
        assert_eq!(f.reason, "InvalidImageName");
        assert!(
            f.message.contains("invalid reference format"),
            "{}",
            f.message
        );
    }
}
