//! The error type of the cluster PKI.
//!
//! Every failure that involves a file names that file, because the operator's
//! fix is almost always "restore or remove this file"; failures of in-memory
//! inputs (PEM text handed in by a caller, bearer tokens, join tokens) say what
//! was wrong with the input instead. Token errors reuse the upstream
//! apiserver's wording where one exists so that logs read the same.

use std::path::PathBuf;

/// Everything that can go wrong while loading, issuing or verifying credentials.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file or directory could not be read, written, renamed or created.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being attempted ("read", "write", "create directory", ...).
        action: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM block of the expected kind, or a malformed one.
    #[error("{} is not a valid PEM {what}", path.display())]
    InvalidPem {
        /// The offending file.
        path: PathBuf,
        /// What the file should have held ("certificate", "private key").
        what: &'static str,
    },
    /// A file parsed as PEM but its content cannot be used (wrong key type,
    /// undecodable certificate, key and certificate that do not match).
    #[error("{}: {reason}", path.display())]
    InvalidFile {
        /// The offending file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// No cluster CA where one must already exist.
    #[error("no cluster CA in {} ({}); point --data-dir at the server's data dir", dir.display(), missing.display())]
    MissingCa {
        /// The TLS directory searched.
        dir: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// Only the certificate half of the CA is on disk; creating a new key
    /// would silently invalidate every credential the old CA issued.
    #[error(
        "{} exists but {} is missing; restore the key, or remove both files to create a new CA \
         (every credential issued by the old one stops working)",
        present.display(),
        missing.display()
    )]
    IncompletePair {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
    /// rcgen could not generate a key or a certificate.
    #[error("cannot generate {what}: {source}")]
    Generate {
        /// What was being generated.
        what: &'static str,
        /// rcgen's reason.
        #[source]
        source: rcgen::Error,
    },
    /// PEM text or another value handed in by a caller is unusable.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which input ("client certificate PEM", "DNS name", ...).
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// rustls rejected a certificate, key or protocol setting.
    #[error("cannot build TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// rustls could not build the client-certificate verifier from the CA.
    #[error("cannot build client certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// ring refused a key or failed to sign.
    #[error("cannot {0}: the cryptographic operation failed")]
    Crypto(&'static str),
    /// A client certificate presented for authentication has no usable identity.
    #[error("invalid client certificate: {0}")]
    ClientCertificate(String),
    /// A bearer token is not a well-formed ES256 service account JWT.
    #[error("malformed service account token: {0}")]
    TokenMalformed(String),
    /// The token's signature does not verify with the service account key.
    #[error("service account token signature is invalid")]
    TokenSignature,
    /// The token's `exp` is in the past (beyond the allowed clock skew).
    #[error("service account token has expired")]
    TokenExpired,
    /// The token's `nbf` or `iat` is in the future (beyond the allowed clock skew).
    #[error("service account token is not valid yet")]
    TokenNotYetValid,
    /// The token was issued by someone else.
    #[error("service account token issuer {0:?} is not recognized")]
    TokenIssuer(String),
    /// A join token does not have the k3s `K10<hash>::<user>:<secret>` shape.
    #[error("{0}")]
    JoinToken(&'static str),
}

impl PkiError {
    /// Wraps an I/O error with the action and path it happened on.
    pub(super) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        PkiError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A file whose content cannot be used, with the reason.
    pub(super) fn invalid_file(path: &std::path::Path, reason: impl Into<String>) -> Self {
        PkiError::InvalidFile {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
