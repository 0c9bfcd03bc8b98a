//! Tests of StatefulSet pod identity, storage and claim ownership.

use super::*;
use k8s_openapi::api::apps::v1::{
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn set() -> StatefulSet {
    let mut claim = PersistentVolumeClaim::default();
    claim.metadata.name = Some("www".into());
    claim.metadata.labels = Some([("tier".to_string(), "data".to_string())].into());
    let mut s = StatefulSet {
        spec: StatefulSetSpec {
            replicas: Some(3),
            service_name: Some("nginx".into()),
            selector: LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            volume_claim_templates: Some(vec![claim]),
            ..Default::default()
        },
        ..Default::default()
    };
    s.metadata.name = Some("web".into());
    s.metadata.namespace = Some("default".into());
    s.metadata.uid = Some("set-uid".into());
    s
}

#[test]
fn ordinals_come_from_the_name_suffix() {
    assert_eq!(parent_and_ordinal("web-12"), Some(("web", 12)));
    assert_eq!(parent_and_ordinal("my-web-0"), Some(("my-web", 0)));
    assert_eq!(parent_and_ordinal("web-x"), None);
    assert_eq!(parent_and_ordinal("web"), None);
}

#[test]
fn new_pods_get_stable_identity_storage_and_revision() {
    let s = set();
    let pod = new_pod(&s, 1, "web-abc");
    assert_eq!(pod.metadata.name.as_deref(), Some("web-1"));
    let spec = pod.spec.clone().unwrap_or_default();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let labels = pod.labels();
    assert_eq!(
        labels.get(POD_NAME_LABEL).map(String::as_str),
        Some("web-1")
    );
    assert_eq!(labels.get(POD_INDEX_LABEL).map(String::as_str), Some("1"));
    assert_eq!(pod_revision(&pod), "web-abc");
    let volumes = spec.volumes.unwrap_or_default();
    assert_eq!(volumes[0].name, "www");
    assert_eq!(
        volumes[0]
            .persistent_volume_claim
            .as_ref()
            .map(|c| c.claim_name.as_str()),
        Some("www-web-1")
    );
    assert!(identity_matches(&s, &pod) && storage_matches(&s, &pod));
}

#[test]
fn claims_are_named_per_ordinal_and_carry_the_selector_labels() {
    let claims = claims_for(&set(), 2);
    let claim = &claims["www"];
    assert_eq!(claim.metadata.name.as_deref(), Some("www-web-2"));
    let labels = claim.labels();
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    assert_eq!(labels.get("tier").map(String::as_str), Some("data"));
}

#[test]
fn retention_policy_decides_claim_owners() {
    let mut s = set();
    assert_eq!(
        wanted_claim_owners(&s, false),
        ClaimOwners {
            set: false,
            pod: false
        }
    );
    s.spec.persistent_volume_claim_retention_policy =
        Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some("Delete".into()),
            when_scaled: Some("Delete".into()),
        });
    assert_eq!(
        wanted_claim_owners(&s, false),
        ClaimOwners {
            set: true,
            pod: false
        }
    );
    assert_eq!(
        wanted_claim_owners(&s, true),
        ClaimOwners {
            set: false,
            pod: true
        }
    );
    let set_ref = OwnerReference {
        uid: "set-uid".into(),
        ..Default::default()
    };
    let added = claim_owner_refs(
        &[],
        &set_ref,
        None,
        ClaimOwners {
            set: true,
            pod: false,
        },
    );
    assert_eq!(added.map(|r| r.len()), Some(1));
    assert_eq!(
        claim_owner_refs(
            std::slice::from_ref(&set_ref),
            &set_ref,
            None,
            ClaimOwners {
                set: true,
                pod: false
            }
        ),
        None
    );
}
