//! Verb handlers: what GET, LIST, WATCH, POST, PUT, PATCH and DELETE do to
//! a resource.
//!
//! Each handler takes the parsed [`Target`], the query and (for writes) the
//! body, and returns a [`Reply`]. They share one [`Api`] value holding the
//! store, the watch cache and the cluster configuration. Semantics follow
//! upstream's generic registry (`k8s.io/apiserver/pkg/registry/generic`):
//! optimistic concurrency on resourceVersion, graceful deletion with
//! finalizers, dry runs, field managers.

mod converted;
mod delete;
mod eviction;
mod read;
mod reviews;
mod service_ips;
mod subresource;
mod watch;
mod write;

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;

use super::allocator::ServiceAllocator;
use super::authn::User;
use super::request::{Query, Target};
use super::status::{ApiError, ApiResult};
use super::watch_cache::WatchCache;
use crate::store::Store;

pub use subresource::{BoundObject, TokenIssuer};
pub use watch::WatchStream;

/// Cluster settings the handlers need.
#[derive(Clone, Debug)]
pub struct ApiSettings {
    /// `--service-cidr` network.
    pub service_cidr: ipnet::IpNet,
    /// NodePort range (inclusive).
    pub node_ports: (u16, u16),
    /// `--cluster-dns`, when kelp serves cluster DNS: the address of the
    /// `kube-system/kube-dns` Service kept for compatibility.
    pub cluster_dns: Option<std::net::IpAddr>,
    /// The store's directory: writes stop while its disk is almost full.
    pub store_dir: Option<std::path::PathBuf>,
    /// Free bytes kept in reserve on the store's disk (`--store-reserve`).
    pub store_reserve: u64,
    /// Seconds a new pod tolerates a not-ready or unreachable node
    /// (DefaultTolerationSeconds admission).
    pub default_toleration_seconds: i64,
}

/// Shared state of all handlers.
pub struct Api<S: Store> {
    /// The store.
    pub store: S,
    /// The watch cache over the store.
    pub cache: Arc<WatchCache>,
    /// ClusterIP and NodePort allocation.
    pub allocator: ServiceAllocator,
    /// Settings.
    pub settings: ApiSettings,
    /// Signs service-account tokens, when the PKI is available.
    pub tokens: Option<Arc<dyn TokenIssuer>>,
    /// Health of the in-process components (componentstatuses).
    pub health: Arc<super::health::ComponentHealth>,
    /// Refuses writes while the store's disk is almost full.
    pub disk: super::disk_guard::DiskGuard,
    /// The authorizer chain (escalation checks and the review APIs ask it).
    pub authz: Arc<super::authz::Authorizer>,
    /// The API server's PKI (TokenReview verifies tokens with it).
    pub pki: Arc<crate::pki::ClusterPki>,
    /// The resources established CRDs define.
    pub custom: Arc<crate::api::custom::CustomResources>,
}

/// A handler's answer.
pub enum Reply {
    /// A JSON body with a status code and optional warnings.
    Json {
        /// HTTP status.
        code: u16,
        /// The body.
        body: Value,
        /// `Warning:` headers.
        warnings: Vec<String>,
    },
    /// Pre-serialized JSON (large lists).
    Raw {
        /// HTTP status.
        code: u16,
        /// Content type.
        content_type: &'static str,
        /// The body.
        body: Bytes,
    },
    /// A watch stream.
    Watch(WatchStream),
}

impl Reply {
    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Self {
        Reply::Json {
            code: 200,
            body,
            warnings: Vec::new(),
        }
    }

    /// A JSON body with a code.
    pub fn with_code(code: u16, body: Value) -> Self {
        Reply::Json {
            code,
            body,
            warnings: Vec::new(),
        }
    }
}

/// How the client wants objects rendered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rendering {
    /// Full objects.
    Object,
    /// meta.k8s.io Table.
    Table,
    /// meta.k8s.io PartialObjectMetadata(List).
    Metadata,
}

impl Rendering {
    /// Picks the first representation the Accept header asks for that we
    /// serve (Table, PartialObjectMetadata, else plain JSON).
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Rendering::Object;
        };
        for part in accept.split(',') {
            let params: Vec<&str> = part.split(';').map(str::trim).collect();
            let has = |p: &str| params.contains(&p);
            if has("as=Table") && has("g=meta.k8s.io") {
                return Rendering::Table;
            }
            if (has("as=PartialObjectMetadata") || has("as=PartialObjectMetadataList"))
                && has("g=meta.k8s.io")
            {
                return Rendering::Metadata;
            }
            if params.first().is_some_and(|m| {
                *m == "application/json" || *m == "*/*" || *m == "application/yaml"
            }) {
                return Rendering::Object;
            }
        }
        Rendering::Object
    }
}

/// One request to a resource, after authentication and routing.
pub struct Call<'a> {
    /// The HTTP method.
    pub method: &'a str,
    /// The addressed resource.
    pub target: &'a Target,
    /// Query parameters.
    pub query: &'a Query,
    /// The body (empty for reads).
    pub body: &'a Bytes,
    /// The Content-Type of the body.
    pub content_type: Option<&'a str>,
    /// How to render objects.
    pub rendering: Rendering,
    /// Who is asking.
    pub user: &'a User,
    /// The User-Agent, for the default field manager.
    pub user_agent: Option<&'a str>,
}

impl<S: Store> Api<S> {
    /// Runs the verb the call asks for.
    pub async fn dispatch(&self, call: &Call<'_>) -> ApiResult<Reply> {
        let t = call.target;
        if let Some(storage) = t.info.storage() {
            return self.dispatch_converted(call, storage).await;
        }
        if let Some(sub) = t.subresource.as_deref() {
            // Writes through subresources (status, scale, binding,
            // eviction); token requests store nothing.
            if matches!(call.method, "PUT" | "PATCH")
                || (call.method == "POST" && matches!(sub, "binding" | "eviction"))
            {
                self.disk.check_write()?;
            }
            return self.subresource(call, sub).await;
        }
        let verb = match (call.method, t.name.is_some()) {
            ("GET", true) => "get",
            ("GET", false) if call.query.flag("watch")? => "watch",
            ("GET", false) => "list",
            ("POST", false) => "create",
            ("PUT", true) => "update",
            ("PATCH", true) => "patch",
            ("DELETE", true) => "delete",
            ("DELETE", false) => "deletecollection",
            (m, _) => {
                return Err(ApiError::method_not_allowed(
                    m,
                    &format!(
                        "{} {}",
                        t.info.resource,
                        if t.name.is_some() {
                            "object"
                        } else {
                            "collection"
                        }
                    ),
                ));
            }
        };
        if matches!(
            t.info.group,
            "authentication.k8s.io" | "authorization.k8s.io"
        ) && verb == "create"
        {
            return self.review(call).await;
        }
        if matches!(verb, "create" | "update" | "patch") {
            self.disk.check_write()?;
        }
        if t.info.group.is_empty()
            && t.info.resource == "componentstatuses"
            && matches!(verb, "get" | "list")
        {
            return self.component_statuses(call).await;
        }
        if !t.info.allows(verb) {
            return Err(ApiError::method_not_allowed(
                call.method,
                &format!("resource {}", t.info.resource),
            ));
        }
        match verb {
            "get" => self.get(call).await,
            "list" => self.list(call).await,
            "watch" => self.watch(call).await,
            "create" => self.create(call).await,
            "update" => self.update(call, None).await,
            "patch" => self.patch(call, None).await,
            "delete" => self.delete(call).await,
            _ => self.delete_collection(call).await,
        }
    }
}
