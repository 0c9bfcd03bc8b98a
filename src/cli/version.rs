//! `kelp version`.

/// kelp's own version, `v<semver>+kelp`.
pub const KELP_VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"), "+kelp");

/// The line `kelp version` prints.
pub fn version_string() -> String {
    format!("kelp version {KELP_VERSION}")
}
