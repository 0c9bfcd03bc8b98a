//! The cluster PKI: CA, serving and client certificates, service account
//! token keys, kubeconfigs and join tokens.
//!
//! Everything lives under `<data>/server/tls/` with k3s's file names and is
//! reused on restart ([`ClusterPki::load_or_create`]):
//!
//! | file | what |
//! | --- | --- |
//! | `server-ca.crt`/`.key` | the one cluster CA (ten years) |
//! | `serving-kube-apiserver.crt`/`.key` | the API server's serving certificate |
//! | `client-admin.crt`/`.key` | `CN=system:admin, O=system:masters` |
//! | `service.key` | ES256 service account token key (PKCS#8) |
//!
//! k3s keeps separate server and client CAs; kelp uses **one CA for both**,
//! so `server-ca.crt` is also what client certificates chain to and what the
//! join token pins. All keys are ECDSA P-256, written with mode 0600,
//! certificates 0644, always atomically.
//!
//! Roots of trust (CA, service account key) are never replaced behind the
//! operator's back: unusable files are errors that name the file. Leaves are
//! reissued from the same CA when they lack a now-requested SAN, expire within
//! 90 days, or no longer match their key or the CA; [`ClusterPki::changes`]
//! says what was written, for the caller to log.

mod ca;
mod certs;
mod der;
mod error;
mod files;
mod kubeconfig;
mod node_password;
mod service_account;
mod tls;
mod token;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use error::PkiError;
pub use files::write_private;
pub use kubeconfig::kubeconfig;
pub use node_password::{hash_node_password, verify_node_password};
pub use service_account::{
    DEFAULT_API_AUDIENCES, KubernetesClaims, ObjectRef, SERVICE_ACCOUNT_ISSUER,
    ServiceAccountClaims,
};
pub use tls::{
    ALPN_PROTOCOLS, client_config_for_ca, client_identity, kubelet_server_config_for_ca,
    unpinned_client_config, unpinned_client_config_with,
};
pub use token::{ca_hash, join_token, parse_join_token, random_secret, split_bootstrap_token};

use ca::{CertAuthority, Credential};
use certs::{LeafSpec, now_unix};
use service_account::ServiceAccountKey;

/// Base name of the API server's serving certificate files.
const SERVING_BASE: &str = "serving-kube-apiserver";
/// Base name of the admin client certificate files.
const ADMIN_BASE: &str = "client-admin";
/// File name of the service account signing key.
const SERVICE_KEY_FILE: &str = "service.key";
/// The admin user and its group.
const ADMIN_USER: &str = "system:admin";
const ADMIN_GROUP: &str = "system:masters";

/// Where the PKI lives and which names the API serving certificate must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PkiConfig {
    /// The TLS directory, `<data>/server/tls`.
    pub tls_dir: PathBuf,
    /// DNS SANs: hostname, kubernetes, kubernetes.default, kubernetes.default.svc,
    /// kubernetes.default.svc.cluster.local, localhost, and every --tls-san.
    pub dns_names: Vec<String>,
    /// IP SANs: 127.0.0.1, ::1, the node IP, the kubernetes service IP (10.43.0.1).
    pub ips: Vec<IpAddr>,
}

/// TLS for a kubelet-like server on this machine (`kelp sim nodes`): a
/// fresh serving certificate for `ips`, signed by the existing cluster CA in
/// `tls_dir` (`<data>/server/tls`), which is never created or changed here.
/// The apiserver verifies kubelets against that CA.
pub fn kubelet_serving_tls(
    tls_dir: &std::path::Path,
    ips: &[IpAddr],
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let ca = CertAuthority::load(tls_dir)?;
    let common_name = ips
        .first()
        .map_or_else(|| "kubelet".to_string(), |ip| ip.to_string());
    let spec = LeafSpec::Serving {
        common_name,
        dns: Vec::new(),
        ips: ips.to_vec(),
    };
    let cred = ca.issue_with_new_key(&spec, now_unix())?;
    tls::kubelet_server_config(ca.cert_der(), &cred.cert_pem, &cred.key_pem)
}

/// A client certificate and key (PEM) for `user` in `groups`, signed by
/// the existing cluster CA in `tls_dir`, which is never created or changed
/// here: for tools and tests that act as a node or a component.
pub fn client_cert_from_ca(
    tls_dir: &std::path::Path,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), PkiError> {
    client_leaf(&CertAuthority::load(tls_dir)?, user, groups)
}

fn client_leaf(
    ca: &CertAuthority,
    user: &str,
    groups: &[&str],
) -> Result<(String, String), PkiError> {
    if user.is_empty() {
        return Err(PkiError::InvalidInput {
            what: "user name",
            reason: "must not be empty".to_string(),
        });
    }
    let spec = LeafSpec::Client {
        user: user.to_string(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    let cred = ca.issue_with_new_key(&spec, now_unix())?;
    Ok((cred.cert_pem, cred.key_pem))
}

/// How long before expiry a certificate is renewed (kelp's own certificates
/// at each start, a node's through the join endpoint).
pub const RENEW_BEFORE_SECS: u64 = certs::RENEW_BEFORE_SECS;

/// Seconds until the first certificate in `cert_pem` expires (negative
/// once expired), or None if it cannot be read.
pub fn seconds_until_expiry(cert_pem: &str) -> Option<i64> {
    use x509_parser::prelude::FromDer;
    let der = tls::first_cert(cert_pem).ok()?;
    let (_, cert) = x509_parser::prelude::X509Certificate::from_der(&der).ok()?;
    Some(cert.validity().not_after.timestamp() - now_unix() as i64)
}

/// Everything the server needs, loaded from or created under `<data>/server/tls/`.
pub struct ClusterPki {
    ca: CertAuthority,
    serving: Credential,
    admin: Credential,
    service_account: ServiceAccountKey,
    changes: Vec<String>,
}

impl ClusterPki {
    /// Loads the PKI from `cfg.tls_dir`, creating what is missing and
    /// reissuing leaves that no longer fit (see the module docs).
    pub fn load_or_create(cfg: &PkiConfig) -> Result<Self, PkiError> {
        Self::load_or_create_at(cfg, now_unix())
    }

    /// [`ClusterPki::load_or_create`] as if the time were `now` (Unix seconds).
    pub fn load_or_create_at(cfg: &PkiConfig, now: u64) -> Result<Self, PkiError> {
        let dir = &cfg.tls_dir;
        create_private_dir(dir)?;
        let mut changes = Vec::new();
        let ca = CertAuthority::load_or_create(dir, now, &mut changes)?;
        let serving_spec = LeafSpec::Serving {
            common_name: "kube-apiserver".to_string(),
            dns: cfg.dns_names.clone(),
            ips: cfg.ips.clone(),
        };
        let serving = ca.ensure_leaf(dir, SERVING_BASE, &serving_spec, now, &mut changes)?;
        let admin_spec = LeafSpec::Client {
            user: ADMIN_USER.to_string(),
            groups: vec![ADMIN_GROUP.to_string()],
        };
        let admin = ca.ensure_leaf(dir, ADMIN_BASE, &admin_spec, now, &mut changes)?;
        let sa_path = dir.join(SERVICE_KEY_FILE);
        let (service_account, created) = ServiceAccountKey::load_or_create(&sa_path)?;
        if created {
            changes.push(format!("created {}", sa_path.display()));
        }
        Ok(ClusterPki {
            ca,
            serving,
            admin,
            service_account,
            changes,
        })
    }

    /// What the last load wrote ("created …", "reissued …: lacks SAN …"), for logging.
    pub fn changes(&self) -> &[String] {
        &self.changes
    }

    /// The cluster CA certificate (PEM), as stored in `server-ca.crt`.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The API server's serving certificate and key (PEM).
    pub fn serving_cert(&self) -> (&str, &str) {
        (&self.serving.cert_pem, &self.serving.key_pem)
    }

    /// The admin client certificate and key (PEM): CN=system:admin, O=system:masters.
    pub fn admin_cert(&self) -> (&str, &str) {
        (&self.admin.cert_pem, &self.admin.key_pem)
    }

    /// A client certificate signed by the cluster CA: CN = user, O = groups
    /// (one O per group), clientAuth EKU, 1 year, with a fresh key.
    pub fn issue_client_cert(
        &self,
        user: &str,
        groups: &[&str],
    ) -> Result<(String, String), PkiError> {
        client_leaf(&self.ca, user, groups)
    }

    /// Serving cert for another component (e.g. kubelet :10250) with SANs; the
    /// CN is the first DNS name (or IP).
    pub fn issue_serving_cert(
        &self,
        dns: &[String],
        ips: &[IpAddr],
    ) -> Result<(String, String), PkiError> {
        let common_name = match (dns.first(), ips.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => {
                return Err(PkiError::InvalidInput {
                    what: "serving certificate SANs",
                    reason: "at least one DNS name or IP is required".to_string(),
                });
            }
        };
        let spec = LeafSpec::Serving {
            common_name,
            dns: dns.to_vec(),
            ips: ips.to_vec(),
        };
        let cred = self.ca.issue_with_new_key(&spec, now_unix())?;
        Ok((cred.cert_pem, cred.key_pem))
    }

    /// rustls server config: the API serving cert; client certs are requested
    /// but optional (anonymous allowed — authn decides later), verified against
    /// the CA; ALPN ["h2", "http/1.1"]; TLS 1.2 and 1.3.
    pub fn server_tls_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        tls::server_config(
            self.ca.cert_der(),
            &self.serving.cert_pem,
            &self.serving.key_pem,
        )
    }

    /// rustls server config like [`ClusterPki::server_tls_config`] but presenting
    /// another serving certificate (e.g. one from [`ClusterPki::issue_serving_cert`]).
    pub fn server_tls_config_with(
        &self,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        tls::server_config(self.ca.cert_der(), cert_pem, key_pem)
    }

    /// rustls server config for a kubelet presenting `cert_pem`: client
    /// certificates from the cluster CA are required; http/1.1 only.
    pub fn kubelet_tls_config(
        &self,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        tls::kubelet_server_config(self.ca.cert_der(), cert_pem, key_pem)
    }

    /// rustls client config trusting the CA and presenting the given client
    /// cert. No ALPN is set.
    pub fn client_tls_config(
        &self,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        tls::client_config(self.ca.cert_der(), Some((cert_pem, key_pem)))
    }

    /// rustls client config trusting the CA and presenting no certificate.
    pub fn anonymous_client_tls_config(&self) -> Result<Arc<rustls::ClientConfig>, PkiError> {
        tls::client_config(self.ca.cert_der(), None)
    }

    /// ES256 JWT for a service account, with the key id in the header.
    pub fn sign_service_account_token(
        &self,
        claims: &ServiceAccountClaims,
    ) -> Result<String, PkiError> {
        self.service_account.sign(claims)
    }

    /// Verifies a service account token's signature, exp, nbf/iat (60 s leeway)
    /// and iss at `now_unix`. The audience is left to the caller.
    pub fn verify_service_account_token(
        &self,
        token: &str,
        now_unix: u64,
    ) -> Result<ServiceAccountClaims, PkiError> {
        self.service_account.verify(token, now_unix)
    }

    /// The service account public key as a JWK Set (for `/openid/v1/jwks`).
    pub fn service_account_jwks(&self) -> serde_json::Value {
        self.service_account.jwks()
    }

    /// The `kid` of service account tokens: unpadded base64url SHA-256 of the
    /// DER public key, as upstream computes it.
    pub fn service_account_key_id(&self) -> &str {
        self.service_account.key_id()
    }

    /// The service account public key (PEM SubjectPublicKeyInfo).
    pub fn service_account_public_key_pem(&self) -> String {
        self.service_account.public_key_pem()
    }
}

/// Creates the TLS directory readable by its owner only, like k3s.
fn create_private_dir(dir: &std::path::Path) -> Result<(), PkiError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PkiError::io("create directory", dir, e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| PkiError::io("set permissions on", dir, e))
}
