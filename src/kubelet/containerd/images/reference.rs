//! Docker-style image reference normalisation (`busybox` → `docker.io/library/busybox:latest`).
//!
//! Pod specs name images the way `docker pull` accepts them; containerd stores fully
//! qualified names. The rules follow distribution/reference's `ParseNormalizedNamed`:
//! the first path component is a registry only if it contains `.` or `:` or is
//! `localhost`; Docker Hub names get `library/` when they have a single component; a
//! missing tag becomes `latest` unless a digest is given. Invalid input is an error value.

use super::super::error::{Result, RuntimeError};

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry and path, e.g. `docker.io/library/busybox`.
    pub repository: String,
    /// The tag, if any (`latest` is filled in when neither tag nor digest is given).
    pub tag: Option<String>,
    /// The digest, e.g. `sha256:…`.
    pub digest: Option<String>,
}

impl Reference {
    /// Parses `input` with Docker's normalisation rules.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = |reason| RuntimeError::InvalidReference {
            reference: input.into(),
            reason,
        };
        if input.is_empty() || input.len() > 4096 {
            return Err(bad("empty or too long"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(parse_digest(d).ok_or_else(|| bad("invalid digest"))?),
            ),
            None => (input, None),
        };
        let (name, tag) = split_tag(rest);
        if let Some(t) = tag
            && !valid_tag(t)
        {
            return Err(bad("invalid tag"));
        }
        let repository = normalize_name(name).ok_or_else(|| bad("invalid repository name"))?;
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, None) => Some("latest".to_string()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            repository,
            tag,
            digest,
        })
    }

    /// The name containerd stores: `repo:tag`, or `repo@digest` when a digest is given
    /// (the digest identifies the content; a tag next to it is informational only).
    pub fn name(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => format!("{}@{d}", self.repository),
            (None, Some(t)) => format!("{}:{t}", self.repository),
            (None, None) => self.repository.clone(),
        }
    }
}

/// Splits `name[:tag]`; a `:` before the last `/` belongs to a registry port.
fn split_tag(s: &str) -> (&str, Option<&str>) {
    match s.rfind(':') {
        Some(i) if !s[i..].contains('/') => (&s[..i], Some(&s[i + 1..])),
        _ => (s, None),
    }
}

/// Adds the default registry and `library/` prefix, and validates every component.
fn normalize_name(name: &str) -> Option<String> {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_string(), rest.to_string())
        }
        _ => ("docker.io".to_string(), name.to_string()),
    };
    let domain = if domain == "index.docker.io" {
        "docker.io".to_string()
    } else {
        domain
    };
    let path = if domain == "docker.io" && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    if !valid_domain(&domain) || !path.split('/').all(valid_component) {
        return None;
    }
    Some(format!("{domain}/{path}"))
}

/// `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(&b[0]) || !b.last().is_some_and(alnum) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(&b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(&b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// Host name (letters, digits, `-`, `.`) with an optional numeric port.
fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|x| x.is_ascii_alphanumeric() || x == b'-' || x == b'.');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|x| x.is_ascii_digit()));
    host_ok && port_ok
}

/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// Accepts `sha256:<64 hex>` (and other algorithms with a hex payload of at least 32).
pub(crate) fn parse_digest(d: &str) -> Option<String> {
    let (algo, hex) = d.split_once(':')?;
    let algo_ok = !algo.is_empty()
        && algo
            .bytes()
            .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit());
    let hex_ok = hex.len() >= 32
        && hex
            .bytes()
            .all(|x| x.is_ascii_digit() || (b'a'..=b'f').contains(&x));
    let sha_ok = algo != "sha256" || hex.len() == 64;
    (algo_ok && hex_ok && sha_ok).then(|| d.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.name())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    const D: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn docker_hub_short_names_get_library_and_latest() {
        assert_eq!(name("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(name("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(name("user/app"), "docker.io/user/app:latest");
        assert_eq!(
            name("index.docker.io/library/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            name("docker.io/library/busybox:latest"),
            "docker.io/library/busybox:latest"
        );
    }

    #[test]
    fn registries_are_recognised_by_dot_colon_or_localhost() {
        assert_eq!(
            name("registry.k8s.io/pause:3.9"),
            "registry.k8s.io/pause:3.9"
        );
        assert_eq!(name("localhost:5000/app"), "localhost:5000/app:latest");
        assert_eq!(name("localhost/app:v1"), "localhost/app:v1");
        assert_eq!(name("myhost:5000/a/b:c"), "myhost:5000/a/b:c");
    }

    #[test]
    fn digests_replace_the_default_tag() {
        assert_eq!(
            name(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        let r = Reference::parse(&format!("busybox:1.36@{D}")).ok();
        assert_eq!(r.as_ref().and_then(|r| r.tag.as_deref()), Some("1.36"));
        assert_eq!(
            r.map(|r| r.name()),
            Some(format!("docker.io/library/busybox@{D}"))
        );
    }

    #[test]
    fn invalid_references_are_errors() {
        for bad in [
            "",
            "Busybox",
            "busybox:",
            "busybox@sha256:abc",
            "a//b",
            "-a",
            "a:b c",
            "x/:t",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
