//! Endpoints (core) and EndpointSlices (discovery.k8s.io): addresses, ports and the slice's
//! address type.

use serde_json::Value;

use super::field::{
    Bad, Path, duplicate, invalid, invalid_each, invalid_str, not_supported, required, too_many,
};
use super::json::{arr, get, opt_str, str_of, strings};
use super::netaddr::{is_ip, is_ipv6, is_valid_ip, validate_non_special_ip};
use super::pod::{port_num_errors, validate_protocol};
use super::{FIELD_IMMUTABLE, FieldError};
use crate::api::registry::names::{
    is_dns1123_label, is_dns1123_subdomain, is_qualified_name, name_is_dns_subdomain,
};

/// Endpoints create (upstream `ValidateEndpoints` minus metadata).
pub(crate) fn validate_ep(obj: &Value, errs: &mut Vec<FieldError>) {
    let path = Path::new("subsets");
    for (i, ss) in arr(obj, "subsets").iter().enumerate() {
        let p = path.index(i);
        let (ready, not_ready) = (arr(ss, "addresses"), arr(ss, "notReadyAddresses"));
        if ready.is_empty() && not_ready.is_empty() {
            errs.push(required(
                &p,
                "must specify `addresses` or `notReadyAddresses`",
            ));
        }
        for (key, list) in [("addresses", ready), ("notReadyAddresses", not_ready)] {
            for (j, a) in list.iter().enumerate() {
                validate_endpoint_address(a, &p.child(key).index(j), errs);
            }
        }
        let ports = arr(ss, "ports");
        for (j, port) in ports.iter().enumerate() {
            validate_endpoint_port(port, ports.len() > 1, &p.child("ports").index(j), errs);
        }
    }
}

fn validate_endpoint_address(a: &Value, path: &Path, errs: &mut Vec<FieldError>) {
    let ip = str_of(a, "ip");
    errs.extend(is_valid_ip(&path.child("ip"), ip));
    let hostname = str_of(a, "hostname");
    if !hostname.is_empty() {
        invalid_each(
            errs,
            &path.child("hostname"),
            hostname,
            is_dns1123_label(hostname),
        );
    }
    if let Some(node) = opt_str(a, "nodeName") {
        invalid_each(
            errs,
            &path.child("nodeName"),
            node,
            name_is_dns_subdomain(node, false),
        );
    }
    errs.extend(validate_non_special_ip(&path.child("ip"), ip));
}

fn validate_endpoint_port(
    port: &Value,
    require_name: bool,
    path: &Path,
    errs: &mut Vec<FieldError>,
) {
    let name = str_of(port, "name");
    if require_name && name.is_empty() {
        errs.push(required(&path.child("name"), ""));
    } else if !name.is_empty() {
        invalid_each(errs, &path.child("name"), name, is_dns1123_label(name));
    }
    let number = super::json::int_of(port, "port").unwrap_or(0);
    errs.extend(port_num_errors(&path.child("port"), number));
    validate_protocol(port, &path.child("protocol"), errs);
    if let Some(app) = opt_str(port, "appProtocol") {
        invalid_each(
            errs,
            &path.child("appProtocol"),
            app,
            is_qualified_name(app),
        );
    }
}

/// Endpoints update: the new object must be valid.
pub(crate) fn update_ep(_old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_ep(new, errs);
}

/// EndpointSlice create (upstream discovery `ValidateEndpointSlice` minus metadata).
pub(crate) fn validate_slice(obj: &Value, errs: &mut Vec<FieldError>) {
    let address_type = str_of(obj, "addressType");
    let ap = Path::new("addressType");
    match address_type {
        "" => errs.push(required(&ap, "")),
        "IPv4" | "IPv6" | "FQDN" => {}
        other => errs.push(not_supported(&ap, Bad::s(other), &["FQDN", "IPv4", "IPv6"])),
    }
    validate_slice_endpoints(obj, address_type, errs);
    validate_slice_ports(obj, errs);
}

fn validate_slice_endpoints(obj: &Value, address_type: &str, errs: &mut Vec<FieldError>) {
    let endpoints = arr(obj, "endpoints");
    let path = Path::new("endpoints");
    if endpoints.len() > 1000 {
        errs.push(too_many(&path, endpoints.len(), 1000));
        return;
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let p = path.index(i);
        let ap = p.child("addresses");
        let addresses = strings(ep, "addresses");
        if addresses.is_empty() {
            errs.push(required(&ap, "must contain at least 1 address"));
        } else if addresses.len() > 100 {
            errs.push(too_many(&ap, addresses.len(), 100));
        }
        for (j, addr) in addresses.iter().enumerate() {
            validate_slice_address(address_type, addr, &ap.index(j), errs);
        }
        if let Some(node) = opt_str(ep, "nodeName") {
            invalid_each(
                errs,
                &p.child("nodeName"),
                node,
                name_is_dns_subdomain(node, false),
            );
        }
        if let Some(hostname) = opt_str(ep, "hostname") {
            invalid_each(
                errs,
                &p.child("hostname"),
                hostname,
                is_dns1123_label(hostname),
            );
        }
    }
}

fn validate_slice_address(address_type: &str, addr: &str, path: &Path, errs: &mut Vec<FieldError>) {
    match address_type {
        "IPv4" | "IPv6" => {
            let want_v6 = address_type == "IPv6";
            if !is_ip(addr) || is_ipv6(addr) != want_v6 {
                let msg = format!("must be a valid {address_type} address");
                errs.push(invalid_str(path, addr, &msg));
            } else {
                errs.extend(validate_non_special_ip(path, addr));
            }
        }
        "FQDN" => validate_fqdn(addr, path, errs),
        _ => {}
    }
}

/// Upstream `IsFullyQualifiedDomainName`.
fn validate_fqdn(name: &str, path: &Path, errs: &mut Vec<FieldError>) {
    if name.is_empty() {
        errs.push(required(path, ""));
        return;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let msgs = is_dns1123_subdomain(name);
    if !msgs.is_empty() {
        errs.push(invalid_str(path, name, &msgs.join(",")));
        return;
    }
    if name.split('.').count() < 2 {
        let msg = "should be a domain with at least two segments separated by dots";
        errs.push(invalid_str(path, name, msg));
        return;
    }
    for label in name.split('.') {
        let msgs = is_dns1123_label(label);
        if !msgs.is_empty() {
            errs.push(invalid_str(path, label, &msgs.join(",")));
            return;
        }
    }
}

fn validate_slice_ports(obj: &Value, errs: &mut Vec<FieldError>) {
    let ports = arr(obj, "ports");
    let path = Path::new("ports");
    if ports.len() > 20000 {
        errs.push(too_many(&path, ports.len(), 20000));
        return;
    }
    let mut names: std::collections::HashSet<&str> = std::collections::HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = path.index(i);
        let name = str_of(port, "name");
        if !name.is_empty() {
            invalid_each(errs, &p.child("name"), name, is_dns1123_label(name));
        }
        if names.contains(&name) {
            errs.push(duplicate(&p.child("name"), Bad::s(name)));
        } else {
            names.insert(name);
        }
        if get(port, "protocol").is_none() {
            errs.push(required(&p.child("protocol"), ""));
        } else {
            validate_protocol(port, &p.child("protocol"), errs);
        }
        if let Some(app) = opt_str(port, "appProtocol") {
            invalid_each(errs, &p.child("appProtocol"), app, is_qualified_name(app));
        }
    }
}

/// EndpointSlice update: the address type is immutable.
pub(crate) fn update_slice(old: &Value, new: &Value, errs: &mut Vec<FieldError>) {
    validate_slice(new, errs);
    let (o, n) = (str_of(old, "addressType"), str_of(new, "addressType"));
    if o != n {
        errs.push(invalid(
            &Path::new("addressType"),
            Bad::s(n),
            FIELD_IMMUTABLE,
        ));
    }
}
