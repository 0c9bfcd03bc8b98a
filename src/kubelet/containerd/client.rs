//! The [`Runtime`] handle: one gRPC channel to containerd, bound to a namespace.
//!
//! Every namespaced call carries the `containerd-namespace` header, and calls that create
//! content or snapshots also carry `containerd-lease`, so garbage collection cannot reap
//! half-built objects. Leases are created with a 24 h `gc.expire` label: if kelp crashes
//! mid-import, containerd drops the lease (and whatever only it referenced) by itself.
//! The channel reconnects lazily, so a handle survives containerd restarts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::version_client::VersionClient;
use containerd_client::services::v1::{CreateRequest, DeleteRequest};
use containerd_client::tonic::metadata::MetadataValue;
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{self, Request};

use super::error::{Result, RuntimeError};

/// Largest gRPC message accepted from containerd (container lists carry full specs).
pub(crate) const MAX_MESSAGE: usize = 64 * 1024 * 1024;

/// How long [`Runtime::connect`] keeps trying.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A cheap-to-clone handle on containerd in one namespace.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub(crate) channel: Channel,
    pub(crate) namespace: String,
    pub(crate) socket: PathBuf,
    /// Blob downloads in flight, by digest: concurrent pulls of images that
    /// share a layer wait for the one download instead of fetching it twice.
    pub(crate) inflight: super::images::KeyedLocks,
}

impl Runtime {
    /// Connects to containerd on `socket`, retrying until it answers `Version` (10 s at most).
    pub async fn connect(socket: &Path, namespace: &str) -> Result<Self> {
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            match Self::try_connect(socket, namespace).await {
                Ok(rt) => return Ok(rt),
                Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
                Err(err) => {
                    tracing::debug!(socket = %socket.display(), %err, "containerd not ready")
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One connection attempt, checked with a `Version` call.
    pub(crate) async fn try_connect(socket: &Path, namespace: &str) -> Result<Self> {
        let channel =
            containerd_client::connect(socket)
                .await
                .map_err(|source| RuntimeError::Transport {
                    socket: socket.to_path_buf(),
                    source,
                })?;
        let rt = Runtime {
            channel,
            namespace: namespace.to_string(),
            socket: socket.into(),
            inflight: Default::default(),
        };
        rt.version().await?;
        Ok(rt)
    }

    /// containerd's version string, e.g. `1.6.20~ds1`.
    pub async fn version(&self) -> Result<String> {
        let mut client = VersionClient::new(self.channel.clone());
        let fut = client.version(Request::new(()));
        match tokio::time::timeout(Duration::from_secs(5), fut).await {
            Ok(Ok(resp)) => Ok(resp.into_inner().version),
            Ok(Err(source)) => Err(RuntimeError::Rpc {
                op: "Version",
                source,
            }),
            Err(_) => Err(RuntimeError::Unavailable {
                socket: self.socket.clone(),
                reason: "Version did not answer within 5s".into(),
            }),
        }
    }

    /// The namespace this handle works in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Wraps `msg` in a request carrying the namespace header.
    pub(crate) fn req<T>(&self, msg: T) -> Request<T> {
        let mut req = Request::new(msg);
        if let Ok(ns) = MetadataValue::try_from(self.namespace.as_str()) {
            req.metadata_mut().insert("containerd-namespace", ns);
        }
        req
    }

    /// Like [`Runtime::req`], also attaching `lease`.
    pub(crate) fn leased<T>(&self, msg: T, lease: &Lease) -> Request<T> {
        let mut req = self.req(msg);
        if let Ok(id) = MetadataValue::try_from(lease.id.as_str()) {
            req.metadata_mut().insert("containerd-lease", id);
        }
        req
    }

    /// Creates a lease that expires by itself after 24 h.
    pub(crate) async fn lease(&self, purpose: &str) -> Result<Lease> {
        let id = format!("kelp-{purpose}-{}", unique_suffix());
        let expire = rfc3339(SystemTime::now() + Duration::from_secs(24 * 3600));
        let labels = HashMap::from([("containerd.io/gc.expire".to_string(), expire)]);
        LeasesClient::new(self.channel.clone())
            .create(self.req(CreateRequest {
                id: id.clone(),
                labels,
            }))
            .await
            .map_err(RuntimeError::rpc("Leases.Create"))?;
        Ok(Lease { id })
    }

    /// Deletes `lease`; once records reference everything it protected, nothing is lost.
    pub(crate) async fn drop_lease(&self, lease: Lease) {
        let req = self.req(DeleteRequest {
            id: lease.id.clone(),
            sync: false,
        });
        if let Err(err) = LeasesClient::new(self.channel.clone()).delete(req).await {
            tracing::warn!(lease = %lease.id, %err, "could not delete lease; it expires in 24h");
        }
    }
}

/// A containerd lease held while objects are being built.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) id: String,
}

/// A suffix unique within this host: nanoseconds plus a process-wide counter.
pub(crate) fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{nanos}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Converts a protobuf timestamp into a `SystemTime` (None for unset/negative).
pub(crate) fn to_system_time(ts: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    let ts = ts?;
    let secs = u64::try_from(ts.seconds).ok()?;
    let nanos = u32::try_from(ts.nanos).ok()?;
    if secs == 0 && nanos == 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Formats `t` as RFC 3339 in UTC (what containerd's `gc.expire` label expects).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    crate::client::timestamps::rfc3339(t)
}

/// True when `status` says the object is already gone.
pub(crate) fn gone(status: &tonic::Status) -> bool {
    status.code() == tonic::Code::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn unset_timestamps_are_none() {
        assert_eq!(to_system_time(None), None);
        let zero = prost_types::Timestamp {
            seconds: 0,
            nanos: 0,
        };
        assert_eq!(to_system_time(Some(&zero)), None);
        let ts = prost_types::Timestamp {
            seconds: 10,
            nanos: 5,
        };
        assert_eq!(
            to_system_time(Some(&ts)),
            Some(UNIX_EPOCH + Duration::new(10, 5))
        );
    }

    #[test]
    fn unique_suffixes_differ() {
        assert_ne!(unique_suffix(), unique_suffix());
    }
}
