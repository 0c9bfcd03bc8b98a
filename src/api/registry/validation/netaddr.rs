//! IP address and CIDR checks (apimachinery `util/validation/ip.go` and core's
//! `ValidateNonSpecialIP`).
//!
//! Strict parsing is Rust's `std::net`, which like Go's `netip` rejects IPv4 octets with
//! leading zeros; a second, lenient pass tells "leading 0s" apart from garbage so the
//! message matches upstream's.

use std::net::IpAddr;

use super::FieldError;
use super::field::{Path, invalid_str};

/// Parses an IP the way Go's `ParseIPSloppy` does: IPv4 octets may have leading zeros.
fn parse_sloppy(value: &str) -> Option<IpAddr> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    let octets: Vec<&str> = value.split('.').collect();
    if octets.len() != 4 || octets.iter().any(|o| o.is_empty() || o.len() > 3) {
        return None;
    }
    let mut bytes = [0u8; 4];
    for (b, o) in bytes.iter_mut().zip(&octets) {
        *b = o.parse().ok()?;
    }
    Some(IpAddr::from(bytes))
}

fn is_4in6(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

/// Upstream `IsValidIP`: strict, canonical form required.
pub(crate) fn is_valid_ip(path: &Path, value: &str) -> Vec<FieldError> {
    let Some(ip) = parse_sloppy(value) else {
        let msg = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
        return vec![invalid_str(path, value, msg)];
    };
    let mut errs = Vec::new();
    if value.parse::<IpAddr>().is_err() {
        errs.push(invalid_str(path, value, "must not have leading 0s"));
    }
    if is_4in6(&ip) {
        errs.push(invalid_str(
            path,
            value,
            "must not be an IPv4-mapped IPv6 address",
        ));
    }
    if errs.is_empty() && ip.to_string() != value {
        let msg = format!("must be in canonical form (\"{ip}\")");
        errs.push(invalid_str(path, value, &msg));
    }
    errs
}

/// Whether `value` parses as an IP at all (upstream `netutils.ParseIPSloppy(v) != nil`).
pub(crate) fn is_ip(value: &str) -> bool {
    parse_sloppy(value).is_some()
}

/// Whether `value` is an IPv6 address.
pub(crate) fn is_ipv6(value: &str) -> bool {
    matches!(parse_sloppy(value), Some(IpAddr::V6(_)))
}

fn masked(ip: IpAddr, bits: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(bits))
            };
            IpAddr::from(std::net::Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(bits))
            };
            IpAddr::from(std::net::Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Upstream `IsValidCIDR`: a subnet with no host bits set, in canonical form.
pub(crate) fn is_valid_cidr(path: &Path, value: &str) -> Vec<FieldError> {
    let bad = || {
        let msg = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";
        vec![invalid_str(path, value, msg)]
    };
    let Some((addr, len)) = value.split_once('/') else {
        return bad();
    };
    let (Some(ip), Ok(bits)) = (parse_sloppy(addr), len.parse::<u8>()) else {
        return bad();
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if bits > max || len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return bad();
    }
    let leading_zero = (len.len() > 1 && len.starts_with('0')) || addr.parse::<IpAddr>().is_err();
    if leading_zero {
        return vec![invalid_str(
            path,
            value,
            "must not have leading 0s in IP or prefix length",
        )];
    }
    if is_4in6(&ip) {
        return vec![invalid_str(
            path,
            value,
            "must not have an IPv4-mapped IPv6 address",
        )];
    }
    let net = masked(ip, bits);
    if net != ip {
        return vec![invalid_str(
            path,
            value,
            "must not have bits set beyond the prefix length",
        )];
    }
    let canonical = format!("{net}/{bits}");
    if canonical != value {
        let msg = format!("must be in canonical form (\"{canonical}\")");
        return vec![invalid_str(path, value, &msg)];
    }
    Vec::new()
}

/// Whether a CIDR string is IPv6 (for dual-stack checks); `None` when unparsable.
pub(crate) fn cidr_is_ipv6(value: &str) -> Option<bool> {
    let (addr, _) = value.split_once('/')?;
    parse_sloppy(addr).map(|ip| ip.is_ipv6())
}

/// Upstream `ValidateNonSpecialIP`: no unspecified, loopback or link-local addresses.
pub(crate) fn validate_non_special_ip(path: &Path, value: &str) -> Vec<FieldError> {
    let Some(ip) = parse_sloppy(value) else {
        return vec![invalid_str(path, value, "must be a valid IP address")];
    };
    let mut errs = Vec::new();
    if ip.is_unspecified() {
        errs.push(invalid_str(
            path,
            value,
            &format!("may not be unspecified ({value})"),
        ));
    }
    if ip.is_loopback() {
        let msg = "may not be in the loopback range (127.0.0.0/8, ::1/128)";
        errs.push(invalid_str(path, value, msg));
    }
    let (link_local_unicast, link_local_multicast) = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            (
                o[0] == 169 && o[1] == 254,
                o[0] == 224 && o[1] == 0 && o[2] == 0,
            )
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            (s[0] & 0xffc0 == 0xfe80, s[0] & 0xff0f == 0xff02)
        }
    };
    if link_local_unicast {
        let msg = "may not be in the link-local range (169.254.0.0/16, fe80::/10)";
        errs.push(invalid_str(path, value, msg));
    }
    if link_local_multicast {
        let msg = "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)";
        errs.push(invalid_str(path, value, msg));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msgs(errs: Vec<FieldError>) -> Vec<String> {
        errs.into_iter().map(|e| e.message).collect()
    }

    #[test]
    fn ips_must_be_strict_and_canonical() {
        let p = Path::new("ip");
        assert!(is_valid_ip(&p, "10.0.0.1").is_empty());
        assert!(is_valid_ip(&p, "2001:db8::1").is_empty());
        assert!(msgs(is_valid_ip(&p, "010.0.0.1"))[0].ends_with("must not have leading 0s"));
        assert!(msgs(is_valid_ip(&p, "nope"))[0].contains("must be a valid IP address"));
        assert!(msgs(is_valid_ip(&p, "2001:DB8::1"))[0].contains("canonical form"));
    }

    #[test]
    fn cidrs_must_be_subnets() {
        let p = Path::new("c");
        assert!(is_valid_cidr(&p, "10.244.0.0/24").is_empty());
        assert!(is_valid_cidr(&p, "fd00::/64").is_empty());
        assert!(msgs(is_valid_cidr(&p, "10.244.0.1/24"))[0].ends_with("beyond the prefix length"));
        assert!(msgs(is_valid_cidr(&p, "10.244.0.0"))[0].contains("must be a valid CIDR value"));
        assert!(msgs(is_valid_cidr(&p, "10.0.0.0/33"))[0].contains("must be a valid CIDR value"));
    }

    #[test]
    fn special_ips_are_refused() {
        let p = Path::new("ip");
        assert_eq!(validate_non_special_ip(&p, "127.0.0.1").len(), 1);
        assert_eq!(validate_non_special_ip(&p, "169.254.1.1").len(), 1);
        assert!(validate_non_special_ip(&p, "10.1.2.3").is_empty());
    }
}
