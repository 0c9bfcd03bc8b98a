//! What authorization costs: API create and get throughput and latency for
//! a user who is not in system:masters (so every request goes through the
//! Node and RBAC authorizers), with 1 000 RoleBindings in the cluster,
//! against the same server run with `--authorization-mode AlwaysAllow`.
//!
//! Both servers run in the same process tree, one after the other, and the
//! rounds alternate (RBAC, AlwaysAllow, RBAC, …) so that machine noise hits
//! both; the medians and their ratio are printed. Target: RBAC costs ≤ 5 %.

use std::path::{Path, PathBuf};

mod common;
use common::load::{Figures, run};
use common::{client, wait_ready};

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

const NAMESPACE: &str = "bench";
const USER: &str = "bench-user";

struct Cluster {
    _server: common::Process,
    _dir: tempfile::TempDir,
    admin: Client,
    user_kubeconfig: PathBuf,
}

fn object<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("object")
}

/// A server in `mode` with `bindings` RoleBindings (spread over 50
/// namespaces, to users other than the benchmark's) and a Role letting
/// the benchmark user create and get ConfigMaps in its namespace.
async fn cluster(mode: &str, bindings: usize) -> Cluster {
    let dir = tempfile::tempdir_in("target").expect("temp dir");
    let (server, kubeconfig) =
        common::spawn_server_with(dir.path(), None, &["--authorization-mode", mode]);
    let admin = wait_ready(&kubeconfig).await;
    let namespaces: Vec<String> = std::iter::once(NAMESPACE.to_string())
        .chain((0..50).map(|i| format!("team{i}")))
        .collect();
    for ns in &namespaces {
        let obj: Namespace = object(serde_json::json!({"metadata": {"name": ns}}));
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &obj)
            .await
            .expect("namespace");
    }
    let role: Role = object(serde_json::json!({
        "metadata": {"name": "cm-writer"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get"]}],
    }));
    Api::<Role>::namespaced(admin.clone(), NAMESPACE)
        .create(&PostParams::default(), &role)
        .await
        .expect("role");
    let rb = |name: &str, role_kind: &str, role: &str, user: &str| -> RoleBinding {
        object(serde_json::json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        }))
    };
    Api::<RoleBinding>::namespaced(admin.clone(), NAMESPACE)
        .create(
            &PostParams::default(),
            &rb("bench", "Role", "cm-writer", USER),
        )
        .await
        .expect("binding");
    for i in 0..bindings {
        let ns = &namespaces[1 + i % 50];
        Api::<RoleBinding>::namespaced(admin.clone(), ns)
            .create(
                &PostParams::default(),
                &rb(
                    &format!("rb{i}"),
                    "ClusterRole",
                    "view",
                    &format!("user{i}"),
                ),
            )
            .await
            .expect("binding");
    }
    let tls = dir.path().join("data/server/tls");
    let (cert, key) = kelp::pki::client_cert_from_ca(&tls, USER, &[]).expect("user cert");
    let ca = std::fs::read_to_string(tls.join("server-ca.crt")).expect("ca");
    let url = kube::config::Kubeconfig::read_from(&kubeconfig)
        .expect("kubeconfig")
        .clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone())
        .expect("server url");
    let user_kubeconfig = dir.path().join("user.yaml");
    std::fs::write(
        &user_kubeconfig,
        kelp::pki::kubeconfig(&url, &ca, &cert, &key),
    )
    .expect("write");
    Cluster {
        _server: server,
        _dir: dir,
        admin,
        user_kubeconfig,
    }
}

/// 16 clients of `kubeconfig`, each creating (or getting) `per_client`
/// ConfigMaps.
async fn measure(kubeconfig: &Path, per_client: usize, round: usize, create: bool) -> Figures {
    run(kubeconfig, 16, per_client, move |conn, c, i| async move {
        let api: Api<ConfigMap> = Api::namespaced(conn, NAMESPACE);
        if create {
            let cm = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(format!("r{round}-c{c}-{i}")),
                    ..Default::default()
                },
                data: Some([("k".to_string(), "x".repeat(200))].into()),
                ..Default::default()
            };
            api.create(&PostParams::default(), &cm)
                .await
                .expect("create");
        } else {
            api.get(&format!("r0-c{c}-{}", i % per_client.min(50)))
                .await
                .expect("get");
        }
    })
    .await
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let scale = common::scale();
    let bindings = ((1000.0 * scale) as usize).max(10);
    let per_client = ((8000.0 * scale) as usize / 16).max(4);
    let rounds = if scale >= 1.0 { 7 } else { 1 };
    let rt = common::runtime();
    rt.block_on(async {
        let rbac = cluster("Node,RBAC", bindings).await;
        let open = cluster("AlwaysAllow", bindings).await;
        // The user is refused what its Role does not grant, in RBAC mode only.
        let user = client(&rbac.user_kubeconfig).await;
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(user, NAMESPACE);
        assert!(secrets.list(&Default::default()).await.is_err(), "RBAC must refuse secrets");
        let _ = &open.admin;
        println!(
            "authorization benchmark (scale {scale}): {bindings} RoleBindings, 16 clients x {per_client} ops, {rounds} alternating round(s)"
        );
        for (what, create) in [("create", true), ("get", false)] {
            let (mut ops, mut p99) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
            for round in 0..rounds {
                for (i, c) in [&rbac, &open].into_iter().enumerate() {
                    let f = measure(&c.user_kubeconfig, per_client, round, create).await;
                    ops[i].push(f.ops);
                    p99[i].push(f.p99.as_secs_f64() * 1e3);
                }
            }
            let [ops_rbac, ops_open] = ops.map(median);
            let [p99_rbac, p99_open] = p99.map(median);
            println!(
                "{what:<7} Node,RBAC {ops_rbac:>8.0} ops/s p99 {p99_rbac:>7.3} ms | AlwaysAllow {ops_open:>8.0} ops/s p99 {p99_open:>7.3} ms | throughput ratio {:.3} (cost {:+.1} %)",
                ops_rbac / ops_open,
                (1.0 - ops_rbac / ops_open) * 100.0
            );
        }
    });
}
