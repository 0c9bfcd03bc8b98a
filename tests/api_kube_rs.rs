//! kube-rs clients against a real `kelp server`: typed CRUD, a watcher and
//! a reflector that must stay in sync across a server restart whose
//! watch cache no longer has their resourceVersion (410 → relist).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::cluster::Server;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kelp::store::Store;
use kelp::store::sled::SledStore;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Config};

async fn client(s: &Server) -> Client {
    s.kube_client().await
}

fn cm(name: &str, value: &str) -> ConfigMap {
    ConfigMap {
        // The label keeps the controllers' own objects (kube-root-ca.crt) out of counts.
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some([("test".to_string(), "kelp".to_string())].into()),
            ..Default::default()
        },
        data: Some([("v".to_string(), value.to_string())].into()),
        ..Default::default()
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_crud_and_conflicts() {
    let s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(client(&s).await, "default");
    let created = api
        .create(&PostParams::default(), &cm("a", "1"))
        .await
        .unwrap();
    assert!(created.metadata.uid.is_some() && created.metadata.resource_version.is_some());
    let mut stale = created.clone();
    let mut fresh = api.get("a").await.unwrap();
    fresh.data = Some([("v".to_string(), "2".to_string())].into());
    api.replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    stale.data = Some([("v".to_string(), "3".to_string())].into());
    match api.replace("a", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.reason.as_str()), (409, "Conflict")),
        other => panic!("expected 409, got {other:?}"),
    }
    match api.get("missing").await {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.reason.as_str()), (404, "NotFound")),
        other => panic!("expected 404, got {other:?}"),
    }
    let list = api
        .list(&kube::api::ListParams::default().labels("test=kelp"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(
        list.metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );
    api.delete("a", &DeleteParams::default()).await.unwrap();
    assert!(api.get_opt("a").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_relists_after_expired_resource_version() {
    let mut s = Server::start();
    let api: Api<ConfigMap> = Api::namespaced(client(&s).await, "default");
    for i in 0..20 {
        api.create(&PostParams::default(), &cm(&format!("cm{i}"), "x"))
            .await
            .unwrap();
    }
    let (reader, writer) = reflector::store();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("test=kelp")),
    )
    .default_backoff()
    .applied_objects();
    let task = tokio::spawn(stream.for_each(|_| async {}));
    eventually("initial sync", || reader.state().len() == 20).await;
    api.create(&PostParams::default(), &cm("live", "y"))
        .await
        .unwrap();
    eventually("live event", || reader.state().len() == 21).await;

    // Change the store while the server is down: on restart the watch
    // cache starts after these revisions, so the reflector's
    // resourceVersion is too old (410) and it must relist to see them.
    s.stop();
    {
        let rt_store = SledStore::open(common::manual_compaction(
            s.dir.path().join("data/server/db"),
        ))
        .unwrap();
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "offline", "namespace": "default", "uid": "0000", "creationTimestamp": "2024-01-01T00:00:00Z", "labels": {"test": "kelp"}},
            "data": {"v": "z"}});
        rt_store
            .create(
                "/registry/core/configmaps/default/offline",
                Bytes::from(body.to_string()),
            )
            .await
            .unwrap();
        rt_store
            .delete("/registry/core/configmaps/default/cm0", None)
            .await
            .unwrap();
    }
    s.restart();
    eventually("relist after restart", || {
        let names: Vec<String> = reader
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        names.len() == 21
            && names.contains(&"offline".to_string())
            && !names.contains(&"cm0".to_string())
    })
    .await;
    // And it keeps following live changes afterwards.
    api.delete("cm1", &DeleteParams::default()).await.unwrap();
    eventually("delete after relist", || reader.state().len() == 20).await;
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_authenticate_bearer_requests() {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let s = Server::start();
    let admin = client(&s).await;
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), "default");
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("robot".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    sas.create(&PostParams::default(), &sa).await.unwrap();
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued = sas
        .create_token_request("robot", &PostParams::default(), &request)
        .await
        .unwrap();
    let token = issued.status.expect("status").token.expect("token");
    assert!(!token.is_empty());
    let bearer = |token: &str| {
        let mut config = Config::new(format!("https://127.0.0.1:{}", s.port).parse().unwrap());
        config.accept_invalid_certs = true;
        config.auth_info.token = Some(token.to_string().into());
        Client::try_from(config).unwrap()
    };
    let as_robot: Api<ConfigMap> = Api::namespaced(bearer(&token), "default");
    // Authenticated, but not yet allowed anything: 403, not 401.
    match as_robot.list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden")),
        other => panic!("a token without RBAC grants must be refused, got {other:?}"),
    }
    let role: k8s_openapi::api::rbac::v1::Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "cm-reader"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "robot-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "default"}],
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(admin.clone(), "default")
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    assert!(as_robot.list(&Default::default()).await.is_ok());
    let mut forged = token.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    let as_forger: Api<ConfigMap> = Api::namespaced(bearer(&forged), "default");
    match as_forger.list(&Default::default()).await {
        Err(kube::Error::Api(e)) => assert_eq!(e.code, 401),
        other => panic!("a forged token must be refused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_see_only_their_own_resource_and_namespace() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{WatchEvent, WatchParams};
    let s = Server::start();
    let c = client(&s).await;
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "default");
    let mut watch = secrets
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "default");
    cms.create(&PostParams::default(), &cm("noise", "x"))
        .await
        .unwrap();
    let other: Api<Secret> = Api::namespaced(c.clone(), "kube-system");
    let secret = |name: &str| Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    other
        .create(&PostParams::default(), &secret("elsewhere"))
        .await
        .unwrap();
    secrets
        .create(&PostParams::default(), &secret("mine"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match first {
        WatchEvent::Added(s) => assert_eq!(s.metadata.name.as_deref(), Some("mine")),
        other => panic!("expected ADDED mine, got {other:?}"),
    }
}
