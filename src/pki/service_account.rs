//! Service account tokens: ES256 JWTs shaped like upstream bound tokens.
//!
//! The signing key is `service.key` (PKCS#8 PEM, ECDSA P-256), a root of trust
//! like the CA: created when absent, an error naming the file when unusable
//! (replacing it would invalidate every token in every pod). Verification
//! checks, in order: structure and `alg` (only ES256 — "none" and HMAC
//! downgrades are rejected), signature, issuer, then time claims with the 60 s
//! leeway go-jose gives kube-apiserver. Audience and whether the bound
//! objects still exist are the authenticator's business.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::Path;

use super::der::{p256_spki, pem_encode};
use super::error::PkiError;
use super::files::{KEY_MODE, read_optional, write_private};

/// The issuer of service account tokens (`--service-account-issuer` in k3s).
pub const SERVICE_ACCOUNT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The default API audiences (`--api-audiences` in k3s).
pub const DEFAULT_API_AUDIENCES: [&str; 2] =
    ["https://kubernetes.default.svc.cluster.local", "k3s"];
/// Clock skew tolerated on `exp`, `nbf` and `iat` (go-jose's default leeway).
const LEEWAY_SECS: u64 = 60;

/// A reference to a bound object in the `kubernetes.io` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// The object's name.
    pub name: String,
    /// The object's UID.
    pub uid: String,
}

/// The private `kubernetes.io` claim of a bound token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account.
    pub serviceaccount: ObjectRef,
    /// The pod the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectRef>,
    /// The secret the token is bound to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<ObjectRef>,
    /// The node the pod runs on, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<ObjectRef>,
    /// After this time (Unix seconds) use of the token is logged as stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warnafter: Option<u64>,
}

/// The claims of a service account token, as upstream's TokenRequest issues them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceAccountClaims {
    /// Issuer; [`SERVICE_ACCOUNT_ISSUER`].
    pub iss: String,
    /// `system:serviceaccount:<namespace>:<name>`.
    pub sub: String,
    /// Audiences (a single string is accepted when parsing, as RFC 7519 allows).
    #[serde(deserialize_with = "string_or_list")]
    pub aud: Vec<String>,
    /// Expiry, Unix seconds.
    pub exp: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Not before, Unix seconds.
    pub nbf: u64,
    /// Unique token id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The bound objects.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Aud {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Aud::deserialize(d)? {
        Aud::One(s) => vec![s],
        Aud::Many(v) => v,
    })
}

impl ServiceAccountClaims {
    /// Claims for `namespace/name` (UID `uid`) valid from `now` for
    /// `expiration_secs`, for the given audiences.
    pub fn new(
        namespace: &str,
        name: &str,
        uid: &str,
        audiences: &[&str],
        now: u64,
        expiration_secs: u64,
    ) -> Self {
        ServiceAccountClaims {
            iss: SERVICE_ACCOUNT_ISSUER.to_string(),
            sub: format!("system:serviceaccount:{namespace}:{name}"),
            aud: audiences.iter().map(|a| a.to_string()).collect(),
            exp: now.saturating_add(expiration_secs),
            iat: now,
            nbf: now,
            jti: None,
            kubernetes: KubernetesClaims {
                namespace: namespace.to_string(),
                serviceaccount: ObjectRef {
                    name: name.to_string(),
                    uid: uid.to_string(),
                },
                pod: None,
                secret: None,
                node: None,
                warnafter: None,
            },
        }
    }

    /// Binds the token to a secret.
    pub fn with_secret(mut self, name: &str, uid: &str) -> Self {
        self.kubernetes.secret = Some(ObjectRef {
            name: name.to_string(),
            uid: uid.to_string(),
        });
        self
    }

    /// Binds the token to a pod.
    pub fn with_pod(mut self, name: &str, uid: &str) -> Self {
        self.kubernetes.pod = Some(ObjectRef {
            name: name.to_string(),
            uid: uid.to_string(),
        });
        self
    }

    /// Whether `audience` is among the token's audiences.
    pub fn has_audience(&self, audience: &str) -> bool {
        self.aud.iter().any(|a| a == audience)
    }
}

/// The service account signing key.
pub(super) struct ServiceAccountKey {
    key: EcdsaKeyPair,
    key_id: String,
}

impl ServiceAccountKey {
    /// Loads `path`, creating it when absent; `Ok(true)` in the second slot if created.
    pub(super) fn load_or_create(path: &Path) -> Result<(Self, bool), PkiError> {
        let rng = SystemRandom::new();
        let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
        let (pkcs8, created) = match read_optional(path)? {
            Some(text) => (pkcs8_from_pem(&text, path)?, false),
            None => {
                let doc = EcdsaKeyPair::generate_pkcs8(alg, &rng)
                    .map_err(|_| PkiError::Crypto("generate the service account key"))?;
                let pem = pem_encode("PRIVATE KEY", doc.as_ref());
                write_private(path, pem.as_bytes(), KEY_MODE)?;
                (doc.as_ref().to_vec(), true)
            }
        };
        let key = EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &rng)
            .map_err(|_| PkiError::invalid_file(path, "is not an ECDSA P-256 PKCS#8 key"))?;
        // Upstream's key id: unpadded base64url of SHA-256 over the DER public key.
        let spki = p256_spki(key.public_key().as_ref());
        let digest = ring::digest::digest(&ring::digest::SHA256, &spki);
        let key_id = URL_SAFE_NO_PAD.encode(digest.as_ref());
        Ok((ServiceAccountKey { key, key_id }, created))
    }

    /// The `kid` put in token headers.
    pub(super) fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key as PEM (SubjectPublicKeyInfo).
    pub(super) fn public_key_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &p256_spki(self.key.public_key().as_ref()))
    }

    /// The public key as a JWK Set, as served at `/openid/v1/jwks`.
    pub(super) fn jwks(&self) -> serde_json::Value {
        // An uncompressed point is 0x04 || X (32 bytes) || Y (32 bytes).
        let point = self.key.public_key().as_ref();
        let coord = |range: std::ops::Range<usize>| {
            URL_SAFE_NO_PAD.encode(point.get(range).unwrap_or_default())
        };
        serde_json::json!({"keys": [{
            "use": "sig", "kty": "EC", "kid": self.key_id, "crv": "P-256", "alg": "ES256",
            "x": coord(1..33), "y": coord(33..65),
        }]})
    }

    /// Signs `claims` into a compact JWS.
    pub(super) fn sign(&self, claims: &ServiceAccountClaims) -> Result<String, PkiError> {
        let header = serde_json::json!({"alg": "ES256", "kid": self.key_id});
        let payload = serde_json::to_vec(claims)
            .map_err(|e| PkiError::TokenMalformed(format!("cannot encode claims: {e}")))?;
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), signing_input.as_bytes())
            .map_err(|_| PkiError::Crypto("sign a service account token"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// Verifies a token's signature, issuer and time claims at `now`.
    pub(super) fn verify(&self, token: &str, now: u64) -> Result<ServiceAccountClaims, PkiError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PkiError::TokenMalformed("not a compact JWS".to_string()));
        };
        let header: serde_json::Value = decode_json(header, "header")?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("ES256") {
            return Err(PkiError::TokenMalformed(format!(
                "unsupported alg {}",
                header.get("alg").unwrap_or(&serde_json::Value::Null)
            )));
        }
        let signature = decode_b64(signature, "signature")?;
        let signing_input = &token[..header_and_payload_len(token)];
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(signing_input.as_bytes(), &signature)
            .map_err(|_| PkiError::TokenSignature)?;
        let claims: ServiceAccountClaims = decode_json(payload, "claims")?;
        check_claims(&claims, now)?;
        Ok(claims)
    }
}

fn header_and_payload_len(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

fn check_claims(claims: &ServiceAccountClaims, now: u64) -> Result<(), PkiError> {
    if claims.iss != SERVICE_ACCOUNT_ISSUER {
        return Err(PkiError::TokenIssuer(claims.iss.clone()));
    }
    if now.saturating_add(LEEWAY_SECS) < claims.nbf || now.saturating_add(LEEWAY_SECS) < claims.iat
    {
        return Err(PkiError::TokenNotYetValid);
    }
    if now.saturating_sub(LEEWAY_SECS) > claims.exp {
        return Err(PkiError::TokenExpired);
    }
    Ok(())
}

fn decode_b64(part: &str, what: &str) -> Result<Vec<u8>, PkiError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| PkiError::TokenMalformed(format!("{what} is not base64url: {e}")))
}

fn decode_json<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, PkiError> {
    serde_json::from_slice(&decode_b64(part, what)?)
        .map_err(|e| PkiError::TokenMalformed(format!("{what}: {e}")))
}

fn pkcs8_from_pem(text: &str, path: &Path) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::PrivatePkcs8KeyDer;
    use rustls_pki_types::pem::PemObject;
    PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes())
        .map(|k| k.secret_pkcs8_der().to_vec())
        .map_err(|_| PkiError::InvalidPem {
            path: path.to_path_buf(),
            what: "PKCS#8 private key",
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::tests::TestDir;

    const NOW: u64 = 1_700_000_000;

    fn key() -> (ServiceAccountKey, TestDir) {
        let dir = TestDir::new("sa");
        let (key, created) =
            ServiceAccountKey::load_or_create(&dir.path().join("service.key")).unwrap();
        assert!(created);
        (key, dir)
    }

    fn claims() -> ServiceAccountClaims {
        ServiceAccountClaims::new(
            "default",
            "builder",
            "uid-1",
            &DEFAULT_API_AUDIENCES,
            NOW,
            3600,
        )
        .with_pod("web-0", "uid-2")
    }

    fn payload_json(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn token_round_trips_with_upstream_claim_shape() {
        let (key, _dir) = key();
        let token = key.sign(&claims()).unwrap();
        assert_eq!(key.verify(&token, NOW + 10).unwrap(), claims());
        let json = payload_json(&token);
        assert_eq!(json["sub"], "system:serviceaccount:default:builder");
        assert_eq!(json["iss"], SERVICE_ACCOUNT_ISSUER);
        assert_eq!(json["aud"][1], "k3s");
        assert_eq!(json["kubernetes.io"]["namespace"], "default");
        assert_eq!(json["kubernetes.io"]["serviceaccount"]["uid"], "uid-1");
        assert_eq!(json["kubernetes.io"]["pod"]["name"], "web-0");
        assert!(json["kubernetes.io"].get("secret").is_none());
        assert_eq!(json["exp"], NOW + 3600);
    }

    #[test]
    fn header_names_es256_and_key_id() {
        let (key, _dir) = key();
        let token = key.sign(&claims()).unwrap();
        let header = token.split('.').next().unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.key_id());
        assert_eq!(key.jwks()["keys"][0]["kid"], key.key_id());
        assert_eq!(key.jwks()["keys"][0]["x"].as_str().unwrap().len(), 43);
        assert!(
            key.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
    }

    #[test]
    fn tampered_payload_is_rejected() {
        let (key, _dir) = key();
        let token = key.sign(&claims()).unwrap();
        let mut forged = claims();
        forged.sub = "system:serviceaccount:kube-system:admin".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<_> = token.split('.').collect();
        let tampered = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
        assert!(matches!(
            key.verify(&tampered, NOW),
            Err(PkiError::TokenSignature)
        ));
    }

    #[test]
    fn token_from_another_key_is_rejected() {
        let (key, _dir) = key();
        let (other, _other_dir) = self::key();
        let token = other.sign(&claims()).unwrap();
        assert!(matches!(
            key.verify(&token, NOW),
            Err(PkiError::TokenSignature)
        ));
    }

    #[test]
    fn expiry_and_not_before_honour_a_minute_of_leeway() {
        let (key, _dir) = key();
        let token = key.sign(&claims()).unwrap();
        assert!(key.verify(&token, NOW + 3600 + 60).is_ok());
        let err = key.verify(&token, NOW + 3600 + 61).unwrap_err();
        assert_eq!(err.to_string(), "service account token has expired");
        assert!(key.verify(&token, NOW - 60).is_ok());
        let err = key.verify(&token, NOW - 61).unwrap_err();
        assert_eq!(err.to_string(), "service account token is not valid yet");
    }

    #[test]
    fn foreign_issuer_is_rejected() {
        let (key, _dir) = key();
        let mut c = claims();
        c.iss = "https://evil.example".into();
        let token = key.sign(&c).unwrap();
        assert!(matches!(key.verify(&token, NOW), Err(PkiError::TokenIssuer(i)) if i == c.iss));
    }

    #[test]
    fn alg_none_and_garbage_are_malformed() {
        let (key, _dir) = key();
        let token = key.sign(&claims()).unwrap();
        let parts: Vec<_> = token.split('.').collect();
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let downgraded = format!("{none}.{}.", parts[1]);
        let err = key.verify(&downgraded, NOW).unwrap_err();
        assert!(err.to_string().contains("unsupported alg"), "{err}");
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert!(
                matches!(key.verify(bad, NOW), Err(PkiError::TokenMalformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn single_string_audience_is_accepted() {
        let json = serde_json::json!({
            "iss": SERVICE_ACCOUNT_ISSUER, "sub": "s", "aud": "k3s", "exp": 2, "iat": 1, "nbf": 1,
            "kubernetes.io": {"namespace": "n", "serviceaccount": {"name": "a", "uid": "u"}},
        });
        let c: ServiceAccountClaims = serde_json::from_value(json).unwrap();
        assert!(c.has_audience("k3s"));
        assert!(!c.has_audience("other"));
    }

    #[test]
    fn key_is_reused_and_unusable_key_file_is_an_error() {
        let (key, dir) = key();
        let path = dir.path().join("service.key");
        let (again, created) = ServiceAccountKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again.key_id(), key.key_id());
        std::fs::write(&path, "garbage").unwrap();
        let err = ServiceAccountKey::load_or_create(&path).err().unwrap();
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
}
