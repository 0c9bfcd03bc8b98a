//! Defaulting behaviour: the values upstream fills in, and idempotence.

use serde_json::{Value, json};

use super::apply_defaults;

fn defaulted(group: &str, kind: &str, obj: Value) -> Value {
    let mut o = obj;
    apply_defaults(group, kind, &mut o);
    o
}

fn minimal_template() -> Value {
    json!({"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
}

type Sample = (&'static str, &'static str, Value);

fn workload_samples() -> Vec<Sample> {
    let t = minimal_template();
    let claims = json!([{"metadata": {"name": "d"}, "spec": {}}]);
    vec![
        (
            "",
            "Pod",
            json!({"metadata": {"name": "p"}, "spec": t["spec"].clone()}),
        ),
        (
            "apps",
            "Deployment",
            json!({"spec": {"template": t.clone()}}),
        ),
        (
            "apps",
            "ReplicaSet",
            json!({"spec": {"template": t.clone()}}),
        ),
        (
            "apps",
            "DaemonSet",
            json!({"spec": {"template": t.clone()}}),
        ),
        (
            "apps",
            "StatefulSet",
            json!({"spec": {"template": t.clone(), "volumeClaimTemplates": claims}}),
        ),
        (
            "batch",
            "Job",
            json!({"metadata": {"name": "j", "uid": "u-1"}, "spec": {"template": t.clone()}}),
        ),
        (
            "batch",
            "CronJob",
            json!({"spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": t.clone()}}}}),
        ),
        (
            "",
            "ReplicationController",
            json!({"spec": {"template": t}}),
        ),
    ]
}

fn other_samples() -> Vec<Sample> {
    let binding = json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}]});
    vec![
        (
            "",
            "Service",
            json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}}),
        ),
        ("", "Secret", json!({"stringData": {"a": "b"}})),
        ("", "Namespace", json!({"metadata": {"name": "ns"}})),
        (
            "",
            "PersistentVolumeClaim",
            json!({"spec": {"resources": {"requests": {"storage": "1.5Gi"}}}}),
        ),
        (
            "",
            "Node",
            json!({"spec": {"podCIDR": "10.42.0.0/24"}, "status": {"capacity": {"cpu": "2"}}}),
        ),
        (
            "",
            "Endpoints",
            json!({"subsets": [{"ports": [{"port": 80}]}]}),
        ),
        (
            "discovery.k8s.io",
            "EndpointSlice",
            json!({"ports": [{"port": 80}]}),
        ),
        ("scheduling.k8s.io", "PriorityClass", json!({"value": 1})),
        ("rbac.authorization.k8s.io", "RoleBinding", binding),
    ]
}

#[test]
fn defaulting_is_idempotent_for_every_kind() {
    for (group, kind, obj) in workload_samples().into_iter().chain(other_samples()) {
        let once = defaulted(group, kind, obj);
        let twice = defaulted(group, kind, once.clone());
        assert_eq!(once, twice, "{group}/{kind} changed on the second pass");
    }
}

#[test]
fn pods_get_spec_container_and_pod_level_defaults() {
    let pod = json!({"spec": {"containers": [{
        "name": "c", "image": "nginx",
        "ports": [{"containerPort": 80}],
        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}},
        "livenessProbe": {"httpGet": {"port": 80}}
    }], "volumes": [{"name": "s", "secret": {"secretName": "x"}}, {"name": "e"}]}});
    let p = defaulted("", "Pod", pod);
    let spec = &p["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(
        c["resources"]["limits"],
        json!({"cpu": "500m", "memory": "1Gi"})
    );
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "500m", "memory": "1Gi"})
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
        "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(spec["volumes"][0]["secret"]["defaultMode"], 420);
    assert_eq!(spec["volumes"][1]["emptyDir"], json!({}));
}

#[test]
fn templates_get_pod_spec_defaults_only() {
    let d = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"template": minimal_template()}}),
    );
    let spec = &d["spec"]["template"]["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["containers"][0]["imagePullPolicy"], "Always");
    assert!(spec.get("enableServiceLinks").is_none());
}

#[test]
fn explicit_values_are_kept() {
    let pod = json!({"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                              "containers": [{"name": "c", "image": "nginx:1.2", "imagePullPolicy": "Always"}]}});
    let p = defaulted("", "Pod", pod);
    assert_eq!(p["spec"]["restartPolicy"], "Never");
    assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 0);
    assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
}

#[test]
fn workload_controllers_get_their_defaults() {
    let d = defaulted(
        "apps",
        "Deployment",
        json!({"spec": {"template": minimal_template()}}),
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    let ds = defaulted(
        "apps",
        "DaemonSet",
        json!({"spec": {"template": minimal_template()}}),
    );
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    let sts = defaulted(
        "apps",
        "StatefulSet",
        json!({"spec": {"template": minimal_template(),
        "volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {"resources": {"requests": {"storage": "1000Mi"}}}}]}}),
    );
    assert_eq!(sts["spec"]["replicas"], 1);
    assert_eq!(sts["spec"]["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sts["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 1}})
    );
    assert_eq!(
        sts["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(
        sts["spec"]["volumeClaimTemplates"][0]["status"]["phase"],
        "Pending"
    );
    let rs = defaulted("apps", "ReplicaSet", json!({"spec": {}}));
    assert_eq!(rs["spec"]["replicas"], 1);
}

#[test]
fn jobs_and_cronjobs_get_their_defaults() {
    let j = defaulted(
        "batch",
        "Job",
        json!({"spec": {"template": minimal_template()}}),
    );
    let spec = &j["spec"];
    assert_eq!(
        (spec["completions"].clone(), spec["parallelism"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(j["metadata"]["labels"], json!({"app": "x"}));
    let parallel = defaulted("batch", "Job", json!({"spec": {"parallelism": 3}}));
    assert!(parallel["spec"].get("completions").is_none());
    let cj = defaulted(
        "batch",
        "CronJob",
        json!({"spec": {"jobTemplate": {"spec": {"template": minimal_template()}}}}),
    );
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cj["spec"]["suspend"], false);
    assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn services_get_policies_target_ports_and_families() {
    let s = defaulted("", "Service", json!({"spec": {"ports": [{"port": 80}]}}));
    let spec = &s["spec"];
    assert_eq!(spec["type"], "ClusterIP");
    assert_eq!(spec["sessionAffinity"], "None");
    assert_eq!(
        spec["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(spec["internalTrafficPolicy"], "Cluster");
    assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
    assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
    assert!(spec.get("externalTrafficPolicy").is_none());
    let np = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.5", "ports": [{"port": 80}]}}),
    );
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(np["spec"]["clusterIPs"], json!(["10.43.0.5"]));
    let ext = defaulted(
        "",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "x.example.com"}}),
    );
    assert!(ext["spec"].get("ipFamilies").is_none());
}

#[test]
fn core_kinds_get_their_defaults() {
    let secret = defaulted(
        "",
        "Secret",
        json!({"stringData": {"password": "hunter2"}, "data": {"user": "YWRtaW4="}}),
    );
    assert_eq!(secret["type"], "Opaque");
    assert_eq!(
        secret["data"],
        json!({"user": "YWRtaW4=", "password": "aHVudGVyMg=="})
    );
    assert!(secret.get("stringData").is_none());
    let ns = defaulted("", "Namespace", json!({"metadata": {"name": "team"}}));
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    let created = json!({"metadata": {"name": "team"}, "status": {"phase": "Active"}});
    let created = defaulted("", "Namespace", created);
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));
    let finalized = json!({"metadata": {"name": "team"}, "spec": {"finalizers": []}, "status": {"phase": "Terminating"}});
    assert_eq!(
        defaulted("", "Namespace", finalized)["spec"]["finalizers"],
        json!([])
    );
    let pvc = defaulted(
        "",
        "PersistentVolumeClaim",
        json!({"spec": {"resources": {"requests": {"storage": "1.5Gi"}}}}),
    );
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "1536Mi");
    assert_eq!(pvc["status"]["phase"], "Pending");
    let node = defaulted(
        "",
        "Node",
        json!({"spec": {"podCIDR": "10.42.0.0/24"}, "status": {"capacity": {"cpu": "2"}}}),
    );
    assert_eq!(node["spec"]["podCIDRs"], json!(["10.42.0.0/24"]));
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "2"}));
    let pc = defaulted("scheduling.k8s.io", "PriorityClass", json!({"value": 1}));
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    let rb = defaulted(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]}),
    );
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(rb["subjects"][1].get("apiGroup").is_none());
}

#[test]
fn unknown_kinds_and_non_objects_are_untouched() {
    let obj = json!({"spec": {}});
    assert_eq!(defaulted("example.com", "Widget", obj.clone()), obj);
    assert_eq!(
        defaulted("", "Pod", json!("not an object")),
        json!("not an object")
    );
    let odd = json!({"spec": "weird"});
    assert_eq!(defaulted("apps", "Deployment", odd.clone()), odd);
}
