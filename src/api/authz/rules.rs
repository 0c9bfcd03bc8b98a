//! RBAC policy rules: matching a request, and one rule set covering another.
//!
//! The semantics are upstream's `rbac/v1` helpers: `*` matches any verb,
//! group or resource; `*/sub` any resource's subresource `sub`; a rule with
//! resourceNames matches only those names; a non-resource URL ending in `*`
//! matches by prefix. Coverage (escalation checks) breaks the servant rules
//! down to single verb/group/resource/name combinations and asks that each
//! be covered by one owner rule, as `validation.Covers` does.

use serde::{Deserialize, Serialize};

use super::attributes::{Attributes, Target};

/// One `rbac.authorization.k8s.io/v1` PolicyRule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    /// Verbs.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// API groups.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources (`pods`, `pods/log`, `*`, `*/scale`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Object names the rule is limited to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// Non-resource paths.
    #[serde(
        default,
        rename = "nonResourceURLs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub non_resource_urls: Vec<String>,
}

fn has(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == item)
}

fn has_or_star(list: &[String], item: &str) -> bool {
    list.iter().any(|x| x == "*" || x == item)
}

fn url_matches(rule_url: &str, path: &str) -> bool {
    rule_url == "*"
        || rule_url == path
        || rule_url
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix))
}

impl PolicyRule {
    /// Whether this rule allows the request (upstream `RuleAllows`).
    pub fn allows(&self, attrs: &Attributes<'_>) -> bool {
        if !has_or_star(&self.verbs, attrs.verb) {
            return false;
        }
        match attrs.target {
            Target::NonResource(path) => {
                self.non_resource_urls.iter().any(|u| url_matches(u, path))
            }
            Target::Resource(r) => {
                if !has_or_star(&self.api_groups, &r.group) {
                    return false;
                }
                let resource_ok = self.resources.iter().any(|res| {
                    if res == "*" {
                        return true;
                    }
                    if r.subresource.is_empty() {
                        return *res == r.resource;
                    }
                    res.strip_prefix("*/") == Some(r.subresource.as_str())
                        || res.split_once('/') == Some((&r.resource, &r.subresource))
                });
                resource_ok
                    && (self.resource_names.is_empty() || has(&self.resource_names, &r.name))
            }
        }
    }

    /// The rule split into single verb/group/resource/name (or verb/URL)
    /// rules (upstream `BreakdownRule`).
    fn breakdown(&self) -> Vec<PolicyRule> {
        let mut out = Vec::new();
        for group in &self.api_groups {
            for resource in &self.resources {
                for verb in &self.verbs {
                    if self.resource_names.is_empty() {
                        out.push(single(group, resource, verb, None));
                    }
                    for name in &self.resource_names {
                        out.push(single(group, resource, verb, Some(name)));
                    }
                }
            }
        }
        for url in &self.non_resource_urls {
            for verb in &self.verbs {
                out.push(PolicyRule {
                    verbs: vec![verb.clone()],
                    non_resource_urls: vec![url.clone()],
                    ..Default::default()
                });
            }
        }
        out
    }

    /// Whether this (owner) rule covers a single-element `sub` rule.
    fn covers(&self, sub: &PolicyRule) -> bool {
        let all = |owner: &[String], wanted: &[String]| {
            has(owner, "*") || wanted.iter().all(|w| has(owner, w))
        };
        let resources = has(&self.resources, "*")
            || sub.resources.iter().all(|wanted| {
                has(&self.resources, wanted)
                    || wanted
                        .split_once('/')
                        .is_some_and(|(_, s)| has(&self.resources, &format!("*/{s}")))
            });
        let urls = sub.non_resource_urls.iter().all(|wanted| {
            self.non_resource_urls
                .iter()
                .any(|u| url_matches(u, wanted))
        });
        let names = if sub.resource_names.is_empty() {
            self.resource_names.is_empty()
        } else {
            self.resource_names.is_empty()
                || sub
                    .resource_names
                    .iter()
                    .all(|n| has(&self.resource_names, n))
        };
        all(&self.verbs, &sub.verbs)
            && all(&self.api_groups, &sub.api_groups)
            && resources
            && names
            && urls
    }

    /// Upstream's `CompactString`: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let mut parts = Vec::new();
        let quoted = |l: &[String]| {
            let items: Vec<String> = l.iter().map(|s| format!("{s:?}")).collect();
            format!("[{}]", items.join(" "))
        };
        if !self.api_groups.is_empty() {
            parts.push(format!("APIGroups:{}", quoted(&self.api_groups)));
        }
        if !self.resources.is_empty() {
            parts.push(format!("Resources:{}", quoted(&self.resources)));
        }
        if !self.non_resource_urls.is_empty() {
            parts.push(format!(
                "NonResourceURLs:{}",
                quoted(&self.non_resource_urls)
            ));
        }
        if !self.resource_names.is_empty() {
            parts.push(format!("ResourceNames:{}", quoted(&self.resource_names)));
        }
        if !self.verbs.is_empty() {
            parts.push(format!("Verbs:{}", quoted(&self.verbs)));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

fn single(group: &str, resource: &str, verb: &str, name: Option<&String>) -> PolicyRule {
    PolicyRule {
        verbs: vec![verb.to_string()],
        api_groups: vec![group.to_string()],
        resources: vec![resource.to_string()],
        resource_names: name.into_iter().cloned().collect(),
        non_resource_urls: Vec::new(),
    }
}

/// The parts of `servant` that no rule of `owner` covers, compacted (rules
/// differing only in verbs merged), as upstream's `Covers` + `CompactRules`.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut missing: Vec<PolicyRule> = Vec::new();
    for sub in servant.iter().flat_map(PolicyRule::breakdown) {
        if owner.iter().any(|o| o.covers(&sub)) {
            continue;
        }
        let mergeable = sub.non_resource_urls.is_empty() && sub.resource_names.is_empty();
        match missing.iter_mut().find(|m| {
            mergeable
                && m.api_groups == sub.api_groups
                && m.resources == sub.resources
                && m.resource_names.is_empty()
                && m.non_resource_urls.is_empty()
        }) {
            Some(m) if !has(&m.verbs, &sub.verbs[0]) => m.verbs.push(sub.verbs[0].clone()),
            Some(_) => {}
            None => missing.push(sub),
        }
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::super::attributes::ResourceAttributes;
    use super::*;
    use crate::api::authn::User;

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: Vec::new(),
        }
    }

    fn ask(rule: &PolicyRule, verb: &str, resource: &str, sub: &str, name: &str) -> bool {
        let user = User::named("u", &[]);
        let target = Target::Resource(ResourceAttributes {
            resource: resource.into(),
            subresource: sub.into(),
            name: name.into(),
            ..Default::default()
        });
        rule.allows(&Attributes {
            user: &user,
            verb,
            target: &target,
        })
    }

    #[test]
    fn matching_follows_upstream() {
        let pods = rule(&["get", "list"], &[""], &["pods"], &[]);
        assert!(ask(&pods, "get", "pods", "", "x"));
        assert!(!ask(&pods, "delete", "pods", "", "x"));
        assert!(
            !ask(&pods, "get", "pods", "log", "x"),
            "pods does not cover pods/log"
        );
        assert!(!ask(&pods, "get", "secrets", "", "x"));
        let star = rule(&["*"], &["*"], &["*"], &[]);
        assert!(ask(&star, "escalate", "pods", "log", ""));
        let any_scale = rule(&["get"], &[""], &["*/log"], &[]);
        assert!(ask(&any_scale, "get", "pods", "log", "x"));
        let named = rule(&["get"], &[""], &["pods"], &["a"]);
        assert!(ask(&named, "get", "pods", "", "a"));
        assert!(!ask(&named, "get", "pods", "", "b"));
        assert!(
            !ask(&named, "get", "pods", "", ""),
            "a named rule does not allow lists"
        );
        let user = User::named("u", &[]);
        let url = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/healthz/*".into(), "/version".into()],
            ..Default::default()
        };
        for (path, ok) in [
            ("/healthz/etcd", true),
            ("/version", true),
            ("/versions", false),
        ] {
            let t = Target::NonResource(path.into());
            let a = Attributes {
                user: &user,
                verb: "get",
                target: &t,
            };
            assert_eq!(url.allows(&a), ok, "{path}");
        }
    }

    #[test]
    fn coverage_reports_what_is_missing() {
        let owner = vec![rule(&["get", "list"], &[""], &["pods"], &[])];
        assert!(uncovered(&owner, &[rule(&["get"], &[""], &["pods"], &["x"])]).is_empty());
        let missing = uncovered(
            &owner,
            &[rule(
                &["get", "delete", "create"],
                &[""],
                &["pods", "secrets"],
                &[],
            )],
        );
        let text: Vec<String> = missing.iter().map(PolicyRule::compact_string).collect();
        assert_eq!(
            text,
            vec![
                r#"{APIGroups:[""], Resources:["pods"], Verbs:["delete" "create"]}"#,
                r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete" "create"]}"#,
            ]
        );
        let admin = vec![rule(&["*"], &["*"], &["*"], &[])];
        assert!(
            uncovered(
                &admin,
                &[rule(&["get"], &["apps"], &["deployments/scale"], &[])]
            )
            .is_empty()
        );
        let named = vec![rule(&["get"], &[""], &["pods"], &["a"])];
        assert_eq!(
            uncovered(&named, &[rule(&["get"], &[""], &["pods"], &[])]).len(),
            1
        );
    }
}
