//! The cluster CA, and the leaf credentials it keeps on disk.
//!
//! One self-signed ECDSA P-256 CA (`server-ca.crt`/`.key`) signs both serving
//! and client certificates, so the API server trusts exactly the CA that
//! clients trust. The CA is a root of trust: a half-present or unreadable pair
//! is an error naming the file, never silently replaced (that would cut off
//! every node). The one exception is a key without its certificate — a crash
//! between the two writes — where the certificate is recreated from the key,
//! since nobody can have trusted a certificate that was never written. Leaves
//! are derived state and are reissued whenever they no longer fit.

use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PublicKeyData,
};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::certs::{
    CA_LIFETIME_SECS, LeafSpec, generate_key, leaf_problem, parse_key, random_serial, set_validity,
};
use super::error::PkiError;
use super::files::{CERT_MODE, KEY_MODE, read_optional, write_private};
use super::{der, tls};

/// File name of the CA certificate (the k3s name).
pub(super) const CA_CERT_FILE: &str = "server-ca.crt";
/// File name of the CA key.
pub(super) const CA_KEY_FILE: &str = "server-ca.key";

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Credential {
    pub(super) cert_pem: String,
    pub(super) key_pem: String,
}

/// The loaded CA: its certificate and two views of its key (rcgen issues,
/// ring re-signs client certificates with spliced subjects).
pub(super) struct CertAuthority {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    signer: EcdsaKeyPair,
}

/// The DER SubjectPublicKeyInfo of a key.
pub(super) fn spki_of(key: &KeyPair) -> Vec<u8> {
    key.subject_public_key_info()
}

impl CertAuthority {
    /// Loads the CA from `dir`, creating it on first start. Appends a line to
    /// `changes` for every file written.
    pub(super) fn load_or_create(
        dir: &Path,
        now: u64,
        changes: &mut Vec<String>,
    ) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_text = read_optional(&cert_path)?;
        let key = match (&cert_text, read_optional(&key_path)?) {
            (Some(_), None) => {
                return Err(PkiError::IncompletePair {
                    present: cert_path,
                    missing: key_path,
                });
            }
            (_, Some(text)) => parse_key(&text, &key_path)?,
            (None, None) => {
                let key = generate_key()?;
                write_private(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
                changes.push(format!("created {}", key_path.display()));
                key
            }
        };
        let cert_pem = match cert_text {
            Some(text) => text,
            None => {
                let pem = self_signed(&key, now)?;
                write_private(&cert_path, pem.as_bytes(), CERT_MODE)?;
                changes.push(format!("created {}", cert_path.display()));
                pem
            }
        };
        Self::from_parts(cert_pem, key, &cert_path)
    }

    /// Loads an existing CA from `dir`; never creates one.
    pub(super) fn load(dir: &Path) -> Result<Self, PkiError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let missing = |path: &Path| PkiError::MissingCa {
            dir: dir.to_path_buf(),
            missing: path.to_path_buf(),
        };
        let cert_pem = read_optional(&cert_path)?.ok_or_else(|| missing(&cert_path))?;
        let key_text = read_optional(&key_path)?.ok_or_else(|| missing(&key_path))?;
        let key = parse_key(&key_text, &key_path)?;
        Self::from_parts(cert_pem, key, &cert_path)
    }

    fn from_parts(cert_pem: String, key: KeyPair, cert_path: &Path) -> Result<Self, PkiError> {
        let cert_der = tls::first_cert(&cert_pem).map_err(|_| PkiError::InvalidPem {
            path: cert_path.to_path_buf(),
            what: "certificate",
        })?;
        let (_, cert) = X509Certificate::from_der(&cert_der).map_err(|e| {
            PkiError::invalid_file(cert_path, format!("cannot parse certificate: {e}"))
        })?;
        if cert.public_key().raw != spki_of(&key).as_slice() {
            return Err(PkiError::invalid_file(
                cert_path,
                format!("does not match the key in {CA_KEY_FILE}"),
            ));
        }
        if !cert.is_ca() {
            return Err(PkiError::invalid_file(cert_path, "is not a CA certificate"));
        }
        let signer = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            key.serialized_der(),
            &SystemRandom::new(),
        )
        .map_err(|_| PkiError::Crypto("load the CA key"))?;
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|e| {
            PkiError::invalid_file(cert_path, format!("cannot be used as an issuer: {e}"))
        })?;
        Ok(CertAuthority {
            cert_pem,
            cert_der,
            issuer,
            signer,
        })
    }

    /// The CA certificate as stored (PEM).
    pub(super) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate (DER).
    pub(super) fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues a leaf for `key` as described by `spec`, returning its PEM.
    pub(super) fn issue(
        &self,
        spec: &LeafSpec,
        key: &KeyPair,
        now: u64,
    ) -> Result<String, PkiError> {
        let cert = spec
            .params(now)?
            .signed_by(key, &self.issuer)
            .map_err(|source| PkiError::Generate {
                what: "a certificate",
                source,
            })?;
        match spec {
            LeafSpec::Client { user, groups } => {
                let groups: Vec<&str> = groups.iter().map(String::as_str).collect();
                let subject = der::client_subject(user, &groups);
                let der = der::resign_with_subject(cert.der(), &subject, &self.signer)?;
                Ok(der::pem_encode("CERTIFICATE", &der))
            }
            LeafSpec::Serving { .. } => Ok(cert.pem()),
        }
    }

    /// Issues a leaf with a fresh key.
    pub(super) fn issue_with_new_key(
        &self,
        spec: &LeafSpec,
        now: u64,
    ) -> Result<Credential, PkiError> {
        let key = generate_key()?;
        Ok(Credential {
            cert_pem: self.issue(spec, &key, now)?,
            key_pem: key.serialize_pem(),
        })
    }

    /// Loads `<base>.crt`/`<base>.key` from `dir` if they still fit `spec`;
    /// otherwise reissues (keeping a usable key) and records why in `changes`.
    pub(super) fn ensure_leaf(
        &self,
        dir: &Path,
        base: &str,
        spec: &LeafSpec,
        now: u64,
        changes: &mut Vec<String>,
    ) -> Result<Credential, PkiError> {
        let cert_path = dir.join(format!("{base}.crt"));
        let key_path = dir.join(format!("{base}.key"));
        let key_text = read_optional(&key_path)?;
        let key = key_text
            .as_deref()
            .and_then(|t| parse_key(t, &key_path).ok());
        let cert_text = read_optional(&cert_path)?;
        let ca_point = self.issuer.key().public_key_raw();
        let reason = match (&key, &cert_text, key_text) {
            (Some(key), Some(cert), Some(key_pem)) => {
                match leaf_problem(cert, key, spec, ca_point, now) {
                    None => {
                        let cert_pem = cert.clone();
                        return Ok(Credential { cert_pem, key_pem });
                    }
                    Some(problem) => format!("reissued {}: {problem}", cert_path.display()),
                }
            }
            (None, _, Some(_)) => format!(
                "reissued {} with a new key: {} is unusable",
                cert_path.display(),
                key_path.display()
            ),
            _ => format!("created {}", cert_path.display()),
        };
        let key = match key {
            Some(key) => key,
            None => {
                let key = generate_key()?;
                write_private(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
                key
            }
        };
        let cert_pem = self.issue(spec, &key, now)?;
        write_private(&cert_path, cert_pem.as_bytes(), CERT_MODE)?;
        changes.push(reason);
        Ok(Credential {
            cert_pem,
            key_pem: key.serialize_pem(),
        })
    }
}

/// A new self-signed CA certificate for `key`, named like k3s's
/// (`<name>-server-ca@<unix time>`) so successive CAs are distinguishable.
fn self_signed(key: &KeyPair, now: u64) -> Result<String, PkiError> {
    let mut params = CertificateParams::default();
    set_validity(&mut params, now, CA_LIFETIME_SECS);
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
        .distinguished_name
        .push(DnType::CommonName, format!("kelp-server-ca@{now}"));
    let cert = params
        .self_signed(key)
        .map_err(|source| PkiError::Generate {
            what: "the cluster CA certificate",
            source,
        })?;
    Ok(cert.pem())
}
