//! rustls configurations built on the cluster CA, and reading the identity
//! out of a verified client certificate.
//!
//! Everything uses rustls's *ring* provider explicitly (no process-wide default
//! provider is installed or needed). The server asks for a client certificate
//! but lets anonymous clients through: whether an unauthenticated request is
//! allowed is the authenticator's call, made later with the whole request in
//! view, exactly as kube-apiserver does. A certificate that *is* presented must
//! chain to the cluster CA or the handshake fails.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::error::PkiError;

/// ALPN protocols offered by the API server, preferred first.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

const VERSIONS: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The first certificate in a PEM text; the error says what was wrong.
pub(super) fn first_cert(pem: &str) -> Result<CertificateDer<'static>, String> {
    let mut certs = CertificateDer::pem_slice_iter(pem.as_bytes());
    match certs.next() {
        Some(Ok(cert)) => Ok(cert),
        Some(Err(e)) => Err(format!("malformed PEM certificate: {e}")),
        None => Err("no PEM certificate found".to_string()),
    }
}

fn cert_chain(pem: &str, what: &'static str) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(pem.as_bytes()).collect();
    match certs {
        Ok(certs) if !certs.is_empty() => Ok(certs),
        Ok(_) => Err(PkiError::InvalidInput {
            what,
            reason: "no PEM certificate found".to_string(),
        }),
        Err(e) => Err(PkiError::InvalidInput {
            what,
            reason: e.to_string(),
        }),
    }
}

fn private_key(pem: &str, what: &'static str) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::InvalidInput {
        what,
        reason: e.to_string(),
    })
}

fn roots(ca: &CertificateDer<'static>) -> Result<RootCertStore, PkiError> {
    let mut store = RootCertStore::empty();
    store.add(ca.clone())?;
    Ok(store)
}

/// Server config presenting `cert_pem`/`key_pem`, optionally verifying
/// client certificates against `ca`, offering h2 and http/1.1.
pub(super) fn server_config(
    ca: &CertificateDer<'static>,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, PkiError> {
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            cert_chain(cert_pem, "serving certificate PEM")?,
            private_key(key_pem, "serving key PEM")?,
        )?;
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Server config for the kubelet: like [`server_config`] but a client
/// certificate from `ca` is required (the kubelet serves only the
/// apiserver and admins), and only http/1.1 is offered because exec and
/// port-forward need HTTP/1.1 upgrades.
pub(super) fn kubelet_server_config(
    ca: &CertificateDer<'static>,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, PkiError> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            cert_chain(cert_pem, "kubelet serving certificate PEM")?,
            private_key(key_pem, "kubelet serving key PEM")?,
        )?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Client config trusting only `ca`, presenting `identity` (cert PEM, key
/// PEM) when given. No ALPN is set: the caller knows which HTTP it speaks.
pub(super) fn client_config(
    ca: &CertificateDer<'static>,
    identity: Option<(&str, &str)>,
) -> Result<Arc<ClientConfig>, PkiError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .with_root_certificates(roots(ca)?);
    let config = match identity {
        Some((cert_pem, key_pem)) => builder.with_client_auth_cert(
            cert_chain(cert_pem, "client certificate PEM")?,
            private_key(key_pem, "client key PEM")?,
        )?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Client config for a node that pinned the cluster CA (`ca_pem`, from
/// `/cacerts`), presenting `identity` when given.
pub fn client_config_for_ca(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<Arc<ClientConfig>, PkiError> {
    let ca = first_cert(ca_pem).map_err(|reason| PkiError::InvalidInput {
        what: "cluster CA PEM",
        reason,
    })?;
    client_config(&ca, identity)
}

/// Kubelet server config (see [`kubelet_server_config`]) for a node that
/// holds the CA only as PEM.
pub fn kubelet_server_config_for_ca(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ServerConfig>, PkiError> {
    let ca = first_cert(ca_pem).map_err(|reason| PkiError::InvalidInput {
        what: "cluster CA PEM",
        reason,
    })?;
    kubelet_server_config(&ca, cert_pem, key_pem)
}

/// Client config that accepts any server certificate: only for fetching
/// `/cacerts` before a join, whose answer is then checked against the
/// CA hash in the token (nothing else is sent or believed over it).
pub fn unpinned_client_config() -> Result<Arc<ClientConfig>, PkiError> {
    unpinned_client_config_with(None)
}

/// [`unpinned_client_config`] presenting `identity` (certificate and key
/// PEM): an APIService with `insecureSkipTLSVerify` still gets the
/// front-proxy certificate, which is what it checks callers by.
pub fn unpinned_client_config_with(
    identity: Option<(&str, &str)>,
) -> Result<Arc<ClientConfig>, PkiError> {
    let verifier = Arc::new(AnyServer(provider()));
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match identity {
        Some((cert_pem, key_pem)) => builder.with_client_auth_cert(
            cert_chain(cert_pem, "client certificate PEM")?,
            private_key(key_pem, "client key PEM")?,
        )?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any certificate, but still checks that the server holds its
/// key (so a handshake is a real one).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The identity in a verified client certificate (DER): CN → user, O → groups.
///
/// As in Go's `crypto/x509`, the last CN wins if several are present; every O
/// is a group, in certificate order. A certificate without a CN has no user
/// and is an error (upstream treats it as "not authenticated").
pub fn client_identity(cert_der: &[u8]) -> Result<(String, Vec<String>), PkiError> {
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| PkiError::ClientCertificate(format!("cannot parse: {e}")))?;
    identity_of(&cert)
}

/// [`client_identity`] on an already parsed certificate.
pub(super) fn identity_of(cert: &X509Certificate<'_>) -> Result<(String, Vec<String>), PkiError> {
    let subject = &cert.tbs_certificate.subject;
    let text = |attr: &x509_parser::x509::AttributeTypeAndValue<'_>| {
        attr.as_str()
            .map(str::to_string)
            .map_err(|e| PkiError::ClientCertificate(format!("unreadable subject attribute: {e}")))
    };
    let user = match subject.iter_common_name().last() {
        Some(cn) => text(cn)?,
        None => return Err(PkiError::ClientCertificate("subject has no CN".to_string())),
    };
    if user.is_empty() {
        return Err(PkiError::ClientCertificate(
            "subject CN is empty".to_string(),
        ));
    }
    let groups = subject
        .iter_organization()
        .map(text)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((user, groups))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rustls_pki_types::ServerName;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::{TlsAcceptor, TlsConnector};

    use super::*;
    use crate::pki::ClusterPki;
    use crate::pki::tests::{TestDir, config};

    /// What the server saw of a successful connection.
    #[derive(Debug)]
    struct Seen {
        identity: Option<(String, Vec<String>)>,
        alpn: Option<Vec<u8>>,
        version: Option<rustls::ProtocolVersion>,
    }

    async fn serve(server: Arc<ServerConfig>, io: tokio::io::DuplexStream) -> Result<Seen, String> {
        let mut tls = TlsAcceptor::from(server)
            .accept(io)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        let conn = tls.get_ref().1;
        let identity = match conn.peer_certificates() {
            Some(chain) => Some(client_identity(&chain[0]).map_err(|e| e.to_string())?),
            None => None,
        };
        let seen = Seen {
            identity,
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
            version: conn.protocol_version(),
        };
        tls.write_all(b"pong").await.map_err(|e| e.to_string())?;
        tls.shutdown().await.map_err(|e| e.to_string())?;
        Ok(seen)
    }

    async fn dial(
        client: Arc<ClientConfig>,
        name: &str,
        io: tokio::io::DuplexStream,
    ) -> Result<(), String> {
        let name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client)
            .connect(name, io)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"ping").await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        (&buf == b"pong")
            .then_some(())
            .ok_or_else(|| "bad reply".to_string())
    }

    /// Runs one in-process handshake over a duplex pipe.
    async fn handshake(
        server: Arc<ServerConfig>,
        client: Arc<ClientConfig>,
        name: &str,
    ) -> (Result<Seen, String>, Result<(), String>) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let both = async { tokio::join!(serve(server, server_io), dial(client, name, client_io)) };
        tokio::time::timeout(Duration::from_secs(10), both)
            .await
            .expect("handshake hung")
    }

    fn with_alpn(config: Arc<ClientConfig>) -> Arc<ClientConfig> {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }

    #[tokio::test]
    async fn server_sees_client_identity_and_negotiates_h2() {
        let dir = TestDir::new("tls-id");
        let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
        let (cert, key) = pki.issue_client_cert("alice", &["dev", "ops"]).unwrap();
        let client = with_alpn(pki.client_tls_config(&cert, &key).unwrap());
        let (server, client) =
            handshake(pki.server_tls_config().unwrap(), client, "localhost").await;
        client.unwrap();
        let seen = server.unwrap();
        let want = (
            "alice".to_string(),
            vec!["dev".to_string(), "ops".to_string()],
        );
        assert_eq!(seen.identity, Some(want));
        assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_3));
    }

    #[tokio::test]
    async fn tls12_client_with_admin_cert_is_accepted() {
        let dir = TestDir::new("tls-12");
        let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
        let (cert, key) = pki.admin_cert();
        let client = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots(pki.ca.cert_der()).unwrap())
            .with_client_auth_cert(
                cert_chain(cert, "c").unwrap(),
                private_key(key, "k").unwrap(),
            )
            .unwrap();
        let (server, client) = handshake(
            pki.server_tls_config().unwrap(),
            Arc::new(client),
            "10.43.0.1",
        )
        .await;
        client.unwrap();
        let seen = server.unwrap();
        assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_2));
        let (user, groups) = seen.identity.unwrap();
        assert_eq!(
            (user.as_str(), groups),
            ("system:admin", vec!["system:masters".to_string()])
        );
    }

    #[tokio::test]
    async fn anonymous_client_is_accepted_without_identity() {
        let dir = TestDir::new("tls-anon");
        let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
        let client = with_alpn(pki.anonymous_client_tls_config().unwrap());
        let (server, client) = handshake(
            pki.server_tls_config().unwrap(),
            client,
            "kubernetes.default.svc",
        )
        .await;
        client.unwrap();
        let seen = server.unwrap();
        assert_eq!(seen.identity, None);
        assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
    }

    #[tokio::test]
    async fn client_cert_from_another_ca_is_rejected() {
        let dir = TestDir::new("tls-foreign");
        let other_dir = TestDir::new("tls-foreign-other");
        let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
        let other = ClusterPki::load_or_create(&config(other_dir.path())).unwrap();
        let (cert, key) = other
            .issue_client_cert("mallory", &["system:masters"])
            .unwrap();
        // Trust our server's CA so only the client certificate is at fault.
        let client = client_config(pki.ca.cert_der(), Some((&cert, &key))).unwrap();
        let (server, client) =
            handshake(pki.server_tls_config().unwrap(), client, "localhost").await;
        let err = server.unwrap_err();
        assert!(
            err.contains("UnknownIssuer") || err.contains("invalid peer certificate"),
            "{err}"
        );
        assert!(client.is_err());
    }

    #[tokio::test]
    async fn server_name_outside_the_sans_is_refused_by_clients() {
        let dir = TestDir::new("tls-name");
        let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
        let client = pki.anonymous_client_tls_config().unwrap();
        let (_, client) = handshake(pki.server_tls_config().unwrap(), client, "evil.example").await;
        let err = client.unwrap_err();
        assert!(err.contains("not valid for name \"evil.example\""), "{err}");
    }

    #[tokio::test]
    async fn issued_serving_cert_serves_its_own_names() {
        let dir = TestDir::new("tls-kubelet");
        let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
        let (cert, key) = pki.issue_serving_cert(&["node2".into()], &[]).unwrap();
        let server = pki.server_tls_config_with(&cert, &key).unwrap();
        let client = pki.anonymous_client_tls_config().unwrap();
        let (server, client) = handshake(server, client, "node2").await;
        client.unwrap();
        server.unwrap();
    }

    #[test]
    fn bad_pem_inputs_are_reported() {
        let dir = TestDir::new("tls-bad");
        let pki = ClusterPki::load_or_create(&config(dir.path())).unwrap();
        let err = pki.client_tls_config("nope", "nope").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid client certificate PEM"),
            "{err}"
        );
        let (cert, _) = pki.admin_cert();
        let err = pki.client_tls_config(cert, "nope").unwrap_err();
        assert!(
            err.to_string().starts_with("invalid client key PEM"),
            "{err}"
        );
    }
}
