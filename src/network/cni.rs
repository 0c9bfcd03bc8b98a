//! Bring your own CNI: with `--flannel-backend=none` pods are networked by
//! CNI plugins, as the kubelet does through its container runtime.
//!
//! What the CNI spec (1.0) asks of a runtime, and no more: the network
//! configuration is the lexically first `.conflist`, `.conf` or `.json`
//! file in the config dir (a single `.conf` is a list of one); each plugin
//! of the list is executed in order for ADD, with the previous plugin's
//! result as `prevResult`, and in reverse order for DEL; the environment
//! carries the command, the container id (the pod UID: kelp's sandbox is
//! the pod's network namespace), the netns path, the interface name
//! (`eth0`), the plugin search path and the Kubernetes `CNI_ARGS`. A
//! plugin's error is its exit status and a JSON `{code, msg, details}`.
//! The ADD result is cached with the config it was made with, so that DEL
//! tears down what ADD set up even if the config changed since, and can
//! run after a restart.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

/// How long one plugin may run.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// The interface pods get.
const IFNAME: &str = "eth0";

/// Where CNI things are.
#[derive(Debug, Clone)]
pub struct CniConfig {
    /// Network configurations (`<data>/agent/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Plugin binaries, searched in order (`<data>/data/cni`,
    /// `/opt/cni/bin`, and Debian's `/usr/lib/cni`).
    pub bin_dirs: Vec<PathBuf>,
    /// Cached ADD results (`<data>/agent/cni/results`).
    pub cache_dir: PathBuf,
}

/// Why a pod could not be networked by CNI.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    /// No configuration file.
    #[error(
        "no CNI network configuration in {0} (with --flannel-backend=none, install a CNI plugin and its config there)"
    )]
    NoConfig(PathBuf),
    /// A configuration file is malformed.
    #[error("CNI configuration {path}: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A plugin binary is not in any plugin directory.
    #[error("CNI plugin {plugin:?} not found in {dirs}")]
    PluginMissing {
        /// The plugin type.
        plugin: String,
        /// The directories searched.
        dirs: String,
    },
    /// A plugin failed.
    #[error("CNI plugin {plugin} {command} failed: {message}")]
    Plugin {
        /// The plugin type.
        plugin: String,
        /// ADD or DEL.
        command: &'static str,
        /// Its message (or exit status and output).
        message: String,
    },
    /// The result has no IPv4 address.
    #[error("CNI network {0:?} gave the pod no IPv4 address")]
    NoAddress(String),
    /// The result cache could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// A pod, as CNI plugins are told about it.
#[derive(Debug, Clone, Copy)]
pub struct CniPod<'a> {
    /// Its UID (the container id).
    pub uid: &'a str,
    /// Its namespace.
    pub namespace: &'a str,
    /// Its name.
    pub name: &'a str,
}

/// Runs the node's CNI plugins for its pods.
#[derive(Debug, Clone)]
pub struct Cni {
    config: CniConfig,
}

impl Cni {
    /// A CNI runner with these directories.
    pub fn new(config: CniConfig) -> Self {
        Cni { config }
    }

    /// The network configuration list to use, and its file.
    fn network_list(&self) -> Result<(PathBuf, Value), CniError> {
        let dir = &self.config.conf_dir;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        });
        files.sort();
        let path = files
            .into_iter()
            .next()
            .ok_or_else(|| CniError::NoConfig(dir.clone()))?;
        let bad = |reason: String| CniError::BadConfig {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
        let mut conf: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if conf.get("plugins").is_none() {
            // A single plugin's config: a list of one.
            let plugin = conf.clone();
            conf = json!({
                "cniVersion": plugin["cniVersion"],
                "name": plugin["name"],
                "plugins": [plugin],
            });
        }
        if !conf["name"].is_string() {
            return Err(bad("no network name".into()));
        }
        match conf["plugins"].as_array() {
            Some(p) if !p.is_empty() && p.iter().all(|p| p["type"].is_string()) => {}
            _ => {
                return Err(bad(
                    "plugins must be a non-empty list of objects with a type".into(),
                ));
            }
        }
        Ok((path, conf))
    }

    fn cache_file(&self, uid: &str) -> PathBuf {
        self.config.cache_dir.join(format!("{uid}.json"))
    }

    /// Runs ADD through the list for the pod whose namespace is `netns`;
    /// returns the pod's IPv4 address.
    pub async fn add(&self, pod: CniPod<'_>, netns: &Path) -> Result<Ipv4Addr, CniError> {
        let (_, list) = self.network_list()?;
        let mut previous: Option<Value> = None;
        for plugin in list["plugins"].as_array().into_iter().flatten() {
            let conf = plugin_conf(&list, plugin, previous.as_ref());
            match self.exec("ADD", &conf, pod, Some(netns)).await {
                Ok(result) => previous = Some(result),
                Err(e) => {
                    // Undo what the plugins before it did.
                    let _ = self
                        .del_with(&list, previous.as_ref(), pod, Some(netns))
                        .await;
                    return Err(e);
                }
            }
        }
        let result = previous.unwrap_or(Value::Null);
        let cache = json!({"list": list, "result": result, "netns": netns, "namespace": pod.namespace, "name": pod.name});
        let path = self.cache_file(pod.uid);
        let io = |source| CniError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.config.cache_dir).map_err(io)?;
        std::fs::write(&path, cache.to_string()).map_err(io)?;
        first_ipv4(&result)
            .ok_or_else(|| CniError::NoAddress(list["name"].as_str().unwrap_or("").into()))
    }

    /// Runs DEL for the pod `uid` with what its ADD used (a pod never
    /// added is a no-op, as DEL must be idempotent).
    pub async fn del(&self, uid: &str) -> Result<(), CniError> {
        let path = self.cache_file(uid);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(());
        };
        let cache: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let netns = cache["netns"].as_str().map(PathBuf::from);
        // A namespace already gone is passed as none, as the spec allows.
        let netns = netns.filter(|n| n.exists());
        let pod = CniPod {
            uid,
            namespace: cache["namespace"].as_str().unwrap_or(""),
            name: cache["name"].as_str().unwrap_or(""),
        };
        let result = (!cache["result"].is_null()).then_some(&cache["result"]);
        self.del_with(&cache["list"], result, pod, netns.as_deref())
            .await?;
        let _ = std::fs::remove_file(&path);
        Ok(())
    }

    async fn del_with(
        &self,
        list: &Value,
        result: Option<&Value>,
        pod: CniPod<'_>,
        netns: Option<&Path>,
    ) -> Result<(), CniError> {
        let plugins: Vec<&Value> = list["plugins"].as_array().into_iter().flatten().collect();
        let mut first_error = None;
        for plugin in plugins.into_iter().rev() {
            let conf = plugin_conf(list, plugin, result);
            if let Err(e) = self.exec("DEL", &conf, pod, netns).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn find_plugin(&self, plugin: &str) -> Result<PathBuf, CniError> {
        if plugin.contains('/') || plugin.is_empty() {
            return Err(CniError::PluginMissing {
                plugin: plugin.into(),
                dirs: "(a plugin type is a file name)".into(),
            });
        }
        self.config
            .bin_dirs
            .iter()
            .map(|d| d.join(plugin))
            .find(|p| p.is_file())
            .ok_or_else(|| CniError::PluginMissing {
                plugin: plugin.into(),
                dirs: self.search_path(),
            })
    }

    fn search_path(&self) -> String {
        self.config
            .bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":")
    }

    /// Executes one plugin; its result (Null for an empty answer).
    async fn exec(
        &self,
        command: &'static str,
        conf: &Value,
        pod: CniPod<'_>,
        netns: Option<&Path>,
    ) -> Result<Value, CniError> {
        let plugin = conf["type"].as_str().unwrap_or_default().to_string();
        let binary = self.find_plugin(&plugin)?;
        let failed = |message: String| CniError::Plugin {
            plugin: plugin.clone(),
            command,
            message,
        };
        let mut child = tokio::process::Command::new(&binary)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", pod.uid)
            .env("CNI_NETNS", netns.map(|n| n.display().to_string()).unwrap_or_default())
            .env("CNI_IFNAME", IFNAME)
            .env("CNI_PATH", self.search_path())
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                    pod.namespace, pod.name, pod.uid, pod.uid
                ),
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot run {}: {e}", binary.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin
                .write_all(conf.to_string().as_bytes())
                .await
                .map_err(|e| failed(format!("writing its config: {e}")))?;
        }
        let output = tokio::time::timeout(PLUGIN_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| failed(format!("no answer in {} s", PLUGIN_TIMEOUT.as_secs())))?
            .map_err(|e| failed(e.to_string()))?;
        let answer: Option<Value> = serde_json::from_slice(&output.stdout).ok();
        if !output.status.success() {
            let message = answer
                .as_ref()
                .and_then(|a| {
                    let msg = a["msg"].as_str()?;
                    Some(match a["details"].as_str() {
                        Some(d) if !d.is_empty() => format!("{msg}: {d}"),
                        _ => msg.to_string(),
                    })
                })
                .unwrap_or_else(|| {
                    format!(
                        "{}: {}{}",
                        output.status,
                        String::from_utf8_lossy(&output.stdout),
                        String::from_utf8_lossy(&output.stderr)
                    )
                });
            return Err(failed(message));
        }
        Ok(answer.unwrap_or(Value::Null))
    }
}

/// One plugin's stdin: its own config plus the list's name and version,
/// and the previous result.
fn plugin_conf(list: &Value, plugin: &Value, previous: Option<&Value>) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = list["name"].clone();
    conf["cniVersion"] = list["cniVersion"].clone();
    if let Some(previous) = previous {
        conf["prevResult"] = previous.clone();
    }
    conf
}

/// The first IPv4 address of a CNI result (`ips[].address`, CIDR form).
fn first_ipv4(result: &Value) -> Option<Ipv4Addr> {
    result["ips"]
        .as_array()?
        .iter()
        .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_configs_carry_the_list_name_version_and_previous_result() {
        let list = json!({"cniVersion": "1.0.0", "name": "net", "plugins": [{"type": "bridge"}]});
        let conf = plugin_conf(&list, &list["plugins"][0], Some(&json!({"ips": []})));
        assert_eq!(
            conf,
            json!({"type": "bridge", "name": "net", "cniVersion": "1.0.0", "prevResult": {"ips": []}})
        );
    }

    #[test]
    fn the_first_ipv4_address_of_a_result_is_the_pods() {
        let result = json!({"ips": [{"address": "fd00::5/64"}, {"address": "10.22.0.5/24", "gateway": "10.22.0.1"}]});
        assert_eq!(first_ipv4(&result), Some("10.22.0.5".parse().unwrap()));
        assert_eq!(first_ipv4(&json!({})), None);
    }

    #[test]
    fn the_lexically_first_config_is_used_and_a_single_conf_is_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let cni = Cni::new(CniConfig {
            conf_dir: dir.path().to_path_buf(),
            bin_dirs: vec![],
            cache_dir: dir.path().join("cache"),
        });
        assert!(matches!(cni.network_list(), Err(CniError::NoConfig(_))));
        std::fs::write(
            dir.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-a.conf"),
            r#"{"cniVersion":"1.0.0","name":"a","type":"bridge"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("00-readme.txt"), "not a config").unwrap();
        let (path, list) = cni.network_list().unwrap();
        assert!(path.ends_with("10-a.conf"));
        assert_eq!(list["name"], "a");
        assert_eq!(list["plugins"][0]["type"], "bridge");
        std::fs::write(dir.path().join("05-bad.json"), "{").unwrap();
        assert!(matches!(
            cni.network_list(),
            Err(CniError::BadConfig { .. })
        ));
    }
}
