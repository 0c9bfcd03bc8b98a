//! Pulls from OCI registries (Docker Registry HTTP API v2) into containerd.
//!
//! containerd 1.6's CRI plugin would pull by itself, but kelp drives
//! containerd without CRI, so the transfer is done here with `oci-client`:
//! the top document (index, manifest list or manifest) is fetched by tag or
//! digest, the manifest for this node's platform is picked, and the config
//! and layers are streamed into the content store under one lease, then the
//! image is labelled, unpacked and recorded exactly as an imported archive
//! is ([`Runtime::register`]).
//!
//! - Every document and blob is checked against its digest before it is
//!   committed; containerd checks again on commit. A failed or wrong
//!   download aborts its ingest, so nothing partial is ever committed.
//! - Layers are fetched three at a time (containerd's default
//!   `max_concurrent_downloads`). A download that breaks off is resumed
//!   with a Range request from the last byte received (or restarted when
//!   the registry ignores the range), up to [`ATTEMPTS`] times.
//! - A layer already in the content store is never fetched again, and two
//!   pulls that need the same layer at once share one download: the second
//!   waits on the digest's lock ([`super::KeyedLocks`]) and then finds it.
//! - [`PullSource`]s (mirrors, then the registry itself, each with the
//!   credentials that apply) are tried in order until one resolves.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use oci_client::client::BlobResponse;
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use sha2::{Digest, Sha256};

use super::super::client::{Lease, Runtime};
use super::super::error::RuntimeError;
use super::content::{self, CHUNK, Upload, sha256_digest};
use super::manifest::{
    self, DOCKER_LIST, DOCKER_MANIFEST, Descriptor, Index, MAX_DOCUMENT, OCI_INDEX, OCI_MANIFEST,
    is_index, parse, pick_platform,
};
use super::unpack::unpack_layer;

/// How often one blob download is tried (the first try included).
pub const ATTEMPTS: u32 = 4;

/// Layers downloaded at once per pull.
const PARALLEL_LAYERS: usize = 3;

/// How long a blob stream may go without a byte before it counts as broken.
const STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// One place to pull an image from: an endpoint, the repository there, and
/// the credentials to present.
#[derive(Clone)]
pub struct PullSource {
    /// A client for this endpoint (its scheme and TLS settings).
    pub client: oci_client::Client,
    /// The image at this endpoint (mirror host, rewritten repository).
    pub image: oci_client::Reference,
    /// Credentials for this endpoint.
    pub auth: RegistryAuth,
    /// The endpoint as configured, for messages (`https://registry-1.docker.io`).
    pub endpoint: String,
}

/// Byte counters a caller can watch while a pull runs (for progress bars).
#[derive(Debug, Default)]
pub struct PullProgress {
    /// Bytes of config and layers this pull needs.
    pub total: AtomicU64,
    /// Bytes of those that are in the content store now.
    pub done: AtomicU64,
}

/// What a successful pull did.
#[derive(Clone, Debug)]
pub struct PullReport {
    /// The name the image is recorded under.
    pub name: String,
    /// Digest of the image target (index or manifest).
    pub digest: String,
    /// Size of the platform's manifest, config and layers, in bytes.
    pub size: u64,
    /// Bytes actually downloaded (0 when everything was already here).
    pub fetched: u64,
    /// The endpoint it came from.
    pub endpoint: String,
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The registry refused the credentials (401/403), with its message.
    #[error("failed to authorize at {endpoint}: {message}")]
    Unauthorized {
        /// The endpoint that refused.
        endpoint: String,
        /// The registry's answer.
        message: String,
    },
    /// The registry has no such repository, tag or digest.
    #[error("failed to resolve reference {image:?} at {endpoint}: not found")]
    NotFound {
        /// The endpoint asked.
        endpoint: String,
        /// The reference asked for.
        image: String,
    },
    /// The registry could not be reached, or failed with a 5xx.
    #[error("registry {endpoint} is unavailable: {message}")]
    Unavailable {
        /// The endpoint tried.
        endpoint: String,
        /// What happened.
        message: String,
    },
    /// The image has no manifest for this node's platform.
    #[error(
        "no matching manifest for linux/{wanted} in the manifest list entries of {image}; platforms found: {found}"
    )]
    Platform {
        /// The image.
        image: String,
        /// This node's architecture.
        wanted: &'static str,
        /// The platforms the index lists.
        found: String,
    },
    /// Content did not match its digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    Digest {
        /// What was fetched.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// The registry answered with something else that is wrong.
    #[error("registry {endpoint}: {message}")]
    Registry {
        /// The endpoint.
        endpoint: String,
        /// The registry's answer.
        message: String,
    },
    /// Storing or unpacking in containerd failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// No endpoint to try (an empty mirror list with no default endpoint).
    #[error("no registry endpoint to pull {0} from")]
    NoEndpoint(String),
    /// Every endpoint failed; each one's error, in the order tried.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Endpoints(Vec<PullError>),
}

impl PullError {
    /// True when another endpoint (or other credentials) may do better.
    fn try_next(&self) -> bool {
        matches!(
            self,
            PullError::Unauthorized { .. }
                | PullError::NotFound { .. }
                | PullError::Unavailable { .. }
                | PullError::Registry { .. }
        )
    }

    /// True when every endpoint tried was unreachable (the kubelet's
    /// `RegistryUnavailable`).
    pub fn unavailable(&self) -> bool {
        match self {
            PullError::Unavailable { .. } => true,
            PullError::Endpoints(all) => all.iter().all(PullError::unavailable),
            _ => false,
        }
    }

    /// Whether a retry of the same download may succeed.
    fn retryable(&self) -> bool {
        matches!(self, PullError::Unavailable { .. })
    }
}

/// Manifest media types asked for, indexes first.
const ACCEPT_ANY: &[&str] = &[OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
/// Manifest media types of one platform.
const ACCEPT_MANIFEST: &[&str] = &[OCI_MANIFEST, DOCKER_MANIFEST];

impl Runtime {
    /// Pulls the image to be recorded as `name` from the first of `sources`
    /// that has it, and returns what was done.
    pub async fn pull(
        &self,
        name: &str,
        sources: &[PullSource],
        progress: &PullProgress,
    ) -> Result<PullReport, PullError> {
        let mut failed = Vec::new();
        for source in sources {
            match self.pull_from(name, source, progress).await {
                Ok(report) => return Ok(report),
                Err(err) if err.try_next() => {
                    tracing::info!(image = name, endpoint = %source.endpoint, %err, "pull from endpoint failed; trying the next");
                    failed.push(err);
                }
                Err(err) => return Err(err),
            }
        }
        match failed.len() {
            0 => Err(PullError::NoEndpoint(name.to_string())),
            1 => Err(failed.remove(0)),
            _ => Err(PullError::Endpoints(failed)),
        }
    }

    async fn pull_from(
        &self,
        name: &str,
        source: &PullSource,
        progress: &PullProgress,
    ) -> Result<PullReport, PullError> {
        let lease = self.lease("pull").await?;
        let result = self.pull_with_lease(name, source, progress, &lease).await;
        self.drop_lease(lease).await;
        result
    }

    async fn pull_with_lease(
        &self,
        name: &str,
        source: &PullSource,
        progress: &PullProgress,
        lease: &Lease,
    ) -> Result<PullReport, PullError> {
        let image = &source.image;
        let top = fetch_document(source, image, ACCEPT_ANY, image.digest()).await?;
        let target = Descriptor {
            media_type: manifest::sniff_media_type(&top),
            digest: sha256_digest(&Sha256::digest(&top)),
            size: top.len() as i64,
            ..Default::default()
        };
        self.store_document(lease, &target.digest, &top).await?;
        let (manifest_bytes, manifest_size) = if is_index(&target.media_type) {
            let index: Index = parse(&top, &target.digest)?;
            let child = pick_platform(&index)
                .cloned()
                .ok_or_else(|| PullError::Platform {
                    image: name.to_string(),
                    wanted: manifest::host_arch(),
                    found: platforms(&index),
                })?;
            let child_ref = image.clone_with_digest(child.digest.clone());
            let bytes =
                fetch_document(source, &child_ref, ACCEPT_MANIFEST, Some(&child.digest)).await?;
            self.store_document(lease, &child.digest, &bytes).await?;
            let size = bytes.len() as u64;
            (bytes, size)
        } else {
            (top.clone(), top.len() as u64)
        };
        let m: manifest::Manifest = parse(&manifest_bytes, name)?;
        let blobs: Vec<Descriptor> = std::iter::once(m.config.clone())
            .chain(m.layers.iter().cloned())
            .collect();
        let size: u64 = blobs.iter().map(|d| d.size.max(0) as u64).sum();
        progress.total.fetch_add(size, Ordering::Relaxed);
        let (arrived_tx, arrived) = tokio::sync::watch::channel(HashSet::<String>::new());
        let downloads = async move {
            futures::stream::iter(blobs)
                .map(|d| {
                    let arrived = &arrived_tx;
                    async move {
                        let n = self.fetch_blob(lease, source, d.clone(), progress).await?;
                        arrived.send_modify(|set| {
                            set.insert(d.digest);
                        });
                        Ok::<u64, PullError>(n)
                    }
                })
                .buffer_unordered(PARALLEL_LAYERS)
                .try_collect::<Vec<u64>>()
                .await
        };
        let (fetched, early) =
            tokio::join!(downloads, self.unpack_as_layers_arrive(lease, &m, arrived));
        let fetched = fetched?;
        if let Err(err) = early {
            tracing::debug!(image = name, %err, "early unpack stopped; unpacking after the download");
        }
        self.register(lease, name, &target).await?;
        Ok(PullReport {
            name: name.to_string(),
            digest: target.digest,
            size: size + manifest_size,
            fetched: fetched.iter().sum(),
            endpoint: source.endpoint.clone(),
        })
    }

    /// Unpacks layers in order while the later ones still download, so
    /// unpacking overlaps the transfer. Stops (leaving the rest to
    /// [`Runtime::register`]) when the downloads end or anything fails.
    async fn unpack_as_layers_arrive(
        &self,
        lease: &Lease,
        m: &manifest::Manifest,
        mut arrived: tokio::sync::watch::Receiver<HashSet<String>>,
    ) -> Result<(), RuntimeError> {
        let stopped = |what: &str| RuntimeError::Image {
            file: what.to_string(),
            reason: "download ended first".into(),
        };
        arrived
            .wait_for(|set| set.contains(&m.config.digest))
            .await
            .map_err(|_| stopped(&m.config.digest))?;
        let bytes = content::read_blob(self, &m.config.digest, MAX_DOCUMENT).await?;
        let config: manifest::ConfigFile = parse(&bytes, &m.config.digest)?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != m.layers.len() {
            return Err(stopped("config"));
        }
        let chain = manifest::chain_ids(diff_ids);
        for (i, layer) in m.layers.iter().enumerate() {
            arrived
                .wait_for(|set| set.contains(&layer.digest))
                .await
                .map_err(|_| stopped(&layer.digest))?;
            unpack_layer(self, lease, layer, &chain, i, &diff_ids[i]).await?;
        }
        Ok(())
    }

    /// Writes a manifest or index into the content store (skipped when present).
    async fn store_document(
        &self,
        lease: &Lease,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(), RuntimeError> {
        let mut up = Upload::begin(self, lease, bytes.len() as i64, Some(digest.into())).await?;
        up.push(bytes).await?;
        up.finish(HashMap::new()).await.map(|_| ())
    }

    /// Downloads one blob into the content store unless it is there already;
    /// returns the bytes downloaded.
    async fn fetch_blob(
        &self,
        lease: &Lease,
        source: &PullSource,
        desc: Descriptor,
        progress: &PullProgress,
    ) -> Result<u64, PullError> {
        let size = desc.size.max(0) as u64;
        let _flight = self.inflight.lock(&desc.digest).await;
        // begin() asks the content store whether the blob is there already.
        let mut up = Upload::begin(self, lease, desc.size, Some(desc.digest.clone())).await?;
        if up.already_stored() {
            progress.done.fetch_add(size, Ordering::Relaxed);
            return Ok(0);
        }
        let mut attempt = 1;
        loop {
            match stream_blob(source, &desc, &mut up, progress).await {
                Ok(()) => break,
                Err(err) if err.retryable() && attempt < ATTEMPTS => {
                    tracing::warn!(digest = %desc.digest, endpoint = %source.endpoint, received = up.received(), %err, attempt, "blob download broke off; resuming");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
                    attempt += 1;
                }
                Err(err) => {
                    up.abort().await;
                    return Err(err);
                }
            }
        }
        match up.finish(HashMap::new()).await {
            Ok(_) => Ok(size),
            Err(RuntimeError::Image { reason, .. }) => Err(PullError::Digest {
                what: format!("blob {} from {}", desc.digest, source.endpoint),
                expected: desc.digest.clone(),
                actual: reason.trim_start_matches("content has digest ").to_string(),
            }),
            Err(e) => Err(e.into()),
        }
    }
}

/// Streams the rest of a blob (from what `up` holds) into `up`, in chunks of
/// [`CHUNK`]. What arrived before a break is kept for the resume.
async fn stream_blob(
    source: &PullSource,
    desc: &Descriptor,
    up: &mut Upload,
    progress: &PullProgress,
) -> Result<(), PullError> {
    let offset = up.received().max(0) as u64;
    let size = desc.size.max(0) as u64;
    if offset >= size {
        return Ok(());
    }
    let digest = desc.digest.as_str();
    let (mut stream, mut skip) = if offset == 0 {
        let s = source
            .client
            .pull_blob_stream(&source.image, digest)
            .await
            .map_err(|e| classify(e, source, digest))?;
        (s, 0)
    } else {
        match source
            .client
            .pull_blob_stream_partial(&source.image, digest, offset, Some(size - offset))
            .await
            .map_err(|e| classify(e, source, digest))?
        {
            BlobResponse::Partial(s) => (s, 0),
            // The registry ignored the range: drop what we already have.
            BlobResponse::Full(s) => (s, offset),
        }
    };
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut seen = offset;
    loop {
        let next = tokio::time::timeout(STALL_TIMEOUT, stream.next()).await;
        let chunk = match next {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => break,
            Ok(Some(Err(e)))
                if e.get_ref()
                    .is_some_and(|inner| inner.is::<oci_client::errors::DigestError>()) =>
            {
                // Every byte arrived and they are wrong: no retry can help.
                return Err(PullError::Digest {
                    what: format!("blob {digest} from {}", source.endpoint),
                    expected: digest.to_string(),
                    actual: e.to_string(),
                });
            }
            Ok(Some(Err(e))) => {
                flush(up, &mut buf, progress).await?;
                return Err(PullError::Unavailable {
                    endpoint: source.endpoint.clone(),
                    message: format!("reading blob {digest} after {seen} bytes: {e}"),
                });
            }
            Err(_) => {
                flush(up, &mut buf, progress).await?;
                return Err(PullError::Unavailable {
                    endpoint: source.endpoint.clone(),
                    message: format!("blob {digest} stalled for {STALL_TIMEOUT:?}"),
                });
            }
        };
        let mut data = &chunk[..];
        if skip > 0 {
            let n = skip.min(data.len() as u64) as usize;
            data = &data[n..];
            skip -= n as u64;
        }
        seen += data.len() as u64;
        if seen > size {
            return Err(PullError::Digest {
                what: format!("blob {digest} from {}", source.endpoint),
                expected: format!("{size} bytes"),
                actual: format!("more than {size} bytes"),
            });
        }
        buf.extend_from_slice(data);
        if buf.len() >= CHUNK {
            flush(up, &mut buf, progress).await?;
        }
    }
    flush(up, &mut buf, progress).await?;
    if seen < size {
        return Err(PullError::Unavailable {
            endpoint: source.endpoint.clone(),
            message: format!("blob {digest} ended after {seen} of {size} bytes"),
        });
    }
    Ok(())
}

async fn flush(
    up: &mut Upload,
    buf: &mut Vec<u8>,
    progress: &PullProgress,
) -> Result<(), PullError> {
    if buf.is_empty() {
        return Ok(());
    }
    up.push(buf).await?;
    progress.done.fetch_add(buf.len() as u64, Ordering::Relaxed);
    buf.clear();
    Ok(())
}

/// Fetches a manifest or index and checks it against `digest` when one is known.
async fn fetch_document(
    source: &PullSource,
    image: &oci_client::Reference,
    accept: &[&str],
    digest: Option<&str>,
) -> Result<Vec<u8>, PullError> {
    let (bytes, _) = source
        .client
        .pull_manifest_raw(image, &source.auth, accept)
        .await
        .map_err(|e| classify(e, source, &image.whole()))?;
    if bytes.len() > MAX_DOCUMENT {
        return Err(PullError::Registry {
            endpoint: source.endpoint.clone(),
            message: format!(
                "manifest of {} is larger than {MAX_DOCUMENT} bytes",
                image.whole()
            ),
        });
    }
    let actual = sha256_digest(&Sha256::digest(&bytes));
    if let Some(expected) = digest
        && expected != actual
    {
        return Err(PullError::Digest {
            what: format!("manifest {} from {}", image.whole(), source.endpoint),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(bytes.to_vec())
}

/// The platforms an index lists, for the "no matching manifest" message.
fn platforms(index: &Index) -> String {
    let list: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{v}", p.os, p.architecture),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

/// Sorts an `oci-client` failure into what the kubelet reports.
fn classify(err: OciDistributionError, source: &PullSource, what: &str) -> PullError {
    let endpoint = source.endpoint.clone();
    match err {
        OciDistributionError::AuthenticationFailure(message) => PullError::Unauthorized {
            endpoint,
            message: format!("401 Unauthorized: {}", message.trim()),
        },
        OciDistributionError::UnauthorizedError { url } => PullError::Unauthorized {
            endpoint,
            message: format!("401 Unauthorized ({url})"),
        },
        OciDistributionError::ImageManifestNotFoundError(_) => PullError::NotFound {
            endpoint,
            image: what.to_string(),
        },
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<String> = envelope
                .errors
                .iter()
                .map(|e| format!("{:?}: {}", e.code, e.message))
                .collect();
            let message = codes.join("; ");
            let unknown = envelope.errors.iter().any(|e| {
                use oci_client::errors::OciErrorCode as C;
                matches!(
                    e.code,
                    C::ManifestUnknown | C::NameUnknown | C::NotFound | C::BlobUnknown
                )
            });
            let denied = envelope.errors.iter().any(|e| {
                use oci_client::errors::OciErrorCode as C;
                matches!(e.code, C::Unauthorized | C::Denied)
            });
            if denied {
                PullError::Unauthorized { endpoint, message }
            } else if unknown {
                PullError::NotFound {
                    endpoint,
                    image: what.to_string(),
                }
            } else {
                PullError::Registry { endpoint, message }
            }
        }
        OciDistributionError::ServerError { code, message, .. } => match code {
            401 | 403 => PullError::Unauthorized {
                endpoint,
                message: format!("{code}: {message}"),
            },
            404 => PullError::NotFound {
                endpoint,
                image: what.to_string(),
            },
            500..=599 | 429 => PullError::Unavailable {
                endpoint,
                message: format!("{code}: {message}"),
            },
            _ => PullError::Registry {
                endpoint,
                message: format!("{code}: {message}"),
            },
        },
        OciDistributionError::RequestError(e) => PullError::Unavailable {
            endpoint,
            message: error_chain(&e),
        },
        OciDistributionError::IoError(e) => PullError::Unavailable {
            endpoint,
            message: e.to_string(),
        },
        OciDistributionError::DigestError(e) => PullError::Digest {
            what: format!("{what} from {endpoint}"),
            expected: what.to_string(),
            actual: e.to_string(),
        },
        other => PullError::Registry {
            endpoint,
            message: other.to_string(),
        },
    }
}

/// An error with its causes (reqwest hides "connection refused" in a source).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
