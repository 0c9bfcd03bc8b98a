//! ResourceQuota admission: a write that would take a namespace past one of
//! its quotas is refused, and one that fits is charged to the quota's
//! `status.used` before it is stored (upstream
//! `apiserver/pkg/admission/plugin/resourcequota`).
//!
//! Charging at admission is what makes a quota hold under a burst: two
//! pods created at once cannot both see the last free slot, because the
//! charge is a compare-and-swap on the quota object. The quota controller
//! later recounts `status.used` from what is stored, which also returns
//! what a refused or failed write had been charged.
//!
//! Like upstream, only quotas whose `status.hard` the controller has filled
//! take part; a quota whose usage is not yet known refuses ("status unknown
//! for quota"). Creates of every resource are charged their object counts;
//! updates only where usage can change (services, claims). Dry runs are
//! checked but not charged.

use serde_json::Value;

use super::{Attributes, Operation, resource};
use crate::api::handlers::Api;
use crate::api::object;
use crate::api::status::ApiResult;
use crate::client::resource_quota::{self as quota, Usage};
use crate::store::Store;

impl<S: Store> Api<S> {
    /// Checks `new` against the namespace's quotas and charges it.
    pub(super) async fn admit_quota(
        &self,
        attrs: &Attributes<'_>,
        old: Option<&Value>,
        new: &Value,
    ) -> ApiResult<()> {
        let (group, res) = (attrs.info.group, attrs.info.resource);
        let Some(namespace) = attrs.namespace else {
            return Ok(());
        };
        if attrs.subresource.is_some() {
            return Ok(());
        }
        let charged_on_update = matches!((group, res), ("", "services" | "persistentvolumeclaims"));
        let delta = match (attrs.operation, old) {
            (Operation::Create, _) => quota::usage(group, res, new),
            (Operation::Update, Some(old)) if charged_on_update => {
                let before = quota::usage(group, res, old);
                quota::usage(group, res, new)
                    .into_iter()
                    .filter_map(|(k, v)| {
                        let grown = match before.get(&k) {
                            Some(b) => v.checked_sub(b)?,
                            None => v,
                        };
                        (!grown.is_negative() && !grown.is_zero()).then_some((k, grown))
                    })
                    .collect()
            }
            _ => return Ok(()),
        };
        let info = resource("", "v1", "resourcequotas")?;
        // Never a wait for the cache: a quota created a moment ago has no
        // `status.hard` yet, and quotas without one take no part anyway.
        let quotas = self.cached_objects(info, Some(namespace), |_| true).await?;
        if quotas.is_empty() {
            return Ok(());
        }
        let mut charges = Vec::new();
        for cached in &quotas {
            let name = object::name(cached).unwrap_or("").to_string();
            if charge(attrs, cached, &delta, new)?.is_some() {
                charges.push(name);
            }
        }
        if attrs.dry_run {
            return Ok(());
        }
        for name in charges {
            self.charge_quota(attrs, info, namespace, &name, &delta, new)
                .await?;
        }
        Ok(())
    }

    /// Adds `delta` to one quota's `status.used`, checking it again against
    /// the quota as stored.
    async fn charge_quota(
        &self,
        attrs: &Attributes<'_>,
        info: &'static crate::api::registry::resources::ResourceInfo,
        namespace: &str,
        name: &str,
        delta: &Usage,
        obj: &Value,
    ) -> ApiResult<()> {
        self.guaranteed_update(info, Some(namespace), name, |current| {
            Ok(charge(attrs, current, delta, obj)?.map(|used| {
                let mut updated = current.clone();
                updated["status"]["used"] = quota::to_list(&used);
                updated
            }))
        })
        .await
        .map(|_| ())
    }
}

/// The quota's new `status.used` if `delta` is charged to it, None if the
/// quota does not concern this object, or the refusal.
fn charge(
    attrs: &Attributes<'_>,
    quota_obj: &Value,
    delta: &Usage,
    obj: &Value,
) -> ApiResult<Option<Usage>> {
    let (group, res) = (attrs.info.group, attrs.info.resource);
    let name = object::name(quota_obj).unwrap_or("");
    let hard = quota::parse_list(&quota_obj["status"]["hard"]);
    let limited: Vec<&str> = hard
        .keys()
        .map(String::as_str)
        .filter(|r| quota::charged_by(r, group, res))
        .collect();
    if limited.is_empty() || !quota::matches_scopes(quota_obj, group, res, obj) {
        return Ok(None);
    }
    if (group, res) == ("", "pods")
        && let Some(why) = quota::missing_constraints(&limited, obj)
    {
        return Err(attrs.forbidden(Some(obj), format!("failed quota: {name}: {why}")));
    }
    let used = quota::parse_list(&quota_obj["status"]["used"]);
    let mut unknown: Vec<&str> = limited
        .iter()
        .copied()
        .filter(|r| !used.contains_key(*r))
        .collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(attrs.forbidden(
            Some(obj),
            format!(
                "status unknown for quota: {name}, resources: {}",
                unknown.join(",")
            ),
        ));
    }
    let requested: Usage = delta
        .iter()
        .filter(|(k, v)| limited.contains(&k.as_str()) && !v.is_zero())
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    if requested.is_empty() {
        return Ok(None);
    }
    let new_used = quota::add(&used, &requested);
    let exceeded: Vec<&String> = requested
        .keys()
        .filter(|k| new_used[*k].cmp_value(&hard[*k]) == std::cmp::Ordering::Greater)
        .collect();
    if !exceeded.is_empty() {
        let mask = |u: &Usage| -> Usage {
            exceeded
                .iter()
                .map(|k| {
                    (
                        (*k).clone(),
                        u.get(*k)
                            .copied()
                            .unwrap_or_else(crate::client::quantity::Quantity::zero),
                    )
                })
                .collect()
        };
        return Err(attrs.forbidden(
            Some(obj),
            format!(
                "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                quota::pretty(&mask(&requested)),
                quota::pretty(&mask(&used)),
                quota::pretty(&mask(&hard)),
            ),
        ));
    }
    Ok(Some(new_used))
}
