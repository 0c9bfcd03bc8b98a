//! Admission: what every write passes between decoding and the store, in
//! kube-apiserver's shape and default order.
//!
//! Mutating plugins run first, on the decoded and defaulted object, and may
//! change it: LimitRanger (default requests and limits, and its min/max
//! checks), ServiceAccount, Priority, DefaultTolerationSeconds,
//! DefaultStorageClass. Then the object is validated by its registry
//! strategy, and the validating plugins see the final object: the RBAC
//! escalation check, NodeRestriction, and ResourceQuota last, because it
//! charges the quota only for what every other check let through.
//!
//! Create, update, patch, delete and the subresource writes all call the
//! same two entry points, [`Api::admit_mutating`] and
//! [`Api::admit_validating`]; each plugin decides from the [`Attributes`]
//! whether the request concerns it. A plugin's refusal is upstream's
//! `admission.NewForbidden`: a 403 naming the object (`pods "web" is
//! forbidden: …`).

mod default_storage_class;
mod default_toleration_seconds;
mod limit_ranger;
mod node_restriction;
mod policy;
mod priority;
mod rbac_escalation;
mod resource_quota;
mod service_account;
mod webhook;

use serde_json::Value;

pub use node_restriction::Operation;

use super::authn::User;
use super::handlers::{Api, Call};
use super::object;
use super::registry::resources::ResourceInfo;
use super::status::{ApiError, ApiResult, qualified};
use crate::store::Store;

/// What is being admitted (upstream `admission.Attributes`).
pub struct Attributes<'a> {
    /// Create, update or delete.
    pub operation: Operation,
    /// The resource written.
    pub info: &'static ResourceInfo,
    /// The subresource written, if any (`status`, `scale`…).
    pub subresource: Option<&'a str>,
    /// The namespace of the request, for namespaced resources.
    pub namespace: Option<&'a str>,
    /// The name in the URL (none for a create).
    pub name: Option<&'a str>,
    /// Who is asking.
    pub user: &'a User,
    /// A dry run: check everything, change nothing outside the object.
    pub dry_run: bool,
}

impl<'a> Attributes<'a> {
    /// The attributes of a call.
    pub fn of(call: &Call<'a>, operation: Operation) -> ApiResult<Self> {
        Ok(Attributes {
            operation,
            info: call.target.info,
            subresource: call.target.subresource.as_deref(),
            namespace: call.target.namespace.as_deref(),
            name: call.target.name.as_deref(),
            user: call.user,
            dry_run: call.query.dry_run()?,
        })
    }

    /// Whether this is the create of an object of the core `resource`.
    fn creates(&self, resource: &str) -> bool {
        self.operation == Operation::Create
            && self.subresource.is_none()
            && (self.info.group, self.info.resource) == ("", resource)
    }

    /// Upstream `admission.NewForbidden`: 403 `<resource> "<name>" is
    /// forbidden: <why>`, the name taken from the object, else its
    /// generateName, else the URL.
    pub fn forbidden(&self, obj: Option<&Value>, why: impl std::fmt::Display) -> ApiError {
        let name = obj
            .and_then(|o| {
                object::name(o)
                    .filter(|n| !n.is_empty())
                    .or_else(|| object::meta_str(o, "generateName").filter(|n| !n.is_empty()))
            })
            .or(self.name)
            .unwrap_or("Unknown");
        let (group, resource) = (self.info.group, self.info.resource);
        ApiError::new(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {why}",
                qualified(group, resource)
            ),
        )
        .about(group, resource, name)
    }
}

impl<S: Store> Api<S> {
    /// Runs the mutating plugins over `obj`, the object about to be written
    /// (already defaulted); `old` is the stored object on updates. Returns
    /// the webhooks' warnings.
    pub(crate) async fn admit_mutating(
        &self,
        attrs: &Attributes<'_>,
        obj: &mut Value,
        old: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        if attrs.creates("pods") {
            self.admit_limit_ranges(attrs, obj).await?;
            self.admit_service_account(attrs, obj).await?;
            self.admit_pod_priority(attrs, obj).await?;
            default_toleration_seconds::admit(obj, self.settings.default_toleration_seconds);
        }
        if attrs.creates("persistentvolumeclaims") {
            self.admit_default_storage_class(obj).await?;
        }
        self.admit_mutating_webhooks(attrs, obj, old).await
    }

    /// Runs the validating plugins: `new` is the object about to be stored
    /// (None for deletes), `old` the stored one (None for creates). Returns
    /// the webhooks' warnings.
    pub(crate) async fn admit_validating(
        &self,
        attrs: &Attributes<'_>,
        old: Option<&Value>,
        new: Option<&Value>,
    ) -> ApiResult<Vec<String>> {
        self.admit_rbac_escalation(attrs, old, new).await?;
        self.admit_node_write(
            attrs.user,
            (attrs.info.group, attrs.info.resource),
            attrs.subresource,
            attrs.operation,
            old,
            new,
        )
        .await?;
        if let Some(new) = new {
            self.admit_priority_class(attrs, new)?;
        }
        let mut warnings = self.admit_validating_policies(attrs, old, new).await?;
        warnings.extend(self.admit_validating_webhooks(attrs, old, new).await?);
        if let Some(new) = new {
            self.admit_quota(attrs, old, new).await?;
        }
        Ok(warnings)
    }

    /// The current objects of a resource in a namespace (or cluster-wide),
    /// from the watch cache. When `enough` says the cached ones do not
    /// answer the question (none there, or not the one named), the cache
    /// is first brought level with the store, so that an object created
    /// just before this request is seen; otherwise no write waits for the
    /// cache (upstream's quota admission does the same with its live
    /// lookup on a miss).
    async fn cached_objects(
        &self,
        info: &ResourceInfo,
        namespace: Option<&str>,
        enough: impl Fn(&[Value]) -> bool,
    ) -> ApiResult<Vec<Value>> {
        let prefix = info.key(namespace, "");
        let list = || {
            let (items, _) = self.cache.list(&prefix, |_| true);
            items.iter().map(|o| o.value()).collect::<Vec<Value>>()
        };
        let found = list();
        let current = self.store.current_revision();
        if enough(&found) || self.cache.revision() >= current {
            return Ok(found);
        }
        self.cache.wait_for(current).await?;
        Ok(list())
    }
}

/// The registry entry of a built-in resource the plugins read.
fn resource(group: &str, version: &str, name: &str) -> ApiResult<&'static ResourceInfo> {
    super::registry::resources::find(group, version, name)
        .ok_or_else(|| ApiError::internal(format!("resource {name} is not registered")))
}

/// upstream `utilerrors.NewAggregate(errs).Error()`: one message alone, or
/// several in brackets.
fn aggregate(messages: &[String]) -> String {
    match messages {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}
