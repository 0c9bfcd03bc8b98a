//! Lifecycle tests of [`ClusterPki`]: creation, reuse, reissue, and the
//! errors for damaged roots of trust. Also the shared [`TestDir`] helper.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use x509_parser::prelude::{FromDer, X509Certificate};

use super::*;

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TestDir(PathBuf);

impl TestDir {
    pub(crate) fn new(tag: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("kelp-pki-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TestDir(path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

const NOW: u64 = 1_750_000_000;

pub(crate) fn config(dir: &Path) -> PkiConfig {
    PkiConfig {
        tls_dir: dir.join("server/tls"),
        dns_names: [
            "node1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "localhost",
        ]
        .map(String::from)
        .to_vec(),
        ips: ["127.0.0.1", "::1", "192.168.1.10", "10.43.0.1"]
            .map(|ip| ip.parse().unwrap())
            .to_vec(),
    }
}

fn der_of(pem: &str) -> Vec<u8> {
    tls::first_cert(pem).unwrap().to_vec()
}

fn with_cert<T>(pem: &str, f: impl FnOnce(&X509Certificate<'_>) -> T) -> T {
    let der = der_of(pem);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    f(&cert)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_load_creates_every_file_with_private_key_modes() {
    let dir = TestDir::new("create");
    let cfg = config(dir.path());
    let pki = ClusterPki::load_or_create(&cfg).unwrap();
    let tls = &cfg.tls_dir;
    for key in [
        "server-ca.key",
        "serving-kube-apiserver.key",
        "client-admin.key",
        "service.key",
    ] {
        assert_eq!(mode(&tls.join(key)), 0o600, "{key}");
    }
    for cert in [
        "server-ca.crt",
        "serving-kube-apiserver.crt",
        "client-admin.crt",
    ] {
        assert_eq!(mode(&tls.join(cert)), 0o644, "{cert}");
    }
    assert_eq!(mode(tls), 0o700);
    assert_eq!(
        fs::read_to_string(tls.join("server-ca.crt")).unwrap(),
        pki.ca_pem()
    );
    assert_eq!(pki.changes().len(), 5, "{:?}", pki.changes());
    let pem = fs::read_to_string(tls.join("service.key")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn reload_reuses_ca_and_every_credential() {
    let dir = TestDir::new("reload");
    let cfg = config(dir.path());
    let first = ClusterPki::load_or_create(&cfg).unwrap();
    let second = ClusterPki::load_or_create(&cfg).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_eq!(first.serving_cert(), second.serving_cert());
    assert_eq!(first.admin_cert(), second.admin_cert());
    assert!(second.changes().is_empty(), "{:?}", second.changes());
    let claims = ServiceAccountClaims::new("ns", "sa", "u", &DEFAULT_API_AUDIENCES, NOW, 600);
    let token = first.sign_service_account_token(&claims).unwrap();
    assert_eq!(
        second.verify_service_account_token(&token, NOW).unwrap(),
        claims
    );
    assert_eq!(first.service_account_jwks(), second.service_account_jwks());
}

#[test]
fn new_san_reissues_serving_cert_from_the_same_ca_and_key() {
    let dir = TestDir::new("san");
    let mut cfg = config(dir.path());
    let first = ClusterPki::load_or_create_at(&cfg, NOW).unwrap();
    cfg.dns_names.push("api.example.com".into());
    cfg.ips.push("192.168.1.77".parse().unwrap());
    let second = ClusterPki::load_or_create_at(&cfg, NOW).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_ne!(first.serving_cert().0, second.serving_cert().0);
    assert_eq!(first.serving_cert().1, second.serving_cert().1);
    assert_eq!(first.admin_cert(), second.admin_cert());
    assert_eq!(second.changes().len(), 1);
    assert!(
        second.changes()[0].contains("lacks SAN api.example.com"),
        "{:?}",
        second.changes()
    );
    let new_ip: IpAddr = "192.168.1.77".parse().unwrap();
    let ca_subject = with_cert(second.ca_pem(), |c| c.subject().to_string());
    with_cert(second.serving_cert().0, |cert| {
        assert_eq!(cert.issuer().to_string(), ca_subject);
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let text = format!("{:?}", san.value.general_names);
        assert!(text.contains("api.example.com"), "{text}");
        assert!(
            text.contains(&format!("{:?}", new_ip_bytes(new_ip))),
            "{text}"
        );
    });
    // A SAN that is dropped again does not force another reissue.
    cfg.dns_names.pop();
    let third = ClusterPki::load_or_create_at(&cfg, NOW).unwrap();
    assert!(third.changes().is_empty(), "{:?}", third.changes());
}

fn new_ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    }
}

#[test]
fn leaves_near_expiry_are_renewed_at_startup() {
    let dir = TestDir::new("expiry");
    let cfg = config(dir.path());
    let first = ClusterPki::load_or_create_at(&cfg, NOW).unwrap();
    let later = NOW + 300 * 24 * 3600;
    let second = ClusterPki::load_or_create_at(&cfg, later).unwrap();
    assert_eq!(first.ca_pem(), second.ca_pem());
    assert_ne!(first.serving_cert().0, second.serving_cert().0);
    assert_ne!(first.admin_cert().0, second.admin_cert().0);
    assert!(
        second
            .changes()
            .iter()
            .all(|c| c.contains("expires within 90 days"))
    );
    let not_after = with_cert(second.admin_cert().0, |c| {
        c.validity().not_after.timestamp()
    });
    assert_eq!(not_after as u64, later + certs::LEAF_LIFETIME_SECS);
}

#[test]
fn leaves_of_a_replaced_ca_are_reissued() {
    let dir = TestDir::new("newca");
    let cfg = config(dir.path());
    let first = ClusterPki::load_or_create(&cfg).unwrap();
    fs::remove_file(cfg.tls_dir.join("server-ca.crt")).unwrap();
    fs::remove_file(cfg.tls_dir.join("server-ca.key")).unwrap();
    let second = ClusterPki::load_or_create(&cfg).unwrap();
    assert_ne!(first.ca_pem(), second.ca_pem());
    let reissued: Vec<_> = second
        .changes()
        .iter()
        .filter(|c| c.contains("not signed"))
        .collect();
    assert_eq!(reissued.len(), 2, "{:?}", second.changes());
}

#[test]
fn ca_cert_without_key_is_an_error_naming_both_files() {
    let dir = TestDir::new("nokey");
    let cfg = config(dir.path());
    ClusterPki::load_or_create(&cfg).unwrap();
    fs::remove_file(cfg.tls_dir.join("server-ca.key")).unwrap();
    let err = ClusterPki::load_or_create(&cfg).err().unwrap().to_string();
    assert!(err.contains("server-ca.crt exists but"), "{err}");
    assert!(err.contains("server-ca.key is missing"), "{err}");
}

#[test]
fn ca_key_without_cert_recreates_the_cert_and_keeps_leaves() {
    let dir = TestDir::new("nocert");
    let cfg = config(dir.path());
    let first = ClusterPki::load_or_create(&cfg).unwrap();
    fs::remove_file(cfg.tls_dir.join("server-ca.crt")).unwrap();
    let second = ClusterPki::load_or_create(&cfg).unwrap();
    assert_eq!(second.changes().len(), 1, "{:?}", second.changes());
    assert!(second.changes()[0].contains("server-ca.crt"));
    let spki = |pem: &str| with_cert(pem, |c| c.public_key().raw.to_vec());
    assert_eq!(spki(first.ca_pem()), spki(second.ca_pem()));
    assert_eq!(first.serving_cert(), second.serving_cert());
}

#[test]
fn corrupt_ca_cert_is_an_error_naming_the_file() {
    let dir = TestDir::new("corrupt");
    let cfg = config(dir.path());
    ClusterPki::load_or_create(&cfg).unwrap();
    let path = cfg.tls_dir.join("server-ca.crt");
    fs::write(&path, "garbage").unwrap();
    let err = ClusterPki::load_or_create(&cfg).err().unwrap().to_string();
    assert_eq!(
        err,
        format!("{} is not a valid PEM certificate", path.display())
    );
}

#[test]
fn ca_cert_of_another_key_is_an_error() {
    let dir = TestDir::new("mismatch");
    let other = TestDir::new("mismatch-other");
    let cfg = config(dir.path());
    ClusterPki::load_or_create(&cfg).unwrap();
    let foreign = ClusterPki::load_or_create(&config(other.path())).unwrap();
    fs::write(cfg.tls_dir.join("server-ca.crt"), foreign.ca_pem()).unwrap();
    let err = ClusterPki::load_or_create(&cfg).err().unwrap().to_string();
    assert!(
        err.contains("does not match the key in server-ca.key"),
        "{err}"
    );
}

#[test]
fn unusable_leaf_key_is_replaced() {
    let dir = TestDir::new("leafkey");
    let cfg = config(dir.path());
    let first = ClusterPki::load_or_create(&cfg).unwrap();
    fs::write(cfg.tls_dir.join("client-admin.key"), "garbage").unwrap();
    let second = ClusterPki::load_or_create(&cfg).unwrap();
    assert_ne!(first.admin_cert().1, second.admin_cert().1);
    assert!(
        second.changes()[0].contains("with a new key"),
        "{:?}",
        second.changes()
    );
    let third = ClusterPki::load_or_create(&cfg).unwrap();
    assert_eq!(second.admin_cert(), third.admin_cert());
}

#[test]
fn admin_cert_carries_system_admin_identity() {
    let dir = TestDir::new("admin");
    let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
    let (user, groups) = client_identity(&der_of(pki.admin_cert().0)).unwrap();
    assert_eq!(user, "system:admin");
    assert_eq!(groups, vec!["system:masters"]);
}

#[test]
fn client_cert_has_one_o_per_group_client_auth_and_a_year() {
    let dir = TestDir::new("client");
    let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
    let (cert, key) = pki
        .issue_client_cert("system:node:n1", &["system:nodes", "extra"])
        .unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    let (user, groups) = client_identity(&der_of(&cert)).unwrap();
    assert_eq!(user, "system:node:n1");
    assert_eq!(groups, vec!["system:nodes", "extra"]);
    with_cert(&cert, |c| {
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        let v = c.validity();
        let life = v.not_after.timestamp() - v.not_before.timestamp();
        assert_eq!(life as u64, certs::LEAF_LIFETIME_SECS + 3600);
        assert!(!c.is_ca());
        // Go rejects certificates whose inner and outer algorithms differ.
        assert_eq!(c.signature_algorithm, c.tbs_certificate.signature);
    });
    with_cert(pki.ca_pem(), |c| {
        let v = c.validity();
        let life = v.not_after.timestamp() - v.not_before.timestamp();
        assert_eq!(life as u64, certs::CA_LIFETIME_SECS + 3600);
        assert!(c.is_ca());
    });
    assert!(pki.issue_client_cert("", &[]).is_err());
}

#[test]
fn issued_serving_cert_carries_requested_sans() {
    let dir = TestDir::new("kubelet");
    let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
    let ip: IpAddr = "192.168.1.20".parse().unwrap();
    let (cert, _key) = pki.issue_serving_cert(&["node2".into()], &[ip]).unwrap();
    with_cert(&cert, |c| {
        let eku = c.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth);
        let names = format!("{:?}", c.subject_alternative_name().unwrap().unwrap().value);
        assert!(names.contains("node2"), "{names}");
        assert_eq!(c.subject().to_string(), "CN=node2");
    });
    assert!(pki.issue_serving_cert(&[], &[]).is_err());
}

#[test]
fn client_identity_rejects_garbage_and_missing_cn() {
    assert!(matches!(
        client_identity(b"nope"),
        Err(PkiError::ClientCertificate(_))
    ));
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "only-a-group");
    let cert = params.self_signed(&key).unwrap();
    let err = client_identity(cert.der()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid client certificate: subject has no CN"
    );
}

#[test]
fn join_token_pins_the_stored_ca() {
    let dir = TestDir::new("join");
    let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
    let token = join_token(pki.ca_pem(), "secret");
    let (hash, secret) = parse_join_token(&token).unwrap();
    assert_eq!(hash.as_deref(), Some(ca_hash(pki.ca_pem()).as_str()));
    assert_eq!(secret, "secret");
}
