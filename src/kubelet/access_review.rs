//! The kubelet's webhook authorizer: a SubjectAccessReview to the apiserver
//! for each caller and request kind, cached as upstream's kubelet caches
//! them (allowed for 5 minutes, denied for 30 seconds).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use parking_lot::Mutex;

use super::server::{Caller, NodeRequest, RequestAuthorizer, Verdict};

const ALLOWED_TTL: Duration = Duration::from_secs(300);
const DENIED_TTL: Duration = Duration::from_secs(30);
/// Cached decisions kept at most (a flood of distinct callers must not grow it).
const MAX_CACHED: usize = 4096;

type Key = (Caller, NodeRequest);

/// Asks the apiserver whether callers may use this node's API.
pub struct AccessReviewer {
    client: kube::Client,
    node: String,
    cache: Mutex<HashMap<Key, (bool, Instant)>>,
}

impl AccessReviewer {
    /// A reviewer for node `node`, asking through `client`.
    pub fn new(client: kube::Client, node: &str) -> Arc<Self> {
        Arc::new(AccessReviewer {
            client,
            node: node.to_string(),
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, key: &Key) -> Option<bool> {
        let cache = self.cache.lock();
        let (allowed, at) = cache.get(key)?;
        let ttl = if *allowed { ALLOWED_TTL } else { DENIED_TTL };
        (at.elapsed() < ttl).then_some(*allowed)
    }

    async fn review(&self, caller: &Caller, request: &NodeRequest) -> Result<bool, String> {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(caller.name.clone()),
                groups: Some(caller.groups.clone()),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(request.verb.to_string()),
                    resource: Some("nodes".into()),
                    subresource: Some(request.subresource.to_string()),
                    name: Some(self.node.clone()),
                    version: Some("v1".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| e.to_string())?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }
}

impl RequestAuthorizer for Arc<AccessReviewer> {
    fn allowed(&self, caller: &Caller, request: &NodeRequest) -> Verdict {
        let key = (caller.clone(), request.clone());
        let this = self.clone();
        Box::pin(async move {
            if let Some(hit) = this.cached(&key) {
                return Ok(hit);
            }
            let allowed = this.review(&key.0, &key.1).await?;
            let mut cache = this.cache.lock();
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(key, (allowed, Instant::now()));
            Ok(allowed)
        })
    }
}
