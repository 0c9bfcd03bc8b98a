//! Typed flag values and their parsers.
//!
//! Each parser's error says what it expected, because clap shows it after
//! the flag name: `invalid value 'x' for '--cluster-cidr <CIDR>': expected …`.

use std::fmt;
use std::str::FromStr;

use clap::ValueEnum;
use ipnet::IpNet;

/// An IP network in CIDR form with no host bits set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(pub IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let net: IpNet = s
            .parse()
            .map_err(|_| "expected an IP network in CIDR form, e.g. 10.42.0.0/16".to_string())?;
        if net.trunc() != net {
            return Err(format!("host bits are set; did you mean {}?", net.trunc()));
        }
        Ok(Cidr(net))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A file mode given in octal, e.g. `0600`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(pub u32);

impl FromStr for FileMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match u32::from_str_radix(s, 8) {
            Ok(mode) if mode <= 0o777 => Ok(FileMode(mode)),
            _ => Err("expected an octal file mode between 0000 and 0777, e.g. 0600".into()),
        }
    }
}

/// A node label `key=value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    /// Label key (optionally prefixed, `example.com/role`).
    pub key: String,
    /// Label value (may be empty).
    pub value: String,
}

impl FromStr for Label {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (key, value) = s
            .split_once('=')
            .ok_or("expected key=value, e.g. tier=edge")?;
        validate_qualified_name(key)?;
        if value.len() > 63 || !value.is_empty() && !is_name_segment(value) {
            return Err(format!(
                "label value {value:?} must be at most 63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric"
            ));
        }
        Ok(Label {
            key: key.into(),
            value: value.into(),
        })
    }
}

/// The effect of a node taint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaintEffect {
    /// Do not schedule pods that do not tolerate it.
    NoSchedule,
    /// Avoid scheduling pods that do not tolerate it.
    PreferNoSchedule,
    /// Evict running pods that do not tolerate it.
    NoExecute,
}

/// A node taint `key[=value]:Effect`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value (may be empty).
    pub value: String,
    /// Taint effect.
    pub effect: TaintEffect,
}

impl FromStr for Taint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str = "expected key[=value]:Effect with Effect one of NoSchedule, PreferNoSchedule, NoExecute";
        let (kv, effect) = s.rsplit_once(':').ok_or(FORM)?;
        let effect = match effect {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            _ => return Err(FORM.into()),
        };
        let (key, value) = kv.split_once('=').unwrap_or((kv, ""));
        validate_qualified_name(key)?;
        Ok(Taint {
            key: key.into(),
            value: value.into(),
            effect,
        })
    }
}

/// A port range `low-high`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub low: u16,
    /// Last port (inclusive).
    pub high: u16,
}

impl FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        const FORM: &str = "expected a port range low-high, e.g. 30000-32767";
        let (low, high) = s.split_once('-').ok_or(FORM)?;
        let low: u16 = low.trim().parse().map_err(|_| FORM)?;
        let high: u16 = high.trim().parse().map_err(|_| FORM)?;
        if low == 0 || low > high {
            return Err(FORM.into());
        }
        Ok(PortRange { low, high })
    }
}

/// An `https://host:port` server address to join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl(pub String);

impl FromStr for ServerUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("https://")
            .ok_or("expected https://HOST:PORT, e.g. https://10.0.0.1:6443")?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err("expected https://HOST:PORT, e.g. https://10.0.0.1:6443".into());
        }
        Ok(ServerUrl(s.trim_end_matches('/').to_string()))
    }
}

/// The overlay backend (k3s `--flannel-backend`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FlannelBackend {
    /// VXLAN overlay (UDP 8472, VNI 1).
    Vxlan,
    /// Direct routes between nodes on one L2 segment.
    HostGw,
    /// No pod network from kelp.
    None,
}

impl From<FlannelBackend> for crate::network::overlay::Backend {
    fn from(flag: FlannelBackend) -> Self {
        match flag {
            FlannelBackend::Vxlan => Self::Vxlan,
            FlannelBackend::HostGw => Self::HostGw,
            FlannelBackend::None => Self::None,
        }
    }
}

/// A packaged component that `--disable` turns off.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Component {
    /// Cluster DNS (k3s name: coredns).
    #[value(alias = "coredns")]
    Dns,
    /// The built-in LoadBalancer service controller.
    Servicelb,
    /// The default ingress controller (kelp ships none; accepted for k3s compatibility).
    Traefik,
    /// The local-path storage provisioner.
    LocalStorage,
    /// The metrics API.
    MetricsServer,
    /// NetworkPolicy enforcement.
    NetworkPolicy,
}

/// Checks a Kubernetes qualified name (`[prefix/]name`).
fn validate_qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if name.is_empty() || name.len() > 63 || !is_name_segment(name) {
        return Err(format!(
            "key {key:?}: name part must be 1-63 characters of [A-Za-z0-9_.-], starting and ending alphanumeric"
        ));
    }
    if let Some(prefix) = prefix {
        let ok = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|l| {
                !l.is_empty()
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!(
                "key {key:?}: prefix must be a DNS subdomain, e.g. example.com/"
            ));
        }
    }
    Ok(())
}

fn is_name_segment(s: &str) -> bool {
    let b = s.as_bytes();
    b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_rejects_garbage_and_host_bits() {
        assert!("10.42.0.0/16".parse::<Cidr>().is_ok());
        assert!("10.42.0.0".parse::<Cidr>().unwrap_err().contains("CIDR"));
        assert!(
            "10.42.1.0/16"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("10.42.0.0/16")
        );
    }

    #[test]
    fn taints_and_labels_parse() {
        let t: Taint = "dedicated=gpu:NoSchedule".parse().unwrap();
        assert_eq!(
            (t.key.as_str(), t.value.as_str(), t.effect),
            ("dedicated", "gpu", TaintEffect::NoSchedule)
        );
        let t: Taint = "node-role.kubernetes.io/master:NoExecute".parse().unwrap();
        assert_eq!(t.value, "");
        assert!("x=y:Sometimes".parse::<Taint>().is_err());
        assert!("tier=edge".parse::<Label>().is_ok());
        assert!("tier".parse::<Label>().is_err());
        assert!("-bad=x".parse::<Label>().is_err());
        assert!("Example.com/x=y".parse::<Label>().is_err());
    }

    #[test]
    fn modes_and_ranges() {
        assert_eq!("0644".parse::<FileMode>().unwrap(), FileMode(0o644));
        assert!("0999".parse::<FileMode>().is_err());
        assert_eq!(
            "30000-32767".parse::<PortRange>().unwrap(),
            PortRange {
                low: 30000,
                high: 32767
            }
        );
        assert!("5-1".parse::<PortRange>().is_err());
    }
}
