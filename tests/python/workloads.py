"""The official Kubernetes Python client against kelp: create every workload
kind with the typed API, read each back (object and status) into the typed
models, which raise when a field Go always writes is missing, then patch,
list and delete. Prints one line per step; exits non-zero on the first
failure."""

import sys
import time

from kubernetes import client, config

config.load_kube_config(config_file=sys.argv[1])
ns = "py"
core = client.CoreV1Api()
apps = client.AppsV1Api()
batch = client.BatchV1Api()
autoscaling_v1 = client.AutoscalingV1Api()
autoscaling_v2 = client.AutoscalingV2Api()

core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
for _ in range(50):
    try:
        core.read_namespaced_service_account("default", ns)
        break
    except client.ApiException:
        time.sleep(0.1)

labels = {"app": "web"}
template = client.V1PodTemplateSpec(
    metadata=client.V1ObjectMeta(labels=labels),
    spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]),
)
selector = client.V1LabelSelector(match_labels=labels)


def step(name, fn):
    obj = fn()
    print(f"ok {name}", flush=True)
    return obj


step("deployment create", lambda: apps.create_namespaced_deployment(ns, client.V1Deployment(
    metadata=client.V1ObjectMeta(name="d"),
    spec=client.V1DeploymentSpec(replicas=0, selector=selector, template=template))))
step("deployment status", lambda: apps.read_namespaced_deployment_status("d", ns))
step("replicaset create", lambda: apps.create_namespaced_replica_set(ns, client.V1ReplicaSet(
    metadata=client.V1ObjectMeta(name="rs"),
    spec=client.V1ReplicaSetSpec(replicas=0, selector=selector, template=template))))
rs = step("replicaset status", lambda: apps.read_namespaced_replica_set_status("rs", ns))
assert rs.status.replicas == 0, rs.status
step("statefulset create", lambda: apps.create_namespaced_stateful_set(ns, client.V1StatefulSet(
    metadata=client.V1ObjectMeta(name="ss"),
    spec=client.V1StatefulSetSpec(replicas=0, service_name="ss", selector=selector, template=template))))
step("statefulset status", lambda: apps.read_namespaced_stateful_set_status("ss", ns))
step("daemonset create", lambda: apps.create_namespaced_daemon_set(ns, client.V1DaemonSet(
    metadata=client.V1ObjectMeta(name="ds"),
    spec=client.V1DaemonSetSpec(selector=selector, template=template))))
ds = step("daemonset status", lambda: apps.read_namespaced_daemon_set_status("ds", ns))
assert ds.status.number_ready == 0, ds.status
step("replicationcontroller create", lambda: core.create_namespaced_replication_controller(ns, client.V1ReplicationController(
    metadata=client.V1ObjectMeta(name="rc"),
    spec=client.V1ReplicationControllerSpec(replicas=0, selector=labels, template=template))))
rc = step("replicationcontroller status", lambda: core.read_namespaced_replication_controller_status("rc", ns))
assert rc.status.replicas == 0, rc.status
job_template = client.V1PodTemplateSpec(spec=client.V1PodSpec(
    restart_policy="Never", containers=[client.V1Container(name="c", image="busybox")]))
step("job create", lambda: batch.create_namespaced_job(ns, client.V1Job(
    metadata=client.V1ObjectMeta(name="j"),
    spec=client.V1JobSpec(suspend=True, template=job_template))))
step("job status", lambda: batch.read_namespaced_job_status("j", ns))
step("cronjob create", lambda: batch.create_namespaced_cron_job(ns, client.V1CronJob(
    metadata=client.V1ObjectMeta(name="cj"),
    spec=client.V1CronJobSpec(schedule="*/5 * * * *", suspend=True,
                              job_template=client.V1JobTemplateSpec(spec=client.V1JobSpec(template=job_template))))))
step("cronjob status", lambda: batch.read_namespaced_cron_job_status("cj", ns))
target = client.V1CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name="d")
step("hpa v1 create", lambda: autoscaling_v1.create_namespaced_horizontal_pod_autoscaler(ns, client.V1HorizontalPodAutoscaler(
    metadata=client.V1ObjectMeta(name="h1"),
    spec=client.V1HorizontalPodAutoscalerSpec(scale_target_ref=target, max_replicas=3, target_cpu_utilization_percentage=50))))
h1 = step("hpa v1 status", lambda: autoscaling_v1.read_namespaced_horizontal_pod_autoscaler_status("h1", ns))
assert h1.spec.target_cpu_utilization_percentage == 50, h1.spec
step("hpa v2 create", lambda: autoscaling_v2.create_namespaced_horizontal_pod_autoscaler(ns, client.V2HorizontalPodAutoscaler(
    metadata=client.V1ObjectMeta(name="h2"),
    spec=client.V2HorizontalPodAutoscalerSpec(scale_target_ref=client.V2CrossVersionObjectReference(
        api_version="apps/v1", kind="Deployment", name="d"), max_replicas=3))))
step("hpa v2 status", lambda: autoscaling_v2.read_namespaced_horizontal_pod_autoscaler_status("h2", ns))
step("hpa v1 read of a v2 object", lambda: autoscaling_v1.read_namespaced_horizontal_pod_autoscaler("h2", ns))
step("deployment patch", lambda: apps.patch_namespaced_deployment("d", ns, {"spec": {"replicas": 0, "paused": True}}))
step("scale read", lambda: apps.read_namespaced_deployment_scale("d", ns))
listed = step("list all workloads", lambda: apps.list_namespaced_replica_set(ns))
assert any(i.metadata.name == "rs" for i in listed.items)
step("events list", lambda: client.EventsV1Api().list_namespaced_event(ns))
step("delete", lambda: apps.delete_namespaced_stateful_set("ss", ns))
print("all ok", flush=True)
