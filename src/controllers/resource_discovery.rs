//! Discovery of the API resources the namespace controller and garbage collector act on
//! (upstream `ServerPreferredResources`): the preferred version of every group, top-level
//! resources only, with their verbs.
//!
//! kube's `Discovery::run` gives up on the first group that fails; both consumers here must
//! instead work with what could be discovered and report the rest (a broken aggregated API must
//! not stop garbage collection or namespace deletion for everything else), so failures are
//! collected per group-version next to the resources that did resolve.

use kube::Client;
use kube::core::ApiResource;

/// One discovered resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DiscoveredResource {
    /// Group, version, kind and plural.
    pub resource: ApiResource,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// The verbs the resource supports (`list`, `delete`, …).
    pub verbs: Vec<String>,
}

impl DiscoveredResource {
    /// True when every verb is supported.
    pub fn supports(&self, verbs: &[&str]) -> bool {
        verbs
            .iter()
            .all(|v| self.verbs.iter().any(|have| have == v))
    }

    /// `plural.group` (just `plural` for the core group), as upstream prints group resources.
    pub fn group_resource(&self) -> String {
        format!("{}.{}", self.resource.plural, self.resource.group)
    }
}

/// What discovery found, and which group-versions could not be read.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    /// Resources of the preferred version of every readable group.
    pub resources: Vec<DiscoveredResource>,
    /// `group/version` (or `v1`) entries whose resource list failed, with the error.
    pub failures: Vec<(String, String)>,
}

/// Discovers the preferred resources of every API group.
///
/// Errors listing the groups themselves are returned; errors for one group-version are
/// recorded in [`Discovered::failures`].
pub async fn discover(client: &Client) -> Result<Discovered, kube::Error> {
    let mut out = Discovered::default();
    let core = client.list_core_api_versions().await?;
    let mut group_versions: Vec<(String, String)> = core
        .versions
        .iter()
        .take(1)
        .map(|v| (String::new(), v.clone()))
        .collect();
    for group in client.list_api_groups().await?.groups {
        let version = group
            .preferred_version
            .as_ref()
            .map(|v| v.version.clone())
            .or_else(|| group.versions.first().map(|v| v.version.clone()));
        if let Some(version) = version {
            group_versions.push((group.name.clone(), version));
        }
    }
    for (group, version) in group_versions {
        let api_version = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        let listed = if group.is_empty() {
            client.list_core_api_resources(&version).await
        } else {
            client.list_api_group_resources(&api_version).await
        };
        match listed {
            Ok(list) => out.resources.extend(
                list.resources
                    .into_iter()
                    .filter(|r| !r.name.contains('/'))
                    .map(|r| DiscoveredResource {
                        resource: ApiResource {
                            group: group.clone(),
                            version: version.clone(),
                            api_version: api_version.clone(),
                            kind: r.kind,
                            plural: r.name,
                        },
                        namespaced: r.namespaced,
                        verbs: r.verbs,
                    }),
            ),
            Err(err) => out.failures.push((api_version, err.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_group_resource_names() {
        let r = DiscoveredResource {
            resource: ApiResource {
                group: "apps".into(),
                version: "v1".into(),
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                plural: "deployments".into(),
            },
            namespaced: true,
            verbs: vec!["list".into(), "delete".into()],
        };
        assert!(r.supports(&["list", "delete"]));
        assert!(!r.supports(&["list", "deletecollection"]));
        assert_eq!(r.group_resource(), "deployments.apps");
    }
}
