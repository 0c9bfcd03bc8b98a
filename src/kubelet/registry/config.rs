//! `registries.yaml`, in k3s's format: mirrors, rewrites and per-host auth
//! and TLS.
//!
//! ```yaml
//! mirrors:
//!   docker.io:
//!     endpoint: ["http://10.0.0.5:5000", "https://mirror.example"]
//!     rewrite: {"^library/(.*)": "cache/$1"}
//!   "*":                       # every registry without an entry of its own
//!     endpoint: ["https://cache.example"]
//! configs:
//!   "mirror.example":
//!     auth: {username: u, password: p}   # or auth: base64(u:p), identitytoken
//!     tls: {ca_file: /etc/ssl/ca.pem, insecure_skip_verify: false}
//! ```
//!
//! As in k3s, a registry's mirror endpoints are tried in order, then the
//! registry's own (default) endpoint; rewrites apply to mirror endpoints
//! only. An endpoint without a scheme is https. The file is read again when
//! its size or mtime changes, checked before every pull, so edits apply
//! without a restart; a file that does not parse keeps the last good
//! version in force (and says so in the log).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Deserialize;

/// The default location (k3s: `/etc/rancher/k3s/registries.yaml`).
pub const DEFAULT_REGISTRIES_FILE: &str = "/etc/kelp/registries.yaml";

/// Largest registries file read.
const MAX_FILE: u64 = 1024 * 1024;

/// The parsed file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    /// Mirrors by registry host (`docker.io`, `*`).
    #[serde(default)]
    pub mirrors: BTreeMap<String, Mirror>,
    /// Auth and TLS by endpoint host (`host:port`).
    #[serde(default)]
    pub configs: BTreeMap<String, HostConfig>,
}

/// The mirrors of one registry.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// Endpoint URLs, tried in order before the default endpoint.
    #[serde(default)]
    pub endpoint: Vec<String>,
    /// Repository rewrites (regex → replacement with `$1`), for mirror endpoints.
    #[serde(default)]
    pub rewrite: BTreeMap<String, String>,
}

/// Settings for one endpoint host.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// Credentials.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// TLS settings.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
}

/// Credentials for an endpoint host.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// User name.
    #[serde(default)]
    pub username: String,
    /// Password.
    #[serde(default)]
    pub password: String,
    /// base64(`user:password`), as in a docker config.
    #[serde(default)]
    pub auth: String,
    /// An identity (refresh) token.
    #[serde(default)]
    pub identitytoken: String,
}

/// TLS settings for an endpoint host.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// CA bundle (PEM) to trust besides the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Client key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Skip server certificate verification.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Errors reading the file.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One place to try, after mirrors and rewrites are applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// `host[:port]`.
    pub host: String,
    /// The repository at this endpoint.
    pub repository: String,
    /// True for the registry's own endpoint (pull secrets for the registry apply).
    pub is_default: bool,
}

impl Endpoint {
    /// `scheme://host`, for messages.
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}

impl RegistriesConfig {
    /// Parses and checks a registries file's text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, RegistriesError> {
        let invalid = |reason: String| RegistriesError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        let config: RegistriesConfig =
            serde_yaml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        for (registry, mirror) in &config.mirrors {
            for e in &mirror.endpoint {
                split_endpoint(e)
                    .map_err(|r| invalid(format!("mirrors.{registry:?}.endpoint {e:?}: {r}")))?;
            }
            for pattern in mirror.rewrite.keys() {
                regex::Regex::new(pattern).map_err(|err| {
                    invalid(format!("mirrors.{registry:?}.rewrite {pattern:?}: {err}"))
                })?;
            }
        }
        Ok(config)
    }

    /// Where to look for `repository` (`docker.io/library/busybox`), in order.
    pub fn endpoints(&self, repository: &str) -> Vec<Endpoint> {
        let (registry, path) = repository
            .split_once('/')
            .unwrap_or(("docker.io", repository));
        let mirror = self.mirrors.get(registry).or_else(|| self.mirrors.get("*"));
        let mut out = Vec::new();
        if let Some(mirror) = mirror {
            let rewritten = rewrite(&mirror.rewrite, path);
            for e in &mirror.endpoint {
                let Ok((scheme, host)) = split_endpoint(e) else {
                    continue;
                };
                out.push(Endpoint {
                    scheme,
                    host,
                    repository: rewritten.clone(),
                    is_default: false,
                });
            }
        }
        let default_host = match registry {
            "docker.io" => "registry-1.docker.io".to_string(),
            other => other.to_string(),
        };
        if !out.iter().any(|e| e.host == default_host) {
            out.push(Endpoint {
                scheme: "https",
                host: default_host.clone(),
                repository: path.to_string(),
                is_default: true,
            });
            // containerd talks plain HTTP to registries on loopback.
            if is_loopback(&default_host) {
                out.push(Endpoint {
                    scheme: "http",
                    host: default_host,
                    repository: path.to_string(),
                    is_default: true,
                });
            }
        }
        out
    }

    /// The settings for an endpoint host.
    pub fn host(&self, host: &str) -> Option<&HostConfig> {
        self.configs.get(host).or_else(|| match host {
            "registry-1.docker.io" | "index.docker.io" => self.configs.get("docker.io"),
            _ => None,
        })
    }
}

/// Applies the first matching rewrite rule (rules in key order, as k3s's map).
fn rewrite(rules: &BTreeMap<String, String>, path: &str) -> String {
    for (pattern, replacement) in rules {
        let Ok(re) = regex::Regex::new(pattern) else {
            continue;
        };
        if re.is_match(path) {
            return re.replace(path, replacement.as_str()).into_owned();
        }
    }
    path.to_string()
}

/// `http://h:1/` → ("http", "h:1"); no scheme means https.
fn split_endpoint(e: &str) -> Result<(&'static str, String), &'static str> {
    let (scheme, rest) = if let Some(r) = e.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = e.strip_prefix("https://") {
        ("https", r)
    } else if e.contains("://") {
        return Err("only http:// and https:// endpoints are supported");
    } else {
        ("https", e)
    };
    let host = rest.trim_end_matches('/');
    let host = host.strip_suffix("/v2").unwrap_or(host);
    if host.is_empty() {
        return Err("no host");
    }
    if host.contains('/') {
        return Err("endpoints with a path are not supported; give scheme://host[:port]");
    }
    Ok((scheme, host.to_string()))
}

fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
        || name == "[::1]"
}

/// A file's (size, mtime), to notice edits.
type FileStamp = Option<(u64, SystemTime)>;

/// The registries file, re-read when it changes.
pub struct RegistriesFile {
    path: PathBuf,
    state: Mutex<(FileStamp, Arc<RegistriesConfig>)>,
}

impl RegistriesFile {
    /// Watches `path` (a missing file means no mirrors and no configs).
    pub fn new(path: PathBuf) -> Self {
        let file = Self {
            path,
            state: Mutex::new((None, Arc::default())),
        };
        file.current();
        file
    }

    /// Loads `path` now, failing on a missing or invalid file (for `--private-registry` checks).
    pub fn load_strict(path: &Path) -> Result<RegistriesConfig, RegistriesError> {
        let text = read_bounded(path)?;
        RegistriesConfig::parse(&text, path)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The configuration in force, re-read if the file changed.
    pub fn current(&self) -> Arc<RegistriesConfig> {
        let stamp = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        let mut state = self.state.lock();
        if state.0 == stamp {
            return state.1.clone();
        }
        state.0 = stamp;
        if stamp.is_none() {
            state.1 = Arc::default();
            return state.1.clone();
        }
        match read_bounded(&self.path).and_then(|t| RegistriesConfig::parse(&t, &self.path)) {
            Ok(config) => {
                warn_unsupported(&config, &self.path);
                tracing::info!(file = %self.path.display(), mirrors = config.mirrors.len(), configs = config.configs.len(), "registries file loaded");
                state.1 = Arc::new(config);
            }
            Err(err) => {
                tracing::error!(%err, "registries file not applied; the previous settings stay in force")
            }
        }
        state.1.clone()
    }
}

fn read_bounded(path: &Path) -> Result<String, RegistriesError> {
    let read = |source| RegistriesError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.len() > MAX_FILE {
        return Err(RegistriesError::Invalid {
            path: path.to_path_buf(),
            reason: format!("larger than {MAX_FILE} bytes"),
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

fn warn_unsupported(config: &RegistriesConfig, path: &Path) {
    for (host, c) in &config.configs {
        if let Some(tls) = &c.tls
            && (tls.cert_file.is_some() || tls.key_file.is_some())
        {
            tracing::warn!(file = %path.display(), %host, "tls.cert_file/key_file (client certificates) are not supported by kelp's registry client and are ignored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> RegistriesConfig {
        RegistriesConfig::parse(text, Path::new("registries.yaml")).expect("parses")
    }

    #[test]
    fn mirrors_come_first_then_the_default_endpoint() {
        let c = parse(
            "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:5000\", \"mirror.example/\"]\n",
        );
        let e = c.endpoints("docker.io/library/busybox");
        let urls: Vec<String> = e
            .iter()
            .map(|e| format!("{}/{}", e.url(), e.repository))
            .collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:5000/library/busybox",
                "https://mirror.example/library/busybox",
                "https://registry-1.docker.io/library/busybox"
            ]
        );
        assert!(e[2].is_default && !e[0].is_default);
    }

    #[test]
    fn rewrites_apply_to_mirrors_only_and_the_wildcard_catches_the_rest() {
        let c = parse(
            "mirrors:\n  \"*\":\n    endpoint: [\"https://cache.example\"]\n    rewrite:\n      \"^team/(.*)\": \"library/$1\"\n",
        );
        let e = c.endpoints("registry.example/team/busybox");
        assert_eq!(e[0].host, "cache.example");
        assert_eq!(e[0].repository, "library/busybox");
        assert_eq!(e[1].host, "registry.example");
        assert_eq!(e[1].repository, "team/busybox");
    }

    #[test]
    fn loopback_registries_get_plain_http_after_https() {
        let e = RegistriesConfig::default().endpoints("127.0.0.1:5000/busybox");
        let schemes: Vec<&str> = e.iter().map(|e| e.scheme).collect();
        assert_eq!(schemes, ["https", "http"]);
    }

    #[test]
    fn bad_files_name_the_key() {
        let err = RegistriesConfig::parse(
            "mirrors:\n  docker.io:\n    endpoint: [\"ftp://x\"]\n",
            Path::new("r.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("docker.io") && err.contains("ftp://x"),
            "{err}"
        );
        let err = RegistriesConfig::parse("mirror: {}\n", Path::new("r.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field"), "{err}");
        let err = RegistriesConfig::parse(
            "mirrors:\n  x.io:\n    rewrite: {\"(\": \"y\"}\n",
            Path::new("r.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("rewrite"), "{err}");
    }
}
