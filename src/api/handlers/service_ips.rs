//! Service writes reserve ClusterIPs and NodePorts; deletes free them.
//!
//! A write first reserves what the new Service needs beyond what the old
//! one held ([`Held`]); if the write then fails, exactly those are freed
//! again, and once it succeeds whatever the old version held but the new
//! one does not is freed.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::Api;
use crate::api::allocator::{self, AllocError};
use crate::api::registry::resources::ResourceInfo;
use crate::api::status::{ApiError, ApiResult, Cause};
use crate::store::Store;

/// What one write newly reserved.
#[derive(Default)]
pub(super) struct Held {
    ips: Vec<IpAddr>,
    ports: Vec<u16>,
}

fn invalid(svc: &Value, field: String, value: String, e: &AllocError) -> ApiError {
    let name = crate::api::object::name(svc).unwrap_or("").to_string();
    let message = format!("Invalid value: {value}: {e}");
    ApiError::invalid(
        "",
        "Service",
        &name,
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            field,
            message,
        }],
    )
}

impl<S: Store> Api<S> {
    pub(super) fn reserve_service(
        &self,
        info: &ResourceInfo,
        old: Option<&Value>,
        new: &mut Value,
    ) -> ApiResult<Held> {
        let mut held = Held::default();
        if !info.group.is_empty() || info.resource != "services" {
            return Ok(held);
        }
        if let Err(e) = self.reserve_into(old, new, &mut held) {
            self.release_reserved(&held);
            return Err(e);
        }
        Ok(held)
    }

    fn reserve_into(&self, old: Option<&Value>, new: &mut Value, held: &mut Held) -> ApiResult<()> {
        let kind = new["spec"]["type"]
            .as_str()
            .unwrap_or("ClusterIP")
            .to_string();
        let spec = &mut new["spec"];
        if kind == "ExternalName" {
            if let Some(s) = spec.as_object_mut() {
                s.remove("clusterIP");
                s.remove("clusterIPs");
            }
        } else {
            let old_ips = old.map(allocator::cluster_ips).unwrap_or_default();
            let requested = spec["clusterIP"].as_str().unwrap_or("").to_string();
            if requested == "None" {
                spec["clusterIPs"] = json!(["None"]);
            } else if let (Some(ip), true) = (
                old_ips.first(),
                requested.is_empty() || old_ips.iter().any(|i| i.to_string() == requested),
            ) {
                spec["clusterIP"] = json!(ip.to_string());
                spec["clusterIPs"] = json!([ip.to_string()]);
            } else {
                let wanted = if requested.is_empty() {
                    None
                } else {
                    Some(requested.parse::<IpAddr>().map_err(|_| {
                        invalid(
                            &Value::Null,
                            "spec.clusterIPs".into(),
                            format!("[]string{{{requested:?}}}"),
                            &AllocError::OutOfRange {
                                what: "IP",
                                range: "the service CIDR".into(),
                            },
                        )
                    })?)
                };
                let ip = self.allocator.allocate_ip(wanted).map_err(|e| {
                    invalid(
                        &Value::Null,
                        "spec.clusterIPs".into(),
                        format!("[]string{{{requested:?}}}"),
                        &e,
                    )
                })?;
                held.ips.push(ip);
                let spec = &mut new["spec"];
                spec["clusterIP"] = json!(ip.to_string());
                spec["clusterIPs"] = json!([ip.to_string()]);
            }
        }
        let wants_node_ports = kind == "NodePort" || kind == "LoadBalancer";
        let old_ports = old.map(allocator::node_ports).unwrap_or_default();
        let old_spec_ports = old
            .and_then(|o| o["spec"]["ports"].as_array().cloned())
            .unwrap_or_default();
        let Some(ports) = new["spec"]["ports"].as_array_mut() else {
            return Ok(());
        };
        for (i, port) in ports.iter_mut().enumerate() {
            if !wants_node_ports {
                if let Some(p) = port.as_object_mut() {
                    p.remove("nodePort");
                }
                continue;
            }
            let requested = port["nodePort"]
                .as_u64()
                .filter(|p| *p > 0)
                .map(|p| p as u16);
            // An unchanged port keeps the NodePort the old version had.
            let previous = old_spec_ports
                .iter()
                .find(|o| o["port"] == port["port"] && o["protocol"] == port["protocol"])
                .and_then(|o| o["nodePort"].as_u64())
                .map(|p| p as u16);
            let chosen = match (requested, previous) {
                (Some(r), _) if old_ports.contains(&r) => r,
                (None, Some(p)) => p,
                (r, _) => {
                    let p = self.allocator.allocate_port(r).map_err(|e| {
                        invalid(
                            &Value::Null,
                            format!("spec.ports[{i}].nodePort"),
                            r.map_or("0".into(), |r| r.to_string()),
                            &e,
                        )
                    })?;
                    held.ports.push(p);
                    p
                }
            };
            port["nodePort"] = json!(chosen);
        }
        Ok(())
    }

    pub(super) fn release_reserved(&self, held: &Held) {
        for ip in &held.ips {
            self.allocator.release_ip(*ip);
        }
        for p in &held.ports {
            self.allocator.release_port(*p);
        }
    }

    /// After a successful update: frees what only the old version held.
    pub(super) fn release_replaced(&self, info: &ResourceInfo, old: &Value, new: &Value) {
        if !info.group.is_empty() || info.resource != "services" {
            return;
        }
        let (new_ips, new_ports) = (allocator::cluster_ips(new), allocator::node_ports(new));
        for ip in allocator::cluster_ips(old)
            .into_iter()
            .filter(|ip| !new_ips.contains(ip))
        {
            self.allocator.release_ip(ip);
        }
        for p in allocator::node_ports(old)
            .into_iter()
            .filter(|p| !new_ports.contains(p))
        {
            self.allocator.release_port(p);
        }
    }

    /// After an object is gone from the store.
    pub(super) fn after_delete(&self, info: &ResourceInfo, obj: &Value) {
        if info.group.is_empty() && info.resource == "services" {
            self.allocator.release_service(obj);
        }
    }
}
