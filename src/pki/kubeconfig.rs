//! kubeconfig files like the `k3s.yaml` k3s writes.
//!
//! The cluster, context and user are all named "default" and the CA and
//! client credentials are embedded as base64 `*-data` fields, so the file is
//! self-contained and can be copied to another machine. It is rendered by hand
//! (the shape is fixed); the server URL is emitted as a JSON string, which is
//! also a valid YAML double-quoted scalar, so no URL can break the document.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// kubeconfig YAML (cluster/context/user all named "default", like k3s), embedding CA and client cert/key as base64 *-data fields.
pub fn kubeconfig(server_url: &str, ca_pem: &str, cert_pem: &str, key_pem: &str) -> String {
    let server = serde_json::Value::from(server_url).to_string();
    format!(
        "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: {ca}
    server: {server}
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {{}}
users:
- name: default
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        ca = STANDARD.encode(ca_pem),
        cert = STANDARD.encode(cert_pem),
        key = STANDARD.encode(key_pem),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(v: &serde_yaml::Value) -> String {
        String::from_utf8(STANDARD.decode(v.as_str().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn kubeconfig_parses_with_k3s_shape() {
        let text = kubeconfig("https://127.0.0.1:6443", "CA\n", "CERT\n", "KEY\n");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        assert_eq!(doc["apiVersion"], "v1");
        assert_eq!(doc["kind"], "Config");
        assert_eq!(doc["current-context"], "default");
        let cluster = &doc["clusters"][0];
        assert_eq!(cluster["name"], "default");
        assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:6443");
        assert_eq!(
            decode(&cluster["cluster"]["certificate-authority-data"]),
            "CA\n"
        );
        let context = &doc["contexts"][0];
        assert_eq!(context["name"], "default");
        assert_eq!(context["context"]["cluster"], "default");
        assert_eq!(context["context"]["user"], "default");
        let user = &doc["users"][0];
        assert_eq!(user["name"], "default");
        assert_eq!(decode(&user["user"]["client-certificate-data"]), "CERT\n");
        assert_eq!(decode(&user["user"]["client-key-data"]), "KEY\n");
    }

    #[test]
    fn odd_server_url_cannot_break_the_document() {
        let url = "https://h:1/#x: \"y\"\nkind: Evil";
        let doc: serde_yaml::Value = serde_yaml::from_str(&kubeconfig(url, "", "", "")).unwrap();
        assert_eq!(doc["clusters"][0]["cluster"]["server"], url);
        assert_eq!(doc["kind"], "Config");
    }
}
