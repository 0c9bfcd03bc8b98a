//! A container's environment, resolved as the upstream kubelet does
//! (pkg/kubelet/kubelet_pods.go `makeEnvironmentVariables`): the
//! `kubernetes` service variables first, then `envFrom` sources, then `env`
//! entries in order, each `$(VAR)` expanded against what came before.
//!
//! ConfigMaps and Secrets are read through [`ObjectSource`] when the
//! container starts, so a missing non-optional key fails the start with
//! upstream's message (`CreateContainerConfigError`) instead of starting the
//! container with a silently empty variable.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use super::objects::ObjectSource;
use crate::client::quantity;

/// Why an environment cannot be built; the message is shown in the
/// container's waiting state.
#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    /// A referenced ConfigMap, Secret or key does not exist.
    #[error("{0}")]
    Missing(String),
    /// A field or resource reference that cannot be resolved.
    #[error("{0}")]
    Invalid(String),
}

/// Pod facts that `fieldRef` can read and the service variables need.
pub struct EnvContext<'a> {
    /// The pod.
    pub pod: &'a Pod,
    /// status.hostIP.
    pub host_ip: String,
    /// status.podIP (empty until the pod network gives one).
    pub pod_ip: String,
    /// ClusterIP of the `kubernetes` service.
    pub kubernetes_service_ip: String,
}

/// Builds `NAME=value` strings for `container`.
pub async fn resolve(
    ctx: &EnvContext<'_>,
    container: &Container,
    objects: &ObjectSource,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut vars: Vec<(String, String)> = service_variables(&ctx.kubernetes_service_ip);
    let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        if let Some(cm) = &source.config_map_ref {
            let optional = cm.optional.unwrap_or(false);
            match objects.config_map(ns, &cm.name).await {
                Some(data) => {
                    vars.extend(data.into_iter().map(|(k, v)| (format!("{prefix}{k}"), v)))
                }
                None if optional => {}
                None => {
                    return Err(EnvError::Missing(format!(
                        "configmap \"{}\" not found",
                        cm.name
                    )));
                }
            }
        }
        if let Some(s) = &source.secret_ref {
            let optional = s.optional.unwrap_or(false);
            match objects.secret(ns, &s.name).await {
                Some(data) => vars.extend(data.into_iter().map(|(k, v)| {
                    (
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(&v).into_owned(),
                    )
                })),
                None if optional => {}
                None => {
                    return Err(EnvError::Missing(format!(
                        "secret \"{}\" not found",
                        s.name
                    )));
                }
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (_, Some(from)) => match value_from(ctx, container, from, objects).await? {
                Some(v) => v,
                None => continue,
            },
            (Some(v), None) => expand(v, &vars),
            (None, None) => String::new(),
        };
        set(&mut vars, var.name.clone(), value);
    }
    Ok(vars)
}

fn set(vars: &mut Vec<(String, String)>, name: String, value: String) {
    match vars.iter_mut().find(|(k, _)| *k == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name, value)),
    }
}

/// The docker-link style variables of the `kubernetes` service, which
/// in-cluster clients (client-go's InClusterConfig) read.
fn service_variables(ip: &str) -> Vec<(String, String)> {
    if ip.is_empty() {
        return Vec::new();
    }
    [
        ("KUBERNETES_SERVICE_HOST", ip.to_string()),
        ("KUBERNETES_SERVICE_PORT", "443".to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS", "443".to_string()),
        ("KUBERNETES_PORT", format!("tcp://{ip}:443")),
        ("KUBERNETES_PORT_443_TCP", format!("tcp://{ip}:443")),
        ("KUBERNETES_PORT_443_TCP_PROTO", "tcp".to_string()),
        ("KUBERNETES_PORT_443_TCP_PORT", "443".to_string()),
        ("KUBERNETES_PORT_443_TCP_ADDR", ip.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

async fn value_from(
    ctx: &EnvContext<'_>,
    container: &Container,
    from: &k8s_openapi::api::core::v1::EnvVarSource,
    objects: &ObjectSource,
) -> Result<Option<String>, EnvError> {
    let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    if let Some(field) = &from.field_ref {
        return field_value(ctx, &field.field_path).map(Some);
    }
    if let Some(res) = &from.resource_field_ref {
        return resource_value(
            container,
            &res.resource,
            res.divisor.as_ref().map(|d| d.0.as_str()),
        )
        .map(Some);
    }
    if let Some(key) = &from.config_map_key_ref {
        let optional = key.optional.unwrap_or(false);
        let value = objects
            .config_map(ns, &key.name)
            .await
            .and_then(|d| d.get(&key.key).cloned());
        return match value {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(EnvError::Missing(format!(
                "couldn't find key {} in ConfigMap {ns}/{}",
                key.key, key.name
            ))),
        };
    }
    if let Some(key) = &from.secret_key_ref {
        let optional = key.optional.unwrap_or(false);
        let value = objects
            .secret(ns, &key.name)
            .await
            .and_then(|d| d.get(&key.key).cloned());
        return match value {
            Some(v) => Ok(Some(String::from_utf8_lossy(&v).into_owned())),
            None if optional => Ok(None),
            None => Err(EnvError::Missing(format!(
                "couldn't find key {} in Secret {ns}/{}",
                key.key, key.name
            ))),
        };
    }
    Ok(Some(String::new()))
}

/// A downward-API field of the pod (also used by downwardAPI volumes).
pub fn field_value(ctx: &EnvContext<'_>, path: &str) -> Result<String, EnvError> {
    let meta = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let map_key = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.clone(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.clone(),
        "metadata.labels" => render_map(meta.labels.as_ref()),
        "metadata.annotations" => render_map(meta.annotations.as_ref()),
        other => map_key("metadata.labels['", meta.labels.as_ref())
            .or_else(|| map_key("metadata.annotations['", meta.annotations.as_ref()))
            .ok_or_else(|| {
                EnvError::Invalid(format!("unsupported fieldRef fieldPath {other:?}"))
            })?,
    };
    Ok(value)
}

/// `key="value"` lines, sorted, as downwardAPI volumes render maps.
fn render_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.map(|m| {
        m.iter()
            .map(|(k, v)| format!("{k}={v:?}\n"))
            .collect::<String>()
    })
    .unwrap_or_default()
}

/// A container resource (`limits.cpu`, `requests.memory`, …) divided by
/// `divisor`, rounded up, as upstream's `ExtractContainerResourceValue`.
pub fn resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
) -> Result<String, EnvError> {
    let res = container.resources.as_ref();
    let (kind, name) = resource
        .split_once('.')
        .ok_or_else(|| EnvError::Invalid(format!("unsupported resource {resource:?}")))?;
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => {
            return Err(EnvError::Invalid(format!(
                "unsupported resource {resource:?}"
            )));
        }
    };
    let raw = map.and_then(|m| m.get(name)).map(|q| q.0.clone());
    let is_cpu = name == "cpu";
    // Without a limit upstream reports the node's allocatable; a request
    // without a value is 0.
    let raw = match (raw, kind) {
        (Some(r), _) => r,
        (None, "limits") if is_cpu => std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .to_string(),
        (None, "limits") => {
            super::super::node::host_info::HostInfo::read(std::path::Path::new("/"))
                .memory_bytes
                .to_string()
        }
        (None, _) => "0".to_string(),
    };
    let bad = |q: &str| EnvError::Invalid(format!("invalid quantity {q:?}"));
    let divisor = divisor.unwrap_or("1");
    let (value, div) = if is_cpu {
        (
            quantity::parse_milli_value(&raw).map_err(|_| bad(&raw))?,
            quantity::parse_milli_value(divisor).map_err(|_| bad(divisor))?,
        )
    } else {
        (
            quantity::parse_value(&raw).map_err(|_| bad(&raw))?,
            quantity::parse_value(divisor).map_err(|_| bad(divisor))?,
        )
    };
    if div <= 0 {
        return Err(bad(divisor));
    }
    Ok(((value + div - 1) / div).to_string())
}

/// Expands `$(NAME)` against `vars`; `$$` escapes; unknown names stay
/// verbatim (upstream's `expansion.Expand`).
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) => {
                    let name = &inner[..end];
                    match vars.iter().rev().find(|(k, _)| k == name) {
                        Some((_, v)) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = inner;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vec<(String, String)> {
        vec![("A".into(), "1".into()), ("B".into(), "two".into())]
    }

    #[test]
    fn expands_known_names_and_keeps_unknown_and_escapes() {
        assert_eq!(expand("x$(A)y$(B)", &vars()), "x1ytwo");
        assert_eq!(expand("$(C)", &vars()), "$(C)");
        assert_eq!(expand("$$(A)", &vars()), "$(A)");
        assert_eq!(expand("a$b", &vars()), "a$b");
        assert_eq!(expand("$(A", &vars()), "$(A");
    }

    #[test]
    fn resource_values_divide_and_round_up() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c", "resources": {"limits": {"cpu": "1500m", "memory": "64Mi"}}
        }))
        .unwrap();
        assert_eq!(resource_value(&c, "limits.cpu", None).unwrap(), "2");
        assert_eq!(
            resource_value(&c, "limits.cpu", Some("1m")).unwrap(),
            "1500"
        );
        assert_eq!(
            resource_value(&c, "limits.memory", Some("1Mi")).unwrap(),
            "64"
        );
        assert_eq!(resource_value(&c, "requests.memory", None).unwrap(), "0");
        assert!(resource_value(&c, "limits.gpu.x", None).is_ok());
        assert!(resource_value(&c, "bogus", None).is_err());
    }
}
