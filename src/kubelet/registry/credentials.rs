//! Registry credentials from image pull Secrets
//! (`kubernetes.io/dockerconfigjson` and the older `kubernetes.io/dockercfg`),
//! matched to a registry host as upstream's kubelet keyring matches them.
//!
//! A key is a registry URL, possibly with a scheme, a path prefix, a port
//! and `*` globs in host labels (`*.example.com`). It matches an image when
//! the hosts have the same number of labels and each label matches, the
//! ports are equal, and the key's path is a prefix of the repository path.
//! `https://index.docker.io/v1/`, `index.docker.io` and `docker.io` all mean
//! Docker Hub.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

/// One set of credentials, and the registry key it was given for.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    /// The key in the docker config (`https://index.docker.io/v1/`).
    pub key: String,
    /// User name.
    pub username: String,
    /// Password (or, with `identitytoken`, the token).
    pub password: String,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredential")
            .field("key", &self.key)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DockerConfigJson {
    #[serde(default)]
    auths: BTreeMap<String, DockerConfigEntry>,
}

#[derive(Default, Deserialize)]
struct DockerConfigEntry {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    auth: String,
    #[serde(default)]
    identitytoken: String,
}

/// Why a pull Secret could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialError(String);

/// The credentials in a pull Secret's data (`.dockerconfigjson` or `.dockercfg`).
pub fn from_secret_data(
    data: &BTreeMap<String, Vec<u8>>,
) -> Result<Vec<RegistryCredential>, CredentialError> {
    let entries: BTreeMap<String, DockerConfigEntry> =
        if let Some(json) = data.get(".dockerconfigjson") {
            serde_json::from_slice::<DockerConfigJson>(json)
                .map_err(|e| CredentialError(format!(".dockerconfigjson is not valid: {e}")))?
                .auths
        } else if let Some(json) = data.get(".dockercfg") {
            serde_json::from_slice(json)
                .map_err(|e| CredentialError(format!(".dockercfg is not valid: {e}")))?
        } else {
            return Err(CredentialError(
                "neither .dockerconfigjson nor .dockercfg is set".into(),
            ));
        };
    Ok(entries
        .into_iter()
        .map(|(key, e)| {
            let (username, password) = entry_credentials(e);
            RegistryCredential {
                key,
                username,
                password,
            }
        })
        .collect())
}

/// The user and password an entry gives: explicit fields, else the `auth`
/// field (`base64(user:password)`). An identity token is presented as the
/// password of the entry's user, which registries that issue them (ACR,
/// GCR, Harbor robot accounts) accept at their token endpoint.
fn entry_credentials(e: DockerConfigEntry) -> (String, String) {
    if !e.identitytoken.is_empty() {
        let user = if e.username.is_empty() {
            "<token>".to_string()
        } else {
            e.username
        };
        return (user, e.identitytoken);
    }
    if e.username.is_empty()
        && !e.auth.is_empty()
        && let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(e.auth.trim())
        && let Ok(text) = String::from_utf8(raw)
        && let Some((u, p)) = text.split_once(':')
    {
        return (u.to_string(), p.to_string());
    }
    (e.username, e.password)
}

/// Credentials of a registries.yaml `auth:` block.
pub fn from_registries_auth(
    host: &str,
    auth: &super::config::AuthConfig,
) -> Option<RegistryCredential> {
    let (username, password) = entry_credentials(DockerConfigEntry {
        username: auth.username.clone(),
        password: auth.password.clone(),
        auth: auth.auth.clone(),
        identitytoken: auth.identitytoken.clone(),
    });
    (!username.is_empty() || !password.is_empty()).then(|| RegistryCredential {
        key: host.to_string(),
        username,
        password,
    })
}

/// Docker Hub's many names, as one.
fn canonical_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        h => h,
    }
}

/// Splits a key or image location into (host, port, path).
fn split(location: &str) -> (String, Option<String>, String) {
    let rest = location
        .split_once("://")
        .map(|(_, r)| r)
        .unwrap_or(location);
    let (hostport, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !p.is_empty() => {
            (h, Some(p.to_string()))
        }
        _ => (hostport, None),
    };
    let mut path = path.trim_end_matches('/').to_string();
    let host = canonical_host(&host.to_ascii_lowercase()).to_string();
    // Docker Hub's legacy key carries the API version as its path.
    if host == "docker.io" && path == "v1" {
        path.clear();
    }
    (host, port, path)
}

/// `*` matches within one label (one `*` per label); anything else must be equal.
fn label_matches(pattern: &str, label: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == label,
        Some((pre, post)) => {
            !post.contains('*')
                && label.len() >= pre.len() + post.len()
                && label.starts_with(pre)
                && label.ends_with(post)
        }
    }
}

/// Whether a credential's key applies to `repository` (`host[:port]/path`).
pub fn key_matches(key: &str, repository: &str) -> bool {
    let (khost, kport, kpath) = split(key);
    let (host, port, path) = split(repository);
    let klabels: Vec<&str> = khost.split('.').collect();
    let labels: Vec<&str> = host.split('.').collect();
    klabels.len() == labels.len()
        && klabels
            .iter()
            .zip(&labels)
            .all(|(p, l)| label_matches(p, l))
        && kport == port
        && (kpath.is_empty() || path == kpath || path.starts_with(&format!("{kpath}/")))
}

/// The credentials that apply to `repository`, most specific key first (as
/// upstream's keyring orders them), each at most once.
pub fn matching<'a>(
    all: &'a [RegistryCredential],
    repository: &str,
) -> Vec<&'a RegistryCredential> {
    let mut found: Vec<&RegistryCredential> = all
        .iter()
        .filter(|c| key_matches(&c.key, repository))
        .collect();
    found.sort_by_key(|c| std::cmp::Reverse(split(&c.key).2.len()));
    found.dedup_by(|a, b| a.username == b.username && a.password == b.password);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(key: &str, json: &str) -> BTreeMap<String, Vec<u8>> {
        BTreeMap::from([(key.to_string(), json.as_bytes().to_vec())])
    }

    #[test]
    fn reads_both_secret_formats_and_the_auth_field() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let c = from_secret_data(&data(
            ".dockerconfigjson",
            &format!(r#"{{"auths":{{"127.0.0.1:5000":{{"auth":"{auth}"}}}}}}"#),
        ))
        .expect("parses");
        assert_eq!(
            (c[0].username.as_str(), c[0].password.as_str()),
            ("alice", "s3cret")
        );
        let c = from_secret_data(&data(
            ".dockercfg",
            r#"{"https://index.docker.io/v1/":{"username":"bob","password":"pw"}}"#,
        ))
        .expect("parses");
        assert!(key_matches(&c[0].key, "docker.io/library/busybox"));
        assert!(from_secret_data(&data(".dockerconfigjson", "{")).is_err());
        assert!(from_secret_data(&BTreeMap::new()).is_err());
    }

    #[test]
    fn keys_match_like_the_kubelet_keyring() {
        assert!(key_matches("127.0.0.1:5000", "127.0.0.1:5000/busybox"));
        assert!(!key_matches("127.0.0.1:5000", "127.0.0.1:5001/busybox"));
        assert!(!key_matches("127.0.0.1", "127.0.0.1:5000/busybox"));
        assert!(key_matches("*.example.com", "r.example.com/a/b"));
        assert!(!key_matches("*.example.com", "a.r.example.com/a"));
        assert!(key_matches(
            "https://r.example.com/team",
            "r.example.com/team/app"
        ));
        assert!(!key_matches(
            "r.example.com/team",
            "r.example.com/teamx/app"
        ));
        assert!(key_matches("index.docker.io", "docker.io/library/nginx"));
    }
}
