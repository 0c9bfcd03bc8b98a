//! ClusterRole aggregation (upstream `clusterrole-aggregation-controller`).
//!
//! A ClusterRole with an `aggregationRule` owns no rules of its own: its
//! rules are the union of the rules of every other ClusterRole its
//! selectors match, in name order, without duplicates. This is how
//! `admin`, `edit` and `view` pick up the permissions a CRD or an add-on
//! ships in a role labelled `rbac.authorization.k8s.io/aggregate-to-edit`.
//!
//! Aggregated roles are few, so each change of any ClusterRole recomputes
//! all of them; only roles whose rules differ are written.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::informer;
use super::label_selector::LabelMatcher;
use crate::client::informer::SharedInformers;

/// Failures of the aggregation controller.
#[derive(Debug, thiserror::Error)]
pub enum AggregationError {
    /// Writing an aggregated role's rules failed.
    #[error("updating the rules of clusterrole {role}: {source}")]
    Write {
        /// The aggregated role.
        role: String,
        /// The API error.
        source: kube::Error,
    },
}

/// Runs until `cancel` fires.
pub async fn run(
    informers: SharedInformers,
    cancel: CancellationToken,
) -> Result<(), AggregationError> {
    let client = informers.client();
    let changed = std::sync::Arc::new(Notify::new());
    let notify = changed.clone();
    let (roles, task) = informer::spawn(
        &informers.get::<ClusterRole>(),
        cancel.clone(),
        move |_, _| notify.notify_one(),
    );
    let result = async {
        if !informer::wait_ready(&[&roles], &cancel).await {
            return Ok(());
        }
        loop {
            sync(&client, &roles).await?;
            tokio::select! {
                _ = changed.notified() => {}
                _ = cancel.cancelled() => return Ok(()),
            }
            // Roles often arrive in bursts (a manifest applies several):
            // one pass after the burst is enough.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    .await;
    task.abort();
    result
}

#[tracing::instrument(skip_all)]
async fn sync(client: &Client, roles: &Store<ClusterRole>) -> Result<(), AggregationError> {
    let all: BTreeMap<String, std::sync::Arc<ClusterRole>> = roles
        .state()
        .into_iter()
        .map(|r| (r.name_any(), r))
        .collect();
    for role in all.values() {
        let Some(rule) = &role.aggregation_rule else {
            continue;
        };
        let wanted = aggregate(
            role,
            rule.cluster_role_selectors.as_deref().unwrap_or_default(),
            &all,
        );
        if role.rules.as_deref().unwrap_or_default() == wanted.as_slice() {
            continue;
        }
        let api: Api<ClusterRole> = Api::all(client.clone());
        let patch = serde_json::json!({"rules": wanted});
        match api
            .patch(
                &role.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(AggregationError::Write {
                    role: role.name_any(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// The union of the rules of the roles `selectors` match (`role` itself
/// excluded), in role-name order, each rule once.
fn aggregate(
    role: &ClusterRole,
    selectors: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector],
    all: &BTreeMap<String, std::sync::Arc<ClusterRole>>,
) -> Vec<PolicyRule> {
    let matchers: Vec<LabelMatcher> = selectors
        .iter()
        .filter_map(|s| LabelMatcher::parse(Some(s)).ok())
        .collect();
    let mut rules: Vec<PolicyRule> = Vec::new();
    for (name, other) in all {
        if *name == role.name_any()
            || !matchers
                .iter()
                .any(|m| m.matches(other.metadata.labels.as_ref()))
        {
            continue;
        }
        for rule in other.rules.iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(name: &str, labels: &[(&str, &str)], verbs: &[&str]) -> std::sync::Arc<ClusterRole> {
        let mut r = ClusterRole::default();
        r.metadata.name = Some(name.into());
        r.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        r.rules = Some(vec![PolicyRule {
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            api_groups: Some(vec!["".into()]),
            resources: Some(vec!["pods".into()]),
            ..Default::default()
        }]);
        std::sync::Arc::new(r)
    }

    #[test]
    fn unions_matching_roles_in_name_order_once() {
        let label = [("agg", "true")];
        let all: BTreeMap<String, std::sync::Arc<ClusterRole>> = [
            role("b", &label, &["list"]),
            role("a", &label, &["get"]),
            role("c", &label, &["get"]),
            role("other", &[], &["delete"]),
        ]
        .into_iter()
        .map(|r| (r.name_any(), r))
        .collect();
        let selector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"agg": "true"}})).unwrap();
        let target = role("target", &label, &["*"]);
        let rules = aggregate(&target, &[selector], &all);
        let verbs: Vec<&str> = rules.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(verbs, ["get", "list"]);
    }
}
