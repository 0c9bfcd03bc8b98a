//! Authorization with real kubectl: RBAC for service-account tokens and
//! impersonated users, the review APIs (`auth can-i`, `auth whoami`),
//! escalation prevention, aggregated ClusterRoles, the node authorizer with
//! a real node client certificate, and the authentication holes a hostile
//! client found (audiences, revoked tokens, TokenRequest validation).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::cluster::{Server, kubectl_path};

/// Who kubectl authenticates as.
enum Auth<'a> {
    /// Only a bearer token (no client certificate).
    Token(&'a str),
    /// A kubeconfig file.
    Config(&'a PathBuf),
}

/// kubectl as someone other than the admin, with optional stdin.
fn run(s: &Server, auth: Auth<'_>, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(kubectl_path());
    match auth {
        Auth::Token(token) => cmd
            .args(["--kubeconfig", "/dev/null", "--insecure-skip-tls-verify"])
            .arg(format!("--server=https://127.0.0.1:{}", s.port))
            .arg(format!("--token={}", token.trim())),
        Auth::Config(path) => cmd.arg("--kubeconfig").arg(path),
    };
    let mut child = cmd
        .args(args)
        .env("HOME", s.dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kubectl");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("kubectl output")
}

/// kubectl with only a bearer token.
fn as_token(s: &Server, token: &str, args: &[&str]) -> Output {
    run(s, Auth::Token(token), args, None)
}

/// kubectl with a kubeconfig file.
fn with_config(s: &Server, config: &PathBuf, args: &[&str]) -> Output {
    run(s, Auth::Config(config), args, None)
}

/// Asserts that `out` failed with `want` in its error output.
#[track_caller]
fn refused(out: &Output, want: &str) {
    let err = stderr(out);
    assert!(
        !out.status.success() && err.contains(want),
        "wanted {want:?} in: {err}"
    );
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A kubeconfig with a client certificate for `user` in `groups`, signed by
/// the server's CA.
fn cert_kubeconfig(s: &Server, name: &str, user: &str, groups: &[&str]) -> PathBuf {
    let tls = s.data_dir().join("server/tls");
    let (cert, key) = kelp::pki::client_cert_from_ca(&tls, user, groups).unwrap();
    let ca = std::fs::read_to_string(tls.join("server-ca.crt")).unwrap();
    let url = format!("https://127.0.0.1:{}", s.port);
    let path = s.dir.path().join(format!("{name}.kubeconfig"));
    std::fs::write(&path, kelp::pki::kubeconfig(&url, &ca, &cert, &key)).unwrap();
    path
}

#[test]
fn a_role_limits_a_service_account_to_what_it_grants() {
    let s = Server::start();
    s.ok(&["create", "namespace", "a"]);
    s.ok(&["create", "namespace", "b"]);
    s.ok(&["create", "serviceaccount", "bot", "-n", "a"]);
    s.ok(&[
        "create",
        "role",
        "pod-reader",
        "-n",
        "a",
        "--verb=get,list",
        "--resource=pods",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "bot-reads",
        "-n",
        "a",
        "--role=pod-reader",
        "--serviceaccount=a:bot",
    ]);
    s.ok(&[
        "create",
        "secret",
        "generic",
        "hidden",
        "-n",
        "a",
        "--from-literal=k=v",
    ]);
    let token = s.ok(&["create", "token", "bot", "-n", "a"]);

    let pods = as_token(&s, &token, &["get", "pods", "-n", "a"]);
    assert!(pods.status.success(), "{}", stderr(&pods));
    let secrets = as_token(&s, &token, &["get", "secrets", "-n", "a"]);
    assert_eq!(
        stderr(&secrets).trim(),
        "Error from server (Forbidden): secrets is forbidden: User \"system:serviceaccount:a:bot\" cannot list resource \"secrets\" in API group \"\" in the namespace \"a\""
    );
    let secret = as_token(&s, &token, &["get", "secret", "hidden", "-n", "a"]);
    refused(
        &secret,
        "secrets \"hidden\" is forbidden: User \"system:serviceaccount:a:bot\" cannot get resource \"secrets\"",
    );
    let other = as_token(&s, &token, &["get", "pods", "-n", "b"]);
    refused(
        &other,
        "cannot list resource \"pods\" in API group \"\" in the namespace \"b\"",
    );
    // Cluster-scoped writes a pod token could once do.
    let crb = as_token(
        &s,
        &token,
        &[
            "create",
            "clusterrolebinding",
            "mine",
            "--clusterrole=cluster-admin",
            "--serviceaccount=a:bot",
        ],
    );
    refused(
        &crb,
        "clusterrolebindings.rbac.authorization.k8s.io is forbidden",
    );
    let node = as_token(&s, &token, &["delete", "node", "anything"]);
    refused(&node, "nodes \"anything\" is forbidden");

    // auth can-i answers for the token's own user, yes and no.
    let yes = as_token(&s, &token, &["auth", "can-i", "list", "pods", "-n", "a"]);
    assert_eq!((stdout(&yes).trim(), yes.status.code()), ("yes", Some(0)));
    let no = as_token(&s, &token, &["auth", "can-i", "get", "secrets", "-n", "a"]);
    assert_eq!((stdout(&no).trim(), no.status.code()), ("no", Some(1)));
    let no = as_token(&s, &token, &["auth", "can-i", "delete", "pods", "-n", "a"]);
    assert_eq!(stdout(&no).trim(), "no");
    // --list: the role's rules plus the discovery and self-review defaults.
    let list = as_token(&s, &token, &["auth", "can-i", "--list", "-n", "a"]);
    let list = stdout(&list);
    let pods_line = list
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_default();
    assert!(pods_line.contains("[get list]"), "{list}");
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    assert!(list.contains("[/api/*]"), "{list}");
    assert!(!list.lines().any(|l| l.starts_with("secrets")), "{list}");
    // The admin asks about someone else (SubjectAccessReview via --as).
    let admin_yes = s.kubectl(&[
        "auth",
        "can-i",
        "list",
        "pods",
        "-n",
        "a",
        "--as=system:serviceaccount:a:bot",
    ]);
    assert_eq!(stdout(&admin_yes).trim(), "yes");

    // whoami shows the user and groups.
    let me = as_token(&s, &token, &["auth", "whoami"]);
    let me = stdout(&me);
    assert!(me.contains("system:serviceaccount:a:bot"), "{me}");
    assert!(
        me.contains("[system:serviceaccounts system:serviceaccounts:a system:authenticated]"),
        "{me}"
    );
    let admin = s.ok(&[
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username} {.status.userInfo.groups}",
    ]);
    assert_eq!(
        admin,
        "system:admin [\"system:masters\",\"system:authenticated\"]"
    );
}

#[test]
fn escalation_needs_the_bind_verb_and_aggregation_fills_roles() {
    let s = Server::start();
    s.ok(&["create", "namespace", "team"]);
    s.ok(&[
        "create",
        "rolebinding",
        "alice-edit",
        "-n",
        "team",
        "--clusterrole=edit",
        "--user=alice",
    ]);
    // edit cannot touch RBAC at all; give alice the right to write
    // rolebindings so that only escalation prevention stands in the way.
    s.ok(&[
        "create",
        "role",
        "rb-writer",
        "-n",
        "team",
        "--verb=create,get,list",
        "--resource=rolebindings.rbac.authorization.k8s.io,roles.rbac.authorization.k8s.io",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "alice-rb",
        "-n",
        "team",
        "--role=rb-writer",
        "--user=alice",
    ]);
    // The aggregation controller fills edit from its aggregate-to-edit parts.
    s.wait_for(20, "edit aggregated", || {
        s.jsonpath(&["get", "clusterrole", "edit"], "{.rules[*].resources}")
            .contains("deployments")
    });

    let denied = s.kubectl(&[
        "create",
        "rolebinding",
        "grab",
        "-n",
        "team",
        "--clusterrole=admin",
        "--user=alice",
        "--as=alice",
    ]);
    let err = stderr(&denied);
    assert!(!denied.status.success());
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io \"grab\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"),
        "{err}"
    );
    assert!(
        err.contains("{APIGroups:[\"rbac.authorization.k8s.io\"], Resources:[\"roles\"], Verbs:["),
        "{err}"
    );
    // A role alice does not hold either.
    let role = s.kubectl(&[
        "create",
        "role",
        "nodes-all",
        "-n",
        "team",
        "--verb=*",
        "--resource=nodes",
        "--as=alice",
    ]);
    refused(
        &role,
        "roles.rbac.authorization.k8s.io \"nodes-all\" is forbidden: user \"alice\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"nodes\"], Verbs:[\"*\"]}",
    );

    // With `bind` on exactly that ClusterRole, the binding is allowed.
    s.ok(&[
        "create",
        "role",
        "binder",
        "-n",
        "team",
        "--verb=bind",
        "--resource=clusterroles.rbac.authorization.k8s.io",
        "--resource-name=admin",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "alice-bind",
        "-n",
        "team",
        "--role=binder",
        "--user=alice",
    ]);
    s.ok(&[
        "create",
        "rolebinding",
        "grab",
        "-n",
        "team",
        "--clusterrole=admin",
        "--user=alice",
        "--as=alice",
    ]);
    // `bind` on admin does not stretch to cluster-admin.
    let still = s.kubectl(&[
        "create",
        "rolebinding",
        "grab2",
        "-n",
        "team",
        "--clusterrole=cluster-admin",
        "--user=alice",
        "--as=alice",
    ]);
    refused(
        &still,
        "is attempting to grant RBAC permissions not currently held",
    );

    // Aggregation: a labelled ClusterRole's rules appear in view at once.
    s.ok_stdin(
        &["apply", "-f", "-"],
        r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widgets-view
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
rules:
- apiGroups: ["example.com"]
  resources: ["widgets"]
  verbs: ["get", "list", "watch"]
"#,
    );
    s.wait_for(20, "widgets aggregated into view", || {
        s.jsonpath(&["get", "clusterrole", "view"], "{.rules[*].resources}")
            .contains("widgets")
    });
    s.ok(&["delete", "clusterrole", "widgets-view"]);
    s.wait_for(20, "widgets gone from view", || {
        let rules = s.jsonpath(&["get", "clusterrole", "view"], "{.rules[*].resources}");
        !rules.contains("widgets") && rules.contains("pods")
    });
}

#[test]
fn impersonation_needs_the_impersonate_verb() {
    let s = Server::start();
    s.ok(&["create", "serviceaccount", "robot", "-n", "default"]);
    let token = s.ok(&["create", "token", "robot", "-n", "default"]);
    // `--raw`: kubectl's discovery would hide the refusal behind "unknown".
    let pods = "/api/v1/namespaces/default/pods";
    let denied = as_token(&s, &token, &["get", "--raw", pods, "--as=alice"]);
    refused(
        &denied,
        "users \"alice\" is forbidden: User \"system:serviceaccount:default:robot\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
    );
    s.ok(&[
        "create",
        "clusterrole",
        "impersonate-alice",
        "--verb=impersonate",
        "--resource=users",
        "--resource-name=alice",
    ]);
    s.ok(&[
        "create",
        "clusterrolebinding",
        "robot-as-alice",
        "--clusterrole=impersonate-alice",
        "--serviceaccount=default:robot",
    ]);
    let me = as_token(
        &s,
        &token,
        &[
            "auth",
            "whoami",
            "--as=alice",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(stdout(&me), "alice", "{}", stderr(&me));
    // Alice herself may not list pods, and groups need their own grant.
    let as_alice = as_token(&s, &token, &["get", "--raw", pods, "--as=alice"]);
    refused(&as_alice, "User \"alice\" cannot list resource \"pods\"");
    let group = as_token(
        &s,
        &token,
        &[
            "get",
            "--raw",
            pods,
            "--as=alice",
            "--as-group=system:masters",
        ],
    );
    refused(&group, "groups \"system:masters\" is forbidden");
    let other = as_token(&s, &token, &["get", "--raw", pods, "--as=bob"]);
    refused(&other, "users \"bob\" is forbidden");
}

#[test]
fn a_node_reads_only_what_its_own_pods_use() {
    let s = Server::start();
    for node in ["n1", "n2"] {
        s.ok_stdin(
            &["create", "--validate=false", "-f", "-"],
            &format!(
                "{{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{{\"name\":\"{node}\"}}}}"
            ),
        );
        s.ok(&[
            "create",
            "secret",
            "generic",
            &format!("{node}-secret"),
            "--from-literal=k=v",
        ]);
        s.ok_stdin(
            &["create", "--validate=false", "-f", "-"],
            &format!(
                r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{node}-pod"}},
                "spec":{{"nodeName":"{node}","containers":[{{"name":"c","image":"busybox"}}],
                "volumes":[{{"name":"s","secret":{{"secretName":"{node}-secret"}}}}]}}}}"#
            ),
        );
    }
    s.ok(&[
        "create",
        "secret",
        "generic",
        "unused",
        "--from-literal=k=v",
    ]);
    let n1 = cert_kubeconfig(&s, "n1", "system:node:n1", &["system:nodes"]);
    let own = with_config(&s, &n1, &["get", "secret", "n1-secret", "-o", "name"]);
    assert_eq!(stdout(&own).trim(), "secret/n1-secret", "{}", stderr(&own));
    for other in ["n2-secret", "unused"] {
        let denied = with_config(&s, &n1, &["get", "secret", other]);
        refused(
            &denied,
            &format!(
                "secrets \"{other}\" is forbidden: User \"system:node:n1\" cannot get resource \"secrets\" in API group \"\" in the namespace \"default\": no relationship found between node 'n1' and this object"
            ),
        );
    }
    let list = with_config(&s, &n1, &["get", "secrets"]);
    refused(&list, "No Object name found");
    // Its own Node yes, another's no; nodes may read all pods (the kubelet
    // watches its own by field selector).
    let label = with_config(&s, &n1, &["label", "node", "n2", "evil=yes"]);
    refused(&label, "node \"n1\" is not allowed to modify node \"n2\"");
    let own_label = with_config(&s, &n1, &["label", "node", "n1", "example.com/rack=r1"]);
    assert!(own_label.status.success(), "{}", stderr(&own_label));
    let role_label = with_config(
        &s,
        &n1,
        &[
            "label",
            "node",
            "n1",
            "node-role.kubernetes.io/control-plane=true",
        ],
    );
    refused(
        &role_label,
        "is not allowed to modify labels: node-role.kubernetes.io/control-plane",
    );
    let delete = with_config(&s, &n1, &["delete", "pod", "n2-pod"]);
    refused(
        &delete,
        "node \"n1\" can only delete pods with spec.nodeName set to itself",
    );
    let create = with_config(
        &s,
        &n1,
        &["create", "secret", "generic", "mine", "--from-literal=k=v"],
    );
    refused(
        &create,
        "cannot create resource \"secrets\" in API group \"\" in the namespace \"default\": can only read resources of this type",
    );
    // Its own Lease only.
    let lease = |name: &str| {
        let body = format!(
            r#"{{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{{"name":"{name}","namespace":"kube-node-lease"}}}}"#
        );
        run(
            &s,
            Auth::Config(&n1),
            &["create", "--validate=false", "-f", "-"],
            Some(&body),
        )
    };
    let own = lease("n1");
    assert!(own.status.success(), "{}", stderr(&own));
    assert!(
        stderr(&lease("n2"))
            .contains("can only access node lease with the same name as the requesting node")
    );
}

#[test]
fn tokens_are_checked_for_audience_liveness_and_validity() {
    let s = Server::start();
    s.ok(&["create", "serviceaccount", "tmp", "-n", "default"]);
    s.ok(&[
        "create",
        "clusterrolebinding",
        "tmp-view",
        "--clusterrole=view",
        "--serviceaccount=default:tmp",
    ]);
    // A token for another audience does not authenticate to the API.
    let evil = s.ok(&["create", "token", "tmp", "--audience", "evil"]);
    let out = as_token(&s, &evil, &["auth", "whoami"]);
    refused(&out, "Unauthorized");
    // A token of a deleted ServiceAccount stops working.
    let token = s.ok(&["create", "token", "tmp"]);
    let ok = as_token(&s, &token, &["auth", "whoami"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    s.ok(&["delete", "serviceaccount", "tmp"]);
    s.wait_for(10, "the deleted account's token refused", || {
        stderr(&as_token(&s, &token, &["auth", "whoami"])).contains("Unauthorized")
    });
    // Recreated under the same name: a new UID, the old token stays dead.
    s.ok(&["create", "serviceaccount", "tmp", "-n", "default"]);
    let again = as_token(&s, &token, &["auth", "whoami"]);
    refused(&again, "Unauthorized");
    // A TokenRequest bound to a pod that does not exist: 404.
    let missing = s.kubectl(&[
        "create",
        "token",
        "tmp",
        "--bound-object-kind=Pod",
        "--bound-object-name=ghost",
    ]);
    refused(&missing, "pods \"ghost\" not found");
    // expirationSeconds below 10 minutes (kubectl refuses negative
    // durations itself, so those go raw).
    let short = s.kubectl(&["create", "token", "tmp", "--duration=1s"]);
    refused(
        &short,
        "spec.expirationSeconds: Invalid value: 1: may not specify a duration less than 10 minutes",
    );
    let negative = s.kubectl_stdin(
        &["create", "--raw", "/api/v1/namespaces/default/serviceaccounts/tmp/token", "-f", "-"],
        r#"{"apiVersion":"authentication.k8s.io/v1","kind":"TokenRequest","spec":{"expirationSeconds":-5}}"#,
    );
    refused(&negative, "may not specify a duration less than 10 minutes");
    // TokenReview: what metrics-server and webhooks ask.
    let token = s.ok(&["create", "token", "tmp"]);
    let review = s.ok_stdin(
        &["create", "--validate=false", "-o", "json", "-f", "-"],
        &format!(
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{}"}}}}"#,
            token.trim()
        ),
    );
    let review: serde_json::Value = serde_json::from_str(&review).unwrap();
    assert_eq!(review["status"]["authenticated"], true, "{review}");
    assert_eq!(
        review["status"]["user"]["username"],
        "system:serviceaccount:default:tmp"
    );
    let review = s.ok_stdin(
        &["create", "--validate=false", "-o", "json", "-f", "-"],
        &format!(
            r#"{{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{{"token":"{}"}}}}"#,
            evil.trim()
        ),
    );
    let review: serde_json::Value = serde_json::from_str(&review).unwrap();
    assert!(review["status"]["authenticated"].is_null(), "{review}");
    assert!(
        review["status"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("audiences"),
        "{review}"
    );
    // Nodes: only admins (and nodes, for themselves) may write them, and
    // nodes/proxy needs its own grant.
    let token = s.ok(&["create", "token", "tmp"]);
    let node = r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"scanner"},"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"}]}}"#;
    let create = run(
        &s,
        Auth::Token(&token),
        &["create", "--validate=false", "-f", "-"],
        Some(node),
    );
    refused(
        &create,
        "nodes is forbidden: User \"system:serviceaccount:default:tmp\" cannot create resource \"nodes\"",
    );
    s.ok_stdin(&["create", "--validate=false", "-f", "-"], node);
    let proxy = as_token(
        &s,
        &token,
        &["get", "--raw", "/api/v1/nodes/scanner/proxy/healthz"],
    );
    refused(&proxy, "cannot get resource \"nodes/proxy\"");
}
