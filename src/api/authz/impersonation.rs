//! `Impersonate-User`, `-Group`, `-Uid` and `-Extra-*` headers (`kubectl
//! --as`, `--as-group`, `--as-uid`).
//!
//! As upstream's impersonation filter: each impersonated attribute is
//! authorized for the *requesting* user with the `impersonate` verb (on
//! `users` and `groups` in the core group, `uids` and `userextras/<key>` in
//! `authentication.k8s.io`, or on the `serviceaccounts` object for a
//! service-account user name), and only then does the request run as the
//! impersonated user.

use std::collections::BTreeMap;

use http::HeaderMap;

use super::{Attributes, Authorizer, ResourceAttributes, Target};
use crate::api::authn::User;
use crate::api::status::ApiError;
use crate::store::Revision;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// Whether the request carries any impersonation header.
pub fn requested(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-"))
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// Checks the headers against what `requester` may impersonate and
/// returns the user the request then runs as.
pub async fn impersonate(
    authorizer: &Authorizer,
    requester: &User,
    headers: &HeaderMap,
    store_revision: Revision,
) -> Result<User, ApiError> {
    let users = values(headers, USER);
    let groups: Vec<String> = values(headers, GROUP)
        .into_iter()
        .map(str::to_string)
        .collect();
    let uids = values(headers, UID);
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(EXTRA_PREFIX)
            && let Ok(v) = v.to_str()
        {
            // Extra keys are percent-encoded in header names (upstream).
            let key = percent_decode(key);
            extra.entry(key).or_default().push(v.to_string());
        }
    }
    let Some(name) = users.first().map(|s| s.to_string()) else {
        return Err(ApiError::bad_request(
            "requested impersonation of groups, uid or extra without impersonating a user",
        ));
    };
    if users.len() > 1 || uids.len() > 1 {
        return Err(ApiError::bad_request(
            "only one user and one uid may be impersonated",
        ));
    }
    let mut asked = Vec::new();
    match name
        .strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
    {
        Some((ns, sa)) => asked.push(resource("", "serviceaccounts", "", ns, sa)),
        None => asked.push(resource("", "users", "", "", &name)),
    }
    for g in &groups {
        asked.push(resource("", "groups", "", "", g));
    }
    for u in &uids {
        asked.push(resource("authentication.k8s.io", "uids", "", "", u));
    }
    for (k, vs) in &extra {
        for v in vs {
            asked.push(resource("authentication.k8s.io", "userextras", k, "", v));
        }
    }
    for target in &asked {
        let attrs = Attributes {
            user: requester,
            verb: "impersonate",
            target,
        };
        authorizer.check(&attrs, store_revision).await?;
    }
    let mut all_groups = groups;
    if all_groups.is_empty()
        && let Some((ns, _)) = name
            .strip_prefix("system:serviceaccount:")
            .and_then(|r| r.split_once(':'))
    {
        all_groups.push("system:serviceaccounts".into());
        all_groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if name != "system:anonymous"
        && !all_groups
            .iter()
            .any(|g| g == "system:authenticated" || g == "system:unauthenticated")
    {
        all_groups.push("system:authenticated".into());
    }
    Ok(User {
        name,
        uid: uids.first().map(|s| s.to_string()).unwrap_or_default(),
        groups: all_groups,
        extra,
    })
}

fn resource(group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Target {
    Target::Resource(ResourceAttributes {
        group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        namespace: ns.into(),
        name: name.into(),
    })
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("k={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}
