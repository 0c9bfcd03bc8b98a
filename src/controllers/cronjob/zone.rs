//! Time zone lookup for `spec.timeZone` and `TZ=` prefixes (Go's `time.LoadLocation`).
//!
//! The jiff build kelp links has no bundled tz database, so zones are read from the host's
//! zoneinfo directories (as Go does before falling back to its embedded copy). Names are
//! checked the way Go checks them — no `..`, no leading slash or backslash — so a schedule
//! can never make the controller read an arbitrary file.

use std::path::{Path, PathBuf};

use jiff::tz::TimeZone;
use k8s_openapi::jiff;

/// Where zoneinfo files are looked for, in order (Go's `platformZoneSources`).
pub fn default_zoneinfo_dirs() -> Vec<PathBuf> {
    [
        "/usr/share/zoneinfo/",
        "/usr/share/lib/zoneinfo/",
        "/usr/lib/locale/TZ/",
    ]
    .iter()
    .map(PathBuf::from)
    .collect()
}

/// Resolves a zone name; the error is Go's message, used in `UnknownTimeZone` events.
pub fn load_zone(name: &str, dirs: &[PathBuf]) -> Result<TimeZone, String> {
    if name.is_empty() || name == "UTC" {
        return Ok(TimeZone::UTC);
    }
    if name == "Local" {
        return Ok(TimeZone::try_system().unwrap_or(TimeZone::UTC));
    }
    if name.contains("..") || name.starts_with('/') || name.starts_with('\\') {
        return Err("time: invalid location name".into());
    }
    for dir in dirs {
        if let Some(tz) = read_zone(dir, name) {
            return Ok(tz);
        }
    }
    Err(format!("unknown time zone {name}"))
}

fn read_zone(dir: &Path, name: &str) -> Option<TimeZone> {
    let data = std::fs::read(dir.join(name)).ok()?;
    TimeZone::tzif(name, &data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_empty_need_no_files() {
        assert_eq!(load_zone("", &[]), Ok(TimeZone::UTC));
        assert_eq!(load_zone("UTC", &[]), Ok(TimeZone::UTC));
    }

    #[test]
    fn path_tricks_are_rejected_before_touching_the_filesystem() {
        let dirs = default_zoneinfo_dirs();
        assert!(load_zone("../../etc/passwd", &dirs).is_err());
        assert!(load_zone("/etc/localtime", &dirs).is_err());
        assert_eq!(
            load_zone("Mars/Olympus_Mons", &dirs),
            Err("unknown time zone Mars/Olympus_Mons".to_string())
        );
    }
}
