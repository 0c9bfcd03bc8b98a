//! Priority: a new pod's `priorityClassName` becomes its `spec.priority`
//! and `preemptionPolicy` (upstream `plugin/pkg/admission/priority`).
//!
//! A pod naming no class gets the `globalDefault` class (the highest, if
//! several claim it), else priority 0. A class that does not exist, or a
//! `priority` the pod states that differs from its class's value, is
//! refused. At most one PriorityClass may be the global default.

use serde_json::{Value, json};

use super::{Attributes, Operation, resource};
use crate::api::handlers::Api;
use crate::api::object;
use crate::api::status::ApiResult;
use crate::store::Store;

impl<S: Store> Api<S> {
    /// Resolves a new pod's priority class.
    pub(super) async fn admit_pod_priority(
        &self,
        attrs: &Attributes<'_>,
        pod: &mut Value,
    ) -> ApiResult<()> {
        let info = resource("scheduling.k8s.io", "v1", "priorityclasses")?;
        let named = pod["spec"]["priorityClassName"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let classes = self
            .cached_objects(info, None, |found| {
                named.is_empty() || found.iter().any(|c| object::name(c) == Some(&named))
            })
            .await?;
        let class = if named.is_empty() {
            classes
                .iter()
                .filter(|c| c["globalDefault"] == true)
                .max_by_key(|c| c["value"].as_i64().unwrap_or(0))
        } else {
            let found = classes.iter().find(|c| object::name(c) == Some(&named));
            if found.is_none() {
                return Err(attrs.forbidden(
                    Some(pod),
                    format!("no PriorityClass with name {named} was found"),
                ));
            }
            found
        };
        let (name, value, policy) = match class {
            Some(c) => (
                object::name(c).unwrap_or("").to_string(),
                c["value"].as_i64().unwrap_or(0),
                c["preemptionPolicy"]
                    .as_str()
                    .unwrap_or("PreemptLowerPriority")
                    .to_string(),
            ),
            None => (String::new(), 0, "PreemptLowerPriority".to_string()),
        };
        let spec = &mut pod["spec"];
        if !spec.is_object() {
            return Ok(());
        }
        if let Some(stated) = spec["priority"].as_i64()
            && stated != value
        {
            return Err(attrs.forbidden(
                Some(pod),
                format!(
                    "the integer value of priority ({stated}) must not be provided in pod spec; priority admission controller computed {value} from the given PriorityClass name"
                ),
            ));
        }
        if let Some(stated) = spec["preemptionPolicy"].as_str()
            && class.is_some()
            && stated != policy
        {
            let stated = stated.to_string();
            return Err(attrs.forbidden(
                Some(pod),
                format!(
                    "the string value of PreemptionPolicy ({stated}) must not be provided in pod spec; priority admission controller computed {policy} from the given PriorityClass name"
                ),
            ));
        }
        if !name.is_empty() {
            spec["priorityClassName"] = json!(name);
        }
        spec["priority"] = json!(value);
        spec["preemptionPolicy"] = json!(policy);
        Ok(())
    }

    /// Refuses a second global default PriorityClass.
    pub(super) fn admit_priority_class(
        &self,
        attrs: &Attributes<'_>,
        new: &Value,
    ) -> ApiResult<()> {
        if attrs.info.resource != "priorityclasses"
            || attrs.operation == Operation::Delete
            || attrs.subresource.is_some()
            || new["globalDefault"] != true
        {
            return Ok(());
        }
        let prefix = attrs.info.key(None, "");
        let (classes, _) = self.cache.list(&prefix, |_| true);
        let own = object::name(new).unwrap_or("");
        for class in classes.iter().map(|c| c.value()) {
            if class["globalDefault"] == true && object::name(&class) != Some(own) {
                return Err(attrs.forbidden(
                    Some(new),
                    format!(
                        "PriorityClass {} is already marked as default. Only one default can exist",
                        object::name(&class).unwrap_or("")
                    ),
                ));
            }
        }
        Ok(())
    }
}
