//! Secrets encrypted at rest: nothing of a Secret's value reaches the disk
//! in the clear, kubectl still reads it, and `kelp secrets-encrypt
//! rotate-keys` moves every Secret to a new key.

mod common;

use std::path::Path;
use std::process::Command;

use common::cluster::Server;

/// Whether any file under `dir` contains `needle`, as written or inside
/// one of the zstd frames the store compresses its pages into.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .any(|e| {
            let path = e.path();
            if path.is_dir() {
                on_disk(&path, needle)
            } else {
                std::fs::read(&path).is_ok_and(|bytes| {
                    contains(&bytes, needle)
                        || zstd_frames(&bytes).iter().any(|f| contains(f, needle))
                })
            }
        })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The contents of every zstd frame in `bytes` (found by its magic number).
fn zstd_frames(bytes: &[u8]) -> Vec<Vec<u8>> {
    use std::io::Read;
    const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    let mut frames = Vec::new();
    for start in 0..bytes.len().saturating_sub(4) {
        if bytes[start..start + 4] != MAGIC {
            continue;
        }
        let Ok(decoder) = ruzstd::decoding::StreamingDecoder::new(&bytes[start..]) else {
            continue;
        };
        let mut out = Vec::new();
        // A store page is far smaller; the bound keeps a false magic harmless.
        if decoder.take(16 << 20).read_to_end(&mut out).is_ok() || !out.is_empty() {
            frames.push(out);
        }
    }
    frames
}

fn secrets_encrypt(s: &Server, command: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kelp"))
        .args(["secrets-encrypt", command, "--kubeconfig"])
        .arg(&s.kubeconfig)
        .output()
        .expect("run kelp secrets-encrypt");
    assert!(
        out.status.success(),
        "secrets-encrypt {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn active_key(status: &str) -> String {
    status
        .lines()
        .find(|l| l.trim_start().starts_with('*'))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no active key in {status}"))
        .to_string()
}

#[test]
fn secrets_are_sealed_on_disk_readable_through_the_api_and_rotated() {
    let mut s = Server::start();
    let secret_marker = "kelp-secret-marker-7f3a9c";
    let config_marker = "kelp-configmap-marker-7f3a9c";
    s.ok(&[
        "create",
        "secret",
        "generic",
        "db",
        &format!("--from-literal=password={secret_marker}"),
    ]);
    s.ok(&[
        "create",
        "configmap",
        "plain",
        &format!("--from-literal=v={config_marker}"),
    ]);
    let db = s.data_dir().join("server/db");
    // The check can see plaintext (ConfigMaps are not encrypted)...
    assert!(on_disk(&db, config_marker.as_bytes()));
    // ...and a Secret's value is in neither its plain nor base64 form.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(secret_marker);
    assert!(!on_disk(&db, secret_marker.as_bytes()));
    assert!(!on_disk(&db, b64.as_bytes()));
    assert!(on_disk(&db, b"k8s:enc:aesgcm:v1:"));
    let read = |s: &Server| s.jsonpath(&["get", "secret", "db"], "{.data.password}");
    assert_eq!(read(&s), b64);

    let config = s.data_dir().join("server/cred/encryption-config.json");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&config)
        .expect("config")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key file must be private");

    // Only system:masters may see or rotate the keys.
    let denied = s.fails(&["get", "--raw", "/v1-kelp/encrypt/status", "--as=jane"]);
    assert!(
        denied.contains("Forbidden") || denied.contains("forbidden"),
        "{denied}"
    );

    let status = secrets_encrypt(&s, "status");
    assert!(status.contains("Encryption Status: Enabled"), "{status}");
    let first = active_key(&status);
    assert!(first.starts_with("aesgcmkey-"), "{status}");

    let rotated = secrets_encrypt(&s, "rotate-keys");
    assert!(rotated.contains("re-encrypted"), "{rotated}");
    let second = active_key(&rotated);
    assert_ne!(first, second, "{rotated}");
    assert!(
        !rotated.contains(&first),
        "the old key must be gone: {rotated}"
    );
    let file = std::fs::read_to_string(&config).expect("config");
    assert!(!file.contains(&first) && file.contains(&second), "{file}");
    assert_eq!(read(&s), b64);
    // A restart reads with the key file alone.
    s.restart();
    assert_eq!(read(&s), b64);
    assert!(!on_disk(&db, secret_marker.as_bytes()));

    // A server whose key file is damaged refuses to start, naming the file.
    s.stop();
    std::fs::write(&config, "{\"kind\": \"EncryptionConfiguration\"").expect("damage");
    let out = Command::new(env!("CARGO_BIN_EXE_kelp"))
        .args(["server", "--disable-agent", "--bind-address", "127.0.0.1"])
        .args(["--https-listen-port", &s.port.to_string(), "--data-dir"])
        .arg(s.data_dir())
        .args(["--write-kubeconfig"])
        .arg(s.dir.path().join("other.yaml"))
        .output()
        .expect("run kelp server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("encryption-config.json"), "{err}");
}
