//! CustomResourceDefinitions (issue "Extending the API"): a CRD shaped like
//! real ones (`tests/manifests/widgets-crd.yaml`) applied with plain kubectl
//! against a real `kelp server`, then its objects driven through every verb.

mod common;

use common::cluster::Server;

const CRD: &str = include_str!("manifests/widgets-crd.yaml");

fn widget(name: &str, spec: &str) -> String {
    format!("apiVersion: test.kelp.io/v1\nkind: Widget\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn with_crd() -> Server {
    let s = Server::start();
    s.ok_stdin(&["apply", "-f", "-"], CRD);
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/widgets.test.kelp.io",
    ]);
    s
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_applied_crd_is_established_and_its_kind_is_discoverable_and_explained() {
    let s = with_crd();
    assert_eq!(
        s.jsonpath(
            &["get", "crd", "widgets.test.kelp.io"],
            "{.status.acceptedNames.kind} {.status.storedVersions}"
        ),
        "Widget [\"v1\"]"
    );
    let resources = s.ok(&["api-resources", "--api-group=test.kelp.io"]);
    assert!(resources.contains("widgets"), "{resources}");
    assert!(resources.contains("wd"), "{resources}");
    assert!(resources.contains("Widget"), "{resources}");
    let versions = s.ok(&["api-versions"]);
    assert!(versions.contains("test.kelp.io/v1\n"), "{versions}");
    assert!(versions.contains("test.kelp.io/v1beta1\n"), "{versions}");
    let preferred = s.ok(&["get", "--raw", "/apis/test.kelp.io"]);
    assert!(
        preferred.contains("\"preferredVersion\":{\"groupVersion\":\"test.kelp.io/v1\""),
        "{preferred}"
    );
    let explained = s.ok(&["explain", "widget.spec.size"]);
    assert!(explained.contains("ENUM"), "{explained}");
    assert!(explained.contains("small"), "{explained}");
}

#[test]
fn custom_objects_take_every_verb_with_printer_columns_scale_and_status() {
    let s = with_crd();
    s.ok_stdin(
        &["apply", "-f", "-"],
        &widget("w1", "  size: medium\n  replicas: 2\n  port: http\n"),
    );
    // Defaults from the schema.
    assert_eq!(
        s.jsonpath(&["get", "widget", "w1"], "{.spec.minReplicas}"),
        "0"
    );
    let wide = s.ok(&["get", "widgets", "-o", "wide"]);
    let header: Vec<&str> = wide.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "REPLICAS", "READY", "PORT", "AGE"]);
    // Ready has no value: the server's cell is null, which kubectl prints
    // blank (as with upstream), so the row has one word less.
    let row: Vec<&str> = wide.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["w1", "medium", "2", "http"]);
    let narrow = s.ok(&["get", "wd"]);
    assert!(!narrow.contains("PORT"), "{narrow}");
    // Patch, server-side apply and scale.
    s.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        "{\"spec\":{\"tags\":[\"a\",\"b\"]}}",
    ]);
    s.ok_stdin(
        &[
            "apply",
            "--server-side",
            "--field-manager=tester",
            // size and port belong to the client-side apply before: a
            // conflict upstream too.
            "--force-conflicts",
            "-f",
            "-",
        ],
        &widget("w1", "  size: large\n  replicas: 2\n  port: 8080\n"),
    );
    assert_eq!(
        s.jsonpath(
            &["get", "widget", "w1"],
            "{.spec.size} {.spec.port} {.spec.tags}"
        ),
        "large 8080 [\"a\",\"b\"]"
    );
    s.ok(&["scale", "widget", "w1", "--replicas=4"]);
    assert_eq!(
        s.jsonpath(&["get", "widget", "w1"], "{.spec.replicas}"),
        "4"
    );
    // Status only through its subresource.
    s.ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        "{\"status\":{\"replicas\":4,\"selector\":\"app=w\",\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\"}]}}",
    ]);
    s.ok(&[
        "patch",
        "widget",
        "w1",
        "--type=merge",
        "-p",
        "{\"status\":{\"replicas\":99}}",
    ]);
    assert_eq!(
        s.jsonpath(&["get", "widget", "w1"], "{.status.replicas}"),
        "4"
    );
    let scale = s.ok(&[
        "get",
        "--raw",
        "/apis/test.kelp.io/v1/namespaces/default/widgets/w1/scale",
    ]);
    assert!(scale.contains("\"selector\":\"app=w\""), "{scale}");
    let row = s.ok(&["get", "widget", "w1", "--no-headers"]);
    assert!(row.split_whitespace().nth(3) == Some("True"), "{row}");
    // Generation follows spec changes only.
    assert_eq!(
        s.jsonpath(&["get", "widget", "w1"], "{.metadata.generation}"),
        "4"
    );
    // Label selectors, field selectors and paging.
    s.ok_stdin(&["apply", "-f", "-"], &widget("w2", "  size: small\n"));
    s.ok(&["label", "widget", "w2", "tier=gold"]);
    assert_eq!(
        s.ok(&["get", "widgets", "-l", "tier=gold", "-o", "name"])
            .trim(),
        "widget.test.kelp.io/w2"
    );
    assert_eq!(
        s.ok(&[
            "get",
            "widgets",
            "--field-selector",
            "metadata.name=w1",
            "-o",
            "name"
        ])
        .trim(),
        "widget.test.kelp.io/w1"
    );
    let paged = s.ok(&["get", "widgets", "--chunk-size=1", "-o", "name"]);
    assert_eq!(paged.lines().count(), 2, "{paged}");
    // `kubectl get all` lists the category.
    let all = s.ok(&["get", "all"]);
    assert!(all.contains("widget.test.kelp.io/w1"), "{all}");
    s.ok(&["delete", "widget", "w1"]);
    let gone = s.kubectl(&["get", "widget", "w1"]);
    assert!(stderr_of(&gone).contains("widgets.test.kelp.io \"w1\" not found"));
}

#[test]
fn schema_and_cel_violations_are_refused_with_upstreams_messages_and_unknown_fields_pruned() {
    let s = with_crd();
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &widget("bad", "  size: huge\n  replicas: 101\n  name: Bad_Name\n"),
    );
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(err.contains("The Widget \"bad\" is invalid"), "{err}");
    assert!(
        err.contains("spec.size: Unsupported value: \"huge\": supported values: \"small\", \"medium\", \"large\""),
        "{err}"
    );
    assert!(
        err.contains("spec.replicas: Invalid value: 101: spec.replicas in body should be less than or equal to 100"),
        "{err}"
    );
    assert!(
        err.contains("spec.name: Invalid value: \"Bad_Name\": spec.name in body should match '^[a-z][a-z0-9-]*$'"),
        "{err}"
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &widget("bad", "  replicas: 2\n"));
    assert!(
        stderr_of(&out).contains("spec.size: Required value"),
        "{}",
        stderr_of(&out)
    );
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &widget("bad", "  size: small\n  replicas: 1\n  minReplicas: 3\n"),
    );
    assert!(
        stderr_of(&out).contains("spec: Invalid value: replicas must be at least minReplicas"),
        "{}",
        stderr_of(&out)
    );
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &widget(
            "bad",
            "  size: small\n  issuer:\n    acme: {}\n    ca: {}\n",
        ),
    );
    assert!(
        // kube-openapi's composite error carries no field: upstream's
        // text starts with a nil path.
        stderr_of(&out).contains("<nil>: Invalid value: \"\": \"spec.issuer\" must validate one and only one schema (oneOf). Found 2 valid alternatives"),
        "{}",
        stderr_of(&out)
    );
    // Transition rule: size may not go back to small.
    s.ok_stdin(&["apply", "-f", "-"], &widget("t", "  size: medium\n"));
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &widget("t", "  size: small\n"));
    assert!(
        stderr_of(&out).contains("size cannot go back to small"),
        "{}",
        stderr_of(&out)
    );
    // Strict field validation (kubectl's default) names the unknown field;
    // without it the field is pruned.
    let strict = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &widget("p", "  size: small\n  bogus: 1\n"),
    );
    assert!(
        stderr_of(&strict).contains("unknown field \"spec.bogus\""),
        "{}",
        stderr_of(&strict)
    );
    s.ok_stdin(
        &["apply", "--validate=false", "-f", "-"],
        &widget(
            "p",
            "  size: small\n  bogus: 1\n  extra: {kept: value}\n  template:\n    apiVersion: v1\n    kind: ConfigMap\n    metadata: {name: x, junk: 1}\n    data: {a: b}\n",
        ),
    );
    let stored = s.ok(&["get", "widget", "p", "-o", "json"]);
    let stored: serde_json::Value = serde_json::from_str(&stored).unwrap();
    assert!(stored["spec"].get("bogus").is_none(), "{stored}");
    assert_eq!(stored["spec"]["extra"]["kept"], "value");
    assert_eq!(stored["spec"]["template"]["data"]["a"], "b");
    assert!(
        stored["spec"]["template"]["metadata"].get("junk").is_none(),
        "{stored}"
    );
    // An embedded resource needs apiVersion and kind.
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        &widget("e", "  size: small\n  template:\n    metadata: {name: x}\n"),
    );
    assert!(
        stderr_of(&out).contains("spec.template.kind: Required value"),
        "{}",
        stderr_of(&out)
    );
}

#[test]
fn both_versions_serve_the_same_objects_and_the_storage_version_is_stored() {
    let s = with_crd();
    s.ok_stdin(
        &["apply", "-f", "-"],
        "apiVersion: test.kelp.io/v1beta1\nkind: Widget\nmetadata:\n  name: old\nspec:\n  size: small\n",
    );
    assert_eq!(
        s.jsonpath(
            &["get", "widgets.v1.test.kelp.io", "old"],
            "{.apiVersion} {.spec.size}"
        ),
        "test.kelp.io/v1 small"
    );
    assert_eq!(
        s.jsonpath(
            &["get", "widgets.v1beta1.test.kelp.io", "old"],
            "{.apiVersion}"
        ),
        "test.kelp.io/v1beta1"
    );
    let listed = s.ok(&["get", "--raw", "/apis/test.kelp.io/v1beta1/widgets"]);
    assert!(
        listed.contains("\"apiVersion\":\"test.kelp.io/v1beta1\""),
        "{listed}"
    );
}

#[test]
fn deleting_a_crd_deletes_its_objects_first_and_unserves_the_kind() {
    let s = with_crd();
    s.ok(&["create", "namespace", "other"]);
    s.ok_stdin(&["apply", "-f", "-"], &widget("a", "  size: small\n"));
    s.ok_stdin(
        &["apply", "-n", "other", "-f", "-"],
        &widget("b", "  size: small\n"),
    );
    s.ok(&["delete", "crd", "widgets.test.kelp.io", "--timeout=60s"]);
    let gone = s.kubectl(&["get", "crd", "widgets.test.kelp.io"]);
    assert!(!gone.status.success());
    s.wait_for(10, "the kind to leave discovery", || {
        !s.ok(&["api-resources"]).contains("widgets")
    });
    // Recreated, the kind starts empty: the objects went with the CRD.
    s.ok_stdin(&["apply", "-f", "-"], CRD);
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/widgets.test.kelp.io",
    ]);
    assert_eq!(s.ok(&["get", "widgets", "-A", "-o", "name"]).trim(), "");
}

#[test]
fn crds_and_their_objects_survive_a_restart() {
    let mut s = with_crd();
    s.ok_stdin(&["apply", "-f", "-"], &widget("keep", "  size: large\n"));
    s.restart();
    assert_eq!(
        s.jsonpath(&["get", "widget", "keep"], "{.spec.size}"),
        "large"
    );
}

#[test]
fn a_crd_that_is_not_structural_or_misnamed_is_refused() {
    let s = Server::start();
    let out = s.kubectl_stdin(
        &["apply", "-f", "-"],
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: wrong.test.kelp.io\nspec:\n  group: test.kelp.io\n  scope: Namespaced\n  names: {plural: things, kind: Thing}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            properties:\n              a: {type: string}\n",
    );
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("metadata.name: Invalid value: \"wrong.test.kelp.io\": must be spec.names.plural+\".\"+spec.group"),
        "{err}"
    );
    assert!(
        err.contains("spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"),
        "{err}"
    );
}

#[test]
fn a_file_with_a_kind_not_yet_defined_applies_its_other_objects_and_v2_describes_crds() {
    let s = Server::start();
    // kubectl validates a kind missing from OpenAPI v3 against /openapi/v2
    // (protobuf); without it the whole file was refused.
    let file = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: before\n---\n{}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after\n",
        widget("early", "  size: small\n  replicas: 1\n  name: early")
    );
    let out = s.kubectl_stdin(&["apply", "-f", "-"], &file);
    assert!(!out.status.success());
    let err = stderr_of(&out);
    assert!(
        err.contains("no matches for kind \"Widget\" in version \"test.kelp.io/v1\""),
        "{err}"
    );
    s.ok(&["get", "configmap", "before", "after"]);

    s.ok_stdin(&["apply", "-f", "-"], CRD);
    s.ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=30s",
        "crd/widgets.test.kelp.io",
    ]);
    s.wait_for(10, "Widget in /openapi/v2", || {
        let v2: serde_json::Value =
            serde_json::from_str(&s.ok(&["get", "--raw", "/openapi/v2"])).unwrap_or_default();
        v2["definitions"]["io.kelp.test.v1.Widget"]["x-kubernetes-group-version-kind"][0]["kind"]
            == "Widget"
    });
    // Now the same file applies whole, validated against the schemas.
    s.ok_stdin(&["apply", "-f", "-"], &file);
    s.ok(&["get", "widget", "early"]);
}

#[test]
fn server_side_apply_merges_lists_by_the_schemas_list_type_and_map_keys() {
    let s = with_crd();
    let apply = |manager: &str, spec: &str| {
        s.ok_stdin(
            &[
                "apply",
                "--server-side",
                &format!("--field-manager={manager}"),
                "-f",
                "-",
            ],
            &widget("merged", spec),
        )
    };
    // Two managers each own one listener (a map list keyed by name) and
    // one owner (a set): neither replaces the other's items.
    apply(
        "alice",
        "  size: small\n  listeners:\n  - {name: http, port: 80}\n  owners: [alice]\n  tags: [a]\n",
    );
    apply(
        "bob",
        "  size: small\n  listeners:\n  - {name: metrics, port: 9090}\n  owners: [bob]\n",
    );
    assert_eq!(
        s.jsonpath(
            &["get", "widget", "merged"],
            "{.spec.listeners[*].name} {.spec.owners}"
        ),
        "http metrics [\"alice\",\"bob\"]"
    );
    // A manager taking over another's key conflicts; an atomic list
    // (tags) is owned whole.
    let conflict = s.kubectl_stdin(
        &["apply", "--server-side", "--field-manager=bob", "-f", "-"],
        &widget("merged", "  size: small\n  listeners:\n  - {name: metrics, port: 9090}\n  - {name: http, port: 8080}\n  owners: [bob]\n"),
    );
    assert!(!conflict.status.success());
    let err = stderr_of(&conflict);
    assert!(err.contains(".spec.listeners[name=\"http\"].port"), "{err}");
    // alice drops her listener: only hers goes.
    apply("alice", "  size: small\n  owners: [alice]\n  tags: [a]\n");
    assert_eq!(
        s.jsonpath(&["get", "widget", "merged"], "{.spec.listeners[*].name}"),
        "metrics"
    );
    let managed = s.ok(&[
        "get",
        "widget",
        "merged",
        "-o",
        "jsonpath={.metadata.managedFields}",
        "--show-managed-fields",
    ]);
    assert!(
        managed.contains("k:{\\\"name\\\":\\\"metrics\\\"}"),
        "{managed}"
    );
}
