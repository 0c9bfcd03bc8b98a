//! kube-apiserver's `EncryptionConfiguration` file, the part kelp serves.
//!
//! The file format is upstream's (`apiserver.config.k8s.io/v1`), so a user
//! who knows `--encryption-provider-config` can read and edit kelp's
//! `server/cred/encryption-config.json`. Of the providers, `aesgcm` and
//! `identity` are supported; anything else is refused by name at start,
//! rather than silently storing Secrets in the clear.

use std::path::Path;

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::EncryptionError;

/// `EncryptionConfiguration` (apiserver.config.k8s.io/v1).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EncryptionConfiguration {
    /// Always `EncryptionConfiguration`.
    pub kind: String,
    /// Always `apiserver.config.k8s.io/v1`.
    pub api_version: String,
    /// Which providers apply to which resources.
    pub resources: Vec<ResourceConfiguration>,
}

/// One `resources[]` entry: resources and the providers for them, the
/// first of which encrypts new writes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ResourceConfiguration {
    /// `secrets`, `configmaps`, `deployments.apps`, …
    pub resources: Vec<String>,
    /// In order: the first writes, every one reads.
    pub providers: Vec<ProviderConfiguration>,
}

/// One provider. Exactly one field is set.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ProviderConfiguration {
    /// AES-GCM with random nonces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aesgcm: Option<KeysConfiguration>,
    /// AES-CBC (upstream's older default): recognised, not supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aescbc: Option<KeysConfiguration>,
    /// XSalsa20-Poly1305: recognised, not supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secretbox: Option<KeysConfiguration>,
    /// A KMS plugin: recognised, not supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms: Option<serde_json::Value>,
    /// No encryption: writes plain, reads unprefixed data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The keys of a symmetric provider, the first of which encrypts.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct KeysConfiguration {
    /// Named keys.
    pub keys: Vec<Key>,
}

/// A named key, base64 in the file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Key {
    /// The name stored in each value's prefix; must not contain `:`.
    pub name: String,
    /// Base64 of 16 or 32 random bytes.
    pub secret: String,
}

impl Key {
    /// A new random 32-byte key named after the time, as k3s names them.
    pub fn generate(now: &str) -> Result<Self, EncryptionError> {
        let mut bytes = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .map_err(|_| EncryptionError::Config("the system random source failed".into()))?;
        Ok(Key {
            name: format!("aesgcmkey-{now}"),
            secret: base64::engine::general_purpose::STANDARD.encode(bytes),
        })
    }
}

impl EncryptionConfiguration {
    /// Secrets encrypted with `key`, and unencrypted ones still readable.
    pub fn for_secrets(key: Key) -> Self {
        EncryptionConfiguration {
            kind: "EncryptionConfiguration".into(),
            api_version: "apiserver.config.k8s.io/v1".into(),
            resources: vec![ResourceConfiguration {
                resources: vec!["secrets".into()],
                providers: vec![
                    ProviderConfiguration {
                        aesgcm: Some(KeysConfiguration { keys: vec![key] }),
                        ..Default::default()
                    },
                    ProviderConfiguration {
                        identity: Some(Default::default()),
                        ..Default::default()
                    },
                ],
            }],
        }
    }

    /// Reads the file (JSON, or YAML as upstream accepts).
    pub fn read(path: &Path) -> Result<Self, EncryptionError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| EncryptionError::Config(format!("cannot read {}: {e}", path.display())))?;
        serde_yaml::from_str(&text)
            .map_err(|e| EncryptionError::Config(format!("{}: {e}", path.display())))
    }

    /// Writes the file atomically (temp file + rename), mode 0600: it holds
    /// the keys.
    pub fn write(&self, path: &Path) -> Result<(), EncryptionError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let io = |e: std::io::Error| {
            EncryptionError::Config(format!("cannot write {}: {e}", path.display()))
        };
        let json =
            serde_json::to_vec_pretty(self).map_err(|e| EncryptionError::Config(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        file.write_all(&json).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)?;
        Ok(())
    }

    /// The aesgcm keys of the first resource entry naming `secrets`, in
    /// provider order: what rotation edits.
    pub fn secrets_keys_mut(&mut self) -> Option<&mut Vec<Key>> {
        self.resources
            .iter_mut()
            .find(|r| r.resources.iter().any(|n| n == "secrets"))?
            .providers
            .iter_mut()
            .find_map(|p| p.aesgcm.as_mut())
            .map(|k| &mut k.keys)
    }
}
