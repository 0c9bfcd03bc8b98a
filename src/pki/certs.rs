//! What a leaf certificate should look like, and whether one on disk still does.
//!
//! A [`LeafSpec`] describes a wanted client or serving certificate; it turns
//! into rcgen parameters for issuing, and [`leaf_problem`] compares a stored
//! certificate against it. Leaves are derived state: any problem (unparseable,
//! wrong key, other issuer, missing SAN, near expiry) is a reason to reissue,
//! reported as text for the caller's log, not an error. Keys are always ECDSA
//! P-256; a key file of another kind is rejected.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType, SerialNumber,
};
use ring::rand::SecureRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::PkiError;

/// Lifetime of the cluster CA, like k3s: ten years.
pub(super) const CA_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// Lifetime of leaf certificates, like k3s: one year.
pub(super) const LEAF_LIFETIME_SECS: u64 = 365 * 24 * 3600;
/// A leaf this close to expiry is reissued at startup, as k3s does (90 days).
pub(super) const RENEW_BEFORE_SECS: u64 = 90 * 24 * 3600;
/// Certificates start an hour in the past so nodes with a slow clock accept them.
const BACKDATE_SECS: u64 = 3600;

/// Seconds since the Unix epoch; a clock before 1970 counts as the epoch.
pub(super) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Sets validity to [now - backdate, now + lifetime].
pub(super) fn set_validity(params: &mut CertificateParams, now: u64, lifetime: u64) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(now.saturating_sub(BACKDATE_SECS));
    params.not_after = epoch + Duration::from_secs(now.saturating_add(lifetime));
}

/// A random positive 128-bit serial, so reissuing with the same key never
/// repeats an (issuer, serial) pair (rcgen's default derives it from the key).
pub(super) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| PkiError::Random)?;
    // Positive and minimal in DER: top bit clear, first octet non-zero.
    bytes[0] = 0x40 | (bytes[0] & 0x3f);
    Ok(SerialNumber::from_slice(&bytes))
}

/// A fresh ECDSA P-256 key.
pub(super) fn generate_key() -> Result<KeyPair, PkiError> {
    KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Generate {
        what: "an ECDSA P-256 key",
        source,
    })
}

/// Parses a PKCS#8 PEM ECDSA P-256 key read from `path`.
pub(super) fn parse_key(pem: &str, path: &Path) -> Result<KeyPair, PkiError> {
    let key = KeyPair::from_pem(pem).map_err(|_| PkiError::InvalidPem {
        path: path.to_path_buf(),
        what: "PKCS#8 private key",
    })?;
    if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
        return Err(PkiError::invalid_file(path, "is not an ECDSA P-256 key"));
    }
    Ok(key)
}

/// The wanted shape of a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LeafSpec {
    /// A client certificate: CN = user, one O per group, clientAuth.
    Client {
        /// The user name (CN).
        user: String,
        /// The groups (O), in order.
        groups: Vec<String>,
    },
    /// A serving certificate with the given SANs, serverAuth.
    Serving {
        /// The subject CN (informational; clients check SANs).
        common_name: String,
        /// DNS SANs.
        dns: Vec<String>,
        /// IP SANs.
        ips: Vec<IpAddr>,
    },
}

impl LeafSpec {
    /// rcgen parameters for this leaf, valid from `now` for a year. Client
    /// subjects carry only the CN here; the groups are spliced in afterwards.
    pub(super) fn params(&self, now: u64) -> Result<CertificateParams, PkiError> {
        let mut params = CertificateParams::default();
        set_validity(&mut params, now, LEAF_LIFETIME_SECS);
        params.serial_number = Some(random_serial()?);
        params.is_ca = IsCa::ExplicitNoCa;
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cn = match self {
            LeafSpec::Client { user, .. } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                user
            }
            LeafSpec::Serving {
                common_name,
                dns,
                ips,
            } => {
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.subject_alt_names = san_list(dns, ips)?;
                common_name
            }
        };
        params
            .distinguished_name
            .push(DnType::CommonName, cn.as_str());
        Ok(params)
    }
}

fn san_list(dns: &[String], ips: &[IpAddr]) -> Result<Vec<SanType>, PkiError> {
    let mut sans = Vec::with_capacity(dns.len() + ips.len());
    for name in dedup(dns) {
        let ia5 = name
            .clone()
            .try_into()
            .map_err(|_| PkiError::InvalidInput {
                what: "DNS name",
                reason: format!("{name:?} is not ASCII"),
            })?;
        sans.push(SanType::DnsName(ia5));
    }
    for ip in dedup(ips) {
        sans.push(SanType::IpAddress(*ip));
    }
    Ok(sans)
}

fn dedup<T: PartialEq>(items: &[T]) -> Vec<&T> {
    let mut out: Vec<&T> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// Why the stored leaf `cert_pem` (with `key`) no longer satisfies `spec`
/// under the CA whose public point is `ca_point`, or `None` if it still does.
pub(super) fn leaf_problem(
    cert_pem: &str,
    key: &KeyPair,
    spec: &LeafSpec,
    ca_point: &[u8],
    now: u64,
) -> Option<String> {
    let der = match super::tls::first_cert(cert_pem) {
        Ok(der) => der,
        Err(reason) => return Some(reason),
    };
    let cert = match X509Certificate::from_der(&der) {
        Ok((_, cert)) => cert,
        Err(e) => return Some(format!("cannot parse certificate: {e}")),
    };
    let signed = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, ca_point)
        .verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data);
    if signed.is_err() {
        return Some("not signed by the current cluster CA".to_string());
    }
    if cert.public_key().raw != super::ca::spki_of(key).as_slice() {
        return Some("does not match its private key".to_string());
    }
    let not_after = u64::try_from(cert.validity().not_after.timestamp()).unwrap_or(0);
    if not_after < now.saturating_add(RENEW_BEFORE_SECS) {
        return Some("expires within 90 days".to_string());
    }
    match spec {
        LeafSpec::Client { user, groups } => match super::tls::identity_of(&cert) {
            Ok((u, g)) if u == *user && g == *groups => None,
            _ => Some(format!("subject is not CN={user} O={}", groups.join(","))),
        },
        LeafSpec::Serving { dns, ips, .. } => missing_san(&cert, dns, ips),
    }
}

fn missing_san(cert: &X509Certificate<'_>, dns: &[String], ips: &[IpAddr]) -> Option<String> {
    let mut have_dns = Vec::new();
    let mut have_ips = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => have_dns.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(raw) => have_ips.extend(ip_from_bytes(raw)),
                _ => {}
            }
        }
    }
    let missing_dns = dns
        .iter()
        .find(|d| !have_dns.contains(&d.to_ascii_lowercase()));
    if let Some(d) = missing_dns {
        return Some(format!("lacks SAN {d}"));
    }
    ips.iter()
        .find(|ip| !have_ips.contains(ip))
        .map(|ip| format!("lacks SAN {ip}"))
}

fn ip_from_bytes(raw: &[u8]) -> Option<IpAddr> {
    match raw.len() {
        4 => <[u8; 4]>::try_from(raw).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(raw).ok().map(IpAddr::from),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serving_params_deduplicate_sans() {
        let spec = LeafSpec::Serving {
            common_name: "kube-apiserver".into(),
            dns: vec!["a".into(), "a".into(), "b".into()],
            ips: vec!["127.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap()],
        };
        let params = spec.params(1_700_000_000).unwrap();
        assert_eq!(params.subject_alt_names.len(), 3);
        assert_eq!(
            params.extended_key_usages,
            vec![ExtendedKeyUsagePurpose::ServerAuth]
        );
    }

    #[test]
    fn non_ascii_dns_name_is_rejected() {
        let spec = LeafSpec::Serving {
            common_name: "x".into(),
            dns: vec!["bücher.example".into()],
            ips: vec![],
        };
        let err = spec.params(0).unwrap_err();
        assert!(err.to_string().contains("bücher"), "{err}");
    }

    #[test]
    fn random_serials_are_positive_and_distinct() {
        let a = random_serial().unwrap().to_bytes();
        let b = random_serial().unwrap().to_bytes();
        assert_ne!(a, b);
        assert_eq!(a[0] & 0xc0, 0x40);
    }

    #[test]
    fn ip_from_bytes_handles_both_families() {
        assert_eq!(
            ip_from_bytes(&[10, 43, 0, 1]),
            Some("10.43.0.1".parse().unwrap())
        );
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(ip_from_bytes(&v6), Some("::1".parse().unwrap()));
        assert_eq!(ip_from_bytes(&[1, 2, 3]), None);
    }

    #[test]
    fn parse_key_rejects_garbage_naming_the_file() {
        let err = parse_key("nope", Path::new("/tmp/x.key")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/tmp/x.key is not a valid PEM PKCS#8 private key"
        );
    }
}
