//! Custom resources against a built-in, in one run: create, get and list
//! throughput of a CRD kind with a ~50-field schema and two CEL rules, and
//! of ConfigMaps of about the same size (the reference), on a real
//! `kelp server --disable-agent` (release build) driven by kube-rs.
//!
//! Creates and gets decode their answers (typed ConfigMaps, DynamicObject
//! gadgets); lists read the raw body, so that the client's decoding does
//! not stand in for the server's work.
//!
//! Prints each figure for both kinds and the custom/built-in ratio (issue
//! "Extending the API" targets ≥ 70 %). `KELP_BENCH_SCALE=0.2` for a
//! quicker run.

use std::time::{Duration, Instant};

mod common;
use common::load::{Figures, print, run};
use common::{rss_mib, wait_ready};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use serde_json::{Value, json};

/// A CRD whose `spec` has 50 fields: scalars with bounds, an enum, a
/// pattern, a nested object and a list, plus two CEL rules on `spec`.
fn crd() -> Value {
    let mut props = serde_json::Map::new();
    for i in 0..20 {
        props.insert(
            format!("text{i}"),
            json!({"type": "string", "maxLength": 256}),
        );
    }
    for i in 0..15 {
        props.insert(
            format!("count{i}"),
            json!({"type": "integer", "minimum": 0, "maximum": 1_000_000}),
        );
    }
    for i in 0..5 {
        props.insert(format!("flag{i}"), json!({"type": "boolean"}));
    }
    props.insert(
        "size".into(),
        json!({"type": "string", "enum": ["small", "medium", "large"]}),
    );
    props.insert(
        "name".into(),
        json!({"type": "string", "pattern": "^[a-z][a-z0-9-]*$"}),
    );
    props.insert("replicas".into(), json!({"type": "integer", "minimum": 0}));
    props.insert(
        "minReplicas".into(),
        json!({"type": "integer", "minimum": 0}),
    );
    props.insert(
        "tags".into(),
        json!({"type": "array", "maxItems": 16, "items": {"type": "string"}}),
    );
    props.insert(
        "owner".into(),
        json!({"type": "object", "properties": {
            "team": {"type": "string"}, "email": {"type": "string"},
            "oncall": {"type": "boolean"}, "level": {"type": "integer"}
        }}),
    );
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.bench.kelp.io"},
        "spec": {
            "group": "bench.kelp.io",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {
                        "type": "object",
                        "required": ["size", "replicas"],
                        "x-kubernetes-validations": [
                            {"rule": "self.minReplicas <= self.replicas", "message": "replicas must be at least minReplicas"},
                            {"rule": "self.size != 'small' || self.replicas <= 10"}
                        ],
                        "properties": props,
                    }
                }}}
            }]
        }
    })
}

fn gadget(name: &str) -> DynamicObject {
    let mut spec = serde_json::Map::new();
    for i in 0..20 {
        spec.insert(format!("text{i}"), json!("x".repeat(8)));
    }
    for i in 0..15 {
        spec.insert(format!("count{i}"), json!(i * 7));
    }
    for i in 0..5 {
        spec.insert(format!("flag{i}"), json!(i % 2 == 0));
    }
    spec.insert("size".into(), json!("medium"));
    spec.insert("name".into(), json!("gadget"));
    spec.insert("replicas".into(), json!(3));
    spec.insert("minReplicas".into(), json!(1));
    spec.insert("tags".into(), json!(["a", "b", "c"]));
    spec.insert(
        "owner".into(),
        json!({"team": "edge", "email": "e@example.com", "oncall": true, "level": 2}),
    );
    let mut obj = DynamicObject::new(name, &resource());
    obj.data = json!({"spec": spec});
    obj
}

/// A ConfigMap of about the same encoded size (50 keys).
fn config_map(name: &str) -> ConfigMap {
    let data = (0..50)
        .map(|i| (format!("key{i}"), "x".repeat(8)))
        .collect();
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    }
}

fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("bench.kelp.io", "v1", "Gadget"),
        "gadgets",
    )
}

fn ratio(name: &str, custom: &Figures, builtin: &Figures) {
    println!(
        "{:<40} {:>10.1} %  (custom {:.0}/s, ConfigMap {:.0}/s)",
        format!("{name}: custom / built-in"),
        100.0 * custom.ops / builtin.ops,
        custom.ops,
        builtin.ops
    );
}

fn main() {
    let scale = common::scale();
    let n = |base: usize| ((base as f64 * scale) as usize).max(16);
    let dir = tempfile::tempdir_in("target").expect("temp dir");
    let (server, kubeconfig) = common::start_server(dir.path());
    let pid = server.0.id();
    let rt = common::runtime();
    rt.block_on(async {
        let admin = wait_ready(&kubeconfig).await;
        println!("custom resource benchmark (scale {scale}); server pid {pid}");
        let crds: Api<DynamicObject> = Api::all_with(
            admin.clone(),
            &ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
                "customresourcedefinitions",
            ),
        );
        let crd: DynamicObject = serde_json::from_value(crd()).expect("crd");
        crds.create(&PostParams::default(), &crd)
            .await
            .expect("create the CRD");
        let gadgets: Api<DynamicObject> =
            Api::namespaced_with(admin.clone(), "default", &resource());
        let t = Instant::now();
        while gadgets.list(&ListParams::default().limit(1)).await.is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the CRD was not served"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        println!(
            "{:<40} {:>10.1} ms",
            "CRD create -> kind served",
            t.elapsed().as_secs_f64() * 1e3
        );
        // A rejected object proves the rules run.
        let mut bad = gadget("bad");
        bad.data["spec"]["minReplicas"] = json!(9);
        let refused = gadgets.create(&PostParams::default(), &bad).await;
        assert!(
            refused.is_err(),
            "a CEL rule must refuse minReplicas > replicas"
        );

        let clients = 16;
        let created = n(2000);
        let per = created.div_ceil(clients);
        let cm_create = run(&kubeconfig, clients, per, |c, w, k| async move {
            Api::<ConfigMap>::namespaced(c, "default")
                .create(&PostParams::default(), &config_map(&format!("c{w}-{k}")))
                .await
                .expect("create configmap");
        })
        .await;
        print("ConfigMap create, 16 clients", &cm_create);
        let cr_create = run(&kubeconfig, clients, per, |c, w, k| async move {
            Api::<DynamicObject>::namespaced_with(c, "default", &resource())
                .create(&PostParams::default(), &gadget(&format!("g{w}-{k}")))
                .await
                .expect("create gadget");
        })
        .await;
        print("Gadget create, 16 clients", &cr_create);

        let gets = n(4000).div_ceil(clients);
        let cm_get = run(&kubeconfig, clients, gets, move |c, w, k| async move {
            Api::<ConfigMap>::namespaced(c, "default")
                .get(&format!("c{w}-{}", k % per))
                .await
                .expect("get configmap");
        })
        .await;
        print("ConfigMap get, 16 clients", &cm_get);
        let cr_get = run(&kubeconfig, clients, gets, move |c, w, k| async move {
            Api::<DynamicObject>::namespaced_with(c, "default", &resource())
                .get(&format!("g{w}-{}", k % per))
                .await
                .expect("get gadget");
        })
        .await;
        print("Gadget get, 16 clients", &cr_get);

        let lists = n(100).div_ceil(4).max(2);
        // Lists read the raw body: what the server does is compared, not
        // kube-rs's decoding (typed ConfigMaps decode far faster than
        // DynamicObjects, which made the custom list look half as fast).
        let list_raw = |path: &'static str, want: usize| {
            move |c: kube::Client, _, _| async move {
                let request = http::Request::get(path).body(Vec::new()).expect("request");
                let body = c.request_text(request).await.expect("list");
                let items = body.matches("\"resourceVersion\"").count();
                assert!(items > want, "{items} objects listed, want {want}");
            }
        };
        let listed = per * clients;
        let cm_list = run(
            &kubeconfig,
            4,
            lists,
            list_raw("/api/v1/namespaces/default/configmaps", listed),
        )
        .await;
        print(&format!("ConfigMap list {listed}, 4 clients"), &cm_list);
        let cr_list = run(
            &kubeconfig,
            4,
            lists,
            list_raw("/apis/bench.kelp.io/v1/namespaces/default/gadgets", listed),
        )
        .await;
        print(&format!("Gadget list {listed}, 4 clients"), &cr_list);

        ratio("create", &cr_create, &cm_create);
        ratio("get", &cr_get, &cm_get);
        ratio("list", &cr_list, &cm_list);
        println!("{:<40} {:>10.1} MiB", "RSS at the end", rss_mib(pid));
    });
    drop(server);
}
