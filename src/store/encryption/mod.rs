//! Encryption at rest: values of chosen resources are sealed with AES-GCM
//! before they reach the store, as kube-apiserver's storage transformers
//! do it.
//!
//! The stored form is upstream's, byte for byte:
//! `k8s:enc:aesgcm:v1:<key name>:` + 12-byte random nonce + ciphertext +
//! tag, with the storage key (`/registry/core/secrets/ns/name`) as the
//! authenticated data, so a sealed value cannot be moved to another key.
//! The first provider of a resource encrypts new writes; every provider
//! reads, which is what makes key rotation possible without downtime: add
//! a new first key, rewrite every object, then drop the old key.
//!
//! The [`Keyring`] is the loaded configuration, swappable at run time (key
//! rotation); [`EncryptingStore`] applies it around any [`Store`](super::Store),
//! so watches, lists, the watch cache and snapshots all go through one
//! place.

mod config;
mod encrypting_store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use parking_lot::RwLock;
use ring::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

pub use config::{EncryptionConfiguration, Key, KeysConfiguration, ProviderConfiguration};
pub use encrypting_store::EncryptingStore;

/// The prefix of every encrypted value.
const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
/// The prefix of values sealed by the aesgcm provider, before the key name.
const AESGCM_PREFIX: &str = "k8s:enc:aesgcm:v1:";

/// What can go wrong loading keys or sealing and opening values.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionError {
    /// The configuration file is unreadable or asks for something kelp
    /// cannot do.
    #[error("encryption configuration: {0}")]
    Config(String),
    /// A stored value could not be decrypted.
    #[error("cannot decrypt {key}: {reason}")]
    Decrypt {
        /// The storage key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A value could not be encrypted.
    #[error("cannot encrypt {key}: {reason}")]
    Encrypt {
        /// The storage key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// A loaded AES-GCM key.
struct SealingKey {
    name: String,
    /// `k8s:enc:aesgcm:v1:<name>:`
    prefix: Vec<u8>,
    key: LessSafeKey,
    bits: usize,
}

/// One provider, loaded.
enum Provider {
    AesGcm(Vec<SealingKey>),
    Identity,
}

/// The providers of one set of storage-key prefixes.
struct Rule {
    /// `/registry/core/secrets/`, …
    prefixes: Vec<String>,
    providers: Vec<Provider>,
}

/// A summary of the active configuration, for `secrets-encrypt status`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct KeyringStatus {
    /// Whether any resource is encrypted.
    pub enabled: bool,
    /// Key names in provider order, each with its type (`AES-GCM`,
    /// `Identity`); the first of a rule encrypts.
    pub keys: Vec<(String, String)>,
}

/// The loaded encryption configuration. Cheap to read from many threads;
/// replaced whole by [`Keyring::reload`].
pub struct Keyring {
    path: Option<PathBuf>,
    rules: RwLock<Arc<Vec<Rule>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("path", &self.path).finish()
    }
}

impl Keyring {
    /// No encryption: every value passes through.
    pub fn disabled() -> Self {
        Keyring {
            path: None,
            rules: RwLock::new(Arc::new(Vec::new())),
        }
    }

    /// Loads the configuration at `path`.
    pub fn load(path: &Path) -> Result<Self, EncryptionError> {
        let rules = compile(&EncryptionConfiguration::read(path)?)?;
        Ok(Keyring {
            path: Some(path.to_path_buf()),
            rules: RwLock::new(Arc::new(rules)),
        })
    }

    /// The configuration file, when encryption is on.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the configuration file; on error the old keys stay.
    pub fn reload(&self) -> Result<(), EncryptionError> {
        let Some(path) = &self.path else {
            return Err(EncryptionError::Config(
                "secrets encryption is not enabled (start the server with --secrets-encryption)"
                    .into(),
            ));
        };
        let rules = compile(&EncryptionConfiguration::read(path)?)?;
        *self.rules.write() = Arc::new(rules);
        Ok(())
    }

    /// The storage-key prefixes whose values are transformed.
    pub fn prefixes(&self) -> Vec<String> {
        self.rules
            .read()
            .iter()
            .flat_map(|r| r.prefixes.iter().cloned())
            .collect()
    }

    /// The active keys, for status output.
    pub fn status(&self) -> KeyringStatus {
        let rules = self.rules.read().clone();
        let mut keys = Vec::new();
        for rule in rules.iter() {
            for provider in &rule.providers {
                match provider {
                    Provider::AesGcm(sealing) => keys.extend(
                        sealing
                            .iter()
                            .map(|k| (k.name.clone(), format!("AES-GCM-{}", k.bits))),
                    ),
                    Provider::Identity => keys.push(("identity".into(), "Identity".into())),
                }
            }
        }
        KeyringStatus {
            enabled: rules
                .iter()
                .any(|r| matches!(r.providers.first(), Some(Provider::AesGcm(_)))),
            keys,
        }
    }

    /// The stored form of `value` at `key`.
    pub fn encrypt(&self, key: &str, value: Bytes) -> Result<Bytes, EncryptionError> {
        let rules = self.rules.read().clone();
        let Some(rule) = rule_for(&rules, key) else {
            return Ok(value);
        };
        match rule.providers.first() {
            Some(Provider::AesGcm(keys)) => {
                let Some(sealing) = keys.first() else {
                    return Ok(value);
                };
                seal(sealing, key, &value).map(Bytes::from)
            }
            _ => Ok(value),
        }
    }

    /// The plain form of the stored `value` at `key`.
    pub fn decrypt(&self, key: &str, value: Bytes) -> Result<Bytes, EncryptionError> {
        let fail = |reason: String| EncryptionError::Decrypt {
            key: key.to_string(),
            reason,
        };
        let rules = self.rules.read().clone();
        if !value.starts_with(ENCRYPTED_PREFIX) {
            return match rule_for(&rules, key) {
                Some(rule)
                    if !rule
                        .providers
                        .iter()
                        .any(|p| matches!(p, Provider::Identity)) =>
                {
                    Err(fail(
                        "the value is not encrypted and no identity provider is configured".into(),
                    ))
                }
                _ => Ok(value),
            };
        }
        if !value.starts_with(AESGCM_PREFIX.as_bytes()) {
            return Err(fail(
                "it was encrypted by a provider kelp does not support (only aesgcm)".into(),
            ));
        }
        // Key names may hold ':' (k3s names them by time), so the key is
        // found by its whole prefix, as upstream does.
        let sealing = rules
            .iter()
            .flat_map(|r| r.providers.iter())
            .filter_map(|p| match p {
                Provider::AesGcm(keys) => Some(keys),
                Provider::Identity => None,
            })
            .flatten()
            .find(|k| value.starts_with(&k.prefix))
            .ok_or_else(|| fail("none of the configured keys sealed it".into()))?;
        open(sealing, key, &value[sealing.prefix.len()..])
            .map(Bytes::from)
            .ok_or_else(|| {
                fail(format!(
                    "key {:?} does not open it (wrong key or damaged data)",
                    sealing.name
                ))
            })
    }
}

fn rule_for<'a>(rules: &'a [Rule], key: &str) -> Option<&'a Rule> {
    rules
        .iter()
        .find(|r| r.prefixes.iter().any(|p| key.starts_with(p.as_str())))
}

fn seal(sealing: &SealingKey, key: &str, plain: &[u8]) -> Result<Vec<u8>, EncryptionError> {
    let fail = |reason: &str| EncryptionError::Encrypt {
        key: key.to_string(),
        reason: reason.to_string(),
    };
    let mut nonce = [0u8; NONCE_LEN];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| fail("the system random source failed"))?;
    let mut sealed = plain.to_vec();
    sealing
        .key
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(key.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| fail("AES-GCM refused the value"))?;
    let mut out = Vec::with_capacity(sealing.prefix.len() + NONCE_LEN + sealed.len());
    out.extend_from_slice(&sealing.prefix);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open(sealing: &SealingKey, key: &str, data: &[u8]) -> Option<Vec<u8>> {
    let (nonce, sealed) = data.split_at_checked(NONCE_LEN)?;
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = sealed.to_vec();
    let plain_len = sealing
        .key
        .open_in_place(nonce, Aad::from(key.as_bytes()), &mut buf)
        .ok()?
        .len();
    buf.truncate(plain_len);
    Some(buf)
}

/// `secrets` → `/registry/core/secrets/`; `deployments.apps` →
/// `/registry/apps/deployments/`: the layout of kelp's storage keys.
fn storage_prefix(resource: &str) -> Result<String, EncryptionError> {
    if resource.contains('*') {
        return Err(EncryptionError::Config(format!(
            "resource {resource:?}: wildcards are not supported; name each resource"
        )));
    }
    Ok(match resource.split_once('.') {
        Some((plural, group)) => format!("/registry/{group}/{plural}/"),
        None => format!("/registry/core/{resource}/"),
    })
}

fn compile(config: &EncryptionConfiguration) -> Result<Vec<Rule>, EncryptionError> {
    let mut rules = Vec::new();
    for entry in &config.resources {
        let prefixes = entry
            .resources
            .iter()
            .map(|r| storage_prefix(r))
            .collect::<Result<Vec<_>, _>>()?;
        let mut providers = Vec::new();
        for provider in &entry.providers {
            if let Some(keys) = &provider.aesgcm {
                providers.push(Provider::AesGcm(
                    keys.keys.iter().map(load_key).collect::<Result<_, _>>()?,
                ));
            } else if provider.identity.is_some() {
                providers.push(Provider::Identity);
            } else {
                let kind = if provider.aescbc.is_some() {
                    "aescbc"
                } else if provider.secretbox.is_some() {
                    "secretbox"
                } else if provider.kms.is_some() {
                    "kms"
                } else {
                    "empty"
                };
                return Err(EncryptionError::Config(format!(
                    "provider {kind:?} is not supported: use aesgcm (and identity to read unencrypted data)"
                )));
            }
        }
        if providers.is_empty() {
            return Err(EncryptionError::Config(format!(
                "resources {:?} have no providers",
                entry.resources
            )));
        }
        rules.push(Rule {
            prefixes,
            providers,
        });
    }
    Ok(rules)
}

fn load_key(key: &Key) -> Result<SealingKey, EncryptionError> {
    let fail = |reason: String| EncryptionError::Config(format!("key {:?}: {reason}", key.name));
    if key.name.is_empty() {
        return Err(fail("a key needs a name".into()));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.secret.trim())
        .map_err(|e| fail(format!("secret is not base64: {e}")))?;
    let algorithm = match bytes.len() {
        16 => &AES_128_GCM,
        32 => &AES_256_GCM,
        n => {
            return Err(fail(format!(
                "secret is {n} bytes; AES-GCM keys here are 16 or 32 bytes"
            )));
        }
    };
    let unbound = UnboundKey::new(algorithm, &bytes).map_err(|_| fail("unusable key".into()))?;
    Ok(SealingKey {
        name: key.name.clone(),
        prefix: format!("{AESGCM_PREFIX}{}:", key.name).into_bytes(),
        key: LessSafeKey::new(unbound),
        bits: bytes.len() * 8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keyring(config: &EncryptionConfiguration) -> Keyring {
        Keyring {
            path: None,
            rules: RwLock::new(Arc::new(compile(config).unwrap())),
        }
    }

    #[test]
    fn sealed_values_open_only_at_their_own_key_and_with_their_own_key() {
        let key = Key::generate("k1").unwrap();
        let ring = keyring(&EncryptionConfiguration::for_secrets(key));
        let at = "/registry/core/secrets/default/s";
        let sealed = ring
            .encrypt(at, Bytes::from_static(b"{\"data\":1}"))
            .unwrap();
        assert!(sealed.starts_with(b"k8s:enc:aesgcm:v1:aesgcmkey-k1:"));
        assert!(!sealed.windows(10).any(|w| w == b"{\"data\":1}"));
        assert_eq!(
            &ring.decrypt(at, sealed.clone()).unwrap()[..],
            b"{\"data\":1}"
        );
        // Moved to another key: the authenticated data no longer matches.
        assert!(
            ring.decrypt("/registry/core/secrets/default/t", sealed.clone())
                .is_err()
        );
        // Another key of the same name cannot open it.
        let other = keyring(&EncryptionConfiguration::for_secrets(Key {
            name: "aesgcmkey-k1".into(),
            ..Key::generate("x").unwrap()
        }));
        assert!(other.decrypt(at, sealed).is_err());
        // Other resources pass through; plaintext secrets read via identity.
        let cm = "/registry/core/configmaps/default/c";
        assert_eq!(
            &ring.encrypt(cm, Bytes::from_static(b"x")).unwrap()[..],
            b"x"
        );
        assert_eq!(
            &ring.decrypt(at, Bytes::from_static(b"{}")).unwrap()[..],
            b"{}"
        );
    }

    #[test]
    fn unsupported_providers_and_bad_keys_are_refused_by_name() {
        let mut config = EncryptionConfiguration::for_secrets(Key::generate("k").unwrap());
        config.resources[0].providers[0] = ProviderConfiguration {
            aescbc: Some(KeysConfiguration { keys: vec![] }),
            ..Default::default()
        };
        let err = compile(&config).err().unwrap().to_string();
        assert!(err.contains("\"aescbc\" is not supported"), "{err}");
        let config = EncryptionConfiguration::for_secrets(Key {
            name: "short".into(),
            secret: "c2hvcnQ=".into(),
        });
        let err = compile(&config).err().unwrap().to_string();
        assert!(err.contains("5 bytes"), "{err}");
    }
}
